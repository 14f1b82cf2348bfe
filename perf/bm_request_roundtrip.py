"""Benchmark request round trips through the real worker process (pyperf).

Usage::

    python -m perf.bm_request_roundtrip            # full run
    python -m perf.bm_request_roundtrip --fast     # quick run
    python -m perf.bm_request_roundtrip --fast --request=worker.getResourceUsage

Each pyperf benchmark process spawns one ``python -m worker`` with pipes, waits for its
``running`` notification, creates one router, and reuses that worker for every value it
measures. Two benchmarks, both reporting the time **per round trip**:

- ``roundtrip_1_in_flight``: one request, wait for its response, repeat (latency-bound);
- ``roundtrip_64_in_flight``: 64 request frames in one ``write``, then read until the 64
  responses arrived (throughput-bound; the time of a batch is divided by 64 with
  ``inner_loops``).

The request is ``router.dump`` on the created router by default: the path most requests take
(a handlerId looked up in the registry, an entity's handler, a small map back: 82-byte request
and 241-byte response frames) with no system call in the handler.
``--request=worker.getResourceUsage`` (one ``getrusage`` call) and ``--request=worker.dump``
are the alternatives.

The client is kept cheap so the figure measures the worker: blocking pipes, the request frames
encoded once up front (ids 1..64, reused once answered), one ``os.write`` per batch, a
:class:`~channel.codec.FrameDecoder`, and every response checked (right count, ``accepted``):
decoded with raw ``msgpack.unpackb`` the first time a payload is seen, by a set lookup of its
bytes when it repeats one already checked (``router.dump`` answers the same bytes for the
same id). The batch is a ping-pong (the worker waits while the client reads the 64
responses), so what the client spends per response adds to the time measured.

When run directly, the last line printed is a summary computed from pyperf's results
(``1 / mean time per round trip``), e.g.::

    summary: router.dump round trips/s: 1 in flight 23,768; 64 in flight 217,447 (goal: ...)

The benchmark client and the worker are two processes: give the machine two idle cores
(``--affinity`` pins the worker too, since it inherits the client's affinity).
"""

from __future__ import annotations

import argparse
import atexit
import os
import select
import subprocess
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from time import perf_counter
from typing import Any, Final

import msgpack
import pyperf

from channel.codec import FrameDecoder, OversizeFrame, encode_frame

__all__ = [
    "BATCH_REQUESTS",
    "BENCHMARK_NAMES",
    "GOAL_ROUND_TRIPS_PER_S",
    "REQUESTS",
    "WorkerClient",
    "main",
]

ROOT: Final = Path(__file__).resolve().parent.parent
BATCH_REQUESTS: Final = 64
GOAL_ROUND_TRIPS_PER_S: Final = 20_000
START_TIMEOUT_S: Final = 15.0
READ_CHUNK_BYTES: Final = 256 * 1024
KNOWN_RESPONSES_MAX: Final = 4096  # verified response payloads remembered by the client
ROUTER_ID: Final = str(uuid.UUID(int=0x6D656469_61776F72_6B657262_656E6368, version=4))
ROUTER_CODECS: Final[list[dict[str, Any]]] = [
    {"kind": "audio", "mimeType": "audio/opus", "clockRate": 48000, "channels": 2},
    {"kind": "video", "mimeType": "video/VP8", "clockRate": 90000},
]
REQUESTS: Final = ("router.dump", "worker.getResourceUsage", "worker.dump")
BENCHMARK_NAMES: Final = ("roundtrip_1_in_flight", f"roundtrip_{BATCH_REQUESTS}_in_flight")


class WorkerError(RuntimeError):
    """The worker died, did not start, or refused a benchmark request."""


class WorkerClient:
    """A minimal synchronous controller over blocking pipes, for measuring the worker."""

    def __init__(self, command: Sequence[str] | None = None) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(
            list(command or [sys.executable, "-m", "worker"]),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None,
            cwd=ROOT, env=env, bufsize=0,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._wfd = self.proc.stdin.fileno()
        self._rfd = self.proc.stdout.fileno()
        self._decoder = FrameDecoder()
        self._next_id = 1
        self._queue: list[Any] = []  # messages read during setup, not yet consumed
        self._known: set[bytes | OversizeFrame] = set()  # accepted response payloads seen
        running = self._read_message(START_TIMEOUT_S)
        if running.get("event") != "running":
            raise WorkerError(f"expected the running notification first, got {running!r}")

    def _read_message(self, timeout_s: float) -> dict[str, Any]:
        """The next message, waiting at most ``timeout_s`` for each read (setup only)."""
        while not self._queue:
            ready, _, _ = select.select([self._rfd], [], [], timeout_s)
            if not ready:
                raise WorkerError(f"no frame from the worker within {timeout_s} s")
            chunk = os.read(self._rfd, READ_CHUNK_BYTES)
            if not chunk:
                raise WorkerError(f"the worker closed its stdout (exit {self.proc.poll()})")
            self._queue.extend(msgpack.unpackb(item) for item in self._decoder.feed(chunk)
                               if isinstance(item, bytes))
        message: dict[str, Any] = self._queue.pop(0)
        return message

    def request(self, method: str, handler_id: str = "", data: Any = None) -> Any:
        """One request answered with success, outside the timed loops; returns its data."""
        request_id = self._next_id
        self._next_id += 1
        os.write(self._wfd, encode_frame(
            {"id": request_id, "method": method, "handlerId": handler_id, "data": data or {}}))
        while True:
            message = self._read_message(START_TIMEOUT_S)
            if message.get("id") == request_id:
                if not message.get("accepted"):
                    raise WorkerError(f"{method} refused: {message.get('reason')}")
                return message.get("data")

    def exchange(self, frames: bytes, count: int) -> None:
        """Write ``frames`` (``count`` requests) at once, then read until ``count`` responses.

        The hot loop of both benchmarks. A response payload byte-identical to one already
        checked (decoded, ``accepted``) is counted without decoding it again: ``router.dump``
        answers the same bytes for the same id, so the client spends a hash per response, not
        a msgpack decode, and the figure is the worker's. Anything else is decoded and checked.
        """
        view = memoryview(frames)
        while view:
            view = view[os.write(self._wfd, view) :]
        feed = self._decoder.feed
        known = self._known
        answered = 0
        while answered < count:
            chunk = os.read(self._rfd, READ_CHUNK_BYTES)
            if not chunk:
                raise WorkerError(f"the worker closed its stdout (exit {self.proc.poll()})")
            for payload in feed(chunk):
                if payload in known or self._check(payload):
                    answered += 1

    def _check(self, payload: bytes | OversizeFrame) -> bool:
        """Decode a payload not seen before: True for an accepted response, False for a
        notification or a log; a refused request is an error."""
        if isinstance(payload, OversizeFrame):
            raise WorkerError(f"the worker sent a frame of {payload.length} bytes")
        message = msgpack.unpackb(payload)
        if "id" not in message:
            return False
        if not message.get("accepted"):
            raise WorkerError(f"request refused: {message.get('reason')}")
        if len(self._known) < KNOWN_RESPONSES_MAX:
            self._known.add(payload)
        return True

    def close(self) -> None:
        """EOF on the worker's stdin: it closes itself; killed if it has not within 5 s."""
        if self.proc.poll() is not None:
            return
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


def request_frames(method: str, count: int) -> bytes:
    """``count`` request frames for ``method``, ids 1..count, joined as one write."""
    handler_id = ROUTER_ID if method.startswith("router.") else ""
    return b"".join(
        encode_frame({"id": i, "method": method, "handlerId": handler_id, "data": {}})
        for i in range(1, count + 1)
    )


_client: WorkerClient | None = None


def _worker_client() -> WorkerClient:
    """The one worker of this benchmark process, started (with its router) on first use."""
    global _client
    if _client is None:
        client = WorkerClient()
        atexit.register(client.close)
        client.request("worker.createRouter", "",
                       {"routerId": ROUTER_ID, "mediaCodecs": ROUTER_CODECS})
        _client = client
    return _client


def time_round_trips(loops: int, frames: bytes, count: int) -> float:
    """``loops`` batches of ``count`` requests (one write each) and their responses."""
    client = _worker_client()
    exchange = client.exchange
    exchange(frames, count)  # the request is valid and the worker is awake
    t0 = perf_counter()
    for _ in range(loops):
        exchange(frames, count)
    return perf_counter() - t0


def _add_worker_args(cmd: list[str], args: argparse.Namespace) -> None:
    cmd.append(f"--request={args.request}")


def _print_summary(method: str, benches: Sequence[pyperf.Benchmark | None]) -> None:
    rates = [f"{b.get_name().split('_')[1]} in flight {1.0 / b.mean():,.0f}"
             for b in benches if b is not None]
    if rates:
        print(f"summary: {method} round trips/s: {'; '.join(rates)} "
              f"(goal: >= {GOAL_ROUND_TRIPS_PER_S:,} with {BATCH_REQUESTS} in flight)")


def main() -> None:
    # Spawn pyperf's benchmark processes the way this one was started (`-m` or a script).
    program_args = ("-m", __spec__.name) if __spec__ is not None else (sys.argv[0],)
    runner = pyperf.Runner(program_args=program_args, add_cmdline_args=_add_worker_args)
    runner.argparser.add_argument(
        "--request", choices=REQUESTS, default=REQUESTS[0],
        help="the request whose round trips are measured (default: %(default)s)")
    args = runner.parse_args()
    runner.metadata["description"] = "Request round trips through python -m worker"
    runner.metadata["request"] = args.request

    benches = [
        runner.bench_time_func(BENCHMARK_NAMES[0], time_round_trips,
                               request_frames(args.request, 1), 1),
        runner.bench_time_func(BENCHMARK_NAMES[1], time_round_trips,
                               request_frames(args.request, BATCH_REQUESTS), BATCH_REQUESTS,
                               inner_loops=BATCH_REQUESTS),
    ]
    if not args.worker:
        _print_summary(args.request, benches)


if __name__ == "__main__":
    main()
