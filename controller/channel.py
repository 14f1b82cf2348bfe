"""The controller's end of the worker channel, on asyncio.

:class:`Channel` writes request frames to the worker's stdin and reads its stdout: bytes go through
:class:`channel.codec.FrameDecoder` and :func:`channel.messages.parse_worker_message`, responses
settle the pending request with the same id, notifications go to the listeners registered for
their handlerId, and worker log messages go to the ``mediaworker.worker`` logger.

:class:`ChannelEntity` is the base of every object the worker knows by a handlerId (routers now;
transports, producers and consumers later): it holds the channel, subscribes to its own
notifications, refuses requests once closed and closes exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Protocol

from channel.codec import (
    FrameDecoder,
    FrameTooLargeError,
    OversizeFrame,
    decode_payload,
    encode_frame,
)
from channel.messages import (
    Log,
    MessageShapeError,
    Notification,
    Request,
    Response,
    parse_worker_message,
)
from channel.protocol import MAX_REQUEST_ID
from controller.errors import (
    ControllerError,
    ControllerTypeError,
    InvalidStateError,
    RequestTimeoutError,
    error_from_wire,
)
from controller.events import EnhancedEventEmitter

__all__ = [
    "DEFAULT_REQUEST_TIMEOUT_S",
    "REQUEST_TIMEOUT_PER_PENDING_S",
    "Channel",
    "ChannelEntity",
    "FrameWriter",
    "NotificationListener",
    "expect_map",
]

logger = logging.getLogger("mediaworker.controller")
worker_logger = logging.getLogger("mediaworker.worker")

# As mediasoup: a request times out after 15 s plus 0.1 s per request already pending.
DEFAULT_REQUEST_TIMEOUT_S: Final = 15.0
REQUEST_TIMEOUT_PER_PENDING_S: Final = 0.1

READ_CHUNK_BYTES: Final = 64 * 1024

_LOG_LEVELS: Final = {"D": logging.DEBUG, "W": logging.WARNING, "E": logging.ERROR}

NotificationListener = Callable[[str, Any], None]  # (event, data)


class FrameWriter(Protocol):
    """What the channel writes frames to (an :class:`asyncio.StreamWriter` fits)."""

    def write(self, data: bytes) -> None: ...

    def is_closing(self) -> bool: ...

    async def drain(self) -> None: ...


@dataclass(slots=True)
class _Pending:
    method: str
    future: asyncio.Future[Any]
    timer: asyncio.TimerHandle


def expect_map(value: Any, method: str) -> dict[str, Any]:
    """``value`` if it is a map, else a :class:`ControllerError` naming the method."""
    if not isinstance(value, dict):
        raise ControllerError(
            f"worker answered {method} with a {type(value).__name__}, expected a map"
        )
    return value


class Channel:
    """Requests, responses, notifications and logs over one worker's stdin and stdout."""

    def __init__(
        self,
        writer: FrameWriter,
        *,
        pid: int | None = None,
        request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
        request_timeout_per_pending_s: float = REQUEST_TIMEOUT_PER_PENDING_S,
    ) -> None:
        self._writer = writer
        self._pid = pid
        self.request_timeout_s = request_timeout_s
        self.request_timeout_per_pending_s = request_timeout_per_pending_s
        self._decoder = FrameDecoder()
        self._pending: dict[int, _Pending] = {}
        self._listeners: dict[str, list[NotificationListener]] = {}
        self._last_id = 0
        self._closed = False
        self._close_reason = ""
        self._read_task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._pending)} pending"
        return f"<Channel pid={self._pid} {state}>"

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    @property
    def read_task(self) -> asyncio.Task[None] | None:
        """The task reading the worker's stdout, once :meth:`start` was called."""
        return self._read_task

    def start(self, reader: asyncio.StreamReader) -> asyncio.Task[None]:
        """Start reading frames from ``reader``; the channel closes when it reaches EOF."""
        if self._read_task is not None:
            raise RuntimeError("channel already started")
        self._read_task = asyncio.get_running_loop().create_task(
            self._read_loop(reader), name=f"mediaworker-channel-{self._pid}"
        )
        return self._read_task

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                data = await reader.read(READ_CHUNK_BYTES)
                if not data:
                    break
                self.feed(data)
        except (OSError, ValueError) as exc:
            logger.error("reading the worker channel failed: %s", exc)
        finally:
            self.close("worker channel closed (end of the worker's stdout)")

    # -- listeners ------------------------------------------------------------------------

    def add_listener(self, handler_id: str, listener: NotificationListener) -> None:
        """Call ``listener(event, data)`` for each notification from ``handler_id``."""
        self._listeners.setdefault(handler_id, []).append(listener)

    def remove_listener(
        self, handler_id: str, listener: NotificationListener | None = None
    ) -> None:
        """Remove ``listener`` (or, when None, every listener) for ``handler_id``."""
        listeners = self._listeners.get(handler_id)
        if listeners is None:
            return
        if listener is not None and listener in listeners:
            listeners.remove(listener)
        if listener is None or not listeners:
            del self._listeners[handler_id]

    # -- requests -------------------------------------------------------------------------

    def _next_id(self) -> int:
        request_id = self._last_id
        while True:
            request_id = request_id + 1 if request_id < MAX_REQUEST_ID else 1
            if request_id not in self._pending:
                self._last_id = request_id
                return request_id

    async def request(
        self,
        method: str,
        handler_id: str = "",
        data: Mapping[str, Any] | None = None,
        *,
        timeout_s: float | None = None,
    ) -> Any:
        """Send a request and return the ``data`` of its response.

        Raises the error class of a failed response, :class:`RequestTimeoutError` when no response
        comes in time (default: ``request_timeout_s`` plus ``request_timeout_per_pending_s`` per
        request already pending), and :class:`InvalidStateError` when the channel is or gets
        closed before the response.
        """
        if self._closed:
            raise InvalidStateError(f"channel closed ({self._close_reason}) [method:{method}]")
        if self._writer.is_closing():
            raise InvalidStateError(f"channel closed (the worker's stdin) [method:{method}]")
        request_id = self._next_id()
        wire = Request(request_id, method, handler_id, dict(data) if data else {}).to_wire()
        try:
            frame = encode_frame(wire)
        except FrameTooLargeError as exc:
            raise ControllerTypeError(f"{exc} [method:{method}]") from exc
        except (TypeError, ValueError, OverflowError) as exc:
            raise ControllerTypeError(
                f"request data cannot be encoded: {exc} [method:{method}]"
            ) from exc
        if timeout_s is None:
            timeout_s = (
                self.request_timeout_s + self.request_timeout_per_pending_s * len(self._pending)
            )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        timer = loop.call_later(timeout_s, self._on_timeout, request_id, timeout_s)
        pending = _Pending(method, future, timer)
        self._pending[request_id] = pending
        self._writer.write(frame)
        try:
            # A gone worker fails drain(); the channel then closes and rejects the request.
            with contextlib.suppress(ConnectionError):
                await self._writer.drain()
            return await future
        finally:
            if self._pending.get(request_id) is pending:  # cancelled while waiting
                del self._pending[request_id]
                timer.cancel()

    def _on_timeout(self, request_id: int, timeout_s: float) -> None:
        pending = self._pending.pop(request_id, None)
        if pending is None or pending.future.done():
            return
        pending.future.set_exception(
            RequestTimeoutError(
                f"request timed out after {timeout_s:g} s "
                f"[method:{pending.method}, id:{request_id}]"
            )
        )

    def notify(self, event: str, handler_id: str, data: Any = None) -> None:
        """Send a controller notification (no id, no response), e.g. ``producer.send``."""
        if self._closed:
            raise InvalidStateError(f"channel closed ({self._close_reason}) [event:{event}]")
        try:
            frame = encode_frame(Notification(event, handler_id, data).to_wire())
        except FrameTooLargeError as exc:
            raise ControllerTypeError(f"{exc} [event:{event}]") from exc
        self._writer.write(frame)

    # -- input ----------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Handle bytes read from the worker's stdout."""
        for item in self._decoder.feed(data):
            if isinstance(item, OversizeFrame):
                logger.error("worker sent a frame of %d bytes (over the limit)", item.length)
                continue
            try:
                message = parse_worker_message(decode_payload(item))
            except (MessageShapeError, ValueError) as exc:
                logger.error("dropped a bad message from the worker: %s", exc)
                continue
            if isinstance(message, Response):
                self._on_response(message)
            elif isinstance(message, Log):
                self._on_log(message)
            else:
                self._on_notification(message)

    def _on_response(self, response: Response) -> None:
        pending = self._pending.pop(response.id, None)
        if pending is None:
            logger.warning("response to an unknown or timed-out request [id:%d]", response.id)
            return
        pending.timer.cancel()
        if pending.future.done():
            return
        if response.accepted:
            pending.future.set_result(response.data)
        else:
            pending.future.set_exception(error_from_wire(response.error, response.reason))

    def _on_notification(self, notification: Notification) -> None:
        if self._closed:
            return
        listeners = self._listeners.get(notification.handler_id)
        if not listeners:
            logger.debug(
                "notification %r for handlerId %r without a listener",
                notification.event,
                notification.handler_id,
            )
            return
        for listener in list(listeners):
            try:
                listener(notification.event, notification.data)
            except Exception:
                logger.exception(
                    "listener of notification %r [handlerId:%s] raised",
                    notification.event,
                    notification.handler_id,
                )

    def _on_log(self, log: Log) -> None:
        worker_logger.log(_LOG_LEVELS[log.level], "[pid:%s] %s", self._pid, log.text)

    # -- close ----------------------------------------------------------------------------

    def close(self, reason: str = "channel closed") -> None:
        """Close the channel: every pending request fails with :class:`InvalidStateError`."""
        if self._closed:
            return
        self._closed = True
        self._close_reason = reason
        pending, self._pending = self._pending, {}
        for request_id, entry in pending.items():
            entry.timer.cancel()
            if not entry.future.done():
                entry.future.set_exception(
                    InvalidStateError(
                        f"{reason}: pending request aborted "
                        f"[method:{entry.method}, id:{request_id}]"
                    )
                )
        self._listeners.clear()


class ChannelEntity(EnhancedEventEmitter):
    """An object the worker knows by ``handler_id``, reached through ``channel``.

    Subclasses set :attr:`kind`, send their requests with :meth:`_request`, handle their
    notifications in :meth:`_on_notification`, and close through :meth:`_mark_closed`, which
    returns True exactly once.
    """

    kind: ClassVar[str] = "entity"

    def __init__(
        self, channel: Channel, handler_id: str, *, app_data: dict[str, Any] | None = None
    ) -> None:
        super().__init__()
        self._channel = channel
        self._handler_id = handler_id
        self._closed = False
        self.app_data: dict[str, Any] = app_data if app_data is not None else {}
        self._observer = EnhancedEventEmitter()
        channel.add_listener(handler_id, self._on_notification)

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<{type(self).__name__} {self._handler_id}{state}>"

    @property
    def id(self) -> str:
        return self._handler_id

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def observer(self) -> EnhancedEventEmitter:
        """Emits ``close`` once, however the entity was closed (and, in subclasses, ``new*``)."""
        return self._observer

    async def _request(
        self, method: str, data: Mapping[str, Any] | None = None, *, handler_id: str | None = None
    ) -> Any:
        if self._closed:
            raise InvalidStateError(f"{self.kind} closed [method:{method}]")
        target = self._handler_id if handler_id is None else handler_id
        return await self._channel.request(method, target, data)

    def _on_notification(self, event: str, data: Any) -> None:
        logger.debug("%s %s: unhandled notification %r", self.kind, self._handler_id, event)

    def _mark_closed(self) -> bool:
        """Mark closed and stop listening; False if it was closed already."""
        if self._closed:
            return False
        self._closed = True
        self._channel.remove_listener(self._handler_id, self._on_notification)
        return True

    async def _close_through_parent(self, method: str, parent_id: str,
                                    data: Mapping[str, Any]) -> None:
        """``close()`` of a child entity: mark closed, ask its parent to close it (a failure is
        logged, never raised: the entity is closed here either way), then ``@close``,
        ``@closed`` and the observer's ``close``. Closing twice is a no-op."""
        if not self._mark_closed():
            return
        try:
            await self._channel.request(method, parent_id, data)
        except InvalidStateError as exc:
            logger.debug("%s %s: %s not sent: %s", self.kind, self._handler_id, method, exc)
        except ControllerError as exc:
            logger.warning("%s %s: %s failed: %s", self.kind, self._handler_id, method, exc)
        finally:
            self.emit("@close")
            self.emit("@closed")
            self.observer.emit("close")

    def _closed_with_parent(self, event: str) -> None:
        """Its parent closed (or an ancestor, or the worker): gone with it, emitting
        ``event`` (e.g. ``transportclose``). No request is sent."""
        if not self._mark_closed():
            return
        self.emit("@closed")
        self.emit(event)
        self.observer.emit("close")
