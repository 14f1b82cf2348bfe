"""Benchmark RTCP: parse and build of typical compound packets (pyperf).

Usage::

    python -m perf.bm_rtcp            # full run
    python -m perf.bm_rtcp --fast     # quick run
    python -m perf.bm_rtcp --fast -o rtcp.json   # keep the results

Every pyperf option works (``--help``). Times are **per compound packet**; each benchmark walks a
list of ``PACKETS`` seeded packets per loop and pyperf divides by it (``inner_loops``). Each pair
is the C path through :mod:`worker._fast` (``_c``: ``parse_rtcp`` walks the compound packet and
returns typed dataclasses; ``build_rtcp`` returns its bytes) and the pure-Python reference
``tests/reference/rtcp.py`` (``_ref``: ``parse_compound`` / ``build_compound``). The packets:

- ``sr_sdes``: SR with one report block + SDES with a 36-character CNAME (84 bytes), what a
  sending endpoint emits about once a second per stream;
- ``rr_blocks``: RR with three report blocks + SDES (128 bytes), a receiver of three streams;
- ``nack``: a generic NACK of 4 items for 10 lost packets (28 bytes). Both sides' parse yields
  the list of lost sequence numbers (the reference's ``lost`` is a property, so it is read), and
  both builds start from the SSRCs and that list (the packing is timed);
- ``tcc``: transport-cc feedback for 60 packets, 4 of them lost, 2 with large deltas (92 bytes
  or so), what a browser sends every 50-100 ms.
"""

from __future__ import annotations

import random
import sys
import uuid
from collections.abc import Callable
from time import perf_counter
from typing import Any, Final

import pyperf

from tests.reference import rtcp as ref
from worker import _fast

__all__ = ["KINDS", "PACKETS", "SEED", "benchmark_names", "compounds", "main"]

SEED: Final = 20240613
PACKETS: Final = 64
KINDS: Final = ("sr_sdes", "rr_blocks", "nack", "tcc")


def _block(rng: random.Random) -> ref.ReportBlock:
    return ref.ReportBlock(rng.getrandbits(32), rng.randrange(8), rng.randrange(40),
                           rng.getrandbits(20), rng.randrange(5000), rng.getrandbits(32),
                           rng.getrandbits(17))


def _sdes(rng: random.Random, ssrc: int) -> ref.SourceDescription:
    cname = str(uuid.UUID(int=rng.getrandbits(128), version=4)).encode()
    return ref.SourceDescription([ref.SdesChunk(ssrc, [(ref.SDES_CNAME, cname)])])


def _compound(kind: str, rng: random.Random) -> list[ref.Packet]:
    ssrc, media = rng.getrandbits(32), rng.getrandbits(32)
    if kind == "sr_sdes":
        return [ref.SenderReport(ssrc, rng.getrandbits(64), rng.getrandbits(32),
                                 rng.randrange(1 << 20), rng.randrange(1 << 30), [_block(rng)]),
                _sdes(rng, ssrc)]
    if kind == "rr_blocks":
        return [ref.ReceiverReport(ssrc, [_block(rng) for _ in range(3)]), _sdes(rng, ssrc)]
    if kind == "nack":
        start = rng.getrandbits(16)
        offsets = sorted(rng.sample(range(60), 10))
        return [ref.GenericNack.from_lost(ssrc, media, [(start + o) & 0xFFFF for o in offsets])]
    deltas: list[int | None] = [rng.randrange(0, 80) for _ in range(60)]
    for i in rng.sample(range(60), 6):
        deltas[i] = None if i % 3 else rng.randrange(-400, -1)
    return [ref.TransportFeedback(ssrc, media, rng.getrandbits(16), rng.randrange(1 << 23),
                                  rng.randrange(256), deltas)]


def compounds(kind: str, seed: int = SEED) -> list[bytes]:
    """``PACKETS`` compound packets of one kind, the same bytes for the same seed."""
    rng = random.Random(f"{seed}-{kind}")
    return [ref.build_compound(_compound(kind, rng)) for _ in range(PACKETS)]


def benchmark_names() -> list[str]:
    """Every benchmark this script runs, in order."""
    return [f"rtcp_{op}_{kind}_{side}" for op in ("parse", "build") for kind in KINDS
            for side in ("c", "ref")]


# -- timed functions (pyperf calls them with the number of loops) ---------------------------


def time_each(loops: int, func: Callable[[Any], object], inputs: list[Any]) -> float:
    t0 = perf_counter()
    for _ in range(loops):
        for value in inputs:
            func(value)
    return perf_counter() - t0


def _parse_nack_ref(data: bytes) -> list[list[int]]:
    """The reference parse of a NACK, to the lost sequence numbers the worker acts on."""
    return [p.lost for p in ref.parse_compound(data)[0] if isinstance(p, ref.GenericNack)]


def _nack_ref(args: tuple[int, int, list[int]]) -> bytes:
    """The reference builds a NACK from what the worker has: SSRCs and lost numbers."""
    return bytes(ref.GenericNack.from_lost(*args))


def _check_sides(datagrams: list[bytes]) -> tuple[list[Any], list[Any]]:
    """Both sides parse and build the benchmark packets alike: we time working code.

    Returns the parsed values of each side, which the build benchmarks build again."""
    c_values: list[Any] = []
    ref_values: list[Any] = []
    for data in datagrams:
        packets, error = _fast.parse_rtcp(data)
        ref_packets, ref_error = ref.parse_compound(data)
        if error is not None or ref_error is not None or len(packets) != len(ref_packets):
            raise AssertionError("a benchmark packet is malformed")
        if _fast.build_rtcp(packets) != data or ref.build_compound(ref_packets) != data:
            raise AssertionError("C and reference build different bytes")
        c_values.append(packets)
        first = ref_packets[0]
        if isinstance(first, ref.GenericNack):
            lost_args = (first.sender_ssrc, first.media_ssrc, first.lost)
            if _nack_ref(lost_args) != data:
                raise AssertionError("the reference packs NACK items differently")
            ref_values.append(lost_args)
        else:
            ref_values.append(ref_packets)
    return c_values, ref_values


def main() -> None:
    # Worker processes must be spawned the way this one was started: `-m perf.bm_...` keeps
    # the `perf` and `tests` packages importable.
    program_args = ("-m", __spec__.name) if __spec__ is not None else (sys.argv[0],)
    runner = pyperf.Runner(program_args=program_args)
    runner.metadata["description"] = "RTCP: per-compound-packet parse and build"
    runner.metadata["rtcp_seed"] = str(SEED)

    parse: list[tuple[str, Callable[[Any], object], list[Any], dict[str, str]]] = []
    build: list[tuple[str, Callable[[Any], object], list[Any], dict[str, str]]] = []
    for kind in KINDS:
        datagrams = compounds(kind)
        c_values, ref_values = _check_sides(datagrams)
        meta = {"compound_bytes": str(len(datagrams[0]))}
        ref_parse = _parse_nack_ref if kind == "nack" else ref.parse_compound
        parse += [(f"rtcp_parse_{kind}_c", _fast.parse_rtcp, datagrams, meta),
                  (f"rtcp_parse_{kind}_ref", ref_parse, datagrams, meta)]
        ref_build = _nack_ref if kind == "nack" else ref.build_compound
        build += [(f"rtcp_build_{kind}_c", _fast.build_rtcp, c_values, meta),
                  (f"rtcp_build_{kind}_ref", ref_build, ref_values, meta)]
    for name, func, inputs, meta in parse + build:
        runner.bench_time_func(name, time_each, func, inputs, inner_loops=PACKETS, metadata=meta)


if __name__ == "__main__":
    main()
