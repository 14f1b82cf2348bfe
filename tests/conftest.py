from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests.worker_process import WorkerProcess

# Hypothesis profiles: "default" for everyday runs, "sanitize" for the ASan/UBSan build
# (scripts/sanitize.py), "deep" for a long local fuzzing session. MW_HYPOTHESIS_PROFILE picks one.
settings.register_profile("default", max_examples=200, deadline=None)
settings.register_profile("sanitize", max_examples=120, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("deep", max_examples=20000, deadline=None)
settings.load_profile(os.environ.get("MW_HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def worker() -> Iterator[WorkerProcess]:
    """A running worker; on teardown every buffer pool must be back to zero lent slots."""
    with WorkerProcess() as proc:
        yield proc
        if proc.proc.poll() is None:
            dump = proc.ok("worker.dump")
            lent = {name: pool["inUse"] for name, pool in dump["bufferPools"].items()
                    if pool["inUse"]}
            assert not lent, f"buffer slots still lent at teardown: {lent}"
