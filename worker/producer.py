"""Producer: media an endpoint sends into a router through one transport.

A producer validates its endpoint's ``rtpParameters`` and maps them onto the router
(:mod:`worker.ortc_produce`): payload types, header-extension ids and, for the consumers,
the consumable parameters. It owns the receive side of its stream (:class:`ProducerStream`):
statistics and score, the NACK generator, the key-frame requests towards the endpoint, and
the store that answers its consumers' NACKs. One encoding only: simulcast and SVC producers
are refused with ``UnsupportedError``.

The per-packet work (:meth:`Producer.receive_rtp`) runs once per received packet, after SRTP:
it restores RTX packets, updates the stream, stores video packets for retransmission and
tells the ingress whether to forward. The forwarding itself (consumers' rewrite, SRTP, send)
is the C batch driven by :mod:`worker.media_ingress`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from worker.entity import Context, Entity, handles
from worker.errors import UnsupportedError, WorkerTypeError
from worker.keyframe import keyframe_detector
from worker.keyframe_requests import KeyFrameRequestManager
from worker.nack_generator import NackGenerator
from worker.ortc_produce import (
    RtpParameters,
    get_consumable_rtp_parameters,
    get_producer_rtp_parameters_mapping,
    validate_rtp_parameters,
)
from worker.retransmission_buffer import RetransmissionBuffer, max_age_ms_for_kind
from worker.rtp_stream_stats import RecvStreamStats

if TYPE_CHECKING:
    from worker._fast.rtp import SlabRtp
    from worker.consumer import Consumer
    from worker.media_ingress import MediaIngress
    from worker.transport import Transport

__all__ = ["Producer", "ProducerStream"]

MID_URI: Final = "urn:ietf:params:rtp-hdrext:sdes:mid"
RID_URI: Final = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
RRID_URI: Final = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
SEND_NACK_DELAY_MS: Final = 10
TICK_MS: Final = 40  # with a NACK generator (its retry timer's period)
SLOW_TICK_MS: Final = 250  # otherwise: key-frame request retries, inactivity, scores
TRACE_EVENT_TYPES: Final = frozenset({"rtp", "keyframe", "nack", "pli", "fir", "sr"})


def feedback_of(codec: Mapping[str, Any]) -> set[tuple[str, str]]:
    return {(fb.get("type", ""), fb.get("parameter", "") or "")
            for fb in codec.get("rtcpFeedback", [])}


def is_rtx(codec: Mapping[str, Any]) -> bool:
    return str(codec.get("mimeType", "")).lower().endswith("/rtx")


class ProducerStream:
    """The receive side of a producer's encoding: stats and score, NACKs, key frames, store."""

    __slots__ = ("clock_rate", "detector", "kind", "media_pt", "mime_type", "nack",
                 "rtx_pt", "rtx_ssrc", "ssrc", "stats", "store", "use_fir", "use_nack",
                 "use_pli")

    def __init__(self, producer: Producer, ssrc: int, now: int) -> None:
        codec = producer.media_codec
        self.ssrc = ssrc
        self.kind = producer.media_kind
        self.mime_type = str(codec["mimeType"])
        self.clock_rate = int(codec["clockRate"])
        self.media_pt = int(codec["payloadType"])
        self.rtx_pt = producer.rtx_pt
        self.rtx_ssrc = producer.rtx_ssrc
        feedback = feedback_of(codec)
        self.use_nack = ("nack", "") in feedback
        self.use_pli = ("nack", "pli") in feedback
        self.use_fir = ("ccm", "fir") in feedback
        use_dtx = bool(producer.encoding.get("dtx"))
        self.stats = RecvStreamStats(ssrc, self.clock_rate, now, kind=self.kind,
                                     mime_type=self.mime_type, rtx_ssrc=self.rtx_ssrc,
                                     use_dtx=use_dtx)
        self.nack = (NackGenerator(SEND_NACK_DELAY_MS)
                     if self.use_nack and self.kind == "video" else None)
        self.detector = keyframe_detector(self.mime_type) if self.kind == "video" else None
        pool = producer.ctx.pools["rtpPacket"]
        self.store: RetransmissionBuffer[int] | None = (
            RetransmissionBuffer(self.clock_rate, max_age_ms_for_kind(self.kind), None, pool=pool)
            if self.kind == "video" else None)  # evictions go straight back to the pool, in C

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


class Producer(Entity):
    kind = "producer"

    def __init__(self, producer_id: str, ctx: Context, transport: Transport,
                 data: dict[str, Any], router_caps: dict[str, Any],
                 on_closed: Callable[[Producer], None]) -> None:
        super().__init__(producer_id, ctx)
        kind = data.get("kind")
        if kind not in ("audio", "video"):
            raise WorkerTypeError("invalid kind (audio or video)")
        self.media_kind: str = kind
        params = validate_rtp_parameters(data.get("rtpParameters"))
        if len(params["encodings"]) != 1:
            raise UnsupportedError("simulcast (several encodings) is not implemented yet")
        self.encoding: dict[str, Any] = dict(params["encodings"][0])
        if self.encoding.get("scalabilityMode") not in (None, "L1T1", "S1T1") and \
                not str(self.encoding.get("scalabilityMode", "")).startswith("L1T"):
            raise UnsupportedError("SVC (spatial layers) is not implemented yet")
        self.rtp_parameters: RtpParameters = params
        self.rtp_mapping = get_producer_rtp_parameters_mapping(params, router_caps)
        self.consumable_rtp_parameters = get_consumable_rtp_parameters(
            kind, params, router_caps, self.rtp_mapping)
        delay = data.get("keyFrameRequestDelay", 0) or 0
        if not isinstance(delay, int) or isinstance(delay, bool) or delay < 0:
            raise WorkerTypeError("invalid keyFrameRequestDelay (milliseconds, >= 0)")
        paused = data.get("paused", False)
        if not isinstance(paused, bool):
            raise WorkerTypeError("invalid paused (a boolean)")
        self.paused = paused
        self.transport = transport
        self._on_closed = on_closed
        codecs = params["codecs"]
        pt = self.encoding.get("codecPayloadType", codecs[0]["payloadType"])
        self.media_codec: dict[str, Any] = dict(next(c for c in codecs
                                                     if c["payloadType"] == pt))
        rtx_codec = next((c for c in codecs if is_rtx(c)
                          and c.get("parameters", {}).get("apt") == pt), None)
        self.rtx_pt: int | None = int(rtx_codec["payloadType"]) if rtx_codec else None
        rtx = self.encoding.get("rtx")
        self.rtx_ssrc: int | None = int(rtx["ssrc"]) if rtx and self.rtx_pt is not None else None
        self.mid: str | None = params.get("mid")
        self.pt_map = {m["payloadType"]: m["mappedPayloadType"]
                       for m in self.rtp_mapping["codecs"]}
        self.ext_map = {m["id"]: m["mappedId"] for m in self.rtp_mapping["headerExtensions"]}
        ids = {ext["uri"]: ext["id"] for ext in params["headerExtensions"]}
        self.mid_ext_id = ids.get(MID_URI, 0)
        self.rid_ext_id = ids.get(RID_URI, 0)
        self.rrid_ext_id = ids.get(RRID_URI, 0)
        self.stream: ProducerStream | None = None
        self.consumers: dict[str, Consumer] = {}
        self.sync_waiters: list[Consumer] = []
        self.keyframes = KeyFrameRequestManager(delay)
        self.trace_types: set[str] = set()
        self.packets_discarded = 0
        self._last_score = 0
        self._clock = ctx.loop.time
        self._timer: Any = None
        ctx.registry.register(self)
        self._schedule_tick()

    # -- identity for the RTP listener ----------------------------------------------------

    def announced_ssrcs(self) -> list[int]:
        ssrcs = [self.encoding["ssrc"]] if "ssrc" in self.encoding else []
        if self.rtx_ssrc is not None:
            ssrcs.append(self.rtx_ssrc)
        return ssrcs

    def rids(self) -> list[str]:
        return [self.encoding["rid"]] if "rid" in self.encoding else []

    @property
    def score(self) -> int:
        return 0 if self.stream is None else self.stream.stats.score

    def scores(self) -> list[dict[str, Any]]:
        stream = self.stream
        return [{"encodingIdx": 0,
                 "ssrc": stream.ssrc if stream else self.encoding.get("ssrc", 0),
                 "rid": self.encoding.get("rid"),
                 "score": stream.stats.score if stream else 0}]

    # -- the per-packet path -----------------------------------------------------------------

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    def receive_rtp(self, rtp: SlabRtp, offset: int, length: int, ingress: MediaIngress) -> int:
        """One received packet at ``offset`` of the ingress slab, parsed into ``rtp.header``.
        Returns the length to forward (the packet may have been restored from RTX), or 0."""
        h = rtp.header
        ssrc = h.ssrc
        now = int(self._clock() * 1000)
        stream = self.stream
        recovered = False
        if stream is None:
            if ssrc == self.rtx_ssrc:
                return 0  # RTX before any media: nothing to repair
            stream = self._create_stream(ssrc, now)
        if ssrc != stream.ssrc:
            if ssrc != stream.rtx_ssrc or h.payload_type != stream.rtx_pt:
                self.packets_discarded += 1
                return 0
            if h.payload_length < 2:  # padding-only RTX (probation): nothing to restore
                return 0
            length = rtp.rtx_decapsulate(offset, length, stream.ssrc, stream.media_pt)
            if length < 0:
                self.packets_discarded += 1
                return 0
            recovered = True
        seq = h.sequence_number
        if h.payload_type != stream.media_pt and h.payload_type not in self.pt_map:
            self.packets_discarded += 1
            return 0
        stats = stream.stats
        if recovered:
            if not stats.receive_rtx_packet(seq, h.timestamp, now):
                return 0
        elif not stats.receive_packet(seq, h.timestamp, length, h.payload_length, now):
            return 0
        keyframe = False
        if stream.detector is not None and h.payload_length:
            start = offset + h.payload_offset
            keyframe = stream.detector(ingress.slab_view[start:start + h.payload_length])
        if stream.nack is not None:
            out = stream.nack.receive(seq, keyframe, recovered, now)
            if out.nacks:
                self._send_nacks(stream, list(out.nacks))
            if out.was_nacked:
                if recovered:
                    stats.rtx_packet_repaired(length, h.payload_length, now)
                else:
                    stats.nacked_packet_received()
            if out.key_frame_required:
                self.request_key_frame(force=True)
        if keyframe:
            self.keyframes.keyframe_received(stream.ssrc)
            if "keyframe" in self.trace_types:
                self._trace("keyframe", seq, h.timestamp)
        if self.paused or h.payload_length == 0:
            return 0
        if stream.store is not None:
            ingress.store(stream.store, offset, length, seq, h.timestamp, stream.ssrc)
        if self.sync_waiters and (keyframe or self.media_kind == "audio"):
            ingress.flush()  # packets queued before this one keep the old numbering
            for consumer in self.sync_waiters:
                consumer.sync(seq, ingress)
            self.sync_waiters.clear()
            self.transport.media_changed()
        return length

    def _create_stream(self, ssrc: int, now: int) -> ProducerStream:
        stream = self.stream = ProducerStream(self, ssrc, now)
        self.transport.media_changed()
        self.transport.rtp_listener.bind_ssrc(ssrc, self)
        if self.rtx_ssrc is not None:
            self.transport.rtp_listener.bind_ssrc(self.rtx_ssrc, self)
        if self.media_kind == "video":
            self.request_key_frame()  # consumers waiting for a key frame get one sooner
        return stream

    # -- RTCP from the endpoint ------------------------------------------------------------

    def receive_sender_report(self, ssrc: int, ntp: int, rtp_ts: int) -> None:
        stream = self.stream
        if stream is not None and ssrc == stream.ssrc:
            stream.stats.receive_sender_report(ntp, rtp_ts, self.now_ms())
            if "sr" in self.trace_types:
                self.emit("trace", {"type": "sr", "timestamp": self.now_ms(),
                                    "direction": "in", "info": {"ssrc": ssrc}})

    def receive_dlrr(self, lrr: int, dlrr: int) -> None:
        stream = self.stream
        if stream is None:
            return
        rtt = stream.stats.receive_dlrr(lrr, dlrr, self.now_ms())
        if rtt is not None and stream.nack is not None:
            stream.nack.update_rtt(rtt)

    # -- RTCP to the endpoint --------------------------------------------------------------

    def _send_nacks(self, stream: ProducerStream, lost: list[int]) -> None:
        from worker._fast import Nack  # noqa: PLC0415 (keeps the import graph flat)

        stream.stats.nack_sent(len(lost))
        self.transport.send_rtcp_packets([Nack(stream.ssrc, stream.ssrc, lost)])
        if "nack" in self.trace_types:
            self.emit("trace", {"type": "nack", "timestamp": self.now_ms(), "direction": "out",
                                "info": {"ssrc": stream.ssrc, "count": len(lost)}})

    def request_key_frame(self, force: bool = False) -> None:
        """A consumer (or the NACK generator) needs a key frame: PLI or FIR, merged."""
        stream = self.stream
        if stream is None or self.media_kind != "video" or self.closed:
            return
        now = self.now_ms()
        needed = (self.keyframes.force_keyframe_needed(stream.ssrc, now) if force
                  else self.keyframes.keyframe_needed(stream.ssrc, now))
        if needed:
            self._send_key_frame_request(stream)

    def _send_key_frame_request(self, stream: ProducerStream) -> None:
        request = self.keyframes.build_request(stream.ssrc, use_pli=stream.use_pli,
                                               use_fir=stream.use_fir)
        if request is None:
            return
        if stream.use_pli:
            stream.stats.pli_sent()
        else:
            stream.stats.fir_sent()
        self.transport.send_rtcp_packets([request])
        kind = "pli" if stream.use_pli else "fir"
        if kind in self.trace_types:
            self.emit("trace", {"type": kind, "timestamp": self.now_ms(), "direction": "out",
                                "info": {"ssrc": stream.ssrc}})

    def report_blocks(self, now: int) -> list[Any]:
        stream = self.stream
        if stream is None or self.paused:
            return []
        return [stream.stats.report_block(now)]

    # -- timer: NACK retries, key-frame request retries, inactivity, scores -------------------

    def _schedule_tick(self) -> None:
        stream = self.stream
        period = TICK_MS if stream is not None and stream.nack is not None else SLOW_TICK_MS
        self._timer = self.ctx.loop.call_later(period / 1000, self._tick)

    def _tick(self) -> None:
        self._timer = None
        if self.closed:
            return
        now = self.now_ms()
        stream = self.stream
        if stream is not None:
            if stream.nack is not None:
                deadline = stream.nack.deadline
                if deadline is not None and now >= deadline:
                    lost = stream.nack.on_timeout(now)
                    if lost:
                        self._send_nacks(stream, lost)
            deadline = self.keyframes.deadline
            if deadline is not None and now >= deadline:
                for ssrc in self.keyframes.on_timeout(now):
                    if ssrc == stream.ssrc:
                        self._send_key_frame_request(stream)
            if stream.stats.deadline is not None and now >= stream.stats.deadline:
                stream.stats.on_timeout(now)
            if stream.stats.take_score_change() is not None:
                self._score_changed()
        self._schedule_tick()

    def _score_changed(self) -> None:
        self.emit("score", self.scores())
        for consumer in list(self.consumers.values()):
            consumer.producer_score_changed()

    def _trace(self, kind: str, seq: int, timestamp: int) -> None:
        self.emit("trace", {"type": kind, "timestamp": self.now_ms(), "direction": "in",
                            "info": {"sequenceNumber": seq, "timestamp": timestamp}})

    # -- requests ----------------------------------------------------------------------------

    @handles("dump")
    def dump(self, data: dict[str, Any]) -> dict[str, Any]:
        stream = self.stream
        streams = []
        if stream is not None:
            streams.append({"params": {"ssrc": stream.ssrc, "rtxSsrc": stream.rtx_ssrc,
                                       "payloadType": stream.media_pt,
                                       "mimeType": stream.mime_type,
                                       "clockRate": stream.clock_rate,
                                       "useNack": stream.use_nack, "usePli": stream.use_pli,
                                       "useFir": stream.use_fir,
                                       "cname": self.rtp_parameters["rtcp"].get("cname", "")},
                            "score": stream.stats.score})
        return {"id": self.id, "kind": self.media_kind, "type": "simple",
                "rtpParameters": self.rtp_parameters, "rtpMapping": self.rtp_mapping,
                "rtpStreams": streams, "traceEventTypes": sorted(self.trace_types),
                "paused": self.paused}

    @handles("getStats")
    def get_stats(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        stream = self.stream
        return [] if stream is None else [stream.stats.stats(self.now_ms())]

    @handles("pause")
    def pause(self, data: dict[str, Any]) -> None:
        if self.paused:
            return
        self.paused = True
        self.transport.media_changed()
        if self.stream is not None:
            self.stream.stats.pause()
            if self.stream.nack is not None:
                self.stream.nack.reset()
        for consumer in list(self.consumers.values()):
            consumer.producer_paused_changed(True)

    @handles("resume")
    def resume(self, data: dict[str, Any]) -> None:
        if not self.paused:
            return
        self.paused = False
        self.transport.media_changed()
        if self.stream is not None:
            self.stream.stats.resume(self.now_ms())
        for consumer in list(self.consumers.values()):
            consumer.producer_paused_changed(False)
        if self.consumers:
            self.request_key_frame()

    @handles("enableTraceEvent")
    def enable_trace_event(self, data: dict[str, Any]) -> None:
        self.trace_types = parse_trace_types(data, TRACE_EVENT_TYPES)

    @handles("close")
    def close_request(self, data: dict[str, Any]) -> None:
        self.close()

    def handle_notification(self, event: str, data: Any) -> None:
        """``producer.send``: one RTP packet from the controller (DirectTransport only)."""
        if event != "producer.send" or not self.transport.accepts_producer_send:
            raise WorkerTypeError(f"{event} is only for producers on a DirectTransport")
        if not isinstance(data, bytes):
            raise WorkerTypeError("producer.send data must be binary (msgpack bin)")
        self.transport.receive_rtp_copy(data, None)

    def add_sync_waiter(self, consumer: Consumer) -> None:
        if consumer not in self.sync_waiters:
            self.sync_waiters.append(consumer)
            self.transport.media_changed()

    def remove_sync_waiter(self, consumer: Consumer) -> None:
        if consumer in self.sync_waiters:
            self.sync_waiters.remove(consumer)
            self.transport.media_changed()

    # -- close -----------------------------------------------------------------------------

    def close_children(self) -> None:
        """Its consumers go with it, each telling its controller (``producerclose``)."""
        for consumer in list(self.consumers.values()):
            consumer.producer_closed()
        self.consumers.clear()

    def release(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.keyframes.close()
        if self.stream is not None:
            self.stream.close()
        self.sync_waiters.clear()
        self._on_closed(self)


def parse_trace_types(data: dict[str, Any], allowed: frozenset[str]) -> set[str]:
    """``enableTraceEvent {types}``: the known types among those given (mediasoup ignores
    unknown ones)."""
    types = data.get("types")
    if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        raise WorkerTypeError("invalid types (a list of strings)")
    return {t for t in types if t in allowed}
