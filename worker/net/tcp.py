"""ICE-TCP edges: a listening server and its connections, with RFC 4571 framing.

Ownership (DESIGN.md, "Ownership and close"): a :class:`TcpConnection` has exactly one owner at a
time, the object in ``conn.owner``. The server owns a connection from accept until ICE hands it
to a transport (``transfer``); from then on the transport owns it. Whoever closes a connection,
and whatever the reason (owner's decision, peer FIN or RST, read or write error, a frame larger
than the receive buffer), the connection removes its reader and writer, closes its socket,
returns its receive buffer to the pool and calls ``owner.tcp_connection_closed(conn)`` exactly
once, so the owner drops it from its table at once.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections import deque
from collections.abc import Callable
from typing import Any, Final, Protocol

from worker.bufferpool import BufferPool
from worker.logger import Logger

__all__ = ["MAX_PENDING_WRITE_BYTES", "TcpConnection", "TcpConnectionOwner", "TcpServer"]

# Bytes a connection may hold unwritten; past this, frames are dropped and counted.
MAX_PENDING_WRITE_BYTES: Final = 256 * 1024
FRAME_HEADER_BYTES: Final = 2
MAX_FRAME_PAYLOAD_BYTES: Final = 65535
_RESET_ERRNOS: Final = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ETIMEDOUT,
                                  errno.ECONNABORTED, errno.EHOSTUNREACH})

FrameHandler = Callable[["TcpConnection", memoryview], None]


class TcpConnectionOwner(Protocol):
    def tcp_connection_closed(self, conn: TcpConnection) -> None: ...


class TcpConnection:
    """One accepted connection. Frames are parsed in its pool slot and handed to ``on_frame``
    as a view that is valid only during the call."""

    __slots__ = ("_filled", "_loop", "_pending", "_pending_bytes", "_pool", "_slot", "_sock",
                 "_view", "_writing", "bytes_received", "bytes_sent", "close_reason", "closed",
                 "fd", "frames_dropped", "local", "on_frame", "owner", "remote")

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, pool: BufferPool,
                 slot: int, owner: TcpConnectionOwner, on_frame: FrameHandler) -> None:
        self._loop = loop
        self._sock = sock
        self._pool = pool
        self._slot = slot
        self._view = pool.view(slot)
        self._filled = 0
        self._pending: deque[memoryview] = deque()
        self._pending_bytes = 0
        self._writing = False
        self.owner = owner
        self.on_frame = on_frame
        self.fd = sock.fileno()
        self.local: tuple[str, int] = sock.getsockname()[:2]
        self.remote: tuple[str, int] = sock.getpeername()[:2]
        self.closed = False
        self.close_reason = ""
        self.bytes_received = 0
        self.bytes_sent = 0
        self.frames_dropped = 0
        loop.add_reader(self.fd, self._on_readable)

    # -- ownership ------------------------------------------------------------------------

    def transfer(self, owner: TcpConnectionOwner, on_frame: FrameHandler) -> None:
        """Hand the connection to a new owner (the transport ICE matched it to)."""
        self.owner = owner
        self.on_frame = on_frame

    # -- reading --------------------------------------------------------------------------

    def _on_readable(self) -> None:
        if self.closed:
            return
        try:
            received = self._sock.recv_into(self._view[self._filled :])
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.close("reset" if exc.errno in _RESET_ERRNOS else f"read error: {exc.strerror}")
            return
        if received == 0:
            self.close("peer closed")
            return
        self.bytes_received += received
        self._filled += received
        self._parse_frames()

    def _parse_frames(self) -> None:
        view = self._view
        pos = 0
        filled = self._filled
        while filled - pos >= FRAME_HEADER_BYTES:
            length = (view[pos] << 8) | view[pos + 1]
            end = pos + FRAME_HEADER_BYTES + length
            if end > filled:
                if FRAME_HEADER_BYTES + length > len(view):
                    self.close(f"frame of {length} bytes does not fit the receive buffer")
                    return
                break  # the rest comes in a later read, after the move to the front
            if length:  # RFC 4571: a zero-length frame is a null packet, skipped
                self.on_frame(self, view[pos + FRAME_HEADER_BYTES : end])
                if self.closed:  # the frame's handler may close the connection
                    return
            pos = end
        if pos:
            remaining = filled - pos
            if remaining:
                view[:remaining] = view[pos:filled]
            self._filled = remaining

    # -- writing --------------------------------------------------------------------------

    def send(self, payload: bytes | bytearray | memoryview) -> bool:
        """Send one frame; False if it was dropped (closed, too large, or the queue is full)."""
        size = len(payload)
        if self.closed or size > MAX_FRAME_PAYLOAD_BYTES:
            self.frames_dropped += 1
            return False
        frame = size.to_bytes(2, "big") + bytes(payload)
        if self._pending:
            return self._queue(memoryview(frame))
        try:
            written = self._sock.send(frame)
        except (BlockingIOError, InterruptedError):
            written = 0
        except OSError as exc:
            self.close("reset" if exc.errno in _RESET_ERRNOS else f"write error: {exc.strerror}")
            return False
        self.bytes_sent += written
        if written < len(frame):
            return self._queue(memoryview(frame)[written:])
        return True

    def _queue(self, rest: memoryview) -> bool:
        if self._pending_bytes + len(rest) > MAX_PENDING_WRITE_BYTES:
            self.frames_dropped += 1
            return False
        self._pending.append(rest)
        self._pending_bytes += len(rest)
        if not self._writing:
            self._writing = True
            self._loop.add_writer(self.fd, self._on_writable)
        return True

    def _on_writable(self) -> None:
        while self._pending and not self.closed:
            chunk = self._pending[0]
            try:
                written = self._sock.send(chunk)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.close("reset" if exc.errno in _RESET_ERRNOS
                           else f"write error: {exc.strerror}")
                return
            self.bytes_sent += written
            self._pending_bytes -= written
            if written < len(chunk):
                self._pending[0] = chunk[written:]
                return
            self._pending.popleft()
        if self._writing and not self.closed:
            self._writing = False
            self._loop.remove_writer(self.fd)

    @property
    def pending_write_bytes(self) -> int:
        return self._pending_bytes

    # -- close ----------------------------------------------------------------------------

    def close(self, reason: str = "closed by owner") -> None:
        """Close and free everything, then tell the owner. Idempotent."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        self._loop.remove_reader(self.fd)
        if self._writing:
            self._loop.remove_writer(self.fd)
            self._writing = False
        self._pending.clear()
        self._pending_bytes = 0
        self._sock.close()
        self._pool.release(self._slot)
        self.owner.tcp_connection_closed(self)

    def dump(self) -> dict[str, Any]:
        return {"localIp": self.local[0], "localPort": self.local[1],
                "remoteIp": self.remote[0], "remotePort": self.remote[1],
                "bytesReceived": self.bytes_received, "bytesSent": self.bytes_sent}


class TcpServer:
    """A listening socket. Accepted connections get a receive buffer from the pool (none left:
    the connection is refused, i.e. closed at once, and counted) and belong to ``owner``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, pool: BufferPool,
                 owner: TcpConnectionOwner, on_frame: FrameHandler,
                 on_accepted: Callable[[TcpConnection], None], logger: Logger) -> None:
        self._loop = loop
        self._sock = sock
        self._pool = pool
        self._owner = owner
        self._on_frame = on_frame
        self._on_accepted = on_accepted
        self._logger = logger
        self.fd = sock.fileno()
        self.local: tuple[str, int] = sock.getsockname()[:2]
        self.closed = False
        self.refused = 0
        loop.add_reader(self.fd, self._on_acceptable)

    def _on_acceptable(self) -> None:
        for _ in range(64):  # bounded: other sockets get their turn
            try:
                conn_sock, _addr = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._logger.warn(f"tcp accept failed on {self.local}: {exc}", tag="ice")
                return
            slot = self._pool.acquire()
            if slot is None:
                self.refused += 1
                conn_sock.close()
                self._logger.warn(f"tcp connection refused: pool {self._pool.name} exhausted",
                                  tag="ice")
                continue
            conn_sock.setblocking(False)
            conn_sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                conn = TcpConnection(self._loop, conn_sock, self._pool, slot, self._owner,
                                     self._on_frame)
            except OSError:  # the peer went away between accept and getpeername
                conn_sock.close()
                self._pool.release(slot)
                continue
            self._on_accepted(conn)

    def close(self) -> None:
        """Stop listening. The owners of accepted connections close those themselves."""
        if self.closed:
            return
        self.closed = True
        self._loop.remove_reader(self.fd)
        self._sock.close()
