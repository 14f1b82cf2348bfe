"""KeyFrameRequestManager on a fake clock: merging, the 1,000 ms retry, keyFrameRequestDelay,
forced requests, FIR sequence numbers and the RTCP packet built."""

from __future__ import annotations

import pytest

from worker._fast import Fir, FirEntry, Pli
from worker.keyframe_requests import KEY_FRAME_RETRY_WAIT_MS, KeyFrameRequestManager


def run_until(manager: KeyFrameRequestManager, end: int) -> list[tuple[int, int]]:
    """Fire every timer up to ``end``; returns (time, ssrc) for each request sent."""
    sent = []
    while manager.deadline is not None and manager.deadline <= end:
        now = manager.deadline
        sent += [(now, ssrc) for ssrc in manager.on_timeout(now)]
    return sent


def test_requests_are_merged_while_pending() -> None:
    manager = KeyFrameRequestManager()
    assert manager.keyframe_needed(1111, now=0)
    assert not manager.keyframe_needed(1111, now=10)
    assert not manager.keyframe_needed(1111, now=20)
    assert manager.keyframe_needed(2222, now=20)  # another SSRC is independent
    assert manager.is_pending(1111)
    manager.keyframe_received(1111)
    assert not manager.is_pending(1111)
    assert manager.keyframe_needed(1111, now=30)
    assert manager.requests_sent == 3


def test_retry_after_1000_ms_without_key_frame_then_give_up() -> None:
    manager = KeyFrameRequestManager()
    assert manager.keyframe_needed(1111, now=0)
    assert manager.deadline == KEY_FRAME_RETRY_WAIT_MS
    assert manager.on_timeout(999) == []
    assert manager.on_timeout(1000) == [1111]  # asked again once
    assert manager.on_timeout(2000) == []  # no ask since: forgotten
    assert not manager.is_pending(1111)
    assert manager.deadline is None


def test_an_ask_while_pending_arms_another_retry() -> None:
    manager = KeyFrameRequestManager()
    manager.keyframe_needed(1111, now=0)
    assert run_until(manager, 1000) == [(1000, 1111)]
    assert not manager.keyframe_needed(1111, now=1500)
    assert run_until(manager, 5000) == [(2000, 1111)]
    assert not manager.is_pending(1111)


def test_key_frame_stops_the_retry() -> None:
    manager = KeyFrameRequestManager()
    manager.keyframe_needed(1111, now=0)
    manager.keyframe_received(1111)
    assert manager.deadline is None
    assert run_until(manager, 5000) == []
    manager.keyframe_received(3333)  # unknown SSRC: nothing


def test_delay_merges_a_storm_into_one_request_per_window() -> None:
    manager = KeyFrameRequestManager(key_frame_request_delay_ms=500)
    assert manager.keyframe_needed(1111, now=0)
    manager.keyframe_received(1111)
    # 50 consumers ask during the window: nothing is sent now.
    assert not any(manager.keyframe_needed(1111, now=t) for t in range(100, 150))
    assert manager.deadline == 500
    assert manager.on_timeout(500) == [1111]  # one replay when the window closes
    assert manager.deadline == 1000  # a new window (and the pending request's retry at 1500)
    assert manager.on_timeout(1000) == []  # nobody asked in the second window


def test_delay_window_without_asks_sends_nothing() -> None:
    manager = KeyFrameRequestManager(key_frame_request_delay_ms=300)
    assert manager.keyframe_needed(1111, now=0)
    manager.keyframe_received(1111)
    assert run_until(manager, 10_000) == []
    assert manager.deadline is None


def test_delay_replay_while_pending_arms_the_retry() -> None:
    manager = KeyFrameRequestManager(key_frame_request_delay_ms=200)
    assert manager.keyframe_needed(1111, now=0)
    assert not manager.keyframe_needed(1111, now=50)
    # At 200 the replay finds the request still pending: no send, but a retry is armed;
    # the pending request retries at 1000 (then, nobody asking, it is forgotten at 2000).
    assert run_until(manager, 5000) == [(1000, 1111)]


def test_force_always_sends_and_restarts_the_timers() -> None:
    manager = KeyFrameRequestManager(key_frame_request_delay_ms=500)
    assert manager.keyframe_needed(1111, now=0)
    assert manager.force_keyframe_needed(1111, now=400)
    assert manager.deadline == 900  # the window restarted at 400
    assert not manager.keyframe_needed(1111, now=450)
    assert manager.force_keyframe_needed(2222, now=450)
    assert manager.requests_sent == 3


def test_fir_sequence_numbers_grow_per_ssrc() -> None:
    manager = KeyFrameRequestManager()
    assert [manager.next_fir_seq(1111) for _ in range(3)] == [1, 2, 3]
    assert manager.next_fir_seq(2222) == 1
    for _ in range(251):
        manager.next_fir_seq(1111)
    assert manager.next_fir_seq(1111) == 255
    assert manager.next_fir_seq(1111) == 0  # 8 bits


def test_build_request_prefers_pli() -> None:
    manager = KeyFrameRequestManager()
    assert manager.build_request(1111, use_pli=True, use_fir=True) == Pli(1111, 1111)
    assert manager.build_request(1111, use_pli=False, use_fir=True) == Fir(
        1111, 1111, [FirEntry(1111, 1)])
    assert manager.build_request(1111, use_pli=False, use_fir=True, sender_ssrc=9) == Fir(
        9, 1111, [FirEntry(1111, 2)])
    assert manager.build_request(1111, use_pli=False, use_fir=False) is None


def test_remove_close_and_bad_delay() -> None:
    manager = KeyFrameRequestManager(key_frame_request_delay_ms=100)
    manager.keyframe_needed(1, now=0)
    manager.keyframe_needed(2, now=0)
    manager.next_fir_seq(1)
    manager.remove(1)
    assert not manager.is_pending(1)
    assert manager.next_fir_seq(1) == 1
    manager.close()
    assert manager.deadline is None
    with pytest.raises(ValueError, match="must not be negative"):
        KeyFrameRequestManager(-1)
