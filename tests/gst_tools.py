"""GStreamer endpoints for the plain-transport tests: ``gst-launch-1.0`` pipelines that send VP8
and Opus as RTP (or SRTP) and receive, depacketize and decode them, each run as a bounded
subprocess whose decoded frames are counted.

- :func:`gstreamer_missing` says why GStreamer cannot be used here (None when it can).
- :func:`vp8_sender`, :func:`opus_sender`, :func:`vp8_receiver`, :func:`opus_receiver` build
  pipeline fragments (lists of ``gst-launch-1.0`` tokens); several fragments go in one process.
- :class:`GstLaunch` runs one ``gst-launch-1.0 -v`` process. Every receiver ends in a named
  ``fakesink silent=false``, which makes ``-v`` print one ``last-message = chain`` line per
  buffer it gets: one line per decoded video frame, one per decoded Opus frame (20 ms). The
  process is interrupted (SIGINT), then killed, when the test leaves its ``async with``.

SRTP keys are the 30-byte master key and salt of AES_CM_128_HMAC_SHA1_80: ``srtpenc`` takes
them as its ``key`` property; ``srtpdec`` cannot be answered its ``request-key`` signal from
``gst-launch-1.0``, so the receivers put the key in the ``udpsrc`` caps (``srtp-key`` and the
cipher fields), with the stream's SSRC.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import socket
import subprocess
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from typing import Final

__all__ = [
    "GST_LAUNCH",
    "SRTP_KEY_LEN",
    "GstLaunch",
    "free_udp_port",
    "gstreamer_missing",
    "opus_receiver",
    "opus_sender",
    "vp8_receiver",
    "vp8_sender",
]

GST_LAUNCH: Final = "gst-launch-1.0"
GST_INSPECT: Final = "gst-inspect-1.0"
SRTP_KEY_LEN: Final = 30  # AES_CM_128_HMAC_SHA1_80: 16-byte key + 14-byte salt

# Every element the pipelines below use.
ELEMENTS: Final = (
    "videotestsrc", "audiotestsrc", "videoconvert", "audioconvert", "audioresample",
    "vp8enc", "vp8dec", "opusenc", "opusdec", "rtpvp8pay", "rtpvp8depay", "rtpopuspay",
    "rtpopusdepay", "rtpjitterbuffer", "udpsrc", "udpsink", "fakesink", "srtpenc", "srtpdec",
)  # fmt: skip

# "/GstPipeline:pipeline0/GstFakeSink:vsink: last-message = chain   ******* (vsink:sink) ..."
_CHAIN_LINE: Final = re.compile(r"/GstFakeSink:([\w-]+): last-message = chain\b")
_SRTP_CAPS: Final = (
    "srtp-cipher=(string)aes-128-icm,srtp-auth=(string)hmac-sha1-80,"
    "srtcp-cipher=(string)aes-128-icm,srtcp-auth=(string)hmac-sha1-80"
)
_STOP_TIMEOUT_S: Final = 5.0
_TAIL_LINES: Final = 40


def gstreamer_missing(elements: Iterable[str] = ELEMENTS) -> str | None:
    """Why GStreamer cannot run these pipelines here (a reason for ``pytest.skip``), or None."""
    if shutil.which(GST_LAUNCH) is None or shutil.which(GST_INSPECT) is None:
        return f"{GST_LAUNCH} is not installed (.ci/run installs GStreamer)"
    absent = [
        name
        for name in elements
        if subprocess.run(
            [GST_INSPECT, "--exists", name], capture_output=True, timeout=30, check=False
        ).returncode
        != 0
    ]
    if absent:
        return f"GStreamer elements not installed: {', '.join(absent)}"
    return None


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that was free a moment ago (for a ``udpsrc`` to bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _srtpenc(key: bytes) -> list[str]:
    if len(key) != SRTP_KEY_LEN:
        raise ValueError(f"an AES_CM_128_HMAC_SHA1_80 key has {SRTP_KEY_LEN} bytes")
    return [
        "!", "srtpenc", f"key={key.hex()}", "rtp-cipher=aes-128-icm", "rtp-auth=hmac-sha1-80",
        "rtcp-cipher=aes-128-icm", "rtcp-auth=hmac-sha1-80",
    ]  # fmt: skip


def _udpsink(host: str, port: int) -> list[str]:
    return ["!", "udpsink", f"host={host}", f"port={port}", "sync=false", "async=false"]


def vp8_sender(
    host: str,
    port: int,
    *,
    payload_type: int,
    ssrc: int,
    srtp_key: bytes | None = None,
    width: int = 320,
    height: int = 240,
    fps: int = 30,
) -> list[str]:
    """A live moving-ball test pattern, VP8 with a key frame every second, as RTP to
    ``host:port`` (SRTP with ``srtp_key``)."""
    tokens = [
        "videotestsrc", "is-live=true", "pattern=ball",
        "!", f"video/x-raw,width={width},height={height},framerate={fps}/1",
        "!", "vp8enc", "deadline=1", "cpu-used=8", f"keyframe-max-dist={fps}",
        "target-bitrate=500000", "error-resilient=default",
        "!", "rtpvp8pay", f"pt={payload_type}", f"ssrc={ssrc}", "mtu=1200",
    ]  # fmt: skip
    if srtp_key is not None:
        tokens += _srtpenc(srtp_key)
    return tokens + _udpsink(host, port)


def opus_sender(
    host: str, port: int, *, payload_type: int, ssrc: int, srtp_key: bytes | None = None
) -> list[str]:
    """A live 440 Hz tone, Opus in 20 ms frames, as RTP to ``host:port`` (SRTP with
    ``srtp_key``)."""
    tokens = [
        "audiotestsrc", "is-live=true", "wave=sine", "freq=440",
        "!", "audioconvert", "!", "audioresample",
        "!", "audio/x-raw,rate=48000,channels=2",
        "!", "opusenc", "frame-size=20",
        "!", "rtpopuspay", f"pt={payload_type}", f"ssrc={ssrc}",
    ]  # fmt: skip
    if srtp_key is not None:
        tokens += _srtpenc(srtp_key)
    return tokens + _udpsink(host, port)


def _udpsrc(
    port: int, rtp_caps: str, ssrc: int, srtp_key: bytes | None, sink_name: str
) -> list[str]:
    """The receiving end of a receiver fragment; with SRTP, ``srtpdec`` too. RTCP comes on the
    same port (muxed): ``srtpdec`` sends it out of its ``rtcp_src`` pad, which must be linked
    (here to a fakesink), or the stream stops "not-linked"; without SRTP the depayloader
    drops it. The RTCP fakesink is named ``<sink_name>_rtcp``: its count is the RTCP compound
    packets ``srtpdec`` could decrypt."""
    if srtp_key is None:
        caps = f"application/x-rtp,{rtp_caps}"
        return ["udpsrc", "address=127.0.0.1", f"port={port}", f'caps="{caps}"']
    if len(srtp_key) != SRTP_KEY_LEN:
        raise ValueError(f"an AES_CM_128_HMAC_SHA1_80 key has {SRTP_KEY_LEN} bytes")
    caps = (
        f"application/x-srtp,{rtp_caps},ssrc=(uint){ssrc},"
        f"srtp-key=(buffer){srtp_key.hex()},{_SRTP_CAPS}"
    )
    dec = f"{sink_name}_srtpdec"
    return [
        "udpsrc", "address=127.0.0.1", f"port={port}", f'caps="{caps}"', "!", "srtpdec",
        f"name={dec}", f"{dec}.rtcp_src", *_fakesink(f"{sink_name}_rtcp"),
        f"{dec}.rtp_src",
    ]  # fmt: skip


def _fakesink(name: str) -> list[str]:
    return ["!", "fakesink", f"name={name}", "silent=false", "sync=false", "async=false"]


def vp8_receiver(
    port: int,
    *,
    payload_type: int,
    ssrc: int,
    srtp_key: bytes | None = None,
    sink_name: str = "vsink",
) -> list[str]:
    """Receive VP8 RTP (SRTP with ``srtp_key``) on 127.0.0.1:``port``, decode it and hand each
    decoded frame to the fakesink ``sink_name``."""
    rtp_caps = (
        f"media=(string)video,clock-rate=(int)90000,encoding-name=(string)VP8,"
        f"payload=(int){payload_type}"
    )
    return [
        *_udpsrc(port, rtp_caps, ssrc, srtp_key, sink_name),
        "!", "rtpjitterbuffer", "latency=100",
        "!", "rtpvp8depay", "!", "vp8dec", "!", "videoconvert",
        *_fakesink(sink_name),
    ]  # fmt: skip


def opus_receiver(
    port: int,
    *,
    payload_type: int,
    ssrc: int,
    srtp_key: bytes | None = None,
    sink_name: str = "asink",
) -> list[str]:
    """Receive Opus RTP (SRTP with ``srtp_key``) on 127.0.0.1:``port``, decode it and hand each
    decoded frame to the fakesink ``sink_name``."""
    rtp_caps = (
        f"media=(string)audio,clock-rate=(int)48000,encoding-name=(string)OPUS,"
        f"payload=(int){payload_type}"
    )
    return [
        *_udpsrc(port, rtp_caps, ssrc, srtp_key, sink_name),
        "!", "rtpjitterbuffer", "latency=100",
        "!", "rtpopusdepay", "!", "opusdec", "!", "audioconvert",
        *_fakesink(sink_name),
    ]  # fmt: skip


class GstLaunch:
    """One ``gst-launch-1.0 -v`` process running the given fragments, with the buffers each
    named fakesink got counted from its output.

    Use as ``async with GstLaunch(fragment, ...) as gst:``; leaving the block stops the
    process (SIGINT, then SIGKILL after a few seconds).
    """

    def __init__(self, *fragments: Sequence[str]) -> None:
        self.argv = [GST_LAUNCH, "-v"]
        for fragment in fragments:
            self.argv += fragment
        self.counts: Counter[str] = Counter()
        self._tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> GstLaunch:
        self._proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.returncode

    def output_tail(self) -> str:
        """The last lines the process printed, other than the per-buffer ones."""
        return "\n".join(self._tail)

    def describe(self) -> str:
        """For assertion messages: counts, exit status and the tail of the output."""
        return (
            f"{GST_LAUNCH} counts={dict(self.counts)} returncode={self.returncode}\n"
            f"{' '.join(self.argv)}\n{self.output_tail()}"
        )

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        stream = self._proc.stdout
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # a line longer than the stream limit: skip it
                continue
            if not raw:
                return
            line = raw.decode(errors="replace").rstrip()
            match = _CHAIN_LINE.search(line)
            if match is not None:
                self.counts[match.group(1)] += 1
            else:
                self._tail.append(line)

    async def wait_for(self, counts: dict[str, int], timeout: float) -> bool:
        """Wait until every named sink got at least its count of buffers; False when the time
        runs out or the process ends first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(self.counts[name] < wanted for name, wanted in counts.items()):
            if loop.time() > deadline or self.returncode is not None:
                return False
            await asyncio.sleep(0.05)
        return True

    async def stop(self) -> None:
        """Interrupt the process, kill it if it does not stop in time, and reap it."""
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), _STOP_TIMEOUT_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self._reader is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reader, _STOP_TIMEOUT_S)
            self._reader.cancel()
