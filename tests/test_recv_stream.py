"""The C receive-stream statistics (cffi_build/recv_stream.c, through the C-backed
``RecvStreamStats``) against the pure-Python reference (tests/reference/recv_stream.py).

Generated call sequences (hypothesis) go to both: media packets in order, lost, reordered,
duplicated, across the 16-bit wraparound, with big jumps (discarded) and restarts (re-sync),
padding-only packets, RTX packets (valid or not, repaired or not), NACKed packets without RTX,
pauses and resumes, the inactivity timer, Sender Reports (score samples), RR blocks and
getStats, on a clock that stands still, creeps, jumps forward (past the bitrate window and the
inactivity timeouts) and steps back. Some packets go straight to the C entry points through
``c_stream``, as the C receive path will call them. After every call, everything the two
expose must be equal: the jitter to the last bit. The one allowed difference is the bitrate
once a clock going back has made the reference's deque longer than the C's ring (window + 1
entries; recv_stream.h says what the C does then), which the worker's monotonic clock never
does: from there on the bitrate is not compared (the byte count still is).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.reference.recv_stream import RefRecvStreamStats
from worker._fast._lib import ffi, lib
from worker.rtp_stream_stats import (
    INACTIVITY_TIMEOUT_MS,
    MAX_RECV_BITRATE_WINDOW_MS,
    RecvStreamStats,
    ms_to_ntp,
)

Stats = RecvStreamStats | RefRecvStreamStats
Op = tuple[Any, ...]

INT64_MAX = (1 << 63) - 1
INT64_MIN = -(1 << 63)
U32 = 0xFFFFFFFF


def pair(clock_rate: int = 90000, now: int = 0, **kwargs: Any) -> tuple[RecvStreamStats,
                                                                        RefRecvStreamStats]:
    """The C-backed stream and the reference, built alike."""
    args: dict[str, Any] = {"kind": "video", "mime_type": "video/VP8", **kwargs}
    return (RecvStreamStats(1234, clock_rate, now, **args),
            RefRecvStreamStats(1234, clock_rate, now, **args))


def snapshot(stats: Stats, now: int, bitrate: bool = True) -> dict[str, Any]:
    """Everything observable, read in the same order on both (some reads change state alike:
    the bitrate drops old entries, take_score_change clears the flag)."""
    return {
        "packet_count": stats.packet_count,
        "media_packet_count": stats.media_packet_count,
        "byte_count": stats.byte_count,
        "bitrate": stats.bitrate(now) if bitrate else None,
        "expected_packets": stats.expected_packets,
        "extended_highest_seq": stats.extended_highest_seq,
        "jitter": stats.jitter.hex(),  # exact equality, readable when it fails
        "max_packet_ts": stats.max_packet_ts,
        "max_packet_ms": stats.max_packet_ms,
        "packets_discarded": stats.packets_discarded,
        "packets_retransmitted": stats.packets_retransmitted,
        "packets_repaired": stats.packets_repaired,
        "packets_lost": stats.packets_lost,
        "fraction_lost": stats.fraction_lost,
        "deadline": stats.deadline,
        "score": stats.score,
        "active_since_ms": stats.active_since_ms,
        "score_change": stats.take_score_change(),
    }


def assert_same(c: RecvStreamStats, ref: RefRecvStreamStats, now: int, context: Any,
                bitrate: bool = True) -> None:
    got, want = snapshot(c, now, bitrate), snapshot(ref, now, bitrate)
    assert got == want, (context, {k: (got[k], want[k]) for k in got if got[k] != want[k]})


# ---- the generated sequences -----------------------------------------------------------------

# Sequence number steps from the last media packet: mostly the next one, then the A.1 edges
# (MAX_DROPOUT 3000, 2^16 - MAX_MISORDER 64036), reordering, duplicates, random jumps.
SEQ_STEPS = st.one_of(
    st.just(1), st.just(1), st.just(1), st.just(1),
    st.sampled_from([0, -1, -2, 2, 3, 2998, 2999, 3000, 3001, 32768, 64035, 64036, 64037,
                     65535, -1499, -1500, -1501]),
    st.integers(-100, 100),
    st.integers(0, 0xFFFF),
)
# Timestamp steps: frames at the usual rates, repeats, going back, the 2^31 edge, anything.
TS_STEPS = st.one_of(
    st.sampled_from([160, 960, 3000, 3003]),
    st.just(0),
    st.integers(-5000, 5000),
    st.sampled_from([(1 << 31) - 1, 1 << 31, (1 << 31) + 1, -(1 << 31), 1 << 30]),
    st.integers(0, U32),
)
# Clock steps: standing, creeping, around the bitrate window and the inactivity timeouts, far,
# and back (which the worker's monotonic clock never does).
DT = st.one_of(
    st.just(0), st.just(1), st.integers(0, 40), st.just(20),
    st.sampled_from([999, 1000, 1001, 1499, 1500, 1501, 4999, 5000, 5001, 100_000, 10**9]),
    st.integers(-100, -1),
)
SIZES = st.one_of(st.integers(12, 1500), st.sampled_from([0, 12, U32]))
PAYLOADS = st.one_of(st.just(0), st.integers(1, 1400))

# A media op is a burst: `count` packets, each with the same steps (a run in order, a run of
# losses, a clock standing still...).
MEDIA = st.tuples(st.just("media"), SEQ_STEPS, TS_STEPS, SIZES, PAYLOADS, DT, st.booleans(),
                  st.one_of(st.just(1), st.integers(1, 40)))
RTX = st.tuples(st.just("rtx"), st.one_of(st.integers(-60, 0), SEQ_STEPS), TS_STEPS, DT,
                st.booleans(), SIZES, PAYLOADS, st.booleans())
OTHER = st.one_of(
    st.tuples(st.just("nacked")),
    st.tuples(st.sampled_from(["pause", "resume", "tick", "timeout", "sr", "stats"]), DT),
    st.tuples(st.just("report"), DT, st.sampled_from([0, 0, 1, 64, 255])),
)
# Silence long enough for the inactivity timer (1.5 s, 5 s with DTX), then the timer runs.
IDLE = st.tuples(st.just("tick"), st.sampled_from([1500, 1501, 5000, 5001, 20_000]))
# Media four times in seven (one_of would take each distinct strategy once).
OPS = st.lists(st.integers(0, 6).flatmap(
    lambda k: MEDIA if k < 4 else RTX if k == 4 else OTHER if k == 5 else IDLE), max_size=60)


class Rig:
    """Both streams, the generated stream's cursor (the last media sequence number, timestamp
    and time), and whether the bitrates can still be compared: only while the reference's
    deque fits the C's ring, which a clock going back can overflow (see recv_stream.h)."""

    def __init__(self, c: RecvStreamStats, ref: RefRecvStreamStats, seq: int, timestamp: int,
                 now: int, window: int) -> None:
        self.c = c
        self.ref = ref
        self.seq = seq
        self.timestamp = timestamp
        self.now = now
        self.ring_size = window + 1
        self.bitrate_exact = True

    def counted(self) -> None:
        """After a packet that may have made a bitrate entry."""
        if len(self.ref._rate._items) > self.ring_size:
            self.bitrate_exact = False  # from here on, for good

    def check(self, context: Any) -> None:
        assert_same(self.c, self.ref, self.now, context, self.bitrate_exact)

    def run(self, op: Op) -> None:
        """Apply one generated call to both streams and compare what it returned."""
        c, ref = self.c, self.ref
        kind = op[0]
        if kind == "media":
            _, seq_step, ts_step, size, payload, dt, direct, count = op
            for _ in range(count):
                self.now += dt
                self.seq = (self.seq + seq_step) & 0xFFFF
                self.timestamp = (self.timestamp + ts_step) & U32
                args = (self.seq, self.timestamp, size, payload, self.now)
                got = (lib.mw_recv_stream_receive(c.c_stream, *args) == 1 if direct
                       else c.receive_packet(*args))
                assert got == ref.receive_packet(*args)
                self.counted()
                if count > 1:
                    self.check((op, "burst"))
        elif kind == "rtx":
            _, seq_step, ts_step, dt, repaired, size, payload, direct = op
            self.now += dt
            seq = (self.seq + seq_step) & 0xFFFF
            timestamp = (self.timestamp + ts_step) & U32
            if direct:
                got = lib.mw_recv_stream_receive_rtx(c.c_stream, seq, timestamp, self.now) == 1
            else:
                got = c.receive_rtx_packet(seq, timestamp, self.now)
            want = ref.receive_rtx_packet(seq, timestamp, self.now)
            assert got == want
            if want and repaired:
                if direct:
                    lib.mw_recv_stream_rtx_repaired(c.c_stream, size, payload, self.now)
                else:
                    c.rtx_packet_repaired(size, payload, self.now)
                ref.rtx_packet_repaired(size, payload, self.now)
                self.counted()
        elif kind == "nacked":
            c.nacked_packet_received()
            ref.nacked_packet_received()
        elif kind == "report":
            _, dt, worst = op
            self.now += dt
            assert c.report_block(self.now, worst) == ref.report_block(self.now, worst)
        else:
            self.now += op[1]
            self.run_timed(kind, self.now)

    def run_timed(self, kind: str, now: int) -> None:
        c, ref = self.c, self.ref
        if kind == "pause":
            c.pause()
            ref.pause()
        elif kind == "resume":
            c.resume(now)
            ref.resume(now)
        elif kind == "tick":  # as Producer._tick
            for stats in (c, ref):
                deadline = stats.deadline
                if deadline is not None and now >= deadline:
                    stats.on_timeout(now)
        elif kind == "timeout":
            c.on_timeout(now)
            ref.on_timeout(now)
        elif kind == "sr":
            ntp = ms_to_ntp(now) if now >= 0 else 0
            c.receive_sender_report(ntp, self.timestamp, now)
            ref.receive_sender_report(ntp, self.timestamp, now)
        else:
            got, want = c.stats(now), ref.stats(now)
            if not self.bitrate_exact:
                del got["bitrate"], want["bitrate"]
            assert got == want


@given(
    ops=OPS,
    clock_rate=st.sampled_from([8000, 48000, 90000, 90000, 0]),
    window=st.sampled_from([1000, 1000, 1000, 1, 2, 7, 100]),
    use_dtx=st.booleans(),
    inactivity_check=st.sampled_from([True, True, False]),
    rtx_ssrc=st.sampled_from([None, 4321]),
    first_seq=st.one_of(st.integers(0, 0xFFFF), st.sampled_from([0, 1, 65000, 65534, 65535])),
    first_ts=st.one_of(st.integers(0, U32), st.sampled_from([0, U32, U32 - 5000, 1 << 31])),
    start=st.one_of(st.sampled_from([0, 1, 1000, 10**6, 1 << 40]),
                    st.integers(-10**6, 10**12)),
    report_every_op=st.booleans(),
)
def test_matches_the_reference(ops: list[Op], clock_rate: int, window: int, use_dtx: bool,
                               inactivity_check: bool, rtx_ssrc: int | None, first_seq: int,
                               first_ts: int, start: int, report_every_op: bool) -> None:
    c, ref = pair(clock_rate, start, rtx_ssrc=rtx_ssrc, use_dtx=use_dtx,
                  inactivity_check=inactivity_check, bitrate_window_ms=window)
    # A media op steps from the cursor: start it one before the first sequence number.
    rig = Rig(c, ref, (first_seq - 1) & 0xFFFF, first_ts, start, window)
    rig.check("created")
    for index, op in enumerate(ops):
        rig.run(op)
        if report_every_op:
            assert c.report_block(rig.now) == ref.report_block(rig.now), (index, op)
        rig.check((index, op))


# ---- hand-made cases -------------------------------------------------------------------------


def test_c_stream_is_the_struct_the_c_path_feeds() -> None:
    """Packets given to the C entry points directly show in every Python figure."""
    c, ref = pair(48000, rtx_ssrc=99)
    assert ffi.typeof(c.c_stream) is ffi.typeof("struct mw_recv_stream *")
    for i in range(200):
        now = 20 * i + (i % 3)
        seq, ts = (65500 + i) & 0xFFFF, (U32 - 48000 + 960 * i) & U32
        if i % 17 == 5:
            continue  # lost
        assert lib.mw_recv_stream_receive(c.c_stream, seq, ts, 200, 180, now) == 1
        assert ref.receive_packet(seq, ts, 200, 180, now)
    assert lib.mw_recv_stream_receive_rtx(c.c_stream, 65505, 0, 4000) == 1
    assert ref.receive_rtx_packet(65505, 0, 4000)
    lib.mw_recv_stream_rtx_repaired(c.c_stream, 200, 180, 4000)
    ref.rtx_packet_repaired(200, 180, 4000)
    lib.mw_recv_stream_nacked_received(c.c_stream)
    ref.nacked_packet_received()
    assert_same(c, ref, 4000, "direct")
    assert c.stats(4000) == ref.stats(4000)
    assert c.report_block(4000) == ref.report_block(4000)
    assert c.extended_highest_seq == 65536 + (65500 + 199 - 65536)


def test_reactivation_is_applied_with_the_packet_time() -> None:
    """Inactive, then a packet through the C at 5000: the score read later (at 9000, or by
    take_score_change, stats, an SR or the timer) is 10 since 5000, as if Python had seen it."""
    for reader in ("score", "take", "stats", "sr", "timeout", "report"):
        c, ref = pair()
        for stats in (c, ref):
            stats.receive_packet(1, 0, 100, 90, 0)
            stats.on_timeout(INACTIVITY_TIMEOUT_MS)
            assert stats.score == 0
            assert stats.take_score_change() == 0
            assert stats.deadline is None
        assert lib.mw_recv_stream_receive(c.c_stream, 2, 90, 100, 90, 5000) == 1
        assert c.c_stream.reactivated == 1 and c.c_stream.reactivated_ms == 5000
        assert ref.receive_packet(2, 90, 100, 90, 5000)
        assert c.deadline == ref.deadline == 5000 + INACTIVITY_TIMEOUT_MS
        for stats in (c, ref):
            if reader == "score":
                assert stats.score == 10
            elif reader == "take":
                assert stats.take_score_change() == 10
            elif reader == "stats":
                assert stats.stats(9000)["score"] == 10
            elif reader == "sr":
                stats.receive_sender_report(ms_to_ntp(9000), 0, 9000)
            elif reader == "timeout":  # the reactivation comes before this second timeout
                stats.on_timeout(9000)
            else:
                stats.report_block(9000)
        assert c.c_stream.reactivated == 0
        assert_same(c, ref, 9000, reader)
        assert c.active_since_ms == 5000


def test_pause_resume_and_the_deadline() -> None:
    c, ref = pair(use_dtx=True, now=100)
    steps: list[tuple[str, int]] = [("pkt", 200), ("pause", 300), ("pkt", 400), ("resume", 500),
                                    ("timeout", 5499), ("timeout", 5500), ("resume", 6000),
                                    ("pause", 6100), ("pkt", 6200), ("resume", 6300),
                                    ("pkt", 6400), ("timeout", 11_400)]
    seq = 0
    for kind, now in steps:
        for stats in (c, ref):
            if kind == "pkt":
                assert stats.receive_packet(seq, seq * 960, 100, 90, now)
            elif kind == "pause":
                stats.pause()
            elif kind == "resume":
                stats.resume(now)
            else:
                stats.on_timeout(now)
        seq += kind == "pkt"
        assert_same(c, ref, now, (kind, now))
    assert c.deadline is None and c.score == 0  # timed out at 11 400


def test_extreme_clock_values() -> None:
    """Times near the int64 ends: the deadline beyond INT64_MAX never fires, the bitrate
    cutoff below INT64_MIN drops nothing, the jitter's now * clock_rate // 1000 is exact."""
    for start in (INT64_MIN, INT64_MIN + 1, -1, INT64_MAX - 2000, INT64_MAX - 1):
        c, ref = pair(90000, start, bitrate_window_ms=1000)
        times = [start, start, start + 1, start + 999, start + 1000, start + 1001]
        times = [t for t in times if INT64_MIN <= t <= INT64_MAX]
        for i, now in enumerate(times):
            assert c.receive_packet(i, (i * 3000 + 7) & U32, 500, 400, now) == \
                ref.receive_packet(i, (i * 3000 + 7) & U32, 500, 400, now)
            assert_same(c, ref, now, (start, i))
        for now in (times[-1], INT64_MAX):
            c.on_timeout(now)
            ref.on_timeout(now)
            assert_same(c, ref, now, (start, "timeout", now))


def test_many_wraparounds() -> None:
    """Steps of 2999 (the biggest accepted) wrap the 16-bit space every 22 packets."""
    c, ref = pair(8000)
    seq = ts = 0
    for i in range(2000):
        seq = (seq + 2999) & 0xFFFF
        ts = (ts + 0x7FFF0000) & U32
        assert c.receive_packet(seq, ts, 100, 80, i)
        assert ref.receive_packet(seq, ts, 100, 80, i)
    assert_same(c, ref, 2000, "wraps")
    assert c.expected_packets == 2999 * 1999 + 1
    assert c.max_packet_ts == ref.max_packet_ts > 1 << 40


@pytest.mark.parametrize("window", [1, 2, 7, 1000])
def test_bitrate_of_a_packet_every_ms(window: int) -> None:
    """On a clock that never goes back, window + 1 entries always suffice: a packet every ms
    keeps the ring full, and every later reading matches the reference."""
    c = RecvStreamStats(1, 90000, 0, bitrate_window_ms=window)
    ref = RefRecvStreamStats(1, 90000, 0, bitrate_window_ms=window)
    for now in range(3 * window + 5):
        assert c.receive_packet(now & 0xFFFF, now, 100 + now, 90, now)
        assert ref.receive_packet(now & 0xFFFF, now, 100 + now, 90, now)
        assert len(ref._rate._items) <= window + 1
        for later in (now, now + 1, now + window // 2):
            assert c.bitrate(later) == ref.bitrate(later), (now, later)
    assert c.c_stream.ring_count == len(ref._rate._items)


def test_a_full_ring_on_a_clock_going_back() -> None:
    """A 2 ms window has 3 ring entries; a clock stepping back needs more: the C then adds the
    bytes to the newest entry (recv_stream.h), where the Python grows its deque. The byte count
    stays exact; the bitrate parts when those bytes leave the window with that entry. (The
    worker's clock, the loop's monotonic time, never goes back.)"""
    c = RecvStreamStats(1, 90000, 0, bitrate_window_ms=2)
    ref = RefRecvStreamStats(1, 90000, 0, bitrate_window_ms=2)
    for seq, now in enumerate([10, 9, 10, 11]):
        assert c.receive_packet(seq, seq, 100, 90, now)
        assert ref.receive_packet(seq, seq, 100, 90, now)
    assert c.byte_count == ref.byte_count == 400
    assert c.c_stream.ring_count == 3
    assert [(c._ring[k].ms, c._ring[k].bytes) for k in range(3)] == [(10, 100), (9, 100),
                                                                      (10, 200)]
    assert c.bitrate(12) == ref.bitrate(12) == 400 * 8000 // 2  # all inside the window
    assert ref.bitrate(13) == 100 * 8000 // 2  # the Python keeps the entry at 11
    assert c.bitrate(13) == 0  # the C had its bytes in the entry at 10
    assert c.bitrate(100) == ref.bitrate(100) == 0


def test_arguments_checked() -> None:
    with pytest.raises(ValueError, match="bitrate window"):
        RecvStreamStats(1, 90000, 0, bitrate_window_ms=0)
    with pytest.raises(ValueError, match="bitrate window"):
        RecvStreamStats(1, 90000, 0, bitrate_window_ms=MAX_RECV_BITRATE_WINDOW_MS + 1)
    with pytest.raises(ValueError, match="clock rate"):
        RecvStreamStats(1, 1 << 32, 0)
    stats = RecvStreamStats(1, -5, 0)  # no jitter, as the Python's clock_rate <= 0
    assert stats.receive_packet(1, 0, 100, 90, 0) and stats.receive_packet(2, 5000, 100, 90, 7)
    assert stats.jitter == 0.0 and stats.clock_rate == -5
    stats.clock_rate = 8000
    assert stats.c_stream.clock_rate == 8000
    # The C refuses what the wrapper never gives, writing nothing.
    s = ffi.new("struct mw_recv_stream *")
    ring = ffi.new("struct mw_recv_rate_item[]", 4)
    ffi.memmove(s, b"\xab" * ffi.sizeof(s[0]), ffi.sizeof(s[0]))
    before = bytes(ffi.buffer(s))
    bad = [(s, ffi.NULL, 4, 3, 8000, -1, 0), (s, ring, 0, 3, 8000, -1, 0),
           (s, ring, 4, 0, 8000, -1, 0), (s, ring, 4, 3, 8000, -2, 0),
           (ffi.NULL, ring, 4, 3, 8000, -1, 0)]
    for args in bad:
        assert lib.mw_recv_stream_init(*args) == lib.MW_RECV_STREAM_ERR_ARGS
    assert bytes(ffi.buffer(s)) == before
    assert lib.mw_recv_stream_init(s, ring, 4, 3, 8000, -1, 0) == lib.MW_RECV_STREAM_OK
    assert s.bad_seq == lib.MW_RECV_STREAM_NO_BAD_SEQ and s.ring == ring
