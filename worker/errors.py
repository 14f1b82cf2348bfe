"""The errors a request can fail with, and the wire names they are answered with.

Each class also inherits the matching builtin, so ``except TypeError`` catches a
:class:`WorkerTypeError` in code that does not know this module.
"""

from __future__ import annotations


class WorkerError(Exception):
    """Anything that fails a request; answered as ``Error``."""

    wire_name = "Error"


class WorkerTypeError(WorkerError, TypeError):
    """The request's arguments are wrong; answered as ``TypeError``."""

    wire_name = "TypeError"


class InvalidStateError(WorkerError):
    """The entity is not in a state that allows the request; answered as ``InvalidStateError``."""

    wire_name = "InvalidStateError"


class UnsupportedError(WorkerError):
    """The request asks for something the worker cannot do (e.g. unconsumable capabilities)."""

    wire_name = "UnsupportedError"


class NotImplementedYetError(WorkerError):
    """A method of the protocol that this version of the worker does not implement yet.

    Answered as ``Error`` with a reason that says so, never as a fake success.
    """

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} is not implemented yet")


def wire_error(exc: BaseException) -> tuple[str, str]:
    """The ``(error, reason)`` pair a failed request is answered with."""
    if isinstance(exc, WorkerError):
        return exc.wire_name, str(exc)
    return "Error", f"internal error: {type(exc).__name__}: {exc}"
