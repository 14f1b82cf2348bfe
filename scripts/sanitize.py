"""Run the C hot path's fuzz and differential tests against an ASan + UBSan build.

Usage::

    python scripts/sanitize.py                 # the "sanitize" hypothesis profile (120 examples)
    python scripts/sanitize.py --examples 500  # more generated packets per test
    python scripts/sanitize.py --keep          # keep the temporary tree (its path is printed)
    python scripts/sanitize.py -- -k rtp -x    # anything after "--" goes to pytest

It copies ``worker/``, ``channel/``, ``cffi_build/`` and ``tests/`` (with ``pyproject.toml`` and
``setup.py``) into a temporary folder, builds ``worker._fastlib`` there with ``MW_SANITIZE=1``
(``-fsanitize=address,undefined``, see ``cffi_build/build_fast.py``), so the normal in-tree
build is left alone, and runs the C tests that exist (``tests/test_fast_classify.py``,
``test_rtp.py``, ``test_rtcp.py``, ``test_stun.py``, ``test_sockio.py``, ``test_srtp.py``,
``test_forward.py``, ``test_keyframe_c.py``, ``test_recv_stream.py``,
``test_bufferpool.py``, ``test_retransmission_buffer.py``, ``test_store.py``,
``test_ingress_c.py``) in that copy with:

- ``LD_PRELOAD`` of gcc's ``libasan.so`` (the Python executable is not instrumented, so the ASan
  runtime must be loaded first); ``libubsan`` comes in as a dependency of the extension;
- ``ASAN_OPTIONS=detect_leaks=0:abort_on_error=1`` (Python itself leaks at exit) with a
  ``log_path`` in the temporary folder, so that a report is kept even though the process dies
  at once, and ``UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1`` (UBSan ignores
  ``log_path`` next to ASan: it writes to stderr, so pytest runs with ``--capture=sys``, which
  leaves file descriptor 2 alone, and this script scans the output for reports);
- ``PYTHONMALLOC=malloc``, so every Python object (a ``bytes`` packet too) is its own malloc
  block whose end ASan knows; with pymalloc, a read past a small packet would land in the same
  arena and go unseen. (A ``bytes`` object keeps a NUL after its last byte, so a read of exactly
  one byte past a ``bytes`` packet still goes unseen: an exact-size buffer, e.g.
  ``ffi.buffer(ffi.new("uint8_t[]", data))``, catches that too.)
- ``MW_HYPOTHESIS_PROFILE=sanitize`` (tests/conftest.py).

It exits 0 only when pytest passed and the sanitizers wrote no report; otherwise it prints the
reports and exits 1 (2 when the build or the setup failed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREES = ("worker", "channel", "cffi_build", "tests")
FILES = ("pyproject.toml", "setup.py")
C_TESTS = ("test_fast_classify.py", "test_rtp.py", "test_rtcp.py", "test_stun.py",
           "test_sockio.py", "test_srtp.py", "test_forward.py", "test_keyframe_c.py",
           "test_recv_stream.py",
           "test_bufferpool.py", "test_retransmission_buffer.py", "test_store.py",
           "test_ingress_c.py")
IGNORED = shutil.ignore_patterns("__pycache__", "*.so", "*.o", "_fastlib*.c", "build",
                                 ".hypothesis", "node_modules")
REPORT_PREFIX = "sanitizer"
# Lines that only a sanitizer writes.
REPORT_MARKERS = ("runtime error:", "ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                  "SUMMARY: AddressSanitizer", "SUMMARY: UndefinedBehaviorSanitizer")
PLUGIN_NAME = "_mw_sanitize_examples"
# Loaded by pytest before the tests run, after tests/conftest.py has loaded the "sanitize"
# profile: a child profile with the requested number of examples.
PLUGIN_SOURCE = '''"""Written by scripts/sanitize.py: the --examples option."""
import os

from hypothesis import settings


def pytest_configure(config):
    examples = int(os.environ["MW_SANITIZE_EXAMPLES"])
    settings.register_profile("sanitize-examples", parent=settings.get_profile("sanitize"),
                              max_examples=examples)
    settings.load_profile("sanitize-examples")
'''


class SetupError(RuntimeError):
    """The sanitized tree could not be prepared (no compiler runtime, build failed...)."""


def gcc_runtime(name: str) -> str:
    """The path of a gcc runtime library (``libasan.so``), which gcc must know."""
    try:
        found = subprocess.run(["gcc", f"-print-file-name={name}"], capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SetupError(f"gcc cannot tell where {name} is: {exc}") from exc
    if not os.path.isabs(found) or not os.path.exists(found):
        raise SetupError(f"gcc does not ship {name} (got {found!r}); install libasan/libubsan")
    return found


def copy_tree(root: Path, dest: Path) -> None:
    for tree in TREES:
        if (root / tree).is_dir():
            shutil.copytree(root / tree, dest / tree, ignore=IGNORED)
    for name in FILES:
        if (root / name).is_file():
            shutil.copy2(root / name, dest / name)


def build(dest: Path) -> None:
    """Compile worker._fastlib with the sanitizers, inside `dest`."""
    env = dict(os.environ, MW_SANITIZE="1")
    env.pop("LD_PRELOAD", None)
    result = subprocess.run([sys.executable, "cffi_build/build_fast.py"], cwd=dest, env=env,
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise SetupError("the sanitized build failed")
    built = list((dest / "worker").glob("_fastlib*.so"))
    if not built:
        raise SetupError("the sanitized build produced no worker/_fastlib*.so")


def test_env(dest: Path, examples: int | None) -> dict[str, str]:
    reports = dest / REPORT_PREFIX
    env = dict(os.environ)
    env.update({
        "LD_PRELOAD": gcc_runtime("libasan.so"),
        "ASAN_OPTIONS": f"detect_leaks=0:abort_on_error=1:log_path={reports}",
        "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
        "MW_HYPOTHESIS_PROFILE": "sanitize",
        # Every Python object from malloc, so ASan knows where each buffer ends (pymalloc's
        # arenas would hide a read past a small packet).
        "PYTHONMALLOC": "malloc",
        "PYTHONPATH": str(dest),
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    if examples is not None:
        env["MW_SANITIZE_EXAMPLES"] = str(examples)
    return env


def check_import(dest: Path, env: dict[str, str]) -> None:
    """The tests must import the sanitized extension from the copy, not the in-tree build."""
    probe = ("import worker._fastlib as f, worker._fast; print(f.__file__)")
    result = subprocess.run([sys.executable, "-c", probe], cwd=dest, env=env,
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.stderr.write(result.stderr[-4000:])
        raise SetupError("the sanitized extension does not import under LD_PRELOAD")
    where = Path(result.stdout.strip()).resolve()
    if not where.is_relative_to(dest.resolve()):
        raise SetupError(f"the tests would import {where}, not the sanitized build in {dest}")


def run_streaming(command: list[str], dest: Path, env: dict[str, str]) -> tuple[int, list[str]]:
    """Run pytest, echoing its output, and return its status and the sanitizer lines seen."""
    seen: list[str] = []
    with subprocess.Popen(command, cwd=dest, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, errors="replace") as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            if any(marker in line for marker in REPORT_MARKERS):
                seen.append(line.rstrip())
    sys.stdout.flush()
    return proc.returncode, seen


def sanitizer_reports(dest: Path) -> list[tuple[Path, str]]:
    return [(path, path.read_text(errors="replace"))
            for path in sorted(dest.glob(f"{REPORT_PREFIX}*")) if path.stat().st_size]


def run(examples: int | None, keep: bool, pytest_args: list[str]) -> int:
    started = time.monotonic()
    dest = Path(tempfile.mkdtemp(prefix="mw-sanitize-"))
    try:
        copy_tree(ROOT, dest)
        tests = [f"tests/{name}" for name in C_TESTS if (dest / "tests" / name).is_file()]
        if not tests:
            raise SetupError("none of the C tests exists: " + ", ".join(C_TESTS))
        print(f"sanitize: building worker._fastlib with ASan+UBSan in {dest}", flush=True)
        build(dest)
        env = test_env(dest, examples)
        check_import(dest, env)
        print(f"sanitize: build done in {time.monotonic() - started:.0f} s; running "
              + " ".join(tests), flush=True)
        command = [sys.executable, "-m", "pytest", "-q", "--capture=sys", "-p",
                   "no:cacheprovider", *tests]
        if examples is not None:
            (dest / f"{PLUGIN_NAME}.py").write_text(PLUGIN_SOURCE)
            command[3:3] = ["-p", PLUGIN_NAME]
        status, printed = run_streaming([*command, *pytest_args], dest, env)
        reports = sanitizer_reports(dest)
        for path, text in reports:
            sys.stderr.write(f"\n==== sanitizer report {path.name} ====\n{text}\n")
            printed += [line for line in text.splitlines()
                        if any(marker in line for marker in REPORT_MARKERS)]
        elapsed = time.monotonic() - started
        if status != 0 or printed:
            why = f"pytest exit status {status}"
            if printed:
                why += f"; sanitizer: {printed[0].strip()[:160]}"
            print(f"sanitize: FAILED ({why}) after {elapsed:.0f} s", flush=True)
            return 1
        print(f"sanitize: passed, no sanitizer report, {elapsed:.0f} s", flush=True)
        return 0
    except SetupError as exc:
        print(f"sanitize: {exc}", file=sys.stderr, flush=True)
        return 2
    finally:
        if keep:
            print(f"sanitize: kept {dest}", flush=True)
        else:
            shutil.rmtree(dest, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    pytest_args: list[str] = []
    if "--" in args:
        split = args.index("--")
        args, pytest_args = args[:split], args[split + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=None,
                        help="hypothesis examples per test (default: the sanitize profile's)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary tree")
    options = parser.parse_args(args)
    if options.examples is not None and options.examples <= 0:
        parser.error("--examples must be positive")
    return run(options.examples, options.keep, pytest_args)


if __name__ == "__main__":
    sys.exit(main())
