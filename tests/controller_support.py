"""What the Python controller's tests share: running async tests, recording events, a worker
that is always closed, and bounded waits."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Protocol

from controller import Worker, create_worker

TEST_TIMEOUT_S = 60.0
WAIT_S = 5.0

AsyncTest = Callable[..., Coroutine[Any, Any, None]]


def async_test(fn: AsyncTest) -> Callable[..., None]:
    """Run an async test function on a fresh event loop, bounded by TEST_TIMEOUT_S
    (pytest-asyncio is not a dependency)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(fn(*args, **kwargs), TEST_TIMEOUT_S))

    return wrapper


class Recorder:
    """A listener that records each call's arguments."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, *args: Any) -> None:
        self.calls.append(args)


class _Closable(Protocol):
    @property
    def closed(self) -> bool: ...


def is_closed(entity: _Closable) -> bool:
    """Read through a call, so that mypy does not keep an earlier ``assert not closed``."""
    return entity.closed


async def wait_until(predicate: Callable[[], bool], timeout: float = WAIT_S) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running_worker(**kwargs: Any) -> AsyncIterator[Worker]:
    """A worker that is closed (resumed first if a test stopped it) whatever the test did."""
    worker = await create_worker(**kwargs)
    try:
        yield worker
    finally:
        if not worker.subprocess_closed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGCONT)
        await worker.close()
