"""``python -m perf.soak``: the worker's memory under steady load.

One variant of the fan-out harness (:mod:`perf.fanout_rig`; default: 1 VP8 producer of 1200 B
packets fanned out to N = 10 consumer PlainTransports) fed at a fixed rate (default 5,000 input
packets/s) for a fixed time (default 10 minutes), measured one minute at a time. After each
minute it prints the worker's resident memory (``VmRSS`` of ``/proc/<pid>/status``), its CPU µs
per output packet over that minute, the loss, and every buffer pool's ``inUse``/``highWater``
against its ``capacity`` (``worker.dump``). At the end: the RSS growth from the end of the
first minute to the end of the last (the goal: within 10 MB), and whether every pool's
``highWater`` stayed below its ``capacity``.

Usage::

    python -m perf.soak                           # N=10, 1200 B, 5,000 pps, 10 minutes
    python -m perf.soak --minutes 2 --rate 2000   # shorter
    python -m perf.soak --consumers 100 --srtp

Exit status 0 when both goals hold and every packet that came was forwarded right; 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any, Final

from perf.fanout_rig import Rig, Variant, build_tools, check

__all__ = ["main", "rss_bytes"]

RSS_GOAL_BYTES: Final = 10 * 1024 * 1024
MINUTE_S: Final = 60.0


def rss_bytes(pid: int) -> int:
    """The resident set size of process ``pid``, from ``/proc/<pid>/status``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def _pools(rig: Rig) -> dict[str, Any]:
    assert rig.worker is not None
    dump = await rig.worker.dump()
    pools = dump["bufferPools"]
    assert isinstance(pools, dict)
    return pools


async def soak(variant: Variant, rate: float, minutes: int, step_s: float) -> bool:
    tools = build_tools()
    async with Rig(variant, tools, "worker") as rig:
        rss: list[int] = []
        pools: dict[str, Any] = {}
        for minute in range(1, minutes + 1):
            result = await rig.run(rate, step_s)
            check(result)
            rss.append(rss_bytes(rig.pid))
            pools = await _pools(rig)
            use = ", ".join(f"{name} {p['inUse']}/{p['highWater']}/{p['capacity']}"
                            for name, p in pools.items())
            print(f"minute {minute}: RSS {rss[-1] / 1e6:.2f} MB, "
                  f"{result.cpu_us_per_output:.2f} us/out, loss {result.loss_pct:.3f}%, "
                  f"pools inUse/highWater/capacity: {use}", flush=True)
    growth = rss[-1] - rss[0]
    below = all(p["highWater"] < p["capacity"] for p in pools.values())
    print(f"summary: {variant.name} at {rate:,.0f} pps for {minutes} min: RSS after minute 1 "
          f"{rss[0] / 1e6:.2f} MB, after minute {minutes} {rss[-1] / 1e6:.2f} MB, growth "
          f"{growth / 1e6:+.2f} MB (goal within {RSS_GOAL_BYTES / 1e6:.0f} MB); every pool's "
          f"highWater below its capacity: {below}")
    return abs(growth) <= RSS_GOAL_BYTES and below


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m perf.soak", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("--consumers", type=int, default=10)
    parser.add_argument("--size", type=int, choices=(200, 1200), default=1200)
    parser.add_argument("--srtp", action="store_true")
    parser.add_argument("--rate", type=float, default=5000.0, help="input packets/s")
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--step-seconds", type=float, default=MINUTE_S,
                        help="length of one measured step (default: a minute)")
    args = parser.parse_args(argv)
    if args.minutes < 2:
        parser.error("--minutes must be at least 2 (the first minute is the reference)")
    variant = Variant(args.consumers, args.srtp, args.size)
    ok = asyncio.run(soak(variant, args.rate, args.minutes, args.step_seconds))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
