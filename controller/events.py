"""A small event emitter in the manner of Node's ``EventEmitter`` (mediasoup's ``safeEmit``).

Listeners are plain callables, or coroutine functions (their coroutine is run as a task). A
listener that raises never reaches the emitter: the error is logged on ``mediaworker.controller``
and the remaining listeners still run.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["EnhancedEventEmitter", "Listener"]

logger = logging.getLogger("mediaworker.controller")

Listener = Callable[..., object]


@dataclass(slots=True)
class _Entry:
    fn: Listener
    once: bool


class EnhancedEventEmitter:
    """``on``/``once``/``off``/``emit`` keyed by event name."""

    def __init__(self) -> None:
        self._listeners: dict[str, list[_Entry]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def on(self, event: str, listener: Listener) -> Listener:
        """Call ``listener(*args)`` on every ``emit(event, *args)``; returns the listener."""
        self._listeners.setdefault(event, []).append(_Entry(listener, False))
        return listener

    def once(self, event: str, listener: Listener) -> Listener:
        """Like :meth:`on`, but the listener is removed before its first call."""
        self._listeners.setdefault(event, []).append(_Entry(listener, True))
        return listener

    def off(self, event: str, listener: Listener) -> None:
        """Remove one registration of ``listener`` for ``event`` (no error if there is none)."""
        entries = self._listeners.get(event)
        if not entries:
            return
        for i, entry in enumerate(entries):
            if entry.fn == listener:
                del entries[i]
                break
        if not entries:
            del self._listeners[event]

    def remove_all_listeners(self, event: str | None = None) -> None:
        if event is None:
            self._listeners.clear()
        else:
            self._listeners.pop(event, None)

    def listener_count(self, event: str) -> int:
        return len(self._listeners.get(event, ()))

    def emit(self, event: str, *args: Any) -> bool:
        """Call the listeners of ``event`` in order; True if there was at least one."""
        entries = self._listeners.get(event)
        if not entries:
            return False
        snapshot = list(entries)
        for entry in snapshot:
            if entry.once:
                self._remove_entry(event, entry)
            self._call(event, entry.fn, args)
        return True

    def _remove_entry(self, event: str, entry: _Entry) -> None:
        entries = self._listeners.get(event)
        if entries is None:
            return
        for i, candidate in enumerate(entries):
            if candidate is entry:
                del entries[i]
                break
        if not entries:
            del self._listeners[event]

    def _call(self, event: str, fn: Listener, args: tuple[Any, ...]) -> None:
        try:
            result = fn(*args)
        except Exception:
            logger.exception("listener for event %r raised", event)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(lambda t: self._task_done(event, t))

    def _task_done(self, event: str, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            logger.error("async listener for event %r raised", event, exc_info=exc)
