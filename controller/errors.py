"""The errors the controller raises, and the mapping from the worker's wire error names.

A failed response ``{accepted: false, error: NAME, reason}`` becomes the class that
:data:`WIRE_ERRORS` names for ``NAME``, with the worker's ``reason`` as its message. Each class also
inherits the matching builtin where there is one, so ``except TypeError`` and
``except TimeoutError`` work in code that does not know this module.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "WIRE_ERRORS",
    "ControllerError",
    "ControllerTypeError",
    "InvalidStateError",
    "RequestTimeoutError",
    "UnsupportedError",
    "error_from_wire",
]


class ControllerError(Exception):
    """Base of every controller error; also what a worker ``Error`` response becomes."""


class ControllerTypeError(ControllerError, TypeError):
    """Bad arguments: a ``TypeError`` response, or a worker that refused its settings (exit 42)."""


class InvalidStateError(ControllerError):
    """The target is not in a state that allows the call (closed entity, closed channel ...)."""


class UnsupportedError(ControllerError):
    """The worker cannot do what was asked (e.g. a media codec it does not support)."""


class RequestTimeoutError(ControllerError, TimeoutError):
    """The worker did not answer a request in time."""


WIRE_ERRORS: Final[dict[str, type[ControllerError]]] = {
    "TypeError": ControllerTypeError,
    "InvalidStateError": InvalidStateError,
    "UnsupportedError": UnsupportedError,
    "Error": ControllerError,
}


def error_from_wire(name: str | None, reason: str | None) -> ControllerError:
    """The exception for a failed response; unknown names map to :class:`ControllerError`."""
    cls = WIRE_ERRORS.get(name or "Error", ControllerError)
    return cls(reason if reason else f"request failed with {name or 'Error'} and no reason")
