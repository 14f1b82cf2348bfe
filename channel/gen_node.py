"""Writes the Node controller's protocol tables from :mod:`channel.protocol`.

``python -m channel.gen_node`` writes ``node/src/protocol.generated.js``, an ESM module holding
the same tables as :mod:`channel.protocol` (methods, events, error names, log levels and tags,
frame limits, exit codes, the protocol version). ``python -m channel.gen_node --check`` writes
nothing and exits 1 when the file on disk differs from what the generator produces now.

The output depends only on :mod:`channel.protocol`, so running the generator twice gives the same
bytes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from channel import protocol

__all__ = ["COMMAND", "DEFAULT_OUTPUT", "main", "render"]

COMMAND: Final = "python -m channel.gen_node"

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT: Final = REPO_ROOT / "node" / "src" / "protocol.generated.js"

_JSONValue = int | str | list[str] | dict[str, list[str]] | dict[str, str]


def _literal(value: _JSONValue, indent: int = 0) -> str:
    """A JavaScript literal for ``value``; lists and maps are frozen, one item per line."""
    pad = " " * (indent + 2)
    if isinstance(value, list):
        if not value:
            return "Object.freeze([])"
        items = "".join(f"{pad}{json.dumps(item, ensure_ascii=False)},\n" for item in value)
        return f"Object.freeze([\n{items}{' ' * indent}])"
    if isinstance(value, dict):
        if not value:
            return "Object.freeze({})"
        entries = "".join(
            f"{pad}{json.dumps(key, ensure_ascii=False)}: {_literal(sub, indent + 2)},\n"
            for key, sub in value.items()
        )
        return f"Object.freeze({{\n{entries}{' ' * indent}}})"
    return json.dumps(value, ensure_ascii=False)


def _export(name: str, value: _JSONValue, comment: str) -> str:
    return f"/** {comment} */\nexport const {name} = {_literal(value)};\n"


def render() -> str:
    """The text of ``protocol.generated.js`` for the current :mod:`channel.protocol`."""
    p = protocol
    parts: list[str] = [
        "// GENERATED FILE - DO NOT EDIT.\n"
        f"// Generated from channel/protocol.py by `{COMMAND}`;\n"
        f"// `{COMMAND} --check` fails when this file is stale.\n",
        _export("PROTOCOL_VERSION", p.PROTOCOL_VERSION, "Version of the channel protocol."),
        _export(
            "MAX_FRAME_BYTES",
            p.MAX_FRAME_BYTES,
            "Largest frame payload in bytes; a longer frame is skipped.",
        ),
        _export(
            "FRAME_HEADER_BYTES",
            p.FRAME_HEADER_BYTES,
            "Bytes of the big-endian length that precedes each frame payload.",
        ),
        _export("MAX_REQUEST_ID", p.MAX_REQUEST_ID, "Request ids are uint32 in 1..MAX_REQUEST_ID."),
        _export(
            "METHODS",
            {handler: list(methods) for handler, methods in p.METHODS.items()},
            'Methods by handler kind; the wire method is "<handler>.<method>".',
        ),
        _export(
            "ALL_METHODS",
            sorted(p.ALL_METHODS),
            'Every wire method string, e.g. "router.createWebRtcTransport" (sorted).',
        ),
        _export(
            "CONTROLLER_EVENTS",
            list(p.CONTROLLER_EVENTS),
            "Notifications the controller sends to the worker (no id, no reply).",
        ),
        _export(
            "WORKER_EVENTS",
            {kind: list(events) for kind, events in p.WORKER_EVENTS.items()},
            "Notifications the worker sends, by the kind of entity that emits them.",
        ),
        _export("ERROR_NAMES", list(p.ERROR_NAMES), "Names a failed request is answered with."),
        _export(
            "LOG_LEVELS",
            list(p.LOG_LEVELS),
            'Log levels from the most verbose; "none" turns logging off.',
        ),
        _export(
            "LOG_LEVEL_LETTERS",
            dict(p.LOG_LEVEL_LETTERS),
            "The letter a log message carries on the channel, per level.",
        ),
        _export("LOG_TAGS", list(p.LOG_TAGS), "Log tags accepted by --logTag and updateSettings."),
        _export("EXIT_OK", p.EXIT_OK, "Exit code of a clean shutdown."),
        _export(
            "EXIT_STARTUP_FAILURE",
            p.EXIT_STARTUP_FAILURE,
            "Exit code of a start-up failure other than bad settings.",
        ),
        _export(
            "EXIT_SETTINGS_ERROR",
            p.EXIT_SETTINGS_ERROR,
            "Exit code for unknown or bad command-line options.",
        ),
        _export("DEFAULT_RTC_MIN_PORT", p.DEFAULT_RTC_MIN_PORT, "Default lowest RTC port."),
        _export("DEFAULT_RTC_MAX_PORT", p.DEFAULT_RTC_MAX_PORT, "Default highest RTC port."),
    ]
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=COMMAND,
        description="Write node/src/protocol.generated.js from channel/protocol.py.",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if the file is missing or differs from the generator's output",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="file to write or check (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    output: Path = args.output
    text = render()
    if args.check:
        try:
            current = output.read_text(encoding="utf-8")
        except FileNotFoundError:
            print(f"{output} is missing; run `{COMMAND}`", file=sys.stderr)
            return 1
        if current != text:
            print(
                f"{output} is stale: it differs from what channel/protocol.py generates; "
                f"run `{COMMAND}`",
                file=sys.stderr,
            )
            return 1
        return 0
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
