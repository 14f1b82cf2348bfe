"""Sans-IO framing: a 4-byte big-endian length, then one msgpack object of at most 4 MiB.

:class:`FrameDecoder` takes bytes as they arrive (any split, any number of frames per read) and
returns what they complete. A frame longer than the limit is reported by its length and skipped
without buffering it; the stream goes on with the next frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import msgpack

from channel.protocol import FRAME_HEADER_BYTES, MAX_FRAME_BYTES

__all__ = [
    "MAX_FRAME_BYTES",
    "FrameDecoder",
    "FrameEncoder",
    "FrameTooLargeError",
    "OversizeFrame",
    "decode_payload",
    "encode_frame",
]

_LENGTH_BYTES: Final = FRAME_HEADER_BYTES


class FrameTooLargeError(ValueError):
    """A message encodes to more than the frame limit and cannot be sent."""


@dataclass(frozen=True, slots=True)
class OversizeFrame:
    """A frame whose header announced more than the limit; its payload is skipped."""

    length: int


class FrameDecoder:
    """Turns a byte stream into frame payloads.

    ``feed(data)`` returns, in order, each completed payload (``bytes``) and an
    :class:`OversizeFrame` for each frame that is being skipped. Buffered bytes never exceed one
    frame header plus one frame within the limit plus the bytes of the current call.
    """

    __slots__ = ("_buf", "_max", "_skip")

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._buf = bytearray()
        self._max = max_frame_bytes
        self._skip = 0

    @property
    def buffered(self) -> int:
        """Bytes held for a frame not yet complete."""
        return len(self._buf)

    @property
    def skipping(self) -> int:
        """Bytes of an oversize frame still to be skipped."""
        return self._skip

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes | OversizeFrame]:
        view = memoryview(data)
        if self._skip:
            dropped = min(self._skip, len(view))
            self._skip -= dropped
            view = view[dropped:]
        buf = self._buf
        buf += view
        events: list[bytes | OversizeFrame] = []
        pos = 0
        end = len(buf)
        while end - pos >= _LENGTH_BYTES:
            length = int.from_bytes(buf[pos : pos + _LENGTH_BYTES], "big")
            start = pos + _LENGTH_BYTES
            if length > self._max:
                events.append(OversizeFrame(length))
                available = end - start
                if available >= length:
                    pos = start + length
                    continue
                self._skip = length - available
                pos = end
                break
            if end - start < length:
                break
            events.append(bytes(buf[start : start + length]))
            pos = start + length
        if pos:
            del buf[:pos]
        return events


class FrameEncoder:
    """Encodes messages into frames, reusing one msgpack packer."""

    __slots__ = ("_max", "_packer")

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._packer = msgpack.Packer(use_bin_type=True, datetime=False)
        self._max = max_frame_bytes

    def encode(self, message: Any) -> bytes:
        try:
            payload: bytes = self._packer.pack(message)
        except Exception:
            self._packer.reset()
            raise
        if len(payload) > self._max:
            raise FrameTooLargeError(
                f"message of {len(payload)} bytes exceeds the {self._max}-byte frame limit"
            )
        return len(payload).to_bytes(_LENGTH_BYTES, "big") + payload


_default_encoder = FrameEncoder()


def encode_frame(message: Any) -> bytes:
    """One frame holding ``message`` as msgpack: ``bytes`` become ``bin``, ``str`` stay ``str``."""
    return _default_encoder.encode(message)


def decode_payload(payload: bytes) -> Any:
    """The msgpack object in a frame payload; raises ``ValueError`` if it is not exactly one."""
    try:
        return msgpack.unpackb(payload, raw=False, strict_map_key=True, use_list=True)
    except Exception as exc:  # msgpack raises several unrelated types on bad input
        raise ValueError(
            f"payload is not one msgpack object ({type(exc).__name__}: {exc})"
        ) from exc
