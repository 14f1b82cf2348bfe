"""Worker logging: one record goes to stderr and, as a log message, to the channel.

A record has a level (debug, warn, error) and an optional tag (``ice``, ``rtp`` ...). It is emitted
when its level is at or above the worker's ``logLevel`` and, for debug and warn records that carry
a tag, when that tag is enabled; error records are emitted whenever the level is not ``none``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

from channel.protocol import LOG_LEVEL_LETTERS, LOG_LEVELS

__all__ = ["Logger"]

_RANK = {name: rank for rank, name in enumerate(LOG_LEVELS)}

ChannelSink = Callable[[str, str], None]


class Logger:
    """Filters records by level and tags and writes them to stderr and the channel."""

    def __init__(self, level: str = "error", tags: frozenset[str] = frozenset(),
                 stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._channel: ChannelSink | None = None
        self.level = level
        self.tags = tags

    @property
    def level(self) -> str:
        return self._level

    @level.setter
    def level(self, value: str) -> None:
        self._level = value
        self._rank = _RANK[value]

    def attach_channel(self, sink: ChannelSink | None) -> None:
        """Send records to the channel through ``sink(letter, text)`` (or stop, with None)."""
        self._channel = sink

    def enabled(self, level: str, tag: str | None = None) -> bool:
        if _RANK[level] < self._rank:
            return False
        return tag is None or level == "error" or tag in self.tags

    def debug(self, text: str, tag: str | None = None) -> None:
        if self.enabled("debug", tag):
            self._emit("debug", tag, text)

    def warn(self, text: str, tag: str | None = None) -> None:
        if self.enabled("warn", tag):
            self._emit("warn", tag, text)

    def error(self, text: str, tag: str | None = None) -> None:
        if self.enabled("error", tag):
            self._emit("error", tag, text)

    def _emit(self, level: str, tag: str | None, text: str) -> None:
        letter = LOG_LEVEL_LETTERS[level]
        line = f"[{tag}] {text}" if tag else text
        try:
            self._stream.write(f"mediaworker:{letter} {line}\n")
            self._stream.flush()
        except (OSError, ValueError):
            pass  # stderr is gone; the channel may still carry the record
        if self._channel is not None:
            self._channel(letter, line)
