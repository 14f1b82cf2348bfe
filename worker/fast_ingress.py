"""The C receive path of one transport's media socket: ``struct mw_ingress``
(``cffi_build/ingress.h``).

A readable socket with a :class:`FastIngress` costs one C call in the steady state: receive,
SRTP unprotect, parse, the producer stream's statistics, NACK bookkeeping and store, the fan-out
to every consumer, and the send. The C stops at the first datagram that needs a decision and
leaves it and the rest of the batch to the Python path (:class:`worker.net.udp.UdpSocket`), so
Python stays in charge of everything that is not the next packet of a known, healthy stream.

What the C may take is decided here, from the transport's state, at most once per wake-up and
only after something changed (:attr:`MediaIngress.version`): which producer streams are
enabled (a stream, not paused, no consumer waiting for a key frame, every active consumer
reachable through a socket), the remote address packets must come from, and the inbound SRTP
session. Ownership: this object owns the C struct and the arrays it points at; the pools, the
routing table, the socket's receive arrays and the streams' C state stay their owners'. The
counters of what the C took are added to the transport's and the ingress's own.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

from worker._fast import ffi, lib
from worker._fast.sockio import sockio_addr_set
from worker.keyframe import keyframe_codec

if TYPE_CHECKING:
    from worker._fast.forward import ForwardBatch, ForwardTable
    from worker._fast.sockio import RecvBatch
    from worker._fast.srtp import SrtpContext
    from worker.bufferpool import BufferPool, PoolSet
    from worker.media_ingress import MediaIngress
    from worker.net.udp import UdpSocket
    from worker.producer import Producer, ProducerStream

__all__ = ["FAST_COUNTERS", "FastIngress", "fill_stream", "new_ingress"]

# The C's counters, by the names the transport's own counters have.
FAST_COUNTERS: Final = (("rtpPacketsReceived", "rtp_received"),
                        ("rtpBytesReceived", "rtp_bytes"),
                        ("rtpPacketsForwarded", "forwarded"), ("srtpFailed", "srtp_failed"),
                        ("rtpSendDropped", "send_dropped"), ("rtpOutOfSlots", "out_of_slots"),
                        ("rtpStoreNoBuffer", "store_no_buffer"),
                        ("rtpPacketsFastPath", "rtp_received"))


class FastIngress:
    """The ``struct mw_ingress`` of one UDP socket and one media ingress."""

    __slots__ = ("_arrays", "_ingress", "_queue", "_streams", "_udp", "result", "struct",
                 "version")

    def __init__(self, udp: UdpSocket, ingress: MediaIngress, pools: PoolSet) -> None:
        self._udp = udp
        self._ingress = ingress
        self.struct, self._queue = new_ingress(udp.fd, udp.recv_batch, ingress.batch,
                                               ingress.table, pools["udpRecv"],
                                               pools["rtpPacket"])
        self._streams: Any = ffi.NULL
        self._arrays: list[Any] = []
        self.result: Any = ffi.new("struct mw_ingress_result *")
        self.version = -1  # the ingress's version the struct was last built from

    # -- per wake-up ---------------------------------------------------------------------------

    def run(self, now_ms: int) -> Any:
        """One C call: receive, take what needs no decision, fan out and send. Returns the
        ``struct mw_ingress_result``; datagrams ``[slow_from, received)`` are Python's, and
        then :meth:`release` gives the batch's slots back."""
        ingress = self._ingress
        if ingress.dirty:
            ingress.rebuild()
        if self.version != ingress.version:
            self.refresh()
        result = self.result
        if lib.mw_ingress_run(self.struct, now_ms, result) != 0:
            raise RuntimeError("mw_ingress_run refused its arguments (a bug)")
        return result

    def resume(self, start: int, now_ms: int) -> int:
        """Go on with the batch from datagram ``start`` (Python handled the one before);
        returns the next datagram Python must handle (the batch's size: none)."""
        ingress = self._ingress
        if ingress.dirty:
            ingress.rebuild()
        if self.version != ingress.version:
            self.refresh()
        result = self.result
        if lib.mw_ingress_resume(self.struct, start, now_ms, result) != 0:
            raise RuntimeError("mw_ingress_resume without a batch (a bug)")
        slow_from: int = result.slow_from
        return slow_from

    @property
    def enabled(self) -> bool:
        """Whether the C takes anything at all now."""
        return bool(self.struct.enabled)

    def release(self) -> None:
        lib.mw_ingress_release(self.struct)

    # -- what the C may take -------------------------------------------------------------------

    def refresh(self) -> None:
        """Rebuild the stream entries, the remote address and the SRTP session from the
        transport's state (after a routing or state change; not per packet)."""
        ingress = self._ingress
        transport = ingress.transport
        g = self.struct
        self.version = ingress.version
        remote = transport.fast_remote(self._udp)
        srtp = transport.srtp_in()
        g.enabled = 0
        g.has_remote = 0
        if remote is not None:
            try:
                sockio_addr_set(g.remote, remote[0], remote[1])
                g.has_remote = 1
            except ValueError:
                pass
        g.srtp = 1 if transport.srtp_required() else 0
        self._set_srtp(srtp)
        producers = [p for p in transport.producers.values() if p.stream is not None]
        entries = ffi.new("struct mw_ingress_stream[]", max(len(producers), 1))
        for entry, producer in zip(entries, producers, strict=False):
            self._fill(entry, producer)
        self._streams = entries
        g.streams, g.stream_count = entries, len(producers)
        g.enabled = 1 if not transport.closed and g.has_remote and (
            not g.srtp or srtp is not None) else 0

    def _set_srtp(self, srtp: SrtpContext | None) -> None:
        g = self.struct
        if srtp is None:
            g.srtp_in, g.api = ffi.NULL, ffi.NULL
            self._arrays = []
            return
        from worker._fast.srtp import srtp_api  # noqa: PLC0415 (the facade's one api)

        api = srtp_api()
        g.srtp_in, g.api = srtp.pointer, api.struct
        self._arrays = [srtp, api]  # keep the session and the api alive with the struct

    def _fill(self, entry: Any, producer: Producer) -> None:
        stream = producer.stream
        assert stream is not None
        fill_stream(entry, stream, producer.pt_map)
        table = self._ingress.table
        forward, reachable = _table_routes(table, stream.ssrc)
        entry.forward = 1 if forward and producer.consumers else 0
        entry.enabled = 1 if (not producer.paused and not producer.sync_waiters and reachable
                              and not producer.closed) else 0

    # -- counters ------------------------------------------------------------------------------

    def counter(self, name: str) -> int:
        """One of the C's counters (``struct mw_ingress`` field name)."""
        return int(getattr(self.struct, name))

    def close(self) -> None:
        """Nothing may be taken any more (the transport is closing)."""
        g = self.struct
        g.enabled = 0
        g.streams, g.stream_count = ffi.NULL, 0
        self._streams = ffi.NULL
        self._set_srtp(None)


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


def new_ingress(fd: int, batch: RecvBatch, fwd: ForwardBatch, table: ForwardTable,
                in_pool: BufferPool, out_pool: BufferPool) -> tuple[Any, tuple[Any, Any]]:
    """A ``struct mw_ingress`` for socket ``fd`` over these arrays (nothing enabled yet), and
    the queue arrays it points at (keep them with it)."""
    if batch.capacity != lib.MW_INGRESS_BATCH:
        raise ValueError(f"the socket's receive batch holds {batch.capacity} datagrams, "
                         f"the C path {lib.MW_INGRESS_BATCH}")
    g = ffi.new("struct mw_ingress *")
    g.fd = fd
    g.want = lib.MW_INGRESS_MIN_WANT
    g.in_pool, g.out_pool = in_pool.c_pool, out_pool.c_pool
    g.slots, g.lengths, g.addrs = batch.slots, batch.lengths, batch.addrs
    g.flags, g.kinds = batch.flags, batch.kinds
    g.table = table.struct
    g.fwd_in, g.fwd_out, g.free_slots = fwd.input, fwd.output, fwd.free
    g.area, g.fwd_result, g.send_result = fwd.area, fwd.result, fwd.send_result
    queue = (ffi.new("uint32_t[]", lib.MW_INGRESS_BATCH),
             ffi.new("uint32_t[]", lib.MW_INGRESS_BATCH))
    g.queue_slots, g.queue_lengths = queue
    return g, queue


def _table_routes(table: Any, ssrc: int) -> tuple[bool, bool]:
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
