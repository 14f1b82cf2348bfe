"""RetransmissionBuffer: count and age bounds, ordering rules, the RTT rule, wraparound, and
every stored handle released exactly once (the pool is never leaked)."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.bufferpool import BufferPool
from worker.retransmission_buffer import (
    RTX_BUFFER_MAX_ITEMS,
    RetransmissionBuffer,
    max_age_ms_for_kind,
)


class Ledger:
    """Pool slots lent to a buffer. A handle is a unique token naming one loan of a slot (slot
    numbers are reused); releasing a token twice, or one never lent, fails the test."""

    def __init__(self) -> None:
        self.pool = BufferPool("rtx-test", 64, 4096)
        self.slots: dict[int, int] = {}  # live token -> slot
        self.released: Counter[int] = Counter()
        self._next = 0

    def acquire(self) -> int:
        slot = self.pool.acquire()
        assert slot is not None
        self._next += 1
        self.slots[self._next] = slot
        return self._next

    def release(self, token: int) -> None:
        self.released[token] += 1
        assert self.released[token] == 1, f"handle {token} released twice"
        self.pool.release(self.slots.pop(token))

    def give_back(self, token: int) -> None:
        """The caller returns a handle the buffer refused."""
        self.pool.release(self.slots.pop(token))

    def offer(self, buf: RetransmissionBuffer[int], seq: int, ts: int) -> bool:
        """Insert a packet in a fresh slot; a refused slot goes back to the pool here."""
        token = self.acquire()
        if buf.insert(seq, ts, token, 1200, ssrc=1111):
            return True
        self.give_back(token)
        return False


def video(ledger: Ledger, max_items: int = RTX_BUFFER_MAX_ITEMS) -> RetransmissionBuffer[int]:
    return RetransmissionBuffer(90000, max_age_ms_for_kind("video"), ledger.release, max_items)


def test_insert_and_get() -> None:
    ledger = Ledger()
    buf = video(ledger)
    for i in range(10):
        assert ledger.offer(buf, 1000 + i, 5000 + 3000 * i)
    item = buf.get(1005)
    assert item is not None
    assert (item.sequence_number, item.rtp_timestamp, item.ssrc, item.length) == (
        1005, 20000, 1111, 1200)
    assert buf.get(999) is None
    assert buf.get(1010) is None
    assert len(buf) == 10
    assert buf.span == 10
    buf.close()
    assert ledger.pool.in_use == 0


def test_count_limit_evicts_the_oldest() -> None:
    ledger = Ledger()
    buf = video(ledger)
    for i in range(3000):
        assert ledger.offer(buf, i, 30 * i)  # 3000 packets in 1 s: the age bound is not hit
    assert len(buf) == RTX_BUFFER_MAX_ITEMS
    oldest = buf.oldest()
    assert oldest is not None
    assert oldest.sequence_number == 500
    assert buf.evicted_by_count == 500
    assert sum(ledger.released.values()) == 500
    assert buf.get(499) is None
    assert buf.get(500) is not None
    buf.close()
    assert ledger.pool.in_use == 0
    assert all(count == 1 for count in ledger.released.values())


def test_holes_count_toward_the_limit() -> None:
    ledger = Ledger()
    buf = video(ledger, max_items=100)
    for seq in (0, 1, 2, 50):
        ledger.offer(buf, seq, seq)
    assert buf.span == 51
    assert ledger.offer(buf, 120, 120)  # span would be 121: the oldest go until it fits
    assert [buf.get(s) is not None for s in (0, 1, 2, 50, 120)] == [False] * 3 + [True] * 2
    assert buf.span == 71
    assert ledger.offer(buf, 1000, 1000)  # far ahead: everything goes
    assert len(buf) == 1
    buf.clear()
    assert ledger.pool.in_use == 0


@pytest.mark.parametrize(("kind", "clock", "step", "kept"), [
    ("video", 90000, 3000, 61),  # 33.3 ms frames: 2,000 ms is 60 steps back
    ("audio", 48000, 960, 51),  # 20 ms frames: 1,000 ms is 50 steps back
])
def test_age_limit(kind: str, clock: int, step: int, kept: int) -> None:
    ledger = Ledger()
    buf: RetransmissionBuffer[int] = RetransmissionBuffer(
        clock, max_age_ms_for_kind(kind), ledger.release)
    for i in range(200):
        assert ledger.offer(buf, 7000 + i, i * step)
    assert len(buf) == kept
    oldest = buf.oldest()
    assert oldest is not None
    assert oldest.sequence_number == 7000 + 200 - kept
    assert buf.evicted_by_age == 200 - kept
    # An old packet arriving now is too old to store.
    assert not ledger.offer(buf, 7000 + 200 - kept - 1, (200 - kept - 2) * step)
    buf.close()
    assert ledger.pool.in_use == 0


def test_a_packet_far_ahead_in_time_empties_the_buffer() -> None:
    ledger = Ledger()
    buf = video(ledger)
    for i in range(5):
        ledger.offer(buf, i, i * 3000)
    assert ledger.offer(buf, 5, 4 * 3000 + 90000 * 3)  # 3 s later: all the others are too old
    assert len(buf) == 1
    assert buf.evicted_by_age == 5
    buf.close()
    assert ledger.pool.in_use == 0


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        RetransmissionBuffer(0, 2000, print)


def test_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown media kind"):
        max_age_ms_for_kind("data")


def test_wraparound_of_seq_and_timestamp() -> None:
    ledger = Ledger()
    buf = video(ledger)
    seqs = [(65500 + i) & 0xFFFF for i in range(100)]
    for i, seq in enumerate(seqs):
        assert ledger.offer(buf, seq, (0xFFFFF000 + 300 * i) & 0xFFFFFFFF)
    assert len(buf) == 100
    oldest, newest = buf.oldest(), buf.newest()
    assert oldest is not None and newest is not None
    assert (oldest.sequence_number, newest.sequence_number) == (65500, 63)
    for seq in (65535, 0, 1, 63):
        item = buf.get(seq)
        assert item is not None
        assert item.sequence_number == seq
    assert newest.rtp_timestamp == (0xFFFFF000 + 300 * 99) & 0xFFFFFFFF
    buf.close()
    assert ledger.pool.in_use == 0


def test_out_of_order_duplicates_and_timestamp_order() -> None:
    ledger = Ledger()
    buf = video(ledger)
    assert ledger.offer(buf, 10, 1000)
    assert ledger.offer(buf, 13, 1300)
    assert ledger.offer(buf, 15, 1500)
    assert ledger.offer(buf, 11, 1100)  # into its hole
    assert ledger.offer(buf, 8, 800)  # to the front
    assert not ledger.offer(buf, 11, 1100)  # duplicate: refused, the caller keeps the slot
    assert not ledger.offer(buf, 12, 1350)  # timestamp above its newer neighbour's
    assert not ledger.offer(buf, 9, 1050)  # timestamp above its newer neighbour's
    assert not ledger.offer(buf, 14, 1250)  # timestamp below its older neighbour's
    assert not ledger.offer(buf, 16, 1400)  # newer seq, older timestamp than the newest
    assert not ledger.offer(buf, 7, 900)  # older seq, newer timestamp than the oldest
    assert ledger.offer(buf, 12, 1200)
    assert buf.discarded == 6
    assert [s for s in range(7, 17) if buf.get(s)] == [8, 10, 11, 12, 13, 15]
    buf.close()
    assert ledger.pool.in_use == 0


def test_a_restarted_sender_empties_the_buffer() -> None:
    ledger = Ledger()
    buf = video(ledger)
    for i in range(5):
        ledger.offer(buf, 100 + i, 1000 + i)
    assert ledger.offer(buf, 50, 90000)  # lower seq, higher timestamp than the newest
    assert len(buf) == 1
    assert sum(ledger.released.values()) == 5
    buf.close()
    assert ledger.pool.in_use == 0


def test_front_insert_is_refused_past_the_count_limit() -> None:
    ledger = Ledger()
    buf = video(ledger, max_items=10)
    for seq in range(100, 105):
        ledger.offer(buf, seq, seq)
    assert not ledger.offer(buf, 94, 94)  # span would be 11
    assert ledger.offer(buf, 95, 95)
    buf.close()


def test_rtt_rule_for_resends() -> None:
    ledger = Ledger()
    buf = video(ledger)
    ledger.offer(buf, 500, 0)
    first = buf.resend(500, now=1000)
    assert first is not None
    assert (first.sent_times, first.resent_at_ms) == (1, 1000)
    assert buf.resend(500, now=1050) is None  # within 100 ms (RTT unknown)
    assert buf.resend(500, now=1100) is None  # exactly 100 ms: still within
    again = buf.resend(500, now=1101)
    assert again is first
    assert again.sent_times == 2
    assert buf.resend(500, now=1120, rtt_ms=30.0) is None
    assert buf.resend(500, now=1132, rtt_ms=30.0) is not None
    assert buf.resend(500, now=1140, rtt_ms=0) is None  # 0 means unknown: 100 ms again
    assert buf.resend(501, now=2000) is None  # never stored
    buf.close()


def test_nack_item_expansion() -> None:
    ledger = Ledger()
    buf = video(ledger)
    for i in range(30):
        ledger.offer(buf, (65530 + i) & 0xFFFF, 3000 * i)
    items = buf.nack(65534, 0b1000_0000_0000_0101, now=0)
    assert [item.sequence_number for item in items] == [65534, 65535, 1, 14]
    assert buf.nack(65534, 0b101, now=50) == []  # all resent within the RTT
    buf.close()


def test_clear_and_close_release_everything_once() -> None:
    ledger = Ledger()
    buf = video(ledger)
    for i in range(50):
        ledger.offer(buf, i, i * 100)
    assert buf.clear() == 50
    assert ledger.pool.in_use == 0
    for i in range(50, 60):
        ledger.offer(buf, i, i * 100)
    buf.close()
    buf.close()  # idempotent
    assert buf.closed
    assert ledger.pool.in_use == 0
    assert not ledger.offer(buf, 61, 6100)  # refused after close: the caller kept the slot
    assert ledger.pool.in_use == 0
    assert sum(ledger.released.values()) == 60
    assert all(count == 1 for count in ledger.released.values())


@given(ops=st.lists(st.tuples(st.integers(-40, 60), st.integers(-3000, 6000),
                              st.integers(0, 30)), max_size=250),
       start=st.integers(0, 65535), max_items=st.integers(1, 64))
def test_every_handle_is_released_exactly_once(ops: list[tuple[int, int, int]], start: int,
                                               max_items: int) -> None:
    """Random inserts around a moving front (reordering, duplicates, gaps, wraparound, bad
    timestamps), resends and clears: the buffer holds what was accepted and not yet released,
    its span never exceeds the bound, and after close every accepted handle came back once."""
    ledger = Ledger()
    buf: RetransmissionBuffer[int] = RetransmissionBuffer(
        90000, 2000, ledger.release, max_items=max_items)
    accepted: set[int] = set()
    head = start + 65536
    ts_head = 10_000_000
    now = 0
    for dseq, dts, action in ops:
        now += 7
        if action == 0:
            buf.clear()
            continue
        if action == 1:
            buf.resend((head + dseq) & 0xFFFF, now)
            continue
        head += max(0, dseq // 8)
        ts_head += max(0, dts // 4)
        seq, ts = (head + dseq) & 0xFFFF, (ts_head + dts) & 0xFFFFFFFF
        token = ledger.acquire()
        if buf.insert(seq, ts, token, 100):
            accepted.add(token)
        else:
            ledger.give_back(token)
        assert buf.span <= max_items
        oldest = buf.oldest()
        first = 0 if oldest is None else oldest.sequence_number
        held = {item.handle for i in range(buf.span)
                if (item := buf.get((first + i) & 0xFFFF)) is not None}
        assert held == accepted - set(ledger.released)
        assert len(buf) == len(accepted) - len(ledger.released)
    buf.close()
    assert set(ledger.released) == accepted
    assert all(count == 1 for count in ledger.released.values())
    assert ledger.pool.in_use == 0
