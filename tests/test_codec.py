"""The sans-IO frame codec and the message shapes: whole, byte by byte, trailing bytes, oversize."""

from __future__ import annotations

import contextlib
import struct

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from channel.codec import (
    FrameDecoder,
    FrameEncoder,
    FrameTooLargeError,
    OversizeFrame,
    decode_payload,
    encode_frame,
)
from channel.messages import (
    Log,
    MessageShapeError,
    Notification,
    Request,
    Response,
    parse_controller_message,
    parse_worker_message,
)
from channel.protocol import MAX_FRAME_BYTES

REQUEST = {"id": 7, "method": "worker.createRouter", "handlerId": "",
           "data": {"routerId": "r1", "mediaCodecs": [{"kind": "audio", "mimeType": "audio/opus",
                                                       "clockRate": 48000, "channels": 2}]}}
RESPONSE = {"id": 7, "accepted": True, "data": {"rtpCapabilities": {"codecs": []}}}
NOTIFICATION = {"event": "rtp", "handlerId": "c1", "data": b"\x80\x60" + bytes(100)}


def frames(*messages: object) -> bytes:
    return b"".join(encode_frame(m) for m in messages)


def decode_all(decoder: FrameDecoder, data: bytes, step: int | None = None) -> list[object]:
    out: list[object] = []
    chunks = [data] if step is None else [data[i : i + step] for i in range(0, len(data), step)]
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    return [item if isinstance(item, OversizeFrame) else decode_payload(item) for item in out]


def test_frame_layout_is_big_endian_length_then_msgpack() -> None:
    frame = encode_frame({"a": 1})
    payload = msgpack.packb({"a": 1}, use_bin_type=True)
    assert frame == struct.pack(">I", len(payload)) + payload


def test_binary_is_bin_and_text_is_str() -> None:
    frame = encode_frame({"t": "é", "b": b"\x00\xff"})
    payload = frame[4:]
    assert b"\xc4\x02\x00\xff" in payload  # bin 8
    assert b"\xa2\xc3\xa9" in payload  # fixstr, UTF-8
    assert decode_payload(payload) == {"t": "é", "b": b"\x00\xff"}


def test_whole_input() -> None:
    data = frames(REQUEST, RESPONSE, NOTIFICATION)
    assert decode_all(FrameDecoder(), data) == [REQUEST, RESPONSE, NOTIFICATION]


def test_one_byte_at_a_time() -> None:
    decoder = FrameDecoder()
    data = frames(REQUEST, RESPONSE, NOTIFICATION)
    assert decode_all(decoder, data, step=1) == [REQUEST, RESPONSE, NOTIFICATION]
    assert decoder.buffered == 0


@pytest.mark.parametrize("step", [2, 3, 5, 7, 64, 1000])
def test_odd_splits(step: int) -> None:
    data = frames(REQUEST, NOTIFICATION, REQUEST)
    assert decode_all(FrameDecoder(), data, step=step) == [REQUEST, NOTIFICATION, REQUEST]


def test_trailing_bytes_are_kept_for_the_next_read() -> None:
    decoder = FrameDecoder()
    whole = frames(REQUEST)
    second = frames(RESPONSE)
    assert decode_all(decoder, whole + second[:3]) == [REQUEST]
    assert decoder.buffered == 3
    assert decode_all(decoder, second[3:]) == [RESPONSE]
    assert decoder.buffered == 0


def test_zero_length_frame_is_an_empty_payload() -> None:
    assert FrameDecoder().feed(b"\x00\x00\x00\x00") == [b""]
    with pytest.raises(ValueError):
        decode_payload(b"")


def test_oversize_frame_is_skipped_without_buffering() -> None:
    decoder = FrameDecoder()
    big = MAX_FRAME_BYTES + 1
    header = struct.pack(">I", big)
    events = decoder.feed(header + bytes(1000))
    assert events == [OversizeFrame(big)]
    assert decoder.buffered == 0
    assert decoder.skipping == big - 1000
    # The rest of the oversize payload arrives in pieces, then a good frame.
    remaining = big - 1000
    chunk = bytes(256 * 1024)
    while remaining > len(chunk):
        assert decoder.feed(chunk) == []
        assert decoder.buffered == 0
        remaining -= len(chunk)
    tail = bytes(remaining) + frames(REQUEST)
    assert decode_all(decoder, tail) == [REQUEST]


def test_oversize_frame_in_one_read_then_next_frame() -> None:
    big = MAX_FRAME_BYTES + 10
    data = struct.pack(">I", big) + bytes(big) + frames(RESPONSE)
    assert decode_all(FrameDecoder(), data) == [OversizeFrame(big), RESPONSE]


def test_frame_at_the_limit_is_accepted() -> None:
    encoder = FrameEncoder()
    filler = b"x" * (MAX_FRAME_BYTES - 16)
    frame = encoder.encode({"d": filler})
    assert len(frame) - 4 <= MAX_FRAME_BYTES
    assert decode_all(FrameDecoder(), frame) == [{"d": filler}]


def test_encoder_refuses_a_message_over_the_limit() -> None:
    with pytest.raises(FrameTooLargeError):
        encode_frame({"d": b"x" * MAX_FRAME_BYTES})


@pytest.mark.parametrize(
    "payload",
    [b"\xc1", b"\x81", b"\x92\x01", msgpack.packb(1) + msgpack.packb(2), b"\xd9\x05ab"],
)
def test_undecodable_payloads_raise_value_error(payload: bytes) -> None:
    with pytest.raises(ValueError):
        decode_payload(payload)


@given(st.binary(max_size=512))
def test_random_bytes_never_escape_as_other_errors(data: bytes) -> None:
    decoder = FrameDecoder(max_frame_bytes=256)
    for item in decoder.feed(data):
        if isinstance(item, bytes):
            with contextlib.suppress(ValueError):
                decode_payload(item)


SCALARS = st.integers(-(2**63), 2**64 - 1) | st.text(max_size=20) | st.binary(max_size=40)


@given(st.lists(st.dictionaries(st.text(max_size=8), SCALARS, max_size=5), max_size=8),
       st.integers(min_value=1, max_value=17))
def test_any_split_round_trips(messages: list[dict[str, object]], step: int) -> None:
    data = frames(*messages)
    assert decode_all(FrameDecoder(), data, step=step) == messages


# -- message shapes -------------------------------------------------------------------------


def test_request_shape() -> None:
    message = parse_controller_message(REQUEST)
    assert isinstance(message, Request)
    assert (message.id, message.method, message.handler_id) == (7, "worker.createRouter", "")
    assert message.data["routerId"] == "r1"
    assert message.to_wire() == REQUEST


def test_request_without_data_or_handler_id() -> None:
    message = parse_controller_message({"id": 1, "method": "worker.dump"})
    assert isinstance(message, Request)
    assert (message.handler_id, message.data) == ("", {})


@pytest.mark.parametrize(
    ("obj", "request_id"),
    [
        ([1, 2], None),
        ({"method": "worker.dump"}, None),
        ({"id": "7", "method": "worker.dump"}, None),
        ({"id": True, "method": "worker.dump"}, None),
        ({"id": 0, "method": "worker.dump"}, 0),
        ({"id": 2**32, "method": "worker.dump"}, 2**32),
        ({"id": 3, "method": 5}, 3),
        ({"id": 3, "method": "worker.dump", "handlerId": 9}, 3),
        ({"id": 3, "method": "worker.dump", "data": [1]}, 3),
        ({"event": 1}, None),
    ],
)
def test_bad_controller_shapes(obj: object, request_id: int | None) -> None:
    with pytest.raises(MessageShapeError) as info:
        parse_controller_message(obj)
    assert info.value.request_id == request_id


def test_controller_notification_shape() -> None:
    message = parse_controller_message({"event": "producer.send", "handlerId": "p", "data": b"x"})
    assert message == Notification("producer.send", "p", b"x")


def test_worker_message_shapes() -> None:
    assert parse_worker_message(RESPONSE) == Response(7, True, RESPONSE["data"])
    assert parse_worker_message(
        {"id": 3, "accepted": False, "error": "TypeError", "reason": "bad [method:x]"}
    ) == Response(3, False, None, "TypeError", "bad [method:x]")
    assert parse_worker_message(NOTIFICATION) == Notification("rtp", "c1", NOTIFICATION["data"])
    assert parse_worker_message({"log": "W", "text": "careful"}) == Log("W", "careful")
    for bad in ({"log": "X", "text": "t"}, {"id": 1}, {"x": 1}, 5):
        with pytest.raises(MessageShapeError):
            parse_worker_message(bad)
