"""The worker's channel endpoint (sans-IO) and the bounded stdout writer (on a real pipe)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from channel.codec import FrameDecoder, decode_payload, encode_frame
from channel.messages import Notification, Request
from worker.channel_endpoint import ChannelEndpoint
from worker.channel_io import MAX_QUEUED_BYTES, ChannelWriter
from worker.errors import InvalidStateError, UnsupportedError, WorkerTypeError
from worker.logger import Logger


class Sink:
    def __init__(self) -> None:
        self.frames: list[tuple[Any, bool]] = []

    def __call__(self, frame: bytes, essential: bool) -> bool:
        (payload,) = FrameDecoder().feed(frame)
        assert isinstance(payload, bytes)
        self.frames.append((decode_payload(payload), essential))
        return True

    def messages(self) -> list[Any]:
        return [message for message, _ in self.frames]


def make_endpoint(dispatch: Any) -> tuple[ChannelEndpoint, Sink]:
    sink = Sink()
    logger = Logger("none")
    endpoint = ChannelEndpoint(sink, logger)
    endpoint.bind(dispatch, lambda n: None)
    return endpoint, sink


def test_notification_emitted_while_handling_follows_the_response() -> None:
    endpoint: ChannelEndpoint

    def dispatch(request: Request) -> Any:
        endpoint.notify("t1", "icestatechange", {"iceState": "connected"})
        return {"ok": 1}

    endpoint, sink = make_endpoint(dispatch)
    endpoint.receive(encode_frame({"id": 1, "method": "transport.dump", "handlerId": "t1"}))
    assert sink.messages() == [
        {"id": 1, "accepted": True, "data": {"ok": 1}},
        {"event": "icestatechange", "handlerId": "t1", "data": {"iceState": "connected"}},
    ]
    assert [essential for _, essential in sink.frames] == [True, False]


@pytest.mark.parametrize(
    ("exc", "name"),
    [
        (WorkerTypeError("bad x"), "TypeError"),
        (InvalidStateError("already connected"), "InvalidStateError"),
        (UnsupportedError("cannot consume"), "UnsupportedError"),
        (KeyError("a bug"), "Error"),
    ],
)
def test_errors_become_named_responses(exc: Exception, name: str) -> None:
    def dispatch(request: Request) -> Any:
        raise exc

    endpoint, sink = make_endpoint(dispatch)
    endpoint.receive(encode_frame({"id": 9, "method": "transport.connect", "handlerId": "t"}))
    (response,) = sink.messages()
    assert response["id"] == 9 and response["accepted"] is False
    assert response["error"] == name
    assert response["reason"].endswith(" [method:transport.connect]")


def test_unencodable_result_still_gets_one_response() -> None:
    endpoint, sink = make_endpoint(lambda request: {"x": object()})
    endpoint.receive(encode_frame({"id": 3, "method": "worker.dump"}))
    (response,) = sink.messages()
    assert response["accepted"] is False and "could not be encoded" in response["reason"]


def test_controller_notifications_are_routed() -> None:
    got: list[Notification] = []
    sink = Sink()
    endpoint = ChannelEndpoint(sink, Logger("none"))
    endpoint.bind(lambda r: None, got.append)
    endpoint.receive(encode_frame({"event": "producer.send", "handlerId": "p1", "data": b"\x80"}))
    assert got == [Notification("producer.send", "p1", b"\x80")]
    assert sink.messages() == []
    assert endpoint.counters.notifications_in == 1


def test_writer_drops_notifications_past_the_bound_but_keeps_responses() -> None:
    async def scenario() -> tuple[int, int, int]:
        loop = asyncio.get_running_loop()
        read_fd, write_fd = os.pipe()
        paused: list[bool] = []
        writer = ChannelWriter(loop, write_fd, lambda: None, paused.append)
        await writer.open()
        frame = bytes(64 * 1024)
        sent = dropped = 0
        for _ in range(2 * MAX_QUEUED_BYTES // len(frame)):
            if writer.send(frame, False):
                sent += 1
            else:
                dropped += 1
            writer.flush()
        essential_ok = sum(writer.send(frame, True) for _ in range(10))
        assert paused and paused[0] is True  # the reader is asked to pause
        assert writer.queued_bytes() <= MAX_QUEUED_BYTES + 10 * len(frame)
        writer.flush()
        os.close(read_fd)
        await writer.drain_and_close(0.1)
        return sent, dropped, essential_ok

    sent, dropped, essential_ok = asyncio.run(scenario())
    assert dropped > 0 and sent > 0
    assert essential_ok == 10
