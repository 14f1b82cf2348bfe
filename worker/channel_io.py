"""The I/O edges of the channel: the controller's pipe in (stdin) and out (stdout).

Thin: the reader hands every chunk to :class:`~worker.channel_endpoint.ChannelEndpoint`; the
writer coalesces the frames of one loop iteration into one write. The writer's queue is bounded:
above ``HIGH_WATER_BYTES`` the reader pauses (no new requests while the controller does not read
its responses), and above ``MAX_QUEUED_BYTES`` notifications and logs are dropped and counted.
Responses are never dropped; they cannot pile up because intake is paused first.
"""

from __future__ import annotations

import asyncio
import os
import stat
import threading
from collections.abc import Callable
from typing import Final

__all__ = ["HIGH_WATER_BYTES", "MAX_QUEUED_BYTES", "ChannelReader", "ChannelWriter"]

HIGH_WATER_BYTES: Final = 1 * 1024 * 1024
LOW_WATER_BYTES: Final = 256 * 1024
MAX_QUEUED_BYTES: Final = 16 * 1024 * 1024
READ_CHUNK_BYTES: Final = 256 * 1024


def _is_regular_file(fd: int) -> bool:
    return stat.S_ISREG(os.fstat(fd).st_mode)


class _WriteProtocol(asyncio.Protocol):
    def __init__(self, owner: ChannelWriter) -> None:
        self._owner = owner

    def pause_writing(self) -> None:
        self._owner.set_paused(True)

    def resume_writing(self) -> None:
        self._owner.set_paused(False)

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner.lost()


class ChannelWriter:
    """Frames to the controller, batched per loop iteration, with a bounded queue."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int,
                 on_lost: Callable[[], None], on_pressure: Callable[[bool], None]) -> None:
        self._loop = loop
        self._fd = fd
        self._on_lost = on_lost
        self._on_pressure = on_pressure
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._flush_scheduled = False
        self._transport: asyncio.WriteTransport | None = None
        self._sync = False
        self.closed = False

    async def open(self) -> None:
        if _is_regular_file(self._fd):
            self._sync = True  # a file never blocks: plain writes
            return
        pipe = os.fdopen(self._fd, "wb", buffering=0, closefd=True)
        transport, _ = await self._loop.connect_write_pipe(lambda: _WriteProtocol(self), pipe)
        transport.set_write_buffer_limits(high=HIGH_WATER_BYTES, low=LOW_WATER_BYTES)
        self._transport = transport

    def queued_bytes(self) -> int:
        buffered = self._transport.get_write_buffer_size() if self._transport else 0
        return buffered + self._pending_bytes

    def send(self, frame: bytes, essential: bool) -> bool:
        """Queue a frame; returns False if it was dropped (closed, or over the bound)."""
        if self.closed:
            return False
        if not essential and self.queued_bytes() + len(frame) > MAX_QUEUED_BYTES:
            return False
        self._pending.append(frame)
        self._pending_bytes += len(frame)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)
        return True

    def flush(self) -> None:
        self._flush_scheduled = False
        if not self._pending or self.closed:
            return
        data = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending.clear()
        self._pending_bytes = 0
        if self._transport is not None:
            self._transport.write(data)
            return
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError:
            self.lost()

    def set_paused(self, paused: bool) -> None:
        self._on_pressure(paused)

    def lost(self) -> None:
        if not self.closed:
            self.closed = True
            self._on_lost()

    async def drain_and_close(self, timeout_s: float) -> None:
        """Write what is queued (waiting at most ``timeout_s``), then close the pipe."""
        self.flush()
        deadline = self._loop.time() + timeout_s
        transport = self._transport
        if transport is not None:
            while (not transport.is_closing() and transport.get_write_buffer_size()
                   and self._loop.time() < deadline):
                await asyncio.sleep(0.005)
            transport.close()
        elif self._sync and not self.closed:
            os.close(self._fd)
        self.closed = True


class _ReadProtocol(asyncio.Protocol):
    def __init__(self, owner: ChannelReader) -> None:
        self._owner = owner

    def data_received(self, data: bytes) -> None:
        self._owner.on_data(data)

    def eof_received(self) -> bool | None:
        self._owner.on_eof()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner.on_eof()


class ChannelReader:
    """Bytes from the controller, handed to ``on_data``; ``on_eof`` once when the pipe ends."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int,
                 on_data: Callable[[bytes], None], on_eof: Callable[[], None]) -> None:
        self._loop = loop
        self._fd = fd
        self._on_data = on_data
        self._on_eof_cb = on_eof
        self._transport: asyncio.ReadTransport | None = None
        self._thread: threading.Thread | None = None
        self._ended = False
        self._stopped = False

    async def open(self) -> None:
        if _is_regular_file(self._fd):
            # epoll cannot watch a regular file: read it from a thread instead.
            self._thread = threading.Thread(target=self._read_file, name="channel-in", daemon=True)
            self._thread.start()
            return
        pipe = os.fdopen(self._fd, "rb", buffering=0, closefd=True)
        transport, _ = await self._loop.connect_read_pipe(lambda: _ReadProtocol(self), pipe)
        self._transport = transport

    def _read_file(self) -> None:
        while True:
            try:
                chunk = os.read(self._fd, READ_CHUNK_BYTES)
            except OSError:
                chunk = b""
            if not chunk:
                self._loop.call_soon_threadsafe(self.on_eof)
                return
            self._loop.call_soon_threadsafe(self.on_data, chunk)

    def on_data(self, data: bytes) -> None:
        if not self._stopped:
            self._on_data(data)

    def on_eof(self) -> None:
        if not self._ended:
            self._ended = True
            if not self._stopped:
                self._on_eof_cb()

    def set_paused(self, paused: bool) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if paused:
            transport.pause_reading()
        else:
            transport.resume_reading()

    def stop(self) -> None:
        """Stop handing data on (at close); the pipe is closed with the transport."""
        self._stopped = True
        if self._transport is not None:
            self._transport.close()
