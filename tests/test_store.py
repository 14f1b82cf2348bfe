"""The retransmission store in C (``cffi_build/store.c``, wrapped by
``worker/retransmission_buffer.py``) against its pure-Python reference
(``tests/reference/retransmission_buffer.py``), and the pool's C interface as C callers use it
(``cffi_build/pool.c``).

The differential tests run the same operations on both and compare, after every operation, what
each returned, every stored packet (fields and resend state), the counters, and the handles
each gave back during that operation. The one allowed difference is the order in which a clear
gives handles back (the reference: insertion order; the C: oldest first), so handles are
compared as sorted lists per operation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.reference import retransmission_buffer as ref
from worker._fast._lib import ffi, lib
from worker.bufferpool import BufferPool, PoolMisuseError
from worker.retransmission_buffer import (
    DEFAULT_RTT_MS,
    RTX_BUFFER_MAX_ITEMS,
    RetransmissionBuffer,
    StoredPacket,
)

Fields = tuple[int, int, int, int, int, int | None, int] | None
AnyPacket = StoredPacket[int] | ref.StoredPacket[int] | None


def fields(packet: AnyPacket) -> Fields:
    if packet is None:
        return None
    return (packet.seq, packet.timestamp, packet.ssrc, packet.handle, packet.length,
            packet.resent_at_ms, packet.sent_times)


class Pair:
    """The C-backed buffer and the reference, fed the same calls; each with its own record of
    released handles."""

    def __init__(self, clock_rate: int = 90000, max_delay_ms: int = 2000,
                 max_items: int = RTX_BUFFER_MAX_ITEMS) -> None:
        self.c_released: list[int] = []
        self.ref_released: list[int] = []
        self.c: RetransmissionBuffer[int] = RetransmissionBuffer(
            clock_rate, max_delay_ms, self.c_released.append, max_items)
        self.ref: ref.RetransmissionBuffer[int] = ref.RetransmissionBuffer(
            clock_rate, max_delay_ms, self.ref_released.append, max_items)
        self.next_handle = 0
        self.accepted = 0

    def both(self, call: Callable[[Any], Any], full: bool = True) -> Any:
        """Run ``call`` on both; they must return the same; handles released must match; and,
        when ``full``, every stored packet too."""
        got, want = call(self.c), call(self.ref)
        if isinstance(want, list):
            assert [fields(p) for p in got] == [fields(p) for p in want]
        elif want is None or isinstance(want, ref.StoredPacket):
            assert fields(got) == fields(want)
        else:
            assert got == want
        assert sorted(self.c_released) == sorted(self.ref_released)
        self.c_released.clear()
        self.ref_released.clear()
        self.check(full)
        return got

    def insert(self, seq: int, ts: int, length: int = 1200, ssrc: int = 1111,
               full: bool = True) -> bool:
        self.next_handle += 1
        handle = self.next_handle
        took: bool = self.both(lambda buf: buf.insert(seq & 0xFFFF, ts & 0xFFFFFFFF, handle,
                                                      length, ssrc), full)
        self.accepted += took
        return took

    def contents(self, buf: Any) -> list[Fields]:
        oldest = buf.oldest()
        if oldest is None:
            return []
        first = oldest.sequence_number
        return [fields(buf.get((first + i) & 0xFFFF)) for i in range(buf.span)]

    def check(self, full: bool = True) -> None:
        c, r = self.c, self.ref
        assert (len(c), c.span, c.closed) == (len(r), r.span, r.closed)
        assert (c.evicted_by_count, c.evicted_by_age, c.discarded) == (
            r.evicted_by_count, r.evicted_by_age, r.discarded)
        assert fields(c.oldest()) == fields(r.oldest())
        assert fields(c.newest()) == fields(r.newest())
        if full:
            assert self.contents(c) == self.contents(r)
        assert c.span <= c.max_items
        assert c.release_errors == 0


# ---- deterministic cases ---------------------------------------------------------------------


def test_a_long_run_wraps_the_ring_and_the_numbers() -> None:
    """Far more packets than the ring holds, with holes, reordering and both wraparounds."""
    pair = Pair()
    seq, ts = 65000, 0xFFFF0000
    for i in range(9000):
        seq += 1 + (i % 97 == 0) * 40  # holes now and then
        ts += 30 if i < 6000 else 150  # 3,000 then 600 packets a second: both bounds hit
        pair.insert(seq, ts, full=i % 1000 == 0)
        if i % 13 == 0:
            pair.insert(seq - 3, ts - 90, full=False)  # late: a duplicate or into its hole
    pair.check()
    assert pair.c.evicted_by_count > 0 and pair.c.evicted_by_age > 0 and pair.c.discarded > 0
    pair.both(lambda buf: buf.close())


def test_restarts_move_the_numbers_below_zero() -> None:
    """A lower seq with a higher timestamp restarts the buffer and moves the unwrapping
    reference down: three restarts take the extended seq below 0 (floor modulo in the ring)."""
    pair = Pair(max_items=16)
    pair.insert(0, 0)
    for step, seq in enumerate((32769, 2, 32771)):
        assert pair.insert(seq, 10 * (step + 1))
    newest = pair.c.newest()
    assert newest is not None and newest.seq < 0
    for d in (1, 2, 5, -1, -3, 20):
        pair.insert(32771 + d, 30 + d)
    for d in range(-20, 20):
        pair.both(lambda buf, d=d: buf.get((32771 + d) & 0xFFFF))
    pair.both(lambda buf: buf.nack(32770, 0xFFFF, now=5))
    pair.both(lambda buf: buf.clear())
    assert pair.insert(40000, 40)


def test_half_the_number_space_away_is_older() -> None:
    """A seq exactly 2^15 (a timestamp exactly 2^31) from the reference unwraps backwards."""
    pair = Pair(max_items=64)
    pair.insert(100, 1000)
    assert pair.insert(100 + 0x8000, 2000)  # older seq, newer timestamp: a restart
    newest = pair.c.newest()
    assert newest is not None and newest.seq == 100 + 0x8000  # 2^15 below 100 + 2^16
    assert not pair.insert(100 + 0x8001, 2000 + (1 << 31))  # the timestamp is behind: refused
    assert pair.insert(100 + 0x8002, 2300)
    for seq in (100, 100 + 0x8000, 100 + 0x8002, 0x8002 + 0x8000 + 100):
        pair.both(lambda buf, s=seq & 0xFFFF: buf.get(s))
    pair.both(lambda buf: buf.nack(100 + 0x8000, 0xFFFF, now=1))


def test_age_against_both_timestamp_wraparounds() -> None:
    pair = Pair(clock_rate=48000, max_delay_ms=1000, max_items=200)
    ts = 0xFFFFFFFF - 48000 * 2
    for i in range(300):
        pair.insert(i, ts + 960 * i)
    pair.insert(150, ts)  # far too old
    pair.insert(299 + 2, ts + 960 * 301 + (1 << 31) - 1)  # a timestamp jump just short of half
    pair.insert(299 + 3, ts + 960 * 302 + (1 << 31) + 5)  # past half: unwraps backwards
    assert pair.c.evicted_by_age > 0


def test_the_age_bound_is_exact() -> None:
    """age_ms = ticks * 1000 // clock_rate must be above max_delay_ms: the last tick counts."""
    for clock_rate in (90000, 48000, 8000, 1000, 7, 999_983):
        for max_delay_ms in (1, 50, 2000):
            pair = Pair(clock_rate=clock_rate, max_delay_ms=max_delay_ms, max_items=8)
            limit = -(-(max_delay_ms + 1) * clock_rate // 1000)  # first age that is too old
            pair.insert(10, 1000)
            pair.insert(11, 1000 + limit - 1)  # the oldest is just young enough
            assert len(pair.c) == 2
            pair.insert(12, 1000 + limit)  # now it is too old (and so is 11 if limit is 1)
            kept = 2 if limit > 1 else 1
            assert len(pair.c) == kept and pair.c.evicted_by_age == 3 - kept
            assert not pair.insert(9, 12)  # an old packet, too old to store
            pair.both(lambda buf: buf.close())


def test_the_same_packet_gives_the_same_object() -> None:
    pair = Pair()
    pair.insert(7, 70)
    first = pair.c.resend(7, now=1000)
    assert first is not None and first is pair.c.get(7) and first is pair.c.oldest()
    assert (first.sent_times, first.resent_at_ms) == (1, 1000)
    again = pair.c.resend(7, now=2000)
    assert again is first and (first.sent_times, first.resent_at_ms) == (2, 2000)
    pair.c.clear()
    pair.ref.clear()
    pair.insert(7, 70)  # the same seq, a new packet: a new object, not resent yet
    fresh = pair.c.get(7)
    assert fresh is not None and fresh is not first and fresh.sent_times == 0
    assert fresh.resent_at_ms is None


def test_handed_out_packets_are_pruned() -> None:
    """Packets handed out are remembered for identity, but not past their eviction."""
    c: RetransmissionBuffer[int] = RetransmissionBuffer(90000, 2000, lambda h: None, 8)
    for seq in range(2000):
        c.insert(seq, seq * 10, seq, 100)
        assert c.get(seq) is not None
    assert len(c._packets) <= 2 * 8 + 16  # the cache's bound is the point


def test_resend_rtt_values() -> None:
    pair = Pair()
    pair.insert(1, 0)
    now = 0
    for rtt in (None, 0, 0.5, 0.9, 1.0, 30.0, 99.9, 250.5, -4.0):
        for dt in (0, 1, 2, 29, 30, 31, 99, 100, 101, 250, 251):
            pair.both(lambda buf, t=now + dt, r=rtt: buf.resend(1, t, r))
        now += 1000
    assert DEFAULT_RTT_MS == 100


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="positive"):
        RetransmissionBuffer(90000, 2000, print, 0)
    with pytest.raises(ValueError, match="32 bits"):
        RetransmissionBuffer(1 << 32, 2000, print)
    with pytest.raises(ValueError, match="release callback or a pool"):
        RetransmissionBuffer(90000, 2000, None)
    entries = ffi.new("struct mw_store_entry[]", 4)
    evicted = ffi.new("uint32_t[]", 4)
    store = ffi.new("struct mw_store *")
    assert lib.mw_store_init(store, entries, 3, 4, 90000, 2000, ffi.NULL, evicted) == -1
    assert lib.mw_store_init(store, entries, 4, 4, 90000, 2000, ffi.NULL, ffi.NULL) == -1
    assert lib.mw_store_init(store, entries, 4, 4, 0, 2000, ffi.NULL, evicted) == -1
    assert lib.mw_store_init(store, entries, 4, 4, 90000, 2000, ffi.NULL, evicted) == 0


def test_a_ring_larger_than_max_items() -> None:
    """C callers may give a ring larger than max_items: same behaviour."""
    entries = ffi.new("struct mw_store_entry[]", 37)
    evicted = ffi.new("uint32_t[]", 10)
    store = ffi.new("struct mw_store *")
    assert lib.mw_store_init(store, entries, 37, 10, 90000, 2000, ffi.NULL, evicted) == 0
    model: ref.RetransmissionBuffer[int] = ref.RetransmissionBuffer(
        90000, 2000, lambda h: None, 10)
    for i in range(400):
        seq, ts = (i * 7) % 23 + i, i * 100
        took = lib.mw_store_insert(store, seq & 0xFFFF, ts, i, 1, 5)
        assert bool(took) == model.insert(seq, ts, i, 1, 5)
        store.evicted_count = 0
        assert store.count == len(model)
        entry = lib.mw_store_get(store, seq & 0xFFFF)
        item = model.get(seq)
        assert (entry.slot if entry else None) == (item.handle if item else None)


# ---- random sequences against the reference ------------------------------------------------

class Stream:
    """A sender's packets: packet n has seq ``seq_base + n`` and timestamp ``ts_base + n *
    step``; ``head`` is the highest n sent. Jumps move the bases (wraparound, restarts, a
    sender far ahead or behind)."""

    def __init__(self, seq_base: int, ts_base: int, step: int) -> None:
        self.seq_base, self.ts_base, self.step = seq_base, ts_base, step
        self.head = 0
        self.last = (seq_base, ts_base)

    def packet(self, n: int, noise: int = 0) -> tuple[int, int]:
        self.last = (self.seq_base + n, self.ts_base + n * self.step + noise)
        return self.last

    def seq(self, d: int) -> int:
        return (self.seq_base + self.head + d) & 0xFFFF


RTTS = st.sampled_from([None, 0, 0.5, 30.0, 100.0, 250.5])
# Mostly the right timestamp, sometimes a few half steps off (out of order with a neighbour);
# "jump" moves the timestamps far (and the sequence numbers).
NOISE = st.one_of(*[st.just(0)] * 6, st.integers(-3, 3))
JUMP = st.one_of(st.integers(-20000, 20000), st.integers(-(1 << 33), 1 << 33))
OP_KINDS = ["send"] * 30 + ["jump", "again", "get", "get", "resend", "resend", "nack", "clear",
                            "close"]
# k: mostly the next packet or two; else a late packet (or a hole left behind).
K = st.one_of(st.integers(1, 2), st.integers(1, 2), st.integers(-40, 6))
OPS = st.lists(st.tuples(st.sampled_from(OP_KINDS), K, NOISE, JUMP, st.integers(0, 0xFFFF)),
               min_size=20, max_size=300)


@given(ops=OPS, rtt=RTTS,
       seq_base=st.one_of(st.integers(65300, 65535), st.integers(0, 65535)),
       ts_base=st.one_of(st.integers(0xFFFF0000, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF)),
       step=st.sampled_from([0, 1, 30, 30, 300, 300, 3000, 9000]),
       max_items=st.one_of(st.integers(1, 70), st.just(RTX_BUFFER_MAX_ITEMS)),
       clock=st.sampled_from([(90000, 2000)] * 3 + [(48000, 1000), (8000, 50), (1000, 3)]))
def test_random_operations_match_the_reference(
        ops: list[tuple[str, int, int, int, int]], rtt: float | None, seq_base: int, ts_base: int,
        step: int, max_items: int, clock: tuple[int, int]) -> None:
    """A stream sent with reordering (late packets fill holes), duplicates, wrong timestamps
    and jumps, with lookups, resends, NACKs, clears and a close in between."""
    pair = Pair(clock_rate=clock[0], max_delay_ms=clock[1], max_items=max_items)
    stream = Stream(seq_base, ts_base, step)
    now = 0
    for op, k, noise, jump, x in ops:
        now += x % 50
        if op == "send":  # k > 0: the next packets (k - 1 of them late); k <= 0: a late one
            stream.head += max(k, 0)
            pair.insert(*stream.packet(stream.head + min(k, 0), noise * max(step, 2) // 2))
        elif op == "jump":
            stream.seq_base += x - 0x8000 if k % 2 else k * 700
            stream.ts_base += jump
            pair.insert(*stream.packet(stream.head))
        elif op == "again":
            pair.insert(*stream.last)  # the same packet again
        elif op == "get":
            seq = stream.seq(k)
            pair.both(lambda buf, s=seq: buf.get(s))
        elif op == "resend":
            seq = stream.seq(k)
            pair.both(lambda buf, s=seq, t=now: buf.resend(s, t, rtt))
        elif op == "nack":
            seq = stream.seq(k)
            pair.both(lambda buf, s=seq, t=now, m=x: buf.nack(s, m, t, rtt))
        elif op == "clear":
            pair.both(lambda buf: buf.clear())
        elif x % 8 == 0:  # rarely: nothing is stored after a close
            pair.both(lambda buf: buf.close())
    pair.both(lambda buf: buf.close())


# ---- with a pool: evictions go straight back to it, in C -----------------------------------


class PoolFeeder:
    """Inserts packets in fresh pool slots, giving refused slots back as a caller must."""

    def __init__(self, max_items: int = 32) -> None:
        self.pool = BufferPool("store-test", 64, 512)
        self.buf: RetransmissionBuffer[int] = RetransmissionBuffer(
            90000, 2000, self.never_called, max_items, pool=self.pool)

    @staticmethod
    def never_called(handle: int) -> None:
        raise AssertionError(f"the release callback got {handle} although a pool was given")

    def offer(self, seq: int, ts: int) -> bool:
        slot = self.pool.acquire()
        assert slot is not None
        if self.buf.insert(seq, ts, slot, 100):
            return True
        self.pool.release(slot)
        return False


def test_with_a_pool_every_slot_comes_back() -> None:
    feeder = PoolFeeder()
    for i in range(500):
        feeder.offer(i * 3 % 1000, i * 3000)  # evictions by count, holes, discards
        assert feeder.pool.in_use == len(feeder.buf)
    assert feeder.buf.evicted_by_count > 0
    stored = len(feeder.buf)
    assert stored and feeder.buf.clear() == stored
    assert feeder.pool.in_use == 0
    for i in range(40):
        feeder.offer(5000 + i, i)
    feeder.offer(100, 10**6)  # a restart: the old ones go back in C
    assert feeder.pool.in_use == 1
    feeder.offer(101, 10**6 + 90000 * 5)  # the age bound
    assert feeder.pool.in_use == 1 and feeder.buf.evicted_by_age == 1
    feeder.buf.close()
    assert feeder.pool.in_use == 0 and feeder.buf.release_errors == 0
    assert not feeder.offer(102, 10**7)  # refused after close; the feeder gave it back
    assert feeder.pool.in_use == 0


@given(ops=st.lists(st.tuples(st.integers(-40, 60), st.integers(-3000, 6000),
                              st.integers(0, 30)), max_size=200),
       max_items=st.integers(1, 64))
def test_with_a_pool_matches_the_reference(ops: list[tuple[int, int, int]],
                                           max_items: int) -> None:
    """The same inserts into a pool-backed buffer and the reference: the same packets kept,
    and the pool lends exactly the stored slots."""
    feeder = PoolFeeder(max_items)
    model: ref.RetransmissionBuffer[int] = ref.RetransmissionBuffer(
        90000, 2000, lambda h: None, max_items)
    head, ts_head = 60000, 4_000_000_000
    for dseq, dts, action in ops:
        if action == 0:
            assert feeder.buf.clear() == model.clear()
        else:
            head += max(0, dseq // 8)
            ts_head += max(0, dts // 4)
            seq, ts = (head + dseq) & 0xFFFF, (ts_head + dts) & 0xFFFFFFFF
            assert feeder.offer(seq, ts) == model.insert(seq, ts, 0, 100)
        assert len(feeder.buf) == len(model) == feeder.pool.in_use
        assert feeder.buf.span == model.span
    feeder.buf.close()
    assert feeder.pool.in_use == 0 and feeder.buf.release_errors == 0


def test_a_slot_the_pool_did_not_lend_is_counted_not_released() -> None:
    pool = BufferPool("p", 64, 8)
    buf: RetransmissionBuffer[int] = RetransmissionBuffer(90000, 2000, None, 4, pool=pool)
    assert buf.insert(1, 10, 5, 100)  # slot 5 was never lent
    buf.close()
    assert buf.release_errors == 1 and pool.in_use == 0
    with pytest.raises(PoolMisuseError):
        pool.release(5)  # the pool's state was not touched


def test_c_callers_insert_with_the_pool() -> None:
    """What the C receive path does: take a slot, insert it, give it back when refused."""
    pool = BufferPool("p", 64, 64)
    buf: RetransmissionBuffer[int] = RetransmissionBuffer(90000, 2000, None, 16, pool=pool)
    c_pool, c_store = pool.c_pool, buf.c_store
    for i in range(100):
        slot = lib.mw_pool_acquire(c_pool)
        assert slot >= 0
        if not lib.mw_store_insert(c_store, (i * 5 % 37) & 0xFFFF, i * 300, slot, 10, 9):
            assert lib.mw_pool_release(c_pool, slot) == 0
        assert pool.in_use == len(buf) <= 16
    item = buf.newest()
    assert item is not None and pool.view(item.handle) is not None
    buf.close()
    assert pool.in_use == 0


# ---- the pool's C interface ----------------------------------------------------------------


def test_c_pool_acquire_many_and_release_many() -> None:
    pool = BufferPool("p", 32, 8)
    c_pool = pool.c_pool
    out = ffi.new("uint32_t[]", 8)
    assert lib.mw_pool_acquire_many(c_pool, out, 3) == 3
    assert list(out[0:3]) == [2, 1, 0]  # the top three, in stack order: Python's free[-3:]
    assert lib.mw_pool_acquire_many(c_pool, out, 0) == 0 and pool.exhausted == 0
    assert lib.mw_pool_acquire_many(c_pool, out, 9) == 5 and pool.exhausted == 1
    assert (pool.in_use, pool.high_water) == (8, 8)
    assert lib.mw_pool_acquire(c_pool) == -1 and pool.exhausted == 2
    slots = ffi.new("uint32_t[]", [4, 6, 4])
    assert lib.mw_pool_release_many(c_pool, slots, 3) == -1  # repeated: nothing changed
    assert pool.in_use == 8 and all(pool.view(s) is not None for s in range(8))
    slots = ffi.new("uint32_t[]", [4, 6, 8])
    assert lib.mw_pool_release_many(c_pool, slots, 3) == -1  # out of range: nothing changed
    assert pool.in_use == 8
    assert lib.mw_pool_release_many(c_pool, slots, 2) == 0
    assert pool.in_use == 6
    assert lib.mw_pool_release(c_pool, 4) == -1  # not lent any more
    assert lib.mw_pool_release(c_pool, 8) == -1
    assert lib.mw_pool_acquire(c_pool) == 6  # the last one given back is on top
    assert lib.mw_pool_in_use(c_pool) == pool.in_use == 7
    pool.release_batch([s for s in range(8) if s != 4])
    assert pool.in_use == 0


def test_c_pool_init_refuses_bad_arguments() -> None:
    c_pool = ffi.new("struct mw_pool *")
    free, lent = ffi.new("uint32_t[]", 4), ffi.new("uint8_t[]", 4)
    assert lib.mw_pool_init(c_pool, ffi.NULL, 16, 0, free, lent) == -1
    assert lib.mw_pool_init(c_pool, ffi.NULL, 0, 4, free, lent) == -1
    assert lib.mw_pool_init(c_pool, ffi.NULL, 16, 4, ffi.NULL, lent) == -1
    assert lib.mw_pool_init(c_pool, ffi.NULL, 16, 4, free, lent) == 0
    assert list(free) == [3, 2, 1, 0] and c_pool.free_count == 4


def test_c_pool_slab_is_the_mmap() -> None:
    pool = BufferPool("p", 16, 4)
    slot = pool.acquire()
    assert slot == 0
    pool.view(slot)[:3] = b"abc"
    c_pool = pool.c_pool
    assert ffi.buffer(c_pool.slab + slot * c_pool.slot_size, 3)[:] == b"abc"
    assert c_pool.slot_size == 16 and c_pool.capacity == 4
    pool.release(slot)
