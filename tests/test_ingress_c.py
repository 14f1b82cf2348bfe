"""The C receive path (``cffi_build/ingress.c``) on its own, in this process, over real UDP
sockets on 127.0.0.1: which datagrams it takes and which it leaves to Python, what it does to
the stream's state (statistics, NACK highest number, store), the fan-out to a consumer socket,
SRTP, and the pools' slots (every one back after each run). Random datagrams never crash it
and never leak a slot (also run under ASan/UBSan by ``scripts/sanitize.py``).

The end-to-end behaviour through a worker is ``tests/test_fast_ingress.py``'s.
"""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

import pylibsrtp
from hypothesis import given, settings
from hypothesis import strategies as st

from worker._fast import ffi, lib
from worker._fast.forward import ForwardBatch, ForwardTable
from worker._fast.sockio import RecvBatch, sockio_addr_set
from worker._fast.srtp import SrtpContext, SrtpProfile, srtp_api
from worker.bufferpool import BufferPool
from worker.fast_ingress import addr_sort_key
from worker.keyframe import keyframe_codec
from worker.nack_generator import NACK_MAX_PACKET_AGE, NackGenerator
from worker.retransmission_buffer import RetransmissionBuffer
from worker.rtp_stream_stats import RecvStreamStats

SSRC: Final = 0x0BADCAFE
OUT_SSRC: Final = 0x600DF00D
PT: Final = 96
OUT_PT: Final = 100
SLOT: Final = 2048
NOW: Final = 1_000_000
KEY: Final = bytes(range(30))


def vp8(seq: int, *, key: bool = False, ssrc: int = SSRC, pt: int = PT,
        payload: bytes | None = None) -> bytes:
    body = bytes([0x10, 0x10 if key else 0x11]) + seq.to_bytes(2, "big") + bytes(200)
    return struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, seq * 3000, ssrc) + (
        body if payload is None else payload)


@dataclass
class Path:
    """A socket's C receive path with one VP8 stream and one consumer socket."""

    g: Any
    route: Any
    result: Any
    entry: Any
    in_pool: BufferPool
    out_pool: BufferPool
    rx: socket.socket
    sender: socket.socket
    sink: socket.socket
    stats: RecvStreamStats
    nack: NackGenerator
    store: RetransmissionBuffer[int]
    keep: list[Any]

    def send(self, *packets: bytes, sock: socket.socket | None = None) -> None:
        for packet in packets:
            (sock or self.sender).sendto(packet, self.rx.getsockname())

    def run(self) -> Any:
        self.g.want = lib.MW_INGRESS_BATCH  # everything sent so far, in one batch
        assert lib.mw_ingress_run(self.g, NOW, self.result) == 0
        return self.result

    def resume(self, start: int) -> int:
        assert lib.mw_ingress_resume(self.g, start, NOW, self.result) == 0
        slow: int = self.result.slow_from
        return slow

    def forwarded(self) -> list[bytes]:
        out: list[bytes] = []
        while True:
            try:
                out.append(self.sink.recv(2048))
            except BlockingIOError:
                return out


def _udp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def path(*, srtp: SrtpContext | None = None) -> Iterator[Path]:
    rx, sender, sink, out = _udp(), _udp(), _udp(), _udp()
    in_pool, out_pool = BufferPool("udpRecv", SLOT, 256), BufferPool("rtpPacket", SLOT, 1024)
    batch = RecvBatch(memoryview(in_pool.slab), SLOT, lib.MW_INGRESS_BATCH)
    table = ForwardTable({SSRC: [{"id": "c", "ssrc": OUT_SSRC, "payloadTypes": {PT: OUT_PT},
                                  "dest": sink.getsockname(), "fd": out.fileno()}]})
    fwd = ForwardBatch(memoryview(in_pool.slab), SLOT, memoryview(out_pool.slab), SLOT, 1024)
    g = ffi.new("struct mw_ingress *")
    g.fd, g.want = rx.fileno(), lib.MW_INGRESS_MIN_WANT
    g.in_pool, g.out_pool = in_pool.c_pool, out_pool.c_pool
    g.slots, g.lengths, g.addrs, g.flags, g.kinds = (batch.slots, batch.lengths, batch.addrs,
                                                     batch.flags, batch.kinds)
    touched = ffi.new("struct mw_ingress_route *[]", lib.MW_INGRESS_BATCH)
    route = ffi.new("struct mw_ingress_route *")
    routes = ffi.new("struct mw_ingress_route *[]", [route])
    g.touched, g.routes, g.route_count = touched, routes, 1
    route.table = table.struct
    route.fwd_in, route.fwd_out, route.free_slots = fwd.input, fwd.output, fwd.free
    route.area, route.fwd_result, route.send_result = fwd.area, fwd.result, fwd.send_result
    queue = (ffi.new("uint32_t[]", lib.MW_INGRESS_BATCH),
             ffi.new("uint32_t[]", lib.MW_INGRESS_BATCH))
    route.queue_slots, route.queue_lengths = queue
    sockio_addr_set(route.remote, *sender.getsockname())
    stats = RecvStreamStats(SSRC, 90000, NOW, kind="video", mime_type="video/VP8")
    nack = NackGenerator(10)
    store: RetransmissionBuffer[int] = RetransmissionBuffer(90000, 2000, None, pool=out_pool)
    entries = ffi.new("struct mw_ingress_stream[]", 1)
    e = entries[0]
    e.ssrc, e.enabled, e.forward = SSRC, 1, 1
    e.keyframe_codec = keyframe_codec("video/VP8")
    e.pt_ok[PT] = 1
    e.stats, e.nack, e.store = stats.c_stream, nack.shared, store.c_store
    route.streams, route.stream_count = entries, 1
    keep: list[Any] = [batch, table, fwd, queue, entries, touched, route, routes]
    if srtp is not None:
        api = srtp_api()
        route.srtp, route.srtp_in, route.api = 1, srtp.pointer, api.struct
        keep += [srtp, api]
    # The stream's first packet went through Python (it made the stream).
    stats.receive_packet(0, 0, 212, 200, NOW)
    nack.receive(0, True, False, NOW)
    p = Path(g, route, ffi.new("struct mw_ingress_result *"), e, in_pool, out_pool, rx, sender,
             sink, stats, nack, store, keep)
    try:
        yield p
    finally:
        store.close()
        for sock in (rx, sender, sink, out):
            sock.close()


def _seq(packet: bytes) -> int:
    return int.from_bytes(packet[2:4], "big")


def test_in_order_packets_are_taken_counted_stored_and_forwarded() -> None:
    with path() as p:
        packets = [vp8(seq) for seq in range(1, 21)]
        p.send(*packets)
        r = p.run()
        assert (r.received, r.slow_from, r.err) == (20, 20, 0)
        assert p.in_pool.in_use == 0 and p.g.lent == 0
        out = p.forwarded()
        assert [_seq(o) for o in out] == list(range(1, 21))
        for sent, got in zip(packets, out, strict=True):
            assert got[1] & 0x7F == OUT_PT and got[8:12] == OUT_SSRC.to_bytes(4, "big")
            assert got[12:] == sent[12:] and got[4:8] == sent[4:8]
        assert p.stats.packet_count == 21 and p.stats.extended_highest_seq == 20
        assert p.nack.shared.last_seq == (1 << 16) + 20 and len(p.nack) == 0
        assert len(p.store) == 20 and p.out_pool.in_use == 20
        assert p.entry.packets == 20
        r = p.route
        assert (r.datagrams, r.rtp_received, r.forwarded) == (20, 20, 20)
        assert r.bytes == sum(map(len, packets))


def test_the_first_datagram_that_needs_python_stops_the_walk_and_resume_goes_on() -> None:
    with path() as p:
        p.send(vp8(1), vp8(2), vp8(3, key=True), vp8(4), vp8(6), vp8(7))
        r = p.run()
        assert (r.received, r.slow_from) == (6, 2)  # the key frame
        assert p.g.lent == r.asked and p.in_pool.in_use == r.asked
        assert [_seq(o) for o in p.forwarded()] == [1, 2]
        # Python handles the key frame (here: by hand, as the producer would).
        p.stats.receive_packet(3, 9000, 212, 200, NOW)
        p.nack.receive(3, True, False, NOW)
        assert p.resume(3) == 4  # 6 after 4: a gap, Python's
        assert [_seq(o) for o in p.forwarded()] == [4]
        p.stats.receive_packet(6, 18000, 212, 200, NOW)
        p.nack.receive(6, False, False, NOW)
        assert p.nack.shared.pending == 1  # 5 is missing; its first request is due in 10 ms
        assert p.resume(5) == 6  # so 7 is the C's all the same
        assert [_seq(o) for o in p.forwarded()] == [7]
        assert p.nack.shared.last_seq == (1 << 16) + 7 and p.nack.pending == [5]
        lib.mw_ingress_release(p.g)
        assert p.in_pool.in_use == 0 and p.g.lent == 0


def test_missing_packets_leave_the_next_ones_to_the_c_until_a_request_is_due() -> None:
    for age, taken in ((5, True), (20, False)):  # the first request is due 10 ms after the gap
        with path() as p:
            p.stats.receive_packet(2, 6000, 212, 200, NOW - age)
            p.nack.receive(2, False, False, NOW - age)  # 1 is missing since NOW - age
            assert p.nack.shared.pending == 1
            p.send(vp8(3), vp8(4))
            r = p.run()
            assert r.slow_from == (2 if taken else 0), age
            if not taken:
                lib.mw_ingress_release(p.g)
            assert p.in_pool.in_use == 0
            assert p.nack.pending == [1]


def test_the_c_and_the_generator_agree_on_how_old_an_entry_may_get() -> None:
    assert lib.MW_INGRESS_NACK_MAX_PACKET_AGE == NACK_MAX_PACKET_AGE


def test_what_is_left_to_python() -> None:
    stranger = _udp()
    cases: list[tuple[str, bytes, socket.socket | None]] = [
        ("unknown ssrc", vp8(1, ssrc=1), None),
        ("payload type", vp8(1, pt=97), None),
        ("padding only", vp8(1, payload=b""), None),
        ("rtcp", struct.pack("!BBHI", 0x80, 201, 1, SSRC), None),
        ("stun", bytes(20), None),
        ("not rtp", b"\x80", None),
        ("other source", vp8(1), stranger),
        ("out of order", vp8(5), None),
    ]
    try:
        for name, packet, sock in cases:
            with path() as p:
                p.send(packet, sock=sock)
                r = p.run()
                assert (r.received, r.slow_from) == (1, 0), name
                assert p.route.datagrams == 0 and p.stats.packet_count == 1, name
                lib.mw_ingress_release(p.g)
                assert p.in_pool.in_use == 0, name
    finally:
        stranger.close()


def test_disabled_streams_and_sockets_without_routes_take_nothing() -> None:
    for what in ("stream", "routes"):
        with path() as p:
            if what == "stream":
                p.entry.enabled = 0
            else:
                p.g.route_count = 0
            p.send(vp8(1), vp8(2))
            r = p.run()
            assert (r.received, r.slow_from) == (2, 0), what
            assert p.resume(1) == 1, what
            lib.mw_ingress_release(p.g)
            assert p.in_pool.in_use == 0 and p.forwarded() == [], what


def test_an_empty_socket_an_empty_pool_and_a_batch_still_lent() -> None:
    with path() as p:
        r = p.run()
        assert (r.received, r.err) == (0, errno.EAGAIN) and p.in_pool.in_use == 0
        held = p.in_pool.acquire_batch(256)
        p.send(vp8(1))
        r = p.run()
        assert (r.received, r.err) == (0, errno.ENOBUFS) and p.g.no_recv_slots == 1
        p.in_pool.release_batch(held)
        p.send(vp8(2, key=True))  # after 1, still waiting in the socket
        assert p.run().slow_from == 1
        assert lib.mw_ingress_run(p.g, NOW, p.result) == -1  # the last batch is still lent
        lib.mw_ingress_release(p.g)
        assert lib.mw_ingress_resume(p.g, 0, NOW, p.result) == -1  # nothing lent
        assert p.in_pool.in_use == 0


def test_srtp_is_removed_in_place_and_failures_are_counted_and_dropped() -> None:
    profile = SrtpProfile.AES128_CM_SHA1_80
    inbound = SrtpContext.inbound(profile, KEY)
    protect = pylibsrtp.Session(pylibsrtp.Policy(
        key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
        srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80))
    with path(srtp=inbound) as p:
        good = [protect.protect(vp8(seq)) for seq in (1, 2)]
        tampered = bytearray(protect.protect(vp8(3)))
        tampered[-1] ^= 1
        key = protect.protect(vp8(4, key=True))
        p.send(*good, bytes(tampered), key)
        r = p.run()
        assert (r.received, r.slow_from) == (4, 3)
        assert p.route.srtp_failed == 1 and p.route.rtp_received == 2
        assert [_seq(o) for o in p.forwarded()] == [1, 2]
        # The key frame is left to Python without its SRTP, which must not be removed twice.
        assert p.g.flags[3] & lib.MW_INGRESS_UNPROTECTED
        assert p.g.lengths[3] == len(vp8(4, key=True))
        slot = p.g.slots[3]
        assert bytes(p.in_pool.slab[slot * SLOT: slot * SLOT + p.g.lengths[3]]) == vp8(4, key=True)
        lib.mw_ingress_release(p.g)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=300),
                          st.builds(lambda seq, body: vp8(seq, payload=body),
                                    st.integers(0, 0xFFFF), st.binary(max_size=100))),
                min_size=1, max_size=40))
def test_random_datagrams_never_crash_or_leak(datagrams: list[bytes]) -> None:
    with path() as p:
        sent = [d for d in datagrams if d]
        p.send(*sent)
        r = p.run()
        start = r.slow_from
        while start < r.received:  # Python would handle one, then the C goes on
            start = p.resume(start + 1)
        if p.g.lent:
            lib.mw_ingress_release(p.g)
        assert p.in_pool.in_use == 0
        assert p.out_pool.in_use == len(p.store)
        assert p.route.datagrams <= r.received


_hosts = st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str))


@given(st.lists(st.tuples(_hosts, st.integers(0, 0xFFFF)), min_size=2, max_size=8))
def test_the_routes_sort_key_orders_as_the_c_compares(addresses: list[tuple[str, int]]) -> None:
    addrs = ffi.new("struct mw_sockio_addr[]", len(addresses))
    for addr, (host, port) in zip(addrs, addresses, strict=True):
        sockio_addr_set(addr, host, port)
    for i in range(len(addresses)):
        for j in range(len(addresses)):
            c = lib.mw_ingress_addr_cmp(addrs + i, addrs + j)
            ki, kj = addr_sort_key(addrs[i]), addr_sort_key(addrs[j])
            assert (c > 0) - (c < 0) == (ki > kj) - (ki < kj)
