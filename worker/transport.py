"""The base of every transport: identity, its router, producers and consumers, RTCP, close.

A transport owns its producers and consumers (closing it closes them), its RTP listener (which
producer a received packet belongs to) and its media ingress (:mod:`worker.media_ingress`).
Subclasses say how packets leave (:meth:`Transport.send_target`, :meth:`Transport.send_rtp`,
:meth:`Transport.send_rtcp`) and when media can flow (:meth:`Transport.media_ready`).

RTCP is terminated here as mediasoup does: every interval (about a second, randomised, the
first 500 ms after the transport can send) a compound packet carries an SR and SDES for each
consumer and an RR block for each producer stream; received RTCP is dispatched by SSRC to the
producer (SR, DLRR) or the consumer (RR blocks, NACK, PLI, FIR); REMB and transport-cc
feedback are counted (bandwidth estimation is not implemented yet).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, Final

from worker._fast import (
    Bye,
    ExtendedReport,
    Fir,
    Nack,
    Pli,
    ReceiverReport,
    Remb,
    RtcpPacket,
    SenderReport,
    SourceDescription,
    TransportFeedback,
    build_rtcp,
    parse_rtcp,
)
from worker._fast.forward import TwccCounter
from worker._fast.rtp import SlabRtp
from worker._fast.srtp import SrtpContext, SrtpError, protect_rtcp, protect_rtp
from worker.consumer import Consumer
from worker.entity import Context, Entity, handles, require_str
from worker.errors import WorkerError, WorkerTypeError
from worker.fast_ingress import FastRoute, FastSocket
from worker.media_ingress import MediaIngress, counters_of
from worker.producer import Producer, parse_trace_types
from worker.rtp_listener import RtpListener

if TYPE_CHECKING:
    from worker.net.udp import UdpSocket
    from worker.router import Router

__all__ = ["Transport"]

RTCP_INTERVAL_MS: Final = 1000
RTCP_FIRST_MS: Final = 500
RTCP_MTU: Final = 1200
TRACE_EVENT_TYPES: Final = frozenset({"probation", "bwe"})


class Transport(Entity):
    kind = "transport"
    transport_type: ClassVar[str]  # mediasoup's stats type, e.g. "webrtc-transport"
    pipe_consumers: ClassVar[bool] = False  # every consumer is a pipe consumer (PipeTransport)
    accepts_producer_send: ClassVar[bool] = False  # producers fed by the channel (Direct)

    def __init__(self, transport_id: str, ctx: Context,
                 on_closed: Callable[[Transport], None]) -> None:
        super().__init__(transport_id, ctx)
        self._on_closed = on_closed
        self.router: Router | None = None
        self.producers: dict[str, Producer] = {}
        self.consumers: dict[str, Consumer] = {}
        self.consumers_by_ssrc: dict[int, Consumer] = {}
        self.rtp_listener = RtpListener()
        self._ingress: MediaIngress | None = None
        self._fast_paths: list[FastRoute] = []  # our routes in C receive paths
        self._bytes_received = 0  # what the Python path saw; the C path counts its own
        self.twcc_counter = TwccCounter()
        self.trace_types: set[str] = set()
        self._next_mid = 0
        self._rtcp_timer: Any = None
        self.rtcp_received = 0
        self.rtcp_malformed = 0
        self.rtcp_sent = 0
        self.remb_received = 0
        self.transport_cc_received = 0
        self.rtcp_unknown_ssrc = 0

    @property
    def ingress(self) -> MediaIngress:
        """The media path of what this transport receives, made on first use (a transport that
        never receives media never allocates its arrays)."""
        ingress = self._ingress
        if ingress is None:
            ingress = self._ingress = MediaIngress(self, self.ctx.pools)
        return ingress

    # -- what subclasses provide ----------------------------------------------------------------

    def media_ready(self) -> bool:
        """Whether media can be sent now (ICE selected a tuple and SRTP keys exist)."""
        return False

    def send_target(self, consumer: object = None) -> tuple[int, tuple[str, int]] | None:
        """(socket fd, or a negative deferred-sink id, and the remote address) where the C
        fan-out sends ``consumer``'s packets, or None when there is nowhere to send."""
        return None

    def srtp_out(self) -> SrtpContext | None:
        return None

    def srtp_in(self) -> SrtpContext | None:
        return None

    def srtp_required(self) -> bool:
        """Whether RTP arriving on this transport is SRTP (the C receive path unprotects it
        with :meth:`srtp_in`, and takes nothing while that is None)."""
        return self.srtp_in() is not None

    def fast_remote(self, udp: object) -> tuple[str, int] | None:
        """The one address whose RTP the C receive path of socket ``udp`` may take, or None
        (the C takes nothing): only transports with a fixed remote address have one."""
        return None

    def receive_udp_rtp(self, sock: UdpSocket, length: int, flush_hook: Any) -> None:
        """An RTP packet the socket is delivering (in its current slot): into the media path,
        unprotected with :meth:`srtp_in` unless the C receive path already did it; then the
        socket's C receive path may take our next packets (:meth:`attach_fast_path`)."""
        srtp = None if sock.current_unprotected else self.srtp_in()
        self.ingress.receive(sock.current_slot, length, srtp, flush_hook)
        if not self.closed:
            self.attach_fast_path(sock)

    @property
    def bytes_received(self) -> int:
        """What the Python path counted (``_bytes_received``) and what the C took."""
        return self._bytes_received + self.fast_bytes_received()

    def attach_fast_path(self, udp: UdpSocket) -> None:
        """Let the C receive path of socket ``udp`` (:mod:`worker.fast_ingress`) take our
        media (once per socket; the socket may be a WebRtcServer's, shared)."""
        if any(route.socket.udp is udp for route in self._fast_paths):
            return
        sock = udp.fast
        if sock is None:
            sock = udp.fast = FastSocket(udp, self.ctx.pools)
        route = FastRoute(sock, self.ingress)
        self.ingress.fast_paths.append(route)
        self._fast_paths.append(route)

    def detach_fast_paths(self) -> None:
        """The C takes nothing more of ours (before our sockets close or we go); a socket
        left without routes goes back to the Python path."""
        for route in self._fast_paths:
            route.close()
            if self._ingress is not None and route in self._ingress.fast_paths:
                self._ingress.fast_paths.remove(route)
            sock = route.socket
            if not sock.routes and sock.udp.fast is sock:
                sock.udp.fast = None
        self._fast_paths.clear()

    def fast_bytes_received(self) -> int:
        """The bytes the C receive paths took (the transport's own count has the rest)."""
        return sum(route.counter("bytes") for route in self._fast_paths)

    def media_changed(self) -> None:
        """A producer's state changed in a way that decides what the C receive path may take
        (paused, a consumer waiting for a key frame, a new stream)."""
        if self._ingress is not None:
            self._ingress.state_changed()

    def forget_srtp_streams(self, inbound: Iterable[int | None],
                            outbound: Iterable[int | None]) -> None:
        """A producer or consumer went away: drop libsrtp's per-SSRC state for its SSRCs."""
        for ctx, ssrcs in ((self.srtp_in(), inbound), (self.srtp_out(), outbound)):
            if ctx is not None:
                for ssrc in ssrcs:
                    if ssrc is not None:
                        ctx.remove_stream(ssrc)

    def send_rtp(self, packet: bytes, consumer: object = None) -> bool:
        """Protect and send one RTP packet of ``consumer`` (retransmissions); False if it
        could not go."""
        return False

    def protected(self, packet: bytes, *, rtcp: bool) -> bytes | None:
        """``packet`` protected with :meth:`srtp_out` (SRTCP when ``rtcp``), as it is when
        the transport has no SRTP; None when libsrtp refuses it (control traffic and
        retransmissions: the fan-out protects in its C batch)."""
        ctx = self.srtp_out()
        if ctx is None:
            return packet
        try:
            return protect_rtcp(ctx, packet) if rtcp else protect_rtp(ctx, packet)
        except SrtpError:
            return None

    def receive_rtp_copy(self, data: bytes | memoryview, srtp: SrtpContext | None) -> None:
        """A packet that is not in a receive slot (ICE-TCP frame, channel notification): copy
        it into a ``udpRecv`` slot and run the media path on it at once."""
        pool = self.ctx.pools["udpRecv"]
        ingress = self.ingress
        if len(data) > pool.slot_size:
            ingress.malformed += 1
            return
        slot = pool.acquire()
        if slot is None:
            ingress.out_of_slots += 1
            return
        try:
            pool.view(slot)[: len(data)] = data
            ingress.receive(slot, len(data), srtp, None)
        finally:
            pool.release(slot)

    def send_rtcp(self, packet: bytes) -> bool:
        """Protect and send one compound RTCP packet."""
        return False

    # -- identity and dump ----------------------------------------------------------------------

    def base_dump(self) -> dict[str, Any]:
        """The fields every transport's dump has (mediasoup's ``Transport::FillBuffer``)."""
        return {
            "id": self.id,
            "direct": False,
            "producerIds": list(self.producers),
            "consumerIds": list(self.consumers),
            "mapSsrcConsumerId": [{"key": ssrc, "value": c.id}
                                  for ssrc, c in self.consumers_by_ssrc.items()
                                  if ssrc == c.ssrc],
            "mapRtxSsrcConsumerId": [{"key": ssrc, "value": c.id}
                                     for ssrc, c in self.consumers_by_ssrc.items()
                                     if ssrc == c.rtx_ssrc],
            "dataProducerIds": [],
            "dataConsumerIds": [],
            "recvRtpHeaderExtensions": {},
            "rtpListener": self.rtp_listener.dump(),
            "maxMessageSize": 262144,
            "traceEventTypes": sorted(self.trace_types),
        }

    def _router(self) -> Router:
        if self.router is None:
            raise WorkerError("transport has no router")
        return self.router

    # -- producers and consumers ----------------------------------------------------------------

    @handles("produce")
    def produce(self, data: dict[str, Any]) -> dict[str, Any]:
        producer_id = require_str(data, "producerId")
        self.ctx.registry.check_free(producer_id)
        router = self._router()
        producer = Producer(producer_id, self.ctx, self, data, router.rtp_capabilities,
                            self._producer_closed)
        try:
            self.rtp_listener.add_producer(producer)
        except WorkerError:
            producer.close()
            raise
        self.producers[producer_id] = producer
        router.producer_added(producer)
        self.ingress.mark_dirty()
        return {"type": "simple"}

    @handles("consume")
    def consume(self, data: dict[str, Any]) -> dict[str, Any]:
        consumer_id = require_str(data, "consumerId")
        self.ctx.registry.check_free(consumer_id)
        producer_id = require_str(data, "producerId")
        producer = self._router().producers.get(producer_id)
        if producer is None:
            raise WorkerError(f"producer not found [producerId:{producer_id}]")
        mid = data.get("mid")
        if mid is None:
            mid = str(self._next_mid)
        elif not isinstance(mid, str) or not mid:
            raise WorkerTypeError("invalid mid (a non-empty string)")
        consumer = Consumer(consumer_id, self.ctx, self, producer, data, mid,
                            self._consumer_closed)
        if data.get("mid") is None:
            self._next_mid += 1
        self.consumers[consumer_id] = consumer
        self.consumers_by_ssrc[consumer.ssrc] = consumer
        if consumer.rtx_ssrc is not None:
            self.consumers_by_ssrc[consumer.rtx_ssrc] = consumer
        producer.consumers[consumer_id] = consumer
        consumer.start()
        return {"kind": consumer.media_kind, "rtpParameters": consumer.rtp_parameters,
                "type": consumer.type, "paused": consumer.paused,
                "producerPaused": consumer.producer_paused, "score": consumer.score(),
                "preferredLayers": None}

    @handles("closeProducer")
    def close_producer(self, data: dict[str, Any]) -> None:
        producer_id = require_str(data, "producerId")
        producer = self.producers.get(producer_id)
        if producer is None:
            raise WorkerError(f"producer not found [producerId:{producer_id}]")
        producer.close()

    @handles("closeConsumer")
    def close_consumer(self, data: dict[str, Any]) -> None:
        consumer_id = require_str(data, "consumerId")
        consumer = self.consumers.get(consumer_id)
        if consumer is None:
            raise WorkerError(f"consumer not found [consumerId:{consumer_id}]")
        consumer.close()

    def _producer_closed(self, producer: Producer) -> None:
        self.producers.pop(producer.id, None)
        stream = producer.stream
        if stream is not None and not self.closed:
            self.forget_srtp_streams((stream.ssrc, stream.rtx_ssrc), ())
        self.rtp_listener.remove_producer(producer)
        self.ingress.mark_dirty()
        if self.router is not None:
            self.router.producer_removed(producer)

    def _consumer_closed(self, consumer: Consumer) -> None:
        self.consumers.pop(consumer.id, None)
        if not self.closed:
            self.forget_srtp_streams((), (consumer.ssrc, consumer.rtx_ssrc))
        for ssrc in (consumer.ssrc, consumer.rtx_ssrc):
            if ssrc is not None and self.consumers_by_ssrc.get(ssrc) is consumer:
                del self.consumers_by_ssrc[ssrc]

    def find_producer_by_header(self, rtp: SlabRtp, offset: int) -> Producer | None:
        """A packet with an SSRC not yet known: look for its MID, then its RID."""
        listener = self.rtp_listener
        if not listener.mid_table and not listener.rid_table:
            return None
        view = self.ingress.slab_view
        mid = rid = None
        for producer in self.producers.values():
            for ext_id, is_mid in ((producer.mid_ext_id, True), (producer.rid_ext_id, False)):
                if not ext_id:
                    continue
                found = rtp.extension(ext_id)
                if found is None:
                    continue
                start = offset + found[0]
                try:
                    value = bytes(view[start:start + found[1]]).decode("ascii")
                except UnicodeDecodeError:
                    continue
                if is_mid:
                    mid = value
                else:
                    rid = value
            if mid is not None or rid is not None:
                break
        return listener.find(rtp.header.ssrc, mid, rid)

    def send_path_changed(self) -> None:
        """Where this transport sends changed (tuple, keys): every table naming it is stale."""
        for consumer in list(self.consumers.values()):
            consumer.transport_ready_changed()
        if self.media_ready():
            self._start_rtcp_timer()

    # -- RTCP in ----------------------------------------------------------------------------------

    def receive_rtcp(self, data: bytes | memoryview) -> None:
        packets, error = parse_rtcp(data)
        self.rtcp_received += 1
        if error is not None:
            self.rtcp_malformed += 1
        for packet in packets:
            self._dispatch_rtcp(packet)

    def _dispatch_rtcp(self, packet: RtcpPacket) -> None:
        if isinstance(packet, SenderReport):
            producer = self.rtp_listener.ssrc_table.get(packet.ssrc)
            if producer is not None:
                producer.receive_sender_report(packet.ssrc, packet.ntp_timestamp,
                                               packet.rtp_timestamp)
            self._report_blocks(packet.reports)
        elif isinstance(packet, ReceiverReport):
            self._report_blocks(packet.reports)
        elif isinstance(packet, Nack):
            consumer = self.consumers_by_ssrc.get(packet.media_ssrc)
            if consumer is None or packet.media_ssrc != consumer.ssrc:
                self.rtcp_unknown_ssrc += 1
            else:
                consumer.receive_nack(packet.lost)
        elif isinstance(packet, Pli):
            self._key_frame_request(packet.media_ssrc, fir=False)
        elif isinstance(packet, Fir):
            for entry in packet.entries:
                self._key_frame_request(entry.ssrc, fir=True)
        elif isinstance(packet, Remb):
            self.remb_received += 1
        elif isinstance(packet, TransportFeedback):
            self.transport_cc_received += 1
        elif isinstance(packet, ExtendedReport):
            for block in packet.dlrr:
                producer = self.rtp_listener.ssrc_table.get(block.ssrc)
                if producer is not None:
                    producer.receive_dlrr(block.lrr, block.dlrr)
            rrt = packet.rrt_ntp
            if rrt is not None:
                now = self._now()
                for consumer in self.consumers.values():
                    consumer.stats.receive_rrt(rrt, now)
        elif isinstance(packet, (SourceDescription, Bye)):
            pass  # CNAMEs come from the parameters; a BYE changes nothing we track

    def _report_blocks(self, blocks: Iterable[Any]) -> None:
        for block in blocks:
            consumer = self.consumers_by_ssrc.get(block.ssrc)
            if consumer is not None and block.ssrc == consumer.ssrc:
                consumer.receive_report_block(block)
            elif consumer is None:
                self.rtcp_unknown_ssrc += 1

    def _key_frame_request(self, media_ssrc: int, fir: bool) -> None:
        consumer = self.consumers_by_ssrc.get(media_ssrc)
        if consumer is None or media_ssrc != consumer.ssrc:
            self.rtcp_unknown_ssrc += 1
        else:
            consumer.receive_key_frame_request(fir)

    # -- RTCP out ---------------------------------------------------------------------------------

    def send_rtcp_packets(self, packets: list[RtcpPacket]) -> None:
        """Build and send compound packets of at most one MTU each (control traffic)."""
        current: list[bytes] = []
        size = 0
        for packet in packets:
            data = build_rtcp([packet])
            if current and size + len(data) > RTCP_MTU:
                self._send_compound(b"".join(current))
                current, size = [], 0
            current.append(data)
            size += len(data)
        if current:
            self._send_compound(b"".join(current))

    def _send_compound(self, data: bytes) -> None:
        if self.send_rtcp(data):
            self.rtcp_sent += 1

    def _now(self) -> int:
        return int(self.ctx.loop.time() * 1000)

    def _start_rtcp_timer(self) -> None:
        if self._rtcp_timer is None and not self.closed:
            self._rtcp_timer = self.ctx.loop.call_later(RTCP_FIRST_MS / 1000, self._on_rtcp_timer)

    def _on_rtcp_timer(self) -> None:
        self._rtcp_timer = None
        if self.closed:
            return
        if self.media_ready():
            self.send_reports()
        interval = RTCP_INTERVAL_MS * random.uniform(0.5, 1.5)  # jitter, not a secret
        self._rtcp_timer = self.ctx.loop.call_later(interval / 1000, self._on_rtcp_timer)

    def send_reports(self) -> None:
        """SR + SDES for each consumer, RR blocks for each producer stream."""
        now = self._now()
        packets: list[RtcpPacket] = []
        chunks = []
        for consumer in self.consumers.values():
            report = consumer.sender_report(now)
            if report is not None:
                packets.append(report[0])
                chunks.append(report[1])
        if chunks:
            packets.append(SourceDescription(chunks))
        blocks = [b for producer in self.producers.values() for b in producer.report_blocks(now)]
        for i in range(0, len(blocks), 31):
            sender = next(iter(self.consumers_by_ssrc), 1)
            packets.append(ReceiverReport(sender, blocks[i:i + 31]))
        if packets:
            self.send_rtcp_packets(packets)

    # -- stats, trace -----------------------------------------------------------------------------

    @handles("getStats")
    def get_stats(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        return [self.stats()]

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = {"type": self.transport_type, "transportId": self.id,
                                 "timestamp": self._now()}
        stats.update(counters_of(self._ingress))
        stats.update(rtcpPacketsReceived=self.rtcp_received, rtcpPacketsSent=self.rtcp_sent,
                     rtcpMalformed=self.rtcp_malformed, rtcpUnknownSsrc=self.rtcp_unknown_ssrc,
                     rembReceived=self.remb_received,
                     transportCcReceived=self.transport_cc_received)
        return stats

    @handles("enableTraceEvent")
    def enable_trace_event(self, data: dict[str, Any]) -> None:
        self.trace_types = parse_trace_types(data, TRACE_EVENT_TYPES)

    # -- close ------------------------------------------------------------------------------------

    @handles("close")
    def close_request(self, data: dict[str, Any]) -> None:
        self.close()

    def close_children(self) -> None:
        """Its consumers close silently; its producers close, and their consumers on other
        transports hear ``producerclose``."""
        for consumer in list(self.consumers.values()):
            consumer.close()
        for producer in list(self.producers.values()):
            producer.close()

    def release(self) -> None:
        if self._rtcp_timer is not None:
            self._rtcp_timer.cancel()
            self._rtcp_timer = None
        self.release_transport()
        if self._ingress is not None:
            self._ingress.close()
        self._on_closed(self)

    def release_transport(self) -> None:
        """Free what this kind of transport owns (subclasses)."""
