"""The retransmission buffer of a send stream (mediasoup's RtpRetransmissionBuffer), sans-IO.

It answers NACKs: each sent packet is stored by sequence number, as a reference to the packet's
bytes (a ``handle``: a buffer-pool slot index, plus its length), together with the SSRC,
sequence number and timestamp the packet was sent with.

The store itself is C (``struct mw_store``, ``cffi_build/store.h``), so that the receive path
can store packets with no Python involved (:attr:`RetransmissionBuffer.c_store` for C callers);
this module owns that struct and its arrays (allocated here, alive as long as the buffer) and
builds :class:`StoredPacket` objects from its entries on demand. Handles, lengths and SSRCs are
therefore unsigned 32-bit integers. ``tests/reference/retransmission_buffer.py`` is the
pure-Python reference the C is checked against (``tests/test_store.py``).

Ownership: :meth:`RetransmissionBuffer.insert` returns True when the buffer took the reference;
from then on the buffer gives it back exactly once, when the packet is evicted (count or age),
the buffer is cleared, or closed. When ``insert`` returns False the buffer took nothing and the
caller still owns the handle. Where a handle goes back:
- built with ``pool=`` (a :class:`~worker.bufferpool.BufferPool`): handles are that pool's lent
  slots and the C releases them straight into it; the ``release`` callback is not used (it may
  be None). A handle the pool refuses (not lent by it) is dropped and counted in
  ``release_errors``;
- otherwise through the ``release`` callback, called after each operation (insert, clear,
  close) for every handle it gave back, in the order they went (oldest first).

Bounds, as mediasoup:
- count: the span from the oldest to the newest stored sequence number (holes included) is at
  most ``max_items`` (2,500);
- age: a packet whose RTP timestamp is more than ``max_delay_ms`` (video 2,000 ms, audio
  1,000 ms, converted with the clock rate) behind the newest one is evicted on the next insert.

Insert rules (mediasoup's): a newer packet goes to the back (holes for the gap; the oldest are
evicted to keep the span); an older one goes to the front if it fits, or into its hole; a
duplicate, a packet whose timestamp does not fit the order of its neighbours, or one too old is
discarded; a packet with a lower sequence number but a higher timestamp than the newest empties
the buffer first (the sender restarted).

Resend rule: :meth:`RetransmissionBuffer.resend` does not hand out a packet resent within the
last RTT (100 ms while the RTT is unknown).

Sequence numbers (16 bits) and timestamps (32 bits) are unwrapped to 64-bit integers inside,
so wraparound never breaks an ordering. ``now`` is milliseconds (int) on the caller's clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

from worker._fast._lib import ffi, lib

if TYPE_CHECKING:
    from worker.bufferpool import BufferPool

__all__ = ["DEFAULT_RTT_MS", "RTX_BUFFER_MAX_AGE_AUDIO_MS", "RTX_BUFFER_MAX_AGE_VIDEO_MS",
           "RTX_BUFFER_MAX_ITEMS", "RetransmissionBuffer", "StoredPacket", "max_age_ms_for_kind"]

RTX_BUFFER_MAX_ITEMS: Final = 2500
RTX_BUFFER_MAX_AGE_VIDEO_MS: Final = 2000
RTX_BUFFER_MAX_AGE_AUDIO_MS: Final = 1000
DEFAULT_RTT_MS: Final[int] = lib.MW_STORE_DEFAULT_RTT_MS
NACK_MAX_REQUESTED_PACKETS: Final[int] = lib.MW_STORE_NACK_MAX_PACKETS

_UINT32_MAX: Final = 0xFFFFFFFF

# Bound once: insert() runs per packet on the Python receive path.
_insert = lib.mw_store_insert
_get = lib.mw_store_get
_at = lib.mw_store_at
_resend = lib.mw_store_resend

H = TypeVar("H", bound=int)


def max_age_ms_for_kind(kind: str) -> int:
    """The age bound for a stream of media kind ``"audio"`` or ``"video"``."""
    if kind == "video":
        return RTX_BUFFER_MAX_AGE_VIDEO_MS
    if kind == "audio":
        return RTX_BUFFER_MAX_AGE_AUDIO_MS
    raise ValueError(f"unknown media kind {kind!r} (expected 'audio' or 'video')")


@dataclass(slots=True, eq=False)
class StoredPacket(Generic[H]):
    """One stored packet. ``seq`` and ``timestamp`` are unwrapped; use ``sequence_number`` and
    ``rtp_timestamp`` for the wire values.

    Built from the C entry when first handed out, and handed out again (the same object, its
    ``resent_at_ms`` and ``sent_times`` brought up to date) while the packet stays stored."""

    seq: int
    timestamp: int
    ssrc: int
    handle: H
    length: int
    resent_at_ms: int | None = None
    sent_times: int = 0  # times handed out by resend(): 1 means this is the first retransmission

    @property
    def sequence_number(self) -> int:
        return self.seq & 0xFFFF

    @property
    def rtp_timestamp(self) -> int:
        return self.timestamp & 0xFFFFFFFF


class RetransmissionBuffer(Generic[H]):
    """Stored packets of one send stream, keyed by sequence number (a C ``struct mw_store``)."""

    __slots__ = ("_c", "_entries", "_evicted", "_packet_limit", "_packets", "_pool",
                 "_release")

    def __init__(self, clock_rate: int, max_delay_ms: int, release: Callable[[H], None] | None,
                 max_items: int = RTX_BUFFER_MAX_ITEMS, *,
                 pool: BufferPool | None = None) -> None:
        if clock_rate <= 0 or max_delay_ms <= 0 or max_items <= 0:
            raise ValueError("clock_rate, max_delay_ms and max_items must be positive")
        if max(clock_rate, max_delay_ms, max_items) > _UINT32_MAX:
            raise ValueError("clock_rate, max_delay_ms and max_items must fit in 32 bits")
        if release is None and pool is None:
            raise ValueError("a release callback or a pool is needed to give handles back")
        self._release = release
        self._pool = pool  # its struct must outlive ours: the C releases into it
        # The ring (one entry per position of the span) and, without a pool, the handles
        # evicted during one call; both live as long as this object (the C keeps pointers).
        self._entries: Any = ffi.new("struct mw_store_entry[]", max_items)
        self._evicted: Any = ffi.new("uint32_t[]", max_items) if pool is None else ffi.NULL
        self._c: Any = ffi.new("struct mw_store *")
        c_pool = pool.c_pool if pool is not None else ffi.NULL
        if lib.mw_store_init(self._c, self._entries, max_items, max_items, clock_rate,
                             max_delay_ms, c_pool, self._evicted):
            raise ValueError("the C store refused its arguments")
        # Packets handed out, by extended seq, with the serial of the entry they were built
        # from: the same packet gives the same object. Dead ones are pruned past the limit
        # (at most max_items are alive, so pruning is amortised).
        self._packets: dict[int, tuple[int, StoredPacket[H]]] = {}
        self._packet_limit = 2 * max_items + 16

    # The struct, read.

    @property
    def c_store(self) -> Any:
        """The ``struct mw_store *`` for C callers; valid as long as this object lives. C
        callers need a buffer built with ``pool=``: without one, evicted handles wait in the
        struct for this object to hand them to ``release`` after its own next call."""
        return self._c

    @property
    def clock_rate(self) -> int:
        return int(self._c.clock_rate)

    @property
    def max_delay_ms(self) -> int:
        return int(self._c.max_delay_ms)

    @property
    def max_items(self) -> int:
        return int(self._c.max_items)

    @property
    def evicted_by_count(self) -> int:
        return int(self._c.evicted_by_count)

    @property
    def evicted_by_age(self) -> int:
        return int(self._c.evicted_by_age)

    @property
    def discarded(self) -> int:
        """Inserts refused (duplicate, too old, out of order, too far back)."""
        return int(self._c.discarded)

    @property
    def release_errors(self) -> int:
        """Handles dropped instead of given back: the pool refused them (not lent by it)."""
        return int(self._c.release_errors)

    def __len__(self) -> int:
        return int(self._c.count)

    @property
    def span(self) -> int:
        """Positions from the oldest to the newest stored packet, holes included."""
        c = self._c
        return int(c.newest - c.oldest + 1) if c.count else 0

    @property
    def closed(self) -> bool:
        return bool(self._c.closed)

    def oldest(self) -> StoredPacket[H] | None:
        c = self._c
        return self._packet(_at(c, c.oldest)) if c.count else None

    def newest(self) -> StoredPacket[H] | None:
        c = self._c
        return self._packet(_at(c, c.newest)) if c.count else None

    # Insertion and release.

    def insert(self, seq: int, timestamp: int, handle: H, length: int, ssrc: int = 0) -> bool:
        """Store a sent packet; True if the buffer took ``handle`` (see the module docstring).
        ``seq`` and ``timestamp`` are taken modulo 2^16 and 2^32."""
        c = self._c
        took = _insert(c, seq & 0xFFFF, timestamp & 0xFFFFFFFF, handle, length, ssrc)
        if c.evicted_count:
            self._drain()
        return bool(took)

    def clear(self) -> int:
        """Release every stored packet; returns how many were released."""
        released = int(lib.mw_store_clear(self._c))
        self._packets.clear()
        self._drain()
        return released

    def close(self) -> None:
        """Clear, and refuse every later insert. Idempotent."""
        lib.mw_store_close(self._c)
        self._packets.clear()
        self._drain()

    def _drain(self) -> None:
        """Hand the handles the C evicted during the last call to the release callback."""
        c = self._c
        count = c.evicted_count
        if not count:
            return
        handles: list[H] = ffi.unpack(self._evicted, count)
        c.evicted_count = 0  # before the callbacks: one that raises loses no later eviction
        release = self._release
        assert release is not None  # without a pool there is a callback (checked at init)
        for handle in handles:
            release(handle)

    # Lookup.

    def get(self, seq: int) -> StoredPacket[H] | None:
        """The stored packet with 16-bit sequence number ``seq``, if any."""
        return self._packet(_get(self._c, seq & 0xFFFF))

    def resend(self, seq: int, now: int, rtt_ms: float | None = None) -> StoredPacket[H] | None:
        """The packet to retransmit for a NACK of ``seq``, or None: not stored, or already
        resent within the last RTT (``rtt_ms``; 100 ms when unknown or 0). Marks it resent."""
        rtt = int(rtt_ms) if rtt_ms is not None and rtt_ms > 0 else DEFAULT_RTT_MS
        return self._packet(_resend(self._c, seq & 0xFFFF, now, rtt))

    def nack(self, pid: int, blp: int, now: int,
             rtt_ms: float | None = None) -> list[StoredPacket[H]]:
        """The packets to retransmit for one NACK item (PID plus 16-bit lost mask), in order."""
        out: list[StoredPacket[H]] = []
        for i in range(NACK_MAX_REQUESTED_PACKETS):
            if i and not (blp >> (i - 1)) & 1:
                continue
            item = self.resend((pid + i) & 0xFFFF, now, rtt_ms)
            if item is not None:
                out.append(item)
        return out

    def _packet(self, entry: Any) -> StoredPacket[H] | None:
        """The StoredPacket of a C entry (None for NULL), the same object while it is stored."""
        if not entry:
            return None
        seq = int(entry.seq)
        serial = int(entry.serial)
        known = self._packets.get(seq)
        if known is not None and known[0] == serial:
            item = known[1]
        else:
            item = StoredPacket(seq, int(entry.timestamp), int(entry.ssrc), entry.slot,
                                int(entry.length))
            if len(self._packets) >= self._packet_limit:
                self._prune()
            self._packets[seq] = (serial, item)
        sent_times = int(entry.sent_times)
        item.sent_times = sent_times
        item.resent_at_ms = int(entry.resent_at_ms) if sent_times else None
        return item

    def _prune(self) -> None:
        """Forget the handed-out packets that are no longer stored."""
        c = self._c
        alive: dict[int, tuple[int, StoredPacket[H]]] = {}
        for seq, (serial, item) in self._packets.items():
            entry = _at(c, seq)
            if entry and entry.serial == serial:
                alive[seq] = (serial, item)
        self._packets = alive
