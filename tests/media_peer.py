"""Real WebRTC peers for the end-to-end media tests: aiortc endpoints driven through pymediasoup,
a mediasoup-client port, against a worker run by the Python controller.

What it owns:

* the test pattern: video frames that carry a frame counter able to survive lossy compression
  (:func:`counter_frame`, :func:`read_counter`), a counting video track and an Opus tone track;
* :class:`SendPeer` and :class:`RecvPeer`: a pymediasoup ``Device`` with a send or receive
  transport, connected to a worker WebRtcTransport (optionally through a
  :class:`tests.udp_proxy.UdpRelay`, by rewriting the port of the worker's UDP candidate);
* :class:`Reception`: what a receiver got for one consumer: decoded frames (video counters,
  audio frames and their level) and every RTP packet aiortc's ``RTCRtpReceiver`` saw, read by
  wrapping that receiver's ``_handle_rtp_packet`` (sequence numbers, key frame starts);
* :func:`media_session`: a worker router with a sender producing audio and video and a receiver
  consuming both, torn down in order, with the worker's buffer pools checked at the end.

aiortc gathers on 127.0.0.1 only (:func:`loopback_ice`) and with no STUN server.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import aioice.ice
import numpy as np
from aiortc import AudioStreamTrack, MediaStreamTrack, VideoStreamTrack
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtpPacket
from av.audio.frame import AudioFrame
from av.video.frame import VideoFrame
from pymediasoup import AiortcHandler, Device  # type: ignore[import-untyped]
from pymediasoup.models.transport import (  # type: ignore[import-untyped]
    DtlsParameters,
    IceCandidate,
    IceParameters,
)
from pymediasoup.rtp_parameters import (  # type: ignore[import-untyped]
    RtpCapabilities,
    RtpParameters,
)

from controller import Consumer, Producer, Router, WebRtcServer, WebRtcTransport, Worker
from tests.controller_support import wait_until
from tests.udp_proxy import UdpRelay

__all__ = [
    "H264_CODEC",
    "OPUS_CODEC",
    "VP8_CODEC",
    "CounterVideoTrack",
    "MediaSession",
    "Reception",
    "RecvPeer",
    "SendPeer",
    "ToneAudioTrack",
    "assert_buffers_returned",
    "counter_frame",
    "h264_keyframe_start",
    "loopback_ice",
    "media_session",
    "read_counter",
    "vp8_keyframe_start",
]

logger = logging.getLogger("mediaworker.tests.media")

LOCALHOST = "127.0.0.1"
WAIT_S = 10.0

OPUS_CODEC: dict[str, Any] = {
    "kind": "audio", "mimeType": "audio/opus", "clockRate": 48000, "channels": 2,
}
VP8_CODEC: dict[str, Any] = {"kind": "video", "mimeType": "video/VP8", "clockRate": 90000}
H264_CODEC: dict[str, Any] = {
    "kind": "video",
    "mimeType": "video/H264",
    "clockRate": 90000,
    "parameters": {
        "packetization-mode": 1,
        "profile-level-id": "42e01f",
        "level-asymmetry-allowed": 1,
    },
}


@contextlib.contextmanager
def loopback_ice() -> Iterator[None]:
    """aioice gathers host candidates on 127.0.0.1 only, while the block runs."""
    original = aioice.ice.get_host_addresses

    def loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [LOCALHOST] if use_ipv4 else []

    aioice.ice.get_host_addresses = loopback
    try:
        yield
    finally:
        aioice.ice.get_host_addresses = original


# -- the video pattern ---------------------------------------------------------------------
#
# 320x240 grey frames cut into 8 x 6 blocks of 40x40 pixels, each black or white:
#   row 0: reference blocks white, black, white, ... ; row 5: the same, inverted;
#   rows 1-2: the counter's 16 bits (white = 1), least significant first;
#   rows 3-4: the same bits inverted, so a frame decoded from damaged data is recognised.
# A decoder reads the mean of each block's central 20x20 pixels.

WIDTH, HEIGHT = 320, 240
BLOCK = 40
COLUMNS = WIDTH // BLOCK
COUNTER_BITS = 16
COUNTER_MASK = (1 << COUNTER_BITS) - 1
BLACK, WHITE = 16, 235
MIN_CONTRAST = 100


def _reference_row(inverted: bool) -> list[bool]:
    return [(column % 2 == 0) != inverted for column in range(COLUMNS)]


def _block_values(counter: int) -> list[list[bool]]:
    bits = [bool((counter >> i) & 1) for i in range(COUNTER_BITS)]
    inverse = [not bit for bit in bits]
    return [
        _reference_row(False),
        bits[:COLUMNS],
        bits[COLUMNS:],
        inverse[:COLUMNS],
        inverse[COLUMNS:],
        _reference_row(True),
    ]


def counter_luma(counter: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """The luma plane (HEIGHT x WIDTH) that shows ``counter`` (modulo 2**16)."""
    luma = np.full((HEIGHT, WIDTH), BLACK, dtype=np.uint8)
    for row, values in enumerate(_block_values(counter & COUNTER_MASK)):
        for column, white in enumerate(values):
            if white:
                y, x = row * BLOCK, column * BLOCK
                luma[y:y + BLOCK, x:x + BLOCK] = WHITE
    return luma


def counter_frame(counter: int, pts: int = 0,
                  time_base: fractions.Fraction = fractions.Fraction(1, 90000)) -> VideoFrame:
    """A yuv420p frame showing ``counter``, grey (chroma 128)."""
    planes = np.full((HEIGHT * 3 // 2, WIDTH), 128, dtype=np.uint8)
    planes[:HEIGHT] = counter_luma(counter)
    frame = VideoFrame.from_ndarray(planes, format="yuv420p")
    frame.pts = pts
    frame.time_base = time_base
    return frame


def read_counter(frame: VideoFrame) -> int | None:
    """The counter a decoded frame shows, or None when the frame is not one of ours (or too
    damaged: the reference blocks or the inverted copy disagree)."""
    if frame.width != WIDTH or frame.height != HEIGHT:
        return None
    if frame.format.name != "yuv420p":
        frame = frame.reformat(format="yuv420p")
    luma = frame.to_ndarray()[:HEIGHT].astype(np.int32)
    half = BLOCK // 4
    means = [
        [
            float(luma[r * BLOCK + half:(r + 1) * BLOCK - half,
                       c * BLOCK + half:(c + 1) * BLOCK - half].mean())
            for c in range(COLUMNS)
        ]
        for r in range(HEIGHT // BLOCK)
    ]
    references = [(means[0][c], white) for c, white in enumerate(_reference_row(False))]
    references += [(means[5][c], white) for c, white in enumerate(_reference_row(True))]
    white_mean = np.mean([m for m, white in references if white])
    black_mean = np.mean([m for m, white in references if not white])
    if white_mean - black_mean < MIN_CONTRAST:
        return None
    threshold = (white_mean + black_mean) / 2
    if any((m > threshold) != white for m, white in references):
        return None
    bits = [m > threshold for m in means[1] + means[2]]
    inverse = [m > threshold for m in means[3] + means[4]]
    if any(a == b for a, b in zip(bits, inverse, strict=True)):
        return None
    return sum(1 << i for i, bit in enumerate(bits) if bit)


class CounterVideoTrack(VideoStreamTrack):
    """30 fps frames showing 1, 2, 3, ...; :attr:`sent` lists every counter handed to the
    encoder, :attr:`sent_at` when (monotonic)."""

    def __init__(self) -> None:
        super().__init__()
        self.counter = 0
        self.sent: list[int] = []
        self.sent_at: list[float] = []

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        self.counter += 1
        self.sent.append(self.counter & COUNTER_MASK)
        self.sent_at.append(time.monotonic())
        return counter_frame(self.counter, pts, time_base)


TONE_HZ = 440.0
TONE_AMPLITUDE = 8000
AUDIO_RATE = 48000
AUDIO_SAMPLES = 960  # 20 ms


class ToneAudioTrack(AudioStreamTrack):
    """A 440 Hz sine, 48 kHz mono, 20 ms frames; :attr:`frames_sent` counts them."""

    def __init__(self) -> None:
        super().__init__()
        self.frames_sent = 0
        self._sample = 0
        self._t0: float | None = None

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._t0 is None:
            self._t0 = time.monotonic()
        else:
            wait = self._t0 + self._sample / AUDIO_RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        index = np.arange(self._sample, self._sample + AUDIO_SAMPLES)
        samples = (TONE_AMPLITUDE * np.sin(2 * math.pi * TONE_HZ * index / AUDIO_RATE))
        frame = AudioFrame.from_ndarray(samples.astype(np.int16).reshape(1, -1),
                                        format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = self._sample
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        self._sample += AUDIO_SAMPLES
        self.frames_sent += 1
        return frame


def audio_level(frame: AudioFrame) -> float:
    """Root mean square of a decoded s16 frame's samples."""
    samples = frame.to_ndarray().astype(np.float64)
    return float(np.sqrt(np.mean(samples * samples))) if samples.size else 0.0


# -- key frame recognition in RTP payloads -------------------------------------------------


def vp8_keyframe_start(payload: bytes) -> bool:
    """Whether an RTP VP8 payload (RFC 7741) starts a key frame."""
    if not payload:
        return False
    first = payload[0]
    extended, start, partition = first & 0x80, first & 0x10, first & 0x07
    if not start or partition != 0:
        return False
    offset = 1
    if extended:
        if len(payload) < 2:
            return False
        flags = payload[1]
        offset = 2
        if flags & 0x80:  # I: picture id, 7 or 15 bits
            if len(payload) <= offset:
                return False
            offset += 2 if payload[offset] & 0x80 else 1
        if flags & 0x40:  # L: TL0PICIDX
            offset += 1
        if flags & 0x30:  # T or K: TID/Y/KEYIDX
            offset += 1
    if len(payload) <= offset:
        return False
    return not payload[offset] & 0x01  # P bit 0: key frame


def h264_keyframe_start(payload: bytes) -> bool:
    """Whether an RTP H264 payload (RFC 6184) carries an SPS or starts an IDR slice."""
    if not payload:
        return False
    nal_type = payload[0] & 0x1F
    if nal_type in (5, 7):
        return True
    if nal_type == 24:  # STAP-A
        offset = 1
        while offset + 2 < len(payload):
            size = int.from_bytes(payload[offset:offset + 2], "big")
            if payload[offset + 2] & 0x1F in (5, 7):
                return True
            offset += 2 + size
        return False
    if nal_type == 28 and len(payload) > 1:  # FU-A
        return bool(payload[1] & 0x80) and payload[1] & 0x1F == 5
    return False


# -- peers -----------------------------------------------------------------------------------


def client_candidates(transport: WebRtcTransport, relay: UdpRelay | None) -> list[dict[str, Any]]:
    """The worker's UDP candidates as the client should use them: through ``relay`` if given."""
    candidates = []
    for candidate in transport.ice_candidates:
        if candidate["protocol"] != "udp":
            continue
        copy = dict(candidate)
        if relay is not None:
            copy["ip"], copy["port"] = relay.address
        candidates.append(copy)
    return candidates


def worker_udp_address(transport: WebRtcTransport) -> tuple[str, int]:
    for candidate in transport.ice_candidates:
        if candidate["protocol"] == "udp":
            return str(candidate["ip"]), int(candidate["port"])
    raise AssertionError("the worker transport has no UDP candidate")


async def wait_for(predicate: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    """:func:`tests.controller_support.wait_until`, saying what was waited for."""
    try:
        await wait_until(predicate, timeout)
    except AssertionError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


class Peer:
    """A pymediasoup Device and one transport of it, tied to a worker WebRtcTransport."""

    direction: Literal["send", "recv"] = "send"

    def __init__(self, name: str, router: Router, server_transport: WebRtcTransport,
                 relay: UdpRelay | None = None) -> None:
        self.name = name
        self.router = router
        self.server_transport = server_transport
        self.relay = relay
        self.device: Any = None
        self.transport: Any = None
        self._connected: asyncio.Future[None] | None = None

    async def open(self) -> None:
        self.device = Device(handlerFactory=AiortcHandler.createFactory())
        await self.device.load(RtpCapabilities.model_validate(self.router.rtp_capabilities))
        options: dict[str, Any] = {
            "id": self.server_transport.id,
            "iceParameters": IceParameters.model_validate(self.server_transport.ice_parameters),
            "iceCandidates": [IceCandidate.model_validate(c)
                              for c in client_candidates(self.server_transport, self.relay)],
            "dtlsParameters": DtlsParameters.model_validate(
                self.server_transport.dtls_parameters),
            "sctpParameters": None,
            "iceServers": [],
        }
        if self.direction == "send":
            self.transport = self.device.createSendTransport(**options)
        else:
            self.transport = self.device.createRecvTransport(**options)
        self._connected = asyncio.get_running_loop().create_future()
        self.transport.on("connect", self._on_connect)

    async def _on_connect(self, dtls_parameters: Any) -> None:
        assert self._connected is not None
        # pymediasoup does not wait for this listener: its outcome goes to wait_connected().
        try:
            await self.server_transport.connect(dtls_parameters=dtls_parameters.model_dump())
        except Exception as exc:
            if not self._connected.done():
                self._connected.set_exception(exc)
            return
        if not self._connected.done():
            self._connected.set_result(None)

    async def wait_connected(self, timeout: float = WAIT_S) -> None:
        """``transport.connect`` answered, and the worker's DTLS is connected."""
        assert self._connected is not None
        await asyncio.wait_for(asyncio.shield(self._connected), timeout)
        await wait_for(lambda: self.server_transport.dtls_state == "connected",
                       f"{self.name}: the worker's DTLS to connect", timeout)

    async def close(self) -> None:
        """Close the client side (aiortc's peer connection)."""
        if self.transport is not None:
            await self.transport.close()


class SendPeer(Peer):
    """Produces tracks: pymediasoup's ``produce`` event creates the worker Producer."""

    direction: Literal["send", "recv"] = "send"

    def __init__(self, name: str, router: Router, server_transport: WebRtcTransport,
                 relay: UdpRelay | None = None) -> None:
        super().__init__(name, router, server_transport, relay)
        self.producers: dict[str, Producer] = {}
        self.client_producers: dict[str, Any] = {}

    async def open(self) -> None:
        await super().open()
        self.transport.on("produce", self._on_produce)

    async def _on_produce(self, kind: str, rtp_parameters: Any, app_data: Any) -> str:
        parameters = rtp_parameters.model_dump(exclude_none=True)
        producer = await self.server_transport.produce(kind=kind, rtp_parameters=parameters)
        self.producers[kind] = producer
        return producer.id

    async def produce(self, track: MediaStreamTrack) -> Producer:
        """Produce ``track``; returns the controller's Producer."""
        client_producer = await self.transport.produce(track=track, stopTracks=False)
        self.client_producers[track.kind] = client_producer
        producer = self.producers[track.kind]
        assert producer.id == client_producer.id
        return producer


@dataclass
class RtpRecord:
    """One RTP packet as aiortc's receiver got it (after SRTP)."""

    at: float
    ssrc: int
    seq: int
    payload_type: int
    marker: bool
    rtx: bool
    keyframe_start: bool


@dataclass
class VideoRecord:
    at: float
    counter: int | None


@dataclass
class Reception:
    """What a receiver got for one consumer."""

    kind: str
    consumer: Consumer
    client_consumer: Any  # pymediasoup's Consumer
    receiver: RTCRtpReceiver
    media_payload_type: int
    rtx_payload_type: int | None
    keyframe_check: Callable[[bytes], bool] | None
    rtp: list[RtpRecord] = field(default_factory=list)
    video: list[VideoRecord] = field(default_factory=list)
    audio_frames: int = 0
    audio_levels: list[float] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None
    ended: bool = False

    @property
    def media_rtp(self) -> list[RtpRecord]:
        return [r for r in self.rtp if not r.rtx]

    @property
    def counters(self) -> list[int | None]:
        return [v.counter for v in self.video]

    @property
    def decoded(self) -> list[int]:
        return [v.counter for v in self.video if v.counter is not None]

    @property
    def frames(self) -> int:
        return len(self.video) if self.kind == "video" else self.audio_frames

    def hook(self) -> None:
        """Record every RTP packet before aiortc handles it."""
        original = self.receiver._handle_rtp_packet

        async def recording(packet: RtpPacket, arrival_time_ms: int) -> None:
            rtx = packet.payload_type == self.rtx_payload_type
            keyframe = (not rtx and packet.payload_type == self.media_payload_type
                        and self.keyframe_check is not None
                        and self.keyframe_check(packet.payload))
            self.rtp.append(RtpRecord(
                at=time.monotonic(), ssrc=packet.ssrc, seq=packet.sequence_number,
                payload_type=packet.payload_type, marker=bool(packet.marker), rtx=rtx,
                keyframe_start=keyframe,
            ))
            await original(packet, arrival_time_ms)

        self.receiver._handle_rtp_packet = recording  # type: ignore[method-assign]

    def start_reading(self) -> None:
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        track = self.client_consumer.track
        try:
            while True:
                frame = await track.recv()
                if self.kind == "video":
                    self.video.append(VideoRecord(time.monotonic(), read_counter(frame)))
                else:
                    self.audio_frames += 1
                    self.audio_levels.append(audio_level(frame))
        except MediaStreamError:
            self.ended = True

    async def stop_reading(self) -> None:
        if self.reader is not None and not self.reader.done():
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader

    async def wait_frames(self, count: int, timeout: float = WAIT_S) -> None:
        await wait_for(lambda: self.frames >= count,
                       f"{count} {self.kind} frames (got {self.frames})", timeout)


class RecvPeer(Peer):
    """Consumes producers: the worker Consumer's rtpParameters go unchanged to pymediasoup."""

    direction: Literal["send", "recv"] = "recv"

    def __init__(self, name: str, router: Router, server_transport: WebRtcTransport,
                 relay: UdpRelay | None = None) -> None:
        super().__init__(name, router, server_transport, relay)
        self.receptions: dict[str, Reception] = {}

    async def consume(self, producer: Producer, *, paused: bool = True) -> Reception:
        """Consume ``producer``: created paused on the worker (when ``paused``), set up on the
        client, hooked and read, then resumed."""
        capabilities = self.device.recvRtpCapabilities.model_dump(exclude_none=True)
        assert await self.router.can_consume(producer.id, capabilities)
        consumer = await self.server_transport.consume(
            producer_id=producer.id, rtp_capabilities=capabilities, paused=paused)
        rtp_parameters = consumer.rtp_parameters
        client_consumer = await self.transport.consume(
            id=consumer.id,
            producerId=producer.id,
            kind=consumer.kind,
            rtpParameters=RtpParameters.model_validate(rtp_parameters),
        )
        receiver = self._receiver_of(client_consumer.localId)
        codecs = rtp_parameters["codecs"]
        media = codecs[0]
        rtx = next((c for c in codecs
                    if c["mimeType"].lower().endswith("/rtx")
                    and int(c["parameters"].get("apt", -1)) == media["payloadType"]), None)
        mime = media["mimeType"].lower()
        check = {"video/vp8": vp8_keyframe_start,
                 "video/h264": h264_keyframe_start}.get(mime)
        reception = Reception(
            kind=consumer.kind, consumer=consumer, client_consumer=client_consumer,
            receiver=receiver, media_payload_type=int(media["payloadType"]),
            rtx_payload_type=None if rtx is None else int(rtx["payloadType"]),
            keyframe_check=check,
        )
        reception.hook()
        reception.start_reading()
        self.receptions[consumer.kind] = reception
        await self.wait_connected()
        if paused:
            await consumer.resume()
        return reception

    def _receiver_of(self, mid: str) -> RTCRtpReceiver:
        for transceiver in self.transport.handler.pc.getTransceivers():
            if transceiver.mid == mid:
                return cast(RTCRtpReceiver, transceiver.receiver)
        raise AssertionError(f"no transceiver with mid {mid}")

    async def close(self) -> None:
        for reception in self.receptions.values():
            await reception.stop_reading()
        await super().close()


# -- a whole session -------------------------------------------------------------------------


async def assert_buffers_returned(worker: Worker, timeout: float = 3.0) -> None:
    """Every buffer pool of the worker has inUse == 0 (polled for ``timeout`` seconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        dump = await worker.dump()
        lent = {name: pool["inUse"] for name, pool in dump["bufferPools"].items()
                if pool["inUse"]}
        if not lent:
            return
        if loop.time() > deadline:
            raise AssertionError(f"buffer slots still lent after the transports closed: {lent}")
        await asyncio.sleep(0.05)


@dataclass
class MediaSession:
    worker: Worker
    router: Router
    sender: SendPeer
    receiver: RecvPeer
    video_track: CounterVideoTrack
    audio_track: ToneAudioTrack
    video_producer: Producer
    audio_producer: Producer
    video: Reception
    audio: Reception
    sender_relay: UdpRelay | None
    receiver_relay: UdpRelay | None
    webrtc_server: WebRtcServer | None

    def worker_log(self) -> list[str]:
        return list(self.worker._stderr_lines)


async def _server_transport(router: Router, server: WebRtcServer | None) -> WebRtcTransport:
    if server is not None:
        return await router.create_webrtc_transport(webrtc_server=server, enable_tcp=False)
    return await router.create_webrtc_transport(
        listen_infos=[{"protocol": "udp", "ip": LOCALHOST}])


async def _relay_for(transport: WebRtcTransport, loss: float | None, seed: int,
                     direction: Literal["up", "down"]) -> UdpRelay | None:
    if loss is None:
        return None
    relay = UdpRelay(worker_udp_address(transport), seed=seed,
                     drop_to_upstream=loss if direction == "up" else 0.0,
                     drop_to_client=loss if direction == "down" else 0.0)
    await relay.start()
    return relay


@contextlib.asynccontextmanager
async def media_session(
    worker: Worker,
    *,
    video_codecs: Sequence[dict[str, Any]] = (VP8_CODEC,),
    use_webrtc_server: bool = False,
    sender_loss: float | None = None,
    receiver_loss: float | None = None,
    seed: int = 1,
) -> AsyncIterator[MediaSession]:
    """A router with one sender (audio + video producers) and one receiver (both consumed).

    ``sender_loss`` / ``receiver_loss``: put a relay in front of that peer, dropping this
    fraction of the RTP going to the worker (sender) or coming from it (receiver); None: no
    relay. On a clean exit both peers and transports are closed and the worker's buffer pools
    must be back to zero lent slots.
    """
    router = await worker.create_router(media_codecs=[OPUS_CODEC, *video_codecs])
    server = None
    if use_webrtc_server:
        server = await worker.create_webrtc_server(
            listen_infos=[{"protocol": "udp", "ip": LOCALHOST}])
    send_transport = await _server_transport(router, server)
    recv_transport = await _server_transport(router, server)
    sender_relay = await _relay_for(send_transport, sender_loss, seed, "up")
    receiver_relay = await _relay_for(recv_transport, receiver_loss, seed + 100, "down")
    sender = SendPeer("sender", router, send_transport, sender_relay)
    receiver = RecvPeer("receiver", router, recv_transport, receiver_relay)
    video_track = CounterVideoTrack()
    audio_track = ToneAudioTrack()
    try:
        await sender.open()
        await receiver.open()
        audio_producer = await sender.produce(audio_track)
        video_producer = await sender.produce(video_track)
        await sender.wait_connected()
        audio = await receiver.consume(audio_producer)
        video = await receiver.consume(video_producer)
        session = MediaSession(
            worker=worker, router=router, sender=sender, receiver=receiver,
            video_track=video_track, audio_track=audio_track,
            video_producer=video_producer, audio_producer=audio_producer,
            video=video, audio=audio, sender_relay=sender_relay,
            receiver_relay=receiver_relay, webrtc_server=server,
        )
        yield session
    except BaseException:
        for line in list(worker._stderr_lines)[-30:]:
            logger.warning("worker: %s", line)
        raise
    finally:
        await receiver.close()
        await sender.close()
        video_track.stop()
        audio_track.stop()
        await send_transport.close()
        await recv_transport.close()
        for relay in (sender_relay, receiver_relay):
            if relay is not None:
                await relay.close()
    await assert_buffers_returned(worker)
    await router.close()
    if server is not None:
        await server.close()
