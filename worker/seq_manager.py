"""Sequence-number and timestamp rewriting for consumers (mediasoup's RTC::SeqManager), sans-IO.

A consumer forwards a producer's packets under its own numbering: the output must be continuous
(no gap the receiver would NACK) across pauses, stream switches and packets the consumer drops
on purpose, and it must survive reordering and the 16-bit wraparound.

:class:`SeqManager` keeps everything as unbounded integers (extended sequence numbers), so no
comparison ever wraps; a 16-bit input is first unwrapped (:func:`unwrap`) to the value nearest
to the highest input seen, and outputs are masked back to 16 bits only when returned.

- ``output = input + base - (number of dropped inputs below input)``.
- :meth:`SeqManager.sync` re-bases: the input after the given one gets ``max_output + 1``. A
  consumer calls ``sync(seq - 1)`` before the first packet it forwards after a resume or a
  switch, as mediasoup does.
- :meth:`SeqManager.drop` marks an input newer than any seen as dropped; later inputs close the
  gap, and the dropped input itself, if it shows up again, gets no output.
- Dropped inputs more than a third of the number space behind the highest input are folded into
  ``base`` (a packet that late would be out of any window anyway), so the list stays short.

:class:`TimestampManager` is the same idea for RTP timestamps, which are not contiguous: a fixed
offset, re-based on a switch so the output keeps increasing.

Nothing here reads a clock: these are pure functions of their inputs.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from typing import Final

__all__ = ["SEQ_BITS", "TIMESTAMP_BITS", "SeqManager", "TimestampManager", "unwrap"]

SEQ_BITS: Final = 16
TIMESTAMP_BITS: Final = 32


def unwrap(value: int, reference: int, bits: int = SEQ_BITS) -> int:
    """The integer congruent to ``value`` modulo ``2**bits`` that is nearest to ``reference``.

    ``reference`` is an extended (unbounded) value; a ``value`` exactly half the number space
    away is taken as the older one.
    """
    modulus = 1 << bits
    delta = (value - reference) & (modulus - 1)
    if delta >= modulus >> 1:
        delta -= modulus
    return reference + delta


class SeqManager:
    """Maps input sequence numbers to continuous output sequence numbers (``bits`` wide).

    ``initial_output`` is the ``max_output`` before any input: after a first :meth:`sync`, the
    next input maps to ``initial_output + 1``. Without a sync, outputs equal inputs until the
    first sync or drop.
    """

    __slots__ = ("_base", "_bits", "_dropped", "_mask", "_max_input", "_max_output", "_modulus",
                 "_started")

    def __init__(self, bits: int = SEQ_BITS, initial_output: int = 0) -> None:
        if bits <= 1:
            raise ValueError(f"SeqManager needs at least 2 bits, got {bits}")
        self._bits = bits
        self._modulus = 1 << bits
        self._mask = self._modulus - 1
        self._base = 0
        self._started = False
        self._max_input: int | None = None  # extended
        self._max_output = initial_output & self._mask  # extended
        self._dropped: list[int] = []  # extended inputs, sorted

    @property
    def max_input(self) -> int | None:
        """The highest input seen (``bits`` wide), or None before any input or sync."""
        return None if self._max_input is None else self._max_input & self._mask

    @property
    def max_output(self) -> int:
        """The highest output produced so far (``bits`` wide)."""
        return self._max_output & self._mask

    @property
    def dropped_count(self) -> int:
        """Dropped inputs still tracked individually (not yet folded into the base)."""
        return len(self._dropped)

    def _extend(self, value: int) -> int:
        value &= self._mask
        reference = self._max_input
        if self._dropped and (reference is None or self._dropped[-1] > reference):
            reference = self._dropped[-1]
        if reference is None:
            return value + self._modulus  # start one cycle up: reordering never goes negative
        return unwrap(value, reference, self._bits)

    def sync(self, input_seq: int) -> None:
        """Re-base so that the input after ``input_seq`` maps to ``max_output + 1``."""
        extended = self._extend(input_seq)
        self._base = self._max_output - extended
        self._max_input = extended
        self._dropped.clear()

    def drop(self, input_seq: int) -> None:
        """The consumer will not forward ``input_seq``: later outputs close its gap.

        Only an input newer than every input seen so far is recorded (as mediasoup does); an
        older one already has its place in the output sequence.
        """
        if self._max_input is None:
            return
        extended = self._extend(input_seq)
        if extended <= self._max_input:
            return
        index = bisect_left(self._dropped, extended)
        if index == len(self._dropped) or self._dropped[index] != extended:
            insort(self._dropped, extended)

    def offset(self, delta: int) -> None:
        """Shift every later output by ``delta`` (mediasoup's ``Offset``)."""
        self._base += delta

    def input(self, input_seq: int) -> int | None:
        """The output sequence number for ``input_seq``, or None if it was dropped."""
        extended = self._extend(input_seq)
        dropped = self._dropped
        below = 0
        if dropped:
            below = bisect_left(dropped, extended)
            if below < len(dropped) and dropped[below] == extended:
                return None
        output = extended + self._base - below
        if not self._started or self._max_input is None:
            self._started = True
            self._max_input = extended
            self._max_output = output
        else:
            self._max_input = max(self._max_input, extended)
            self._max_output = max(self._max_output, output)
        if dropped and dropped[0] < self._max_input - self._modulus // 3:
            self._fold_old_dropped()
        return output & self._mask

    def _fold_old_dropped(self) -> None:
        assert self._max_input is not None
        threshold = self._max_input - self._modulus // 3
        count = bisect_left(self._dropped, threshold)
        del self._dropped[:count]
        self._base -= count


class TimestampManager:
    """Rewrites RTP timestamps by a fixed offset: ``output = input - offset`` (mod 2^32).

    ``max_output`` is the highest output timestamp produced (unwrapped internally), which a
    consumer needs for its Sender Reports and to keep timestamps increasing across a switch.
    """

    __slots__ = ("_max_output", "_offset")

    _MASK: Final = (1 << TIMESTAMP_BITS) - 1

    def __init__(self, offset: int = 0) -> None:
        self._offset = offset & self._MASK
        self._max_output: int | None = None  # extended

    @property
    def offset(self) -> int:
        return self._offset

    @offset.setter
    def offset(self, value: int) -> None:
        self._offset = value & self._MASK

    @property
    def max_output(self) -> int | None:
        return None if self._max_output is None else self._max_output & self._MASK

    def sync(self, input_ts: int, output_ts: int) -> None:
        """Choose the offset so that ``input_ts`` maps to ``output_ts``."""
        self._offset = (input_ts - output_ts) & self._MASK

    def continue_from(self, input_ts: int, gap: int) -> None:
        """After a switch: ``input_ts`` maps to ``max_output + gap`` (or to itself before any
        output). ``gap`` is in RTP units, typically one frame (mediasoup uses 33 ms)."""
        if self._max_output is None:
            self._offset = 0
        else:
            self.sync(input_ts, self._max_output + gap)

    def output(self, input_ts: int) -> int:
        """The rewritten timestamp for ``input_ts``."""
        out = (input_ts - self._offset) & self._MASK
        if self._max_output is None:
            self._max_output = out + (1 << TIMESTAMP_BITS)
        else:
            extended = unwrap(out, self._max_output, TIMESTAMP_BITS)
            self._max_output = max(self._max_output, extended)
        return out
