"""ICE-TCP edges (``worker/net/tcp.py``) on a real uvloop loop with real sockets on loopback.

A small :class:`BufferPool` lends the receive buffers; a test owner records every
``tcp_connection_closed`` call together with what was true at that moment (socket closed, no
reader or writer left on the loop, nothing pending, slot back in the pool), so each test checks
that a connection is completely gone by the time its owner hears of it. Clients are plain
non-blocking sockets driven through the same loop; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import errno
import os
import random
import socket
import struct
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
import uvloop
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.bufferpool import BufferPool
from worker.logger import Logger
from worker.net.tcp import (
    MAX_FRAME_PAYLOAD_BYTES,
    MAX_PENDING_WRITE_BYTES,
    TcpConnection,
    TcpServer,
)

WAIT_S = 5.0
SLOT = 1024  # small receive buffers, so "a frame longer than the buffer" is cheap to send
T = TypeVar("T")


def _ipv6_loopback_works() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


HOSTS = [
    pytest.param("127.0.0.1", id="ipv4"),
    pytest.param("::1", id="ipv6", marks=pytest.mark.skipif(
        not _ipv6_loopback_works(), reason="::1 cannot be bound on this machine")),
]


def frame(payload: bytes) -> bytes:
    return struct.pack("!H", len(payload)) + payload


def fd_is_closed(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError as exc:
        return exc.errno == errno.EBADF
    return False


class TrackingLoop(uvloop.Loop):
    """A uvloop loop that also remembers which fds have a reader or a writer registered (uvloop
    itself does not say: its remove_reader answers None either way)."""

    def __init__(self) -> None:
        super().__init__()
        self.readers: set[int] = set()
        self.writers: set[int] = set()

    def add_reader(self, fd: Any, callback: Callable[..., Any],  # type: ignore[override]
                   *args: Any) -> None:
        super().add_reader(fd, callback, *args)
        self.readers.add(fd)

    def remove_reader(self, fd: Any) -> None:  # type: ignore[override]
        self.readers.discard(fd)
        super().remove_reader(fd)

    def add_writer(self, fd: Any, callback: Callable[..., Any],  # type: ignore[override]
                   *args: Any) -> None:
        super().add_writer(fd, callback, *args)
        self.writers.add(fd)

    def remove_writer(self, fd: Any) -> None:  # type: ignore[override]
        self.writers.discard(fd)
        super().remove_writer(fd)


def received(conn: TcpConnection, count: int) -> Callable[[], bool]:
    """Until ``count`` bytes have been read, or the connection closed (the test then says so)."""
    return lambda: conn.closed or conn.bytes_received == count


def is_closed(conn: TcpConnection) -> Callable[[], bool]:
    return lambda: conn.closed


def last_frame_is(harness: Harness, payload: bytes) -> Callable[[], bool]:
    return lambda: harness.frames[-1:] == [payload]


@dataclass
class CloseRecord:
    conn: TcpConnection
    reason: str
    fd_closed: bool
    reader_left: bool
    writer_left: bool
    pending: int
    in_use: int


class Owner:
    """Records each close notification and the state of the connection at that moment."""

    def __init__(self, loop: TrackingLoop, pool: BufferPool) -> None:
        self._loop = loop
        self._pool = pool
        self.records: list[CloseRecord] = []

    def tcp_connection_closed(self, conn: TcpConnection) -> None:
        self.records.append(CloseRecord(
            conn=conn, reason=conn.close_reason, fd_closed=fd_is_closed(conn.fd),
            reader_left=conn.fd in self._loop.readers,
            writer_left=conn.fd in self._loop.writers,
            pending=conn.pending_write_bytes, in_use=self._pool.in_use))

    @property
    def closed(self) -> list[TcpConnection]:
        return [record.conn for record in self.records]


class Harness:
    """A TcpServer on one loopback address, its pool, its owner, and the frames received."""

    def __init__(self, loop: TrackingLoop, host: str = "127.0.0.1",
                 slot_size: int = SLOT, capacity: int = 4, sndbuf: int = 0) -> None:
        self.loop = loop
        self.pool = BufferPool("tcpRecvTest", slot_size, capacity)
        self.owner = Owner(loop, self.pool)
        self.owners = [self.owner]  # every owner a connection was transferred to
        self.accepted: list[TcpConnection] = []
        self.frames: list[bytes] = []
        self.close_on: bytes | None = None
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setblocking(False)
        if sndbuf:  # accepted sockets inherit it on Linux
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        listener.bind((host, 0))
        listener.listen(16)
        self.listener = listener
        self.address: tuple[str, int] = listener.getsockname()[:2]
        self.server = TcpServer(loop, listener, self.pool, self.owner, self.on_frame,
                                self.accepted.append, Logger("none"))
        self.clients: list[Client] = []

    def on_frame(self, conn: TcpConnection, payload: memoryview) -> None:
        assert isinstance(payload, memoryview)
        self.frames.append(bytes(payload))
        if self.close_on is not None and bytes(payload) == self.close_on:
            conn.close("handler closed it")

    def run(self, awaitable: Awaitable[T], timeout: float = WAIT_S) -> T:
        result: T = self.loop.run_until_complete(asyncio.wait_for(awaitable, timeout))
        return result

    def run_until(self, predicate: Callable[[], bool], what: str,
                  timeout: float = WAIT_S) -> None:
        async def poll() -> None:
            while not predicate():
                await asyncio.sleep(0.001)

        try:
            self.run(poll(), timeout)
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}") from None

    def spin(self, seconds: float = 0.05) -> None:
        """Let the loop run for a while (for "nothing more happens" checks)."""
        self.run(asyncio.sleep(seconds))

    def connect(self, rcvbuf: int = 0) -> tuple[Client, TcpConnection]:
        before = len(self.accepted)
        client = Client(self, rcvbuf)
        self.run_until(lambda: len(self.accepted) > before, "the connection to be accepted")
        conn = self.accepted[-1]
        assert conn.remote == client.sock.getsockname()[:2]
        assert conn.local == self.address
        return client, conn

    def check_closed(self, conn: TcpConnection, owner: Owner | None = None) -> CloseRecord:
        """``conn`` is closed and its owner heard of it exactly once, with everything freed."""
        owner = owner or self.owner
        records = [r for r in owner.records if r.conn is conn]
        assert len(records) == 1, f"owner told {len(records)} times"
        record = records[0]
        assert conn.closed
        assert record.fd_closed, "socket still open when the owner was told"
        assert not record.reader_left, "reader still registered when the owner was told"
        assert not record.writer_left, "writer still registered when the owner was told"
        assert record.pending == 0
        return record

    def close_all(self) -> None:
        """Close everything, then check that nothing is left: no slot lent, no reader or writer
        on the loop, every connection's owner told exactly once."""
        for client in self.clients:
            client.close()
        for conn in self.accepted:
            conn.close()
        self.server.close()
        assert self.pool.in_use == 0, "receive buffers still lent"
        assert not self.loop.readers and not self.loop.writers, "fds still watched by the loop"
        for conn in self.accepted:
            assert conn.closed
            told = sum(r.conn is conn for o in self.owners for r in o.records)
            assert told == 1, f"a connection's owner was told {told} times"


class Client:
    """A non-blocking client socket whose I/O runs on the harness loop."""

    def __init__(self, harness: Harness, rcvbuf: int = 0) -> None:
        self.h = harness
        host = harness.address[0]
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                                  socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(WAIT_S)
        self.sock.connect(harness.address)  # completes in the kernel's backlog
        self.sock.setblocking(False)
        self._buffer = b""
        harness.clients.append(self)

    def send(self, data: bytes) -> None:
        self.h.run(self.h.loop.sock_sendall(self.sock, data))

    def read_frames(self, count: int, timeout: float = WAIT_S) -> list[bytes]:
        async def read() -> list[bytes]:
            frames: list[bytes] = []
            while len(frames) < count:
                if len(self._buffer) >= 2:
                    (length,) = struct.unpack_from("!H", self._buffer)
                    if len(self._buffer) >= 2 + length:
                        frames.append(self._buffer[2:2 + length])
                        self._buffer = self._buffer[2 + length:]
                        continue
                chunk = await self.h.loop.sock_recv(self.sock, 65536)
                if not chunk:
                    raise ConnectionError("server closed the connection")
                self._buffer += chunk
            return frames

        return self.h.run(read(), timeout)

    def sees_close(self, timeout: float = WAIT_S) -> bool:
        """True when the server side closed (EOF or RST) within ``timeout``."""
        async def drain() -> None:
            while await self.h.loop.sock_recv(self.sock, 65536):
                pass

        try:
            self.h.run(drain(), timeout)
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
        return True

    def reset(self) -> None:
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def loop() -> Iterator[TrackingLoop]:
    """A uvloop loop that fails the test if any callback raised."""
    loop = TrackingLoop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    yield loop
    loop.close()
    assert not errors, f"callbacks raised on the loop: {errors}"


@pytest.fixture
def harness(loop: TrackingLoop) -> Iterator[Harness]:
    h = Harness(loop)
    yield h
    h.close_all()
    assert h.pool.in_use == 0, "receive buffers still lent at teardown"


# ---- receiving -----------------------------------------------------------------------------


@pytest.mark.parametrize("host", HOSTS)
def test_frames_delivered_whole(loop: TrackingLoop, host: str) -> None:
    h = Harness(loop, host)
    client, conn = h.connect()
    assert h.pool.in_use == 1
    client.send(frame(b"hello"))
    h.run_until(lambda: len(h.frames) == 1, "one frame")
    assert h.frames == [b"hello"]
    assert conn.bytes_received == 7
    assert conn.dump() == {"localIp": h.address[0], "localPort": h.address[1],
                           "remoteIp": conn.remote[0], "remotePort": conn.remote[1],
                           "bytesReceived": 7, "bytesSent": 0}
    h.close_all()
    assert h.pool.in_use == 0


def test_frames_delivered_byte_by_byte(harness: Harness) -> None:
    client, conn = harness.connect()
    payloads = [b"a", b"", b"two bytes and more", b"", bytes(range(256)) * 3, b"z"]
    stream = b"".join(frame(p) for p in payloads)
    for i in range(len(stream)):
        client.send(stream[i:i + 1])
        harness.run_until(received(conn, i + 1), f"byte {i}")
    assert not conn.closed
    assert harness.frames == [p for p in payloads if p]
    assert conn.bytes_received == len(stream)
    assert not conn.closed


def test_several_frames_per_write_and_zero_length_frames_skipped(harness: Harness) -> None:
    client, _ = harness.connect()
    payloads = [b"one", b"", b"", b"two", b"three" * 50, b"", b"x"]
    client.send(b"".join(frame(p) for p in payloads) + frame(b""))
    harness.run_until(lambda: len(harness.frames) == 4, "four frames")
    harness.spin()
    assert harness.frames == [b"one", b"two", b"three" * 50, b"x"]


def test_a_frame_that_fits_is_delivered_wherever_it_starts(harness: Harness) -> None:
    """Two frames that each fit the buffer but not together: the second starts mid-buffer and
    runs past its end in the first read; it must be kept (moved to the front), not refused."""
    client, conn = harness.connect()
    client.send(frame(b"a" * 500) + frame(b"b" * 600))
    harness.run_until(lambda: len(harness.frames) == 2 or conn.closed, "two frames")
    assert not conn.closed, f"closed: {conn.close_reason}"
    assert harness.frames == [b"a" * 500, b"b" * 600]


def test_many_frames_larger_than_the_buffer_in_total(harness: Harness) -> None:
    """A burst far larger than the 1 KiB receive buffer: read, parse and compact repeatedly."""
    rng = random.Random(4571)
    payloads = [rng.randbytes(rng.randrange(0, SLOT - 1)) for _ in range(300)]
    client, conn = harness.connect()
    client.send(b"".join(frame(p) for p in payloads))
    expected = [p for p in payloads if p]
    harness.run_until(lambda: len(harness.frames) == len(expected) or conn.closed, "every frame")
    assert not conn.closed, f"closed: {conn.close_reason}"
    assert harness.frames == expected


def test_largest_frame_that_fits_after_compaction(harness: Harness) -> None:
    client, conn = harness.connect()
    big = bytes(range(256)) * 4
    big = big[:SLOT - 2]  # header + payload == the whole receive buffer
    data = frame(b"small") + frame(big)
    client.send(data[:500])  # "small" and the start of the big one
    harness.run_until(lambda: harness.frames == [b"small"], "the small frame")
    client.send(data[500:])
    harness.run_until(lambda: len(harness.frames) == 2 or conn.closed, "the big frame")
    assert not conn.closed, f"closed: {conn.close_reason}"
    assert harness.frames[1] == big


@given(payloads=st.lists(st.integers(0, SLOT - 2).map(lambda n: bytes([n % 251]) * n),
                         max_size=12),
       cuts=st.lists(st.integers(1, 2000), max_size=8))
@settings(max_examples=60)
def test_any_split_of_the_stream_gives_the_same_frames(payloads: list[bytes],
                                                       cuts: list[int]) -> None:
    loop = TrackingLoop()
    h = Harness(loop)
    try:
        client, conn = h.connect()
        stream = b"".join(frame(p) for p in payloads)
        points = sorted({c for c in cuts if c < len(stream)})
        start = 0
        for end in [*points, len(stream)]:
            if end > start:
                client.send(stream[start:end])
                h.run_until(received(conn, end), "the chunk")
                assert not conn.closed, f"closed: {conn.close_reason}"
            start = end
        assert h.frames == [p for p in payloads if p]
        assert not conn.closed
    finally:
        h.close_all()
        loop.close()
    assert h.pool.in_use == 0


# ---- closing -------------------------------------------------------------------------------


def test_frame_longer_than_the_buffer_closes(harness: Harness) -> None:
    client, conn = harness.connect()
    client.send(frame(b"ok") + struct.pack("!H", SLOT - 1) + b"partial")
    harness.run_until(lambda: conn.closed, "the connection to close")
    record = harness.check_closed(conn)
    assert "does not fit" in record.reason
    assert harness.frames == [b"ok"]
    assert record.in_use == 0 and harness.pool.in_use == 0
    assert client.sees_close()
    harness.spin()
    assert len(harness.owner.records) == 1


def test_maximum_rfc4571_frame_does_not_fit_a_small_buffer(loop: TrackingLoop) -> None:
    h = Harness(loop, slot_size=4096)
    client, conn = h.connect()
    client.send(struct.pack("!H", MAX_FRAME_PAYLOAD_BYTES))
    h.run_until(lambda: conn.closed, "the connection to close")
    h.check_closed(conn)
    assert h.pool.in_use == 0
    h.close_all()


def test_peer_fin_closes(harness: Harness) -> None:
    client, conn = harness.connect()
    client.send(frame(b"before") + b"\x00\x10half")  # a frame, then half of another
    client.sock.shutdown(socket.SHUT_WR)
    harness.run_until(lambda: conn.closed, "the connection to close")
    record = harness.check_closed(conn)
    assert record.reason == "peer closed"
    assert harness.frames == [b"before"]
    assert record.in_use == 0 and harness.pool.in_use == 0
    assert client.sees_close()


def test_peer_rst_closes(harness: Harness) -> None:
    client, conn = harness.connect()
    client.send(frame(b"before"))
    harness.run_until(lambda: harness.frames == [b"before"], "the frame")
    client.reset()
    harness.run_until(lambda: conn.closed, "the connection to close")
    record = harness.check_closed(conn)
    assert record.reason == "reset"
    assert record.in_use == 0 and harness.pool.in_use == 0


def test_peer_rst_with_pending_writes_closes(loop: TrackingLoop) -> None:
    h = Harness(loop, sndbuf=4096)
    client, conn = h.connect(rcvbuf=4096)
    while conn.pending_write_bytes == 0:
        assert conn.send(b"p" * 1000)
    client.reset()
    h.run_until(lambda: conn.closed, "the connection to close")
    record = h.check_closed(conn)
    assert record.reason == "reset"
    assert h.pool.in_use == 0
    h.close_all()


def test_owner_close_is_idempotent(harness: Harness) -> None:
    client, conn = harness.connect()
    fd = conn.fd
    conn.close()
    record = harness.check_closed(conn)
    assert record.reason == "closed by owner" and record.in_use == 0
    conn.close()
    conn.close("again")
    assert len(harness.owner.records) == 1 and conn.close_reason == "closed by owner"
    assert harness.pool.in_use == 0
    assert fd_is_closed(fd)
    assert client.sees_close()
    # Sending on a closed connection is a counted drop, not an error.
    assert conn.send(b"late") is False
    assert conn.frames_dropped == 1


def test_the_frame_handler_may_close_the_connection(harness: Harness) -> None:
    harness.close_on = b"stop"
    client, conn = harness.connect()
    client.send(frame(b"one") + frame(b"stop") + frame(b"never delivered"))
    harness.run_until(lambda: conn.closed, "the connection to close")
    record = harness.check_closed(conn)
    assert record.reason == "handler closed it"
    assert harness.frames == [b"one", b"stop"]
    harness.spin()
    assert harness.frames == [b"one", b"stop"] and len(harness.owner.records) == 1
    assert harness.pool.in_use == 0


def test_transfer_moves_frames_and_the_close_notification(harness: Harness) -> None:
    client, conn = harness.connect()
    new_owner = Owner(harness.loop, harness.pool)
    harness.owners.append(new_owner)
    new_frames: list[bytes] = []
    conn.transfer(new_owner, lambda _conn, payload: new_frames.append(bytes(payload)))
    assert conn.owner is new_owner
    client.send(frame(b"to the new owner"))
    harness.run_until(lambda: bool(new_frames), "the frame")
    assert new_frames == [b"to the new owner"] and harness.frames == []
    client.sock.shutdown(socket.SHUT_WR)
    harness.run_until(lambda: conn.closed, "the connection to close")
    harness.check_closed(conn, new_owner)
    assert harness.owner.records == []
    assert harness.pool.in_use == 0


# ---- sending -------------------------------------------------------------------------------


def test_send_frames_payloads(harness: Harness) -> None:
    client, conn = harness.connect()
    payloads = [b"x", b"", b"hello" * 100, bytes(range(256)) * 200, b"\xff" * 65535]
    for payload in payloads:
        assert conn.send(payload) is True
    assert conn.send(memoryview(b"view")) and conn.send(bytearray(b"array"))
    assert client.read_frames(len(payloads) + 2, timeout=10) == [*payloads, b"view", b"array"]
    assert conn.bytes_sent == sum(2 + len(p) for p in payloads) + 6 + 7
    assert conn.pending_write_bytes == 0
    assert conn.frames_dropped == 0


def test_send_refuses_a_payload_too_large_for_a_frame(harness: Harness) -> None:
    client, conn = harness.connect()
    assert conn.send(b"\x00" * (MAX_FRAME_PAYLOAD_BYTES + 1)) is False
    assert conn.frames_dropped == 1 and conn.bytes_sent == 0
    assert conn.send(b"after")
    assert client.read_frames(1) == [b"after"]


def test_pending_write_queue_is_bounded(loop: TrackingLoop) -> None:
    h = Harness(loop, sndbuf=4096)
    client, conn = h.connect(rcvbuf=4096)
    accepted: list[bytes] = []
    dropped = 0
    for i in range(2000):
        payload = i.to_bytes(4, "big") + b"q" * 996
        if conn.send(payload):
            accepted.append(payload)
        else:
            dropped += 1
        assert conn.pending_write_bytes <= MAX_PENDING_WRITE_BYTES
    assert dropped > 0, "the client never stopped reading, yet nothing was dropped"
    assert conn.frames_dropped == dropped
    assert conn.pending_write_bytes > MAX_PENDING_WRITE_BYTES - 2000
    # Once the client reads, every accepted frame arrives whole and in order, and no other.
    assert client.read_frames(len(accepted), timeout=20) == accepted
    h.run_until(lambda: conn.pending_write_bytes == 0, "the queue to drain")
    assert conn.bytes_sent == sum(2 + len(p) for p in accepted)
    # The writer is gone once the queue is empty.
    assert conn.fd not in loop.writers and conn.fd in loop.readers
    assert not conn.closed
    # And the connection takes frames again.
    assert conn.send(b"again")
    assert client.read_frames(1) == [b"again"]
    h.close_all()
    assert h.pool.in_use == 0


def test_close_with_pending_writes_frees_the_queue(loop: TrackingLoop) -> None:
    h = Harness(loop, sndbuf=4096)
    _, conn = h.connect(rcvbuf=4096)
    while conn.pending_write_bytes < 100_000:
        assert conn.send(b"w" * 10_000)
    conn.close()
    record = h.check_closed(conn)
    assert record.pending == 0 and conn.pending_write_bytes == 0
    h.spin()
    assert h.pool.in_use == 0
    h.close_all()


# ---- the listening side --------------------------------------------------------------------


def test_no_free_slot_refuses_new_connections(loop: TrackingLoop) -> None:
    h = Harness(loop, capacity=1)
    first, conn = h.connect()
    refused = Client(h)
    h.run_until(lambda: h.server.refused == 1, "the refusal")
    assert h.pool.exhausted == 1 and h.pool.in_use == 1
    assert len(h.accepted) == 1 and h.owner.records == []
    assert refused.sees_close()
    # The first connection still works.
    first.send(frame(b"still here"))
    h.run_until(lambda: h.frames == [b"still here"], "the frame")
    # Once its slot is back, a new connection is accepted.
    first.close()
    h.run_until(lambda: conn.closed, "the first connection to close")
    h.check_closed(conn)
    _, third = h.connect()
    assert h.server.refused == 1 and h.pool.in_use == 1 and not third.closed
    h.close_all()
    assert h.pool.in_use == 0


def test_server_close_stops_listening_and_leaves_connections_to_their_owner(
        harness: Harness) -> None:
    client, conn = harness.connect()
    listener_fd = harness.server.fd
    harness.server.close()
    harness.server.close()
    assert harness.server.closed and fd_is_closed(listener_fd)
    with pytest.raises(ConnectionRefusedError), socket.create_connection(harness.address, 2):
        pass
    # The accepted connection is untouched: its owner closes it.
    assert not conn.closed and harness.pool.in_use == 1
    client.send(frame(b"after server close"))
    harness.run_until(lambda: harness.frames == [b"after server close"], "the frame")
    conn.close()
    harness.check_closed(conn)
    assert harness.pool.in_use == 0


def test_many_connections_churn(harness: Harness) -> None:
    """Connections that end in every way, in a loop: the pool and the owner stay exact."""
    endings = ["fin", "rst", "owner", "oversize"]
    for i in range(40):
        client, conn = harness.connect()
        client.send(frame(f"frame {i}".encode()))
        harness.run_until(last_frame_is(harness, f"frame {i}".encode()), "the frame")
        ending = endings[i % len(endings)]
        if ending == "fin":
            client.sock.shutdown(socket.SHUT_WR)
        elif ending == "rst":
            client.reset()
        elif ending == "owner":
            conn.close()
        else:
            client.send(struct.pack("!H", 0xFFFF))
        harness.run_until(is_closed(conn), "the connection to close")
        harness.check_closed(conn)
        assert harness.pool.in_use == 0
    assert len(harness.owner.records) == 40
    assert harness.pool.high_water == 1 and harness.server.refused == 0
