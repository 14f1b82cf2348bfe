"""Datagram classification (RFC 7983): ns per datagram, the C function and the reference.

Benchmarks:

- ``classify_c``: ``worker._fast.classify`` on one datagram, Python call included;
- ``classify_ref``: ``tests/reference/classify.classify`` on the same datagram;
- ``classify_mix_c`` / ``classify_mix_ref``: a seeded mix of 64 datagrams (STUN, DTLS, RTP,
  RTCP, other), one call each, per datagram;
- ``classify_slots64_c``: the same 64 datagrams in pool-like slots, classified by one
  ``mw_classify_slots`` call, as a receive batch is (``RecvBatch.classify``); per datagram.

A cffi call costs about 100 ns, more than the few comparisons classification needs, so one call
per datagram cannot beat the Python reference; one call per batch does.

Run ``python -m perf.bm_classify`` (``--fast`` for a quick run).
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable

import pyperf

from tests.reference import classify as ref
from worker._fast import classify, ffi, lib

SEED = 7983
MIX_SIZE = 64


def datagrams(seed: int = SEED) -> list[bytes]:
    """A seeded mix: binding requests, DTLS records, RTP, RTCP and other bytes."""
    rng = random.Random(seed)
    shapes = [
        lambda: b"\x00\x01\x00\x00\x21\x12\xa4\x42" + rng.randbytes(92),
        lambda: b"\x17\xfe\xfd" + rng.randbytes(120),
        lambda: bytes([0x80, rng.randrange(96, 128)]) + rng.randbytes(1198),
        lambda: b"\x80\xc8\x00\x06" + rng.randbytes(24),
        lambda: bytes([rng.randrange(64, 128)]) + rng.randbytes(30),
    ]
    return [rng.choice(shapes)() for _ in range(MIX_SIZE)]


def _check(datas: list[bytes]) -> None:
    for data in datas:
        assert int(classify(data)) == ref.classify(data)


def one_c(loops: int, data: bytes) -> float:
    start = time.perf_counter()
    for _ in range(loops):
        classify(data)
    return time.perf_counter() - start


def one_ref(loops: int, data: bytes) -> float:
    start = time.perf_counter()
    for _ in range(loops):
        ref.classify(data)
    return time.perf_counter() - start


def mix_c(loops: int, datas: list[bytes]) -> float:
    start = time.perf_counter()
    for _ in range(loops):
        for data in datas:
            classify(data)
    return time.perf_counter() - start


def mix_ref(loops: int, datas: list[bytes]) -> float:
    start = time.perf_counter()
    for _ in range(loops):
        for data in datas:
            ref.classify(data)
    return time.perf_counter() - start


SLOT_BYTES = 2048


class SlotBatch:
    """The datagrams copied into slots of one slab, with the arrays a receive batch has."""

    def __init__(self, datas: list[bytes]) -> None:
        self.slab = bytearray(SLOT_BYTES * len(datas))
        self.count = len(datas)
        self.slots = ffi.new("uint32_t[]", self.count)
        self.lengths = ffi.new("uint32_t[]", self.count)
        self.kinds = ffi.new("uint8_t[]", self.count)
        for i, data in enumerate(datas):
            self.slab[i * SLOT_BYTES : i * SLOT_BYTES + len(data)] = data
            self.slots[i] = i
            self.lengths[i] = len(data)
        self.ptr = ffi.from_buffer(self.slab)

    def run(self) -> None:
        lib.mw_classify_slots(self.ptr, len(self.slab), SLOT_BYTES, self.slots, self.lengths,
                              self.count, self.kinds)


def slots_c(loops: int, batch: SlotBatch) -> float:
    run = batch.run
    start = time.perf_counter()
    for _ in range(loops):
        run()
    return time.perf_counter() - start


def main() -> None:
    program_args = ("-m", __spec__.name) if __spec__ is not None else (sys.argv[0],)
    runner = pyperf.Runner(program_args=program_args)
    runner.metadata["description"] = "RFC 7983 classification: ns per datagram, C and reference"
    datas = datagrams()
    _check(datas)
    batch = SlotBatch(datas)
    batch.run()
    assert [batch.kinds[i] for i in range(len(datas))] == [ref.classify(d) for d in datas]
    rtp = next(d for d in datas if d[0] == 0x80 and not 192 <= d[1] <= 223)
    timed: list[tuple[str, Callable[..., float], object, int]] = [
        ("classify_c", one_c, rtp, 1),
        ("classify_ref", one_ref, rtp, 1),
        ("classify_mix_c", mix_c, datas, MIX_SIZE),
        ("classify_mix_ref", mix_ref, datas, MIX_SIZE),
        ("classify_slots64_c", slots_c, batch, MIX_SIZE),
    ]
    for name, func, arg, inner in timed:
        runner.bench_time_func(name, func, arg, inner_loops=inner)


if __name__ == "__main__":
    main()
