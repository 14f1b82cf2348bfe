"""A synchronous client of the real worker process, for tests: spawn, send frames, read frames.

It talks the protocol with the shared codec only, and bounds every wait with a timeout.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from channel.codec import FrameDecoder, OversizeFrame, decode_payload, encode_frame

ROOT = Path(__file__).resolve().parent.parent


class WorkerProcess:
    """``python -m worker`` with pipes; frames are read with a deadline."""

    def __init__(self, args: Sequence[str] = (), *, wait_running: bool = True,
                 env: dict[str, str] | None = None,
                 command: Sequence[str] | None = None) -> None:
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
        if env:
            full_env.update(env)
        self.proc = subprocess.Popen(
            [*(command or [sys.executable, "-m", "worker"]), *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=ROOT, env=full_env,
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        os.set_blocking(self.proc.stdout.fileno(), False)
        # The worker's stderr is read all along: a pipe nobody reads fills up (64 KiB) and
        # then blocks the worker in its next log write.
        self._stderr_chunks: list[bytes] = []
        self._stderr_reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr_reader.start()
        self._decoder = FrameDecoder()
        self._frames: list[Any] = []
        self._next_id = 1
        self.notifications: list[dict[str, Any]] = []
        self.logs: list[dict[str, Any]] = []
        self.other_responses: list[dict[str, Any]] = []
        self.running: dict[str, Any] | None = None
        if wait_running:
            self.running = self.read_message(timeout=10)
            assert self.running.get("event") == "running", self.running

    @property
    def pid(self) -> int:
        return self.proc.pid

    # -- sending --------------------------------------------------------------------------

    def send_bytes(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, message: Any) -> None:
        self.send_bytes(encode_frame(message))

    def next_id(self) -> int:
        request_id = self._next_id
        self._next_id += 1
        return request_id

    def request(self, method: str, handler_id: str = "", data: Any = None,
                timeout: float = 10.0) -> dict[str, Any]:
        """Send a request and return its response (notifications and logs are kept aside)."""
        request_id = self.next_id()
        message: dict[str, Any] = {"id": request_id, "method": method, "handlerId": handler_id}
        if data is not None:
            message["data"] = data
        self.send(message)
        return self.wait_response(request_id, timeout)

    def ok(self, method: str, handler_id: str = "", data: Any = None) -> Any:
        """Send a request that must succeed; return its data."""
        response = self.request(method, handler_id, data)
        assert response["accepted"] is True, response
        return response.get("data")

    def wait_response(self, request_id: int, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            message: dict[str, Any] = self.read_message(
                timeout=max(0.0, deadline - time.monotonic()))
            if message.get("id") == request_id:
                return message
            self._keep(message)

    def _keep(self, message: dict[str, Any]) -> None:
        if "event" in message:
            self.notifications.append(message)
        elif "log" in message:
            self.logs.append(message)
        else:
            self.other_responses.append(message)

    # -- reading --------------------------------------------------------------------------

    def read_message(self, timeout: float = 10.0) -> Any:
        """The next decoded frame from stdout, or AssertionError after ``timeout``."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while not self._frames:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("no frame from the worker in time")
                if not sel.select(remaining):
                    continue
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError(f"worker closed stdout (exit {self.proc.poll()})")
                for item in self._decoder.feed(chunk):
                    assert not isinstance(item, OversizeFrame), item
                    self._frames.append(decode_payload(item))
        return self._frames.pop(0)

    def drain(self, quiet_s: float = 0.2) -> list[Any]:
        """Every message that arrives until the worker is quiet for ``quiet_s``."""
        got: list[Any] = []
        while True:
            try:
                got.append(self.read_message(timeout=quiet_s))
            except AssertionError:
                return got

    def stdout_rest(self, timeout: float = 5.0) -> bytes:
        """What remains on stdout until EOF (after the worker exits)."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        data = b""
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if not sel.select(max(0.0, deadline - time.monotonic())):
                    continue
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                data += chunk
        return data

    # -- lifecycle ------------------------------------------------------------------------

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def close_stdin(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def wait(self, timeout: float = 5.0) -> int:
        return self.proc.wait(timeout=timeout)

    def _read_stderr(self) -> None:
        stream = self.proc.stderr
        assert stream is not None
        fd = stream.fileno()
        while chunk := os.read(fd, 65536):
            self._stderr_chunks.append(chunk)

    def stderr_text(self) -> str:
        """Everything the worker wrote to stderr (all of it once the process has exited)."""
        if self.proc.poll() is not None:
            self._stderr_reader.join(timeout=5)
        return b"".join(self._stderr_chunks).decode(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=5)

    def close(self) -> None:
        """Close through the protocol, falling back to SIGKILL; always reaps the process."""
        try:
            if self.proc.poll() is None:
                self.close_stdin()
                self.proc.wait(timeout=3)
        except (OSError, subprocess.TimeoutExpired):
            pass
        finally:
            self.kill()
            self._stderr_reader.join(timeout=5)
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
