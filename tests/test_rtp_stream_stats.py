"""Stream statistics on a fake clock: counters and bitrate, RFC 3550 sequence validation and
jitter, RR and SR fields, RTT from LSR/DLSR, and mediasoup's scores."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from worker._fast import DlrrSubBlock, ReportBlock
from worker.rtp_stream_stats import (
    INACTIVITY_TIMEOUT_DTX_MS,
    INACTIVITY_TIMEOUT_MS,
    RateCalculator,
    RecvStreamStats,
    SendStreamStats,
    compact_ntp,
    compact_to_ms,
    ms_to_compact,
    ms_to_ntp,
    ntp_to_ms,
)


def recv_stream(**kwargs: Any) -> RecvStreamStats:
    return RecvStreamStats(1234, 90000, 0, kind="video", mime_type="video/VP8", **kwargs)


def send_stream(**kwargs: Any) -> SendStreamStats:
    return SendStreamStats(5678, 90000, 0, kind="video", mime_type="video/VP8", **kwargs)


def receive(stats: RecvStreamStats, seqs: list[int], now: int | None = None) -> None:
    """Packets 20 ms apart (1800 units at 90 kHz), arriving on time unless ``now`` is given."""
    for seq in seqs:
        arrival = 20 * seq if now is None else now
        assert stats.receive_packet(seq & 0xFFFF, (seq * 1800) & 0xFFFFFFFF, 1200, 1100, arrival)


def test_ntp_helpers() -> None:
    assert ms_to_ntp(1500) == (1 << 32) | (1 << 31)
    assert ntp_to_ms(ms_to_ntp(1500)) == 1500
    assert ntp_to_ms(ms_to_ntp(123_456_789)) == 123_456_789
    assert compact_ntp((1 << 32) | (1 << 31)) == 0x18000
    assert ms_to_compact(1500) == 0x18000
    assert ms_to_compact(30) == 1966
    assert compact_to_ms(0x18000) == 1500.0


def test_rate_calculator_one_second_window() -> None:
    rate = RateCalculator(1000)
    for t in range(0, 1000, 10):
        rate.update(1000, t)
    assert rate.rate(990) == 800_000
    assert rate.rate(1000) == 800_000  # the entry at t=0 still counts at exactly 1 s
    assert rate.rate(1001) == 792_000
    assert rate.rate(3000) == 0
    assert rate.bytes == 100_000


def test_receive_counters_and_padding() -> None:
    stats = recv_stream()
    for i in range(50):
        assert stats.receive_packet(i, i * 3000, 1000, 900, now=i * 20)
    assert stats.receive_packet(50, 49 * 3000, 300, 0, now=1000)  # padding only
    assert (stats.packet_count, stats.byte_count, stats.media_packet_count) == (50, 50_000, 50)
    assert stats.bitrate(980) == 400_000
    assert stats.expected_packets == 51


def test_sequence_validation_and_resync() -> None:
    stats = recv_stream()
    receive(stats, list(range(100, 111)))
    assert stats.receive_packet(50, 0, 1200, 1100, 0)  # acceptable misorder
    assert not stats.receive_packet(5000, 0, 1200, 1100, 0)  # a big jump: discarded
    assert stats.packets_discarded == 1
    assert stats.expected_packets == 11
    assert stats.receive_packet(5001, 0, 1200, 1100, 0)  # the next one too: re-sync
    assert stats.expected_packets == 12  # keeps counting
    assert stats.receive_packet(5002, 0, 1200, 1100, 0)
    assert stats.expected_packets == 13
    assert stats.extended_highest_seq == 5002


def test_first_sequence_number_zero_counts_no_cycle() -> None:
    stats = recv_stream()
    receive(stats, [0, 1, 2])
    assert stats.expected_packets == 3
    assert stats.extended_highest_seq == 2


def test_jitter_of_a_stream_with_known_jitter() -> None:
    """8 kHz, 20 ms packets (160 units) arriving alternately on time and 5 ms late: every
    transit difference is 40 units, so J_k = 40 * (1 - (15/16)^k) (RFC 3550 A.8)."""
    stats = RecvStreamStats(1, 8000, 0, kind="audio", mime_type="audio/PCMU")
    for i in range(100):
        stats.receive_packet(i, 1000 + 160 * i, 172, 160, now=20 * i + (5 if i % 2 else 0))
    expected = 40 * (1 - (15 / 16) ** 99)
    assert stats.jitter == pytest.approx(expected, abs=1e-9)
    assert stats.report_block(2000).jitter == 39
    assert stats.stats(2000)["jitter"] == 39
    stats.pause()
    assert stats.jitter == 0.0


def test_jitter_survives_timestamp_wraparound() -> None:
    stats = RecvStreamStats(1, 8000, 0, kind="audio", mime_type="audio/PCMU")
    for i in range(50):
        stats.receive_packet(i, (0xFFFFF000 + 160 * i) & 0xFFFFFFFF, 172, 160, now=20 * i)
    assert stats.jitter == 0.0


def test_rr_fields_loss_and_wraparound() -> None:
    stats = recv_stream()
    seqs = [s for s in range(65530, 65536 + 11) if s not in (65533, 65536 + 4)]
    receive(stats, seqs)
    block = stats.report_block(now=1000)
    assert block == ReportBlock(1234, 30, 2, 65536 + 10, 0, 0, 0)  # round(2*256/17) = 30
    receive(stats, [s for s in range(65536 + 11, 65536 + 31) if s != 65536 + 20])
    block = stats.report_block(now=2000)
    assert (block.fraction_lost, block.packets_lost, block.highest_seq) == (13, 3, 65536 + 30)
    receive(stats, [65536 + 20], now=20 * (65536 + 40))  # late: the cumulative count drops
    block = stats.report_block(now=3000)
    assert (block.fraction_lost, block.packets_lost) == (0, 2)
    assert (stats.packets_lost, stats.fraction_lost) == (2, 0)


def test_fraction_lost_is_capped_and_worst_remote_is_used() -> None:
    stats = recv_stream()
    receive(stats, [1, 2, 3])
    stats.report_block(100)
    stats.receive_rtx_packet(20, 20 * 1800, 400)  # moves the highest seq; no media counted
    assert stats.report_block(500).fraction_lost == 255  # 17 of 17 lost: 256/256 capped
    receive(stats, list(range(21, 41)))
    block = stats.report_block(1000, worst_remote_fraction_lost=64)
    assert block.fraction_lost == 64
    assert block.packets_lost == 17 + (64 * 20 >> 8)
    assert stats.fraction_lost == 0


def test_lsr_and_dlsr_from_the_last_sender_report() -> None:
    stats = recv_stream()
    receive(stats, [1, 2, 3])
    ntp = ms_to_ntp(123_456_789)
    stats.receive_sender_report(ntp, 777, now=10_000)
    block = stats.report_block(now=10_500)
    seconds, fraction = 123_456, 789 * (1 << 32) // 1000
    assert block.lsr == ((seconds & 0xFFFF) << 16) | (fraction >> 16)
    assert block.dlsr == 32768  # 500 ms in 1/65536 s
    assert stats.last_sr_ntp_ms == 123_456_789
    assert stats.last_sr_rtp_timestamp == 777


def test_producer_rtt_from_xr_dlrr() -> None:
    stats = recv_stream()
    assert stats.receive_dlrr(0, 0, now=5000) is None
    lrr = compact_ntp(ms_to_ntp(4000))
    rtt = stats.receive_dlrr(lrr, ms_to_compact(100), now=4180)
    assert rtt == pytest.approx(80.0, abs=0.1)
    assert stats.stats(4180)["roundTripTime"] == rtt


def test_consumer_rtt_from_receiver_report() -> None:
    stats = send_stream()
    stats.record_sent(1, 1200, 1000, now=900)
    sr = stats.sender_report(now=1000)
    assert sr is not None
    # The peer holds our SR for 30 ms; its RR reaches us at 1100: RTT 70 ms.
    rr = ReportBlock(5678, 0, 0, 1, 0, compact_ntp(sr.ntp_timestamp), ms_to_compact(30))
    stats.receive_report_block(rr, now=1100)
    assert stats.rtt_ms == pytest.approx(70.0, abs=0.1)
    # An RR without LSR keeps the RTT; a negative one gives 0.
    stats.receive_report_block(ReportBlock(5678, 0, 0, 1, 0, 0, 0), now=1200)
    assert stats.rtt_ms == pytest.approx(70.0, abs=0.1)
    stats.receive_report_block(replace(rr, dlsr=ms_to_compact(500)), now=1100)
    assert stats.rtt_ms == 0.0


def test_rtt_across_the_compact_ntp_wraparound() -> None:
    stats = send_stream()
    stats.record_sent(1, 1200, 0, now=65_535_000)
    sr = stats.sender_report(now=65_535_900)  # 65535.9 s: compact NTP about to wrap
    assert sr is not None
    lsr = compact_ntp(sr.ntp_timestamp)
    stats.receive_report_block(ReportBlock(5678, 0, 0, 1, 0, lsr, ms_to_compact(50)),
                               now=65_536_100)
    assert stats.rtt_ms == pytest.approx(150.0, abs=0.1)


def test_sender_report_fields() -> None:
    stats = send_stream()
    assert stats.sender_report(now=0) is None
    stats.record_sent(1, 1200, 1000, now=100)
    stats.record_sent(1, 1200, 4000, now=133)
    stats.record_sent(10, 12_000, 3500, now=140)  # a batch whose highest ts is older
    sr = stats.sender_report(now=1133)
    assert sr is not None
    assert (sr.ssrc, sr.packet_count, sr.octet_count) == (5678, 12, 14_400)
    assert sr.rtp_timestamp == 4000 + 1000 * 90
    assert sr.ntp_timestamp == ms_to_ntp(1133)
    assert stats.bitrate(140) == 14_400 * 8
    assert stats.bitrate(1133) == 13_200 * 8  # the packet at 100 left the 1 s window
    assert stats.bitrate(2200) == 0


def test_xr_rrt_answered_with_dlrr() -> None:
    stats = send_stream()
    assert stats.dlrr(now=0) is None
    ntp = ms_to_ntp(50_000)
    stats.receive_rrt(ntp, now=1000)
    assert stats.dlrr(now=1250) == DlrrSubBlock(5678, compact_ntp(ntp), ms_to_compact(250))


def score_of(stats: RecvStreamStats) -> int:
    return stats.score  # a call, so mypy does not keep a narrowed attribute across calls


def deadline_of(stats: RecvStreamStats) -> int | None:
    return stats.deadline


def score_after_sr(stats: RecvStreamStats, now: int) -> int:
    stats.receive_sender_report(ms_to_ntp(now), 0, now)
    return stats.score


def test_perfect_stream_scores_10() -> None:
    stats = recv_stream()
    receive(stats, list(range(100)), now=100)
    assert score_after_sr(stats, 1000) == 10
    assert stats.take_score_change() is None
    assert score_after_sr(stats, 2000) == 10  # nothing expected in the interval: 10


def test_five_percent_loss_scores_8() -> None:
    stats = recv_stream()
    receive(stats, [s for s in range(100) if s not in (10, 20, 30, 40, 50)], now=100)
    assert score_after_sr(stats, 1000) == 8  # round(((95 - 5) / 95)^4 * 10)
    assert stats.take_score_change() == 8
    assert stats.take_score_change() is None
    send = send_stream()
    send.record_sent(100, 120_000, 0, now=100)
    send.receive_report_block(ReportBlock(5678, 13, 5, 99, 0, 0, 0), now=1000)
    assert send.score == 8  # round((95 / 100)^4 * 10)
    send.record_sent(100, 120_000, 0, now=1100)
    send.receive_report_block(ReportBlock(5678, 0, 5, 199, 0, 0, 0), now=2000)
    assert send.score == 9  # samples [8, 10]: (8 + 2 * 10) / 3


def test_repaired_packets_restore_the_score() -> None:
    stats = recv_stream(rtx_ssrc=4321)
    lost = (10, 20, 30, 40, 50)
    receive(stats, [s for s in range(100) if s not in lost], now=100)
    for seq in lost:
        assert stats.receive_rtx_packet(seq, seq * 3000, now=150)
        stats.rtx_packet_repaired(1200, 1100, now=150)
    assert score_after_sr(stats, 1000) == 10
    assert (stats.packets_retransmitted, stats.packets_repaired) == (5, 5)
    assert stats.packet_count == 100


def test_useless_retransmissions_weigh_less() -> None:
    stats = recv_stream(rtx_ssrc=4321)
    lost = (10, 20, 30, 40, 50)
    receive(stats, [s for s in range(100) if s not in lost], now=100)
    for seq in lost:
        stats.receive_rtx_packet(seq, seq * 3000, now=150)
        stats.receive_rtx_packet(seq, seq * 3000, now=160)  # a second, useless copy
        stats.rtx_packet_repaired(1200, 1100, now=150)
    # weight (95/100)^4 * 5/10, lost int(5 - 5 * 0.407) = 2: round((93/95)^4 * 10) = 9.
    assert score_after_sr(stats, 1000) == 9


@pytest.mark.parametrize("rtx_ssrc", [None, 4321])
def test_more_repaired_than_lost_scores_10(rtx_ssrc: int | None) -> None:
    stats = recv_stream(rtx_ssrc=rtx_ssrc)
    receive(stats, list(range(100)))
    for _ in range(5):  # late packets we had NACKed: repaired, yet nothing is lost
        stats.nacked_packet_received()
    assert score_after_sr(stats, 3000) == 10


def test_nothing_received_in_the_interval_scores_0() -> None:
    stats = recv_stream(rtx_ssrc=4321)
    assert stats.receive_rtx_packet(7, 0, now=10)  # only RTX: the range moved, no media
    assert stats.receive_rtx_packet(9, 0, now=20)
    assert score_after_sr(stats, 1000) == 0
    assert not stats.receive_rtx_packet(9000, 0, now=30)  # invalid sequence number


def test_nacked_packets_without_rtx_count_as_repaired() -> None:
    stats = recv_stream()
    receive(stats, list(range(10)))
    stats.nacked_packet_received()
    stats.nack_sent(3)
    stats.pli_sent()
    stats.fir_sent()
    out = stats.stats(0)
    assert (out["packetsRetransmitted"], out["packetsRepaired"], out["nackCount"],
            out["nackPacketCount"], out["pliCount"], out["firCount"]) == (1, 1, 1, 3, 1, 1)


def test_weighted_average_over_the_last_24_samples() -> None:
    send = send_stream()
    total_lost = 0

    def interval(lost_all: bool) -> int:
        nonlocal total_lost
        send.record_sent(100, 1000, 0, now=0)
        total_lost += 100 if lost_all else 0
        send.receive_report_block(ReportBlock(5678, 0, total_lost, 0, 0, 0, 0), now=0)
        return send.score

    assert interval(False) == 10
    assert interval(True) == 3  # [10, 0]: 10 / 3
    send = send_stream()
    total_lost = 0
    scores = [interval(True) for _ in range(24)]
    assert scores[-1] == 0
    assert interval(False) == 1  # 23 zeros and a 10: 240 / 300 = 0.8
    scores = [interval(False) for _ in range(23)]
    assert scores[-1] == 10  # the zeros have left the window (unbounded it would be 7)


def test_score_decays_to_0_on_inactivity_and_recovers() -> None:
    stats = recv_stream()
    receive(stats, list(range(10)), now=1000)
    assert deadline_of(stats) == 1000 + INACTIVITY_TIMEOUT_MS
    stats.on_timeout(2499)
    assert score_of(stats) == 10
    stats.on_timeout(2500)
    assert score_of(stats) == 0
    assert stats.take_score_change() == 0
    assert deadline_of(stats) is None
    assert score_after_sr(stats, 2600) == 0  # no sample while inactive
    receive(stats, [10], now=3000)
    assert score_of(stats) == 10
    assert stats.take_score_change() == 10
    assert stats.active_since_ms == 3000


def test_inactivity_timeouts_dtx_pause_and_disabled() -> None:
    dtx = recv_stream(use_dtx=True)
    assert deadline_of(dtx) == INACTIVITY_TIMEOUT_DTX_MS
    dtx.pause()
    assert deadline_of(dtx) is None
    receive(dtx, [1], now=100)
    assert deadline_of(dtx) is None  # paused: no timer
    dtx.resume(200)
    assert deadline_of(dtx) == 200 + INACTIVITY_TIMEOUT_DTX_MS
    off = recv_stream(inactivity_check=False)
    assert deadline_of(off) is None
    off.on_timeout(10**9)
    assert score_of(off) == 10


def test_stats_entries() -> None:
    recv = recv_stream(rid="h", rtx_ssrc=4321)
    receive(recv, list(range(10)), now=500)
    out = recv.stats(500)
    assert out["type"] == "inbound-rtp"
    assert (out["ssrc"], out["rid"], out["rtxSsrc"], out["kind"], out["mimeType"]) == (
        1234, "h", 4321, "video", "video/VP8")
    assert (out["packetCount"], out["byteCount"], out["bitrate"], out["score"]) == (
        10, 12_000, 96_000, 10)
    assert "roundTripTime" not in out
    send = send_stream()
    send.record_sent(3, 3000, 0, now=0)
    send.receive_nack(4)
    send.receive_pli()
    send.receive_fir()
    send.record_retransmitted(first_time=True)
    send.record_retransmitted(first_time=False)
    out = send.stats(0)
    assert out["type"] == "outbound-rtp"
    assert (out["packetCount"], out["byteCount"], out["nackCount"], out["nackPacketCount"],
            out["pliCount"], out["firCount"], out["packetsRetransmitted"],
            out["packetsRepaired"]) == (3, 3000, 1, 4, 1, 1, 2, 1)
