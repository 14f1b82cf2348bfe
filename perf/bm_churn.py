"""Churn benchmark: ICE-TCP transports created, connected and closed through a WebRtcServer.

Usage::

    python -m perf.bm_churn                    # 10,000 cycles, 50 in flight (a few seconds)
    python -m perf.bm_churn --cycles 2000      # shorter
    python -m perf.bm_churn --batch 200        # more transports in flight per step
    python -m perf.bm_churn --json churn.json  # keep the figures

One cycle is what a WebRTC peer reaching an SFU over ICE-TCP costs the worker:
``router.createWebRtcTransport`` through a TCP-only WebRtcServer on 127.0.0.1, a TCP connection
from an ICE-TCP client (:class:`tests.ice_client.IceTcpClient`), a binding request with
USE-CANDIDATE answered with success and the ``icestatechange`` (completed) and
``iceselectedtuplechange`` notifications, then ``router.closeTransport`` (which closes the
connection and gives its 64 KiB receive buffer back). The scenario code is the seed regression
test's (``tests/seed_churn.py``), so every cycle is checked as the test checks it.

Cycles run in steps of ``--batch`` (default 50) transports in flight, so that the figure is
the worker's work rather than round-trip latency: the step's create requests are written at
once, every client connects and sends its request before any response is read, and the close
requests are written at once. The clients are closed at the end of each step.

It is a plain script rather than a pyperf one, because what it reports is the state of one
worker after N cycles (RSS, pools, descriptors), which pyperf's many short-lived processes
would not show. Printed: cycles per second (wall clock, client included), the worker's CPU
time per cycle (``worker.getResourceUsage``), and the worker's RSS, ``tcpRecv`` pool figures
and descriptor count before the first cycle, after the first step (warm-up), and after the
last; the run fails if anything is still held at the end (the test's leak checker).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Final

from tests.seed_churn import ROUTER_ID, PeerSet, SeedRig, WorkerChannel

__all__ = ["DEFAULT_BATCH", "DEFAULT_CYCLES", "Snapshot", "main", "run_churn"]

DEFAULT_CYCLES: Final = 10_000
DEFAULT_BATCH: Final = 50


@dataclass(frozen=True)
class Snapshot:
    """The worker's figures at one moment."""

    cycles: int
    rss_bytes: int
    fds: int
    cpu_ms: int
    pools: dict[str, dict[str, int]]


def spawn_worker() -> WorkerChannel:
    """A ``python -m worker`` behind the tests' client.

    Imported by name: ``tests/`` is outside mypy's files and its client is not written for
    strict mode, while :class:`~tests.seed_churn.WorkerChannel` says what this script uses.
    """
    module = importlib.import_module("tests.worker_process")
    worker: WorkerChannel = module.WorkerProcess()
    return worker


def snapshot(rig: SeedRig, cycles: int) -> Snapshot:
    usage = rig.worker.ok("worker.getResourceUsage")
    return Snapshot(cycles, rig.rss(), rig.fds(), int(usage["ru_utime"] + usage["ru_stime"]),
                    rig.pools())


def churn_step(rig: SeedRig, count: int) -> None:
    """``count`` cycles in flight together: create, connect and complete ICE, close."""
    peers: PeerSet = rig.open_peers(count)
    try:
        rig.close_transports(peers)
    finally:
        peers.close_clients()


def run_churn(worker: WorkerChannel, cycles: int, batch: int) -> dict[str, Any]:
    """Run ``cycles`` cycles in steps of ``batch``; return the figures."""
    rig = SeedRig(worker)
    before = snapshot(rig, 0)
    churn_step(rig, min(batch, cycles))
    done = min(batch, cycles)
    warm = snapshot(rig, done)
    t0 = time.perf_counter()
    while done < cycles:
        step = min(batch, cycles - done)
        churn_step(rig, step)
        done += step
        worker.notifications.clear()  # nothing else is expected; keep the client bounded
    elapsed = time.perf_counter() - t0
    after = snapshot(rig, done)
    rig.check_freed(PeerSet([], [], transports_open=False))
    assert worker.ok("router.dump", ROUTER_ID)["transportIds"] == []
    timed = done - warm.cycles
    return {
        "cycles": done,
        "batch": batch,
        "timedCycles": timed,
        "seconds": elapsed,
        "cyclesPerSecond": timed / elapsed if elapsed else 0.0,
        "workerCpuUsPerCycle": (after.cpu_ms - warm.cpu_ms) * 1000 / timed if timed else 0.0,
        "before": asdict(before),
        "afterWarmUp": asdict(warm),
        "after": asdict(after),
        "serverCounters": rig.server_dump()["counters"],
    }


def _pool_line(shot: dict[str, Any]) -> str:
    tcp = shot["pools"]["tcpRecv"]
    lent = sum(p["inUse"] for p in shot["pools"].values())
    return (f"RSS {shot['rss_bytes'] / 1e6:7.2f} MB, fds {shot['fds']}, "
            f"tcpRecv inUse/highWater/exhausted {tcp['inUse']}/{tcp['highWater']}/"
            f"{tcp['exhausted']}, slots lent (all pools) {lent}")


def report(figures: dict[str, Any]) -> str:
    lines = [
        f"before ({figures['before']['cycles']:>6} cycles): {_pool_line(figures['before'])}",
        f"warm-up ({figures['afterWarmUp']['cycles']:>5} cycles): "
        f"{_pool_line(figures['afterWarmUp'])}",
        f"after ({figures['after']['cycles']:>7} cycles): {_pool_line(figures['after'])}",
        f"server counters: {figures['serverCounters']}",
        f"summary: churn {figures['cyclesPerSecond']:,.0f} cycles/s "
        f"({figures['timedCycles']:,} timed cycles, {figures['batch']} in flight, "
        f"{figures['seconds']:.1f} s); worker CPU {figures['workerCpuUsPerCycle']:,.0f} µs "
        f"per cycle; RSS after warm-up -> after: "
        f"{(figures['after']['rss_bytes'] - figures['afterWarmUp']['rss_bytes']) / 1e6:+.2f} MB",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("--cycles", type=int, default=DEFAULT_CYCLES,
                        help="transports created, connected and closed (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH,
                        help="transports in flight per step (default: %(default)s)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if args.cycles < 1 or not 1 <= args.batch <= 1000:
        parser.error("--cycles must be >= 1 and --batch between 1 and 1000")
    worker = spawn_worker()
    try:
        figures = run_churn(worker, args.cycles, args.batch)
    finally:
        worker.close()
    print(report(figures))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(figures, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
