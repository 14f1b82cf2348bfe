"""``python -m controller.demo``: spawn a worker, create a router, show what it made, close.

Prints one JSON document on stdout, ``{"rtpCapabilities": ..., "workerDump": ...}``; logs go to
stderr. Exit code 0 on success, 1 when the worker fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any, Final

from channel.protocol import LOG_LEVELS, LOG_TAGS
from controller.errors import ControllerError
from controller.worker import create_worker

__all__ = ["DEMO_MEDIA_CODECS", "main", "run_demo"]

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

_PY_LOG_LEVELS: Final = {
    "debug": logging.DEBUG,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "none": logging.CRITICAL,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m controller.demo",
        description=(
            "Spawn a mediaworker worker process, create a router with opus, VP8 and H264, print "
            "the router's RTP capabilities and the worker's dump as one JSON document on stdout, "
            "and close everything."
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


async def run_demo(log_level: str, log_tags: Sequence[str]) -> dict[str, Any]:
    """Run the demo; returns what it prints."""
    async with await create_worker(log_level=log_level, log_tags=log_tags) as worker:
        router = await worker.create_router(media_codecs=DEMO_MEDIA_CODECS)
        dump = await worker.dump()
        await router.close()
        return {"rtpCapabilities": router.rtp_capabilities, "workerDump": dump}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=_PY_LOG_LEVELS[args.log_level],
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        result = asyncio.run(run_demo(args.log_level, args.log_tag))
    except ControllerError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, sort_keys=True, default=repr))
    return 0


if __name__ == "__main__":
    sys.exit(main())
