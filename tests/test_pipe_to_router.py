"""``Router.pipe_to_router`` against real workers: a producer on one router consumed on another,
on two workers (two processes) and on one worker.

Media goes in through a DirectTransport producer on the first router (``Producer.send``) and
comes out of a DirectTransport consumer on the second (its ``rtp`` event), through the pair of
PipeTransports on 127.0.0.1 that ``pipe_to_router`` creates and connects. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from controller import (
    Consumer,
    ControllerTypeError,
    DirectTransport,
    InvalidStateError,
    PipeToRouterResult,
    PipeTransport,
    Producer,
    Router,
)
from tests.controller_support import Recorder, async_test, is_closed, running_worker, wait_until
from tests.test_controller_transports import (
    MEDIA_CODECS,
    OPUS_PT,
    VP8_PAYLOAD,
    VP8_PT,
    opus_parameters,
    parse_rtp,
    rtcp_types,
    rtp_packet,
    vp8_parameters,
)


@dataclass
class Sides:
    """A router with a direct transport to inject on, and another with one to read from."""

    router1: Router
    router2: Router
    inject: DirectTransport
    read: DirectTransport


@contextlib.asynccontextmanager
async def two_workers() -> AsyncIterator[Sides]:
    async with running_worker() as worker1, running_worker() as worker2:
        router1 = await worker1.create_router(media_codecs=MEDIA_CODECS)
        router2 = await worker2.create_router(media_codecs=MEDIA_CODECS)
        yield Sides(router1, router2, await router1.create_direct_transport(),
                    await router2.create_direct_transport())


@contextlib.asynccontextmanager
async def one_worker() -> AsyncIterator[Sides]:
    async with running_worker() as worker:
        router1 = await worker.create_router(media_codecs=MEDIA_CODECS)
        router2 = await worker.create_router(media_codecs=MEDIA_CODECS)
        yield Sides(router1, router2, await router1.create_direct_transport(),
                    await router2.create_direct_transport())


def pipe_transports(router: Router) -> list[PipeTransport]:
    return [t for t in router.transports if isinstance(t, PipeTransport)]


def paused(entity: Producer | Consumer) -> bool:
    """Read through a call, so that mypy does not keep an earlier ``assert`` on the flag."""
    return entity.paused


async def consume_on(s: Sides, producer_id: str) -> tuple[Consumer, list[bytes]]:
    consumer = await s.read.consume(producer_id=producer_id,
                                    rtp_capabilities=s.router2.rtp_capabilities)
    received: list[bytes] = []
    consumer.on("rtp", received.append)
    return consumer, received


async def check_media_flows(s: Sides, producer: Producer, ssrc: int, **pipe: Any) -> None:
    """Pipe ``producer`` (VP8, ``ssrc``) to router2 and check packets arrive byte-exact."""
    result = await s.router1.pipe_to_router(producer_id=producer.id, router=s.router2, **pipe)
    assert isinstance(result, PipeToRouterResult)
    assert result.pipe_consumer.type == "pipe"
    same_worker = s.router1._channel is s.router2._channel
    assert (result.pipe_producer.id == producer.id) is not same_worker
    assert result.pipe_producer.kind == "video"
    consumer, received = await consume_on(s, result.pipe_producer.id)
    payloads = [VP8_PAYLOAD + bytes([i]) * (i + 1) for i in range(20)]
    for i, payload in enumerate(payloads):
        producer.send(rtp_packet(VP8_PT, 1000 + i, 3000 * i, ssrc, payload, marker=True))
        await asyncio.sleep(0.005)
    await wait_until(lambda: len(received) >= len(payloads))
    packets = [parse_rtp(data) for data in received]
    assert [p.payload for p in packets] == payloads
    expected = (consumer.rtp_parameters["encodings"][0]["ssrc"],
                consumer.rtp_parameters["codecs"][0]["payloadType"])
    assert {(p.ssrc, p.pt) for p in packets} == {expected}


# -- media ----------------------------------------------------------------------------------


@async_test
async def test_pipe_to_router_across_two_workers() -> None:
    async with two_workers() as s:
        new_transports = Recorder()
        s.router2.observer.on("newtransport", new_transports)
        producer = await s.inject.produce(kind="video", rtp_parameters=vp8_parameters(0x3333),
                                          app_data={"who": "camera"})
        await check_media_flows(s, producer, 0x3333)
        (local,) = pipe_transports(s.router1)
        (remote,) = pipe_transports(s.router2)
        assert new_transports.calls == [(remote,)]
        # Connected to each other.
        assert local.tuple["remotePort"] == remote.tuple["localPort"]
        assert remote.tuple["remotePort"] == local.tuple["localPort"]
        # The pipe producer carries the producer's app_data.
        (pipe_producer,) = remote.producers
        assert pipe_producer.app_data == {"who": "camera"}
        assert (await s.router2.dump())["mapProducerIdConsumerIds"]


@async_test
async def test_pipe_to_router_with_srtp_and_rtx() -> None:
    async with two_workers() as s:
        producer = await s.inject.produce(kind="video", rtp_parameters=vp8_parameters(0x4444))
        await check_media_flows(s, producer, 0x4444, enable_srtp=True, enable_rtx=True)
        (local,) = pipe_transports(s.router1)
        (remote,) = pipe_transports(s.router2)
        assert local.srtp_parameters is not None and remote.srtp_parameters is not None
        assert local.rtx and remote.rtx
        (pipe_consumer,) = local.consumers
        mimes = [c["mimeType"] for c in pipe_consumer.rtp_parameters["codecs"]]
        assert mimes == ["video/VP8", "video/rtx"]


# One worker: ids are unique within a worker, so the pipe producer gets a new id (keep_id
# defaults to False there, and True is refused).
@async_test
async def test_pipe_to_router_on_one_worker() -> None:
    async with one_worker() as s:
        producer = await s.inject.produce(kind="video", rtp_parameters=vp8_parameters(0x5555))
        await check_media_flows(s, producer, 0x5555)


@async_test
async def test_pipe_to_router_on_one_worker_refuses_keep_id() -> None:
    async with one_worker() as s:
        producer = await s.inject.produce(kind="video", rtp_parameters=vp8_parameters(0x5555))
        with pytest.raises(ControllerTypeError):
            await s.router1.pipe_to_router(producer_id=producer.id, router=s.router2,
                                           keep_id=True)
        assert pipe_transports(s.router1) == [] and pipe_transports(s.router2) == []
        assert (await producer.dump())["id"] == producer.id


# -- propagation ----------------------------------------------------------------------------


@async_test
async def test_pause_resume_and_close_follow_the_producer() -> None:
    async with two_workers() as s:
        producer = await s.inject.produce(kind="audio", rtp_parameters=opus_parameters(0x66))
        result = await s.router1.pipe_to_router(producer_id=producer.id, router=s.router2)
        pipe_producer = result.pipe_producer
        consumer, received = await consume_on(s, producer.id)
        pauses = Recorder()
        resumes = Recorder()
        consumer.on("producerpause", pauses)
        consumer.on("producerresume", resumes)

        await producer.pause()
        await wait_until(lambda: paused(pipe_producer) and consumer.producer_paused)
        assert pauses.calls == [()]
        producer.send(rtp_packet(OPUS_PT, 1, 960, 0x66, b"while paused"))
        await asyncio.sleep(0.2)
        assert received == []

        await producer.resume()
        await wait_until(lambda: not paused(pipe_producer) and not consumer.producer_paused)
        assert resumes.calls == [()]
        producer.send(rtp_packet(OPUS_PT, 2, 1920, 0x66, b"resumed"))
        await wait_until(lambda: len(received) == 1)
        assert parse_rtp(received[0]).payload == b"resumed"

        closes = Recorder()
        consumer.on("producerclose", closes)
        await producer.close()
        await wait_until(lambda: is_closed(pipe_producer) and is_closed(consumer))
        assert closes.calls == [()]
        assert is_closed(result.pipe_consumer)
        # The pipe transports stay for other producers.
        assert len(pipe_transports(s.router1)) == len(pipe_transports(s.router2)) == 1


@async_test
async def test_a_paused_producer_is_piped_paused() -> None:
    async with two_workers() as s:
        producer = await s.inject.produce(kind="audio", rtp_parameters=opus_parameters(),
                                          paused=True)
        result = await s.router1.pipe_to_router(producer_id=producer.id, router=s.router2)
        assert result.pipe_consumer.producer_paused is True
        assert paused(result.pipe_producer) is True
        assert (await result.pipe_producer.dump())["paused"] is True
        await producer.resume()
        await wait_until(lambda: not paused(result.pipe_producer))


@async_test
async def test_closing_either_end_closes_the_other() -> None:
    async with two_workers() as s:
        audio = await s.inject.produce(kind="audio", rtp_parameters=opus_parameters())
        video = await s.inject.produce(kind="video", rtp_parameters=vp8_parameters())
        first = await s.router1.pipe_to_router(producer_id=audio.id, router=s.router2)
        second = await s.router1.pipe_to_router(producer_id=video.id, router=s.router2)

        # The pipe producer closing closes the pipe consumer (the producer stays).
        await first.pipe_producer.close()
        await wait_until(lambda: is_closed(first.pipe_consumer))
        assert not audio.closed

        # The pipe consumer closing closes the pipe producer.
        await second.pipe_consumer.close()
        await wait_until(lambda: is_closed(second.pipe_producer))
        assert not video.closed

        # Both can be piped again over the same pair.
        again = await s.router1.pipe_to_router(producer_id=audio.id, router=s.router2)
        assert again.pipe_consumer.transport_id == first.pipe_consumer.transport_id

        # Closing one pipe transport closes the other, with what is on them, and the pair is
        # forgotten: the next call makes a new one.
        closed = Recorder()
        again.pipe_consumer.on("transportclose", closed)
        (local,) = pipe_transports(s.router1)
        (remote,) = pipe_transports(s.router2)
        await local.close()
        await wait_until(lambda: is_closed(remote))
        assert is_closed(again.pipe_consumer) and is_closed(again.pipe_producer)
        assert closed.calls == [()]
        fresh = await s.router1.pipe_to_router(producer_id=audio.id, router=s.router2)
        assert fresh.pipe_consumer.transport_id != local.id
        assert len(pipe_transports(s.router1)) == len(pipe_transports(s.router2)) == 1

        # A router closing takes its pipe transport; the other side's closes too.
        (remote,) = pipe_transports(s.router2)
        await s.router1.close()
        await wait_until(lambda: is_closed(remote))
        assert is_closed(fresh.pipe_producer)


@async_test
async def test_fan_out_tree_and_key_frame_requests() -> None:
    """A piped producer is piped on from its new router; a key frame request at the far end
    reaches the source, and the source's close reaches the far end."""
    async with running_worker() as w1, running_worker() as w2, running_worker() as w3:
        r1, r2, r3 = [await w.create_router(media_codecs=MEDIA_CODECS) for w in (w1, w2, w3)]
        source = await r1.create_direct_transport()
        producer = await source.produce(kind="video", rtp_parameters=vp8_parameters(0x99))
        await r1.pipe_to_router(producer_id=producer.id, router=r2)
        hop = await r2.pipe_to_router(producer_id=producer.id, router=r3)
        assert hop.pipe_producer.id == producer.id
        sink = await r3.create_direct_transport()
        consumer = await sink.consume(producer_id=producer.id,
                                      rtp_capabilities=r3.rtp_capabilities)
        received: list[bytes] = []
        consumer.on("rtp", received.append)
        for seq in range(5):
            producer.send(rtp_packet(VP8_PT, seq, 3000 * seq, 0x99, VP8_PAYLOAD, marker=True))
            await asyncio.sleep(0.005)
        await wait_until(lambda: len(received) == 5)
        assert all(parse_rtp(data).payload == VP8_PAYLOAD for data in received)

        rtcp: list[bytes] = []
        source.on("rtcp", rtcp.append)
        await asyncio.sleep(0.3)  # the key frame requests made when the consumers appeared
        before = len(rtcp)
        await consumer.request_key_frame()
        await wait_until(lambda: any((206, 1) in rtcp_types(data) for data in rtcp[before:]))

        await producer.close()
        await wait_until(lambda: is_closed(consumer))


# -- the pair cache -------------------------------------------------------------------------


@async_test
async def test_the_transport_pair_is_reused() -> None:
    async with two_workers() as s:
        audio = await s.inject.produce(kind="audio", rtp_parameters=opus_parameters(0x10))
        video = await s.inject.produce(kind="video", rtp_parameters=vp8_parameters(0x20))
        # Concurrent first calls share one pair.
        first, second = await asyncio.gather(
            s.router1.pipe_to_router(producer_id=audio.id, router=s.router2),
            s.router1.pipe_to_router(producer_id=video.id, router=s.router2),
        )
        (local,) = pipe_transports(s.router1)
        (remote,) = pipe_transports(s.router2)
        assert first.pipe_consumer.transport_id == second.pipe_consumer.transport_id == local.id
        assert {p.id for p in remote.producers} == {audio.id, video.id}

        # The other direction uses the same pair, the other way round.
        back_source = await s.read.produce(kind="audio", rtp_parameters=opus_parameters(0x30))
        back = await s.router2.pipe_to_router(producer_id=back_source.id, router=s.router1)
        assert back.pipe_consumer.transport_id == remote.id
        assert back.pipe_producer.transport_id == local.id
        assert len(pipe_transports(s.router1)) == len(pipe_transports(s.router2)) == 1

        # Both piped producers carry media.
        consumer, received = await consume_on(s, video.id)
        video.send(rtp_packet(VP8_PT, 1, 0, 0x20, VP8_PAYLOAD, marker=True))
        await wait_until(lambda: len(received) == 1)
        assert parse_rtp(received[0]).payload == VP8_PAYLOAD
        assert consumer.kind == "video"


# -- arguments ------------------------------------------------------------------------------


@async_test
async def test_pipe_to_router_arguments() -> None:
    async with two_workers() as s:
        producer = await s.inject.produce(kind="audio", rtp_parameters=opus_parameters())
        for bad in (
            {"producer_id": "", "router": s.router2},
            {"producer_id": producer.id, "router": "router"},
            {"producer_id": producer.id, "router": s.router1},
            {"producer_id": producer.id, "router": s.router2, "listen_info": "127.0.0.1"},
            {"producer_id": producer.id, "router": s.router2, "enable_rtx": 1},
            {"producer_id": producer.id, "router": s.router2, "enable_srtp": "no"},
            {"producer_id": "no-such-producer", "router": s.router2},
        ):
            with pytest.raises(ControllerTypeError):
                await s.router1.pipe_to_router(**bad)
        assert pipe_transports(s.router1) == []
        # The producer must be this router's.
        with pytest.raises(ControllerTypeError):
            await s.router2.pipe_to_router(producer_id=producer.id, router=s.router1)
        # A listen_info the worker refuses: nothing stays.
        with pytest.raises(ControllerTypeError):
            await s.router1.pipe_to_router(producer_id=producer.id, router=s.router2,
                                           listen_info={"protocol": "tcp", "ip": "127.0.0.1"})
        assert pipe_transports(s.router1) == pipe_transports(s.router2) == []
        await s.router2.close()
        with pytest.raises(InvalidStateError):
            await s.router1.pipe_to_router(producer_id=producer.id, router=s.router2)
        await s.router1.close()
        with pytest.raises(InvalidStateError):
            await s.router1.pipe_to_router(producer_id=producer.id, router=s.router2)
