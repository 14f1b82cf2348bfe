"""Pure-Python reference for ``cffi_build/store.c``: the retransmission store of a send stream
(mediasoup's RtpRetransmissionBuffer), sans-IO. ``worker/retransmission_buffer.py`` was this
code before the store moved to C; ``tests/test_store.py`` checks the C against it after every
operation. The one intended difference: :meth:`RetransmissionBuffer.clear` here releases in
insertion order, the C oldest first (each handle exactly once either way).

It answers NACKs: each sent packet is stored by sequence number, as a reference to the packet's
bytes (an opaque ``handle``, e.g. a buffer-pool slot index, plus its length), together with the
SSRC, sequence number and timestamp the packet was sent with.

Ownership: :meth:`RetransmissionBuffer.insert` returns True when the buffer took the reference;
from then on the buffer gives it back exactly once through the ``release`` callback, when the
packet is evicted (count or age), the buffer is cleared, or closed. When ``insert`` returns False
the buffer took nothing and the caller still owns the handle.

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

Sequence numbers (16 bits) and timestamps (32 bits) are unwrapped to unbounded integers inside,
so wraparound never breaks an ordering. ``now`` is milliseconds (int) on the caller's clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from worker.seq_manager import SEQ_BITS, TIMESTAMP_BITS, unwrap

__all__ = ["DEFAULT_RTT_MS", "RTX_BUFFER_MAX_AGE_AUDIO_MS", "RTX_BUFFER_MAX_AGE_VIDEO_MS",
           "RTX_BUFFER_MAX_ITEMS", "RetransmissionBuffer", "StoredPacket", "max_age_ms_for_kind"]

RTX_BUFFER_MAX_ITEMS: Final = 2500
RTX_BUFFER_MAX_AGE_VIDEO_MS: Final = 2000
RTX_BUFFER_MAX_AGE_AUDIO_MS: Final = 1000
DEFAULT_RTT_MS: Final = 100
NACK_MAX_REQUESTED_PACKETS: Final = 17  # a NACK item: the PID and its 16-bit mask

H = TypeVar("H")


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
    ``rtp_timestamp`` for the wire values."""

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
    """Stored packets of one send stream, keyed by sequence number."""

    __slots__ = ("_closed", "_items", "_newest", "_oldest", "_ref_seq", "_ref_ts", "_release",
                 "clock_rate", "discarded", "evicted_by_age", "evicted_by_count", "max_delay_ms",
                 "max_items")

    def __init__(self, clock_rate: int, max_delay_ms: int, release: Callable[[H], None],
                 max_items: int = RTX_BUFFER_MAX_ITEMS) -> None:
        if clock_rate <= 0 or max_delay_ms <= 0 or max_items <= 0:
            raise ValueError("clock_rate, max_delay_ms and max_items must be positive")
        self.clock_rate = clock_rate
        self.max_delay_ms = max_delay_ms
        self.max_items = max_items
        self._release = release
        self._items: dict[int, StoredPacket[H]] = {}
        self._oldest = 0  # extended seq of the oldest stored packet (valid when not empty)
        self._newest = 0  # extended seq of the newest stored packet (valid when not empty)
        self._ref_seq: int | None = None  # unwrapping references, kept across clears
        self._ref_ts: int | None = None
        self._closed = False
        self.evicted_by_count = 0
        self.evicted_by_age = 0
        self.discarded = 0  # inserts refused (duplicate, too old, out of order, too far back)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def span(self) -> int:
        """Positions from the oldest to the newest stored packet, holes included."""
        return self._newest - self._oldest + 1 if self._items else 0

    @property
    def closed(self) -> bool:
        return self._closed

    def oldest(self) -> StoredPacket[H] | None:
        return self._items[self._oldest] if self._items else None

    def newest(self) -> StoredPacket[H] | None:
        return self._items[self._newest] if self._items else None

    def _extend_seq(self, seq: int) -> int:
        if self._ref_seq is None:
            return (seq & 0xFFFF) + (1 << SEQ_BITS)
        return unwrap(seq, self._ref_seq, SEQ_BITS)

    def _extend_ts(self, timestamp: int) -> int:
        if self._ref_ts is None:
            return (timestamp & 0xFFFFFFFF) + (1 << TIMESTAMP_BITS)
        return unwrap(timestamp, self._ref_ts, TIMESTAMP_BITS)

    # Insertion.

    def insert(self, seq: int, timestamp: int, handle: H, length: int, ssrc: int = 0) -> bool:
        """Store a sent packet; True if the buffer took ``handle`` (see the module docstring)."""
        if self._closed:
            return False
        ext_seq = self._extend_seq(seq)
        ext_ts = self._extend_ts(timestamp)
        item = StoredPacket(ext_seq, ext_ts, ssrc, handle, length)
        if not self._items:
            return self._store_only(item)
        newest = self._items[self._newest]
        if ext_seq < newest.seq and ext_ts > newest.timestamp:
            self.clear()  # the sender restarted: what we hold is useless now
            return self._store_only(item)
        if self._evict_too_old(max(ext_ts, newest.timestamp)) and not self._items:
            return self._store_only(item)
        if ext_seq > self._newest:
            return self._insert_newest(item)
        if ext_seq < self._oldest:
            return self._insert_oldest(item)
        return self._insert_between(item)

    def _store_only(self, item: StoredPacket[H]) -> bool:
        self._items[item.seq] = item
        self._oldest = self._newest = item.seq
        self._ref_seq, self._ref_ts = item.seq, item.timestamp
        return True

    def _discard(self) -> bool:
        self.discarded += 1
        return False

    def _insert_newest(self, item: StoredPacket[H]) -> bool:
        if item.timestamp < self._items[self._newest].timestamp:
            return self._discard()
        span_after = item.seq - self._oldest + 1
        if span_after > self.max_items:
            excess = span_after - self.max_items
            if excess > self.span - 1:
                self.evicted_by_count += len(self._items)
                self.clear()
                return self._store_only(item)
            target_span = self.span - excess
            while self.span > target_span:
                self.evicted_by_count += 1
                self._remove_oldest()
        self._items[item.seq] = item
        self._newest = item.seq
        self._ref_seq, self._ref_ts = item.seq, item.timestamp
        return True

    def _insert_oldest(self, item: StoredPacket[H]) -> bool:
        oldest = self._items[self._oldest]
        if self._is_too_old(item.timestamp, self._items[self._newest].timestamp):
            return self._discard()
        if item.timestamp > oldest.timestamp:
            return self._discard()
        if self._newest - item.seq + 1 > self.max_items:
            return self._discard()
        self._items[item.seq] = item
        self._oldest = item.seq
        return True

    def _insert_between(self, item: StoredPacket[H]) -> bool:
        items = self._items
        if item.seq in items:
            return self._discard()  # duplicate
        for seq in range(item.seq - 1, self._oldest - 1, -1):
            older = items.get(seq)
            if older is not None:
                if item.timestamp < older.timestamp:
                    return self._discard()
                break
        for seq in range(item.seq + 1, self._newest + 1):
            newer = items.get(seq)
            if newer is not None:
                if item.timestamp > newer.timestamp:
                    return self._discard()
                break
        items[item.seq] = item
        return True

    # Eviction.

    def _is_too_old(self, timestamp: int, newest_timestamp: int) -> bool:
        if timestamp > newest_timestamp:
            return False
        return (newest_timestamp - timestamp) * 1000 // self.clock_rate > self.max_delay_ms

    def _evict_too_old(self, newest_timestamp: int) -> bool:
        removed = False
        while self._items and self._is_too_old(self._items[self._oldest].timestamp,
                                               newest_timestamp):
            self.evicted_by_age += 1
            self._remove_oldest()
            removed = True
        return removed

    def _remove_oldest(self) -> None:
        item = self._items.pop(self._oldest)
        if self._items:
            seq = self._oldest + 1
            while seq not in self._items:
                seq += 1
            self._oldest = seq
        self._release(item.handle)

    def clear(self) -> int:
        """Release every stored packet; returns how many were released."""
        items = list(self._items.values())
        self._items.clear()
        for item in items:
            self._release(item.handle)
        return len(items)

    def close(self) -> None:
        """Clear, and refuse every later insert. Idempotent."""
        self._closed = True
        self.clear()

    # Lookup.

    def get(self, seq: int) -> StoredPacket[H] | None:
        """The stored packet with 16-bit sequence number ``seq``, if any."""
        if not self._items:
            return None
        return self._items.get(unwrap(seq, self._newest, SEQ_BITS))

    def resend(self, seq: int, now: int, rtt_ms: float | None = None) -> StoredPacket[H] | None:
        """The packet to retransmit for a NACK of ``seq``, or None: not stored, or already
        resent within the last RTT (``rtt_ms``; 100 ms when unknown or 0). Marks it resent."""
        item = self.get(seq)
        if item is None:
            return None
        rtt = int(rtt_ms) if rtt_ms is not None and rtt_ms > 0 else DEFAULT_RTT_MS
        if item.resent_at_ms is not None and now - item.resent_at_ms <= rtt:
            return None
        item.resent_at_ms = now
        item.sent_times += 1
        return item

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
