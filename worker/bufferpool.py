"""Fixed-size buffer pools: one preallocated slab per pool, lent out slot by slot.

A slot is named by its index; ``view(slot)`` is the slot's memory. Acquiring from an empty pool
returns ``None`` and counts ``exhausted`` (the caller drops the packet or refuses the connection);
memory never grows. Releasing a slot that is not lent (twice, or one the pool never had) is a bug
in the caller and raises :class:`PoolMisuseError` at once.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from typing import Any, Final

__all__ = ["DEFAULT_POOLS", "BufferPool", "PoolMisuseError", "PoolSet", "default_pools"]

# The worker's pools: (name, slot bytes, slots). The slabs are anonymous mappings, so a slot's
# pages cost resident memory only once the slot has been used.
DEFAULT_POOLS: Final = (
    ("udpRecv", 2048, 4096),  # datagrams received in batches, before routing
    ("rtpPacket", 2048, 32768),  # packets in flight and in retransmission buffers
    ("tcpRecv", 65536, 1024),  # one receive buffer per ICE-TCP connection (RFC 4571 frames)
)


class PoolMisuseError(RuntimeError):
    """A slot was released twice, or released to a pool that did not lend it."""


class BufferPool:
    """``capacity`` slots of ``slot_size`` bytes, preallocated in one slab."""

    __slots__ = ("_free", "_lent", "_slab", "_view", "capacity", "exhausted", "high_water",
                 "name", "slot_size")

    def __init__(self, name: str, slot_size: int, capacity: int) -> None:
        if slot_size <= 0 or capacity <= 0:
            raise ValueError(f"pool {name!r}: slot size and capacity must be positive")
        self.name = name
        self.slot_size = slot_size
        self.capacity = capacity
        # One anonymous mapping: the kernel backs its pages only when a slot is first written.
        self._slab = mmap.mmap(-1, slot_size * capacity)
        self._view = memoryview(self._slab)
        # Lowest slots first, so that a lightly used pool touches few pages.
        self._free = list(range(capacity - 1, -1, -1))
        self._lent = bytearray(capacity)
        self.high_water = 0
        self.exhausted = 0

    @property
    def in_use(self) -> int:
        return self.capacity - len(self._free)

    @property
    def slab(self) -> mmap.mmap:
        """The whole slab, for C code that addresses slots by ``index * slot_size``."""
        return self._slab

    def acquire(self) -> int | None:
        """Lend a slot, or return None (and count it) when every slot is lent."""
        if not self._free:
            self.exhausted += 1
            return None
        slot = self._free.pop()
        self._lent[slot] = 1
        in_use = self.capacity - len(self._free)
        self.high_water = max(self.high_water, in_use)
        return slot

    def acquire_batch(self, count: int) -> list[int]:
        """Lend up to ``count`` slots at once (fewer when the pool runs short, and then the
        shortfall is counted as one ``exhausted``)."""
        if count <= 0:
            return []
        free = self._free
        take = min(count, len(free))
        if take < count:
            self.exhausted += 1
        if not take:
            return []
        slots = free[-take:]
        del free[-take:]
        lent = self._lent
        for slot in slots:
            lent[slot] = 1
        in_use = self.capacity - len(free)
        self.high_water = max(self.high_water, in_use)
        return slots

    def release_batch(self, slots: list[int]) -> None:
        """Give back slots lent by :meth:`acquire_batch` (or :meth:`acquire`)."""
        lent = self._lent
        for slot in slots:  # check all first: a misuse changes nothing
            if not (isinstance(slot, int) and 0 <= slot < self.capacity) or not lent[slot]:
                raise PoolMisuseError(f"pool {self.name!r}: slot {slot!r} released but not lent")
        if len(set(slots)) != len(slots):
            raise PoolMisuseError(f"pool {self.name!r}: a slot is released twice in one batch")
        for slot in slots:
            lent[slot] = 0
        self._free.extend(slots)

    def release(self, slot: int) -> None:
        """Give a lent slot back."""
        if not (isinstance(slot, int) and 0 <= slot < self.capacity):
            raise PoolMisuseError(f"pool {self.name!r}: slot {slot!r} does not belong to it")
        if not self._lent[slot]:
            raise PoolMisuseError(f"pool {self.name!r}: slot {slot} released but not lent")
        self._lent[slot] = 0
        self._free.append(slot)

    def view(self, slot: int) -> memoryview:
        """The memory of a lent slot."""
        if not (isinstance(slot, int) and 0 <= slot < self.capacity) or not self._lent[slot]:
            raise PoolMisuseError(f"pool {self.name!r}: slot {slot} used but not lent")
        start = slot * self.slot_size
        return self._view[start : start + self.slot_size]

    def stats(self) -> dict[str, int]:
        return {
            "slotSize": self.slot_size,
            "capacity": self.capacity,
            "inUse": self.in_use,
            "highWater": self.high_water,
            "exhausted": self.exhausted,
        }


class PoolSet:
    """The worker's pools by name."""

    def __init__(self, pools: list[BufferPool]) -> None:
        self._pools = {pool.name: pool for pool in pools}

    def __getitem__(self, name: str) -> BufferPool:
        return self._pools[name]

    def __iter__(self) -> Iterator[BufferPool]:
        return iter(self._pools.values())

    def dump(self) -> dict[str, Any]:
        return {name: pool.stats() for name, pool in self._pools.items()}

    def total_in_use(self) -> int:
        return sum(pool.in_use for pool in self._pools.values())


def default_pools() -> PoolSet:
    return PoolSet([BufferPool(name, size, count) for name, size, count in DEFAULT_POOLS])
