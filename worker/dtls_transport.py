"""The DTLS side of a WebRtcTransport: ``dtlsParameters``, the session, its timer, and what each
of its updates means for the transport (datagrams to send on the selected tuple,
``dtlsstatechange`` notifications, the SRTP keys once connected).

The protocol core is :class:`worker.dtls.DtlsSession` (sans-IO); this module is the glue that
owns its timer on the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from worker.certificate import FINGERPRINT_ALGORITHMS, DtlsCertificate
from worker.dtls import DtlsConnected, DtlsRole, DtlsSession, DtlsUpdate, RemoteFingerprint
from worker.dtls import local_role_for as dtls_local_role_for
from worker.errors import WorkerTypeError

__all__ = ["DtlsTransport", "parse_dtls_parameters"]

Sender = Callable[[bytes], None]
Emitter = Callable[[str, Any], None]


def parse_dtls_parameters(data: object) -> tuple[DtlsRole, RemoteFingerprint]:
    """The local role (mediasoup's rule) and the remote fingerprint to check, from the remote
    ``dtlsParameters {role?, fingerprints}``: the first fingerprint of a supported algorithm."""
    if not isinstance(data, dict):
        raise WorkerTypeError("missing or invalid dtlsParameters (an object)")
    role = data.get("role", "auto")
    local_role = dtls_local_role_for("auto" if role is None else role)
    fingerprints = data.get("fingerprints")
    if not isinstance(fingerprints, list) or not fingerprints:
        raise WorkerTypeError("missing or invalid dtlsParameters.fingerprints (a non-empty array)")
    for entry in fingerprints:
        if not isinstance(entry, dict):
            raise WorkerTypeError("invalid dtlsParameters.fingerprints entry (an object)")
        algorithm = entry.get("algorithm")
        if isinstance(algorithm, str) and algorithm.lower() in FINGERPRINT_ALGORITHMS:
            return local_role, RemoteFingerprint.parse(algorithm, entry.get("value"))
    raise WorkerTypeError("no dtlsParameters.fingerprints entry of a supported algorithm "
                          f"({', '.join(FINGERPRINT_ALGORITHMS)})")


class DtlsTransport:
    def __init__(self, loop: asyncio.AbstractEventLoop, certificate: DtlsCertificate,
                 parameters: object, send: Sender, emit: Emitter,
                 on_connected: Callable[[DtlsConnected], None]) -> None:
        self.local_role, fingerprint = parse_dtls_parameters(parameters)
        self._loop = loop
        self._send = send
        self._emit = emit
        self._on_connected = on_connected
        self.session = DtlsSession(certificate, self.local_role, fingerprint)
        self.started = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None

    @property
    def state(self) -> str:
        return self.session.state

    def start(self) -> None:
        """Begin the handshake (once ICE is connected); later calls do nothing."""
        if not self.started:
            self.started = True
            self._apply(self.session.start(self._loop.time()))

    def handle_datagram(self, data: bytes) -> None:
        if self.started:
            self._apply(self.session.handle_datagram(data, self._loop.time()))

    def close(self) -> None:
        """Send the close alert (if connected) and stop the timer. Idempotent."""
        self._cancel_timer()
        for datagram in self.session.close():
            self._send(datagram)

    def _apply(self, update: DtlsUpdate) -> None:
        for datagram in update.datagrams:
            self._send(datagram)
        for state in update.states:
            data: dict[str, Any] = {"dtlsState": state}
            if state == "connected" and update.connected is not None:
                data["dtlsRemoteCert"] = update.connected.remote_certificate_pem
            self._emit("dtlsstatechange", data)
        if update.connected is not None:
            self._on_connected(update.connected)
        self._schedule()

    def _schedule(self) -> None:
        deadline = self.session.deadline
        if deadline == self._timer_at:
            return
        self._cancel_timer()
        if deadline is not None:
            self._timer_at = deadline
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._apply(self.session.handle_timeout(self._loop.time()))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = None
