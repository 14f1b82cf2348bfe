"""The fan-out harness's machinery: the C programs, the rig around one forwarder, the runs.

``python -m perf.fanout`` (:mod:`perf.fanout`) is the command line; ``perf/bm_fanout.py`` and
``tests/test_fanout_smoke.py`` use this module directly. What a run does:

- three C programs from ``perf/fanout_c/`` are built with the system ``cc`` (cached in
  ``build/fanout_c/<hash of the sources>/``): the load generator ``fanout_gen``, the receivers
  ``fanout_recv`` (N UDP sockets in one process that count and check every packet) and the
  baseline forwarder ``fanout_fwd`` (recvmmsg, then one sendmmsg per destination, no parsing);
- a :class:`Rig` starts the receivers and one forwarder: either ``python -m worker`` through the
  Python controller, with a router, one producer PlainTransport (comedia, rtcpMux) and N consumer
  PlainTransports connected to the receivers' sockets, all with ``enableSrtp``
  (AES_CM_128_HMAC_SHA1_80) for an SRTP variant; or the baseline forwarder, sending to the same
  sockets. Every socket of the rig (transports' ``listenInfo`` ``sendBufferSize`` and
  ``recvBufferSize``, receivers, generator, baseline) asks for the same buffer sizes;
- the rig primes the stream (key frames until every consumer forwards); a run then sends
  ``rate`` input packets per second for ``seconds`` from the generator, a separate process, each
  packet carrying its run and index in its payload (``perf/fanout_c/fanout.h``). With SRTP the
  packets are protected beforehand here with pylibsrtp and the generator replays them from a
  file; sequence numbers and the SRTP session go on from run to run;
- the forwarder's CPU time (user + system, its process CPU clock: what ``/proc/<pid>/stat``'s
  utime + stime count, at ns resolution) is read from just before the generator starts until
  the forwarder is idle again after it stops, and the receivers say what came, per consumer:
  packets whose payload is byte-exact, duplicates, reordering, header errors (the consumer's
  SSRC and payload type from its ``rtpParameters``, the marker, a consistent sequence number and
  timestamp rewrite), payload errors, SRTP failures (receivers unprotect with the consumer
  transport's ``srtpParameters`` key, through libsrtp);
- :meth:`Rig.search` looks for the highest input rate forwarded with under 1% loss, by a
  forwarder that keeps up (idle again within 5% of the run's length after the last packet was
  sent: a short run's backlog fits in the socket buffer and would otherwise pass).

CPU per output packet = the forwarder's CPU time over the window / packets the receivers got
byte-exact. It holds on a shared machine; rates and the search do not. Everything is on
127.0.0.1 and bounded in time; every process started here is stopped when its rig closes.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import ctypes.util
import hashlib
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import pylibsrtp

from controller import Worker, create_worker

__all__ = ["DEFAULT_VARIANTS", "CheckError", "Rig", "RunResult", "SearchResult", "Tools",
           "Variant", "VariantResult", "build_tools", "check", "run_variant"]

ROOT: Final = Path(__file__).resolve().parent.parent
C_DIR: Final = Path(__file__).resolve().parent / "fanout_c"
BUILD_DIR: Final = ROOT / "build" / "fanout_c"
PROGRAMS: Final = ("fanout_gen", "fanout_recv", "fanout_fwd")  # Tools' fields, in order
CFLAGS: Final = ("-O2", "-std=gnu11", "-Wall", "-Wextra")

LISTEN_IP: Final = "127.0.0.1"
SRTP_SUITE: Final = "AES_CM_128_HMAC_SHA1_80"  # the default; AEAD_AES_128_GCM with --gcm
# crypto suite -> (master key + salt bytes, pylibsrtp profile, the variant name's word)
SRTP_SUITES: Final = {
    "AES_CM_128_HMAC_SHA1_80": (30, pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80, "srtp"),
    "AEAD_AES_128_GCM": (28, pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM, "gcm"),
}
BUFFER_BYTES: Final = 2 * 1024 * 1024  # SO_SNDBUF and SO_RCVBUF asked of every socket
PRODUCER_SSRC: Final = 0x0FA0_0001
PT_BY_KIND: Final = {"audio": 111, "video": 96}
KIND_BY_SIZE: Final = {200: "audio", 1200: "video"}  # payload bytes -> what the producer is
KEYFRAME_INTERVAL_PACKETS: Final = 300  # a VP8 key frame every 30 frames of 10 packets
FRAME_PACKETS: Final = 10  # fanout.h FO_VIDEO_FRAME_PACKETS
VIDEO_TS_STEP: Final = 3000  # FO_VIDEO_TS_STEP: per frame, 90 kHz
AUDIO_TS_STEP: Final = 960  # FO_AUDIO_TS_STEP: per packet, 48 kHz
DEFAULT_OUTPUT_PPS: Final = 30_000  # default input rate = this / N ...
MAX_DEFAULT_INPUT_PPS: Final = 10_000  # ... at most this
MAX_LOSS_PCT: Final = 1.0
PRIME_RATE_PPS: Final = 500
PRIME_PACKETS: Final = 60
PRIME_ATTEMPTS: Final = 5
WARMUP_S: Final = 0.5
IDLE_POLL_S: Final = 0.005
IDLE_TIMEOUT_S: Final = 3.0
QUIET_MS: Final = 150  # receivers report after this long without a packet of the run
REPORT_MAX_MS: Final = 5000
PROCESS_TIMEOUT_S: Final = 10.0
SEARCH_STEPS: Final = 8
SEARCH_PRECISION: Final = 1.1  # stop once the failing rate is within 10% of the passing one
MAX_LAG_FRACTION: Final = 0.05  # a forwarder that keeps up is idle this soon after the sender
MAX_LAG_S: Final = 0.02  # ... plus this

MEDIA_CODECS: Final[list[dict[str, Any]]] = [
    {"kind": "audio", "mimeType": "audio/opus", "clockRate": 48000, "channels": 2},
    {"kind": "video", "mimeType": "video/VP8", "clockRate": 90000},
]


# -- variants and results ---------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One configuration: N consumers, SRTP or not (and its crypto suite), payload bytes (200:
    Opus, 1200: VP8)."""

    consumers: int
    srtp: bool
    size: int
    suite: str = SRTP_SUITE

    @property
    def kind(self) -> str:
        return KIND_BY_SIZE[self.size]

    @property
    def name(self) -> str:
        word = SRTP_SUITES[self.suite][2] if self.srtp else "plain"
        return f"n{self.consumers}_{word}_{self.size}"

    @property
    def key_bytes(self) -> int:
        return SRTP_SUITES[self.suite][0]

    def default_rate(self) -> int:
        return min(MAX_DEFAULT_INPUT_PPS, DEFAULT_OUTPUT_PPS // self.consumers)


DEFAULT_VARIANTS: Final = (
    Variant(10, False, 1200),
    Variant(10, True, 1200),
    Variant(100, False, 1200),
    Variant(1, False, 200),
)


@dataclass(frozen=True)
class ConsumerCounts:
    """One consumer's line of the receivers' report (``fanout_recv.c``)."""

    received: int
    unique: int
    dup: int
    reorder: int
    header: int
    payload: int
    stale: int
    rtcp: int
    srtp: int
    other: int


@dataclass
class RunResult:
    """One measured run of the generator through one forwarder (``worker`` or ``baseline``)."""

    target: str
    consumers: int
    rate: float  # input packets/s asked of the generator
    sent: int
    elapsed_s: float  # the generator's sending time
    cpu_ns: int  # the forwarder's CPU time over the window
    receiver_cpu_ns: int
    counts: list[ConsumerCounts] = field(repr=False)
    worker_received: int | None = None  # the producer transport's rtpPacketsReceived
    lag_s: float = 0.0  # how long the forwarder stayed busy after the generator's last packet

    @property
    def unique(self) -> int:
        return sum(c.unique for c in self.counts)

    @property
    def in_pps(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def out_pps(self) -> float:
        return self.unique / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def kept_up(self) -> bool:
        """Whether the forwarder went idle soon after the generator stopped: it forwarded at the
        input rate, rather than working off a backlog its socket buffer absorbed."""
        return self.lag_s <= MAX_LAG_FRACTION * self.elapsed_s + MAX_LAG_S

    @property
    def loss_pct(self) -> float:
        expected = self.sent * self.consumers
        return 100.0 * (expected - self.unique) / expected if expected else 0.0

    @property
    def cpu_us_per_output(self) -> float:
        return self.cpu_ns / 1000.0 / self.unique if self.unique else math.inf

    @property
    def errors(self) -> dict[str, int]:
        """What the receivers' checks found wrong, summed over consumers (only non-zero)."""
        totals = {name: sum(getattr(c, name) for c in self.counts)
                  for name in ("dup", "reorder", "header", "payload", "srtp", "other")}
        return {name: n for name, n in totals.items() if n}

    def summary(self) -> dict[str, Any]:
        return {"target": self.target, "rate": self.rate, "sent": self.sent,
                "elapsed_s": round(self.elapsed_s, 4), "in_pps": round(self.in_pps, 1),
                "out_pps": round(self.out_pps, 1), "loss_pct": round(self.loss_pct, 4),
                "cpu_us_per_output": round(self.cpu_us_per_output, 4),
                "receiver_cpu_us_per_output": round(
                    self.receiver_cpu_ns / 1000.0 / max(1, self.unique), 4),
                "worker_received": self.worker_received, "lag_s": round(self.lag_s, 4),
                "errors": self.errors}


@dataclass
class SearchResult:
    """The rate search: the highest input rate with loss under MAX_LOSS_PCT that the forwarder
    kept up with, and every step."""

    best: RunResult | None
    steps: list[RunResult]
    generator_bound: bool  # the generator could not send as fast as asked

    @property
    def best_in_pps(self) -> float | None:
        return None if self.best is None else self.best.in_pps


def _ratio(worker: RunResult | None, baseline: RunResult | None) -> float | None:
    if worker is None or baseline is None:
        return None
    return worker.cpu_us_per_output / baseline.cpu_us_per_output


@dataclass
class VariantResult:
    """A variant's runs: the worker and the baseline at the same rate; with the search, also
    the baseline at the worker's best rate."""

    variant: Variant
    worker: RunResult
    baseline: RunResult | None
    search: SearchResult | None = None
    baseline_at_best: RunResult | None = None
    baseline_search: SearchResult | None = None  # the baseline's own highest rate

    @property
    def ratio(self) -> float | None:
        return _ratio(self.worker, self.baseline)

    @property
    def ratio_at_best(self) -> float | None:
        return _ratio(None if self.search is None else self.search.best, self.baseline_at_best)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"variant": self.variant.name, **asdict(self.variant),
                               "worker": self.worker.summary(),
                               "baseline": self.baseline.summary() if self.baseline else None,
                               "ratio": None if self.ratio is None else round(self.ratio, 3)}
        if self.search is not None:
            ratio = self.ratio_at_best
            out["search"] = {
                "best_in_pps": self.search.best_in_pps,
                "generator_bound": self.search.generator_bound,
                "steps": [s.summary() for s in self.search.steps],
                "baseline_at_best": (self.baseline_at_best.summary()
                                     if self.baseline_at_best else None),
                "ratio_at_best": None if ratio is None else round(ratio, 3)}
        if self.baseline_search is not None:
            out["baseline_search"] = {
                "best_in_pps": self.baseline_search.best_in_pps,
                "generator_bound": self.baseline_search.generator_bound,
                "steps": [s.summary() for s in self.baseline_search.steps]}
        return out


class CheckError(AssertionError):
    """The receivers found packets that were not forwarded as they should have been."""


# -- the C programs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Tools:
    """Paths of the compiled programs."""

    gen: Path
    recv: Path
    fwd: Path


def build_tools(build_dir: Path = BUILD_DIR) -> Tools:
    """Compile the programs once per version of their sources (atomically: a concurrent build
    of the same sources is harmless) and return their paths."""
    sources = sorted(C_DIR.glob("*.[ch]"))
    cc = os.environ.get("CC", "cc")
    digest = hashlib.sha256(" ".join((cc, *CFLAGS)).encode())
    for path in sources:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    out = build_dir / digest.hexdigest()[:16]
    tools = Tools(*(out / name for name in PROGRAMS))
    if all(p.exists() for p in (tools.gen, tools.recv, tools.fwd)):
        return tools
    build_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="tmp-", dir=build_dir))
    try:
        for name in PROGRAMS:
            subprocess.run([cc, *CFLAGS, "-o", str(tmp / name), str(C_DIR / f"{name}.c"), "-ldl"],
                           check=True, capture_output=True, text=True, timeout=120)
        with contextlib.suppress(OSError):  # another process may have built it meanwhile
            tmp.rename(out)
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"compiling {exc.cmd[-2]} failed:\n{exc.stderr}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return tools


def srtp_library() -> tuple[str, str | None]:
    """What the receivers dlopen for libsrtp 2.x: pylibsrtp's bundled copy (the worker's own), with
    libpython preloaded for that module's unresolved symbols, else the system's libsrtp2."""
    from pylibsrtp._binding import ffi  # noqa: PLC0415  (only SRTP runs need it)

    layout = (ffi.sizeof("srtp_policy_t"), ffi.offsetof("srtp_policy_t", "key"),
              ffi.offsetof("srtp_policy_t", "window_size"))
    if layout != (128, 56, 88):  # what fanout_recv.c's struct srtp_policy assumes
        raise RuntimeError(f"pylibsrtp's srtp_policy_t layout changed: {layout}")
    binding = sys.modules["pylibsrtp._binding"].__file__
    libdir, soname = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME")
    if binding and sysconfig.get_config_var("Py_ENABLE_SHARED") and libdir and soname:
        libpython = Path(libdir) / soname
        if libpython.exists():
            return binding, str(libpython)
    system = ctypes.util.find_library("srtp2")
    if system:
        return system, None
    raise RuntimeError("no libsrtp 2.x for the receivers: Python is not a shared build and "
                       "libsrtp2 is not installed")


# -- processes --------------------------------------------------------------------------------

_children: set[asyncio.subprocess.Process] = set()


def _kill_children() -> None:
    """At exit: kill any process this module started that is still running (by its pid)."""
    for proc in list(_children):
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
    _children.clear()


atexit.register(_kill_children)


async def _spawn(*argv: str | Path, stdin: bool = False,
                 pass_fds: Sequence[int] = ()) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        *map(str, argv), stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, pass_fds=pass_fds)
    _children.add(proc)
    return proc


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """Close stdin, give the process a moment, then kill it (only this process)."""
    if proc.stdin is not None and not proc.stdin.is_closing():
        proc.stdin.close()
    try:
        await asyncio.wait_for(proc.wait(), 2.0)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
    _children.discard(proc)


async def _line(proc: asyncio.subprocess.Process, what: str) -> str:
    assert proc.stdout is not None
    try:
        raw = await asyncio.wait_for(proc.stdout.readline(), PROCESS_TIMEOUT_S)
    except TimeoutError:
        raise RuntimeError(f"{what} said nothing for {PROCESS_TIMEOUT_S} s") from None
    if not raw:
        err = await proc.stderr.read() if proc.stderr is not None else b""
        raise RuntimeError(f"{what} exited: {err.decode(errors='replace').strip()}")
    return raw.decode().strip()


def cpu_ns(pid: int) -> int:
    """CPU time (user + system, all threads) of process ``pid``: its process CPU clock, the
    ``clock_getcpuclockid(pid)`` id on Linux."""
    return time.clock_gettime_ns(((~pid) << 3) | 2)


async def wait_idle(pid: int) -> int:
    """Wait until the CPU clock of ``pid`` stops moving for IDLE_POLL_S; returns its value."""
    deadline = time.monotonic() + IDLE_TIMEOUT_S
    before = cpu_ns(pid)
    while True:
        await asyncio.sleep(IDLE_POLL_S)
        now = cpu_ns(pid)
        if now == before or time.monotonic() > deadline:
            return now
        before = now


class Receivers:
    """The ``fanout_recv`` process: one socket per consumer."""

    def __init__(self, proc: asyncio.subprocess.Process, ports: list[int]) -> None:
        self.proc = proc
        self.ports = ports

    @classmethod
    async def start(cls, tools: Tools, count: int, buffer_bytes: int, srtp: bool) -> Receivers:
        args: list[str | Path] = [tools.recv, "--count", str(count), "--rcvbuf", str(buffer_bytes)]
        if srtp:
            lib, preload = srtp_library()
            args += ["--srtp-lib", lib] + (["--preload", preload] if preload else [])
        proc = await _spawn(*args, stdin=True)
        try:
            words = (await _line(proc, "fanout_recv")).split()
            if words[0] != "ports" or len(words) != count + 1:
                raise RuntimeError(f"fanout_recv said {words!r}")
        except BaseException:
            await _stop(proc)
            raise
        return cls(proc, [int(w) for w in words[1:]])

    async def _send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode())
        await self.proc.stdin.drain()

    async def expect(self, expected: Sequence[tuple[int, int, bytes | None]]) -> None:
        """Each consumer's (SSRC, payload type, SRTP key or None)."""
        await self._send("".join(f"expect {i} {ssrc} {pt} {key.hex() if key else '-'}\n"
                                 for i, (ssrc, pt, key) in enumerate(expected)))

    async def start_run(self, run: RunSpec) -> None:
        await self._send(f"run {run.run} {run.count} {run.kind} {run.size} {run.kf_interval} "
                         f"{run.seq0} {run.ts0}\n")

    async def report(self) -> tuple[list[ConsumerCounts], int]:
        await self._send(f"report {QUIET_MS} {REPORT_MAX_MS}\n")
        counts: list[ConsumerCounts] = []
        while True:
            words = (await _line(self.proc, "fanout_recv")).split()
            if words[0] == "end":
                return counts, int(words[2])
            counts.append(ConsumerCounts(*map(int, words[2:])))

    async def close(self) -> None:
        await _stop(self.proc)


@dataclass(frozen=True)
class RunSpec:
    """One run of the generator's stream (see ``fanout.h``)."""

    run: int
    count: int
    kind: str
    size: int
    kf_interval: int
    seq0: int
    ts0: int


class Stream:
    """The producer's stream across runs: sequence numbers and timestamps go on from run to run
    (the worker and libsrtp see one continuous stream), and so does the SRTP sender session."""

    def __init__(self, variant: Variant) -> None:
        self.kind = variant.kind
        self.size = variant.size
        self.pt = PT_BY_KIND[self.kind]
        self.ssrc = PRODUCER_SSRC
        self.seq = 0x1000
        self.ts = 0x10000
        self.run = 0
        self.suite = variant.suite
        self.key = os.urandom(variant.key_bytes) if variant.srtp else None
        self.session = None if self.key is None else pylibsrtp.Session(pylibsrtp.Policy(
            key=self.key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
            srtp_profile=SRTP_SUITES[variant.suite][1]))

    def next_run(self, count: int, kf_interval: int = KEYFRAME_INTERVAL_PACKETS) -> RunSpec:
        self.run += 1
        spec = RunSpec(self.run, count, self.kind, self.size, kf_interval, self.seq, self.ts)
        self.seq = (self.seq + count) & 0xFFFF
        frames = -(-count // FRAME_PACKETS)
        steps = frames * VIDEO_TS_STEP if self.kind == "video" else count * AUDIO_TS_STEP
        self.ts = (self.ts + steps) & 0xFFFFFFFF
        return spec

    def generator_args(self, spec: RunSpec) -> list[str]:
        return ["--count", str(spec.count), "--size", str(spec.size), "--kind", spec.kind,
                "--pt", str(self.pt), "--ssrc", str(self.ssrc), "--seq0", str(spec.seq0),
                "--ts0", str(spec.ts0), "--run", str(spec.run),
                "--kf-interval", str(spec.kf_interval)]


# -- the rig ----------------------------------------------------------------------------------


def _srtp_parameters(key: bytes, suite: str) -> dict[str, str]:
    return {"cryptoSuite": suite, "keyBase64": base64.b64encode(key).decode()}


def _producer_parameters(stream: Stream) -> dict[str, Any]:
    if stream.kind == "video":
        codec: dict[str, Any] = {
            "mimeType": "video/VP8", "payloadType": stream.pt, "clockRate": 90000,
            "rtcpFeedback": [{"type": "nack"}, {"type": "nack", "parameter": "pli"},
                             {"type": "ccm", "parameter": "fir"}]}
    else:
        codec = {"mimeType": "audio/opus", "payloadType": stream.pt, "clockRate": 48000,
                 "channels": 2}
    return {"codecs": [codec], "encodings": [{"ssrc": stream.ssrc}],
            "rtcp": {"cname": "fanout", "reducedSize": True}}


def _consumer_capabilities(router_capabilities: dict[str, Any], kind: str) -> dict[str, Any]:
    """A receiver of the router's codec of ``kind`` (no RTX, no header extensions)."""
    mime = "video/vp8" if kind == "video" else "audio/opus"
    codecs = [codec for codec in router_capabilities["codecs"]
              if codec["mimeType"].lower() == mime]
    return {"codecs": codecs, "headerExtensions": []}


def _protect_file(session: pylibsrtp.Session, plain: Path, protected: Path) -> None:
    """Protect every packet of a ``fanout_gen --dump`` file into a ``--replay`` file."""
    data = plain.read_bytes()
    out = bytearray()
    protect = session.protect
    at = 0
    while at < len(data):
        n = int.from_bytes(data[at:at + 2], "big")
        packet = protect(data[at + 2:at + 2 + n])
        out += len(packet).to_bytes(2, "big") + packet
        at += 2 + n
    protected.write_bytes(out)


class Rig:
    """One variant's set-up around one forwarder: the receivers, the stream, and either the
    worker (a router, the producer PlainTransport, N consumer PlainTransports) or the baseline
    forwarder. ``async with Rig(variant, tools, "worker") as rig: await rig.run(rate, s)``."""

    def __init__(self, variant: Variant, tools: Tools, target: str = "worker",
                 buffer_bytes: int = BUFFER_BYTES) -> None:
        if target not in ("worker", "baseline"):
            raise ValueError(f"target is worker or baseline, not {target!r}")
        self.variant = variant
        self.tools = tools
        self.target = target
        self.buffer_bytes = buffer_bytes
        self.stream = Stream(variant)
        # the generator's socket, kept bound between runs: a comedia transport takes packets
        # from the first source address only; each generator process is handed it (pass_fds)
        self.source = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.source.bind((LISTEN_IP, 0))
        self.tmp = Path(tempfile.mkdtemp(prefix="fanout-"))
        self.receivers: Receivers | None = None
        self.worker: Worker | None = None
        self.forwarder: asyncio.subprocess.Process | None = None
        self.pid = 0
        self.port = 0
        self._receiver_cpu_ns = 0
        self._ingress: Any = None

    async def __aenter__(self) -> Rig:
        try:
            await self.open()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        v = self.variant
        self.receivers = await Receivers.start(self.tools, v.consumers, self.buffer_bytes, v.srtp)
        if self.target == "worker":
            expected = await self._open_worker(self.receivers.ports)
        else:
            expected = await self._open_forwarder(self.receivers.ports)
        await self.receivers.expect(expected)
        await self.prime()

    async def _open_worker(self, ports: list[int]) -> list[tuple[int, int, bytes | None]]:
        v, stream = self.variant, self.stream
        self.worker = worker = await create_worker(log_level="error")
        self.pid = worker.pid
        router = await worker.create_router(media_codecs=MEDIA_CODECS)
        listen = {"protocol": "udp", "ip": LISTEN_IP, "sendBufferSize": self.buffer_bytes,
                  "recvBufferSize": self.buffer_bytes}
        srtp: dict[str, Any] = {"enable_srtp": v.srtp,
                                "srtp_crypto_suite": v.suite if v.srtp else None}
        ingress = await router.create_plain_transport(listen_info=listen, rtcp_mux=True,
                                                      comedia=True, **srtp)
        if stream.key is not None:
            await ingress.connect(srtp_parameters=_srtp_parameters(stream.key, v.suite))
        producer = await ingress.produce(kind=stream.kind,
                                         rtp_parameters=_producer_parameters(stream))
        self._ingress = ingress
        self.port = int(ingress.tuple["localPort"])
        caps = _consumer_capabilities(router.rtp_capabilities, stream.kind)
        expected: list[tuple[int, int, bytes | None]] = []
        for port in ports:
            egress = await router.create_plain_transport(listen_info=listen, rtcp_mux=True,
                                                         comedia=False, **srtp)
            remote_key = os.urandom(v.key_bytes)  # for RTCP from the receiver: it sends none
            await egress.connect(ip=LISTEN_IP, port=port, srtp_parameters=(
                _srtp_parameters(remote_key, v.suite) if v.srtp else None))
            consumer = await egress.consume(producer_id=producer.id, rtp_capabilities=caps)
            params = consumer.rtp_parameters
            key = None
            if v.srtp:
                assert egress.srtp_parameters is not None
                key = base64.b64decode(egress.srtp_parameters["keyBase64"])
            expected.append((int(params["encodings"][0]["ssrc"]),
                             int(params["codecs"][0]["payloadType"]), key))
        return expected

    async def _open_forwarder(self, ports: list[int]) -> list[tuple[int, int, bytes | None]]:
        b = str(self.buffer_bytes)
        self.forwarder = await _spawn(self.tools.fwd, "--dest-ports", ",".join(map(str, ports)),
                                      "--rcvbuf", b, "--sndbuf", b, stdin=True)
        words = (await _line(self.forwarder, "fanout_fwd")).split()
        if words[0] != "port":
            raise RuntimeError(f"fanout_fwd said {words!r}")
        self.port = int(words[1])
        self.pid = self.forwarder.pid
        # it forwards the generator's packets as they are
        return [(self.stream.ssrc, self.stream.pt, self.stream.key)] * self.variant.consumers

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.worker is not None:
                await self.worker.close()
        if self.forwarder is not None:
            await _stop(self.forwarder)
        if self.receivers is not None:
            await self.receivers.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.source.close()

    async def prime(self) -> None:
        """Send key frames until every consumer forwards (a video consumer starts on a key
        frame; the worker's key-frame requests go to the generator, which ignores them)."""
        for _ in range(PRIME_ATTEMPTS):
            result = await self.measure(PRIME_RATE_PPS, PRIME_PACKETS, FRAME_PACKETS)
            if all(c.unique for c in result.counts):
                return
        raise RuntimeError(f"{self.target}: some consumers forward nothing: {result.counts}")

    async def run(self, rate: float, seconds: float) -> RunResult:
        """One measured run of ``rate`` input packets/s for ``seconds``."""
        return await self.measure(rate, max(1, round(rate * seconds)))

    async def warm_up(self, rate: float) -> None:
        await self.measure(rate, max(1, round(rate * WARMUP_S)))

    async def _generator_args(self, spec: RunSpec) -> list[str]:
        args = self.stream.generator_args(spec)
        session = self.stream.session
        if session is None:
            return args
        plain, protected = self.tmp / "plain.bin", self.tmp / "srtp.bin"
        proc = await _spawn(self.tools.gen, "--dump", plain, *args)
        _, err = await asyncio.wait_for(proc.communicate(), PROCESS_TIMEOUT_S * 6)
        _children.discard(proc)
        if proc.returncode:
            raise RuntimeError(f"fanout_gen --dump failed: {err.decode(errors='replace')}")
        await asyncio.to_thread(_protect_file, session, plain, protected)
        return ["--replay", str(protected)]

    async def _generate(self, args: list[str], rate: float, count: int) -> tuple[int, float]:
        fd = self.source.fileno()
        proc = await _spawn(self.tools.gen, "--dest-port", str(self.port), "--fd", str(fd),
                            "--sndbuf", str(self.buffer_bytes), "--rate", repr(float(rate)),
                            *args, pass_fds=(fd,))
        try:
            out, err = await asyncio.wait_for(proc.communicate(),
                                              count / rate * 3 + PROCESS_TIMEOUT_S)
        finally:
            await _stop(proc)
        words = out.decode().split()
        if proc.returncode or len(words) < 4 or words[0] != "sent":
            raise RuntimeError(f"fanout_gen failed ({proc.returncode}): "
                               f"{err.decode(errors='replace')}")
        return int(words[1]), int(words[3]) / 1e9

    async def _worker_received(self) -> int | None:
        if self._ingress is None:
            return None
        stats = await self._ingress.get_stats()
        return int(stats[0].get("rtpPacketsReceived", 0))

    async def measure(self, rate: float, count: int,
                      kf_interval: int = KEYFRAME_INTERVAL_PACKETS) -> RunResult:
        """Send ``count`` packets at ``rate``; the forwarder's CPU time over the window and what
        the receivers got."""
        assert self.receivers is not None
        spec = self.stream.next_run(count, kf_interval)
        args = await self._generator_args(spec)
        await self.receivers.start_run(spec)
        received_before = await self._worker_received()
        cpu_before = await wait_idle(self.pid)
        started = time.monotonic()
        sent, elapsed = await self._generate(args, rate, count)
        cpu_after = await wait_idle(self.pid)
        lag = time.monotonic() - IDLE_POLL_S - started - elapsed
        counts, receiver_cpu = await self.receivers.report()
        received_after = await self._worker_received()
        result = RunResult(
            target=self.target, consumers=self.variant.consumers, rate=rate, sent=sent,
            elapsed_s=elapsed, cpu_ns=cpu_after - cpu_before, lag_s=max(0.0, lag),
            receiver_cpu_ns=receiver_cpu - self._receiver_cpu_ns, counts=counts,
            worker_received=None if received_before is None or received_after is None
            else received_after - received_before)
        self._receiver_cpu_ns = receiver_cpu
        return result

    async def search(self, start_rate: float, seconds: float) -> SearchResult:
        """Double the rate until a run fails (loss of MAX_LOSS_PCT or more, or the forwarder
        still busy well after the generator stopped: see :attr:`RunResult.kept_up`), then
        bisect (SEARCH_STEPS runs at most); stops early when the generator cannot send as fast
        as asked."""
        best: RunResult | None = None
        failing: float | None = None
        steps: list[RunResult] = []
        rate = start_rate
        for _ in range(SEARCH_STEPS):
            result = await self.run(rate, seconds)
            steps.append(result)
            ok = (result.loss_pct < MAX_LOSS_PCT and result.kept_up
                  and not result.errors.keys() - {"reorder"})
            if ok and (best is None or result.in_pps > best.in_pps):
                best = result
            if result.in_pps < 0.9 * rate:
                return SearchResult(best, steps, True)
            if not ok:
                failing = rate
            if failing is None:
                rate *= 2
            else:
                low = best.rate if best else 0.0
                if low and failing / low < SEARCH_PRECISION:
                    break
                rate = (low + failing) / 2 if low else failing / 2
        return SearchResult(best, steps, False)


def check(result: RunResult) -> None:
    """CheckError unless every packet that came was forwarded right (loss aside)."""
    if result.errors:
        raise CheckError(f"{result.target}: the receivers found {result.errors} in {result}")


async def run_variant(variant: Variant, tools: Tools, *, seconds: float = 5.0,
                      rate: float | None = None, baseline: bool = True, search: bool = False,
                      search_seconds: float = 2.0, search_baseline: bool = False,
                      buffer_bytes: int = BUFFER_BYTES) -> VariantResult:
    """Measure one variant through the worker (and search its best rate), then through the
    baseline forwarder (at the same rate, at the worker's best, and with ``search_baseline``
    its own best: the limit of this machine's kernel)."""
    rate = rate or variant.default_rate()
    async with Rig(variant, tools, "worker", buffer_bytes) as rig:
        await rig.warm_up(rate)
        worker = await rig.run(rate, seconds)
        searched = await rig.search(rate, search_seconds) if search else None
    base = base_at_best = base_searched = None
    if baseline:
        async with Rig(variant, tools, "baseline", buffer_bytes) as rig:
            await rig.warm_up(rate)
            base = await rig.run(rate, seconds)
            if searched is not None and searched.best is not None:
                base_at_best = await rig.run(searched.best.rate, search_seconds)
            if search_baseline:
                base_searched = await rig.search(rate, search_seconds)
    return VariantResult(variant, worker, base, searched, base_at_best, base_searched)
