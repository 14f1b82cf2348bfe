"""End-to-end media through the worker between real aiortc peers driven by pymediasoup.

A sender produces Opus and VP8 (or H264) through a WebRtcTransport; a receiver consumes both
through another; frames carry a counter the receiver decodes (tests/media_peer.py). Optional
relays (tests/udp_proxy.py) drop RTP to exercise NACK and retransmission. Each test runs on its
own worker, bounded in time; every session ends with the worker's buffer pools checked.
"""

from __future__ import annotations

import asyncio
import fractions
import functools
import itertools
import statistics
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, cast

import av
import pytest
from aiortc.rtcrtpsender import RTCRtpSender
from av.video.codeccontext import VideoCodecContext

from tests.controller_support import Recorder, running_worker
from tests.media_peer import (
    H264_CODEC,
    OPUS_CODEC,
    VP8_CODEC,
    MediaSession,
    Peer,
    Reception,
    ToneAudioTrack,
    assert_buffers_returned,
    counter_frame,
    h264_keyframe_start,
    loopback_ice,
    media_session,
    read_counter,
    vp8_keyframe_start,
    wait_for,
)

SCENARIO_TIMEOUT_S = 38.0


@pytest.fixture(autouse=True)
def loopback_only() -> Iterator[None]:
    with loopback_ice():
        yield


def run(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test on a fresh event loop, bounded below pytest-timeout's limit."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(fn(*args, **kwargs), SCENARIO_TIMEOUT_S))

    return wrapper


def strictly_increasing(values: list[int]) -> bool:
    return all(a < b for a, b in itertools.pairwise(values))


def check_video(session: MediaSession, *, min_frames: int, max_undecodable: int = 0) -> None:
    """Decoded counters rise strictly and each one is a counter the sender really sent."""
    video = session.video
    decoded = video.decoded
    undecodable = len(video.video) - len(decoded)
    assert len(decoded) >= min_frames, f"only {len(decoded)} video frames decoded"
    assert undecodable <= max_undecodable, f"{undecodable} frames without a readable counter"
    assert strictly_increasing(decoded), decoded
    sent = set(session.video_track.sent)
    assert set(decoded) <= sent, sorted(set(decoded) - sent)[:10]


def check_audio(session: MediaSession, *, min_frames: int) -> None:
    audio = session.audio
    assert audio.audio_frames >= min_frames
    assert session.audio_track.frames_sent >= min_frames
    # The 440 Hz tone (RMS about 5600 sent) arrives as sound, not silence.
    levels = audio.audio_levels[10:]
    assert levels and statistics.median(levels) > 1000, statistics.median(levels or [0.0])


def mime_of(reception: Reception) -> str:
    return str(reception.consumer.rtp_parameters["codecs"][0]["mimeType"]).lower()


def stats_entry(stats: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    for entry in stats:
        if entry.get("type") == kind:
            return entry
    raise AssertionError(f"no {kind} entry in {stats}")


def decoded_between(reception: Reception, start: float, end: float) -> list[int]:
    return [v.counter for v in reception.video
            if start <= v.at < end and v.counter is not None]


# -- the test pattern, without the network ---------------------------------------------------


@pytest.mark.parametrize(
    ("encoder", "decoder", "options"),
    [
        ("libvpx", "vp8", {"deadline": "realtime", "cpu-used": "8"}),
        ("libx264", "h264", {"preset": "ultrafast", "tune": "zerolatency"}),
    ],
    ids=["vp8", "h264"],
)
def test_counter_survives_lossy_compression(encoder: str, decoder: str,
                                            options: dict[str, str]) -> None:
    if encoder not in av.codecs_available:
        pytest.skip(f"PyAV has no {encoder} encoder")
    enc = cast(VideoCodecContext, av.CodecContext.create(encoder, "w"))
    enc.width, enc.height, enc.pix_fmt = 320, 240, "yuv420p"
    enc.bit_rate = 100_000  # a low rate: the blocks must survive coarse quantisation
    enc.time_base = fractions.Fraction(1, 30)
    enc.options = options
    dec = cast(VideoCodecContext, av.CodecContext.create(decoder, "r"))
    sent = [(i * 4099) & 0xFFFF for i in range(1, 46)]
    got: list[int | None] = []
    for i, counter in enumerate(sent):
        for packet in enc.encode(counter_frame(counter, i, fractions.Fraction(1, 30))):
            got += [read_counter(frame) for frame in dec.decode(packet)]
    for packet in enc.encode(None):
        got += [read_counter(frame) for frame in dec.decode(packet)]
    assert len(got) >= 40
    assert got == sent[:len(got)]


def test_counter_rejects_foreign_and_damaged_frames() -> None:
    frame = counter_frame(0xBEEF)
    assert read_counter(frame) == 0xBEEF
    assert read_counter(counter_frame(70000)) == 70000 & 0xFFFF
    planes = frame.to_ndarray()
    planes[40:80, 0:40] = 251 - planes[40:80, 0:40]  # bit 0 flipped, its inverse not
    damaged = av.VideoFrame.from_ndarray(planes, format="yuv420p")
    assert read_counter(damaged) is None
    grey = av.VideoFrame.from_ndarray(planes * 0 + 128, format="yuv420p")
    assert read_counter(grey) is None
    assert read_counter(av.VideoFrame(width=640, height=480)) is None


def test_keyframe_recognition() -> None:
    # VP8 descriptor: X=1, S=1, PID=0; I=1 with a 15-bit picture id; then the payload header.
    assert vp8_keyframe_start(bytes([0x90, 0x80, 0x81, 0x23, 0x10]))  # P=0: key frame
    assert not vp8_keyframe_start(bytes([0x90, 0x80, 0x81, 0x23, 0x11]))  # P=1: inter frame
    assert not vp8_keyframe_start(bytes([0x80, 0x80, 0x81, 0x23, 0x10]))  # not a start
    assert vp8_keyframe_start(bytes([0x10, 0x10]))  # no extension
    assert not vp8_keyframe_start(b"")
    assert h264_keyframe_start(bytes([0x65, 0x88]))  # IDR slice
    assert h264_keyframe_start(bytes([0x18, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xCE]))
    assert h264_keyframe_start(bytes([0x7C, 0x85, 0x00]))  # FU-A start of an IDR
    assert not h264_keyframe_start(bytes([0x7C, 0x05, 0x00]))  # FU-A continuation
    assert not h264_keyframe_start(bytes([0x41, 0x9A]))  # non-IDR slice


# -- pymediasoup against the worker: capabilities and connection ----------------------------


@pytest.mark.timeout(45)
@run
async def test_device_loads_router_capabilities_and_send_transport_connects() -> None:
    """A Device loads the router's capabilities; its send transport connects over ICE and
    DTLS. The produce listener answers an id the worker does not know: the worker receives RTP
    for no producer and drops it."""
    async with running_worker(log_level="warn") as worker:
        router = await worker.create_router(media_codecs=[OPUS_CODEC, VP8_CODEC])
        transport = await router.create_webrtc_transport(
            listen_infos=[{"protocol": "udp", "ip": "127.0.0.1"}])
        peer = Peer("sender", router, transport)
        await peer.open()
        device = peer.device
        assert device.canProduce("audio") and device.canProduce("video")
        mimes = {c.mimeType.lower() for c in device.recvRtpCapabilities.codecs}
        assert {"audio/opus", "video/vp8", "video/rtx"} <= mimes
        produced: list[dict[str, Any]] = []

        async def on_produce(kind: str, rtp_parameters: Any, app_data: Any) -> str:
            produced.append(rtp_parameters.model_dump(exclude_none=True))
            return "unknown-producer"

        peer.transport.on("produce", on_produce)
        track = ToneAudioTrack()
        try:
            await peer.transport.produce(track=track, stopTracks=False)
            await peer.wait_connected()
            await wait_for(lambda: transport.ice_state in ("connected", "completed"), "ICE")
            await wait_for(lambda: peer.transport.connectionState == "connected",
                           "the client's connection")
            assert transport.dtls_parameters["role"] == "client"  # the client is the server
            selected = transport.ice_selected_tuple
            assert selected is not None and selected["protocol"] == "udp"
            assert produced[0]["codecs"][0]["mimeType"].lower() == "audio/opus"
            assert produced[0]["encodings"][0]["ssrc"] > 0
            await asyncio.sleep(0.5)  # RTP for no producer arrives, and is dropped
            dump = await transport.dump()
            assert dump["dtlsState"] == "connected"
        finally:
            await peer.close()
            track.stop()
        await transport.close()
        await assert_buffers_returned(worker)


# -- media through the worker ---------------------------------------------------------------


@pytest.mark.timeout(45)
@pytest.mark.parametrize("use_webrtc_server", [False, True],
                         ids=["listen-infos", "webrtc-server"])
@run
async def test_audio_and_vp8_between_aiortc_peers(use_webrtc_server: bool) -> None:
    async with (running_worker(log_level="warn") as worker,
                media_session(worker, use_webrtc_server=use_webrtc_server) as session):
        assert mime_of(session.video) == "video/vp8"
        assert mime_of(session.audio) == "audio/opus"
        await session.video.wait_frames(60, timeout=20)
        await session.audio.wait_frames(110, timeout=20)
        check_video(session, min_frames=50)
        check_audio(session, min_frames=100)
        # The consumer was resumed after the client was set up: its first packet starts
        # a key frame.
        assert session.video.media_rtp[0].keyframe_start
        producer_stats = await session.video_producer.get_stats()
        assert stats_entry(producer_stats, "inbound-rtp")["packetCount"] > 0
        consumer_stats = await session.video.consumer.get_stats()
        assert stats_entry(consumer_stats, "outbound-rtp")["packetCount"] > 0
        # Most of the send transport's media went through the C receive path, on a socket of
        # its own or a WebRtcServer's shared by both transports.
        counters = (await session.sender.server_transport.dump())["counters"]
        assert counters["rtpPacketsFastPath"] > counters["rtpPacketsReceived"] // 2, counters


def _h264_available() -> str | None:
    if "libx264" not in av.codecs_available or "h264" not in av.codecs_available:
        return "PyAV has no libx264 encoder or h264 decoder"
    capabilities = RTCRtpSender.getCapabilities("video")
    if not any(c.mimeType.lower() == "video/h264"
               and c.parameters.get("profile-level-id") == "42e01f"
               and str(c.parameters.get("packetization-mode")) == "1"
               for c in capabilities.codecs):
        return "aiortc does not offer H264 42e01f packetization-mode 1"
    return None


@pytest.mark.timeout(45)
@run
async def test_audio_and_h264_between_aiortc_peers() -> None:
    reason = _h264_available()
    if reason is not None:
        pytest.skip(reason)
    async with (running_worker(log_level="warn") as worker,
                media_session(worker, video_codecs=[H264_CODEC]) as session):
        assert mime_of(session.video) == "video/h264"
        params = session.video.consumer.rtp_parameters["codecs"][0]["parameters"]
        assert str(params["packetization-mode"]) == "1"
        assert str(params["profile-level-id"]).lower() == "42e01f"
        await session.video.wait_frames(60, timeout=20)
        await session.audio.wait_frames(110, timeout=20)
        check_video(session, min_frames=50)
        check_audio(session, min_frames=100)
        assert session.video.media_rtp[0].keyframe_start


WINDOW_S = 5.0


@pytest.mark.timeout(45)
@run
async def test_nack_and_retransmission_repair_five_percent_loss() -> None:
    async with (running_worker(log_level="warn") as worker,
                media_session(worker, sender_loss=0.0, receiver_loss=0.0, seed=5) as session):
        sender_relay, receiver_relay = session.sender_relay, session.receiver_relay
        assert sender_relay is not None and receiver_relay is not None
        await session.video.wait_frames(15, timeout=15)

        start = time.monotonic()
        await asyncio.sleep(WINDOW_S)
        clean = decoded_between(session.video, start, start + WINDOW_S)

        sender_relay.set_loss(to_upstream=0.05)
        receiver_relay.set_loss(to_client=0.05)
        start = time.monotonic()
        await asyncio.sleep(WINDOW_S)
        lossy = decoded_between(session.video, start, start + WINDOW_S)
        sender_relay.set_loss(to_upstream=0.0)
        receiver_relay.set_loss(to_client=0.0)

        assert sender_relay.counters.to_upstream.dropped_rtp > 0
        assert receiver_relay.counters.to_client.dropped_rtp > 0
        consumer_stats = await session.video.consumer.get_stats()
        producer_stats = await session.video_producer.get_stats()
        outbound = stats_entry(consumer_stats, "outbound-rtp")
        inbound = stats_entry(producer_stats, "inbound-rtp")
        details = (f"consumer outbound-rtp {outbound}, producer inbound-rtp {inbound}, "
                   f"dropped to worker {sender_relay.counters.to_upstream.dropped_rtp}, "
                   f"to receiver {receiver_relay.counters.to_client.dropped_rtp}")
        # Receiver-side loss is repaired by the consumer's retransmissions, sender-side loss
        # by NACKs to aiortc's sender (the producer's repaired packets).
        assert outbound.get("packetsRetransmitted", 0) > 0 or (
            outbound.get("nackCount", 0) > 0 and inbound.get("packetsRepaired", 0) > 0
        ), details
        # The worker asked aiortc's sender for what the sender's relay dropped.
        assert inbound.get("nackCount", 0) > 0, details
        assert len(clean) >= 0.8 * WINDOW_S * 30, f"loss-free run decoded only {len(clean)}"
        assert abs(len(lossy) - len(clean)) <= 0.1 * len(clean), (
            f"{len(lossy)} frames decoded with loss, {len(clean)} without; {details}")
        assert strictly_increasing(session.video.decoded)
        assert set(session.video.decoded) <= set(session.video_track.sent)


QUIET_S = 1.0
GRACE_S = 0.3


async def _check_quiet_then_resumed(session: MediaSession, resume: Callable[[], Any]) -> None:
    """After a pause: no frames and no RTP for QUIET_S; then ``resume()`` and frames flow again,
    starting with a key frame, with RTP sequence numbers continuous across the pause."""
    video = session.video
    await asyncio.sleep(GRACE_S)  # packets and frames already in flight
    quiet_from, frames_before, packets_before = time.monotonic(), video.frames, len(video.rtp)
    last_before = video.decoded[-1]
    await asyncio.sleep(QUIET_S)
    assert video.frames == frames_before, "video frames arrived while paused"
    assert len(video.rtp) == packets_before, "RTP arrived while paused"
    assert [r for r in video.rtp if r.at >= quiet_from] == []
    last_packet = video.media_rtp[-1]
    audio_frames = session.audio.audio_frames
    assert audio_frames > 0

    resumed_at = time.monotonic()
    await resume()
    await video.wait_frames(frames_before + 15, timeout=10)
    after = [r for r in video.media_rtp if r.at >= resumed_at]
    assert after[0].keyframe_start, "the first packet after the resume is not a key frame"
    assert after[0].seq == (last_packet.seq + 1) & 0xFFFF, (last_packet.seq, after[0].seq)
    assert after[0].ssrc == last_packet.ssrc
    # aiortc hands a frame to the decoder once the next frame's first packet arrives: the last
    # frame sent before the pause comes out just after the resume.
    after_frames = [v for v in video.video if v.at >= resumed_at]
    held = [v for v in after_frames[:1]
            if v.counter is not None and v.counter <= last_before + 2]
    first = after_frames[len(held)]
    assert first.counter is not None, "the first frame after the resume is not decodable"
    # Frames produced while paused were not delivered: the counter jumped.
    assert first.counter > last_before + QUIET_S * 30 / 2, (last_before, first.counter)
    assert session.audio.audio_frames > audio_frames  # the audio consumer was not paused
    check_video(session, min_frames=30)


@pytest.mark.timeout(45)
@run
async def test_consumer_pause_and_resume() -> None:
    async with (running_worker(log_level="warn") as worker,
                media_session(worker) as session):
        await session.video.wait_frames(20, timeout=15)
        consumer = session.video.consumer
        await consumer.pause()
        assert consumer.paused
        assert (await consumer.dump())["paused"] is True

        async def resume() -> None:
            await consumer.resume()

        await _check_quiet_then_resumed(session, resume)
        assert (consumer.paused, (await consumer.dump())["paused"]) == (False, False)


@pytest.mark.timeout(45)
@run
async def test_producer_pause_and_resume() -> None:
    async with (running_worker(log_level="warn") as worker,
                media_session(worker) as session):
        await session.video.wait_frames(20, timeout=15)
        consumer = session.video.consumer
        events = Recorder()
        consumer.on("producerpause", functools.partial(events, "producerpause"))
        consumer.on("producerresume", functools.partial(events, "producerresume"))
        await session.video_producer.pause()
        assert session.video_producer.paused
        await wait_for(lambda: events.calls == [("producerpause",)], "producerpause")
        assert consumer.producer_paused

        async def resume() -> None:
            await session.video_producer.resume()
            await wait_for(lambda: events.calls[-1:] == [("producerresume",)], "producerresume")

        await _check_quiet_then_resumed(session, resume)
        assert events.calls == [("producerpause",), ("producerresume",)]
        assert (consumer.paused, consumer.producer_paused) == (False, False)


@pytest.mark.timeout(45)
@run
async def test_closing_the_producer_closes_its_consumer() -> None:
    async with (running_worker(log_level="warn") as worker,
                media_session(worker) as session):
        await session.video.wait_frames(15, timeout=15)
        consumer = session.video.consumer
        events = Recorder()
        consumer.on("producerclose", functools.partial(events, "producerclose"))
        await session.video_producer.close()
        assert session.video_producer.closed
        await wait_for(lambda: events.calls == [("producerclose",)], "producerclose")
        assert consumer.closed
        dump = await session.receiver.server_transport.dump()
        assert consumer.id not in dump["consumerIds"]
        assert session.audio.consumer.id in dump["consumerIds"]
        send_dump = await session.sender.server_transport.dump()
        assert send_dump["producerIds"] == [session.audio_producer.id]

        await asyncio.sleep(GRACE_S)
        quiet_from, audio_frames = time.monotonic(), session.audio.audio_frames
        await asyncio.sleep(QUIET_S)
        assert [r for r in session.video.rtp if r.at >= quiet_from] == []
        assert session.audio.audio_frames > audio_frames + 20  # audio still flows


@pytest.mark.timeout(45)
@run
async def test_closing_the_send_transport_closes_producers_and_consumers() -> None:
    async with (running_worker(log_level="warn") as worker,
                media_session(worker) as session):
        await session.video.wait_frames(15, timeout=15)
        await session.audio.wait_frames(30, timeout=15)
        events = Recorder()
        for kind, producer in (("video", session.video_producer),
                               ("audio", session.audio_producer)):
            producer.on("transportclose", functools.partial(events, kind, "transportclose"))
        for reception in (session.video, session.audio):
            reception.consumer.on("producerclose",
                                  functools.partial(events, reception.kind, "producerclose"))

        await session.sender.server_transport.close()
        expected = {("video", "transportclose"), ("audio", "transportclose"),
                    ("video", "producerclose"), ("audio", "producerclose")}
        await wait_for(lambda: set(events.calls) == expected, f"{expected}, got {events.calls}")
        assert len(events.calls) == 4
        assert session.video_producer.closed and session.audio_producer.closed
        assert session.video.consumer.closed and session.audio.consumer.closed
        assert (await session.receiver.server_transport.dump())["consumerIds"] == []
        assert (await session.router.dump())["transportIds"] == [
            session.receiver.server_transport.id]
