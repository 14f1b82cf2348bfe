"""SeqManager and TimestampManager: continuity across pause/resume, switches, drops, reordering
and the 16-bit wraparound."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.seq_manager import SeqManager, TimestampManager, unwrap


def test_unwrap_picks_the_nearest_value() -> None:
    assert unwrap(0, 65535 + 65536) == 2 * 65536
    assert unwrap(65535, 2 * 65536) == 65535 + 65536
    assert unwrap(100, 65536 + 90) == 65536 + 100
    assert unwrap(5, (1 << 32) + 10, 32) == (1 << 32) + 5
    assert unwrap(0xFFFFFFFF, 1 << 32, 32) == (1 << 32) - 1


def test_outputs_equal_inputs_without_sync() -> None:
    seq = SeqManager()
    assert [seq.input(i) for i in range(100, 105)] == [100, 101, 102, 103, 104]
    assert seq.max_input == 104
    assert seq.max_output == 104


def test_wraparound_65535_to_0_is_continuous() -> None:
    seq = SeqManager()
    inputs = [65533, 65534, 65535, 0, 1, 2]
    assert [seq.input(i) for i in inputs] == inputs
    seq2 = SeqManager()
    seq2.sync(65532)  # the first forwarded packet gets 1
    assert [seq2.input(i) for i in inputs] == [1, 2, 3, 4, 5, 6]


def test_output_wraps_too() -> None:
    seq = SeqManager(initial_output=65533)
    seq.sync(999)
    assert [seq.input(i) for i in range(1000, 1005)] == [65534, 65535, 0, 1, 2]


def test_pause_and_resume_leave_no_gap() -> None:
    seq = SeqManager()
    seq.sync(99)
    assert [seq.input(i) for i in range(100, 110)] == list(range(1, 11))
    # Paused: 110..199 are not forwarded. On resume the consumer syncs before the next one.
    seq.sync(199)
    assert [seq.input(i) for i in range(200, 203)] == [11, 12, 13]


def test_stream_switch_continues_the_output() -> None:
    seq = SeqManager()
    seq.sync(40000 - 1)
    for i in range(40000, 40010):
        seq.input(i)
    assert seq.max_output == 10
    seq.sync(65530 - 1)  # switch to another stream near its wraparound
    assert [seq.input(i) for i in (65530, 65535, 0, 3)] == [11, 16, 17, 20]


def test_reordering_keeps_relative_order() -> None:
    seq = SeqManager()
    seq.sync(9)
    outputs = [seq.input(i) for i in (10, 11, 13, 12, 14)]
    assert outputs == [1, 2, 4, 3, 5]
    assert seq.max_output == 5


def test_dropped_packets_close_the_gap() -> None:
    seq = SeqManager()
    assert [seq.input(i) for i in (1, 2)] == [1, 2]
    seq.drop(3)
    assert seq.input(4) == 3
    assert seq.input(5) == 4
    assert seq.input(3) is None  # a copy of the dropped packet gets no output


def test_a_late_packet_older_than_a_drop_keeps_its_place() -> None:
    seq = SeqManager()
    for i in (1, 2, 3):
        seq.input(i)
    seq.drop(5)
    assert seq.input(6) == 5
    assert seq.input(4) == 4  # arrived late, lower than the dropped one: not shifted
    assert seq.input(7) == 6


def test_drop_of_an_old_packet_is_ignored() -> None:
    seq = SeqManager()
    seq.drop(9)  # before any input: nothing to close
    assert seq.dropped_count == 0
    for i in (10, 11, 12):
        seq.input(i)
    seq.drop(11)
    assert seq.dropped_count == 0
    assert seq.input(13) == 13


def test_drop_across_wraparound() -> None:
    seq = SeqManager()
    seq.input(65534)
    seq.drop(65535)
    assert seq.input(0) == 65535
    assert seq.input(1) == 0


def test_old_drops_are_folded_and_output_stays_continuous() -> None:
    seq = SeqManager()
    seq.sync(0)
    expected = 1
    for i in range(1, 200_000):
        if i % 3 == 0:
            seq.drop(i & 0xFFFF)
            continue
        assert seq.input(i & 0xFFFF) == expected & 0xFFFF
        expected += 1
    assert seq.dropped_count < 65536 // 3 // 3 + 2


def test_offset_shifts_later_outputs() -> None:
    seq = SeqManager()
    seq.input(10)
    seq.offset(5)
    assert seq.input(11) == 16


def test_other_widths() -> None:
    picture_id = SeqManager(bits=15)
    picture_id.sync(32766)
    assert [picture_id.input(i) for i in (32767, 0, 1)] == [1, 2, 3]
    with pytest.raises(ValueError, match="at least 2 bits"):
        SeqManager(bits=1)


@given(start=st.integers(0, 65535), drops=st.lists(st.booleans(), min_size=1, max_size=300),
       initial=st.integers(0, 65535))
def test_forwarded_outputs_are_consecutive(start: int, drops: list[bool], initial: int) -> None:
    seq = SeqManager(initial_output=initial)
    seq.sync((start - 1) & 0xFFFF)
    outputs = []
    for i, dropped in enumerate(drops):
        value = (start + i) & 0xFFFF
        if dropped:
            seq.drop(value)
        else:
            out = seq.input(value)
            assert out is not None
            outputs.append(out)
    assert outputs == [(initial + 1 + k) & 0xFFFF for k in range(len(outputs))]


@given(start=st.integers(0, 65535), swaps=st.lists(st.integers(0, 198), max_size=40))
def test_reordered_inputs_keep_their_offset(start: int, swaps: list[int]) -> None:
    order = list(range(200))
    for i in swaps:
        order[i], order[i + 1] = order[i + 1], order[i]
    seq = SeqManager()
    seq.sync((start - 1) & 0xFFFF)
    # The sync fixes the mapping; arrival order does not change it.
    for k in order:
        assert seq.input((start + k) & 0xFFFF) == 1 + k
    assert seq.max_output == 200


def test_timestamp_manager_offset_and_wraparound() -> None:
    ts = TimestampManager()
    ts.sync(0xFFFFFF00, 1000)
    assert ts.output(0xFFFFFF00) == 1000
    assert ts.output(0x00000100) == 1000 + 0x200  # input wrapped
    assert ts.max_output == 1000 + 0x200
    assert ts.offset == (0xFFFFFF00 - 1000) & 0xFFFFFFFF


def test_timestamp_manager_continue_from_keeps_increasing() -> None:
    ts = TimestampManager()
    ts.continue_from(5000, 2970)
    assert ts.output(5000) == 5000  # nothing sent yet: identity
    assert ts.output(0xFFFFFFF0) == 0xFFFFFFF0  # an older timestamp does not lower max_output
    assert ts.max_output == 5000
    ts.continue_from(123_456, 2970)  # switch to a stream with unrelated timestamps
    assert ts.output(123_456) == 5000 + 2970
    assert ts.output(123_456 + 3000) == 5000 + 2970 + 3000
    ts.offset = -1
    assert ts.offset == 0xFFFFFFFF
