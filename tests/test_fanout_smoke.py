"""The fan-out harness (``perf/fanout_rig.py``, ``perf/fanout_c/``) works: its checks catch what
they should, and short runs through the worker and the baseline forwarder come out clean.

Smoke tests, not measurements: nothing here looks at a CPU figure beyond its being positive.
The C programs are compiled with the system ``cc`` into ``build/fanout_c/`` on first use.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from perf.fanout_rig import (
    ConsumerCounts,
    Receivers,
    RunResult,
    Stream,
    Tools,
    Variant,
    build_tools,
    run_variant,
)
from tests.controller_support import async_test

ROOT = Path(__file__).resolve().parent.parent
RATE_PPS = 500


@pytest.fixture(scope="module")
def tools() -> Tools:
    return build_tools()


def _assert_clean(run: RunResult, consumers: int) -> None:
    assert run.sent == RATE_PPS, run
    assert run.errors == {}, run.counts
    assert run.loss_pct == 0.0, run.counts
    assert [c.unique for c in run.counts] == [run.sent] * consumers, run.counts
    assert all(c.received == c.unique and c.stale == 0 for c in run.counts), run.counts
    assert run.cpu_ns > 0 and run.cpu_us_per_output > 0


@pytest.mark.parametrize("srtp,size,suite", [(False, 1200, "AES_CM_128_HMAC_SHA1_80"),
                                             (True, 200, "AES_CM_128_HMAC_SHA1_80"),
                                             (True, 1200, "AEAD_AES_128_GCM")],
                         ids=["plain", "srtp", "gcm"])
@async_test
async def test_worker_and_baseline_forward_every_packet_byte_exact(
    tools: Tools, srtp: bool, size: int, suite: str
) -> None:
    variant = Variant(2, srtp, size, suite)
    result = await run_variant(variant, tools, seconds=1.0, rate=RATE_PPS)
    _assert_clean(result.worker, 2)
    assert result.worker.worker_received == RATE_PPS  # the producer transport's own count
    assert result.baseline is not None
    _assert_clean(result.baseline, 2)
    assert result.ratio is not None and result.ratio > 0
    summary = result.summary()
    assert summary["variant"] == variant.name
    assert summary["worker"]["errors"] == {} and summary["baseline"]["loss_pct"] == 0.0


def _dumped(tools: Tools, args: list[str], path: Path) -> list[bytes]:
    subprocess.run([str(tools.gen), "--dump", str(path), *args], check=True, timeout=30,
                   capture_output=True)
    data, packets, at = path.read_bytes(), [], 0
    while at < len(data):
        n = int.from_bytes(data[at:at + 2], "big")
        packets.append(data[at + 2:at + 2 + n])
        at += 2 + n
    return packets


def _rewritten(packet: bytes, ssrc: int, pt: int, seq_delta: int) -> bytes:
    """``packet`` as a consumer would send it: its SSRC, payload type, shifted numbering."""
    out = bytearray(packet)
    out[1] = (out[1] & 0x80) | pt
    out[2:4] = ((int.from_bytes(out[2:4], "big") + seq_delta) & 0xFFFF).to_bytes(2, "big")
    out[8:12] = ssrc.to_bytes(4, "big")
    return bytes(out)


@async_test
async def test_receivers_count_loss_duplicates_reordering_and_bad_packets(
    tools: Tools, tmp_path: Path
) -> None:
    ssrc, pt = 0x11223344, 101
    stream = Stream(Variant(1, False, 1200))
    stale = stream.next_run(4)
    spec = stream.next_run(8)
    good = [_rewritten(p, ssrc, pt, 7)
            for p in _dumped(tools, stream.generator_args(spec), tmp_path / "run.bin")]
    old = _rewritten(_dumped(tools, stream.generator_args(stale), tmp_path / "old.bin")[0],
                     ssrc, pt, 7)
    corrupt = bytearray(good[4])
    corrupt[700] ^= 0x01
    wrong_ssrc = _rewritten(good[5], ssrc + 1, pt, 0)
    wrong_seq = _rewritten(good[6], ssrc, pt, 1)
    rtcp = bytes([0x80, 200, 0, 6]) + bytes(24)
    sends = [good[0], good[1], good[1], good[3], good[2], bytes(corrupt), wrong_ssrc,
             wrong_seq, old, rtcp, b"\x80\x60\x00"]

    receivers = await Receivers.start(tools, 1, 1 << 20, srtp=False)
    try:
        await receivers.expect([(ssrc, pt, None)])
        await receivers.start_run(spec)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for datagram in sends:  # a UDP socket on loopback keeps their order
                sock.sendto(datagram, ("127.0.0.1", receivers.ports[0]))
        (counts,), cpu = await receivers.report()
    finally:
        await receivers.close()
    assert receivers.proc.returncode == 0
    assert cpu > 0
    # byte-exact: 0, 1, 1 (again), 3, 2, 5 and 6 (header errors: wrong SSRC, wrong numbering)
    assert counts == ConsumerCounts(received=7, unique=6, dup=1, reorder=1, header=2, payload=1,
                                    stale=1, rtcp=1, srtp=0, other=1)
    assert spec.count - counts.unique == 2  # 4 (corrupt) and 7 never came right


def test_command_line_runs_and_prints_the_table(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    out = tmp_path / "fanout.json"
    proc = subprocess.run(
        [sys.executable, "-m", "perf.fanout", "--consumers", "1", "--sizes", "200",
         "--seconds", "0.5", "--rate", "400", "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=90, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "n1_plain_200: in " in proc.stdout
    table = proc.stdout.split("\n\n")[-1].splitlines()
    assert table[0].split()[:3] == ["variant", "in", "pps"]
    assert table[2].startswith("n1_plain_200 "), table
    assert '"variant": "n1_plain_200"' in out.read_text()


def test_pyperf_wrapper_reports_every_benchmark() -> None:
    from perf.bm_fanout import BENCHMARK_NAMES  # noqa: PLC0415

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "perf.bm_fanout", "--debug-single-value", "--quiet"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=90, check=False)
    assert proc.returncode == 0, proc.stderr
    reported = [line.partition(":")[0] for line in proc.stdout.splitlines()
                if line.startswith("fanout_")]
    assert reported == list(BENCHMARK_NAMES)
