"""Batched UDP receive and send (cffi_build/sockio.c) on real sockets over 127.0.0.1 and ::1.

Every wait is bounded: datagrams on loopback arrive before sendto returns, and the helpers below
poll with a deadline of a few seconds rather than block.
"""

from __future__ import annotations

import errno
import gc
import os
import select
import socket
import time
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker import _fast as F

SLOT = 2048
SLOTS = 64
SENTINEL = 0xA5
WAIT_S = 3.0


def _ipv6_loopback_works() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


FAMILIES = [
    pytest.param((socket.AF_INET, "127.0.0.1"), id="ipv4"),
    pytest.param((socket.AF_INET6, "::1"), id="ipv6",
                 marks=pytest.mark.skipif(not _ipv6_loopback_works(),
                                          reason="::1 cannot be bound on this machine")),
]


class Sockets:
    """UDP sockets bound on one loopback address, all closed at teardown."""

    def __init__(self, family: int, host: str) -> None:
        self.family = family
        self.host = host
        self._open: list[socket.socket] = []

    def udp(self, rcvbuf: int = 0, sndbuf: int = 0) -> socket.socket:
        sock = socket.socket(self.family, socket.SOCK_DGRAM)
        self._open.append(sock)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if sndbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        sock.bind((self.host, 0))
        sock.setblocking(False)
        return sock

    def close(self) -> None:
        for sock in self._open:
            sock.close()


@pytest.fixture(params=FAMILIES)
def net(request: pytest.FixtureRequest) -> Iterator[Sockets]:
    family, host = request.param
    sockets = Sockets(family, host)
    yield sockets
    sockets.close()


@pytest.fixture
def net4() -> Iterator[Sockets]:
    sockets = Sockets(socket.AF_INET, "127.0.0.1")
    yield sockets
    sockets.close()


def addr2(sock: socket.socket) -> tuple[str, int]:
    host, port = sock.getsockname()[:2]
    return host, port


def new_recv_batch(slots: list[int] | None = None, slot_size: int = SLOT,
                   capacity: int = SLOTS) -> tuple[bytearray, F.RecvBatch]:
    slab = bytearray([SENTINEL]) * (slot_size * SLOTS)
    batch = F.RecvBatch(memoryview(slab), slot_size, capacity)
    chosen = slots if slots is not None else list(range(capacity))
    batch.slots[0 : len(chosen)] = chosen
    return slab, batch


def recv_expected(batch: F.RecvBatch, sock: socket.socket, expected: int) -> list[bytes]:
    """Receive until `expected` datagrams came (one batch at a time, bounded), as bytes."""
    out: list[bytes] = []
    deadline = time.monotonic() + WAIT_S
    while len(out) < expected and time.monotonic() < deadline:
        got = batch.recv(sock.fileno(), min(batch.capacity, expected - len(out)))
        out.extend(bytes(batch.view(i)) for i in range(got))
        if got == 0:
            assert batch.err == errno.EAGAIN
            select.select([sock], [], [], 0.05)
    return out


def drain(sock: socket.socket, limit: int = 10000) -> list[bytes]:
    out: list[bytes] = []
    for _ in range(limit):
        try:
            out.append(sock.recv(65536))
        except BlockingIOError:
            break
    return out


def payload(index: int, size: int) -> bytes:
    head = index.to_bytes(4, "big")
    return (head + bytes((index * 7 + k) & 0xFF for k in range(size)))[:size] if size else b""


# ---- receive ----------------------------------------------------------------------------------


def test_recv_batch_matches_sendto(net: Sockets) -> None:
    rx, tx1, tx2 = net.udp(), net.udp(), net.udp()
    sent = [(tx1 if i % 3 else tx2, payload(i, size))
            for i, size in enumerate([1, 20, 0, 1200, 1500, 2048, 64, 172, 9])]
    for sock, data in sent:
        sock.sendto(data, addr2(rx))
    slots = [5, 0, 63, 17, 18, 2, 40, 41, 7]
    slab, batch = new_recv_batch(slots)

    got = batch.recv(rx.fileno(), len(slots))

    assert (got, batch.err, batch.count) == (len(sent), 0, len(sent))
    for i, (sock, data) in enumerate(sent):
        assert batch.lengths[i] == len(data)
        assert bytes(batch.view(i)) == data
        start = slots[i] * SLOT
        assert slab[start : start + len(data)] == data
        # the slot's bytes past the datagram are untouched
        assert set(slab[start + len(data) : start + SLOT]) <= {SENTINEL}
        assert batch.source(i) == addr2(sock)
        assert batch.flags[i] == 0
        assert not batch.truncated(i)
    untouched = set(range(SLOTS)) - set(slots)
    assert all(slab[s * SLOT : (s + 1) * SLOT] == bytes([SENTINEL]) * SLOT for s in untouched)


@given(sizes=st.lists(st.integers(min_value=0, max_value=1600), min_size=1, max_size=40),
       data=st.data())
def test_recv_batch_equals_socket_sendto_generated(sizes: list[int], data: st.DataObject) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        rx.bind(("127.0.0.1", 0))
        tx.bind(("127.0.0.1", 0))
        slot_size = data.draw(st.sampled_from([256, 1024, 1500, SLOT]), label="slot_size")
        slots = data.draw(st.lists(st.integers(0, SLOTS - 1), min_size=len(sizes),
                                   max_size=len(sizes), unique=True), label="slots")
        datagrams = [payload(i, size) for i, size in enumerate(sizes)]
        for datagram in datagrams:
            tx.sendto(datagram, addr2(rx))
        _, batch = new_recv_batch(slots, slot_size)

        got = batch.recv(rx.fileno(), len(sizes))

        assert got == len(sizes)
        for i, datagram in enumerate(datagrams):
            kept = datagram[:slot_size]
            assert bytes(batch.view(i)) == kept
            assert batch.truncated(i) == (len(datagram) > slot_size)
            assert batch.source(i) == addr2(tx)


def test_recv_fewer_than_queued_leaves_the_rest(net: Sockets) -> None:
    rx, tx = net.udp(), net.udp()
    for i in range(10):
        tx.sendto(payload(i, 50), addr2(rx))
    _, batch = new_recv_batch()
    assert batch.recv(rx.fileno(), 4) == 4
    assert [bytes(batch.view(i)) for i in range(4)] == [payload(i, 50) for i in range(4)]
    assert batch.recv(rx.fileno()) == 6
    assert [bytes(batch.view(i)) for i in range(6)] == [payload(i, 50) for i in range(4, 10)]


def test_oversize_datagram_is_flagged_truncated(net: Sockets) -> None:
    rx, tx = net.udp(), net.udp()
    big, small = payload(1, 1000), payload(2, 100)
    tx.sendto(big, addr2(rx))
    tx.sendto(small, addr2(rx))
    slab, batch = new_recv_batch([3, 4], slot_size=256)

    assert batch.recv(rx.fileno(), 2) == 2

    assert batch.flags[0] == F.RECV_TRUNCATED and batch.truncated(0)
    assert batch.lengths[0] == 256
    assert bytes(batch.view(0)) == big[:256]
    assert not batch.truncated(1) and bytes(batch.view(1)) == small
    # the truncated datagram stayed in its slot: slot 4 holds only the small one
    assert slab[4 * 256 : 4 * 256 + 100] == small
    assert set(slab[4 * 256 + 100 : 5 * 256]) == {SENTINEL}


def test_empty_socket_gives_zero_and_eagain(net: Sockets) -> None:
    rx = net.udp()
    _, batch = new_recv_batch()
    assert batch.recv(rx.fileno()) == 0
    assert batch.err == errno.EAGAIN
    assert batch.count == 0
    with pytest.raises(IndexError):
        batch.view(0)


def test_recv_on_a_blocking_socket_does_not_block(net: Sockets) -> None:
    rx = net.udp()
    rx.setblocking(True)
    _, batch = new_recv_batch()
    started = time.monotonic()
    assert batch.recv(rx.fileno()) == 0
    assert batch.err == errno.EAGAIN
    assert time.monotonic() - started < 1.0


def test_recv_slot_outside_slab_is_refused_before_receiving(net4: Sockets) -> None:
    rx, tx = net4.udp(), net4.udp()
    tx.sendto(b"still queued", addr2(rx))
    _, batch = new_recv_batch([0, SLOTS])  # slot SLOTS is one past the slab
    with pytest.raises(F.SockioArgumentError):
        batch.recv(rx.fileno(), 2)
    assert drain(rx) == [b"still queued"]


def test_recv_argument_checks() -> None:
    slab = bytearray(SLOT * 4)
    with pytest.raises(ValueError):
        F.RecvBatch(memoryview(slab), SLOT, F.SOCKIO_MAX_RECV + 1)
    with pytest.raises(ValueError):
        F.RecvBatch(memoryview(slab), SLOT * 5, 4)
    with pytest.raises(TypeError):
        F.RecvBatch(b"read-only", 4, 1)  # the kernel writes into the slab
    batch = F.RecvBatch(memoryview(slab), SLOT, 4)
    with pytest.raises(ValueError):
        batch.recv(0, 5)
    # the C checks its own bounds too: more than MW_SOCKIO_MAX_RECV, or a zero slot size
    err = F.ffi.new("int *")
    slots = F.ffi.new("uint32_t[]", F.SOCKIO_MAX_RECV + 1)
    lengths = F.ffi.new("uint32_t[]", F.SOCKIO_MAX_RECV + 1)
    buf = F.ffi.from_buffer(slab, require_writable=True)
    assert F.lib.mw_sockio_recv_batch(0, buf, len(slab), SLOT, slots, F.SOCKIO_MAX_RECV + 1,
                                      lengths, F.ffi.NULL, F.ffi.NULL, err) == \
        F.lib.MW_SOCKIO_ERR_ARGS
    assert err[0] == errno.EINVAL
    assert F.lib.mw_sockio_recv_batch(0, buf, len(slab), 0, slots, 1, lengths, F.ffi.NULL,
                                      F.ffi.NULL, err) == F.lib.MW_SOCKIO_ERR_ARGS
    assert F.lib.mw_sockio_recv_batch(0, buf, len(slab), SLOT, slots, 0, lengths, F.ffi.NULL,
                                      F.ffi.NULL, err) == 0
    assert err[0] == 0


def test_slab_may_be_a_slice_of_a_bigger_buffer(net4: Sockets) -> None:
    rx, tx = net4.udp(), net4.udp()
    whole = bytearray(SLOT * 8)
    batch = F.RecvBatch(memoryview(whole)[SLOT * 2 : SLOT * 6], SLOT, 4)  # slots 0..3 of a slice
    batch.slots[0:2] = [3, 0]
    tx.sendto(b"first", addr2(rx))
    tx.sendto(b"second", addr2(rx))
    assert batch.recv(rx.fileno(), 2) == 2
    assert whole[SLOT * 5 : SLOT * 5 + 5] == b"first"
    assert whole[SLOT * 2 : SLOT * 2 + 6] == b"second"
    assert bytes(batch.view(0)) == b"first"


def test_batches_hold_no_export_of_any_memoryview() -> None:
    # CPython 3.11 crashes when the garbage collector clears a memoryview whose buffer is still
    # exported (a batch caught in a reference cycle, a traceback say, would do that). So the
    # batches take their C pointer from the object under the memoryview: every memoryview they
    # hold can be released at any time.
    for make in (lambda v: F.RecvBatch(v, SLOT, 4), lambda v: F.SendBatch(v, 4)):
        view = memoryview(bytearray(SLOT * 4))
        batch = make(view)
        held = [ref for ref in gc.get_referents(batch) if isinstance(ref, memoryview)]
        for ref in [view, *held]:
            ref.release()  # raises BufferError if the batch exported it

    class Holder:
        pass

    for _ in range(3):  # and a cycle holding batches is collected without harm
        view = memoryview(bytearray(SLOT * 4))
        holder = Holder()
        holder.batches = [F.RecvBatch(view, SLOT, 4), F.SendBatch(view, 4)]  # type: ignore[attr-defined]
        holder.me = holder  # type: ignore[attr-defined]
        del holder, view
        gc.collect()


# ---- send -------------------------------------------------------------------------------------


def test_send_batch_to_several_destinations_is_byte_exact(net: Sockets) -> None:
    tx = net.udp()
    receivers = [net.udp(rcvbuf=1 << 20) for _ in range(3)]
    slab = bytearray(os.urandom(SLOT * 8))
    batch = F.SendBatch(memoryview(slab), 48)
    expected: dict[int, list[bytes]] = {r: [] for r in range(len(receivers))}
    sizes = [1200, 1, 0, 200, 2048, 77]
    for i in range(48):
        r = i % len(receivers)
        offset = (i % 8) * SLOT + (i % 5)  # several messages share bytes; offsets need no slot
        size = min(sizes[i % len(sizes)], len(slab) - offset)
        batch.set(i, offset, size, addr2(receivers[r]))
        expected[r].append(bytes(slab[offset : offset + size]))

    assert batch.send(tx.fileno(), 48) == 48
    assert (batch.sent, batch.dropped, batch.left, batch.err, batch.drop_err) == (48, 0, 0, 0, 0)

    for r, sock in enumerate(receivers):
        _, rbatch = new_recv_batch()
        assert recv_expected(rbatch, sock, 16) == expected[r]
        assert rbatch.source(0) == addr2(tx)


def test_send_batch_larger_than_one_sendmmsg(net4: Sockets) -> None:
    tx, rx = net4.udp(), net4.udp(rcvbuf=4 << 20)
    count = 700  # the C sends 256 messages per sendmmsg
    slab = bytes(range(256)) * 4
    batch = F.SendBatch(slab, count)
    for i in range(count):
        batch.set(i, i % 512, 1 + i % 100, addr2(rx))
    assert batch.send(tx.fileno(), count) == count
    assert (batch.dropped, batch.left, batch.err) == (0, 0, 0)
    received = drain(rx)
    assert received == [slab[i % 512 : i % 512 + 1 + i % 100] for i in range(count)]


def test_send_drops_refused_messages_and_goes_on(net4: Sockets) -> None:
    tx, rx = net4.udp(), net4.udp()
    slab = b"".join(payload(i, 100) for i in range(5))
    batch = F.SendBatch(slab, 5)
    batch.set(0, 0, 100, addr2(rx))
    batch.set(1, 100, 100, ("255.255.255.255", 9))  # broadcast without SO_BROADCAST: EACCES
    batch.set(2, 200, 100, addr2(rx))
    batch.set(3, 300, 100, ("127.0.0.1", 0))  # port 0: EINVAL
    batch.set(4, 400, 100, addr2(rx))

    assert batch.send(tx.fileno(), 5) == 3
    assert (batch.sent, batch.dropped, batch.left, batch.err) == (3, 2, 0, 0)
    assert batch.drop_err == errno.EINVAL  # the last one dropped
    assert drain(rx) == [payload(0, 100), payload(2, 100), payload(4, 100)]


def test_send_on_connected_socket_ignores_dests(net: Sockets) -> None:
    tx, rx = net.udp(), net.udp()
    tx.connect(addr2(rx))
    slab = b"abcdefghij" * 10
    batch = F.SendBatch(slab, 3)
    for i in range(3):
        batch.set(i, i * 10, 10 + i)  # no destination at all
    assert batch.send(tx.fileno(), 3, connected=True) == 3
    assert drain(rx) == [slab[0:10], slab[10:21], slab[20:32]]


def test_send_connected_to_closed_port_drops_the_refused_message(net4: Sockets) -> None:
    tx, gone = net4.udp(), net4.udp()
    tx.connect(addr2(gone))
    gone.close()  # nobody listens any more: the kernel answers with ICMP port unreachable
    batch = F.SendBatch(b"x" * 40, 4)
    for i in range(4):
        batch.set(i, i * 10, 10)
    assert batch.send(tx.fileno(), 1, connected=True) == 1  # goes out; the ICMP comes back
    assert batch.send(tx.fileno(), 4, connected=True) == 3
    assert (batch.dropped, batch.drop_err, batch.left, batch.err) == (1, errno.ECONNREFUSED, 0, 0)


def test_send_to_a_full_udp_receiver_counts_add_up(net4: Sockets) -> None:
    rx = net4.udp(rcvbuf=1)  # the kernel rounds it up to its minimum
    tx = net4.udp(sndbuf=1)
    count = 300
    slab = b"".join(payload(i, 1200) for i in range(count))
    batch = F.SendBatch(slab, count)
    for i in range(count):
        batch.set(i, i * 1200, 1200, addr2(rx))

    sent = batch.send(tx.fileno(), count)

    assert sent == batch.sent
    assert batch.sent + batch.dropped + batch.left == count
    assert batch.dropped == 0
    if batch.left:
        assert batch.err in (errno.EAGAIN, errno.ENOBUFS)
    else:
        assert batch.err == 0
    received = drain(rx)
    # UDP drops silently at a full receiver: what arrived is the first messages, in order
    assert 0 < len(received) < sent
    assert received == [payload(i, 1200) for i in range(len(received))]


def test_send_to_a_full_receiver_stops_with_eagain_and_reports_what_is_left() -> None:
    # An AF_UNIX datagram pair has flow control: a full receiver makes the sender's sendmmsg
    # fail with EAGAIN (on loopback UDP never does: it drops at the receiver, as tested above).
    rx, tx = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with rx, tx:
        rx.setblocking(False)
        tx.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
        count = 400
        slab = b"".join(payload(i, 500) for i in range(count))
        batch = F.SendBatch(slab, count)
        for i in range(count):
            batch.set(i, i * 500, 500)

        sent = batch.send(tx.fileno(), count, connected=True)

        assert 0 < sent < count
        assert (batch.sent, batch.dropped, batch.left, batch.err) == \
            (sent, 0, count - sent, errno.EAGAIN)
        _, rbatch = new_recv_batch(capacity=64)
        received = recv_expected(rbatch, rx, sent)
        assert received == [payload(i, 500) for i in range(sent)]
        assert rbatch.source(0) is None  # not an IP address

        # the caller kept the left ones: with the receiver drained between tries, they go out
        next_index = sent
        deadline = time.monotonic() + WAIT_S
        while next_index < count and time.monotonic() < deadline:
            rest = F.SendBatch(slab, count - next_index)
            for j, i in enumerate(range(next_index, count)):
                rest.set(j, i * 500, 500)
            next_index += rest.send(tx.fileno(), count - next_index, connected=True)
            assert rest.left == count - next_index
            received.extend(drain(rx))
        assert next_index == count
        assert received == [payload(i, 500) for i in range(count)]


def test_send_outside_the_slab_is_refused_before_sending(net4: Sockets) -> None:
    tx, rx = net4.udp(), net4.udp()
    batch = F.SendBatch(bytes(100), 2)
    batch.set(0, 0, 10, addr2(rx))
    batch.set(1, 95, 6, addr2(rx))  # one byte past the end
    with pytest.raises(F.SockioArgumentError):
        batch.send(tx.fileno(), 2)
    assert (batch.sent, batch.left, batch.err) == (0, 2, errno.EINVAL)
    assert drain(rx) == []
    batch.set(1, 95, 5, addr2(rx))
    batch.dests[0].family = F.lib.MW_SOCKIO_FAMILY_NONE
    with pytest.raises(F.SockioArgumentError):
        batch.send(tx.fileno(), 2)
    assert drain(rx) == []
    with pytest.raises(ValueError):
        batch.send(tx.fileno(), 3)


@given(ranges=st.lists(st.tuples(st.integers(0, 140), st.integers(0, 140)), min_size=1,
                       max_size=12))
def test_send_accepts_exactly_the_ranges_inside_the_slab(ranges: list[tuple[int, int]]) -> None:
    slab = bytes(range(100))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.setblocking(False)
        batch = F.SendBatch(slab, len(ranges))
        for i, (offset, length) in enumerate(ranges):
            batch.set(i, offset, length, addr2(rx))
        inside = all(offset + length <= len(slab) for offset, length in ranges)
        if not inside:
            with pytest.raises(F.SockioArgumentError):
                batch.send(tx.fileno(), len(ranges))
            assert drain(rx) == []
            return
        assert batch.send(tx.fileno(), len(ranges)) == len(ranges)
        assert drain(rx) == [slab[offset : offset + length] for offset, length in ranges]


# ---- bad file descriptors -----------------------------------------------------------------------


def test_closed_or_foreign_fd_gives_an_error_code() -> None:
    read_end, write_end = os.pipe()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed_fd = sock.detach()
    os.close(closed_fd)  # nothing opens a file before the calls below reuse the number
    try:
        _, rbatch = new_recv_batch()
        sbatch = F.SendBatch(bytes(10), 2)
        sbatch.set(0, 0, 10, ("127.0.0.1", 9))
        sbatch.set(1, 0, 10, ("127.0.0.1", 9))
        for fd, reason in [(closed_fd, errno.EBADF), (-1, errno.EBADF),
                           (read_end, errno.ENOTSOCK)]:
            assert rbatch.recv(fd) == 0
            assert rbatch.err == reason
            assert sbatch.send(fd, 2) == 0
            assert (sbatch.sent, sbatch.dropped, sbatch.left, sbatch.err) == (0, 0, 2, reason)
    finally:
        os.close(read_end)
        os.close(write_end)


# ---- addresses (control plane) ------------------------------------------------------------------


@pytest.mark.parametrize(("host", "port", "family", "raw"), [
    ("127.0.0.1", 5004, 4, bytes([127, 0, 0, 1]) + bytes(12)),
    ("192.0.2.33", 0, 4, bytes([192, 0, 2, 33]) + bytes(12)),
    ("::1", 65535, 6, bytes(15) + b"\x01"),
    ("2001:db8::7", 443, 6, bytes.fromhex("20010db8000000000000000000000007")),
])
def test_addr_set_and_back(host: str, port: int, family: int, raw: bytes) -> None:
    addr = F.ffi.new("struct mw_sockio_addr *")
    F.sockio_addr_set(addr, host, port)
    assert (addr.family, addr.port, addr.scope_id) == (family, port, 0)
    assert F.ffi.buffer(addr.addr)[:] == raw
    assert F.sockio_addr_to_tuple(addr) == (host, port)


def test_addr_v4_mapped_zone_and_errors() -> None:
    addr = F.ffi.new("struct mw_sockio_addr *")
    F.sockio_addr_set(addr, "127.0.0.1", 9, v4_mapped=True)
    assert F.sockio_addr_to_tuple(addr) == ("::ffff:127.0.0.1", 9)
    F.sockio_addr_set(addr, "fe80::1%3", 9)
    assert addr.scope_id == 3
    assert F.sockio_addr_to_tuple(addr) == ("fe80::1%3", 9)
    F.sockio_addr_set(addr, "fe80::1%lo", 9)
    assert addr.scope_id == socket.if_nametoindex("lo")
    for host, port in [("example.org", 1), ("1.2.3.4", 70000), ("1.2.3.4%2", 1),
                       ("fe80::1%no-such-if0", 1), ("1.2.3", 1)]:
        with pytest.raises(ValueError):
            F.sockio_addr_set(addr, host, port)
    addr.family = F.lib.MW_SOCKIO_FAMILY_NONE
    assert F.sockio_addr_to_tuple(addr) is None


def test_dual_stack_socket_receives_ipv4_as_mapped_and_sends_to_mapped() -> None:
    if not _ipv6_loopback_works():
        pytest.skip("::1 cannot be bound on this machine")
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as dual, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as v4:
        dual.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        dual.bind(("::", 0))
        dual.setblocking(False)
        v4.bind(("127.0.0.1", 0))
        v4.setblocking(False)
        v4.sendto(b"from v4", ("127.0.0.1", dual.getsockname()[1]))
        _, batch = new_recv_batch()
        assert recv_expected(batch, dual, 1) == [b"from v4"]
        assert batch.source(0) == ("::ffff:127.0.0.1", addr2(v4)[1])
        send = F.SendBatch(b"back", 1)
        send.set(0, 0, 4, addr2(v4), v4_mapped=True)
        assert send.send(dual.fileno(), 1) == 1
        assert drain(v4) == [b"back"]
