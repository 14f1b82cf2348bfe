"""The controller's Producer and Consumer against the real worker (no mocks), plus one test of
the order in which a new entity receives a notification read together with its create answer.

Producers are given RTP parameters as mediasoup-client builds them in Chrome (mid, one encoding
with an SSRC, an RTCP CNAME); consumers use the router's RTP capabilities. Every socket binds
127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from channel.codec import FrameDecoder, decode_payload, encode_frame
from controller import (
    Channel,
    Consumer,
    ControllerError,
    ControllerTypeError,
    InvalidStateError,
    Producer,
    Router,
    Transport,
    UnsupportedError,
    WebRtcTransport,
    Worker,
)
from tests.controller_support import Recorder, async_test, is_closed, running_worker, wait_until

LISTEN_INFOS: list[dict[str, Any]] = [{"protocol": "udp", "ip": "127.0.0.1"}]
MEDIA_CODECS: list[dict[str, Any]] = [
    {"kind": "audio", "mimeType": "audio/opus", "clockRate": 48000, "channels": 2},
    {"kind": "video", "mimeType": "video/VP8", "clockRate": 90000},
]
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
TWCC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"


def opus_parameters(ssrc: int = 11111111, mid: str = "0") -> dict[str, Any]:
    """What mediasoup-client sends for a Chrome microphone track."""
    return {
        "mid": mid,
        "codecs": [{
            "mimeType": "audio/opus", "payloadType": 111, "clockRate": 48000, "channels": 2,
            "parameters": {"minptime": 10, "useinbandfec": 1},
            "rtcpFeedback": [{"type": "transport-cc", "parameter": ""}],
        }],
        "headerExtensions": [
            {"uri": MID_URI, "id": 4, "encrypt": False, "parameters": {}},
            {"uri": ABS_SEND_TIME_URI, "id": 2, "encrypt": False, "parameters": {}},
            {"uri": TWCC_URI, "id": 3, "encrypt": False, "parameters": {}},
            {"uri": AUDIO_LEVEL_URI, "id": 1, "encrypt": False, "parameters": {}},
        ],
        "encodings": [{"ssrc": ssrc, "dtx": False}],
        "rtcp": {"cname": "Zm9vYmFy", "reducedSize": True},
    }


def vp8_parameters(ssrc: int = 22222222, mid: str = "1") -> dict[str, Any]:
    """What mediasoup-client sends for a Chrome camera track without simulcast."""
    feedback = [{"type": "goog-remb", "parameter": ""}, {"type": "transport-cc", "parameter": ""},
                {"type": "ccm", "parameter": "fir"}, {"type": "nack", "parameter": ""},
                {"type": "nack", "parameter": "pli"}]
    return {
        "mid": mid,
        "codecs": [
            {"mimeType": "video/VP8", "payloadType": 96, "clockRate": 90000, "parameters": {},
             "rtcpFeedback": feedback},
            {"mimeType": "video/rtx", "payloadType": 97, "clockRate": 90000,
             "parameters": {"apt": 96}, "rtcpFeedback": []},
        ],
        "headerExtensions": [
            {"uri": MID_URI, "id": 4, "encrypt": False, "parameters": {}},
            {"uri": ABS_SEND_TIME_URI, "id": 2, "encrypt": False, "parameters": {}},
            {"uri": TWCC_URI, "id": 3, "encrypt": False, "parameters": {}},
        ],
        "encodings": [{"ssrc": ssrc, "rtx": {"ssrc": ssrc + 1}, "scalabilityMode": "L1T3"}],
        "rtcp": {"cname": "Zm9vYmFy", "reducedSize": True},
    }


def caps_without(router: Router, mime_type: str) -> dict[str, Any]:
    """The router's capabilities without one codec (and the RTX codecs that pointed to it)."""
    caps = copy.deepcopy(router.rtp_capabilities)
    dropped = {c["preferredPayloadType"] for c in caps["codecs"] if c["mimeType"] == mime_type}
    caps["codecs"] = [
        c for c in caps["codecs"]
        if c["mimeType"] != mime_type and c.get("parameters", {}).get("apt") not in dropped
    ]
    return caps


def paused(entity: Producer | Consumer) -> bool:
    """Read through a call, so that mypy does not keep an earlier ``assert`` on the flag."""
    return entity.paused


@dataclass
class Room:
    worker: Worker
    router: Router
    send: WebRtcTransport
    recv: WebRtcTransport


@contextlib.asynccontextmanager
async def room() -> AsyncIterator[Room]:
    """A worker, a router with opus and VP8, and two WebRtcTransports on it."""
    async with running_worker() as worker:
        router = await worker.create_router(media_codecs=MEDIA_CODECS)
        send = await router.create_webrtc_transport(listen_infos=LISTEN_INFOS)
        recv = await router.create_webrtc_transport(listen_infos=LISTEN_INFOS)
        yield Room(worker, router, send, recv)


async def _produce_and_consume(r: Room, **consume_options: Any) -> tuple[Producer, Consumer]:
    producer = await r.send.produce(kind="audio", rtp_parameters=opus_parameters())
    consumer = await r.recv.consume(
        producer_id=producer.id, rtp_capabilities=r.router.rtp_capabilities, **consume_options
    )
    return producer, consumer


# -- produce --------------------------------------------------------------------------------


@async_test
async def test_produce_audio_and_video() -> None:
    async with room() as r:
        new_producers = Recorder()
        r.send.observer.on("newproducer", new_producers)
        given = opus_parameters()
        audio = await r.send.produce(kind="audio", rtp_parameters=given, app_data={"a": 1})
        assert isinstance(audio, Producer)
        assert new_producers.calls == [(audio,)]
        assert UUID_RE.match(audio.id)
        assert audio.kind == "audio"
        assert audio.type == "simple"
        assert audio.paused is False
        assert audio.closed is False
        assert audio.app_data == {"a": 1}
        assert audio.rtp_parameters == given
        assert audio.rtp_parameters is not given  # a copy
        assert audio.score == []
        assert audio.transport_id == r.send.id

        chosen_id = str(uuid.uuid4())
        video = await r.send.produce(
            kind="video", rtp_parameters=vp8_parameters(), paused=True,
            key_frame_request_delay=500, producer_id=chosen_id,
        )
        assert video.id == chosen_id
        assert video.kind == "video"
        assert video.type == "simple"
        assert video.paused is True
        assert video.app_data == {}
        assert r.send.producers == [audio, video]

        dump = await audio.dump()
        assert dump["id"] == audio.id
        assert dump["kind"] == "audio"
        assert dump["paused"] is False
        assert (await video.dump())["paused"] is True
        assert sorted((await r.send.dump())["producerIds"]) == sorted([audio.id, video.id])
        stats = await audio.get_stats()
        assert isinstance(stats, list)


@async_test
async def test_produce_bad_arguments() -> None:
    async with room() as r:
        params = opus_parameters()
        for bad in (
            {"kind": "data", "rtp_parameters": params},
            {"kind": "audio", "rtp_parameters": "x"},
            {"kind": "audio", "rtp_parameters": params, "paused": 1},
            {"kind": "audio", "rtp_parameters": params, "key_frame_request_delay": -1},
            {"kind": "audio", "rtp_parameters": params, "key_frame_request_delay": 1.5},
            {"kind": "audio", "rtp_parameters": params, "producer_id": ""},
            {"kind": "audio", "rtp_parameters": params, "app_data": ["x"]},
        ):
            with pytest.raises(ControllerTypeError):
                await r.send.produce(**bad)
        # The worker's TypeError: parameters it cannot read.
        with pytest.raises(ControllerTypeError):
            await r.send.produce(kind="audio", rtp_parameters={**params, "codecs": []})
        # The worker's UnsupportedError: a codec the router does not have ...
        h264 = vp8_parameters()
        h264["codecs"] = [{"mimeType": "video/H264", "payloadType": 102, "clockRate": 90000,
                           "parameters": {"packetization-mode": 1,
                                          "profile-level-id": "42e01f"}}]
        h264["encodings"] = [{"ssrc": 33333333}]
        with pytest.raises(UnsupportedError):
            await r.send.produce(kind="video", rtp_parameters=h264)
        # ... and simulcast (several encodings).
        simulcast = vp8_parameters()
        simulcast["encodings"] = [{"ssrc": 44444444}, {"ssrc": 44444445}]
        with pytest.raises(UnsupportedError):
            await r.send.produce(kind="video", rtp_parameters=simulcast)
        assert r.send.producers == []
        assert (await r.send.dump())["producerIds"] == []

        # A duplicate id is the worker's Error.
        producer = await r.send.produce(kind="audio", rtp_parameters=params)
        with pytest.raises(ControllerError):
            await r.send.produce(kind="video", rtp_parameters=vp8_parameters(),
                                 producer_id=producer.id)
        assert r.send.producers == [producer]


# -- consume --------------------------------------------------------------------------------


@async_test
async def test_consume_audio_and_video() -> None:
    async with room() as r:
        audio = await r.send.produce(kind="audio", rtp_parameters=opus_parameters())
        video = await r.send.produce(kind="video", rtp_parameters=vp8_parameters(), paused=True)
        new_consumers = Recorder()
        r.recv.observer.on("newconsumer", new_consumers)
        caps = r.router.rtp_capabilities

        a = await r.recv.consume(producer_id=audio.id, rtp_capabilities=caps, app_data={"c": 1})
        assert isinstance(a, Consumer)
        assert new_consumers.calls == [(a,)]
        assert UUID_RE.match(a.id) and a.id != audio.id
        assert a.producer_id == audio.id
        assert a.transport_id == r.recv.id
        assert a.kind == "audio"
        assert a.type == "simple"
        assert a.paused is False
        assert a.producer_paused is False
        assert a.priority == 1
        assert set(a.score) >= {"score", "producerScore", "producerScores"}
        assert a.preferred_layers is None
        assert a.current_layers is None
        assert a.app_data == {"c": 1}
        params = a.rtp_parameters
        assert params["codecs"][0]["mimeType"] == "audio/opus"
        assert isinstance(params["mid"], str) and params["mid"]
        assert len(params["encodings"]) == 1
        assert isinstance(params["encodings"][0]["ssrc"], int)
        assert params["encodings"][0]["ssrc"] != opus_parameters()["encodings"][0]["ssrc"]
        assert params["rtcp"]["cname"]

        # Consuming a paused producer, paused and with a chosen mid.
        v = await r.recv.consume(producer_id=video.id, rtp_capabilities=caps, paused=True,
                                 mid="video-1")
        assert v.kind == "video"
        assert v.paused is True
        assert v.producer_paused is True
        assert v.rtp_parameters["mid"] == "video-1"
        assert v.rtp_parameters["codecs"][0]["mimeType"] == "video/VP8"
        assert v.rtp_parameters["encodings"][0]["ssrc"] != params["encodings"][0]["ssrc"]
        assert r.recv.consumers == [a, v]

        dump = await a.dump()
        assert dump["id"] == a.id
        assert dump["producerId"] == audio.id
        assert (await v.dump())["paused"] is True
        assert sorted((await r.recv.dump())["consumerIds"]) == sorted([a.id, v.id])
        router_dump = await r.router.dump()
        mapping = {entry["key"]: entry["values"]
                   for entry in router_dump["mapProducerIdConsumerIds"]}
        assert mapping[audio.id] == [a.id]
        stats = await a.get_stats()
        assert isinstance(stats, list)

        # The same producer consumed twice, on the transport that produces it too.
        again = await r.send.consume(producer_id=audio.id, rtp_capabilities=caps)
        assert again.id != a.id
        assert r.send.consumers == [again]


@async_test
async def test_can_consume() -> None:
    async with room() as r:
        audio = await r.send.produce(kind="audio", rtp_parameters=opus_parameters())
        video = await r.send.produce(kind="video", rtp_parameters=vp8_parameters())
        caps = r.router.rtp_capabilities
        assert await r.router.can_consume(audio.id, caps) is True
        assert await r.router.can_consume(video.id, caps) is True
        no_opus = caps_without(r.router, "audio/opus")
        assert await r.router.can_consume(audio.id, no_opus) is False
        assert await r.router.can_consume(video.id, no_opus) is True
        assert await r.router.can_consume(str(uuid.uuid4()), caps) is False
        with pytest.raises(ControllerTypeError):
            await r.router.can_consume(audio.id, "caps")  # type: ignore[arg-type]
        with pytest.raises(ControllerTypeError):
            await r.router.can_consume(5, caps)  # type: ignore[arg-type]


@async_test
async def test_consume_errors() -> None:
    async with room() as r:
        audio = await r.send.produce(kind="audio", rtp_parameters=opus_parameters())
        caps = r.router.rtp_capabilities
        # An unknown producer: the worker's Error, as the controller's base error.
        with pytest.raises(ControllerError) as info:
            await r.recv.consume(producer_id=str(uuid.uuid4()), rtp_capabilities=caps)
        assert type(info.value) is ControllerError
        # Capabilities that cannot consume it: the worker's UnsupportedError.
        with pytest.raises(UnsupportedError):
            await r.recv.consume(producer_id=audio.id,
                                 rtp_capabilities=caps_without(r.router, "audio/opus"))
        for bad in (
            {"producer_id": 5, "rtp_capabilities": caps},
            {"producer_id": audio.id, "rtp_capabilities": None},
            {"producer_id": audio.id, "rtp_capabilities": caps, "paused": "no"},
            {"producer_id": audio.id, "rtp_capabilities": caps, "mid": ""},
            {"producer_id": audio.id, "rtp_capabilities": caps, "enable_rtx": 1},
            {"producer_id": audio.id, "rtp_capabilities": caps, "ignore_dtx": None},
            {"producer_id": audio.id, "rtp_capabilities": caps, "app_data": 3},
        ):
            with pytest.raises(ControllerTypeError):
                await r.recv.consume(**bad)
        assert r.recv.consumers == []
        assert (await r.recv.dump())["consumerIds"] == []


# -- pause and resume -----------------------------------------------------------------------


@async_test
async def test_producer_pause_resume_reaches_its_consumers() -> None:
    async with room() as r:
        producer, consumer = await _produce_and_consume(r)
        producer_events = Recorder()
        for event in ("pause", "resume"):
            producer.observer.on(event, functools.partial(producer_events, event))
        consumer_events = Recorder()
        for event in ("producerpause", "producerresume"):
            consumer.on(event, functools.partial(consumer_events, event))
        for event in ("pause", "resume"):
            consumer.observer.on(event, functools.partial(consumer_events, "observer " + event))

        await producer.pause()
        assert paused(producer) is True
        assert (await producer.dump())["paused"] is True
        await producer.pause()  # no second observer event
        assert producer_events.calls == [("pause",)]
        await wait_until(lambda: consumer.producer_paused)
        assert consumer_events.calls == [("producerpause",), ("observer pause",)]
        assert paused(consumer) is False

        # Pausing the consumer while its producer is paused: no observer event.
        await consumer.pause()
        assert paused(consumer) is True
        await producer.resume()
        assert paused(producer) is False
        assert producer_events.calls == [("pause",), ("resume",)]
        await wait_until(lambda: not consumer.producer_paused)
        # The consumer is still paused itself: producerresume but no observer resume.
        assert consumer_events.calls[2:] == [("producerresume",)]

        await consumer.resume()
        assert paused(consumer) is False
        assert consumer_events.calls[3:] == [("observer resume",)]
        dump = await consumer.dump()
        assert dump["paused"] is False
        assert dump["producerPaused"] is False


@async_test
async def test_consumer_pause_resume_and_methods() -> None:
    async with room() as r:
        _, consumer = await _produce_and_consume(r)
        events = Recorder()
        for event in ("pause", "resume"):
            consumer.observer.on(event, functools.partial(events, event))
        await consumer.pause()
        await consumer.pause()
        assert paused(consumer) is True
        assert (await consumer.dump())["paused"] is True
        await consumer.resume()
        assert paused(consumer) is False
        assert events.calls == [("pause",), ("resume",)]

        await consumer.set_priority(3)
        assert consumer.priority == 3
        await consumer.unset_priority()
        assert consumer.priority == 1
        with pytest.raises(ControllerTypeError):
            await consumer.set_priority(0)
        assert await consumer.set_preferred_layers(spatial_layer=0, temporal_layer=0) is None
        assert consumer.preferred_layers is None
        with pytest.raises(ControllerTypeError):
            await consumer.set_preferred_layers(spatial_layer="0")  # type: ignore[arg-type]
        await consumer.request_key_frame()
        await consumer.enable_trace_event(["rtp", "keyframe"])
        await consumer.enable_trace_event()
        with pytest.raises(ControllerTypeError):
            await consumer.enable_trace_event("rtp")


@async_test
async def test_producer_trace_event_types() -> None:
    async with room() as r:
        producer = await r.send.produce(kind="audio", rtp_parameters=opus_parameters())
        await producer.enable_trace_event(["rtp", "pli"])
        assert set((await producer.dump())["traceEventTypes"]) == {"rtp", "pli"}
        await producer.enable_trace_event([])
        with pytest.raises(ControllerTypeError):
            await producer.enable_trace_event([1])  # type: ignore[list-item]
        # As mediasoup, the worker ignores the types it does not know.
        await producer.enable_trace_event(["nosuch", "keyframe"])
        assert (await producer.dump())["traceEventTypes"] == ["keyframe"]


# -- close ----------------------------------------------------------------------------------


@async_test
async def test_producer_close_closes_its_consumers() -> None:
    async with room() as r:
        producer, consumer = await _produce_and_consume(r)
        producer_closed = Recorder()
        producer.observer.on("close", producer_closed)
        consumer_events = Recorder()
        for event in ("producerclose", "transportclose"):
            consumer.on(event, functools.partial(consumer_events, event))
        consumer.observer.on("close", functools.partial(consumer_events, "observer close"))

        await producer.close()
        assert is_closed(producer)
        assert producer_closed.calls == [()]
        assert r.send.producers == []
        await wait_until(lambda: consumer.closed)
        assert consumer_events.calls == [("producerclose",), ("observer close",)]
        assert r.recv.consumers == []
        assert (await r.send.dump())["producerIds"] == []
        assert (await r.recv.dump())["consumerIds"] == []

        await producer.close()  # a no-op
        await consumer.close()  # a no-op: the worker closed it already
        assert producer_closed.calls == [()]
        assert consumer_events.calls == [("producerclose",), ("observer close",)]
        with pytest.raises(InvalidStateError):
            await producer.dump()
        with pytest.raises(InvalidStateError):
            await consumer.pause()


@async_test
async def test_consumer_close() -> None:
    async with room() as r:
        producer, consumer = await _produce_and_consume(r)
        closed = Recorder()
        consumer.observer.on("close", closed)
        await consumer.close()
        assert is_closed(consumer)
        assert closed.calls == [()]
        assert r.recv.consumers == []
        assert (await r.recv.dump())["consumerIds"] == []
        assert not producer.closed
        assert (await producer.dump())["id"] == producer.id
        with pytest.raises(InvalidStateError):
            await consumer.get_stats()


def _record_close_events(recorder: Recorder, name: str, entity: Producer | Consumer) -> None:
    for event in ("transportclose", "producerclose"):
        entity.on(event, functools.partial(recorder, name, event))
    entity.observer.on("close", functools.partial(recorder, name, "observer close"))


@async_test
async def test_transport_close_closes_producers_and_consumers() -> None:
    async with room() as r:
        producer = await r.send.produce(kind="audio", rtp_parameters=opus_parameters())
        other = await r.recv.produce(kind="video", rtp_parameters=vp8_parameters())
        caps = r.router.rtp_capabilities
        remote = await r.recv.consume(producer_id=producer.id, rtp_capabilities=caps)
        local = await r.send.consume(producer_id=other.id, rtp_capabilities=caps)
        events = Recorder()
        for name, entity in (("producer", producer), ("other", other), ("remote", remote),
                             ("local", local)):
            _record_close_events(events, name, entity)

        await r.send.close()
        # Its own producer and consumer: transportclose, at once.
        assert producer.closed and local.closed
        assert ("producer", "transportclose") in events.calls
        assert ("local", "transportclose") in events.calls
        # The consumer of its producer on the other transport: producerclose from the worker.
        await wait_until(lambda: remote.closed)
        assert sorted(events.calls) == sorted([
            ("producer", "transportclose"), ("producer", "observer close"),
            ("local", "transportclose"), ("local", "observer close"),
            ("remote", "producerclose"), ("remote", "observer close"),
        ])
        assert not other.closed
        assert r.send.producers == [] and r.send.consumers == []
        assert r.recv.consumers == [] and r.recv.producers == [other]
        assert (await r.recv.dump())["consumerIds"] == []
        with pytest.raises(InvalidStateError):
            await r.send.produce(kind="audio", rtp_parameters=opus_parameters())


@async_test
async def test_router_and_worker_close_close_producers_and_consumers() -> None:
    async with room() as r:
        producer, consumer = await _produce_and_consume(r)
        events = Recorder()
        _record_close_events(events, "producer", producer)
        _record_close_events(events, "consumer", consumer)
        await r.router.close()
        assert producer.closed and consumer.closed
        assert sorted(events.calls) == sorted([
            ("producer", "transportclose"), ("producer", "observer close"),
            ("consumer", "transportclose"), ("consumer", "observer close"),
        ])

        router = await r.worker.create_router(media_codecs=MEDIA_CODECS)
        transport = await router.create_webrtc_transport(listen_infos=LISTEN_INFOS)
        producer = await transport.produce(kind="audio", rtp_parameters=opus_parameters())
        consumer = await transport.consume(producer_id=producer.id,
                                           rtp_capabilities=router.rtp_capabilities)
        events = Recorder()
        _record_close_events(events, "producer", producer)
        _record_close_events(events, "consumer", consumer)
        await r.worker.close()
        assert producer.closed and consumer.closed
        assert sorted(events.calls) == sorted([
            ("producer", "transportclose"), ("producer", "observer close"),
            ("consumer", "transportclose"), ("consumer", "observer close"),
        ])


# -- notifications that arrive with the create answer ---------------------------------------


class _MemoryWriter:
    """Collects the frames the channel writes."""

    def __init__(self) -> None:
        self.decoder = FrameDecoder()
        self.messages: list[Any] = []

    def write(self, data: bytes) -> None:
        for payload in self.decoder.feed(data):
            assert isinstance(payload, (bytes, bytearray, memoryview))
            self.messages.append(decode_payload(bytes(payload)))

    def is_closing(self) -> bool:
        return False

    async def drain(self) -> None:
        return None


@async_test
async def test_notification_read_with_the_consume_answer_reaches_the_consumer() -> None:
    writer = _MemoryWriter()
    channel = Channel(writer)
    transport = Transport(channel=channel, transport_id="t", router_id="r", data={})
    task = asyncio.ensure_future(
        transport.consume(producer_id="p", rtp_capabilities={"codecs": []})
    )
    await wait_until(lambda: bool(writer.messages))
    request = writer.messages[0]
    assert request["method"] == "transport.consume"
    consumer_id = request["data"]["consumerId"]
    answer = {"kind": "audio", "rtpParameters": {"codecs": []}, "type": "simple",
              "paused": False, "producerPaused": False,
              "score": {"score": 10, "producerScore": 10, "producerScores": []},
              "preferredLayers": None}
    # The answer and two notifications in one read: they must not overtake the answer.
    channel.feed(
        encode_frame({"id": request["id"], "accepted": True, "data": answer})
        + encode_frame({"event": "producerpause", "handlerId": consumer_id})
        + encode_frame({"event": "score", "handlerId": consumer_id,
                        "data": {"score": 7, "producerScore": 9, "producerScores": [9]}})
    )
    consumer = await task
    assert consumer.producer_paused is True
    assert consumer.score == {"score": 7, "producerScore": 9, "producerScores": [9]}
    channel.close()
