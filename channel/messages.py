"""Message shapes of the channel (PROTOCOL.md section 3) and their checks.

Requests and controller notifications are parsed by the worker with
:func:`parse_controller_message`; responses, notifications and logs by controllers with
:func:`parse_worker_message`. A decoded object of the wrong shape raises
:class:`MessageShapeError`, which carries the request id when one could be read so that the
worker can still answer it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from channel.protocol import MAX_REQUEST_ID

__all__ = [
    "ControllerNotification",
    "Log",
    "MessageShapeError",
    "Notification",
    "Request",
    "Response",
    "parse_controller_message",
    "parse_worker_message",
]


class MessageShapeError(ValueError):
    """A decoded message is not one of the protocol's shapes.

    ``request_id`` is the id to answer with ``TypeError``, or ``None`` when none could be read.
    """

    def __init__(self, reason: str, request_id: int | None = None,
                 method: str | None = None) -> None:
        super().__init__(reason)
        self.request_id = request_id
        self.method = method


@dataclass(slots=True)
class Request:
    id: int
    method: str
    handler_id: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        return {"id": self.id, "method": self.method, "handlerId": self.handler_id,
                "data": self.data}


@dataclass(slots=True)
class Response:
    id: int
    accepted: bool
    data: Any = None
    error: str | None = None
    reason: str | None = None

    def to_wire(self) -> dict[str, Any]:
        if self.accepted:
            return {"id": self.id, "accepted": True, "data": self.data}
        return {"id": self.id, "accepted": False, "error": self.error, "reason": self.reason}


@dataclass(slots=True)
class Notification:
    """A notification in either direction: ``{event, handlerId, data}``."""

    event: str
    handler_id: str
    data: Any = None

    def to_wire(self) -> dict[str, Any]:
        return {"event": self.event, "handlerId": self.handler_id, "data": self.data}


# Controller-to-worker notifications have the same shape; the alias names the direction.
ControllerNotification = Notification


@dataclass(slots=True)
class Log:
    level: str  # "D", "W" or "E"
    text: str

    def to_wire(self) -> dict[str, Any]:
        return {"log": self.level, "text": self.text}


def _readable_id(obj: dict[Any, Any]) -> int | None:
    value = obj.get("id")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _handler_id(obj: dict[Any, Any], request_id: int | None, method: str | None) -> str:
    handler_id = obj.get("handlerId", "")
    if handler_id is None:
        return ""
    if not isinstance(handler_id, str):
        raise MessageShapeError(
            f"handlerId must be a string, not {type(handler_id).__name__}", request_id, method
        )
    return handler_id


def _parse_request(obj: dict[Any, Any]) -> Request:
    request_id = _readable_id(obj)
    if request_id is None:
        raise MessageShapeError(f"request id must be an integer, not {type(obj['id']).__name__}")
    if not 0 < request_id <= MAX_REQUEST_ID:
        raise MessageShapeError(f"request id {request_id} is not a uint32 > 0", request_id)
    method = obj.get("method")
    if not isinstance(method, str):
        raise MessageShapeError(
            f"method must be a string, not {type(method).__name__}", request_id
        )
    handler_id = _handler_id(obj, request_id, method)
    data = obj.get("data")
    if data is None:
        data = {}
    elif not isinstance(data, dict):
        raise MessageShapeError(
            f"data must be a map, not {type(data).__name__}", request_id, method
        )
    return Request(request_id, method, handler_id, data)


def _parse_notification(obj: dict[Any, Any]) -> Notification:
    event = obj.get("event")
    if not isinstance(event, str):
        raise MessageShapeError(f"event must be a string, not {type(event).__name__}")
    return Notification(event, _handler_id(obj, None, None), obj.get("data"))


def parse_controller_message(obj: Any) -> Request | Notification:
    """A request (it has an ``id``) or a notification (it has an ``event`` and no ``id``)."""
    if not isinstance(obj, dict):
        raise MessageShapeError(f"message must be a map, not {type(obj).__name__}")
    if "id" in obj:
        return _parse_request(obj)
    if "event" in obj:
        return _parse_notification(obj)
    raise MessageShapeError("message is neither a request (no id) nor a notification (no event)")


def parse_worker_message(obj: Any) -> Response | Notification | Log:
    """A response, a notification or a log, as the worker sends them."""
    if not isinstance(obj, dict):
        raise MessageShapeError(f"message must be a map, not {type(obj).__name__}")
    if "id" in obj:
        request_id = _readable_id(obj)
        accepted = obj.get("accepted")
        if request_id is None or not isinstance(accepted, bool):
            raise MessageShapeError("response needs an integer id and a boolean accepted")
        if accepted:
            return Response(request_id, True, obj.get("data"))
        error, reason = obj.get("error"), obj.get("reason")
        return Response(request_id, False, None, str(error), str(reason))
    if "event" in obj:
        return _parse_notification(obj)
    if "log" in obj:
        level, text = obj.get("log"), obj.get("text")
        if level not in ("D", "W", "E") or not isinstance(text, str):
            raise MessageShapeError("log needs a level D, W or E and a text")
        return Log(level, text)
    raise MessageShapeError("message is neither a response, a notification nor a log")
