"""``python -m controller.demo`` as a user runs it: a subprocess that spawns a real worker, sends
video through PlainTransports on 127.0.0.1 and closes everything; its output is checked for media
flowing out to every consumer and for a clean close."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from controller.demo import VIDEO_PT, VIDEO_SSRC, gstreamer_available, vp8_like_packet
from worker.keyframe import is_keyframe

ROOT = Path(__file__).resolve().parent.parent

_LIVE = re.compile(
    r"^\[\s*(\d+)s\] in\s+(\d+) pkt/s\s+(\d+) kbit/s \| out\s+(\d+) pkt/s\s+(\d+) kbit/s \| "
    r"worker CPU\s+([\d.]+)% \| buffer slots in use (\d+)$"
)
_CLOSED = re.compile(
    r"^closed: (\d+) transports, the router and the worker \(exit code (-?\d+)\); "
    r"routers left (\d+), buffer slots in use (\d+)$"
)


def _run(
    *args: str, timeout: float = 90, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controller.demo", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )


def _without_gstreamer(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH finds no gst-launch-1.0 (an empty directory)."""
    return dict(os.environ, PATH=str(tmp_path))


def _final_dump(lines: list[str]) -> dict[str, Any]:
    start = lines.index("final worker dump:") + 1
    end = lines.index("}", start) + 1
    dump: dict[str, Any] = json.loads("\n".join(lines[start:end]))
    return dump


def _check_run(result: subprocess.CompletedProcess[str], seconds: int, consumers: int) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    live = [m for m in map(_LIVE.match, lines) if m is not None]
    assert [int(m.group(1)) for m in live] == list(range(1, seconds + 1)), result.stdout
    # Media flows: the last second has packets in, and every consumer's copy out.
    last = live[-1]
    in_pps, out_pps = int(last.group(2)), int(last.group(4))
    assert in_pps > 0, result.stdout
    assert out_pps > 0, result.stdout
    assert out_pps >= consumers * in_pps * 0.5, result.stdout
    closed = _CLOSED.match(lines[-1])
    assert closed is not None, result.stdout
    assert closed.groups() == (str(consumers + 1), "0", "0", "0"), lines[-1]
    dump = _final_dump(lines)
    assert dump["routerIds"] == [], dump
    lent = {name: pool["inUse"] for name, pool in dump["bufferPools"].items() if pool["inUse"]}
    assert not lent, lent
    assert dump["bufferPools"]["rtpPacket"]["highWater"] > 0, dump  # packets did go through


def test_demo_with_python_source() -> None:
    result = _run("--seconds", "2", "--consumers", "2", "--source", "python")
    _check_run(result, seconds=2, consumers=2)
    assert "source: Python sender" in result.stdout


@pytest.mark.skipif(not gstreamer_available(), reason="gst-launch-1.0 with VP8 is not installed")
def test_demo_with_gstreamer_source() -> None:
    result = _run("--seconds", "2", "--consumers", "2", "--source", "gstreamer")
    _check_run(result, seconds=2, consumers=2)
    assert "source: gst-launch-1.0" in result.stdout


def test_demo_without_gstreamer_falls_back_to_python_source(tmp_path: Path) -> None:
    result = _run("--seconds", "1", "--consumers", "1", env=_without_gstreamer(tmp_path))
    _check_run(result, seconds=1, consumers=1)
    assert "GStreamer is not installed" in result.stdout
    assert "source: Python sender" in result.stdout


def test_demo_gstreamer_source_missing(tmp_path: Path) -> None:
    result = _run("--source", "gstreamer", env=_without_gstreamer(tmp_path), timeout=30)
    assert result.returncode == 2
    assert "needs gst-launch-1.0" in result.stdout


def test_demo_interrupted_leaves_no_process() -> None:
    """Ctrl-C in the middle: exit code 130, and the worker and the source are gone."""
    demo = subprocess.Popen(
        [sys.executable, "-m", "controller.demo", "--seconds", "60", "--consumers", "1"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell's background job ignores SIGINT; give the demo the default, as a terminal does.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
    )
    try:
        assert demo.stdout is not None
        children: list[psutil.Process] = []
        for line in demo.stdout:  # wait for media to flow
            if _LIVE.match(line.rstrip("\n")):
                children = psutil.Process(demo.pid).children(recursive=True)
                break
        names = " ".join(" ".join(child.cmdline()) for child in children)
        assert "-m worker" in names, names
        if gstreamer_available():
            assert "gst-launch-1.0" in names, names
        demo.send_signal(signal.SIGINT)
        _, stderr = demo.communicate(timeout=30)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.communicate()
    assert demo.returncode == 130, stderr
    assert "demo interrupted" in stderr
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, alive


def test_demo_help() -> None:
    result = _run("--help", timeout=30)
    assert result.returncode == 0
    for option in ("--seconds", "--consumers", "--source", "--log-level", "--log-tag"):
        assert option in result.stdout


@pytest.mark.parametrize("args", [["--consumers", "0"], ["--seconds", "x"], ["--source", "ffmpeg"]])
def test_demo_refuses_bad_options(args: list[str]) -> None:
    result = _run(*args, timeout=30)
    assert result.returncode == 2
    assert "usage:" in result.stderr


def test_python_source_packets_are_vp8_shaped_rtp() -> None:
    key = vp8_like_packet(seq=65535, timestamp=1, first=True, last=False, keyframe=True, size=900)
    delta = vp8_like_packet(seq=7, timestamp=2, first=True, last=False, keyframe=False, size=900)
    tail = vp8_like_packet(seq=8, timestamp=2, first=False, last=True, keyframe=False, size=900)
    for packet, marker, seq in ((key, 0, 65535), (delta, 0, 7), (tail, 0x80, 8)):
        assert packet[0] == 0x80  # version 2, no padding, extension or CSRCs
        assert packet[1] == marker | VIDEO_PT
        assert int.from_bytes(packet[2:4], "big") == seq
        assert int.from_bytes(packet[8:12], "big") == VIDEO_SSRC
        assert len(packet) == 12 + 1 + 900
    assert is_keyframe("video/vp8", key[12:])
    assert not is_keyframe("video/vp8", delta[12:])
    assert not is_keyframe("video/vp8", tail[12:])
