"""The media path of one receiving transport: SRTP in, producers, the C fan-out, send.

A transport hands each received RTP packet, still in its ``udpRecv`` pool slot, to
:meth:`MediaIngress.receive`. Per input packet Python does only what must be decided per
packet: SRTP unprotect in place (one C call), one header parse, the producer look-up (SSRC,
then MID/RID) and the producer's stream bookkeeping (:meth:`worker.producer.Producer.receive_rtp`).
The packet's slot is then queued. At the end of the socket's receive batch (or when the queue
is full, or before a consumer re-synchronises) :meth:`MediaIngress.flush` makes one C call that
fans the whole queue out to every consumer of this transport's producers (rewrite, SRTP
protect, into ``rtpPacket`` slots) and one more that sends them, one ``sendmmsg`` per output
socket. Per output packet Python does nothing, except for consumers reached over ICE-TCP,
whose outputs it frames and writes to their connection.

Ownership: queued input slots belong to the socket's batch, which outlives the flush; output
slots are taken from the ``rtpPacket`` pool for one flush and given back before it returns.
Video packets are also copied once (not per consumer) into an ``rtpPacket`` slot held by the
producer's retransmission store until it evicts them.

The forward table is rebuilt lazily (at the next flush) when the routing changes: a consumer
added or closed, a stream learned, a consumer's transport gaining or losing its send path.
Pause, resume and re-synchronisation change one entry in place.

A transport on its own UDP socket also has the C receive path (:mod:`worker.fast_ingress`),
which does all of the above for the packets that need no decision, in one C call per wake-up,
with this ingress's table and output arrays; everything that decides what that path may take
marks its routes stale (:meth:`MediaIngress.state_changed`), and its counters are added to
these.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from worker._fast import ForwardBatch, ForwardTable, ffi
from worker._fast.forward import ConsumerState, abs_send_time
from worker._fast.rtp import SlabRtp
from worker._fast.srtp import SrtpBatch, SrtpContext
from worker.bufferpool import PoolSet
from worker.fast_ingress import FAST_COUNTERS
from worker.logger import Logger
from worker.retransmission_buffer import RetransmissionBuffer

if TYPE_CHECKING:
    from worker.consumer import Consumer
    from worker.fast_ingress import FastRoute
    from worker.transport import Transport

__all__ = ["DEFERRED_SINKS", "INGRESS_QUEUE", "FlushQueue", "MediaIngress", "counters_of",
           "new_sink_id"]

INGRESS_QUEUE: Final = 64  # input packets per fan-out call (a socket's receive batch)
FORWARD_CAPACITY: Final = 1024  # output packets per fan-out call

# Destinations the C does not send to (negative "fd"s in a forward table): ICE-TCP
# connections. Each maps to the function that frames and writes one output packet; the
# transport that registered it removes it when the connection stops being its send path.
DEFERRED_SINKS: dict[int, Callable[[memoryview], None]] = {}
_next_sink = [0]


def new_sink_id() -> int:
    """A fresh negative destination id for :data:`DEFERRED_SINKS`."""
    _next_sink[0] += 1
    return -1 - _next_sink[0]


class FlushQueue:
    """The ingresses that queued packets during one socket's receive batch; the socket's
    ``on_batch_end`` flushes them while the batch's slots are still lent. A flush that raises
    (a bug) is logged and the others still run."""

    __slots__ = ("_logger", "_pending")

    def __init__(self, logger: Logger) -> None:
        self._logger = logger
        self._pending: list[MediaIngress] = []

    def add(self, ingress: MediaIngress) -> None:
        self._pending.append(ingress)

    def flush(self) -> None:
        pending = self._pending
        if not pending:
            return
        self._pending = []
        for ingress in pending:
            if not ingress.closed:
                try:
                    ingress.flush()
                except Exception as exc:  # the other transports must still flush
                    self._logger.error(f"media flush failed: {exc!r}")


def counters_of(ingress: MediaIngress | None) -> dict[str, int]:
    """The media path's counters of ``ingress`` (the C receive path's included); all 0 when a
    transport never made one."""
    if ingress is None:
        return dict.fromkeys(_COUNTER_NAMES, 0)
    counters = {"rtpPacketsReceived": ingress.rtp_received,
                "rtpBytesReceived": ingress.rtp_bytes_received,
                "rtpPacketsForwarded": ingress.forwarded, "srtpFailed": ingress.srtp_failed,
                "rtpMalformed": ingress.malformed, "rtpUnknownSsrc": ingress.unknown_ssrc,
                "rtpSendDropped": ingress.send_dropped, "rtpOutOfSlots": ingress.out_of_slots,
                "rtpStoreNoBuffer": ingress.store_no_buffer, "rtpPacketsFastPath": 0}
    for fast in ingress.fast_paths:
        for name, field in FAST_COUNTERS:
            counters[name] += fast.counter(field)
    return counters


_COUNTER_NAMES: Final = ("rtpPacketsReceived", "rtpBytesReceived", "rtpPacketsForwarded",
                         "srtpFailed", "rtpMalformed", "rtpUnknownSsrc", "rtpSendDropped",
                         "rtpOutOfSlots", "rtpStoreNoBuffer", "rtpPacketsFastPath")


class MediaIngress:
    """The queue, the forward table and the C batch of one receiving transport."""

    def __init__(self, transport: Transport, pools: PoolSet) -> None:
        self.transport = transport
        self._in_pool = pools["udpRecv"]
        self._out_pool = pools["rtpPacket"]
        self.slot_size = self._in_pool.slot_size
        self.slab_view = memoryview(self._in_pool.slab)
        self._out_view = memoryview(self._out_pool.slab)
        self.rtp = SlabRtp(self.slab_view)
        self._srtp = SrtpBatch(self.slab_view, 1)
        self._srtp.capacities[0] = self.slot_size
        self.table = ForwardTable()
        self.batch = ForwardBatch(self.slab_view, self.slot_size, self._out_view,
                                  self._out_pool.slot_size, FORWARD_CAPACITY)
        self._slots: Any = ffi.new("uint32_t[]", INGRESS_QUEUE)
        self._lengths: Any = ffi.new("uint32_t[]", INGRESS_QUEUE)
        self._count = 0
        self.dirty = True  # the table must be rebuilt before the next fan-out
        self.fast_paths: list[FastRoute] = []  # the C receive paths using this ingress
        self._flush_hook: Any = None
        self.closed = False
        # counters (transport dump and stats)
        self.rtp_received = 0
        self.rtp_bytes_received = 0
        self.srtp_failed = 0
        self.malformed = 0
        self.unknown_ssrc = 0
        self.forwarded = 0
        self.forwarded_bytes = 0
        self.send_dropped = 0
        self.out_of_slots = 0
        self.store_no_buffer = 0

    # -- per input packet ----------------------------------------------------------------------

    def receive(self, slot: int, length: int, srtp: SrtpContext | None,
                flush_hook: Any = None) -> None:
        """One RTP packet in ``udpRecv`` slot ``slot``; ``flush_hook(ingress)`` registers this
        ingress to be flushed at the end of the socket's batch (None: flush now)."""
        offset = slot * self.slot_size
        if srtp is not None:
            batch = self._srtp
            batch.offsets[0] = offset
            batch.lengths[0] = length
            if batch.unprotect(1, srtp) != 1:
                self.srtp_failed += 1  # authentication, replay, or a packet libsrtp refused
                return
            length = batch.lengths[0]
        rtp = self.rtp
        if rtp.parse(offset, length):
            self.malformed += 1
            return
        self.rtp_received += 1
        self.rtp_bytes_received += length
        h = rtp.header
        transport = self.transport
        producer = transport.rtp_listener.ssrc_table.get(h.ssrc)
        if producer is None:
            producer = transport.find_producer_by_header(rtp, offset)
            if producer is None:
                self.unknown_ssrc += 1
                return
        had_stream = producer.stream is not None
        length = producer.receive_rtp(rtp, offset, length, self)
        if not had_stream and producer.stream is not None:
            self.mark_dirty()
        if length <= 0 or not producer.consumers:
            return
        count = self._count
        self._slots[count] = slot
        self._lengths[count] = length
        self._count = count + 1
        if self._count == INGRESS_QUEUE or flush_hook is None:
            self.flush()
        elif count == 0:
            flush_hook(self)

    def store(self, store: RetransmissionBuffer[int], offset: int, length: int, seq: int,
              timestamp: int, ssrc: int) -> None:
        """Keep a copy of the packet at ``offset`` for its consumers' NACKs."""
        slot = self._out_pool.acquire()
        if slot is None:
            self.store_no_buffer += 1
            return
        start = slot * self._out_pool.slot_size
        self._out_view[start:start + length] = self.slab_view[offset:offset + length]
        if not store.insert(seq, timestamp, slot, length, ssrc):
            self._out_pool.release(slot)

    # -- the fan-out ---------------------------------------------------------------------------

    def flush(self) -> None:
        """Fan out and send every queued packet (one C call each, a few if the queue needs
        more output slots than one call takes)."""
        count = self._count
        if not count:
            return
        self._count = 0
        if self.dirty:
            self.rebuild()
        consumers = len(self.table)
        if not consumers:
            return
        self.table.abs_send_time = abs_send_time(time.time())
        start = 0
        while start < count:
            want = min(FORWARD_CAPACITY, (count - start) * consumers)
            free = self._out_pool.acquire_batch(want)
            if not free:
                self.out_of_slots += count - start
                return
            try:
                self.batch.run(self.table, self._slots + start, self._lengths + start,
                               count - start, free)
                self._send()
                handled = self.batch.result.stopped_at
            finally:
                self._out_pool.release_batch(free)
            if handled == 0:
                self.out_of_slots += count - start
                return
            start += handled

    def _send(self) -> None:
        result = self.batch.result
        self.forwarded += result.outputs
        if not result.outputs:
            return
        sent = self.batch.send(self.table)
        self.send_dropped += sent.dropped + sent.left
        if sent.deferred:
            fds = self.table.dest_fds
            dest_index = self.batch.dest_index
            for k in sent.deferred:
                sink = DEFERRED_SINKS.get(fds[dest_index[k]])
                if sink is not None:
                    sink(self.batch.view(k))

    def rebuild(self) -> None:
        """The forward table from the transport's producers and their consumers."""
        producers: dict[int, list[Any]] = {}
        for producer in self.transport.producers.values():
            stream = producer.stream
            if stream is None or not producer.consumers:
                continue
            producers[stream.ssrc] = [c.forward_spec() for c in producer.consumers.values()]
        self.table.update(producers)
        self.dirty = False
        self.state_changed()

    # -- control -------------------------------------------------------------------------------

    def mark_dirty(self) -> None:
        self.dirty = True
        self.state_changed()

    def state_changed(self) -> None:
        """Something that decides what the C receive path may take changed (the routing, a
        producer paused or waiting for a key frame, the transport's remote or keys): it looks
        again before its next run."""
        for route in self.fast_paths:
            route.mark_stale()

    def _known(self, consumer: Consumer) -> bool:
        if self.dirty:
            return False
        try:
            self.table.state_raw(consumer.id)
        except KeyError:
            self.mark_dirty()
            return False
        return True

    def set_paused(self, consumer: Consumer, paused: bool) -> None:
        self.state_changed()
        if self._known(consumer):
            self.table.set_paused(consumer.id, paused)

    def set_offsets(self, consumer: Consumer, seq_offset: int) -> None:
        self.state_changed()
        if self._known(consumer):
            self.table.set_offsets(consumer.id, seq_offset, 0)

    def consumer_state(self, consumer: Consumer) -> ConsumerState | None:
        try:
            return self.table.state(consumer.id)
        except KeyError:
            return None

    def counters(self) -> dict[str, int]:
        """The media path's counters, as transport stats and dumps report them."""
        return counters_of(self)

    def close(self) -> None:
        """Drop the queue and the table (the producers' stores are theirs to close)."""
        self._count = 0
        for route in self.fast_paths:
            route.close()
        self.fast_paths.clear()
        self.table.update({})
        self.closed = True
