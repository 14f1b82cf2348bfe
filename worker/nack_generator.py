"""NACK generation for an incoming stream (mediasoup's RTC::NackGenerator), sans-IO.

The producer side feeds every received packet (media, or recovered through RTX) to
:meth:`NackGenerator.receive`, which returns what to ask for now; the I/O edge calls
:meth:`NackGenerator.on_timeout` when ``now`` reaches :attr:`NackGenerator.deadline`. Time is
milliseconds (int) on the caller's clock.

Rules, as mediasoup:
- A packet newer than the highest seen adds the gap to the NACK list. Every entry not asked for
  yet is asked for at once, unless it is younger than ``send_nack_delay_ms`` (mediasoup's
  producers use 10 ms, to let slightly reordered packets arrive first).
- A 40 ms timer asks again for each entry whose last NACK is at least one RTT old (100 ms until
  :meth:`NackGenerator.update_rtt` gives one). An entry is dropped after its 10th NACK.
- A packet older than the highest seen removes its entry (it arrived late or was recovered);
  ``was_nacked`` tells whether we had asked for it (mediasoup counts it as repaired).
- A recovered packet newer than the highest seen is remembered, so its gap will not be NACKed.
- Entries and key frames more than 10,000 sequence numbers behind are forgotten.
- The list holds at most 1,000 entries. When a gap would overflow it, entries older than the
  oldest known key frame are dropped (key frame by key frame); if it still overflows, the list
  is cleared and ``key_frame_required`` is set: the caller requests a key frame.

Sequence numbers are unwrapped to unbounded integers inside; outputs are 16-bit values in RTP
order, ready for an RTCP NACK (``worker._fast.Nack(lost=...)``).

The highest sequence number, the size of the list, its oldest entry and when its next first
request falls due live in a ``struct mw_nack_state`` (:attr:`NackGenerator.shared`), which the
C receive path (``cffi_build/ingress.h``) reads and advances: as long as no first request is due
and no entry is too old to keep, the next packet in order changes nothing here but the highest
sequence number, so the C takes it without calling this class, even while packets are missing.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Final

from worker._fast._lib import ffi
from worker.seq_manager import SEQ_BITS, unwrap

__all__ = ["NACK_DEFAULT_RTT_MS", "NACK_MAX_LIST_SIZE", "NACK_MAX_PACKET_AGE", "NACK_MAX_RETRIES",
           "NACK_TIMER_INTERVAL_MS", "PRODUCER_SEND_NACK_DELAY_MS", "NackGenerator", "NackOutput"]

NACK_MAX_PACKET_AGE: Final = 10_000
NACK_MAX_LIST_SIZE: Final = 1_000
NACK_DEFAULT_RTT_MS: Final = 100
NACK_MAX_RETRIES: Final = 10
NACK_TIMER_INTERVAL_MS: Final = 40
PRODUCER_SEND_NACK_DELAY_MS: Final = 10


@dataclass(slots=True)
class _NackEntry:
    created_at_ms: int
    sent_at_ms: int | None = None
    retries: int = 0


@dataclass(frozen=True, slots=True)
class NackOutput:
    """What one received packet produced."""

    nacks: tuple[int, ...] = ()  # 16-bit sequence numbers to NACK now, in RTP order
    key_frame_required: bool = False  # the list overflowed and was cleared
    was_nacked: bool = False  # this late packet was one we had NACKed at least once


_NEVER: Final = (1 << 63) - 1  # next_ask_ms when no entry waits for its first request
_NOTHING: Final = NackOutput()
_WAS_NACKED: Final = NackOutput(was_nacked=True)


class NackGenerator:
    """Tracks the missing packets of one incoming stream."""

    __slots__ = ("_key_frames", "_nack_list", "_recovered", "_rtt_ms", "deadline",
                 "key_frames_required", "send_nack_delay_ms", "shared")

    def __init__(self, send_nack_delay_ms: int = 0) -> None:
        self.send_nack_delay_ms = send_nack_delay_ms
        self._rtt_ms = NACK_DEFAULT_RTT_MS
        # The highest sequence number (extended; none until the first packet) and the list's
        # size, where the C receive path reads them.
        self.shared: Any = ffi.new("struct mw_nack_state *")
        self._nack_list: dict[int, _NackEntry] = {}  # extended seq -> entry, ascending keys
        self._key_frames: deque[int] = deque()  # extended seqs of key-frame packets, ascending
        self._recovered: set[int] = set()  # extended seqs recovered ahead of the highest seen
        self.deadline: int | None = None  # when on_timeout() wants to run, ms
        self.key_frames_required = 0  # times the list overflowed

    def __len__(self) -> int:
        return len(self._nack_list)

    @property
    def _last_seq(self) -> int | None:
        shared = self.shared
        return int(shared.last_seq) if shared.has_last else None

    @_last_seq.setter
    def _last_seq(self, value: int | None) -> None:
        shared = self.shared
        shared.has_last = value is not None
        shared.last_seq = 0 if value is None else value

    def _publish(self) -> None:
        """Tell the C receive path what lets it take the next packet in order without this
        class: the list's size, its oldest entry, and when its next first request falls due
        (the entries never asked for are the newest: see :meth:`_first_asks`)."""
        shared = self.shared
        nack_list = self._nack_list
        shared.pending = len(nack_list)
        if not nack_list:
            return
        shared.oldest = next(iter(nack_list))
        unasked = self._first_asks()
        shared.next_ask_ms = (nack_list[unasked[0]].created_at_ms + self.send_nack_delay_ms
                              if unasked else _NEVER)

    @property
    def pending(self) -> list[int]:
        """The 16-bit sequence numbers in the NACK list, in RTP order."""
        return [seq & 0xFFFF for seq in self._nack_list]

    @property
    def rtt_ms(self) -> int:
        return self._rtt_ms

    def update_rtt(self, rtt_ms: float) -> None:
        """The stream's RTT; 0 or less means unknown (100 ms is used)."""
        self._rtt_ms = int(rtt_ms) if rtt_ms > 0 else NACK_DEFAULT_RTT_MS

    def reset(self) -> None:
        """Forget everything (the producer was paused)."""
        self._nack_list.clear()
        self._key_frames.clear()
        self._recovered.clear()
        self._last_seq = None
        self.deadline = None
        self._publish()

    def receive(self, seq: int, is_keyframe: bool, is_recovered: bool, now: int) -> NackOutput:
        """Feed one received packet (``is_recovered``: it came through RTX)."""
        out = self._receive(seq, is_keyframe, is_recovered, now)
        self._publish()
        return out

    def _receive(self, seq: int, is_keyframe: bool, is_recovered: bool, now: int) -> NackOutput:
        last = self._last_seq
        if last is None:
            self._last_seq = last = (seq & 0xFFFF) + (1 << SEQ_BITS)
            if is_keyframe:
                self._key_frames.append(last)
            return _NOTHING
        ext = unwrap(seq, last, SEQ_BITS)
        if ext == last:
            return _NOTHING
        if ext < last:
            entry = self._nack_list.pop(ext, None)
            return _WAS_NACKED if entry is not None and entry.retries else _NOTHING
        self._note_key_frame(ext, is_keyframe)
        if is_recovered:
            self._note_recovered(ext)
            return _NOTHING
        key_frame_required = self._add_gap(last + 1, ext, now)
        self._last_seq = ext
        nacks = self._batch(now, by_time=False) if self._nack_list else ()
        if self.deadline is None and self._nack_list:
            self.deadline = now + NACK_TIMER_INTERVAL_MS
        if not nacks and not key_frame_required:
            return _NOTHING
        return NackOutput(tuple(nacks), key_frame_required)

    def on_timeout(self, now: int) -> list[int]:
        """Run the retry timer if due; returns the 16-bit sequence numbers to NACK again."""
        if self.deadline is None or now < self.deadline:
            return []
        nacks = self._batch(now, by_time=True)
        self.deadline = now + NACK_TIMER_INTERVAL_MS if self._nack_list else None
        self._publish()
        return nacks

    def _note_key_frame(self, ext: int, is_keyframe: bool) -> None:
        key_frames = self._key_frames
        if is_keyframe:
            key_frames.append(ext)
        threshold = ext - NACK_MAX_PACKET_AGE
        while key_frames and key_frames[0] < threshold:
            key_frames.popleft()

    def _note_recovered(self, ext: int) -> None:
        self._recovered.add(ext)
        threshold = ext - NACK_MAX_PACKET_AGE
        if min(self._recovered) < threshold:
            self._recovered = {seq for seq in self._recovered if seq >= threshold}

    def _add_gap(self, start: int, end: int, now: int) -> bool:
        """Add ``start .. end - 1`` to the list; True if it overflowed and was cleared."""
        nack_list = self._nack_list
        threshold = end - NACK_MAX_PACKET_AGE
        while nack_list:
            oldest = next(iter(nack_list))
            if oldest >= threshold:
                break
            del nack_list[oldest]
        new = end - start
        if len(nack_list) + new > NACK_MAX_LIST_SIZE:
            while self._drop_until_key_frame() and len(nack_list) + new > NACK_MAX_LIST_SIZE:
                pass
            if len(nack_list) + new > NACK_MAX_LIST_SIZE:
                nack_list.clear()
                self.key_frames_required += 1
                return True
        recovered = self._recovered
        for seq in range(start, end):
            if seq not in recovered:
                nack_list[seq] = _NackEntry(now)
        return False

    def _drop_until_key_frame(self) -> bool:
        """Drop the entries older than the oldest key frame that is newer than some entry."""
        nack_list = self._nack_list
        while self._key_frames:
            key_frame = self._key_frames[0]
            older: list[int] = []
            for seq in nack_list:
                if seq >= key_frame:
                    break
                older.append(seq)
            if older:
                for seq in older:
                    del nack_list[seq]
                return True
            self._key_frames.popleft()
        return False

    def _first_asks(self) -> list[int]:
        """The entries never NACKed yet, oldest first, found from the newest end.

        They are always the newest entries: entries are added in time order, and every batch
        asks for all the unasked ones old enough, so only entries younger than the delay stay
        unasked after it. A per-packet batch therefore costs what is new, not the whole list
        (which under heavy loss is long, and was walked on every packet)."""
        nack_list = self._nack_list
        unsent: list[int] = []
        for seq in reversed(nack_list):
            if nack_list[seq].sent_at_ms is not None:
                break
            unsent.append(seq)
        unsent.reverse()
        return unsent

    def _batch(self, now: int, by_time: bool) -> list[int]:
        """Entries to NACK now: never sent (on a packet) or not sent for an RTT (on the timer).
        Each counts a retry; an entry reaching the retry limit leaves the list."""
        if not by_time:
            return self._ask(self._first_asks(), now)
        delay = self.send_nack_delay_ms
        rtt = self._rtt_ms
        batch: list[int] = []
        exhausted: list[int] = []
        for seq, entry in self._nack_list.items():
            if delay > 0 and now - entry.created_at_ms < delay:
                continue
            sent_at = entry.sent_at_ms
            if sent_at is None or (by_time and now - sent_at >= rtt):
                batch.append(seq & 0xFFFF)
                entry.retries += 1
                entry.sent_at_ms = now
                if entry.retries >= NACK_MAX_RETRIES:
                    exhausted.append(seq)
        for seq in exhausted:
            del self._nack_list[seq]
        return batch

    def _ask(self, seqs: list[int], now: int) -> list[int]:
        """NACK ``seqs`` (never asked yet, oldest first) that are older than the delay."""
        delay = self.send_nack_delay_ms
        nack_list = self._nack_list
        batch: list[int] = []
        for seq in seqs:
            entry = nack_list[seq]
            if delay > 0 and now - entry.created_at_ms < delay:
                break  # the rest are younger still
            batch.append(seq & 0xFFFF)
            entry.retries += 1
            entry.sent_at_ms = now
            if entry.retries >= NACK_MAX_RETRIES:
                del nack_list[seq]
        return batch
