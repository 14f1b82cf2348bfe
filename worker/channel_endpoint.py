"""The worker's end of the channel: frames in, requests dispatched, responses and notifications out.

It is sans-IO: bytes come in through :meth:`ChannelEndpoint.receive`, frames go out through the
``send(frame, essential)`` callable it is given. Responses are essential; notifications and logs
may be dropped by the writer when the controller does not read (PROTOCOL.md: bounded queues).

Rules kept here:
- every request with a readable id gets exactly one response;
- a notification emitted while a request is handled is sent after that request's response;
- nothing the controller sends makes this raise: bad frames are logged, counted and dropped.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from channel.codec import (
    FrameDecoder,
    FrameEncoder,
    FrameTooLargeError,
    OversizeFrame,
    decode_payload,
)
from channel.messages import MessageShapeError, Notification, Request, parse_controller_message
from worker.errors import WorkerError, wire_error
from worker.logger import Logger

__all__ = ["ChannelCounters", "ChannelEndpoint"]

FrameSender = Callable[[bytes, bool], bool]  # (frame, essential) -> sent (False: dropped)
RequestDispatcher = Callable[[Request], Any]
NotificationDispatcher = Callable[[Notification], None]


@dataclass(slots=True)
class ChannelCounters:
    requests_in: int = 0
    notifications_in: int = 0
    responses_out: int = 0
    notifications_out: int = 0
    logs_out: int = 0
    frames_dropped_in: int = 0
    frames_dropped_out: int = 0

    def dump(self) -> dict[str, int]:
        return {
            "requestsIn": self.requests_in,
            "responsesOut": self.responses_out,
            "notificationsOut": self.notifications_out,
            "framesDropped": self.frames_dropped_in + self.frames_dropped_out,
            "notificationsIn": self.notifications_in,
            "logsOut": self.logs_out,
            "framesDroppedIn": self.frames_dropped_in,
            "framesDroppedOut": self.frames_dropped_out,
        }


class ChannelEndpoint:
    def __init__(self, send: FrameSender, logger: Logger) -> None:
        self._send = send
        self._logger = logger
        self._encoder = FrameEncoder()
        self._dispatch_request: RequestDispatcher | None = None
        self._dispatch_notification: NotificationDispatcher | None = None
        self._handling = 0
        self._deferred: list[bytes] = []
        self.closing = False
        self.counters = ChannelCounters()
        self._decoder = FrameDecoder()

    def bind(self, requests: RequestDispatcher, notifications: NotificationDispatcher) -> None:
        self._dispatch_request = requests
        self._dispatch_notification = notifications

    # -- input ----------------------------------------------------------------------------

    def receive(self, data: bytes) -> None:
        """Feed bytes read from the controller; handles every frame they complete."""
        for item in self._decoder.feed(data):
            if isinstance(item, OversizeFrame):
                self.counters.frames_dropped_in += 1
                self._logger.error(
                    f"channel: skipped a frame of {item.length} bytes (over the limit)"
                )
            else:
                self._handle_payload(item)

    def _handle_payload(self, payload: bytes) -> None:
        try:
            message = parse_controller_message(decode_payload(payload))
        except MessageShapeError as exc:
            self.counters.frames_dropped_in += 1
            self._logger.error(f"channel: dropped a malformed message: {exc}")
            if exc.request_id is not None:
                self.counters.requests_in += 1
                self._respond_error(exc.request_id, "TypeError", str(exc), exc.method or "?")
            return
        except ValueError as exc:
            self.counters.frames_dropped_in += 1
            self._logger.error(f"channel: dropped a frame: {exc}")
            return
        if isinstance(message, Request):
            self._handle_request(message)
        else:
            self._handle_notification(message)

    def _handle_request(self, request: Request) -> None:
        self.counters.requests_in += 1
        if self.closing:
            self._respond_error(request.id, "Error", "the worker is closing", request.method)
            return
        if self._dispatch_request is None:
            raise RuntimeError("channel endpoint is not bound to a dispatcher")
        self._handling += 1
        try:
            try:
                result = self._dispatch_request(request)
            except WorkerError as exc:
                name, reason = wire_error(exc)
                self._respond_error(request.id, name, reason, request.method)
            except Exception as exc:  # a bug: answer, and say so loudly on stderr
                name, reason = wire_error(exc)
                self._logger.error(
                    f"bug while handling {request.method}: {traceback.format_exc()}"
                )
                self._respond_error(request.id, name, reason, request.method)
            else:
                self._respond_ok(request, result)
        finally:
            self._handling -= 1
            if not self._handling and self._deferred:
                deferred, self._deferred = self._deferred, []
                for frame in deferred:
                    self._send_notification_frame(frame)

    def _handle_notification(self, notification: Notification) -> None:
        self.counters.notifications_in += 1
        if self.closing or self._dispatch_notification is None:
            return
        try:
            self._dispatch_notification(notification)
        except WorkerError as exc:
            self._logger.warn(f"notification {notification.event} dropped: {exc}")
        except Exception:
            self._logger.error(
                f"bug while handling notification {notification.event}: {traceback.format_exc()}"
            )

    # -- output ---------------------------------------------------------------------------

    def _respond_ok(self, request: Request, data: Any) -> None:
        try:
            frame = self._encoder.encode({"id": request.id, "accepted": True, "data": data})
        except (FrameTooLargeError, TypeError, ValueError, OverflowError) as exc:
            self._logger.error(f"response to {request.method} could not be encoded: {exc}")
            self._respond_error(request.id, "Error", f"response could not be encoded: {exc}",
                                request.method)
            return
        self._send(frame, True)
        self.counters.responses_out += 1

    def _respond_error(self, request_id: int, name: str, reason: str, method: str | None) -> None:
        if method is not None:
            reason = f"{reason} [method:{method}]"
        frame = self._encoder.encode(
            {"id": request_id, "accepted": False, "error": name, "reason": reason}
        )
        self._send(frame, True)
        self.counters.responses_out += 1

    def notify(self, handler_id: str, event: str, data: Any = None) -> None:
        """Send a notification; held back while a request is handled, until its response."""
        try:
            frame = self._encoder.encode({"event": event, "handlerId": handler_id, "data": data})
        except (FrameTooLargeError, TypeError, ValueError, OverflowError) as exc:
            self.counters.frames_dropped_out += 1
            self._logger.error(f"notification {event} could not be encoded: {exc}")
            return
        if self._handling:
            self._deferred.append(frame)
        else:
            self._send_notification_frame(frame)

    def _send_notification_frame(self, frame: bytes) -> None:
        if self._send(frame, False):
            self.counters.notifications_out += 1
        else:
            self.counters.frames_dropped_out += 1

    def log(self, letter: str, text: str) -> None:
        """Send a log message (the logger calls this for every record it emits)."""
        try:
            frame = self._encoder.encode({"log": letter, "text": text})
        except (FrameTooLargeError, TypeError, ValueError) as exc:
            self.counters.frames_dropped_out += 1
            self._logger.attach_channel(None)  # never recurse through the channel
            try:
                self._logger.error(f"log message could not be encoded: {exc}")
            finally:
                self._logger.attach_channel(self.log)
            return
        if self._send(frame, False):
            self.counters.logs_out += 1
        else:
            self.counters.frames_dropped_out += 1
