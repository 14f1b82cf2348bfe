"""Benchmark the fan-out of a real worker with the fan-out harness (pyperf): CPU per output packet.

Usage::

    python -m perf.bm_fanout                  # full run (each process sets up its own rig)
    python -m perf.bm_fanout --fast           # quick run
    python -m perf.bm_fanout -o fanout.json   # keep the results, for pyperf compare_to

Every pyperf option works (``--help``). Each benchmark process builds one rig of
:mod:`perf.fanout_rig` (C receivers, one producer PlainTransport, N consumer PlainTransports,
primed until every consumer forwards) and keeps it for its values:

- ``fanout_n10_plain_1200``: the worker, 1 VP8 producer (1200-byte payloads) x 10 consumers,
  plain RTP, 3,000 input packets/s;
- ``fanout_n10_srtp_1200``: the same with SRTP (AES_CM_128_HMAC_SHA1_80) in and out;
- ``fanout_n100_plain_1200``: the worker, 100 consumers, plain RTP, 300 input packets/s;
- ``fanout_baseline_n10_plain_1200``: the C baseline forwarder (recvmmsg, one sendmmsg per
  destination, no parsing) in place of the worker, as ``fanout_n10_plain_1200``.

What one loop is: one **output** packet. A value sends ceil(loops / N) input packets from the C
generator at the benchmark's fixed rate (30,000 / N packets/s, the harness's default) and is the
forwarder's CPU time (user + system of its process, read through its process CPU clock, from just
before the generator starts until the forwarder is idle again) scaled to ``loops`` output
packets by the packets the receivers got. So pyperf reports CPU time per output packet, which
holds on a shared machine (wall time would not). Each value is checked: a packet the receivers
find duplicated, reordered, with a wrong header or payload, or SRTP that does not verify, or loss
of 1% or more, stops the benchmark.
"""

from __future__ import annotations

import asyncio
import atexit
import math
import sys
from typing import Final

import pyperf

from perf.fanout_rig import (
    BUFFER_BYTES,
    MAX_LOSS_PCT,
    CheckError,
    Rig,
    Variant,
    build_tools,
    check,
)

__all__ = ["BENCHMARKS", "BENCHMARK_NAMES", "main", "time_fanout"]

BENCHMARKS: Final = {
    "fanout_n10_plain_1200": (Variant(10, False, 1200), "worker"),
    "fanout_n10_srtp_1200": (Variant(10, True, 1200), "worker"),
    "fanout_n100_plain_1200": (Variant(100, False, 1200), "worker"),
    "fanout_baseline_n10_plain_1200": (Variant(10, False, 1200), "baseline"),
}
BENCHMARK_NAMES: Final = tuple(BENCHMARKS)
MIN_TIME_S: Final = 0.1  # CPU seconds per value (pyperf's default): 7,000-20,000 outputs

_loop: asyncio.AbstractEventLoop | None = None
_rigs: dict[str, Rig] = {}


def _event_loop() -> asyncio.AbstractEventLoop:
    global _loop
    if _loop is None:
        _loop = asyncio.new_event_loop()
    return _loop


def _close_rigs() -> None:
    loop = _event_loop()
    for rig in _rigs.values():
        loop.run_until_complete(rig.close())
    _rigs.clear()


def _rig(name: str) -> Rig:
    """This process's rig for benchmark ``name`` (made on first use; any other is closed)."""
    rig = _rigs.get(name)
    if rig is None:
        _close_rigs()
        variant, target = BENCHMARKS[name]
        rig = Rig(variant, build_tools(), target, BUFFER_BYTES)
        _event_loop().run_until_complete(rig.__aenter__())
        _rigs[name] = rig
    return rig


def _shutdown() -> None:
    _close_rigs()
    if _loop is not None:
        _loop.close()


atexit.register(_shutdown)


def time_fanout(loops: int, name: str) -> float:
    """pyperf's timed function: the forwarder's CPU seconds for ``loops`` output packets."""
    rig = _rig(name)
    variant = rig.variant
    count = max(1, math.ceil(loops / variant.consumers))
    result = _event_loop().run_until_complete(rig.measure(variant.default_rate(), count))
    check(result)
    if result.loss_pct >= MAX_LOSS_PCT:
        raise CheckError(f"{name}: {result.loss_pct:.2f}% loss at {result.rate:,.0f} pps")
    return result.cpu_ns / 1e9 * loops / result.unique


def main() -> None:
    program_args = ("-m", __spec__.name) if __spec__ is not None else (sys.argv[0],)
    runner = pyperf.Runner(program_args=program_args, min_time=MIN_TIME_S)
    args = runner.parse_args()
    runner.metadata["description"] = (
        "python -m worker (or the C baseline forwarder): 1 producer PlainTransport -> N "
        "consumer PlainTransports on 127.0.0.1, CPU time of the forwarding process per output "
        "packet")
    benches = []
    for name, (variant, target) in BENCHMARKS.items():
        meta = {"consumers": str(variant.consumers), "srtp": str(variant.srtp),
                "payload_bytes": str(variant.size), "forwarder": target,
                "input_pps": str(variant.default_rate()), "socket_buffer_bytes": str(BUFFER_BYTES),
                "measured": "forwarder process CPU time (user+system) per output packet"}
        benches.append(runner.bench_time_func(name, time_fanout, name, metadata=meta))
    if not args.worker:
        parts = [f"{b.get_name()} {b.mean() * 1e6:.2f} us" for b in benches if b is not None]
        if parts:
            print(f"summary: CPU per output packet: {'; '.join(parts)}")


if __name__ == "__main__":
    if not sys.platform.startswith("linux"):
        raise SystemExit("bm_fanout reads process CPU clocks the Linux way")
    main()
