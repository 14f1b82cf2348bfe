"""Pure-Python reference for ``cffi_build/recv_stream.c``: the receive-side statistics of a
producer's stream, as ``worker.rtp_stream_stats.RecvStreamStats`` computed them in Python.

:class:`RefRecvStreamStats` is that class as it was before its per-packet state moved to C
(``struct mw_recv_stream``), but for its name and the reports computed from that state (SR,
RR block, score, getStats entry), which both take from the worker's ``RecvReports``: every
per-packet field in Python integers and
floats (unbounded extended sequence numbers and unwrapped timestamps, a ``RateCalculator``
deque for the bitrate, the inactivity deadline as an attribute, the score reset to 10 at once
when a packet ends an inactivity). ``tests/test_recv_stream.py`` feeds it and the C-backed
class the same calls and compares everything they expose. The shared base (score history,
getStats entry) is the worker's ``_StreamStats``, which the C port did not change.
"""

from __future__ import annotations

from worker.rtp_stream_stats import (
    BITRATE_WINDOW_MS,
    INACTIVITY_TIMEOUT_DTX_MS,
    INACTIVITY_TIMEOUT_MS,
    MAX_DROPOUT,
    MAX_MISORDER,
    RecvReports,
)
from worker.seq_manager import TIMESTAMP_BITS, unwrap

__all__ = ["RefRecvStreamStats"]

_SEQ_MOD = 1 << 16
_U32 = 0xFFFFFFFF


class RefRecvStreamStats(RecvReports):
    """A stream we receive (a producer's encoding)."""

    __slots__ = ("_bad_seq", "_base_seq", "_expected_offset", "_inactive", "_inactivity_timeout_ms",
                 "_max_seq", "_paused", "_transit", "deadline", "jitter", "max_packet_ms",
                 "max_packet_ts", "media_packet_count")

    def __init__(self, ssrc: int, clock_rate: int, now: int, *, kind: str = "video",
                 mime_type: str = "", rid: str | None = None, rtx_ssrc: int | None = None,
                 use_dtx: bool = False, inactivity_check: bool = True,
                 bitrate_window_ms: int = BITRATE_WINDOW_MS) -> None:
        super().__init__(ssrc, clock_rate, now, kind, mime_type, rid, rtx_ssrc, bitrate_window_ms)
        self.media_packet_count = 0  # media packets only (not RTX): the base of loss figures
        self._base_seq = 0  # extended sequence numbers (RFC 3550 A.1)
        self._max_seq: int | None = None
        self._bad_seq: int | None = None
        self._expected_offset = 0  # expected packets before the last re-sync
        self.max_packet_ts = 0  # unwrapped highest RTP timestamp, and when it came
        self.max_packet_ms = 0
        self._transit: int | None = None
        self.jitter = 0.0  # RTP timestamp units
        self._expected_prior = self._received_prior = self._reported_lost = 0
        self._expected_prior_score = self._received_prior_score = 0
        self._repaired_prior_score = self._retransmitted_prior_score = 0
        self.last_sr_received_ms: int | None = None
        self.last_sr_compact = 0
        self.last_sr_ntp_ms = 0
        self.last_sr_rtp_timestamp = 0
        self._inactive = False
        self._paused = False
        self._inactivity_timeout_ms = (
            (INACTIVITY_TIMEOUT_DTX_MS if use_dtx else INACTIVITY_TIMEOUT_MS)
            if inactivity_check else None)
        self.deadline: int | None = (None if self._inactivity_timeout_ms is None
                                     else now + self._inactivity_timeout_ms)

    @property
    def expected_packets(self) -> int:
        if self._max_seq is None:
            return 0
        return self._expected_offset + self._max_seq - self._base_seq + 1

    @property
    def extended_highest_seq(self) -> int:
        """RFC 3550: cycles << 16 | highest sequence number, 32 bits."""
        return 0 if self._max_seq is None else self._max_seq & _U32

    def _update_seq(self, seq: int, timestamp: int, now: int) -> bool:
        max_seq = self._max_seq
        if max_seq is None:
            self._base_seq = seq
            max_seq = seq - 1
            self.max_packet_ts = timestamp + (1 << TIMESTAMP_BITS)
            self.max_packet_ms = now
        udelta = (seq - max_seq) & 0xFFFF
        if udelta < MAX_DROPOUT:
            self._max_seq = max_seq + udelta
        elif udelta <= _SEQ_MOD - MAX_MISORDER:
            if seq != self._bad_seq:
                self._bad_seq = (seq + 1) & 0xFFFF
                self.packets_discarded += 1
                return False
            # Two sequential packets after a big jump: the sender restarted; re-sync.
            self._expected_offset += max_seq - self._base_seq + 1
            self._max_seq = self._base_seq = (max_seq & ~0xFFFF) + seq
            self._bad_seq = None
            self.max_packet_ts = timestamp + (1 << TIMESTAMP_BITS)
            self.max_packet_ms = now
            return True
        ts = unwrap(timestamp, self.max_packet_ts, TIMESTAMP_BITS)
        if ts > self.max_packet_ts:
            self.max_packet_ts = ts
            self.max_packet_ms = now
        return True

    def _update_jitter(self, timestamp: int, now: int) -> None:
        if self.clock_rate <= 0:
            return
        transit = (now * self.clock_rate // 1000 - timestamp) & _U32
        previous = self._transit
        self._transit = transit
        if previous is None:
            return
        d = ((transit - previous + (1 << 31)) & _U32) - (1 << 31)
        self.jitter += (abs(d) - self.jitter) / 16

    def _activity(self, now: int) -> None:
        if self._inactive:
            self._inactive = False
            self._reset_score(10, now)
        if self._inactivity_timeout_ms is not None and not self._paused:
            self.deadline = now + self._inactivity_timeout_ms

    def receive_packet(self, seq: int, timestamp: int, size: int, payload_length: int,
                       now: int) -> bool:
        """A media packet (``size``: whole packet bytes). False if its sequence number is
        invalid (discarded, RFC 3550 A.1). Padding-only packets count for jitter only."""
        if not self._update_seq(seq, timestamp, now):
            return False
        self._update_jitter(timestamp, now)
        if payload_length == 0:
            return True
        self.packet_count += 1
        self.media_packet_count += 1
        self._rate.update(size, now)
        self._activity(now)
        return True

    def receive_rtx_packet(self, seq: int, timestamp: int, now: int) -> bool:
        """An RTX packet, decoded to the original ``seq``/``timestamp``; counts it as
        retransmitted if valid. Then feed the NACK generator and, if it was NACKed, call
        :meth:`rtx_packet_repaired`."""
        if not self._update_seq(seq, timestamp, now):
            return False
        self.packets_retransmitted += 1
        return True

    def rtx_packet_repaired(self, size: int, payload_length: int, now: int) -> None:
        """An RTX packet brought a packet we had NACKed."""
        if payload_length == 0:
            return
        self.packets_repaired += 1
        self.packet_count += 1
        self._rate.update(size, now)
        self._activity(now)

    def nacked_packet_received(self) -> None:
        """Without RTX: a media packet we had NACKed arrived (retransmitted and repaired)."""
        self.packets_retransmitted += 1
        self.packets_repaired += 1

    def pause(self) -> None:
        self._paused = True
        self.deadline = None
        self._transit = None
        self.jitter = 0.0

    def resume(self, now: int) -> None:
        self._paused = False
        if self._inactivity_timeout_ms is not None and not self._inactive:
            self.deadline = now + self._inactivity_timeout_ms

    def on_timeout(self, now: int) -> None:
        """Inactivity timer: no media for the timeout, the score drops to 0."""
        if self.deadline is None or now < self.deadline:
            return
        self.deadline = None
        self._inactive = True
        self._reset_score(0, now)

    def _is_inactive(self) -> bool:
        return self._inactive
