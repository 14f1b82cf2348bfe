"""End-to-end media across two workers: real aiortc peers (tests/media_peer.py) on either side of
``Router.pipe_to_router``.

Two worker processes with one router each. A sender produces Opus and VP8 (frames carrying a
counter) through a WebRtcTransport on the first router; ``pipe_to_router`` pipes both producers
to the second router, over a pair of PipeTransports on 127.0.0.1 (plain, or with RTX and SRTP);
a receiver consumes both there through another WebRtcTransport, by the pipe producers' ids, and
decodes them. The tests check what the receiver decodes, that a key-frame request made on the
second worker reaches the sender on the first, and that the producer's close on the first
worker closes the consumer on the second. Each session ends with both workers' buffer pools
checked; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import statistics
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from controller import (
    PipeToRouterResult,
    PipeTransport,
    Producer,
    Router,
    WebRtcTransport,
    Worker,
)
from tests.controller_support import Recorder, running_worker
from tests.media_peer import (
    OPUS_CODEC,
    VP8_CODEC,
    CounterVideoTrack,
    Reception,
    RecvPeer,
    SendPeer,
    ToneAudioTrack,
    assert_buffers_returned,
    loopback_ice,
    wait_for,
)

logger = logging.getLogger("mediaworker.tests.media_pipe")

SCENARIO_TIMEOUT_S = 38.0
LOCALHOST = "127.0.0.1"
QUIET_S = 1.0
GRACE_S = 0.3

VARIANTS = [
    pytest.param(False, False, id="plain"),
    pytest.param(True, True, id="rtx-srtp"),
]


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


def stats_entry(stats: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    for entry in stats:
        if entry.get("type") == kind:
            return entry
    raise AssertionError(f"no {kind} entry in {stats}")


# -- a session across two workers ------------------------------------------------------------


@dataclass
class PipedSession:
    """A sender on worker 1's router, its producers piped to worker 2's router, consumed there."""

    workers: tuple[Worker, Worker]
    router1: Router
    router2: Router
    sender: SendPeer
    receiver: RecvPeer
    video_track: CounterVideoTrack
    audio_track: ToneAudioTrack
    video_producer: Producer
    audio_producer: Producer
    video_pipe: PipeToRouterResult
    audio_pipe: PipeToRouterResult
    video: Reception
    audio: Reception
    keyframe_requests: list[float]

    @property
    def pipe1(self) -> PipeTransport:
        return single_pipe_transport(self.router1)

    @property
    def pipe2(self) -> PipeTransport:
        return single_pipe_transport(self.router2)


def single_pipe_transport(router: Router) -> PipeTransport:
    pipes = [t for t in router.transports if isinstance(t, PipeTransport)]
    assert len(pipes) == 1, pipes
    return pipes[0]


def record_keyframe_requests(peer: SendPeer, kind: str) -> list[float]:
    """When aiortc's sender of ``kind`` is asked for a key frame (a PLI or FIR it received):
    wraps that RTCRtpSender's ``_send_keyframe``."""
    requests: list[float] = []
    for transceiver in peer.transport.handler.pc.getTransceivers():
        sender = transceiver.sender
        if transceiver.kind != kind or sender is None:
            continue
        original = sender._send_keyframe

        def recording(original: Callable[[], None] = original) -> None:
            requests.append(time.monotonic())
            original()

        sender._send_keyframe = recording
        return requests
    raise AssertionError(f"the sender has no {kind} transceiver")


async def webrtc_transport(router: Router) -> WebRtcTransport:
    return await router.create_webrtc_transport(
        listen_infos=[{"protocol": "udp", "ip": LOCALHOST}])


@contextlib.asynccontextmanager
async def piped_session(worker1: Worker, worker2: Worker, *, enable_rtx: bool,
                        enable_srtp: bool) -> AsyncIterator[PipedSession]:
    """The session; on a clean exit everything is closed (peers, WebRTC and pipe transports,
    routers) and both workers' buffer pools must be back to zero lent slots."""
    router1 = await worker1.create_router(media_codecs=[OPUS_CODEC, VP8_CODEC])
    router2 = await worker2.create_router(media_codecs=[OPUS_CODEC, VP8_CODEC])
    send_transport = await webrtc_transport(router1)
    recv_transport = await webrtc_transport(router2)
    sender = SendPeer("sender", router1, send_transport)
    receiver = RecvPeer("receiver", router2, recv_transport)
    video_track = CounterVideoTrack()
    audio_track = ToneAudioTrack()
    try:
        await sender.open()
        await receiver.open()
        audio_producer = await sender.produce(audio_track)
        video_producer = await sender.produce(video_track)
        keyframe_requests = record_keyframe_requests(sender, "video")
        await sender.wait_connected()
        pipes = [
            await router1.pipe_to_router(producer_id=producer.id, router=router2,
                                         enable_rtx=enable_rtx, enable_srtp=enable_srtp)
            for producer in (audio_producer, video_producer)
        ]
        audio = await receiver.consume(pipes[0].pipe_producer)
        video = await receiver.consume(pipes[1].pipe_producer)
        yield PipedSession(
            workers=(worker1, worker2), router1=router1, router2=router2,
            sender=sender, receiver=receiver, video_track=video_track,
            audio_track=audio_track, video_producer=video_producer,
            audio_producer=audio_producer, audio_pipe=pipes[0], video_pipe=pipes[1],
            video=video, audio=audio, keyframe_requests=keyframe_requests,
        )
    except BaseException:
        for number, worker in enumerate((worker1, worker2), 1):
            for line in list(worker._stderr_lines)[-30:]:
                logger.warning("worker %d: %s", number, line)
        raise
    finally:
        await receiver.close()
        await sender.close()
        video_track.stop()
        audio_track.stop()
        await send_transport.close()
        await recv_transport.close()
        for router in (router1, router2):
            for transport in router.transports:
                await transport.close()
    for router in (router1, router2):
        assert (await router.dump())["transportIds"] == []
    await assert_buffers_returned(worker1)
    await assert_buffers_returned(worker2)
    await router1.close()
    await router2.close()
    for worker in (worker1, worker2):
        assert (await worker.dump())["routerIds"] == []
        await assert_buffers_returned(worker)


@contextlib.asynccontextmanager
async def two_worker_session(*, enable_rtx: bool,
                             enable_srtp: bool) -> AsyncIterator[PipedSession]:
    async with (running_worker(log_level="warn") as worker1,
                running_worker(log_level="warn") as worker2,
                piped_session(worker1, worker2, enable_rtx=enable_rtx,
                              enable_srtp=enable_srtp) as session):
        assert worker1.pid != worker2.pid
        yield session


# -- checks ------------------------------------------------------------------------------------


def check_video(session: PipedSession, *, min_frames: int) -> None:
    """Decoded counters rise strictly, each one a counter the sender really sent; every frame
    the receiver's decoder gave out shows a counter."""
    video = session.video
    decoded = video.decoded
    assert len(decoded) >= min_frames, f"only {len(decoded)} video frames decoded"
    assert len(video.video) == len(decoded), (
        f"{len(video.video) - len(decoded)} frames without a readable counter")
    assert strictly_increasing(decoded), decoded
    sent = set(session.video_track.sent)
    assert set(decoded) <= sent, sorted(set(decoded) - sent)[:10]


def check_audio(session: PipedSession, *, min_frames: int) -> None:
    audio = session.audio
    assert audio.audio_frames >= min_frames, f"only {audio.audio_frames} audio frames decoded"
    assert audio.audio_frames <= session.audio_track.frames_sent + 1
    # The 440 Hz tone (RMS about 5600 sent) arrives as sound, not silence.
    levels = audio.audio_levels[10:]
    assert levels and statistics.median(levels) > 1000, statistics.median(levels or [0.0])


async def pli_counts(session: PipedSession) -> tuple[int, int, int]:
    """PLIs (+ FIRs) sent by worker 2's pipe producer into the pipe, received by worker 1's pipe
    consumer from it, and sent by worker 1's producer to the sender."""
    pipe_producer = stats_entry(await session.video_pipe.pipe_producer.get_stats(),
                                "inbound-rtp")
    pipe_consumer = stats_entry(await session.video_pipe.pipe_consumer.get_stats(),
                                "outbound-rtp")
    producer = stats_entry(await session.video_producer.get_stats(), "inbound-rtp")
    sent, received, asked = (int(entry.get("pliCount", 0)) + int(entry.get("firCount", 0))
                             for entry in (pipe_producer, pipe_consumer, producer))
    return sent, received, asked


# -- tests -------------------------------------------------------------------------------------


@pytest.mark.timeout(45)
@pytest.mark.parametrize(("enable_rtx", "enable_srtp"), VARIANTS)
@run
async def test_audio_and_vp8_through_a_pipe_between_workers(enable_rtx: bool,
                                                            enable_srtp: bool) -> None:
    async with two_worker_session(enable_rtx=enable_rtx, enable_srtp=enable_srtp) as session:
        video_pipe, audio_pipe = session.video_pipe, session.audio_pipe
        # The pipe producers keep the producers' ids (routers on two workers).
        assert video_pipe.pipe_producer.id == session.video_producer.id
        assert audio_pipe.pipe_producer.id == session.audio_producer.id
        assert video_pipe.pipe_consumer.type == "pipe"
        assert session.video.consumer.producer_id == session.video_producer.id
        pipe1, pipe2 = session.pipe1, session.pipe2
        assert (pipe1.rtx, pipe2.rtx) == (enable_rtx, enable_rtx)
        assert (pipe1.srtp_parameters is not None) == enable_srtp
        assert (pipe2.srtp_parameters is not None) == enable_srtp
        assert pipe1.tuple["remotePort"] == pipe2.tuple["localPort"]
        assert pipe2.tuple["remotePort"] == pipe1.tuple["localPort"]
        pipe_mimes = {c["mimeType"].lower()
                      for c in video_pipe.pipe_consumer.rtp_parameters["codecs"]}
        assert ("video/rtx" in pipe_mimes) == enable_rtx, pipe_mimes

        await session.video.wait_frames(60, timeout=20)
        await session.audio.wait_frames(110, timeout=20)
        check_video(session, min_frames=50)
        check_audio(session, min_frames=100)
        # Nothing lost on the way: the decoded counters are a run of consecutive sent ones.
        decoded, sent = session.video.decoded, session.video_track.sent
        start = sent.index(decoded[0])
        assert decoded == sent[start:start + len(decoded)], decoded
        # The consumer was resumed after the client was set up: its first packet starts a key
        # frame, which the sender made when asked through the pipe.
        assert session.video.media_rtp[0].keyframe_start
        assert session.keyframe_requests, "the sender was never asked for a key frame"

        # The media crossed the pipe: out of worker 1's pipe consumers, into worker 2's pipe
        # producers.
        for pipe in (video_pipe, audio_pipe):
            outbound = stats_entry(await pipe.pipe_consumer.get_stats(), "outbound-rtp")
            inbound = stats_entry(await pipe.pipe_producer.get_stats(), "inbound-rtp")
            assert outbound["packetCount"] > 0 and inbound["packetCount"] > 0, (outbound, inbound)
        dump1, dump2 = await pipe1.dump(), await pipe2.dump()
        assert sorted(dump1["consumerIds"]) == sorted(
            [video_pipe.pipe_consumer.id, audio_pipe.pipe_consumer.id])
        assert sorted(dump2["producerIds"]) == sorted(
            [video_pipe.pipe_producer.id, audio_pipe.pipe_producer.id])


@pytest.mark.timeout(45)
@pytest.mark.parametrize(("enable_rtx", "enable_srtp"), VARIANTS)
@run
async def test_key_frame_request_on_worker2_reaches_the_sender_on_worker1(
        enable_rtx: bool, enable_srtp: bool) -> None:
    async with two_worker_session(enable_rtx=enable_rtx, enable_srtp=enable_srtp) as session:
        video = session.video
        await video.wait_frames(20, timeout=15)
        consumer = video.consumer
        await consumer.pause()
        assert (await consumer.dump())["paused"] is True

        await asyncio.sleep(GRACE_S)  # packets and frames already in flight
        quiet_from, frames_before, packets_before = time.monotonic(), video.frames, len(video.rtp)
        last_before = video.decoded[-1]
        requests_before = len(session.keyframe_requests)
        counts_before = await pli_counts(session)
        await asyncio.sleep(QUIET_S)
        assert video.frames == frames_before, "video frames arrived while paused"
        assert len(video.rtp) == packets_before, "RTP arrived while paused"
        assert [r for r in video.rtp if r.at >= quiet_from] == []
        last_packet = video.media_rtp[-1]
        audio_frames = session.audio.audio_frames
        assert audio_frames > 0

        resumed_at = time.monotonic()
        await consumer.resume()
        await video.wait_frames(frames_before + 15, timeout=10)
        # The resume asked worker 2's pipe producer for a key frame; the request crossed the
        # pipe to worker 1, whose producer asked aiortc's sender, which made one.
        counts_after = await pli_counts(session)
        assert all(after > before for before, after in zip(counts_before, counts_after,
                                                            strict=True)), (
            f"PLI/FIR counts (pipe producer sent, pipe consumer received, producer sent): "
            f"{counts_before} -> {counts_after}")
        asked = [at for at in session.keyframe_requests[requests_before:] if at >= resumed_at]
        assert asked, "the sender was not asked for a key frame after the resume"

        after = [r for r in video.media_rtp if r.at >= resumed_at]
        assert after[0].keyframe_start, "the first packet after the resume is not a key frame"
        assert after[0].at >= asked[0]
        assert after[0].seq == (last_packet.seq + 1) & 0xFFFF, (last_packet.seq, after[0].seq)
        assert after[0].ssrc == last_packet.ssrc
        # aiortc hands a frame to the decoder once the next frame's first packet arrives: the
        # last frame sent before the pause may come out just after the resume.
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
@pytest.mark.parametrize(("enable_rtx", "enable_srtp"), VARIANTS)
@run
async def test_closing_the_producer_on_worker1_closes_the_consumer_on_worker2(
        enable_rtx: bool, enable_srtp: bool) -> None:
    async with two_worker_session(enable_rtx=enable_rtx, enable_srtp=enable_srtp) as session:
        await session.video.wait_frames(15, timeout=15)
        video_pipe, audio_pipe = session.video_pipe, session.audio_pipe
        consumer = session.video.consumer
        events = Recorder()
        consumer.on("producerclose", functools.partial(events, "consumer producerclose"))
        video_pipe.pipe_consumer.on("producerclose",
                                    functools.partial(events, "pipe consumer producerclose"))
        await session.video_producer.close()
        assert session.video_producer.closed
        await wait_for(lambda: ("consumer producerclose",) in events.calls,
                       f"producerclose on worker 2 (got {events.calls})")
        assert sorted(events.calls) == [("consumer producerclose",),
                                        ("pipe consumer producerclose",)]
        assert consumer.closed
        assert video_pipe.pipe_consumer.closed and video_pipe.pipe_producer.closed
        assert not session.audio.consumer.closed

        recv_dump = await session.receiver.server_transport.dump()
        assert recv_dump["consumerIds"] == [session.audio.consumer.id]
        send_dump = await session.sender.server_transport.dump()
        assert send_dump["producerIds"] == [session.audio_producer.id]
        dump1, dump2 = await session.pipe1.dump(), await session.pipe2.dump()
        assert dump1["consumerIds"] == [audio_pipe.pipe_consumer.id]
        assert dump2["producerIds"] == [audio_pipe.pipe_producer.id]

        await asyncio.sleep(GRACE_S)
        quiet_from, audio_frames = time.monotonic(), session.audio.audio_frames
        await asyncio.sleep(QUIET_S)
        assert [r for r in session.video.rtp if r.at >= quiet_from] == []
        assert session.audio.audio_frames > audio_frames + 20  # audio still flows
