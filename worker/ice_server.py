"""ICE-lite server (RFC 8445 section 2.5 and 7.3, as mediasoup's IceServer), sans-IO.

The transport feeds it each STUN message with the tuple it came on and the time, and gets back
what to send on that tuple and what changed (:class:`IceUpdate`). It never touches a socket or
a clock: ``now`` is a parameter, and ``deadline`` says when :meth:`IceServer.handle_timeout`
should be called for the consent timer.

Rules:
- Only binding requests are answered (other requests: 400). A request whose FINGERPRINT is
  wrong is dropped (it may not even be STUN). Without FINGERPRINT, PRIORITY, USERNAME or
  MESSAGE-INTEGRITY: 400. A USERNAME that is not ``<local ufrag>:<remote ufrag>`` or a wrong
  MESSAGE-INTEGRITY: 401. ICE-CONTROLLED (the peer is ICE-lite or controlled too): 487. Error
  responses change no state and add no tuple.
- A valid request adds its tuple (at most 8; the oldest unselected one is evicted) and restarts
  the consent timer. State: ``new``/``disconnected`` → ``connected`` (tuple selected), or
  ``completed`` on USE-CANDIDATE; in ``connected``/``completed``, USE-CANDIDATE, or a
  NOMINATION value higher than any before, selects that tuple (``completed``).
- Consent: when no valid request arrives for ``consent_timeout_s`` (0: never), every tuple is
  removed and the state becomes ``disconnected``.
- ICE restart: new credentials; the old ones are still accepted until the first request that
  uses the new ones.
- Only tuples that passed MESSAGE-INTEGRITY are ever stored, so only those can be selected and
  sent media to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from worker._fast import (
    StunClass,
    StunMessageView,
    build_binding_error,
    build_binding_success,
    check_message_integrity,
)

__all__ = ["MAX_TUPLES", "IceServer", "IceTuple", "IceUpdate"]

MAX_TUPLES: Final = 8
STUN_BINDING: Final = 0x001


@dataclass(eq=False, slots=True)
class IceTuple:
    """A 5-tuple ICE saw a valid request on. For TCP, ``connection`` is the transport's
    ``TcpConnection`` (the transport owns it once the tuple is added)."""

    protocol: str  # "udp" or "tcp"
    local_ip: str
    local_port: int
    remote_ip: str
    remote_port: int
    connection: Any = None
    socket: Any = None  # the UDP socket edge the tuple sends through

    @property
    def key(self) -> tuple[str, str, int, str, int]:
        return (self.protocol, self.local_ip, self.local_port, self.remote_ip, self.remote_port)

    def dump(self) -> dict[str, Any]:
        return {"localAddress": self.local_ip, "localPort": self.local_port,
                "remoteIp": self.remote_ip, "remotePort": self.remote_port,
                "protocol": self.protocol}


@dataclass(slots=True)
class IceUpdate:
    """What one input produced: a response to send back on the tuple, and the changes."""

    response: bytes | None = None
    added: IceTuple | None = None
    removed: list[IceTuple] = field(default_factory=list)
    state_changed: bool = False
    selected_changed: bool = False
    rejected: int = 0  # the error code answered, 0 for none


class IceServer:
    def __init__(self, ufrag: str, password: str, consent_timeout_s: float) -> None:
        self.ufrag = ufrag
        self.password = password
        self._old: tuple[str, str] | None = None
        self.consent_timeout_s = consent_timeout_s
        self.state = "new"
        self.tuples: list[IceTuple] = []  # oldest first
        self.selected: IceTuple | None = None
        self.deadline: float | None = None
        self._remote_nomination = 0
        self.requests_rejected = 0

    # -- input ----------------------------------------------------------------------------

    def handle_stun(self, data: bytes, msg: StunMessageView, tup: IceTuple,
                    now: float) -> IceUpdate:
        """One parsed STUN message (``data`` is its bytes) that arrived on ``tup``."""
        update = IceUpdate()
        if msg.method != STUN_BINDING or msg.message_class is not StunClass.REQUEST:
            if msg.message_class is StunClass.REQUEST:
                return self._reject(update, msg, 400, "Bad Request", None)
            return update  # indications and responses are not for an ICE-lite server
        if msg.fingerprint_present and not msg.fingerprint_valid:
            return update  # not a STUN message we can trust to be one: dropped
        if (not msg.fingerprint_present or msg.username is None or msg.integrity_offset is None
                or msg.priority is None):
            return self._reject(update, msg, 400, "Bad Request", None)
        password = self._password_for(msg.username)
        if password is None or not check_message_integrity(data, msg, password):
            return self._reject(update, msg, 401, "Unauthorized", None)
        if msg.ice_controlled is not None:
            return self._reject(update, msg, 487, "Role Conflict", password)
        if password == self.password:
            self._old = None  # the first request with new credentials retires the old ones
        update.response = build_binding_success(msg.transaction_id, tup.remote_ip,
                                                tup.remote_port, password)
        self._accept_tuple(update, tup, msg, now)
        return update

    def _password_for(self, username: bytes) -> str | None:
        local, sep, _remote = username.partition(b":")
        if not sep:
            return None
        if local == self.ufrag.encode():
            return self.password
        if self._old is not None and local == self._old[0].encode():
            return self._old[1]
        return None

    def _reject(self, update: IceUpdate, msg: StunMessageView, code: int, reason: str,
                password: str | None) -> IceUpdate:
        self.requests_rejected += 1
        update.rejected = code
        update.response = build_binding_error(msg.transaction_id, code, reason, password,
                                              msg.method)
        return update

    def _accept_tuple(self, update: IceUpdate, tup: IceTuple, msg: StunMessageView,
                      now: float) -> None:
        known = self._find(tup)
        if known is None:
            self._add(update, tup)
            known = tup
        if self.consent_timeout_s > 0:
            self.deadline = now + self.consent_timeout_s
        nominated = msg.use_candidate
        if msg.nomination is not None and msg.nomination > self._remote_nomination:
            self._remote_nomination = msg.nomination
            nominated = True
        if self.state in ("new", "disconnected"):
            self._select(update, known)
            self._set_state(update, "completed" if nominated else "connected")
        elif nominated:
            self._select(update, known)
            self._set_state(update, "completed")

    def _find(self, tup: IceTuple) -> IceTuple | None:
        key = tup.key
        for known in self.tuples:
            if known.key == key:
                return known
        return None

    def _add(self, update: IceUpdate, tup: IceTuple) -> None:
        if len(self.tuples) >= MAX_TUPLES:
            for old in self.tuples:
                if old is not self.selected:
                    self.tuples.remove(old)
                    update.removed.append(old)
                    break
        self.tuples.append(tup)
        update.added = tup

    def _select(self, update: IceUpdate, tup: IceTuple) -> None:
        if self.selected is not tup:
            self.selected = tup
            update.selected_changed = True

    def _set_state(self, update: IceUpdate, state: str) -> None:
        if self.state != state:
            self.state = state
            update.state_changed = True

    @property
    def old_ufrag(self) -> str | None:
        """The username fragment before the last restart, while it is still accepted."""
        return self._old[0] if self._old is not None else None

    # -- other inputs ---------------------------------------------------------------------

    def find_tuple(self, key: tuple[str, str, int, str, int]) -> IceTuple | None:
        for known in self.tuples:
            if known.key == key:
                return known
        return None

    def force_select(self, tup: IceTuple) -> IceUpdate:
        """DTLS arrived on a valid tuple: it becomes the selected one (mediasoup's rule)."""
        update = IceUpdate()
        if tup in self.tuples and self.state in ("connected", "completed"):
            self._select(update, tup)
        return update

    def remove_tuple(self, tup: IceTuple) -> IceUpdate:
        """A tuple went away (its TCP connection closed): select another or disconnect."""
        update = IceUpdate()
        if tup not in self.tuples:
            return update
        self.tuples.remove(tup)
        update.removed.append(tup)
        if tup is self.selected:
            self.selected = None
            if self.tuples:
                self._select(update, self.tuples[-1])
            else:
                update.selected_changed = True
                self._disconnect(update)
        return update

    def handle_timeout(self, now: float) -> IceUpdate:
        """Consent expired when ``now`` is at or past ``deadline``: drop every tuple."""
        update = IceUpdate()
        if self.deadline is None or now < self.deadline:
            return update
        self.deadline = None
        update.removed.extend(self.tuples)
        self.tuples.clear()
        if self.selected is not None:
            self.selected = None
            update.selected_changed = True
        self._disconnect(update)
        return update

    def _disconnect(self, update: IceUpdate) -> None:
        self.deadline = None
        if self.state in ("connected", "completed"):
            self._set_state(update, "disconnected")

    def restart(self, ufrag: str, password: str, now: float) -> None:
        """New credentials; the old ones stay valid until a request uses the new ones."""
        self._old = (self.ufrag, self.password)
        self.ufrag = ufrag
        self.password = password
        if self.consent_timeout_s > 0 and self.tuples:
            self.deadline = now + self.consent_timeout_s

    def close(self) -> list[IceTuple]:
        """Forget every tuple (the transport closes); returns them for the owner to free."""
        removed = list(self.tuples)
        self.tuples.clear()
        self.selected = None
        self.deadline = None
        return removed
