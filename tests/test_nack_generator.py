"""NackGenerator on a fake clock: gaps, retries and their limit, the RTT, the send delay, the
1,000-entry cap and its key-frame request, old packets, recovered packets, wraparound; and a
sender/receiver pair over a lossy link with the RetransmissionBuffer answering."""

from __future__ import annotations

import itertools
import random

from worker.nack_generator import (
    NACK_MAX_RETRIES,
    NACK_TIMER_INTERVAL_MS,
    PRODUCER_SEND_NACK_DELAY_MS,
    NackGenerator,
    NackOutput,
)
from worker.retransmission_buffer import RetransmissionBuffer


def feed(gen: NackGenerator, seqs: list[int], now: int = 0,
         key_frames: frozenset[int] = frozenset()) -> list[NackOutput]:
    return [gen.receive(seq, seq in key_frames, False, now) for seq in seqs]


def test_no_loss_no_nack() -> None:
    gen = NackGenerator()
    outs = feed(gen, list(range(100)))
    assert all(out == NackOutput() for out in outs)
    assert gen.deadline is None
    assert len(gen) == 0


def test_a_gap_is_nacked_at_once_and_the_timer_starts() -> None:
    gen = NackGenerator()
    feed(gen, [1, 2], now=0)
    out = gen.receive(5, False, False, now=10)
    assert out.nacks == (3, 4)
    assert not out.key_frame_required
    assert gen.deadline == 10 + NACK_TIMER_INTERVAL_MS
    assert gen.pending == [3, 4]


def test_late_packet_leaves_the_list_and_reports_it_was_nacked() -> None:
    gen = NackGenerator()
    feed(gen, [1, 2, 5])
    out = gen.receive(3, False, False, now=20)
    assert out == NackOutput(was_nacked=True)
    assert gen.pending == [4]
    assert gen.receive(3, False, False, now=21) == NackOutput()  # a duplicate: nothing


def test_recovered_packet_is_removed() -> None:
    gen = NackGenerator()
    feed(gen, [1, 2, 6])
    assert gen.receive(4, False, True, now=30).was_nacked
    assert gen.pending == [3, 5]


def test_recovered_ahead_of_the_highest_is_never_nacked() -> None:
    gen = NackGenerator()
    feed(gen, [1])
    assert gen.receive(3, False, True, now=0) == NackOutput()  # RTX brought 3 before 2
    out = gen.receive(5, False, False, now=1)
    assert out.nacks == (2, 4)


def test_retries_follow_the_rtt_and_stop_after_ten() -> None:
    gen = NackGenerator()
    feed(gen, [1])
    sent_at = [0]
    assert gen.receive(3, False, False, now=0).nacks == (2,)
    now = 0
    while gen.deadline is not None:
        now = gen.deadline
        if gen.on_timeout(now):
            sent_at.append(now)
    assert len(sent_at) == NACK_MAX_RETRIES
    # 40 ms timer, 100 ms default RTT: asked again every 120 ms.
    assert [b - a for a, b in itertools.pairwise(sent_at)] == [120] * 9
    assert len(gen) == 0
    assert gen.on_timeout(now + 1000) == []


def test_known_rtt_shortens_the_retries() -> None:
    gen = NackGenerator()
    gen.update_rtt(30.0)
    assert gen.rtt_ms == 30
    feed(gen, [1, 3])
    assert gen.on_timeout(40) == [2]  # the timer is the limit now
    assert gen.on_timeout(79) == []  # early call: not due yet
    assert gen.on_timeout(80) == [2]
    gen.update_rtt(0)
    assert gen.rtt_ms == 100


def test_producer_send_delay_waits_for_reordering() -> None:
    gen = NackGenerator(send_nack_delay_ms=PRODUCER_SEND_NACK_DELAY_MS)
    feed(gen, [1], now=0)
    assert gen.receive(4, False, False, now=0).nacks == ()
    assert gen.receive(2, False, False, now=5) == NackOutput()  # arrived late, never asked
    assert gen.receive(5, False, False, now=9).nacks == ()
    assert gen.receive(6, False, False, now=10).nacks == (3,)


def test_send_delay_entries_go_out_on_the_timer() -> None:
    gen = NackGenerator(send_nack_delay_ms=10)
    feed(gen, [1], now=0)
    gen.receive(3, False, False, now=0)
    assert gen.on_timeout(40) == [2]


def test_wraparound() -> None:
    gen = NackGenerator()
    feed(gen, [65533, 65534])
    assert gen.receive(2, False, False, now=0).nacks == (65535, 0, 1)
    assert gen.receive(0, False, False, now=1).was_nacked
    assert gen.pending == [65535, 1]


def test_packets_older_than_10000_are_ignored_and_forgotten() -> None:
    gen = NackGenerator()
    feed(gen, [1], key_frames=frozenset({1}))
    assert gen.receive(3, False, False, now=0).nacks == (2,)
    assert gen.receive(3, False, False, now=0) == NackOutput()  # the highest again: nothing
    assert gen.pending == [2]
    for seq in range(4, 10_003):
        gen.receive(seq, False, False, now=0)
    assert gen.pending == [2]  # 10,000 behind the highest: still kept
    gen.receive(10_003, False, False, now=0)
    assert gen.pending == []  # more than 10,000 behind: forgotten
    assert gen.receive(2, False, False, now=0) == NackOutput()
    # The key frame at 1 is forgotten too: an overflow now finds none and clears the list.
    assert gen.receive(11_500, False, False, now=0).key_frame_required


def test_recovered_packets_are_forgotten_after_10000() -> None:
    gen = NackGenerator()
    feed(gen, [1])
    gen.receive(5, False, True, now=0)  # recovered ahead of the highest
    for seq in range(2, 10_010):
        if seq != 5:
            gen.receive(seq, False, False, now=0)
    gen.receive(10_010, False, True, now=0)  # purges 5 (more than 10,000 behind)
    assert gen.receive(10_012, False, False, now=0).nacks == (10_011,)


def test_overflow_trims_back_to_the_last_key_frame() -> None:
    gen = NackGenerator()
    feed(gen, [0])
    assert len(gen.receive(600, False, False, now=0).nacks) == 599
    gen.receive(601, True, False, now=0)  # a key frame
    out = gen.receive(1200, False, False, now=0)
    assert not out.key_frame_required
    assert out.nacks == tuple(range(602, 1200))
    assert gen.pending == list(range(602, 1200))  # everything before the key frame went


def test_overflow_trims_key_frame_by_key_frame() -> None:
    gen = NackGenerator()
    feed(gen, [0, 300, 900, 1000], key_frames=frozenset({300, 900}))
    assert len(gen) == 299 + 599 + 99
    out = gen.receive(1500, False, False, now=0)  # 499 more: trimming to 300 is not enough
    assert not out.key_frame_required
    assert gen.pending == list(range(901, 1000)) + list(range(1001, 1500))


def test_overflow_without_key_frame_clears_and_requests_one() -> None:
    gen = NackGenerator()
    feed(gen, [0, 600])
    out = gen.receive(1200, False, False, now=0)
    assert out == NackOutput(key_frame_required=True)
    assert len(gen) == 0
    assert gen.key_frames_required == 1
    # One gap larger than the cap does the same.
    assert gen.receive(2300, False, False, now=1).key_frame_required
    assert gen.key_frames_required == 2
    assert gen.receive(2302, False, False, now=2).nacks == (2301,)


def test_an_old_key_frame_that_trims_nothing_is_skipped() -> None:
    gen = NackGenerator()
    feed(gen, [0], key_frames=frozenset({0}))  # key frame older than every entry
    gen.receive(600, False, False, now=0)
    gen.receive(900, True, False, now=0)
    out = gen.receive(1500, False, False, now=0)
    assert not out.key_frame_required
    assert gen.pending == list(range(901, 1500))


def test_reset_forgets_everything() -> None:
    gen = NackGenerator()
    feed(gen, [1, 5])
    gen.reset()
    assert len(gen) == 0
    assert gen.deadline is None
    assert gen.receive(100, False, False, now=0) == NackOutput()  # first packet again


def test_lossy_link_recovers_every_packet_through_rtx() -> None:
    """Sender stores 2,000 packets in a retransmission buffer; 10% of media and 10% of RTX are
    lost on the way; NACKs (not lost) are answered from the buffer. Every packet arrives."""
    rng = random.Random(5)
    released: list[int] = []
    buffer: RetransmissionBuffer[int] = RetransmissionBuffer(90000, 2000, released.append)
    gen = NackGenerator(send_nack_delay_ms=PRODUCER_SEND_NACK_DELAY_MS)
    gen.update_rtt(40)
    received: set[int] = set()
    in_flight: list[tuple[int, int, bool]] = []  # (arrival ms, seq, is_rtx)
    one_way_ms = 20
    lost_media = resent = 0

    def answer(nacks: list[int] | tuple[int, ...], now: int) -> None:
        nonlocal resent
        for seq in nacks:
            item = buffer.resend(seq, now + one_way_ms, rtt_ms=2 * one_way_ms)
            if item is None:
                continue
            resent += 1
            if rng.random() > 0.10:
                in_flight.append((now + 2 * one_way_ms, item.sequence_number, True))

    now = 0
    while now < 2000 * 5 + 3000:
        if now % 5 == 0 and now // 5 < 2000:  # the sender sends one packet every 5 ms
            i = now // 5
            seq = (60000 + i) & 0xFFFF
            buffer.insert(seq, i * 450, i, 1000)
            if rng.random() > 0.10 or i == 1999:  # a loss at the very end cannot be seen
                in_flight.append((now + one_way_ms, seq, False))
            else:
                lost_media += 1
        for arrival, seq, rtx in sorted(p for p in in_flight if p[0] == now):
            in_flight.remove((arrival, seq, rtx))
            received.add(seq)
            answer(gen.receive(seq, False, rtx, now).nacks, now)
        if gen.deadline is not None and now >= gen.deadline:
            answer(gen.on_timeout(now), now)
        now += 1
    assert received == {(60000 + i) & 0xFFFF for i in range(2000)}
    assert buffer.discarded == 0
    assert lost_media > 150
    assert resent > lost_media  # lost retransmissions were asked for again
    assert len(gen) == 0
    buffer.close()
    assert sorted(released) == list(range(2000))
