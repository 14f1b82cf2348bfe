"""scripts/sanitize.py's own parts, quickly (the full sanitized run is the script itself)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mw_sanitize_script",
                                                  ROOT / "scripts" / "sanitize.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sanitize = load_script()


def test_environment_preloads_asan_and_sets_the_options(tmp_path: Path) -> None:
    env = sanitize.test_env(tmp_path, examples=33)
    assert env["LD_PRELOAD"].endswith("libasan.so") and os.path.exists(env["LD_PRELOAD"])
    asan = env["ASAN_OPTIONS"].split(":")
    assert {"detect_leaks=0", "abort_on_error=1"} <= set(asan)
    assert f"log_path={tmp_path / sanitize.REPORT_PREFIX}" in asan
    assert set(env["UBSAN_OPTIONS"].split(":")) >= {"halt_on_error=1", "print_stacktrace=1"}
    assert env["MW_HYPOTHESIS_PROFILE"] == "sanitize"
    assert env["MW_SANITIZE_EXAMPLES"] == "33"
    assert env["PYTHONMALLOC"] == "malloc"
    assert env["PYTHONPATH"] == str(tmp_path)


def test_copy_leaves_out_builds_and_caches(tmp_path: Path) -> None:
    source = tmp_path / "src"
    for name in ("worker/a.py", "worker/_fastlib.abi3.so", "worker/__pycache__/a.pyc",
                 "tests/test_x.py", "cffi_build/rtp.c", "pyproject.toml", "other/skip.py"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text("x")
    dest = tmp_path / "dest"
    dest.mkdir()
    sanitize.copy_tree(source, dest)
    copied = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert copied == ["cffi_build/rtp.c", "pyproject.toml", "tests/test_x.py", "worker/a.py"]


def test_streaming_run_sees_sanitizer_lines(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    script = ("import sys; print('ok line'); "
              "sys.stderr.write('fast.c:18:33: runtime error: shift exponent 32\\n'); "
              "sys.exit(1)")
    status, seen = sanitize.run_streaming([sys.executable, "-c", script], tmp_path,
                                          dict(os.environ))
    assert status == 1
    assert seen == ["fast.c:18:33: runtime error: shift exponent 32"]
    assert "ok line" in capsys.readouterr().out


def test_report_files_are_read_when_not_empty(tmp_path: Path) -> None:
    (tmp_path / f"{sanitize.REPORT_PREFIX}.123").write_text("==1==ERROR: AddressSanitizer: x")
    (tmp_path / f"{sanitize.REPORT_PREFIX}.124").write_text("")
    reports = sanitize.sanitizer_reports(tmp_path)
    assert [(path.name, text) for path, text in reports] == [
        (f"{sanitize.REPORT_PREFIX}.123", "==1==ERROR: AddressSanitizer: x")]


def test_arguments() -> None:
    with pytest.raises(SystemExit):
        sanitize.main(["--examples", "0"])
    with pytest.raises(SystemExit):
        sanitize.main(["--no-such-option"])
