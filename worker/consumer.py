"""Consumer: a producer's media sent to one endpoint through one transport.

Its ``rtpParameters`` are built from the endpoint's capabilities
(:func:`worker.ortc_consume.get_consumer_rtp_parameters`): its own SSRC (and RTX SSRC), the
router's payload types and header-extension ids that the endpoint supports, and a ``mid``
assigned by its transport. The per-packet rewrite (SSRC, payload type, extension ids, mid,
abs-send-time, transport-wide sequence number, sequence-number offset) and SRTP are the C
batch's: a consumer is an entry of its producer's transport's forward table
(:meth:`Consumer.forward_spec`), and the ingress flips its ``paused`` flag and offsets in
place. Python keeps the control side: pause and resume with re-synchronisation on the next key
frame (so the endpoint's sequence numbers stay continuous), RTCP from the endpoint (receiver
reports, NACKs answered from the producer's store, PLI/FIR turned into key-frame requests),
our Sender Reports, and the score.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from worker._fast import ReportBlock, SdesChunk, SenderReport
from worker._fast.forward import ForwardConsumer
from worker._fast.rtp import (
    RtpError,
    RtpExtensionIdMap,
    put_rtp_extension,
    remap_rtp_extensions,
    rewrite_rtp,
    rtx_encapsulate,
)
from worker.entity import Context, Entity, handles
from worker.errors import UnsupportedError, WorkerTypeError
from worker.ortc_consume import get_consumer_rtp_parameters, get_pipe_consumer_rtp_parameters
from worker.ortc_produce import RtpParameters
from worker.producer import MID_URI, is_rtx, parse_trace_types
from worker.rtp_stream_stats import SendStreamStats

if TYPE_CHECKING:
    from worker.media_ingress import MediaIngress
    from worker.producer import Producer
    from worker.transport import Transport

__all__ = ["Consumer"]

ABS_SEND_TIME_URI: Final = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
TWCC_URI: Final = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
TRACE_EVENT_TYPES: Final = frozenset({"rtp", "keyframe", "nack", "pli", "fir"})
RESEND_MEMORY: Final = 4096  # per-consumer resend times remembered (bounded)
DEFAULT_RTT_MS: Final = 100
_RTX_HEADROOM: Final = 64  # room for extension growth and the RTX header on a retransmission


class Consumer(Entity):
    kind = "consumer"

    def __init__(self, consumer_id: str, ctx: Context, transport: Transport,
                 producer: Producer, data: dict[str, Any], mid: str,
                 on_closed: Callable[[Consumer], None]) -> None:
        super().__init__(consumer_id, ctx)
        enable_rtx = data.get("enableRtx")
        if enable_rtx is None:
            enable_rtx = True  # mediasoup: RTX when the endpoint supports it
        if not isinstance(enable_rtx, bool):
            raise WorkerTypeError("invalid enableRtx (a boolean)")
        paused = data.get("paused", False)
        if not isinstance(paused, bool):
            raise WorkerTypeError("invalid paused (a boolean)")
        pipe = data.get("pipe", False)
        if not isinstance(pipe, bool):
            raise WorkerTypeError("invalid pipe (a boolean)")
        self.pipe = pipe or transport.pipe_consumers
        self.ignore_dtx = bool(data.get("ignoreDtx", False))
        if self.pipe:
            params = get_pipe_consumer_rtp_parameters(
                producer.consumable_rtp_parameters,
                enable_rtx=bool(getattr(transport, "enable_rtx", False)))
            if len(params["encodings"]) != 1:
                raise UnsupportedError("piping simulcast is not implemented yet")
        else:
            params = get_consumer_rtp_parameters(producer.consumable_rtp_parameters,
                                                 data.get("rtpCapabilities"),
                                                 enable_rtx=enable_rtx)
            params["mid"] = mid
        self.rtp_parameters: RtpParameters = params
        self.transport = transport
        self.producer = producer
        self.media_kind = producer.media_kind
        self.mid: str | None = None if self.pipe else mid
        self.paused = paused
        self.producer_paused = producer.paused
        self.priority = 1
        self._on_closed = on_closed
        encoding = params["encodings"][0]
        self.ssrc: int = encoding["ssrc"]
        self.rtx_ssrc: int | None = encoding.get("rtx", {}).get("ssrc")
        media = [c for c in params["codecs"] if not is_rtx(c)]
        router_pts = {c["payloadType"] for c in media}
        self.payload_types = {inp: out for inp, out in producer.pt_map.items()
                              if out in router_pts}
        self.rtx_pts = {int(c["parameters"]["apt"]): c["payloadType"]
                        for c in params["codecs"] if is_rtx(c)}
        ext_ids = {ext["uri"]: ext["id"] for ext in params["headerExtensions"]}
        self.ext_map = {inp: out for inp, out in producer.ext_map.items()
                        if out in ext_ids.values()}
        self.mid_ext_id = ext_ids.get(MID_URI, 0)
        self.abs_send_time_ext_id = ext_ids.get(ABS_SEND_TIME_URI, 0)
        self.twcc_ext_id = ext_ids.get(TWCC_URI, 0)
        self._ext_id_map = RtpExtensionIdMap(self.ext_map)
        codec = media[0]
        self.clock_rate = int(codec["clockRate"])
        self.stats = SendStreamStats(self.ssrc, self.clock_rate, self._now(),
                                     kind=self.media_kind, mime_type=str(codec["mimeType"]),
                                     rtx_ssrc=self.rtx_ssrc)
        self.seq_offset = 0
        self.sync_seq: int | None = None  # the producer sequence number of the last sync
        self.sync_required = True
        self._rtx_seq = 0
        self._resent: dict[int, int] = {}
        self._synced_packets = 0
        self._synced_bytes = 0
        self._last_score: tuple[int, int] | None = None
        self.trace_types: set[str] = set()
        self._ready = False
        ctx.registry.register(self)

    @property
    def type(self) -> str:
        return "pipe" if self.pipe else "simple"

    def _now(self) -> int:
        return int(self.ctx.loop.time() * 1000)

    # -- the forward table -------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """Whether the C forwards to this consumer now."""
        return (not self.paused and not self.producer_paused and not self.sync_required
                and self.transport.media_ready())

    def forward_spec(self) -> ForwardConsumer:
        """This consumer's entry in its producer's transport's forward table."""
        target = self.transport.send_target(self)
        fd, dest = target if target is not None else (-1, ("127.0.0.1", 9))
        spec: ForwardConsumer = {
            "id": self.id, "ssrc": self.ssrc, "payloadTypes": self.payload_types,
            "dest": dest, "fd": fd, "seqOffset": self.seq_offset, "tsOffset": 0,
            "extMap": self.ext_map, "paused": not self.active or target is None,
            "srtp": self.transport.srtp_out(),
            "absSendTimeExtId": self.abs_send_time_ext_id,
            "twccExtId": self.twcc_ext_id, "twccCounter": self.transport.twcc_counter,
        }
        if self.mid_ext_id and self.mid is not None:
            spec["mid"] = self.mid
            spec["midExtId"] = self.mid_ext_id
        return spec

    def _ingress(self) -> MediaIngress:
        return self.producer.transport.ingress

    def _update_active(self) -> None:
        self._ingress().set_paused(self, not self.active)

    def _needs_sync(self) -> None:
        """Forward again from the producer's next key frame (audio: next packet)."""
        self.sync_required = True
        self._update_active()
        self.producer.add_sync_waiter(self)
        if self.media_kind == "video":
            self.producer.request_key_frame()

    def sync(self, producer_seq: int, ingress: MediaIngress) -> None:
        """The producer's packet ``producer_seq`` is the first this consumer forwards after a
        (re)start: number it right after the last packet sent."""
        state = ingress.consumer_state(self)
        last = state.last_seq if state is not None and state.last_seq is not None else 0
        self.seq_offset = (last + 1 - producer_seq) & 0xFFFF
        self.sync_seq = producer_seq
        self.sync_required = False
        ingress.set_offsets(self, self.seq_offset)
        self._update_active()

    def transport_ready_changed(self) -> None:
        """Where the consumer's transport sends changed; once it can send, a key frame."""
        self._ingress().mark_dirty()
        ready = self.transport.media_ready()
        if ready and not self._ready and not self.paused and not self.producer_paused:
            self._needs_sync()
        self._ready = ready

    # -- events from the producer --------------------------------------------------------------

    def producer_paused_changed(self, paused: bool) -> None:
        self.producer_paused = paused
        self.emit("producerpause" if paused else "producerresume")
        if paused:
            self._update_active()
            self.producer.remove_sync_waiter(self)
        elif not self.paused:
            self._needs_sync()

    def producer_closed(self) -> None:
        self.emit("producerclose")
        self.close()

    def producer_score_changed(self) -> None:
        self._emit_score()

    def _emit_score(self) -> None:
        score = (self.stats.score, self.producer.score)
        if score != self._last_score:
            self._last_score = score
            self.emit("score", self.score())

    def score(self) -> dict[str, Any]:
        return {"score": self.stats.score, "producerScore": self.producer.score,
                "producerScores": [self.producer.score]}

    # -- RTCP from the endpoint ----------------------------------------------------------------

    def receive_report_block(self, block: ReportBlock) -> None:
        self.stats.receive_report_block(block, self._now())
        if self.stats.take_score_change() is not None:
            self._emit_score()

    def receive_key_frame_request(self, fir: bool) -> None:
        if fir:
            self.stats.receive_fir()
        else:
            self.stats.receive_pli()
        kind = "fir" if fir else "pli"
        if kind in self.trace_types:
            self.emit("trace", {"type": kind, "timestamp": self._now(), "direction": "in",
                                "info": {"ssrc": self.ssrc}})
        if self.active:
            self.producer.request_key_frame()

    def receive_nack(self, lost: list[int]) -> None:
        """Retransmit what the producer's store still has (as RTX when negotiated)."""
        self.stats.receive_nack(len(lost))
        if "nack" in self.trace_types:
            self.emit("trace", {"type": "nack", "timestamp": self._now(), "direction": "in",
                                "info": {"ssrc": self.ssrc, "count": len(lost)}})
        stream = self.producer.stream
        if stream is None or stream.store is None or self.sync_seq is None:
            return
        now = self._now()
        rtt = self.stats.rtt_ms or DEFAULT_RTT_MS
        pool = self.ctx.pools["rtpPacket"]
        for out_seq in lost:
            in_seq = (out_seq - self.seq_offset) & 0xFFFF
            if (in_seq - self.sync_seq) & 0xFFFF >= 0x8000:
                continue  # sent before the last re-synchronisation: another numbering
            item = stream.store.get(in_seq)
            if item is None:
                continue
            last = self._resent.get(in_seq)
            if last is not None and now - last <= rtt:
                continue
            first = last is None
            self._remember_resend(in_seq, now)
            packet = bytearray(pool.view(item.handle)[: item.length])
            packet.extend(bytes(_RTX_HEADROOM))
            data = self._rewrite_for_resend(packet, item.length, out_seq)
            if data is not None and self.transport.send_rtp(data, self):
                self.stats.record_retransmitted(first)

    def _remember_resend(self, in_seq: int, now: int) -> None:
        resent = self._resent
        resent[in_seq] = now
        if len(resent) > RESEND_MEMORY:
            for key in list(resent)[: RESEND_MEMORY // 2]:
                del resent[key]

    def _rewrite_for_resend(self, packet: bytearray, length: int, out_seq: int) -> bytes | None:
        try:
            pt = packet[1] & 0x7F
            out_pt = self.payload_types.get(pt)
            if out_pt is None:
                return None
            rewrite_rtp(packet, length, ssrc=self.ssrc, sequence_number=out_seq,
                        payload_type=out_pt)
            length = remap_rtp_extensions(packet, self._ext_id_map, length=length)
            if self.mid_ext_id and self.mid is not None:
                length = put_rtp_extension(packet, self.mid_ext_id, self.mid.encode(),
                                           length=length)
            rtx_pt = self.rtx_pts.get(out_pt)
            if self.rtx_ssrc is not None and rtx_pt is not None:
                self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
                length = rtx_encapsulate(packet, ssrc=self.rtx_ssrc, payload_type=rtx_pt,
                                         sequence_number=self._rtx_seq, length=length)
        except RtpError:
            return None
        return bytes(packet[:length])

    # -- our RTCP ------------------------------------------------------------------------------

    def sync_sent_counters(self, now: int) -> None:
        """Bring the stats up to date with what the C sent since the last call."""
        state = self._ingress().consumer_state(self)
        if state is None or state.last_ts is None:
            return
        packets = state.packets - self._synced_packets
        size = state.bytes - self._synced_bytes
        if packets > 0:
            self._synced_packets = state.packets
            self._synced_bytes = state.bytes
            self.stats.record_sent(packets, size, state.last_ts, now)

    def sender_report(self, now: int) -> tuple[SenderReport, SdesChunk] | None:
        self.sync_sent_counters(now)
        sr = self.stats.sender_report(now)
        if sr is None:
            return None
        sr.octet_count = self._synced_bytes & 0xFFFFFFFF
        cname = self.rtp_parameters["rtcp"].get("cname", "")
        return sr, SdesChunk(self.ssrc, cname.encode() if cname else None)

    # -- requests ------------------------------------------------------------------------------

    @handles("dump")
    def dump(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"id": self.id, "producerId": self.producer.id, "kind": self.media_kind,
                "type": self.type, "rtpParameters": self.rtp_parameters,
                "consumableRtpEncodings": self.producer.consumable_rtp_parameters["encodings"],
                "supportedCodecPayloadTypes": sorted(set(self.payload_types.values())),
                "traceEventTypes": sorted(self.trace_types), "paused": self.paused,
                "producerPaused": self.producer_paused, "priority": self.priority,
                "rtpStreams": [{"params": {"ssrc": self.ssrc, "rtxSsrc": self.rtx_ssrc,
                                           "mid": self.mid}, "score": self.stats.score}]}

    @handles("getStats")
    def get_stats(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        now = self._now()
        self.sync_sent_counters(now)
        stats = [self.stats.stats(now)]
        stats[0]["byteCount"] = self._synced_bytes
        stream = self.producer.stream
        if stream is not None:
            stats.append(stream.stats.stats(now))
        return stats

    @handles("pause")
    def pause(self, data: dict[str, Any]) -> None:
        if self.paused:
            return
        self.paused = True
        self._update_active()
        self.producer.remove_sync_waiter(self)

    @handles("resume")
    def resume(self, data: dict[str, Any]) -> None:
        if not self.paused:
            return
        self.paused = False
        if not self.producer_paused:
            self._needs_sync()

    @handles("setPreferredLayers")
    def set_preferred_layers(self, data: dict[str, Any]) -> None:
        """A simple consumer has one layer: nothing to prefer (as mediasoup)."""

    @handles("setPriority")
    def set_priority(self, data: dict[str, Any]) -> dict[str, Any]:
        priority = data.get("priority")
        if not isinstance(priority, int) or isinstance(priority, bool) or priority < 1:
            raise WorkerTypeError("invalid priority (an integer >= 1)")
        self.priority = priority
        return {"priority": priority}

    @handles("requestKeyFrame")
    def request_key_frame(self, data: dict[str, Any]) -> None:
        if self.active or self.sync_required:
            self.producer.request_key_frame()

    @handles("enableTraceEvent")
    def enable_trace_event(self, data: dict[str, Any]) -> None:
        self.trace_types = parse_trace_types(data, TRACE_EVENT_TYPES)

    @handles("close")
    def close_request(self, data: dict[str, Any]) -> None:
        self.close()

    def release(self) -> None:
        self.producer.remove_sync_waiter(self)
        self.producer.consumers.pop(self.id, None)
        self._ingress().mark_dirty()
        self._on_closed(self)

    def start(self) -> None:
        """Called once the transport and producer know this consumer."""
        self._ready = self.transport.media_ready()
        self._ingress().mark_dirty()
        if not self.paused and not self.producer_paused and self._ready:
            self._needs_sync()
