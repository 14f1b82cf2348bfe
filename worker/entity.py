"""The base of every entity that answers requests: Router, Transport, Producer and the rest.

A subclass names its handler kind (the part of the method string before the dot) and marks its
request handlers with :func:`handles`. Methods of the protocol table that a kind does not handle
yet are answered with ``Error`` "... is not implemented yet", never with a fake success.

Ownership: the parent creates a child, registers it and keeps it in its own table; ``close()``
closes the children first, then unregisters the entity and tells its parent through
``on_closed``. ``close()`` is idempotent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from channel.protocol import METHODS
from worker.bufferpool import PoolSet
from worker.certificate import DtlsCertificate
from worker.errors import NotImplementedYetError, WorkerError, WorkerTypeError
from worker.logger import Logger
from worker.registry import Registry
from worker.settings import Settings

__all__ = ["Context", "Entity", "Notifier", "handles"]

Notifier = Callable[[str, str, Any], None]  # (handler_id, event, data)
Handler = Callable[[Any, dict[str, Any]], Any]
H = TypeVar("H", bound=Handler)


@dataclass(slots=True)
class Context:
    """What every entity of one worker shares."""

    registry: Registry
    notify: Notifier
    logger: Logger
    settings: Settings
    pools: PoolSet
    loop: asyncio.AbstractEventLoop
    certificate: DtlsCertificate


def handles(method: str) -> Callable[[H], H]:
    """Mark a method as the handler of ``<kind>.<method>`` requests."""

    def mark(func: H) -> H:
        func._mw_handles = method  # type: ignore[attr-defined]
        return func

    return mark


class Entity:
    kind: ClassVar[str]
    _handlers: ClassVar[dict[str, Handler]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handlers: dict[str, Handler] = {}
        for klass in reversed(cls.__mro__):
            for value in vars(klass).values():
                method = getattr(value, "_mw_handles", None)
                if method is not None:
                    handlers[method] = value
        known = set(METHODS.get(getattr(cls, "kind", ""), ()))
        unknown = set(handlers) - known
        if unknown and hasattr(cls, "kind"):
            raise TypeError(f"{cls.__name__} handles methods the protocol does not list: {unknown}")
        cls._handlers = handlers

    def __init__(self, entity_id: str, ctx: Context) -> None:
        self.id = entity_id
        self.ctx = ctx
        self.closed = False

    def handle_request(self, method: str, data: dict[str, Any]) -> Any:
        """Answer ``<kind>.<method>``; the return value is the response's ``data``."""
        handler = self._handlers.get(method)
        if handler is None:
            if method in METHODS.get(self.kind, ()):
                raise NotImplementedYetError(f"{self.kind}.{method}")
            raise WorkerError(f"unknown method {self.kind}.{method}")
        return handler(self, data)

    def emit(self, event: str, data: Any = None) -> None:
        """Send a notification from this entity (nothing once it is closed)."""
        if not self.closed:
            self.ctx.notify(self.id, event, data)

    def close(self) -> None:
        """Close the children, unregister, and release what this entity owns. Idempotent."""
        if self.closed:
            return
        self.closed = True
        self.close_children()
        self.ctx.registry.unregister(self)
        self.release()

    def close_children(self) -> None:
        """Close every child entity (subclasses with children override)."""

    def release(self) -> None:
        """Give back what this entity owns besides its children (sockets, timers, slots)."""


def require_str(data: dict[str, Any], key: str, *, what: str = "") -> str:
    """``data[key]`` as a non-empty string, or a ``TypeError`` that names it."""
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise WorkerTypeError(f"missing or invalid {what or key} (a non-empty string)")
    return value
