"""The C receive path of a media socket: ``struct mw_ingress`` and its routes
(``cffi_build/ingress.h``).

A readable socket with a :class:`FastSocket` costs one C call in the steady state: receive,
SRTP unprotect, parse, the producer stream's statistics, NACK bookkeeping and store, the fan-out
to every consumer, and the send. The C stops at the first datagram that needs a decision and
leaves it to the Python path (:class:`worker.net.udp.UdpSocket`), then goes on after it, so
Python stays in charge of everything that is not the next packet of a known, healthy stream.

A socket has one :class:`FastRoute` per transport that receives media on it (one for a plain
transport's socket; one per transport on a WebRtcServer's shared socket): the one source address
whose packets the route may take (the remote tuple, or the selected ICE tuple), the transport's
inbound SRTP session, and its producer streams and forward table. What a route may take is
decided here, from the transport's state, at most once per wake-up and only after something
changed (:meth:`MediaIngress.state_changed` and the like mark the routes stale): which producer
streams are enabled (a stream exists, not paused, no consumer waiting for a key frame, every
active consumer reached through a socket), the source address, the SRTP session.

Ownership: a FastSocket belongs to its UdpSocket (``udp.fast``) and owns ``struct mw_ingress``
and its arrays; a FastRoute belongs to its transport (which detaches it before closing) and
owns its ``struct mw_ingress_route`` and arrays. The pools, the forward table, the socket's
receive arrays and the streams' C state stay their owners'. The counters of what the C took
are added to the transport's and the ingress's own.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

from worker._fast import ffi, lib
from worker._fast.sockio import sockio_addr_set
from worker.keyframe import keyframe_codec

if TYPE_CHECKING:
    from worker._fast.forward import ForwardTable
    from worker._fast.srtp import SrtpContext
    from worker.bufferpool import PoolSet
    from worker.media_ingress import MediaIngress
    from worker.net.udp import UdpSocket
    from worker.producer import Producer, ProducerStream

__all__ = ["FAST_COUNTERS", "FastRoute", "FastSocket", "addr_sort_key", "fill_stream"]

# The C's counters, by the names the transport's own counters have.
FAST_COUNTERS: Final = (("rtpPacketsReceived", "rtp_received"),
                        ("rtpBytesReceived", "rtp_bytes"),
                        ("rtpPacketsForwarded", "forwarded"), ("srtpFailed", "srtp_failed"),
                        ("rtpSendDropped", "send_dropped"), ("rtpOutOfSlots", "out_of_slots"),
                        ("rtpStoreNoBuffer", "store_no_buffer"),
                        ("rtpPacketsFastPath", "rtp_received"))


class FastSocket:
    """The ``struct mw_ingress`` of one UDP socket, and its routes."""

    __slots__ = ("_array", "_touched", "result", "routes", "stale", "struct", "udp")

    def __init__(self, udp: UdpSocket, pools: PoolSet) -> None:
        batch = udp.recv_batch
        if batch.capacity != lib.MW_INGRESS_BATCH:
            raise ValueError(f"the socket's receive batch holds {batch.capacity} datagrams, "
                             f"the C path {lib.MW_INGRESS_BATCH}")
        self.udp = udp
        g = self.struct = ffi.new("struct mw_ingress *")
        g.fd = udp.fd
        g.want = lib.MW_INGRESS_MIN_WANT
        g.in_pool, g.out_pool = pools["udpRecv"].c_pool, pools["rtpPacket"].c_pool
        g.slots, g.lengths, g.addrs = batch.slots, batch.lengths, batch.addrs
        g.flags, g.kinds = batch.flags, batch.kinds
        self._touched = ffi.new("struct mw_ingress_route *[]", lib.MW_INGRESS_BATCH)
        g.touched = self._touched
        self._array: Any = ffi.NULL
        self.routes: list[FastRoute] = []
        self.stale = False  # a route changed: look again before the next run
        self.result: Any = ffi.new("struct mw_ingress_result *")

    # -- per wake-up ---------------------------------------------------------------------------

    def run(self, now_ms: int) -> Any:
        """One C call: receive, take what needs no decision, fan out and send. Returns the
        ``struct mw_ingress_result``; datagram ``slow_from`` (if below ``received``) is
        Python's, then :meth:`resume`, and at the end :meth:`release`."""
        if self.stale:
            self.refresh()
        result = self.result
        if lib.mw_ingress_run(self.struct, now_ms, result) != 0:
            raise RuntimeError("mw_ingress_run refused its arguments (a bug)")
        return result

    def resume(self, start: int, now_ms: int) -> int:
        """Go on with the batch from datagram ``start`` (Python handled the one before);
        returns the next datagram Python must handle (the batch's size: none)."""
        if self.stale:
            self.refresh()
        result = self.result
        if lib.mw_ingress_resume(self.struct, start, now_ms, result) != 0:
            raise RuntimeError("mw_ingress_resume without a batch (a bug)")
        slow_from: int = result.slow_from
        return slow_from

    def release(self) -> None:
        lib.mw_ingress_release(self.struct)

    @property
    def enabled(self) -> bool:
        """Whether the C may take anything at all now."""
        return bool(self.struct.route_count)

    # -- routes --------------------------------------------------------------------------------

    def add(self, route: FastRoute) -> None:
        self.routes.append(route)
        self.stale = True

    def remove(self, route: FastRoute) -> None:
        """``route`` takes nothing from now on (at once: its transport is closing)."""
        if route in self.routes:
            self.routes.remove(route)
        self._publish()

    def refresh(self) -> None:
        """Bring every stale route up to date and publish the active ones, sorted by source
        address as the C's binary search wants them."""
        for route in self.routes:
            if route.stale:
                route.refresh()
        self.stale = False
        self._publish()

    def _publish(self) -> None:
        active = sorted((r for r in self.routes if r.active), key=FastRoute.sort_key)
        keys = [r.sort_key() for r in active]
        if len(set(keys)) != len(keys):  # two transports claim one source: neither is taken
            twice = {k for k in keys if keys.count(k) > 1}
            active = [r for r in active if r.sort_key() not in twice]
        array = ffi.new("struct mw_ingress_route *[]", max(len(active), 1))
        for k, route in enumerate(active):
            array[k] = route.struct
        g = self.struct
        g.routes, g.route_count = array, len(active)
        self._array = array


class FastRoute:
    """The ``struct mw_ingress_route`` of one transport's media ingress on one socket."""

    __slots__ = ("_arrays", "_ingress", "_key", "_queue", "_streams", "active", "socket",
                 "stale", "struct")

    def __init__(self, socket: FastSocket, ingress: MediaIngress) -> None:
        self.socket = socket
        self._ingress = ingress
        r = self.struct = ffi.new("struct mw_ingress_route *")
        fwd = ingress.batch
        r.table = ingress.table.struct
        r.fwd_in, r.fwd_out, r.free_slots = fwd.input, fwd.output, fwd.free
        r.area, r.fwd_result, r.send_result = fwd.area, fwd.result, fwd.send_result
        self._queue = (ffi.new("uint32_t[]", lib.MW_INGRESS_BATCH),
                       ffi.new("uint32_t[]", lib.MW_INGRESS_BATCH))
        r.queue_slots, r.queue_lengths = self._queue
        self._streams: Any = None  # the stream entries and the streams they point into
        self._arrays: list[Any] = []
        self._key = b""
        self.active = False  # in the socket's routes (a source address, SRTP ready, ...)
        self.stale = True
        socket.add(self)

    def mark_stale(self) -> None:
        """Something that decides what this route may take changed."""
        self.stale = True
        self.socket.stale = True

    def sort_key(self) -> bytes:
        """The order of ``mw_ingress_addr_cmp``: family, port, then the address bytes."""
        return self._key

    def refresh(self) -> None:
        """Rebuild the stream entries, the source address and the SRTP session from the
        transport's state (after a routing or state change; not per packet)."""
        ingress = self._ingress
        if ingress.dirty:
            ingress.rebuild()  # marks us stale: before we are not
        self.stale = False
        transport = ingress.transport
        r = self.struct
        self.active = False
        remote = transport.fast_remote(self.socket.udp)
        srtp = transport.srtp_in()
        r.srtp = 1 if transport.srtp_required() else 0
        self._set_srtp(srtp)
        producers = [p for p in transport.producers.values() if p.stream is not None]
        entries = ffi.new("struct mw_ingress_stream[]", max(len(producers), 1))
        for entry, producer in zip(entries, producers, strict=False):
            self._fill(entry, producer)
        # The entries point at each stream's C state (statistics, NACK, store): the streams
        # live as long as the entries do, even past a producer's close until the next refresh.
        self._streams = (entries, [p.stream for p in producers])
        r.streams, r.stream_count = entries, len(producers)
        if remote is None or transport.closed or (r.srtp and srtp is None):
            return
        try:
            sockio_addr_set(r.remote, remote[0], remote[1])
        except ValueError:
            return
        self._key = addr_sort_key(r.remote)
        self.active = True

    def _set_srtp(self, srtp: SrtpContext | None) -> None:
        r = self.struct
        if srtp is None:
            r.srtp_in, r.api = ffi.NULL, ffi.NULL
            self._arrays = []
            return
        from worker._fast.srtp import srtp_api  # noqa: PLC0415 (the facade's one api)

        api = srtp_api()
        r.srtp_in, r.api = srtp.pointer, api.struct
        self._arrays = [srtp, api]  # keep the session and the api alive with the struct

    def _fill(self, entry: Any, producer: Producer) -> None:
        stream = producer.stream
        assert stream is not None
        fill_stream(entry, stream, producer.pt_map)
        forward, reachable = _table_routes(self._ingress.table, stream.ssrc)
        entry.forward = 1 if forward and producer.consumers else 0
        entry.enabled = 1 if (not producer.paused and not producer.sync_waiters and reachable
                              and not producer.closed) else 0

    def counter(self, name: str) -> int:
        """One of the C's counters (``struct mw_ingress_route`` field name)."""
        return int(getattr(self.struct, name))

    def close(self) -> None:
        """Take nothing any more (the transport is closing): out of the socket's routes."""
        self.active = False
        self.socket.remove(self)
        r = self.struct
        r.streams, r.stream_count = ffi.NULL, 0
        self._streams = None
        self._set_srtp(None)


def addr_sort_key(addr: Any) -> bytes:
    """A ``struct mw_sockio_addr`` as bytes that sort as ``mw_ingress_addr_cmp`` orders them:
    family, port, then the address bytes."""
    return (int(addr.family).to_bytes(2, "big") + int(addr.port).to_bytes(2, "big")
            + bytes(ffi.buffer(addr.addr)))


def fill_stream(entry: Any, stream: ProducerStream, payload_types: Iterable[int]) -> None:
    """The C's view of a producer stream: its SSRC, payload types and C state (``enabled``
    and ``forward`` are the caller's)."""
    entry.ssrc = stream.ssrc
    entry.keyframe_codec = keyframe_codec(stream.mime_type) if stream.detector else 0
    entry.pt_ok[stream.media_pt & 0x7F] = 1
    for pt in payload_types:
        entry.pt_ok[pt & 0x7F] = 1
    entry.stats = stream.stats.c_stream
    entry.nack = stream.nack.shared if stream.nack is not None else ffi.NULL
    entry.store = stream.store.c_store if stream.store is not None else ffi.NULL


def _table_routes(table: ForwardTable, ssrc: int) -> tuple[bool, bool]:
    """(the table has consumers for ``ssrc``, every active one is sent through a socket)."""
    t = table.struct
    for i in range(t.ssrc_count):
        if t.ssrcs[i] != ssrc:
            continue
        stream = t.streams[i]
        first, count = t.first[stream], t.count[stream]
        reachable = all(t.consumers[j].paused or t.dest_fds[t.consumers[j].dest] >= 0
                        for j in range(first, first + count))
        return count > 0, reachable
    return False, True
