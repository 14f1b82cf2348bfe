"""Worker: one ``python -m worker`` subprocess and its channel (mediasoup's ``Worker``).

:func:`create_worker` spawns the process, waits for its ``running`` notification and returns the
:class:`Worker`. Events: ``died`` (error) when the process exits without having been closed,
``subprocessclose`` when the process is gone, whatever the reason. Observer events: ``close``,
``newrouter`` (router), ``newwebrtcserver`` (WebRtcServer).

The worker's stderr is read line by line into logging (``mediaworker.worker.stderr``): lines in
the worker's own log format repeat what also came on the channel and are logged at DEBUG; any
other line (a traceback, a stray print) is logged at WARNING.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import sys
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from channel.protocol import EXIT_SETTINGS_ERROR
from controller.channel import (
    DEFAULT_REQUEST_TIMEOUT_S,
    REQUEST_TIMEOUT_PER_PENDING_S,
    Channel,
    expect_map,
)
from controller.errors import ControllerError, ControllerTypeError, InvalidStateError
from controller.events import EnhancedEventEmitter
from controller.router import Router
from controller.webrtc_server import WebRtcServer, check_listen_infos

__all__ = ["WORKER_CLOSE_GRACE_S", "WORKER_STARTUP_TIMEOUT_S", "Worker", "create_worker"]

logger = logging.getLogger("mediaworker.controller")
stderr_logger = logging.getLogger("mediaworker.worker.stderr")

# The worker must exit within 2 s of worker.close (PROTOCOL.md 1); after this it is killed.
WORKER_CLOSE_GRACE_S: Final = 3.0
# A worker that has not sent `running` by then is killed and create_worker fails.
WORKER_STARTUP_TIMEOUT_S: Final = 30.0
# After the process exits, how long to wait for the rest of its stdout and stderr.
PIPE_DRAIN_TIMEOUT_S: Final = 1.0
STDERR_LINES_KEPT: Final = 20

_WORKER_LOG_LINE: Final = re.compile(r"^mediaworker:[DWE] ")


def _code_and_signal(returncode: int) -> tuple[int | None, str | None]:
    """(exit code, signal name) from an asyncio return code (negative: killed by a signal)."""
    if returncode >= 0:
        return returncode, None
    try:
        return None, signal.Signals(-returncode).name
    except ValueError:
        return None, str(-returncode)


def _source_root() -> Path | None:
    """The checkout this package runs from, when it is not installed (it holds setup.py)."""
    root = Path(__file__).resolve().parent.parent
    if (root / "setup.py").is_file() and (root / "worker" / "__main__.py").is_file():
        return root
    return None


def _child_env(env: Mapping[str, str] | None) -> dict[str, str]:
    """The worker's environment: ours, updated with ``env``, able to import ``worker``."""
    child = dict(os.environ)
    if env is not None:
        child.update(env)
    root = _source_root()
    if root is not None:
        paths = [str(root), *filter(None, child.get("PYTHONPATH", "").split(os.pathsep))]
        child["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return child


def _worker_args(
    *,
    log_level: str,
    log_tags: Sequence[str] | None,
    rtc_min_port: int | None,
    rtc_max_port: int | None,
    dtls_certificate_file: str | os.PathLike[str] | None,
    dtls_private_key_file: str | os.PathLike[str] | None,
) -> list[str]:
    args = [f"--logLevel={log_level}"]
    args += [f"--logTag={tag}" for tag in log_tags or ()]
    if rtc_min_port is not None:
        args.append(f"--rtcMinPort={rtc_min_port}")
    if rtc_max_port is not None:
        args.append(f"--rtcMaxPort={rtc_max_port}")
    if dtls_certificate_file is not None:
        args.append(f"--dtlsCertificateFile={os.fspath(dtls_certificate_file)}")
    if dtls_private_key_file is not None:
        args.append(f"--dtlsPrivateKeyFile={os.fspath(dtls_private_key_file)}")
    return args


async def create_worker(
    *,
    log_level: str = "error",
    log_tags: Sequence[str] | None = None,
    rtc_min_port: int | None = None,
    rtc_max_port: int | None = None,
    dtls_certificate_file: str | os.PathLike[str] | None = None,
    dtls_private_key_file: str | os.PathLike[str] | None = None,
    app_data: dict[str, Any] | None = None,
    python: str = sys.executable,
    worker_args: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
) -> Worker:
    """Spawn ``python -m worker`` with these settings and wait until it runs.

    ``worker_args`` are appended to the command line; ``env`` updates the inherited environment.
    Requests time out after ``request_timeout_s`` plus 0.1 s per request already pending.

    Raises :class:`ControllerTypeError` (a ``TypeError``) when the worker refuses its settings
    (exit code 42), :class:`ControllerError` when it exits or stays silent before ``running``.
    """
    args = _worker_args(
        log_level=log_level,
        log_tags=log_tags,
        rtc_min_port=rtc_min_port,
        rtc_max_port=rtc_max_port,
        dtls_certificate_file=dtls_certificate_file,
        dtls_private_key_file=dtls_private_key_file,
    )
    process = await asyncio.create_subprocess_exec(
        python,
        "-m",
        "worker",
        *args,
        *(worker_args or ()),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_child_env(env),
    )
    worker = Worker(process, app_data=app_data, request_timeout_s=request_timeout_s)
    try:
        await worker._wait_running(WORKER_STARTUP_TIMEOUT_S)
    except BaseException:
        await worker._abort()
        raise
    return worker


class Worker(EnhancedEventEmitter):
    """A running worker process. Create it with :func:`create_worker`.

    Usable as ``async with await create_worker() as worker:``, which closes it on exit.
    """

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        *,
        app_data: dict[str, Any] | None = None,
        request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
    ) -> None:
        super().__init__()
        if process.stdin is None or process.stdout is None or process.stderr is None:
            raise ValueError("the worker process needs stdin, stdout and stderr pipes")
        loop = asyncio.get_running_loop()
        self._process = process
        self._pid: int = process.pid
        self.app_data: dict[str, Any] = app_data if app_data is not None else {}
        self._observer = EnhancedEventEmitter()
        self._routers: dict[str, Router] = {}
        self._webrtc_servers: dict[str, WebRtcServer] = {}
        self._closed = False
        self._died = False
        self._version: str | None = None
        self._returncode: int | None = None
        self._close_task: asyncio.Task[None] | None = None
        self._stderr_lines: deque[str] = deque(maxlen=STDERR_LINES_KEPT)
        self._running: asyncio.Future[None] = loop.create_future()
        self._channel = Channel(
            process.stdin,
            pid=self._pid,
            request_timeout_s=request_timeout_s,
            request_timeout_per_pending_s=REQUEST_TIMEOUT_PER_PENDING_S,
        )
        self._channel.add_listener(str(self._pid), self._on_worker_notification)
        self._read_task = self._channel.start(process.stdout)
        self._stderr_task = loop.create_task(
            self._read_stderr(process.stderr), name=f"mediaworker-stderr-{self._pid}"
        )
        self._exit_task = loop.create_task(self._watch_exit(), name=f"mediaworker-exit-{self._pid}")

    def __repr__(self) -> str:
        state = "died" if self._died else "closed" if self._closed else "running"
        return f"<Worker pid={self._pid} {state}>"

    async def __aenter__(self) -> Worker:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- properties -----------------------------------------------------------------------

    @property
    def pid(self) -> int:
        return self._pid

    @property
    def version(self) -> str | None:
        """The version the worker announced in its ``running`` notification."""
        return self._version

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def died(self) -> bool:
        return self._died

    @property
    def subprocess_closed(self) -> bool:
        return self._returncode is not None

    @property
    def returncode(self) -> int | None:
        """The process's exit status once it is gone (negative: killed by that signal)."""
        return self._returncode

    @property
    def observer(self) -> EnhancedEventEmitter:
        return self._observer

    # -- requests -------------------------------------------------------------------------

    async def _request(self, method: str, data: Mapping[str, Any] | None = None) -> Any:
        if self._closed:
            raise InvalidStateError(f"worker closed [method:{method}]")
        return await self._channel.request(method, "", data)

    async def dump(self) -> dict[str, Any]:
        return expect_map(await self._request("worker.dump"), "worker.dump")

    async def get_resource_usage(self) -> dict[str, Any]:
        """``getrusage`` of the worker process (``ru_utime``, ``ru_maxrss`` ...)."""
        return expect_map(await self._request("worker.getResourceUsage"), "worker.getResourceUsage")

    async def update_settings(
        self, *, log_level: str | None = None, log_tags: Sequence[str] | None = None
    ) -> None:
        """Change the log level and/or tags; the worker answers bad values with TypeError."""
        data: dict[str, Any] = {}
        if log_level is not None:
            data["logLevel"] = log_level
        if log_tags is not None:
            data["logTags"] = list(log_tags)
        await self._request("worker.updateSettings", data)

    async def create_router(
        self,
        *,
        media_codecs: Sequence[Mapping[str, Any]] | None = None,
        app_data: dict[str, Any] | None = None,
    ) -> Router:
        router_id = str(uuid.uuid4())
        codecs = [dict(codec) for codec in media_codecs or ()]
        method = "worker.createRouter"
        result = expect_map(
            await self._request(method, {"routerId": router_id, "mediaCodecs": codecs}), method
        )
        rtp_capabilities = expect_map(result.get("rtpCapabilities"), method)
        if self._closed:
            raise InvalidStateError(f"worker closed while creating a router [method:{method}]")
        router = Router(
            channel=self._channel,
            router_id=router_id,
            rtp_capabilities=rtp_capabilities,
            app_data=app_data,
        )
        self._routers[router_id] = router
        router.once("@close", lambda: self._routers.pop(router_id, None))
        self._observer.emit("newrouter", router)
        return router

    async def create_webrtc_server(
        self,
        *,
        listen_infos: Sequence[Mapping[str, Any]],
        app_data: dict[str, Any] | None = None,
    ) -> WebRtcServer:
        """``worker.createWebRtcServer``: shared sockets for WebRtcTransports."""
        method = "worker.createWebRtcServer"
        infos = check_listen_infos(listen_infos)
        if app_data is not None and not isinstance(app_data, dict):
            raise ControllerTypeError("app_data must be a dict")
        server_id = str(uuid.uuid4())
        await self._request(method, {"webRtcServerId": server_id, "listenInfos": infos})
        if self._closed:
            raise InvalidStateError(
                f"worker closed while creating a WebRtcServer [method:{method}]"
            )
        server = WebRtcServer(channel=self._channel, webrtc_server_id=server_id, app_data=app_data)
        self._webrtc_servers[server_id] = server
        server.once("@close", lambda: self._webrtc_servers.pop(server_id, None))
        self._observer.emit("newwebrtcserver", server)
        return server

    # -- close ----------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the worker: ``worker.close``, then wait for the process to exit (killed after
        :data:`WORKER_CLOSE_GRACE_S`). Routers emit ``workerclose``; the observer emits ``close``
        once the process is gone. Closing twice, or a worker that died, is a no-op.
        """
        if self._close_task is None:
            if self._closed:
                return
            self._closed = True
            self._close_routers()
            self._close_task = asyncio.get_running_loop().create_task(self._shutdown())
        await asyncio.shield(self._close_task)

    async def _shutdown(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WORKER_CLOSE_GRACE_S
        try:
            await self._channel.request("worker.close", timeout_s=WORKER_CLOSE_GRACE_S)
        except ControllerError as exc:
            logger.debug("worker [pid:%d]: worker.close failed: %s", self._pid, exc)
        done, _ = await asyncio.wait({self._exit_task}, timeout=max(0.0, deadline - loop.time()))
        if not done:
            logger.warning(
                "worker [pid:%d] did not exit within %g s of worker.close: killing it",
                self._pid,
                WORKER_CLOSE_GRACE_S,
            )
            self._kill()
            await self._exit_task
        self._channel.close("worker closed")
        self._observer.emit("close")

    def _close_routers(self) -> None:
        """Close the routers, then the WebRtcServers (mediasoup's order), locally."""
        routers, self._routers = self._routers, {}
        for router in routers.values():
            router._worker_closed()
        servers, self._webrtc_servers = self._webrtc_servers, {}
        for server in servers.values():
            server._worker_closed()

    def _kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self._process.kill()

    # -- process life ---------------------------------------------------------------------

    async def _wait_running(self, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(self._running), timeout_s)
        except TimeoutError:
            raise ControllerError(
                f"worker process sent no 'running' notification within {timeout_s:g} s "
                f"[pid:{self._pid}]"
            ) from None

    async def _abort(self) -> None:
        """Start-up failed or was cancelled: make sure the process is gone."""
        self._closed = True
        if self._returncode is None:
            self._kill()
        await asyncio.wait({self._exit_task}, timeout=WORKER_CLOSE_GRACE_S)

    def _on_worker_notification(self, event: str, data: Any) -> None:
        if event != "running" or self._running.done():
            logger.debug("worker [pid:%d]: unexpected notification %r", self._pid, event)
            return
        if isinstance(data, dict) and isinstance(data.get("version"), str):
            self._version = data["version"]
        logger.debug("worker [pid:%d] running, version %s", self._pid, self._version)
        self._running.set_result(None)

    async def _read_stderr(self, stream: asyncio.StreamReader) -> None:
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # a line longer than the stream's limit: dropped
                stderr_logger.warning("[pid:%d] (an over-long stderr line was dropped)", self._pid)
                continue
            except OSError:
                return
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not line:
                continue
            self._stderr_lines.append(line)
            level = logging.DEBUG if _WORKER_LOG_LINE.match(line) else logging.WARNING
            stderr_logger.log(level, "[pid:%d] %s", self._pid, line)

    async def _watch_exit(self) -> None:
        returncode = await self._process.wait()
        await asyncio.wait({self._read_task, self._stderr_task}, timeout=PIPE_DRAIN_TIMEOUT_S)
        self._returncode = returncode
        code, sig = _code_and_signal(returncode)
        where = f"[pid:{self._pid}, code:{code}, signal:{sig}]"
        self._channel.close(f"worker process exited {where}")
        assert self._process.stdin is not None
        self._process.stdin.close()
        if not self._running.done():
            self._closed = True
            self._running.set_exception(self._startup_error(code, where))
            self._running.exception()  # retrieved: create_worker may have stopped waiting
        elif not self._closed:
            self._died = True
            self._closed = True
            error = ControllerError(f"worker process died unexpectedly {where}")
            logger.error("%s", error)
            self._close_routers()
            self.emit("died", error)
            self._observer.emit("close")
        self.emit("subprocessclose")

    def _startup_error(self, code: int | None, where: str) -> ControllerError:
        last = self._stderr_lines[-1] if self._stderr_lines else ""
        if code == EXIT_SETTINGS_ERROR:
            reason = last.removeprefix("mediaworker: ").removeprefix("wrong settings: ")
            return ControllerTypeError(f"wrong settings: {reason or 'no reason given'} {where}")
        suffix = f": {last}" if last else ""
        return ControllerError(f"worker process exited before running {where}{suffix}")
