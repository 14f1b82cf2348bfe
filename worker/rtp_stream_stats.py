"""Per-stream RTP statistics, RTCP report fields and scores (mediasoup's RtpStream,
RtpStreamRecv and RtpStreamSend), sans-IO.

:class:`RecvStreamStats` is a producer's stream (what we receive): packet, byte and bitrate
counters, RFC 3550 sequence validation (A.1) and jitter (A.8), the fields of the RR block we
send (:meth:`RecvStreamStats.report_block`), the RTT from an XR DLRR, and the score updated on
each Sender Report. :class:`SendStreamStats` is a consumer's stream (what we send): counters,
the SR we send (:meth:`SendStreamStats.sender_report`), the RTT and losses from the peer's RR,
and the score updated on each RR. ``stats(now)`` gives the getStats entry (camelCase keys).

The per-packet state of a receive stream (sequence validation, highest timestamp, jitter,
counters, the bitrate window, the inactivity deadline) is a C ``struct mw_recv_stream``
(``cffi_build/recv_stream.h``, :attr:`RecvStreamStats.c_stream`), so that the C receive path
accounts for a packet without Python; :class:`RecvStreamStats` wraps it, with the behaviour
the pure-Python class had (``tests/reference/recv_stream.py`` keeps that class, and
``tests/test_recv_stream.py`` holds the two to the same results).

Time: ``now`` is milliseconds (int) on the caller's clock. As mediasoup, that clock also serves
as the NTP clock of our reports (:func:`ms_to_ntp`): peers only use it for LSR/DLSR round trips
and for their own NTP-RTP mapping. Compact NTP arithmetic is done modulo 2^32.

Scores (0-10), as mediasoup: each report interval gives a sample from the expected, received,
lost, repaired and retransmitted packets of the interval, ``round(deliveredRatio^4 * 10)`` with
repaired packets discounted; the score is the weighted average of the last 24 samples, sample i
(oldest 1) weighing i. A receive stream with ``inactivity_check`` drops to 0 when no media came
for 1.5 s (5 s with DTX), and goes back to 10 at the next packet. After a change, the new score
is returned once by ``take_score_change()`` (for the ``score`` event).

Deliberate differences from mediasoup, each a bug fix: the extended sequence numbers are exact
from the first packet (mediasoup counts a spurious cycle when the first one is 0); after a
sequence re-sync, "expected" keeps counting from where it was instead of restarting; a fraction
lost of 256/256 is reported as 255; an RR without LSR keeps the previous RTT.
"""

from __future__ import annotations

import math
from abc import ABCMeta, abstractmethod
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from worker._fast import DlrrSubBlock, ReportBlock, SenderReport
from worker._fast._lib import ffi, lib
from worker.seq_manager import TIMESTAMP_BITS, unwrap

__all__ = ["BITRATE_WINDOW_MS", "INACTIVITY_TIMEOUT_DTX_MS", "INACTIVITY_TIMEOUT_MS",
           "MAX_RECV_BITRATE_WINDOW_MS", "SCORE_HISTORY_LENGTH", "RateCalculator",
           "RecvStreamStats", "SendStreamStats", "compact_ntp", "compact_to_ms", "ms_to_compact",
           "ms_to_ntp", "ntp_to_ms"]

SCORE_HISTORY_LENGTH: Final = 24
INACTIVITY_TIMEOUT_MS: Final = 1500
INACTIVITY_TIMEOUT_DTX_MS: Final = 5000
BITRATE_WINDOW_MS: Final = 1000
# A receive stream's bitrate ring has window + 1 entries of 16 bytes: a minute at most.
MAX_RECV_BITRATE_WINDOW_MS: Final = 60_000
# RFC 3550 A.1 (applied by cffi_build/recv_stream.c, whose constants they are).
MAX_DROPOUT: Final = int(lib.MW_RECV_STREAM_MAX_DROPOUT)
MAX_MISORDER: Final = int(lib.MW_RECV_STREAM_MAX_MISORDER)
_U32: Final = 0xFFFFFFFF

# The per-packet entry points, looked up once (a module global is cheaper than lib.<name>).
_receive: Final[Callable[[Any, int, int, int, int, int], int]] = lib.mw_recv_stream_receive
_receive_rtx: Final[Callable[[Any, int, int, int], int]] = lib.mw_recv_stream_receive_rtx
_rtx_repaired: Final[Callable[[Any, int, int, int], None]] = lib.mw_recv_stream_rtx_repaired
_nacked_received: Final[Callable[[Any], None]] = lib.mw_recv_stream_nacked_received


def ms_to_ntp(ms: int) -> int:
    """64-bit NTP timestamp (seconds << 32 | fraction) for a time in ms."""
    seconds, rest = divmod(ms, 1000)
    return ((seconds & _U32) << 32) | (rest << 32) // 1000


def ntp_to_ms(ntp: int) -> int:
    return (ntp >> 32) * 1000 + _round((ntp & _U32) * 1000 / (1 << 32))


def compact_ntp(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp (RFC 3550 LSR), in 1/65536 s."""
    return (ntp >> 16) & _U32


def ms_to_compact(delay_ms: int) -> int:
    """A delay in ms as 1/65536 s units (RFC 3550 DLSR, RFC 3611 DLRR)."""
    return ((delay_ms // 1000) << 16) | (delay_ms % 1000) * 65536 // 1000


def compact_to_ms(value: int) -> float:
    return (value >> 16) * 1000 + (value & 0xFFFF) / 65536 * 1000


def _round(value: float) -> int:
    """C's round() for non-negative values: halves go up (Python's round() goes to even)."""
    return math.floor(value + 0.5)


def _rtt_from_compact(now: int, last: int, delay: int) -> float:
    """RTT in ms from a compact NTP ``last`` report time and the peer's ``delay`` since it."""
    diff = (compact_ntp(ms_to_ntp(now)) - last - delay) & _U32
    return 0.0 if diff >= 1 << 31 else compact_to_ms(diff)


class RateCalculator:
    """Bytes in a sliding window of ``window_ms`` (entries at now - window_ms still count),
    reported in bits per second; ``bytes`` is the running total."""

    __slots__ = ("_items", "_total", "bytes", "window_ms")

    def __init__(self, window_ms: int = BITRATE_WINDOW_MS) -> None:
        self.window_ms = window_ms
        self._items: deque[list[int]] = deque()  # [time ms, bytes]
        self._total = 0
        self.bytes = 0

    def update(self, size: int, now: int) -> None:
        self.bytes += size
        self._total += size
        items = self._items
        if items and items[-1][0] == now:
            items[-1][1] += size
        else:
            items.append([now, size])
        self._trim(now)

    def rate(self, now: int) -> int:
        self._trim(now)
        return int(self._total * (8000 / self.window_ms) + 0.5)

    def _trim(self, now: int) -> None:
        cutoff = now - self.window_ms
        items = self._items
        while items and items[0][0] < cutoff:
            self._total -= items.popleft()[1]


def _c_clock_rate(clock_rate: int) -> int:
    """The struct's clock rate: 0 (no jitter) for the rates the Python skipped (<= 0)."""
    if clock_rate > _U32:
        raise ValueError(f"clock rate {clock_rate} Hz does not fit 32 bits")
    return max(0, clock_rate)


def _score_sample(base: int, lost: int, repaired: int, retransmitted: int) -> int:
    """mediasoup's sample: lost packets partly forgiven when repaired, then
    ``round(((base - lost) / base)^4 * 10)``."""
    repaired_ratio = repaired / base
    repaired_weight = (1 / (repaired_ratio + 1)) ** 4
    if retransmitted > 0:
        repaired_weight *= repaired / retransmitted
    lost = int(lost - repaired * repaired_weight)
    delivered_ratio = (base - lost) / base
    return _round(delivered_ratio ** 4 * 10)


class _StreamStats:
    """What receive and send streams share: identity, RTCP feedback counters, the score."""

    __slots__ = ("_rate", "_score_changed", "_scores", "active_since_ms", "clock_rate",
                 "fir_count", "fraction_lost", "kind", "mime_type", "nack_count",
                 "nack_packet_count", "packet_count", "packets_discarded", "packets_lost",
                 "packets_repaired", "packets_retransmitted", "pli_count", "rid", "rtt_ms",
                 "rtx_ssrc", "score", "ssrc")

    def __init__(self, ssrc: int, clock_rate: int, now: int, kind: str, mime_type: str,
                 rid: str | None, rtx_ssrc: int | None, bitrate_window_ms: int) -> None:
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.kind = kind
        self.mime_type = mime_type
        self.rid = rid
        self.rtx_ssrc = rtx_ssrc
        self._rate = RateCalculator(bitrate_window_ms)
        self.packet_count = 0
        self.packets_lost = 0
        self.fraction_lost = 0
        self.packets_discarded = 0
        self.packets_retransmitted = 0
        self.packets_repaired = 0
        self.nack_count = 0
        self.nack_packet_count = 0
        self.pli_count = 0
        self.fir_count = 0
        self.rtt_ms: float | None = None
        self.score = 10
        self._scores: deque[int] = deque(maxlen=SCORE_HISTORY_LENGTH)
        self._score_changed = False
        self.active_since_ms = now

    @property
    def byte_count(self) -> int:
        return self._rate.bytes

    def bitrate(self, now: int) -> int:
        return self._rate.rate(now)

    def take_score_change(self) -> int | None:
        """The score, if it changed since the last call; else None."""
        if not self._score_changed:
            return None
        self._score_changed = False
        return self.score

    def _set_score(self, score: int, now: int) -> None:
        if score != self.score:
            if self.score == 0:
                self.active_since_ms = now
            self.score = score
            self._score_changed = True

    def _add_score_sample(self, sample: int, now: int) -> None:
        self._scores.append(sample)
        total = weights = 0
        for weight, value in enumerate(self._scores, 1):
            weights += weight
            total += weight * value
        self._set_score(_round(total / weights), now)

    def _reset_score(self, score: int, now: int) -> None:
        self._scores.clear()
        self._set_score(score, now)

    def _base_stats(self, now: int, kind_name: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": kind_name, "timestamp": now, "ssrc": self.ssrc, "kind": self.kind,
            "mimeType": self.mime_type, "packetsLost": self.packets_lost,
            "fractionLost": self.fraction_lost, "packetsDiscarded": self.packets_discarded,
            "packetsRetransmitted": self.packets_retransmitted,
            "packetsRepaired": self.packets_repaired, "nackCount": self.nack_count,
            "nackPacketCount": self.nack_packet_count, "pliCount": self.pli_count,
            "firCount": self.fir_count, "score": self.score,
            "packetCount": self.packet_count, "byteCount": self.byte_count,
            "bitrate": self.bitrate(now)}
        if self.rid is not None:
            out["rid"] = self.rid
        if self.rtx_ssrc is not None:
            out["rtxSsrc"] = self.rtx_ssrc
        if self.rtt_ms is not None:
            out["roundTripTime"] = self.rtt_ms
        return out


class RecvReports(_StreamStats, metaclass=ABCMeta):
    """What a receive stream computes from its per-packet state, whoever keeps that state:
    the SR it gets (LSR/DLSR), the RTT from a DLRR, the RR block it sends, the score on each
    SR, the getStats entry. :class:`RecvStreamStats` keeps the per-packet state in C; the
    pure-Python reference of ``tests/reference/recv_stream.py`` in Python attributes."""

    __slots__ = ("_expected_prior", "_expected_prior_score", "_received_prior",
                 "_received_prior_score", "_repaired_prior_score", "_reported_lost",
                 "_retransmitted_prior_score", "last_sr_compact", "last_sr_ntp_ms",
                 "last_sr_received_ms", "last_sr_rtp_timestamp")

    _expected_prior: int
    _expected_prior_score: int
    _received_prior: int
    _received_prior_score: int
    _repaired_prior_score: int
    _reported_lost: int
    _retransmitted_prior_score: int
    last_sr_compact: int
    last_sr_ntp_ms: int
    last_sr_received_ms: int | None
    last_sr_rtp_timestamp: int

    @property
    @abstractmethod
    def expected_packets(self) -> int: ...

    @property
    @abstractmethod
    def extended_highest_seq(self) -> int: ...

    @property
    @abstractmethod
    def media_packet_count(self) -> int: ...

    @property
    @abstractmethod
    def jitter(self) -> float: ...

    # RTCP feedback we sent for this stream.

    def nack_sent(self, packets: int) -> None:
        self.nack_count += 1
        self.nack_packet_count += packets

    def pli_sent(self) -> None:
        self.pli_count += 1

    def fir_sent(self) -> None:
        self.fir_count += 1

    def _settle(self) -> None:
        """Bring the score up to date with what the per-packet path recorded (if anything)."""

    @abstractmethod
    def _is_inactive(self) -> bool: ...

    def receive_sender_report(self, ntp_timestamp: int, rtp_timestamp: int, now: int) -> None:
        """The producer's SR for this stream: remembered for LSR/DLSR; updates the score."""
        self._settle()
        self.last_sr_received_ms = now
        self.last_sr_compact = compact_ntp(ntp_timestamp)
        self.last_sr_ntp_ms = ntp_to_ms(ntp_timestamp)
        self.last_sr_rtp_timestamp = rtp_timestamp
        self._update_score(now)

    def receive_dlrr(self, lrr: int, dlrr: int, now: int) -> float | None:
        """An XR DLRR sub-block answering our RRT: sets and returns the RTT in ms (give it to
        the NACK generator), or None if the peer had no RRT of ours yet."""
        if not lrr or not dlrr:
            return None
        self.rtt_ms = _rtt_from_compact(now, lrr, dlrr)
        return self.rtt_ms

    def report_block(self, now: int, worst_remote_fraction_lost: int = 0) -> ReportBlock:
        """The RR block for this stream (updates packetsLost and fractionLost).

        ``worst_remote_fraction_lost`` (in-band FEC: the worst loss our consumers report) is
        reported instead when it is worse than ours, as mediasoup does."""
        self._settle()
        previous_lost = self.packets_lost
        expected = self.expected_packets
        received = self.media_packet_count
        self.packets_lost = max(0, expected - received)
        expected_interval = expected - self._expected_prior
        received_interval = received - self._received_prior
        self._expected_prior, self._received_prior = expected, received
        lost_interval = expected_interval - received_interval
        if expected_interval <= 0 or lost_interval <= 0:
            self.fraction_lost = 0
        else:
            self.fraction_lost = min(255, _round(lost_interval * 256 / expected_interval))
        fraction = self.fraction_lost
        if worst_remote_fraction_lost <= fraction:
            self._reported_lost += self.packets_lost - previous_lost
        else:
            self._reported_lost += (worst_remote_fraction_lost * max(0, expected_interval)) >> 8
            fraction = worst_remote_fraction_lost
        cumulative = max(-0x800000, min(0x7FFFFF, self._reported_lost))
        if self.last_sr_received_ms is None:
            lsr = dlsr = 0
        else:
            lsr = self.last_sr_compact
            dlsr = ms_to_compact(now - self.last_sr_received_ms) & _U32
        return ReportBlock(self.ssrc, fraction, cumulative, self.extended_highest_seq,
                           int(self.jitter), lsr, dlsr)

    def _update_score(self, now: int) -> None:
        total_expected = self.expected_packets
        expected = total_expected - self._expected_prior_score
        self._expected_prior_score = total_expected
        total_received = self.media_packet_count
        received = total_received - self._received_prior_score
        self._received_prior_score = total_received
        lost = max(0, expected - received)
        packets_repaired = self.packets_repaired
        repaired = packets_repaired - self._repaired_prior_score
        self._repaired_prior_score = packets_repaired
        packets_retransmitted = self.packets_retransmitted
        retransmitted = packets_retransmitted - self._retransmitted_prior_score
        self._retransmitted_prior_score = packets_retransmitted
        if self._is_inactive():
            return
        if expected <= 0:
            self._add_score_sample(10, now)
            return
        if received <= 0:
            self._add_score_sample(0, now)
            return
        lost = min(lost, received)
        if repaired > lost:
            if self.rtx_ssrc is not None:
                repaired = lost
            else:
                lost = repaired
        retransmitted = max(retransmitted, repaired)
        self._add_score_sample(_score_sample(received, lost, repaired, retransmitted), now)

    def stats(self, now: int) -> dict[str, Any]:
        out = self._base_stats(now, "inbound-rtp")
        out["jitter"] = int(self.jitter)
        return out




class RecvStreamStats(RecvReports):
    """A stream we receive (a producer's encoding).

    The per-packet state lives in a C ``struct mw_recv_stream`` (``cffi_build/recv_stream.h``),
    :attr:`c_stream`, which the C receive path updates with no Python involved; this class owns
    it (and its bitrate ring) and reads it for everything that is not per packet. The counters
    and sequence figures are properties over the struct, :attr:`deadline` is computed from it.
    The score stays in Python: when a packet ends an inactivity, the C only records it
    (``reactivated``, ``reactivated_ms``) and :meth:`_settle` resets the score to 10 at that
    time before anything here reads or changes the score. The per-packet methods make one cffi
    call each and build no object. Keep this object alive as long as C code holds
    :attr:`c_stream`.

    Where the pure-Python class took any integer, the struct's types bound the arguments (cffi
    raises OverflowError beyond them): sequence numbers 16 bits, timestamps, sizes and payload
    lengths 32 bits, times int64; a clock rate above 2^32 Hz and a bitrate window outside 1 to
    :data:`MAX_RECV_BITRATE_WINDOW_MS` raise ValueError. Extended sequence numbers and
    unwrapped timestamps are int64 (2^47 packets at least). The bitrate is the Python's as long
    as the clock never goes back (``recv_stream.h`` says what the C does when it does).
    """

    __slots__ = ("_active_since", "_clock_rate", "_ring", "_score_value", "c_stream")

    def __init__(self, ssrc: int, clock_rate: int, now: int, *, kind: str = "video",
                 mime_type: str = "", rid: str | None = None, rtx_ssrc: int | None = None,
                 use_dtx: bool = False, inactivity_check: bool = True,
                 bitrate_window_ms: int = BITRATE_WINDOW_MS) -> None:
        if not 1 <= bitrate_window_ms <= MAX_RECV_BITRATE_WINDOW_MS:
            raise ValueError(f"bitrate window of {bitrate_window_ms} ms: must be 1 to "
                             f"{MAX_RECV_BITRATE_WINDOW_MS} ms")
        timeout = ((INACTIVITY_TIMEOUT_DTX_MS if use_dtx else INACTIVITY_TIMEOUT_MS)
                   if inactivity_check else lib.MW_RECV_STREAM_NO_TIMEOUT)
        # One entry per distinct ms in [now - window, now]: enough on a clock that never goes
        # back (recv_stream.h says what a clock going back does).
        ring_size = bitrate_window_ms + 1
        self._ring = ffi.new("struct mw_recv_rate_item[]", ring_size)
        self.c_stream: Any = ffi.new("struct mw_recv_stream *")
        if lib.mw_recv_stream_init(self.c_stream, self._ring, ring_size, bitrate_window_ms,
                                   _c_clock_rate(clock_rate), timeout, now) != 0:
            raise ValueError("mw_recv_stream_init refused its arguments")
        # The base class sets the counters, clock rate and score through the properties below,
        # so the struct must exist first. Its RateCalculator is not used: the ring is.
        super().__init__(ssrc, clock_rate, now, kind, mime_type, rid, rtx_ssrc, bitrate_window_ms)
        self._expected_prior = self._received_prior = self._reported_lost = 0
        self._expected_prior_score = self._received_prior_score = 0
        self._repaired_prior_score = self._retransmitted_prior_score = 0
        self.last_sr_received_ms: int | None = None
        self.last_sr_compact = 0
        self.last_sr_ntp_ms = 0
        self.last_sr_rtp_timestamp = 0

    # -- the fields of the C struct ----------------------------------------------------------

    @property
    def packet_count(self) -> int:
        return int(self.c_stream.packet_count)

    @packet_count.setter
    def packet_count(self, value: int) -> None:
        self.c_stream.packet_count = value

    @property
    def packets_discarded(self) -> int:
        return int(self.c_stream.packets_discarded)

    @packets_discarded.setter
    def packets_discarded(self, value: int) -> None:
        self.c_stream.packets_discarded = value

    @property
    def packets_retransmitted(self) -> int:
        return int(self.c_stream.packets_retransmitted)

    @packets_retransmitted.setter
    def packets_retransmitted(self, value: int) -> None:
        self.c_stream.packets_retransmitted = value

    @property
    def packets_repaired(self) -> int:
        return int(self.c_stream.packets_repaired)

    @packets_repaired.setter
    def packets_repaired(self, value: int) -> None:
        self.c_stream.packets_repaired = value

    @property
    def clock_rate(self) -> int:
        return self._clock_rate

    @clock_rate.setter
    def clock_rate(self, value: int) -> None:
        self.c_stream.clock_rate = _c_clock_rate(value)
        self._clock_rate = value

    @property
    def media_packet_count(self) -> int:
        """Media packets only (not RTX): the base of loss figures."""
        return int(self.c_stream.media_packet_count)

    @property
    def byte_count(self) -> int:
        return int(self.c_stream.bytes)

    def bitrate(self, now: int) -> int:
        return int(lib.mw_recv_stream_bitrate(self.c_stream, now))

    @property
    def jitter(self) -> float:
        """RFC 3550 A.8, in RTP timestamp units."""
        return float(self.c_stream.jitter)

    @property
    def max_packet_ts(self) -> int:
        """The unwrapped highest RTP timestamp (+ 2^32, so never negative)."""
        return int(self.c_stream.max_packet_ts)

    @property
    def max_packet_ms(self) -> int:
        """When the highest RTP timestamp came."""
        return int(self.c_stream.max_packet_ms)

    @property
    def expected_packets(self) -> int:
        c = self.c_stream
        if not c.started:
            return 0
        return int(c.expected_offset + c.max_seq - c.base_seq + 1)

    @property
    def extended_highest_seq(self) -> int:
        """RFC 3550: cycles << 16 | highest sequence number, 32 bits."""
        c = self.c_stream
        return int(c.max_seq) & _U32 if c.started else 0

    @property
    def deadline(self) -> int | None:
        """When the inactivity timer fires (``now >= deadline``: call :meth:`on_timeout`); None
        without an inactivity check, while paused and while inactive."""
        c = self.c_stream
        if c.inactivity_timeout_ms < 0 or c.paused or c.inactive:
            return None
        return int(c.last_activity_ms + c.inactivity_timeout_ms)

    # -- the score, settled before use --------------------------------------------------------

    def _is_inactive(self) -> bool:
        return bool(self.c_stream.inactive)

    def _settle(self) -> None:
        """Apply what the C recorded when a packet ended an inactivity: the score back to 10
        at that packet's time (clearing the flag first: _reset_score reads the score)."""
        c = self.c_stream
        if c.reactivated:
            c.reactivated = 0
            self._reset_score(10, int(c.reactivated_ms))

    @property
    def score(self) -> int:
        self._settle()
        return self._score_value

    @score.setter
    def score(self, value: int) -> None:
        self._score_value = value

    @property
    def active_since_ms(self) -> int:
        self._settle()
        return self._active_since

    @active_since_ms.setter
    def active_since_ms(self, value: int) -> None:
        self._active_since = value

    def take_score_change(self) -> int | None:
        self._settle()
        return super().take_score_change()

    # -- per packet: one C call each -------------------------------------------------------------

    def receive_packet(self, seq: int, timestamp: int, size: int, payload_length: int,
                       now: int) -> bool:
        """A media packet (``size``: whole packet bytes). False if its sequence number is
        invalid (discarded, RFC 3550 A.1). Padding-only packets count for jitter only."""
        return _receive(self.c_stream, seq, timestamp, size, payload_length, now) != 0

    def receive_rtx_packet(self, seq: int, timestamp: int, now: int) -> bool:
        """An RTX packet, decoded to the original ``seq``/``timestamp``; counts it as
        retransmitted if valid. Then feed the NACK generator and, if it was NACKed, call
        :meth:`rtx_packet_repaired`."""
        return _receive_rtx(self.c_stream, seq, timestamp, now) != 0

    def rtx_packet_repaired(self, size: int, payload_length: int, now: int) -> None:
        """An RTX packet brought a packet we had NACKed."""
        _rtx_repaired(self.c_stream, size, payload_length, now)

    def nacked_packet_received(self) -> None:
        """Without RTX: a media packet we had NACKed arrived (retransmitted and repaired)."""
        _nacked_received(self.c_stream)

    # -- the rest ---------------------------------------------------------------------------------

    def pause(self) -> None:
        self._settle()
        lib.mw_recv_stream_pause(self.c_stream)

    def resume(self, now: int) -> None:
        self._settle()
        lib.mw_recv_stream_resume(self.c_stream, now)

    def on_timeout(self, now: int) -> None:
        """Inactivity timer: no media for the timeout, the score drops to 0."""
        self._settle()  # a reactivation before this timeout comes first
        if lib.mw_recv_stream_timeout(self.c_stream, now):
            self._reset_score(0, now)

class SendStreamStats(_StreamStats):
    """A stream we send (a consumer's)."""

    __slots__ = ("_lost_prior_score", "_repaired_prior_score", "_retransmitted_prior_score",
                 "_sent_prior_score", "last_rr_compact", "last_rr_received_ms",
                 "last_sr_ntp_ms", "last_sr_rtp_timestamp", "max_packet_ms", "max_packet_ts")

    def __init__(self, ssrc: int, clock_rate: int, now: int, *, kind: str = "video",
                 mime_type: str = "", rid: str | None = None, rtx_ssrc: int | None = None,
                 bitrate_window_ms: int = BITRATE_WINDOW_MS) -> None:
        super().__init__(ssrc, clock_rate, now, kind, mime_type, rid, rtx_ssrc, bitrate_window_ms)
        self.max_packet_ts: int | None = None  # unwrapped highest RTP timestamp sent
        self.max_packet_ms = 0
        self._sent_prior_score = self._lost_prior_score = 0
        self._repaired_prior_score = self._retransmitted_prior_score = 0
        self.last_sr_ntp_ms: int | None = None
        self.last_sr_rtp_timestamp = 0
        self.last_rr_received_ms: int | None = None
        self.last_rr_compact = 0

    def record_sent(self, packets: int, size: int, timestamp: int, now: int) -> None:
        """``packets`` packets of ``size`` bytes in total were sent, the highest RTP timestamp
        among them being ``timestamp`` (one call per packet, or per batch from the C path)."""
        if self.max_packet_ts is None:
            self.max_packet_ts = timestamp + (1 << TIMESTAMP_BITS)
            self.max_packet_ms = now
        else:
            ts = unwrap(timestamp, self.max_packet_ts, TIMESTAMP_BITS)
            if ts > self.max_packet_ts:
                self.max_packet_ts = ts
                self.max_packet_ms = now
        self.packet_count += packets
        self._rate.update(size, now)

    def record_retransmitted(self, first_time: bool) -> None:
        """A packet was retransmitted for a NACK; the first time, it also counts as repaired
        (``StoredPacket.sent_times == 1``)."""
        self.packets_retransmitted += 1
        if first_time:
            self.packets_repaired += 1

    def receive_nack(self, requested_packets: int) -> None:
        self.nack_count += 1
        self.nack_packet_count += requested_packets

    def receive_pli(self) -> None:
        self.pli_count += 1

    def receive_fir(self) -> None:
        self.fir_count += 1

    def receive_report_block(self, block: ReportBlock, now: int) -> None:
        """The peer's RR block about this stream: RTT (now - LSR - DLSR), losses, score."""
        if block.lsr:
            self.rtt_ms = _rtt_from_compact(now, block.lsr, block.dlsr)
        self.packets_lost = block.packets_lost
        self.fraction_lost = block.fraction_lost
        self._update_score(block.packets_lost, now)

    def sender_report(self, now: int) -> SenderReport | None:
        """Our SR for this stream, None before the first packet. The RTP timestamp is the
        highest sent, advanced by the time since it was sent."""
        if self.max_packet_ts is None or self.packet_count == 0:
            return None
        rtp_ts = (self.max_packet_ts + (now - self.max_packet_ms) * self.clock_rate // 1000) & _U32
        self.last_sr_ntp_ms = now
        self.last_sr_rtp_timestamp = rtp_ts
        return SenderReport(self.ssrc, ms_to_ntp(now), rtp_ts, self.packet_count & _U32,
                            self.byte_count & _U32)

    def receive_rrt(self, ntp_timestamp: int, now: int) -> None:
        """An XR Receiver Reference Time from the peer, to answer with a DLRR."""
        self.last_rr_received_ms = now
        self.last_rr_compact = compact_ntp(ntp_timestamp)

    def dlrr(self, now: int) -> DlrrSubBlock | None:
        """The XR DLRR sub-block answering the last RRT, or None if none came."""
        if self.last_rr_received_ms is None:
            return None
        return DlrrSubBlock(self.ssrc, self.last_rr_compact,
                            ms_to_compact(now - self.last_rr_received_ms) & _U32)

    def _update_score(self, total_lost: int, now: int) -> None:
        sent = self.packet_count - self._sent_prior_score
        self._sent_prior_score = self.packet_count
        total_lost = max(0, total_lost)
        lost = max(0, total_lost - self._lost_prior_score)
        self._lost_prior_score = total_lost
        repaired = self.packets_repaired - self._repaired_prior_score
        self._repaired_prior_score = self.packets_repaired
        retransmitted = self.packets_retransmitted - self._retransmitted_prior_score
        self._retransmitted_prior_score = self.packets_retransmitted
        if sent <= 0:
            self._add_score_sample(10, now)
            return
        lost = min(lost, sent)
        repaired = min(repaired, lost)
        self._add_score_sample(_score_sample(sent, lost, repaired, retransmitted), now)

    def stats(self, now: int) -> dict[str, Any]:
        return self._base_stats(now, "outbound-rtp")
