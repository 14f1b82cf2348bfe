"""Fixed-size buffer pools (``worker/bufferpool.py``): lending, counters, misuse, memory cost."""

from __future__ import annotations

import gc
import mmap
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.bufferpool import DEFAULT_POOLS, BufferPool, PoolMisuseError, PoolSet, default_pools

MIB = 1024 * 1024


def stats(pool: BufferPool) -> tuple[int, int, int]:
    return pool.in_use, pool.high_water, pool.exhausted


# ---- construction --------------------------------------------------------------------------


@pytest.mark.parametrize(("slot_size", "capacity"), [(0, 4), (-1, 4), (64, 0), (64, -3)])
def test_sizes_must_be_positive(slot_size: int, capacity: int) -> None:
    with pytest.raises(ValueError, match="'bad'"):
        BufferPool("bad", slot_size, capacity)


def test_fresh_pool() -> None:
    pool = BufferPool("p", 128, 8)
    assert (pool.name, pool.slot_size, pool.capacity) == ("p", 128, 8)
    assert stats(pool) == (0, 0, 0)
    assert isinstance(pool.slab, mmap.mmap) and len(pool.slab) == 128 * 8
    assert pool.stats() == {"slotSize": 128, "capacity": 8, "inUse": 0, "highWater": 0,
                            "exhausted": 0}


# ---- acquire and release -------------------------------------------------------------------


def test_acquire_lends_distinct_slots_lowest_first() -> None:
    pool = BufferPool("p", 64, 4)
    slots = [pool.acquire() for _ in range(4)]
    assert slots == [0, 1, 2, 3]
    assert stats(pool) == (4, 4, 0)


def test_exhaustion_returns_none_and_counts() -> None:
    pool = BufferPool("p", 64, 2)
    assert pool.acquire() is not None and pool.acquire() is not None
    assert pool.acquire() is None
    assert pool.acquire() is None
    assert stats(pool) == (2, 2, 2)
    assert len(pool.slab) == 64 * 2  # memory never grows


def test_release_makes_a_slot_available_again() -> None:
    pool = BufferPool("p", 64, 2)
    a, b = pool.acquire(), pool.acquire()
    assert a is not None and b is not None
    pool.release(a)
    assert stats(pool) == (1, 2, 0)
    assert pool.acquire() == a
    assert pool.acquire() is None
    pool.release(a)
    pool.release(b)
    assert stats(pool) == (0, 2, 1)


def test_high_water_keeps_the_peak() -> None:
    pool = BufferPool("p", 64, 10)
    held = [pool.acquire() for _ in range(7)]
    for slot in held:
        assert slot is not None
        pool.release(slot)
    pool.acquire()
    assert stats(pool) == (1, 7, 0)


def test_acquire_batch() -> None:
    pool = BufferPool("p", 64, 5)
    first = pool.acquire_batch(3)
    assert len(first) == 3 and len(set(first)) == 3
    assert stats(pool) == (3, 3, 0)
    # Short: the two left, and one exhaustion counted for the shortfall.
    second = pool.acquire_batch(4)
    assert len(second) == 2 and not set(first) & set(second)
    assert set(first) | set(second) == set(range(5))
    assert stats(pool) == (5, 5, 1)
    # Empty: nothing, counted again.
    assert pool.acquire_batch(2) == []
    assert stats(pool) == (5, 5, 2)
    # Asking for nothing is not an exhaustion.
    assert pool.acquire_batch(0) == []
    assert pool.exhausted == 2


def test_release_batch() -> None:
    pool = BufferPool("p", 64, 6)
    slots = pool.acquire_batch(6)
    pool.release_batch(slots[:4])
    assert pool.in_use == 2
    assert sorted(pool.acquire_batch(4)) == sorted(slots[:4])
    pool.release_batch(slots)
    assert pool.in_use == 0
    pool.release_batch([])
    assert pool.in_use == 0


def test_batch_and_single_calls_mix() -> None:
    pool = BufferPool("p", 64, 4)
    batch = pool.acquire_batch(2)
    single = pool.acquire()
    assert single is not None and single not in batch
    pool.release(batch[0])
    pool.release_batch([batch[1], single])
    assert pool.in_use == 0


# ---- misuse --------------------------------------------------------------------------------


def test_double_release_raises() -> None:
    pool = BufferPool("udpRecvTest", 64, 4)
    slot = pool.acquire()
    assert slot is not None
    pool.release(slot)
    with pytest.raises(PoolMisuseError, match="udpRecvTest") as caught:
        pool.release(slot)
    assert isinstance(caught.value, RuntimeError)
    assert pool.in_use == 0
    assert pool.acquire_batch(4) and pool.in_use == 4  # the free list was not corrupted


def test_release_of_a_slot_never_lent_raises() -> None:
    pool = BufferPool("p", 64, 4)
    pool.acquire()
    with pytest.raises(PoolMisuseError):
        pool.release(3)
    assert pool.in_use == 1


@pytest.mark.parametrize("foreign", [-1, 4, 10**9, "0", None, 1.0])
def test_release_of_a_foreign_slot_raises(foreign: object) -> None:
    pool = BufferPool("p", 64, 4)
    pool.acquire_batch(4)
    with pytest.raises(PoolMisuseError, match=r"does not belong|not lent"):
        pool.release(foreign)  # type: ignore[arg-type]
    with pytest.raises(PoolMisuseError):
        pool.release_batch([foreign])  # type: ignore[list-item]
    assert pool.in_use == 4


def test_release_batch_double_raises() -> None:
    pool = BufferPool("p", 64, 4)
    slots = pool.acquire_batch(2)
    pool.release_batch(slots)
    with pytest.raises(PoolMisuseError):
        pool.release_batch(slots)
    with pytest.raises(PoolMisuseError):
        pool.release_batch([slots[0]])
    assert pool.in_use == 0


def test_release_to_another_pool_raises() -> None:
    lender = BufferPool("lender", 64, 4)
    other = BufferPool("other", 64, 4)
    slot = lender.acquire()
    assert slot is not None
    with pytest.raises(PoolMisuseError, match="other"):
        other.release(slot)
    lender.release(slot)


def test_view_of_a_slot_not_lent_raises() -> None:
    pool = BufferPool("p", 64, 4)
    with pytest.raises(PoolMisuseError):
        pool.view(0)
    slot = pool.acquire()
    assert slot is not None
    pool.view(slot)
    pool.release(slot)
    with pytest.raises(PoolMisuseError):
        pool.view(slot)


# ---- views ---------------------------------------------------------------------------------


def test_views_are_the_slots_and_writable() -> None:
    size, capacity = 256, 6
    pool = BufferPool("p", size, capacity)
    slots = pool.acquire_batch(capacity)
    for slot in slots:
        view = pool.view(slot)
        assert isinstance(view, memoryview)
        assert len(view) == size and not view.readonly
        view[:] = bytes([slot + 1]) * size
    slab = pool.slab
    for slot in slots:
        assert slab[slot * size:(slot + 1) * size] == bytes([slot + 1]) * size
        assert bytes(pool.view(slot)) == bytes([slot + 1]) * size
    # A write at a slot's edges stays inside it.
    view = pool.view(2)
    view[0] = 0xAA
    view[size - 1] = 0xBB
    assert slab[2 * size - 1] == 2 and slab[3 * size] == 4  # slots 1 and 3 untouched
    assert slab[2 * size] == 0xAA and slab[3 * size - 1] == 0xBB
    pool.release_batch(slots)


def test_a_slot_keeps_its_contents_until_reused() -> None:
    """Pools do not clear slots: the caller writes before it reads (the bytes are the slab's)."""
    pool = BufferPool("p", 32, 1)
    slot = pool.acquire()
    assert slot is not None
    pool.view(slot)[:4] = b"abcd"
    pool.release(slot)
    again = pool.acquire()
    assert again == slot
    assert bytes(pool.view(again)[:4]) == b"abcd"


# ---- PoolSet -------------------------------------------------------------------------------


def test_pool_set_dump() -> None:
    a, b = BufferPool("a", 64, 4), BufferPool("b", 2048, 2)
    pools = PoolSet([a, b])
    assert pools["a"] is a and pools["b"] is b
    assert list(pools) == [a, b]
    a.acquire()
    b.acquire_batch(3)
    assert pools.dump() == {
        "a": {"slotSize": 64, "capacity": 4, "inUse": 1, "highWater": 1, "exhausted": 0},
        "b": {"slotSize": 2048, "capacity": 2, "inUse": 2, "highWater": 2, "exhausted": 1},
    }
    assert pools.total_in_use() == 3
    with pytest.raises(KeyError):
        pools["c"]


def test_default_pools() -> None:
    pools = default_pools()
    dump = pools.dump()
    assert list(dump) == ["udpRecv", "rtpPacket", "tcpRecv"]
    for name, size, count in DEFAULT_POOLS:
        assert dump[name] == {"slotSize": size, "capacity": count, "inUse": 0, "highWater": 0,
                              "exhausted": 0}
    assert dump["tcpRecv"]["slotSize"] == 64 * 1024  # one 64 KiB receive buffer per connection
    assert pools.total_in_use() == 0


# ---- memory --------------------------------------------------------------------------------


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_a_fresh_pool_costs_little_resident_memory() -> None:
    gc.collect()
    before = resident_bytes()
    pool = BufferPool("big", 65536, 1024)  # a 64 MiB slab
    slots = pool.acquire_batch(1024)  # lending touches no slot memory
    after_create = resident_bytes()
    assert after_create - before < 8 * MIB, (
        f"a fresh 64 MiB pool made RSS grow by {(after_create - before) / MIB:.1f} MiB")
    # Writing the slots is what costs memory: the measurement does see it.
    for slot in slots:
        pool.view(slot)[::4096] = b"\x01" * 16
    after_write = resident_bytes()
    assert after_write - before > 48 * MIB
    pool.release_batch(slots)


# ---- random sequences ----------------------------------------------------------------------


@given(st.lists(st.tuples(st.sampled_from(["acquire", "batch", "release", "release_batch"]),
                          st.integers(0, 9)), max_size=80))
def test_random_sequences_match_a_model(ops: list[tuple[str, int]]) -> None:
    capacity = 8
    pool = BufferPool("p", 16, capacity)
    lent: list[int] = []
    exhausted = high = 0
    for op, n in ops:
        if op == "acquire":
            slot = pool.acquire()
            if len(lent) == capacity:
                assert slot is None
                exhausted += 1
            else:
                assert slot is not None and slot not in lent and 0 <= slot < capacity
                lent.append(slot)
        elif op == "batch":
            got = pool.acquire_batch(n)
            free = capacity - len(lent)
            assert len(got) == min(n, free)
            assert not set(got) & set(lent) and len(set(got)) == len(got)
            if n > free:
                exhausted += 1
            lent.extend(got)
        elif op == "release":
            if n < len(lent):
                pool.release(lent.pop(n))
            else:
                with pytest.raises(PoolMisuseError):
                    pool.release(next(s for s in range(capacity + 1) if s not in lent))
        elif lent:
            count = n % (len(lent) + 1)
            pool.release_batch(lent[:count])
            del lent[:count]
        high = max(high, len(lent))
        assert stats(pool) == (len(lent), high, exhausted)
        for slot in lent:
            assert len(pool.view(slot)) == 16
