"""The seed regression test: closing a transport frees everything it held, whatever its peer did.

mediasoup issue #1381 (reference/mediasoup.md section 1): through a WebRtcServer, a closed ICE-TCP
connection kept its 64 KiB receive buffer. Here 200 ICE-TCP peers connect through a TCP-only
WebRtcServer and complete ICE, then part in one of five ways (``tests/seed_churn.py``):

(a) the peers go silent, the controller closes the transports; (b) the peers stay silent and ICE
consent expires (iceConsentTimeout 10, all 200 at once); (c) the peers reset their connections;
(d) the peers send half a frame and stop, the controller closes the transports; (e) the
WebRtcServer is closed with its transports open.

After every round: no pool lends a slot, the server maps no tuple, the worker's descriptors are
back to the baseline, and the peers see their connections closed; across ten rounds the
worker's RSS grows less than 5 MB. A worker with the seed bug injected (a connection close that
closes the socket and tells its owner but keeps the buffer) must fail the same checks, which
proves the checker sees the leak. Wall time: about 23 s in all, 20 s of it for the two consent
expiries (one here, one with the injected bug); each other round of 200 peers takes 0.1 s.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.seed_churn import ROUNDS, SeedRig
from tests.worker_process import WorkerProcess

ROOT = Path(__file__).resolve().parent.parent
PEERS = 200
# One round of each kind except (b) first: the first use of each path allocates for good
# (interned strings, dict and list growth, the slab pages of the receive buffers in use).
WARM_UP_ROUNDS = "acde"
# The ten measured rounds: every kind, and (b) (10 s of consent timeout) only once.
MEASURED_ROUNDS = "abcdeacdea"
RSS_GROWTH_LIMIT_BYTES = 5 * 1024 * 1024
BUGGY_PEERS = 20

# The worker with the seed bug injected: TcpConnection.close closes the socket and tells the
# owner, exactly as before, but the receive buffer's slot is never given back to the pool (its
# release goes to a stand-in that drops it). With MW_SEED_BUG=0 nothing is patched: the control.
SEED_BUG_WORKER = textwrap.dedent(
    """
    import os, sys
    import worker.net.tcp as tcp
    from worker.main import main

    class KeepsTheSlot:
        def release(self, slot):
            pass

    original_close = tcp.TcpConnection.close

    def close_keeping_the_buffer(self, reason="closed by owner"):
        pool = self._pool
        self._pool = KeepsTheSlot()
        try:
            original_close(self, reason)
        finally:
            self._pool = pool

    if os.environ.get("MW_SEED_BUG") != "0":
        tcp.TcpConnection.close = close_keeping_the_buffer
    sys.exit(main(sys.argv[1:]))
    """
)


def test_every_way_to_part_frees_everything() -> None:
    with WorkerProcess() as worker:
        rig = SeedRig(worker)
        for letter in WARM_UP_ROUNDS:
            ROUNDS[letter](rig, PEERS)
        baseline = rig.rss()
        growth: list[tuple[str, int]] = []
        for letter in MEASURED_ROUNDS:
            ROUNDS[letter](rig, PEERS)
            growth.append((letter, rig.rss() - baseline))
        assert max(g for _, g in growth) < RSS_GROWTH_LIMIT_BYTES, growth

        tcp_pool = rig.pools()["tcpRecv"]
        # Every round really held PEERS connections at once, and none was ever refused.
        assert tcp_pool["highWater"] == PEERS, tcp_pool
        assert tcp_pool["exhausted"] == 0, tcp_pool
        counters = rig.server_dump()["counters"]
        assert counters["tcpConnectionsRefused"] == 0, counters
        assert worker.ok("router.dump", "seed-router")["transportIds"] == []
        assert worker.other_responses == []


@pytest.mark.parametrize("letter", sorted(ROUNDS))
def test_checker_detects_the_seed_leak(letter: str) -> None:
    """Each round against the seed bug: the checker fails and names the pool, while the
    descriptors are back to the baseline (the socket was closed; only the buffer leaked)."""
    with WorkerProcess(command=[sys.executable, "-c", SEED_BUG_WORKER]) as worker:
        rig = SeedRig(worker)
        with pytest.raises(AssertionError, match=r"^not freed: pool 'tcpRecv' still lends "
                                                 rf"{BUGGY_PEERS} slot\(s\)$"):
            ROUNDS[letter](rig, BUGGY_PEERS)
        expected_fds = rig.fds_with_server if rig.server_id else rig.fds_without_server
        assert rig.fds() == expected_fds
        assert rig.pools()["tcpRecv"]["inUse"] == BUGGY_PEERS


def test_checker_passes_the_unpatched_wrapper() -> None:
    """The control: the same wrapper without the patch passes every round but the slow (b)."""
    with WorkerProcess(command=[sys.executable, "-c", SEED_BUG_WORKER],
                       env={"MW_SEED_BUG": "0"}) as worker:
        rig = SeedRig(worker)
        for letter in "acde":
            ROUNDS[letter](rig, BUGGY_PEERS)
        assert rig.pools()["tcpRecv"]["inUse"] == 0


def test_churn_benchmark_runs() -> None:
    """perf/bm_churn.py still runs (a smoke test, no timing): a few steps, nothing left held."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-m", "perf.bm_churn", "--cycles", "120"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[2].startswith("after (    120 cycles): "), lines
    assert "tcpRecv inUse/highWater/exhausted 0/50/0, slots lent (all pools) 0" in lines[2]
    assert lines[-1].startswith("summary: churn "), lines
