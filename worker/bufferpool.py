"""Fixed-size buffer pools: one preallocated slab per pool, lent out slot by slot.

A slot is named by its index; ``view(slot)`` is the slot's memory. Acquiring from an empty pool
returns ``None`` and counts ``exhausted`` (the caller drops the packet or refuses the connection);
memory never grows. Releasing a slot that is not lent (twice, or one the pool never had) is a bug
in the caller and raises :class:`PoolMisuseError` at once.

The bookkeeping (free stack, lent flags, counters) is a C ``struct mw_pool``
(``cffi_build/pool.h``), so that C code, the receive path and the retransmission store, takes
and gives back slots with no Python involved (:attr:`BufferPool.c_pool`). This module owns that
struct and its arrays: it allocates them, keeps them alive as long as the pool, and is the only
Python code that calls the ``mw_pool_*`` functions. Slots come in the order the pool always gave
them: lowest first on a fresh pool, the last one given back first after that.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from typing import Any, Final

from worker._fast._lib import buffer_pointer, ffi, lib

__all__ = ["DEFAULT_POOLS", "BufferPool", "PoolMisuseError", "PoolSet", "default_pools"]

# The worker's pools: (name, slot bytes, slots). The slabs are anonymous mappings, so a slot's
# pages cost resident memory only once the slot has been used.
DEFAULT_POOLS: Final = (
    ("udpRecv", 2048, 4096),  # datagrams received in batches, before routing
    ("rtpPacket", 2048, 32768),  # packets in flight and in retransmission buffers
    ("tcpRecv", 65536, 1024),  # one receive buffer per ICE-TCP connection (RFC 4571 frames)
)

_MAX_SLOTS: Final = 0xFFFFFFFF  # slot indices are uint32 in C

# Bound once: acquire() and release() run per packet on some Python paths.
_acquire = lib.mw_pool_acquire
_acquire_many = lib.mw_pool_acquire_many
_release = lib.mw_pool_release
_release_many = lib.mw_pool_release_many


class PoolMisuseError(RuntimeError):
    """A slot was released twice, or released to a pool that did not lend it."""


class BufferPool:
    """``capacity`` slots of ``slot_size`` bytes, preallocated in one slab."""

    __slots__ = ("_c", "_free", "_lent", "_scratch", "_slab", "_slab_owner", "_view",
                 "capacity", "name", "slot_size")

    def __init__(self, name: str, slot_size: int, capacity: int) -> None:
        if slot_size <= 0 or capacity <= 0:
            raise ValueError(f"pool {name!r}: slot size and capacity must be positive")
        if capacity > _MAX_SLOTS:
            raise ValueError(f"pool {name!r}: at most {_MAX_SLOTS} slots")
        self.name = name
        self.slot_size = slot_size
        self.capacity = capacity
        # One anonymous mapping: the kernel backs its pages only when a slot is first written.
        self._slab = mmap.mmap(-1, slot_size * capacity)
        self._view = memoryview(self._slab)
        # The C struct and its arrays live as long as this object (the C keeps raw pointers).
        self._free: Any = ffi.new("uint32_t[]", capacity)
        self._lent: Any = ffi.new("uint8_t[]", capacity)
        self._scratch: Any = ffi.new("uint32_t[]", capacity)  # batch arguments and results
        slab, self._slab_owner = buffer_pointer(self._view, writable=True)
        self._c: Any = ffi.new("struct mw_pool *")
        if lib.mw_pool_init(self._c, slab, slot_size, capacity, self._free, self._lent):
            raise ValueError(f"pool {name!r}: the C pool refused its arguments")

    @property
    def c_pool(self) -> Any:
        """The ``struct mw_pool *`` for C callers; valid as long as this object lives."""
        return self._c

    @property
    def in_use(self) -> int:
        return self.capacity - int(self._c.free_count)

    @property
    def high_water(self) -> int:
        """Most slots lent at once."""
        return int(self._c.high_water)

    @property
    def exhausted(self) -> int:
        """Acquires that found the pool empty (a short :meth:`acquire_batch` counts one)."""
        return int(self._c.exhausted)

    @property
    def slab(self) -> mmap.mmap:
        """The whole slab, for C code that addresses slots by ``index * slot_size``."""
        return self._slab

    def acquire(self) -> int | None:
        """Lend a slot, or return None (and count it) when every slot is lent."""
        slot: int = _acquire(self._c)
        return slot if slot >= 0 else None

    def acquire_batch(self, count: int) -> list[int]:
        """Lend up to ``count`` slots at once (fewer when the pool runs short, and then the
        shortfall is counted as one ``exhausted``)."""
        if count <= 0:
            return []
        # Asking for more than uint32 allows still runs short, so clamping counts the same.
        got = _acquire_many(self._c, self._scratch, min(count, _MAX_SLOTS))
        slots: list[int] = ffi.unpack(self._scratch, got)
        return slots

    def release_batch(self, slots: list[int]) -> None:
        """Give back slots lent by :meth:`acquire_batch` (or :meth:`acquire`). A misuse (a slot
        not lent, foreign, or twice in the batch) raises and changes nothing."""
        count = len(slots)
        if not count:
            return
        if count <= self.capacity:
            try:
                self._scratch[0:count] = slots
            except (TypeError, OverflowError):  # not a uint32: certainly not one of ours
                pass
            else:
                if not _release_many(self._c, self._scratch, count):
                    return
        raise self._batch_misuse(slots)

    def release(self, slot: int) -> None:
        """Give a lent slot back."""
        try:
            if not _release(self._c, slot):
                return
        except (TypeError, OverflowError):  # not a uint32: certainly not one of ours
            pass
        raise self._misuse(slot)

    def view(self, slot: int) -> memoryview:
        """The memory of a lent slot."""
        if not self._is_lent(slot):
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

    # The error paths: the C said no, these say why (the messages tests and logs rely on).

    def _owns(self, slot: object) -> bool:
        return isinstance(slot, int) and 0 <= slot < self.capacity

    def _is_lent(self, slot: object) -> bool:
        return self._owns(slot) and bool(self._lent[slot])

    def _misuse(self, slot: object) -> PoolMisuseError:
        if not self._owns(slot):
            return PoolMisuseError(f"pool {self.name!r}: slot {slot!r} does not belong to it")
        return PoolMisuseError(f"pool {self.name!r}: slot {slot} released but not lent")

    def _batch_misuse(self, slots: list[int]) -> PoolMisuseError:
        for slot in slots:
            if not self._is_lent(slot):
                return PoolMisuseError(f"pool {self.name!r}: slot {slot!r} released but not lent")
        return PoolMisuseError(f"pool {self.name!r}: a slot is released twice in one batch")


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
