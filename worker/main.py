"""``python -m worker``: parse the options, take over stdio, run the loop, close cleanly.

File descriptors: the channel's input and output are duplicated away from fds 0 and 1 at start;
fd 1 is then pointed at stderr and fd 0 at /dev/null. So nothing but frames can ever reach the
controller's pipe: a stray ``print`` or a library writing to stdout lands on stderr.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from typing import Final

from channel.protocol import EXIT_OK, EXIT_SETTINGS_ERROR, EXIT_STARTUP_FAILURE
from worker import __version__
from worker.bufferpool import default_pools
from worker.certificate import DtlsCertificate
from worker.channel_endpoint import ChannelEndpoint
from worker.channel_io import ChannelReader, ChannelWriter
from worker.entity import Context
from worker.logger import Logger
from worker.registry import Registry
from worker.settings import Settings, SettingsError, parse_args
from worker.worker import Worker

__all__ = ["main"]

IGNORED_SIGNALS: Final = ("SIGPIPE", "SIGHUP", "SIGALRM", "SIGUSR1", "SIGUSR2")
CLOSE_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT)
# Shutdown must finish within 2 s: this much of it may go to writing out what is queued.
DRAIN_TIMEOUT_S: Final = 1.0


def _ignore_signals() -> None:
    for name in IGNORED_SIGNALS:
        signum = getattr(signal, name, None)
        if signum is not None:
            signal.signal(signum, signal.SIG_IGN)


def _take_stdio() -> tuple[int, int]:
    """Move the channel off fds 0 and 1; returns (input fd, output fd)."""
    channel_in = os.dup(0)
    channel_out = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return channel_in, channel_out


class WorkerProcess:
    """Wires the channel edges, the endpoint and the Worker entity together on one loop."""

    def __init__(self, settings: Settings, certificate: DtlsCertificate, channel_in: int,
                 channel_out: int) -> None:
        self.settings = settings
        self.certificate = certificate
        self.logger = Logger(settings.log_level, settings.log_tags)
        self._in_fd = channel_in
        self._out_fd = channel_out
        self._closing: asyncio.Event | None = None
        self._endpoint: ChannelEndpoint | None = None

    def request_close(self) -> None:
        """Close: from now on requests are answered "closing"; the loop then shuts down."""
        if self._endpoint is not None:
            self._endpoint.closing = True
        if self._closing is not None and not self._closing.is_set():
            self._closing.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self._closing = asyncio.Event()
        reader: ChannelReader | None = None

        def pressure(paused: bool) -> None:
            if reader is not None:
                reader.set_paused(paused)

        writer = ChannelWriter(loop, self._out_fd, self.request_close, pressure)
        await writer.open()
        endpoint = self._endpoint = ChannelEndpoint(writer.send, self.logger)
        self.logger.attach_channel(endpoint.log)
        ctx = Context(Registry(), endpoint.notify, self.logger, self.settings, default_pools(),
                      loop, self.certificate)
        worker = Worker(ctx, endpoint.counters, self.request_close)
        endpoint.bind(worker.dispatch_request, worker.dispatch_notification)

        for signum in CLOSE_SIGNALS:
            loop.add_signal_handler(signum, self.request_close)

        pid = os.getpid()
        endpoint.notify(str(pid), "running", {"pid": pid, "version": __version__})
        reader = ChannelReader(loop, self._in_fd, endpoint.receive, self._on_eof)
        await reader.open()

        await self._closing.wait()
        reader.stop()
        worker.close()
        self.logger.attach_channel(None)
        await writer.drain_and_close(DRAIN_TIMEOUT_S)
        for signum in CLOSE_SIGNALS:
            loop.remove_signal_handler(signum)
        return EXIT_OK

    def _on_eof(self) -> None:
        self.logger.debug("channel remotely closed, closing myself")
        self.request_close()


def _run(settings: Settings) -> int:
    # Imported here so that a broken install fails as a start-up failure (exit code 40).
    import uvloop  # noqa: PLC0415

    if settings.dtls_certificate_file and settings.dtls_private_key_file:
        certificate = DtlsCertificate.load(settings.dtls_certificate_file,
                                           settings.dtls_private_key_file)
    else:
        certificate = DtlsCertificate.generate()
    channel_in, channel_out = _take_stdio()
    process = WorkerProcess(settings, certificate, channel_in, channel_out)
    return uvloop.run(process.run())


def main(argv: Sequence[str] | None = None) -> int:
    _ignore_signals()
    try:
        settings = parse_args(sys.argv[1:] if argv is None else argv)
    except SettingsError as exc:
        sys.stderr.write(f"mediaworker: wrong settings: {exc}\n")
        return EXIT_SETTINGS_ERROR
    try:
        return _run(settings)
    except Exception:
        sys.stderr.write(f"mediaworker: failed: {traceback.format_exc()}")
        return EXIT_STARTUP_FAILURE
