"""Every pyperf benchmark still runs: each once, in pyperf's one-value debug mode.

A smoke test only (STYLE.md: benchmarks are never timed assertions in tests/): it checks that
each script exits 0 and reports every benchmark it should, not how fast anything is.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from perf.bm_channel_codec import benchmark_names
from perf.bm_media_path import BENCHMARK_NAMES as MEDIA_PATH_NAMES
from perf.bm_request_roundtrip import BENCHMARK_NAMES

ROOT = Path(__file__).resolve().parent.parent


def run_benchmark(module: str, *args: str) -> str:
    """``python -m <module> --debug-single-value``: one value, one loop, one process each."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", module, "--debug-single-value", "--quiet", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, f"{module} exited {proc.returncode}:\n{proc.stderr}"
    return proc.stdout


def reported(stdout: str) -> list[str]:
    """The benchmark names pyperf printed a result for (``name: value``), in order."""
    return [line.partition(":")[0] for line in stdout.splitlines()
            if line.startswith(("codec_", "roundtrip_"))]


def test_channel_codec_benchmark_runs() -> None:
    stdout = run_benchmark("perf.bm_channel_codec")
    names = benchmark_names()
    assert len(names) == 15
    assert reported(stdout) == names


def test_request_roundtrip_benchmark_runs() -> None:
    stdout = run_benchmark("perf.bm_request_roundtrip")
    assert reported(stdout) == list(BENCHMARK_NAMES)
    summary = stdout.strip().splitlines()[-1]
    assert summary.startswith("summary: router.dump round trips/s: 1 in flight "), summary


def pyperf_results(stdout: str) -> list[str]:
    """Every benchmark name pyperf printed a result for (lines ``name: <value> <unit>``)."""
    names = []
    for line in stdout.splitlines():
        name, sep, value = line.partition(": ")
        if sep and name and " " not in name and value[:1].isdigit():
            names.append(name)
    return names


@pytest.mark.parametrize(
    ("module", "prefix", "at_least"),
    [
        ("perf.bm_classify", "classify_", 5),
        ("perf.bm_rtp", "rtp_", 10),
        ("perf.bm_rtcp", "rtcp_", 8),
        ("perf.bm_stun", "stun_", 4),
        ("perf.bm_sockio", "sockio_", 6),
        ("perf.bm_srtp", "srtp_", 4),
        ("perf.bm_forward", "forward_", 4),
    ],
)
def test_hot_path_benchmark_runs(module: str, prefix: str, at_least: int) -> None:
    """Each hot-path benchmark runs once and reports its C and reference results."""
    names = [name for name in pyperf_results(run_benchmark(module)) if name.startswith(prefix)]
    assert len(names) >= at_least, names
    assert any(name.endswith("_c") or "_c_" in name for name in names), names


def test_media_path_benchmark_runs() -> None:
    """Both variants of the whole media path through a real worker (11 endpoints each) run
    once, the key frame checked at every receiver, and the summary line comes last."""
    stdout = run_benchmark("perf.bm_media_path")
    assert pyperf_results(stdout) == list(MEDIA_PATH_NAMES)
    summary = stdout.strip().splitlines()[-1]
    assert summary.startswith("summary: worker CPU, 1 producer x 10 consumers: "), summary
