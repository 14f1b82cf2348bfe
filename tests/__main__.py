"""``python -m tests``: the whole suite: Python (pytest), the C hot path's fuzz tests again
against an AddressSanitizer + UBSan build (``scripts/sanitize.py``), then the Node controller
(node --test).

Extra arguments go to pytest. The Node dependencies are installed from the lock file first.
``MW_SANITIZE_EXAMPLES`` sets the generated examples per test of the sanitizer run (default 120).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = ROOT / "node"


def run_python_tests(args: list[str]) -> int:
    return subprocess.call([sys.executable, "-m", "pytest", *args], cwd=ROOT)


def run_sanitizer_tests() -> int:
    examples = os.environ.get("MW_SANITIZE_EXAMPLES", "120")
    return subprocess.call([sys.executable, str(ROOT / "scripts" / "sanitize.py"),
                            "--examples", examples], cwd=ROOT)


def run_node_tests() -> int:
    npm = shutil.which("npm")
    if npm is None:
        sys.stderr.write("tests: npm is not installed; the Node controller tests cannot run\n")
        return 1
    env = dict(os.environ, MEDIAWORKER_PYTHON=sys.executable)
    installed = subprocess.call([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                                cwd=NODE_DIR, env=env)
    if installed:
        return installed
    return subprocess.call([npm, "test"], cwd=NODE_DIR, env=env)


def main() -> int:
    python_status = run_python_tests(sys.argv[1:])
    sanitizer_status = run_sanitizer_tests()
    node_status = run_node_tests()
    return python_status or sanitizer_status or node_status


if __name__ == "__main__":
    sys.exit(main())
