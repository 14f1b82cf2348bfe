"""``python -m controller.demo``: media through a worker, live.

Spawns a worker through the Python controller, creates a router, and sends one video stream
through it: a comedia PlainTransport receives VP8 RTP from a test source (a ``gst-launch-1.0``
test pattern when GStreamer is installed, else a built-in sender of VP8-shaped RTP packets), a
producer takes it in, and ``--consumers`` consumers send it out of their own PlainTransports to
UDP sockets the demo reads. Once a second it prints what goes in and out (packets and kbit/s),
the worker's CPU use and the buffer slots it holds; after ``--seconds`` it closes everything and
prints the worker's final dump. Everything listens on 127.0.0.1. Logs go to stderr. Exit code 0
on success, 1 when the worker fails, 2 for a source that is not available, 130 when
interrupted (Ctrl-C; the source and the worker are closed first).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, TextIO

from channel.protocol import LOG_LEVELS, LOG_TAGS
from controller.errors import ControllerError
from controller.plain_transport import PlainTransport
from controller.worker import Worker, create_worker

__all__ = ["DEMO_MEDIA_CODECS", "DemoOptions", "main", "run_demo", "vp8_like_packet"]

DEMO_MEDIA_CODECS: Final[list[dict[str, Any]]] = [
    {"kind": "audio", "mimeType": "audio/opus", "clockRate": 48000, "channels": 2},
    {
        "kind": "video",
        "mimeType": "video/VP8",
        "clockRate": 90000,
        "parameters": {"x-google-start-bitrate": 1000},
    },
    {
        "kind": "video",
        "mimeType": "video/H264",
        "clockRate": 90000,
        "parameters": {
            "packetization-mode": 1,
            "profile-level-id": "42e01f",
            "level-asymmetry-allowed": 1,
        },
    },
]

LISTEN_IP: Final = "127.0.0.1"
VIDEO_PT: Final = 96  # what the source sends with (the producer's payload type)
VIDEO_SSRC: Final = 0x0D3E_0001
FPS: Final = 30
PACKETS_PER_FRAME: Final = 3  # the built-in sender's packets per frame
PACKET_PAYLOAD_BYTES: Final = 1000
KEYFRAME_INTERVAL: Final = FPS  # frames
GST_ELEMENTS: Final = ("videotestsrc", "vp8enc", "rtpvp8pay", "udpsink")
CLOSE_TIMEOUT_S: Final = 10.0
SOURCE_STOP_TIMEOUT_S: Final = 3.0

_PY_LOG_LEVELS: Final = {
    "debug": logging.DEBUG,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "none": logging.CRITICAL,
}

_RTP_HEADER: Final = struct.Struct("!BBHII")


@dataclass(frozen=True)
class DemoOptions:
    seconds: int = 5
    consumers: int = 4
    source: str = "auto"  # "auto", "gstreamer" or "python"
    log_level: str = "warn"
    log_tags: tuple[str, ...] = ()


def _positive_int(limit: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if not 1 <= value <= limit:
            raise argparse.ArgumentTypeError(f"must be between 1 and {limit}")
        return value

    return parse


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m controller.demo",
        description=(
            "Spawn a mediaworker worker, send a VP8 test stream into a router through a comedia "
            "PlainTransport, forward it to several consumers on their own PlainTransports (UDP "
            "sockets on 127.0.0.1 that the demo reads), print a line a second (packets and "
            "kbit/s in and out, the worker's CPU use, the buffer slots it holds), then close "
            "everything and print the worker's final dump."
        ),
    )
    parser.add_argument(
        "--seconds",
        type=_positive_int(3600),
        default=5,
        help="how long media flows, 1..3600 (default: %(default)s)",
    )
    parser.add_argument(
        "--consumers",
        type=_positive_int(100),
        default=4,
        help="how many consumers receive the stream, 1..100 (default: %(default)s)",
    )
    parser.add_argument(
        "--source",
        choices=("auto", "gstreamer", "python"),
        default="auto",
        help=(
            "what sends the video: 'gstreamer' runs gst-launch-1.0 (a 320x240 test pattern at "
            f"{FPS} fps, VP8); 'python' sends VP8-shaped RTP packets that are not decodable "
            f"video ({FPS} frames/s x {PACKETS_PER_FRAME} packets); 'auto' takes gstreamer when "
            "it is installed (default: %(default)s)"
        ),
    )
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default="warn",
        help="the worker's log level; its logs are shown on stderr (default: %(default)s)",
    )
    parser.add_argument(
        "--log-tag",
        action="append",
        choices=LOG_TAGS,
        default=[],
        metavar="TAG",
        help=f"enable a worker log tag, repeatable; one of: {', '.join(LOG_TAGS)}",
    )
    return parser


# -- sources -------------------------------------------------------------------------------------


def vp8_like_packet(
    *, seq: int, timestamp: int, first: bool, last: bool, keyframe: bool, size: int
) -> bytes:
    """One RTP packet of a VP8-shaped frame with the demo producer's payload type and SSRC: a
    one-byte VP8 payload descriptor (S set on the frame's first packet), and on that first
    packet a VP8 frame tag (key frame or not) and, for a key frame, the start code and a
    320x240 size. The rest is filler: it is not decodable video, but the worker sees its key
    frames as such."""
    header = _RTP_HEADER.pack(
        0x80, (0x80 if last else 0) | VIDEO_PT, seq & 0xFFFF, timestamp & 0xFFFFFFFF, VIDEO_SSRC
    )
    descriptor = b"\x10" if first else b"\x00"
    body = b""
    if first:
        # frame tag: bit 0 = P (0: key frame), bits 1-3 version 0, bit 4 show_frame.
        body = bytes([0x10 if keyframe else 0x11, 0x00, 0x00])
        if keyframe:
            body += b"\x9d\x01\x2a" + struct.pack("<HH", 320, 240)
    filler = bytes((seq + i) & 0xFF for i in range(max(0, size - len(body))))
    return header + descriptor + body + filler


async def _python_source(ip: str, port: int, stop: asyncio.Event) -> None:
    """Send VP8-shaped RTP at FPS frames a second until ``stop`` is set."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=(LISTEN_IP, 0), remote_addr=(ip, port)
    )
    seq = int.from_bytes(os.urandom(2), "big")
    timestamp = int.from_bytes(os.urandom(4), "big")
    frame = 0
    start = loop.time()
    try:
        while not stop.is_set():
            keyframe = frame % KEYFRAME_INTERVAL == 0
            for index in range(PACKETS_PER_FRAME):
                transport.sendto(
                    vp8_like_packet(
                        seq=seq,
                        timestamp=timestamp,
                        first=index == 0,
                        last=index == PACKETS_PER_FRAME - 1,
                        keyframe=keyframe,
                        size=PACKET_PAYLOAD_BYTES,
                    )
                )
                seq += 1
            frame += 1
            timestamp += 90000 // FPS
            delay = start + frame / FPS - loop.time()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
    finally:
        transport.close()


def gstreamer_available() -> bool:
    """Whether gst-launch-1.0 and the elements the GStreamer source needs are installed."""
    inspect = shutil.which("gst-inspect-1.0")
    if shutil.which("gst-launch-1.0") is None or inspect is None:
        return False
    return all(
        subprocess.run(
            [inspect, "--exists", name], capture_output=True, timeout=30, check=False
        ).returncode
        == 0
        for name in GST_ELEMENTS
    )


def _gstreamer_argv(ip: str, port: int) -> list[str]:
    return [
        "gst-launch-1.0", "-q",
        "videotestsrc", "is-live=true", "pattern=ball",
        "!", f"video/x-raw,width=320,height=240,framerate={FPS}/1",
        "!", "vp8enc", "deadline=1", "cpu-used=8", f"keyframe-max-dist={KEYFRAME_INTERVAL}",
        "target-bitrate=600000",
        "!", "rtpvp8pay", f"pt={VIDEO_PT}", f"ssrc={VIDEO_SSRC}", "mtu=1200",
        "!", "udpsink", f"host={ip}", f"port={port}", "sync=false", "async=false",
    ]  # fmt: skip


async def _stop_process(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(proc.wait(), SOURCE_STOP_TIMEOUT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


# -- receivers -----------------------------------------------------------------------------------


class _Receiver(asyncio.DatagramProtocol):
    """Counts the RTP packets and bytes a consumer sends to one local socket (RTCP, which the
    worker muxes on the same port, is counted apart)."""

    def __init__(self) -> None:
        self.packets = 0
        self.bytes = 0
        self.rtcp = 0

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if len(data) >= 2 and 192 <= data[1] <= 223:  # RTCP packet types 192..223 (RFC 5761)
            self.rtcp += 1
        else:
            self.packets += 1
            self.bytes += len(data)


# -- the demo ------------------------------------------------------------------------------------


def _consumer_capabilities(router_capabilities: dict[str, Any]) -> dict[str, Any]:
    """A receiver that takes the router's VP8 and sends no RTCP feedback."""
    codecs = [
        {**codec, "rtcpFeedback": []}
        for codec in router_capabilities["codecs"]
        if codec["mimeType"].lower() == "video/vp8"
    ]
    return {"codecs": codecs, "headerExtensions": []}


def _producer_parameters() -> dict[str, Any]:
    return {
        "codecs": [
            {
                "mimeType": "video/VP8",
                "payloadType": VIDEO_PT,
                "clockRate": 90000,
                "rtcpFeedback": [{"type": "nack", "parameter": "pli"}],
            }
        ],
        "encodings": [{"ssrc": VIDEO_SSRC}],
        "rtcp": {"cname": "demo", "reducedSize": True},
    }


def _slots_in_use(dump: dict[str, Any]) -> int:
    return sum(int(pool["inUse"]) for pool in dump.get("bufferPools", {}).values())


@dataclass
class _Sample:
    at: float
    in_packets: int
    in_bytes: int
    out_packets: int
    out_bytes: int
    cpu_ms: int


async def _sample(
    worker: Worker, ingress: PlainTransport, receivers: Sequence[_Receiver]
) -> tuple[_Sample, int]:
    (stats,) = (entry for entry in await ingress.get_stats() if "rtpPacketsReceived" in entry)
    usage = await worker.get_resource_usage()
    dump = await worker.dump()
    sample = _Sample(
        at=time.monotonic(),
        in_packets=int(stats["rtpPacketsReceived"]),
        in_bytes=int(stats.get("rtpBytesReceived", stats.get("bytesReceived", 0))),
        out_packets=sum(r.packets for r in receivers),
        out_bytes=sum(r.bytes for r in receivers),
        cpu_ms=int(usage["ru_utime"]) + int(usage["ru_stime"]),
    )
    return sample, _slots_in_use(dump)


def _live_line(second: int, before: _Sample, after: _Sample, slots: int) -> str:
    dt = max(after.at - before.at, 1e-3)
    in_pps = (after.in_packets - before.in_packets) / dt
    out_pps = (after.out_packets - before.out_packets) / dt
    in_kbps = (after.in_bytes - before.in_bytes) * 8 / dt / 1000
    out_kbps = (after.out_bytes - before.out_bytes) * 8 / dt / 1000
    cpu = (after.cpu_ms - before.cpu_ms) / (dt * 1000) * 100
    return (
        f"[{second:3d}s] in {in_pps:5.0f} pkt/s {in_kbps:6.0f} kbit/s | "
        f"out {out_pps:6.0f} pkt/s {out_kbps:7.0f} kbit/s | "
        f"worker CPU {cpu:5.1f}% | buffer slots in use {slots}"
    )


async def run_demo(options: DemoOptions, out: TextIO = sys.stdout) -> int:
    """Run the demo, printing to ``out``; returns the exit code."""

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    source = options.source
    if source != "python" and gstreamer_available():
        source = "gstreamer"
    elif source == "gstreamer":
        say("demo: --source gstreamer needs gst-launch-1.0 with " + ", ".join(GST_ELEMENTS))
        return 2
    else:
        if source == "auto":
            say("GStreamer is not installed: the built-in Python sender feeds the producer")
        source = "python"

    loop = asyncio.get_running_loop()
    async with await create_worker(
        log_level=options.log_level, log_tags=list(options.log_tags)
    ) as worker:
        router = await worker.create_router(media_codecs=DEMO_MEDIA_CODECS)
        listen_info = {"protocol": "udp", "ip": LISTEN_IP}
        ingress = await router.create_plain_transport(
            listen_info=listen_info, rtcp_mux=True, comedia=True
        )
        producer = await ingress.produce(kind="video", rtp_parameters=_producer_parameters())
        capabilities = _consumer_capabilities(router.rtp_capabilities)

        receivers: list[_Receiver] = []
        sockets: list[asyncio.DatagramTransport] = []
        egress: list[PlainTransport] = []
        source_proc: asyncio.subprocess.Process | None = None
        stop = asyncio.Event()
        sender: asyncio.Task[None] | None = None
        try:
            for _ in range(options.consumers):
                sock, receiver = await loop.create_datagram_endpoint(
                    _Receiver, local_addr=(LISTEN_IP, 0)
                )
                sockets.append(sock)
                receivers.append(receiver)
                transport = await router.create_plain_transport(
                    listen_info=listen_info, rtcp_mux=True, comedia=False
                )
                egress.append(transport)
                await transport.connect(ip=LISTEN_IP, port=sock.get_extra_info("sockname")[1])
                await transport.consume(producer_id=producer.id, rtp_capabilities=capabilities)

            ip, port = ingress.tuple["localIp"], ingress.tuple["localPort"]
            what = (
                f"gst-launch-1.0 (320x240 VP8 test pattern at {FPS} fps)"
                if source == "gstreamer"
                else f"Python sender (VP8-shaped RTP, {FPS} frames/s x {PACKETS_PER_FRAME} "
                "packets, not decodable)"
            )
            say(f"worker pid {worker.pid}; router {router.id}")
            say(f"source: {what} -> comedia PlainTransport {ip}:{port}, producer {producer.id}")
            say(
                f"{options.consumers} consumers, each on a PlainTransport sending to a UDP "
                f"socket on {LISTEN_IP}; {options.seconds} s of media"
            )
            if source == "gstreamer":
                source_proc = await asyncio.create_subprocess_exec(
                    *_gstreamer_argv(ip, port),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
            else:
                sender = asyncio.create_task(_python_source(ip, port, stop))

            before, _ = await _sample(worker, ingress, receivers)
            for second in range(1, options.seconds + 1):
                await asyncio.sleep(max(0.0, before.at + 1.0 - time.monotonic()))
                if sender is not None and sender.done():
                    sender.result()  # the sender failed: raise its error
                after, slots = await _sample(worker, ingress, receivers)
                say(_live_line(second, before, after, slots))
                before = after
            totals = (
                f"totals: {before.in_packets} packets in, {before.out_packets} packets out "
                f"over {options.consumers} consumers"
            )
            say(totals)
        finally:
            stop.set()
            if sender is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(sender, SOURCE_STOP_TIMEOUT_S)
            if source_proc is not None:
                await _stop_process(source_proc)
            for sock in sockets:
                sock.close()

        for transport in egress:
            await transport.close()
        await ingress.close()
        await router.close()
        dump = await worker.dump()
        say("final worker dump:")
        say(json.dumps(dump, indent=2, sort_keys=True, default=repr))
        slots = _slots_in_use(dump)
        routers = len(dump.get("routerIds", []))
    say(
        f"closed: {options.consumers + 1} transports, the router and the worker "
        f"(exit code {worker.returncode}); routers left {routers}, buffer slots in use {slots}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=_PY_LOG_LEVELS[args.log_level],
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    options = DemoOptions(
        seconds=args.seconds,
        consumers=args.consumers,
        source=args.source,
        log_level=args.log_level,
        log_tags=tuple(args.log_tag),
    )
    bound = options.seconds + 60.0  # setup and close take a few seconds at most
    try:
        return asyncio.run(asyncio.wait_for(run_demo(options), bound))
    except ControllerError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    except TimeoutError:
        print(f"demo failed: it did not finish in {bound:.0f} s", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # the worker and the source were closed on the way out
        print("demo interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
