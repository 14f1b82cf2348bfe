"""The Python controller against the real ``python -m worker`` process (no mocks).

pytest-asyncio is not a dependency: each async test runs under ``asyncio.run`` with a time limit
(see :func:`async_test`); pytest-timeout bounds the rest.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import select
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from channel.protocol import MAX_REQUEST_ID
from controller import (
    ControllerError,
    ControllerTypeError,
    EnhancedEventEmitter,
    InvalidStateError,
    RequestTimeoutError,
    Router,
    UnsupportedError,
    create_worker,
)
from controller.demo import DEMO_MEDIA_CODECS
from tests.controller_support import Recorder, async_test, is_closed, running_worker

ROOT = Path(__file__).resolve().parent.parent



def _process_gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def _mime_types(rtp_capabilities: dict[str, Any]) -> set[str]:
    return {codec["mimeType"] for codec in rtp_capabilities["codecs"]}


# -- worker life ----------------------------------------------------------------------------


@async_test
async def test_create_worker_runs_and_closes_with_exit_code_0() -> None:
    worker = await create_worker(log_level="warn", log_tags=["info", "ice"], app_data={"a": 1})
    try:
        assert worker.pid > 0
        assert isinstance(worker.version, str) and worker.version
        assert not worker.closed and not worker.died and not worker.subprocess_closed
        assert worker.app_data == {"a": 1}
        cmdline = psutil.Process(worker.pid).cmdline()
        assert cmdline[1:3] == ["-m", "worker"]
        assert "--logLevel=warn" in cmdline
        assert "--logTag=info" in cmdline and "--logTag=ice" in cmdline
        dump = await worker.dump()
        assert dump["pid"] == worker.pid
        assert dump["routerIds"] == []
    finally:
        closed = Recorder()
        worker.observer.on("close", closed)
        died = Recorder()
        worker.on("died", died)
        await worker.close()

    assert worker.returncode == 0
    assert (worker.closed, worker.died, worker.subprocess_closed) == (True, False, True)
    assert closed.calls == [()]
    assert died.calls == []
    assert _process_gone(worker.pid)
    await worker.close()  # idempotent: nothing happens
    assert closed.calls == [()]
    with pytest.raises(InvalidStateError):
        await worker.dump()
    with pytest.raises(InvalidStateError):
        await worker.create_router()


@async_test
async def test_concurrent_close_calls_wait_for_the_same_exit() -> None:
    worker = await create_worker()
    closed = Recorder()
    worker.observer.on("close", closed)
    await asyncio.gather(worker.close(), worker.close())
    assert worker.returncode == 0
    assert closed.calls == [()]


@async_test
async def test_async_with_closes_the_worker() -> None:
    async with await create_worker() as worker:
        assert not worker.closed
        pid = worker.pid
    assert is_closed(worker)
    assert worker.returncode == 0
    assert _process_gone(pid)


# -- routers --------------------------------------------------------------------------------


@async_test
async def test_create_router_dump_and_close() -> None:
    async with running_worker() as worker:
        new_routers = Recorder()
        worker.observer.on("newrouter", new_routers)
        router = await worker.create_router(media_codecs=DEMO_MEDIA_CODECS, app_data={"room": 7})

        assert new_routers.calls == [(router,)]
        assert isinstance(router, Router)
        assert router.app_data == {"room": 7}
        assert not router.closed
        mime_types = _mime_types(router.rtp_capabilities)
        assert {"audio/opus", "video/VP8", "video/H264"} <= mime_types
        payload_types = [c["preferredPayloadType"] for c in router.rtp_capabilities["codecs"]]
        assert len(payload_types) == len(set(payload_types))
        assert router.rtp_capabilities["headerExtensions"]

        assert (await worker.dump())["routerIds"] == [router.id]
        assert (await router.dump())["id"] == router.id

        closed = Recorder()
        router.observer.on("close", closed)
        worker_closed = Recorder()
        router.on("workerclose", worker_closed)
        await router.close()
        assert is_closed(router)
        assert closed.calls == [()]
        assert worker_closed.calls == []
        assert (await worker.dump())["routerIds"] == []
        with pytest.raises(InvalidStateError):
            await router.dump()
        await router.close()  # idempotent
        assert closed.calls == [()]


@async_test
async def test_worker_close_closes_its_routers() -> None:
    worker = await create_worker()
    routers = [await worker.create_router(media_codecs=DEMO_MEDIA_CODECS) for _ in range(2)]
    events: list[str] = []
    for router in routers:
        router.on("workerclose", functools.partial(events.append, f"workerclose {router.id}"))
        router.observer.on("close", functools.partial(events.append, f"close {router.id}"))
    worker.observer.on("close", functools.partial(events.append, "worker close"))
    await worker.close()
    assert all(router.closed for router in routers)
    assert sorted(events[:-1]) == sorted(
        f"{name} {router.id}" for router in routers for name in ("workerclose", "close")
    )
    assert events[-1] == "worker close"
    assert worker.returncode == 0


@async_test
async def test_create_router_without_media_codecs() -> None:
    async with running_worker() as worker:
        router = await worker.create_router()
        assert router.rtp_capabilities["codecs"] == []


@async_test
async def test_failed_requests_map_to_error_classes() -> None:
    async with running_worker() as worker:
        with pytest.raises(ControllerTypeError) as type_error:
            await worker.create_router(media_codecs=[{"kind": "sound", "mimeType": "audio/opus"}])
        assert isinstance(type_error.value, TypeError)
        assert "[method:worker.createRouter]" in str(type_error.value)

        with pytest.raises(UnsupportedError):
            await worker.create_router(
                media_codecs=[{"kind": "audio", "mimeType": "audio/nosuch", "clockRate": 8000}]
            )

        router = await worker.create_router()
        with pytest.raises(ControllerError) as duplicate:
            await worker._channel.request(
                "worker.createRouter", "", {"routerId": router.id, "mediaCodecs": []}
            )
        assert type(duplicate.value) is ControllerError

        with pytest.raises(ControllerError) as unknown_method:
            await worker._channel.request("worker.noSuchMethod")
        assert type(unknown_method.value) is ControllerError
        assert "[method:worker.noSuchMethod]" in str(unknown_method.value)

        with pytest.raises(ControllerError) as unknown_handler:
            await worker._channel.request("router.dump", "no-such-router")
        assert type(unknown_handler.value) is ControllerError

        # None of this hurt the worker, and failed creations left nothing behind.
        assert (await worker.dump())["routerIds"] == [router.id]


# -- settings, logs, resource usage ---------------------------------------------------------


@async_test
async def test_update_settings_and_worker_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="mediaworker")
    async with running_worker(log_level="error") as worker:
        # Bytes that are no msgpack object: the worker logs an error, which must reach logging.
        garbage = b"\x00\x00\x00\x01\xc1"
        worker._channel._writer.write(garbage)
        await worker.dump()  # the log precedes this response on the worker's stdout
        forwarded = [
            r for r in caplog.records if r.name == "mediaworker.worker" and f"pid:{worker.pid}"
            in r.getMessage()
        ]
        assert forwarded and all(r.levelno == logging.ERROR for r in forwarded)

        await worker.update_settings(log_level="none")
        caplog.clear()
        worker._channel._writer.write(garbage)
        await worker.dump()
        assert [r for r in caplog.records if r.name == "mediaworker.worker"] == []

        await worker.update_settings(log_level="debug", log_tags=["info", "rtp"])
        await worker.update_settings(log_tags=[])

        with pytest.raises(ControllerTypeError) as bad_level:
            await worker.update_settings(log_level="bogus")
        assert isinstance(bad_level.value, TypeError)
        assert "[method:worker.updateSettings]" in str(bad_level.value)
        with pytest.raises(TypeError):
            await worker.update_settings(log_tags=["nosuchtag"])
        assert not worker.closed


@async_test
async def test_get_resource_usage() -> None:
    async with running_worker() as worker:
        usage = await worker.get_resource_usage()
        for key in ("ru_utime", "ru_stime", "ru_maxrss", "ru_minflt", "ru_nvcsw", "ru_nivcsw"):
            assert isinstance(usage[key], int) and usage[key] >= 0, key
        assert usage["ru_maxrss"] > 0
        assert usage["ru_utime"] + usage["ru_stime"] > 0


# -- start-up failures ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "mentioned"),
    [
        ({"log_level": "bogus"}, "bogus"),
        ({"worker_args": ["--noSuchOption=1"]}, "noSuchOption"),
        ({"rtc_min_port": 20000, "rtc_max_port": 10000}, "rtcMinPort"),
        (
            {"dtls_certificate_file": "/nonexistent/c.pem", "dtls_private_key_file": "/x/k.pem"},
            "/nonexistent/c.pem",
        ),
    ],
)
@async_test
async def test_bad_settings_raise_type_error(options: dict[str, Any], mentioned: str) -> None:
    with pytest.raises(ControllerTypeError) as info:
        await create_worker(**options)
    assert isinstance(info.value, TypeError)
    message = str(info.value)
    assert message.startswith("wrong settings")
    assert "code:42" in message
    assert mentioned in message


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("echo 'boom: no worker here' >&2\nexit 40\n", ["code:40", "signal:None", "boom"]),
        ("kill -9 $$\n", ["code:None", "signal:SIGKILL"]),
    ],
)
@async_test
async def test_other_early_exit_raises_controller_error(
    tmp_path: Path, script: str, expected: list[str]
) -> None:
    fake_python = tmp_path / "fake-python"
    fake_python.write_text("#!/bin/sh\n" + script)
    fake_python.chmod(fake_python.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(ControllerError) as info:
        await create_worker(python=str(fake_python))
    assert not isinstance(info.value, TypeError)
    for text in expected:
        assert text in str(info.value)


# -- unexpected death, timeouts -------------------------------------------------------------


@async_test
async def test_sigkill_emits_died_and_rejects_pending_requests() -> None:
    async with running_worker() as worker:
        router = await worker.create_router(media_codecs=DEMO_MEDIA_CODECS)
        loop = asyncio.get_running_loop()
        died: asyncio.Future[BaseException] = loop.create_future()
        worker.on("died", died.set_result)
        events = Recorder()
        worker.observer.on("close", functools.partial(events, "worker close"))
        router.on("workerclose", functools.partial(events, "router workerclose"))
        router.observer.on("close", functools.partial(events, "router close"))

        os.kill(worker.pid, signal.SIGSTOP)  # the request below cannot be answered
        pending = asyncio.ensure_future(worker.dump())
        await asyncio.sleep(0)  # written, now waiting for its response
        assert worker._channel.pending_count == 1
        os.kill(worker.pid, signal.SIGKILL)
        sent_after_kill = asyncio.ensure_future(worker.get_resource_usage())

        for request in (pending, sent_after_kill):
            with pytest.raises(InvalidStateError) as info:
                await request
            assert "pending request aborted" in str(info.value)
        error = await asyncio.wait_for(died, 10)

        assert isinstance(error, ControllerError)
        assert f"pid:{worker.pid}" in str(error)
        assert "signal:SIGKILL" in str(error)
        assert worker.died and worker.closed
        assert worker.returncode == -signal.SIGKILL
        assert router.closed
        assert sorted(events.calls) == [("router close",), ("router workerclose",),
                                        ("worker close",)]
        with pytest.raises(InvalidStateError):
            await worker.dump()
        with pytest.raises(InvalidStateError):
            await router.dump()
        await worker.close()  # no-op on a dead worker
        assert len(events.calls) == 3


@async_test
async def test_request_timeout() -> None:
    async with running_worker(request_timeout_s=0.3) as worker:
        os.kill(worker.pid, signal.SIGSTOP)
        started = time.monotonic()
        with pytest.raises(RequestTimeoutError) as info:
            await worker.dump()
        elapsed = time.monotonic() - started
        assert isinstance(info.value, TimeoutError)
        assert "worker.dump" in str(info.value)
        assert 0.25 <= elapsed < 5
        assert worker._channel.pending_count == 0

        os.kill(worker.pid, signal.SIGCONT)
        # The late answer to the timed-out dump is dropped; the channel goes on working.
        usage = await worker.get_resource_usage()
        assert "ru_utime" in usage
        assert not worker.closed and not worker.died
    assert worker.returncode == 0


@async_test
async def test_request_ids_wrap_back_to_1() -> None:
    async with running_worker() as worker:
        worker._channel._last_id = MAX_REQUEST_ID - 2
        requests_in = []
        for _ in range(3):  # ids MAX - 1, MAX, then 1
            requests_in.append((await worker.dump())["channel"]["requestsIn"])
        assert worker._channel._last_id == 1
        assert requests_in == [requests_in[0], requests_in[0] + 1, requests_in[0] + 2]


@async_test
async def test_stopped_worker_is_killed_by_close() -> None:
    worker = await create_worker()
    os.kill(worker.pid, signal.SIGSTOP)
    started = time.monotonic()
    await worker.close()
    assert worker.returncode == -signal.SIGKILL
    assert not worker.died
    assert time.monotonic() - started < 10


_CONTROLLER_CHILD = """
import asyncio
from controller import create_worker

async def main():
    worker = await create_worker()
    print(worker.pid, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


def test_worker_exits_when_its_controller_is_killed() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CONTROLLER_CHILD], cwd=ROOT, stdout=subprocess.PIPE
    )
    worker_pid: int | None = None
    try:
        assert child.stdout is not None
        readable, _, _ = select.select([child.stdout], [], [], 30)
        assert readable, "the controller child printed no worker pid"
        worker_pid = int(child.stdout.readline())
        assert psutil.Process(worker_pid).ppid() == child.pid
        child.kill()
        child.wait(10)
        deadline = time.monotonic() + 5
        while not _process_gone(worker_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _process_gone(worker_pid), "the worker outlived its controller"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
        if worker_pid is not None and not _process_gone(worker_pid):
            os.kill(worker_pid, signal.SIGKILL)
        if child.stdout is not None:
            child.stdout.close()


# -- event emitter --------------------------------------------------------------------------


def test_emitter_on_once_off() -> None:
    emitter = EnhancedEventEmitter()
    always, once = Recorder(), Recorder()
    emitter.on("x", always)
    emitter.once("x", once)
    assert emitter.emit("x", 1, "a") is True
    assert emitter.emit("x", 2, "b") is True
    assert always.calls == [(1, "a"), (2, "b")]
    assert once.calls == [(1, "a")]
    emitter.off("x", always)
    assert emitter.listener_count("x") == 0
    assert emitter.emit("x", 3, "c") is False
    assert always.calls == [(1, "a"), (2, "b")]


def test_emitter_logs_listener_errors(caplog: pytest.LogCaptureFixture) -> None:
    emitter = EnhancedEventEmitter()
    after = Recorder()

    def broken(*args: Any) -> None:
        raise RuntimeError("listener bug")

    emitter.on("x", broken)
    emitter.on("x", after)
    with caplog.at_level(logging.ERROR, logger="mediaworker.controller"):
        emitter.emit("x", 1)
    assert after.calls == [(1,)]
    assert any(r.exc_info and "listener bug" in str(r.exc_info[1]) for r in caplog.records)


@async_test
async def test_emitter_runs_async_listeners() -> None:
    emitter = EnhancedEventEmitter()
    seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def listener(value: int) -> None:
        await asyncio.sleep(0)
        seen.set_result(value)

    emitter.on("x", listener)
    emitter.emit("x", 5)
    assert await asyncio.wait_for(seen, 5) == 5
