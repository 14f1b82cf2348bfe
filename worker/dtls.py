"""DTLS-SRTP (RFC 6347, RFC 5764) as a sans-IO core over pyOpenSSL memory BIOs.

A :class:`DtlsSession` is created when ``transport.connect`` gives the remote role and
fingerprint; the transport feeds it each DTLS datagram and the time, and gets back what to send
and what changed (:class:`DtlsUpdate`). It never touches a socket or reads a clock: ``now`` is
seconds as a float on the caller's monotonic clock, and :attr:`DtlsSession.deadline` says when
:meth:`DtlsSession.handle_timeout` should be called next.

Rules:
- States as mediasoup's ``dtlsState``: ``new`` → ``connecting`` (``start``) → ``connected`` or
  ``failed``; ``connected`` → ``closed`` on the peer's close alert or a fatal error. A close
  alert or fatal error before ``connected`` is ``failed``. ``close()`` (local) ends in ``closed``
  without an update.
- Any certificate is accepted by OpenSSL; the leaf must match the remote fingerprint, which is
  checked in the verify callback, so a mismatch aborts the handshake with a fatal alert (OpenSSL
  sends ``unknown_ca``) and the peer fails at once. The peer certificate is checked again when
  the handshake completes.
- The handshake must negotiate use_srtp (mediasoup requires it even without media): if it does
  not, the session fails and a close alert is sent. The handshake is bounded by
  ``handshake_timeout_s`` (30 s by default) from ``start``.
- Retransmission uses OpenSSL's own DTLS timer (``DTLSv1_get_timeout`` /
  ``DTLSv1_handle_timeout``; pyOpenSSL does not expose ``DTLS_set_timer_cb``). That timer reads
  the real clock inside OpenSSL: its first period is 1 s, doubling up to 60 s. ``deadline``
  mirrors it on the caller's clock; if OpenSSL's timer has not expired yet when
  ``handle_timeout`` is called, nothing is resent and ``deadline`` moves to OpenSSL's new
  estimate. On a fake clock retransmission therefore needs real time to pass as well.
- Outgoing records are read from the memory BIO (a byte stream) and packed into datagrams of at
  most ``mtu`` bytes at record boundaries; OpenSSL fragments handshake messages to that MTU.
  Incoming datagrams that are not a whole sequence of DTLS 1.x records are dropped and counted
  before they reach OpenSSL (a stream BIO would otherwise glue a truncated record to the next
  datagram). Records OpenSSL cannot authenticate are silently discarded by OpenSSL (RFC 6347
  section 4.1.2.7) and never fail a connected session. Before ``connected``, a well-formed but
  forged plaintext record (alert, handshake) can fail the handshake, as with any OpenSSL DTLS.

SRTP profiles, probed at import (pyOpenSSL 26.4.0 with OpenSSL 4.0.3, pylibsrtp 1.0.0: all four
are supported by both): SRTP_AEAD_AES_256_GCM, SRTP_AEAD_AES_128_GCM, SRTP_AES128_CM_SHA1_80,
SRTP_AES128_CM_SHA1_32, offered in that order. The server's order decides, as OpenSSL does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import pylibsrtp
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto

from worker._fast import SRTP_PROFILE_PREFERENCE, SrtpContext, SrtpProfile
from worker.certificate import FINGERPRINT_ALGORITHMS, DtlsCertificate
from worker.errors import InvalidStateError, WorkerTypeError

__all__ = [
    "CANDIDATE_SRTP_PROFILES",
    "DTLS_HANDSHAKE_TIMEOUT_S",
    "DTLS_MAX_APPLICATION_DATA_BYTES",
    "DTLS_MTU_BYTES",
    "SUPPORTED_SRTP_PROFILES",
    "DtlsConnected",
    "DtlsRole",
    "DtlsSession",
    "DtlsState",
    "DtlsUpdate",
    "RemoteFingerprint",
    "SrtpKeys",
    "SrtpProfile",
    "local_role_for",
    "split_keying_material",
    "srtp_profile_by_crypto_suite",
    "srtp_sessions",
]

DtlsRole = Literal["client", "server"]
DtlsState = Literal["new", "connecting", "connected", "failed", "closed"]

DTLS_HANDSHAKE_TIMEOUT_S: Final = 30.0
DTLS_MTU_BYTES: Final = 1200
DTLS_MAX_APPLICATION_DATA_BYTES: Final = 16384  # TLS's maximum plaintext per record
SRTP_EXPORTER_LABEL: Final = b"EXTRACTOR-dtls_srtp"

_RECORD_HEADER_BYTES: Final = 13  # type, version, epoch, sequence number, length
_RECORD_TYPES: Final = frozenset({20, 21, 22, 23, 24})  # ccs, alert, handshake, data, heartbeat
_BIO_READ_BYTES: Final = 65536


# The profiles offered, most preferred first (mediasoup's order; the server's order decides).
CANDIDATE_SRTP_PROFILES: Final[tuple[SrtpProfile, ...]] = SRTP_PROFILE_PREFERENCE


def _profile_works(profile: SrtpProfile) -> bool:
    """Both OpenSSL (use_srtp) and libsrtp (a session with a key of our length) accept it."""
    try:
        SSL.Context(SSL.DTLS_METHOD).set_tlsext_use_srtp(profile.openssl_name.encode())
        SrtpContext.outbound(profile, bytes(profile.master_key_bytes + profile.master_salt_bytes))
    except (SSL.Error, pylibsrtp.Error, ValueError):
        return False
    return True


SUPPORTED_SRTP_PROFILES: Final[tuple[SrtpProfile, ...]] = tuple(
    profile for profile in CANDIDATE_SRTP_PROFILES if _profile_works(profile))


def srtp_profile_by_crypto_suite(crypto_suite: str) -> SrtpProfile:
    for profile in SUPPORTED_SRTP_PROFILES:
        if profile.crypto_suite == crypto_suite:
            return profile
    raise KeyError(f"unsupported SRTP crypto suite {crypto_suite!r}")


def local_role_for(remote_role: object) -> DtlsRole:
    """mediasoup's rule: a remote ``auto`` or ``server`` makes us the client, ``client`` the
    server."""
    if remote_role in ("auto", "server"):
        return "client"
    if remote_role == "client":
        return "server"
    raise WorkerTypeError(f"invalid dtlsParameters.role {remote_role!r}")


@dataclass(frozen=True, slots=True)
class RemoteFingerprint:
    """The fingerprint the peer's certificate must have (from the remote dtlsParameters)."""

    algorithm: str  # "sha-1" .. "sha-512", lower case
    digest: bytes

    @classmethod
    def parse(cls, algorithm: object, value: object) -> RemoteFingerprint:
        """From ``{algorithm, value}``: any case, hex pairs joined by colons."""
        if not isinstance(algorithm, str) or algorithm.lower() not in FINGERPRINT_ALGORITHMS:
            raise WorkerTypeError(f"invalid fingerprint algorithm {algorithm!r}")
        name = algorithm.lower()
        if not isinstance(value, str):
            raise WorkerTypeError("fingerprint value must be a string")
        pairs = value.split(":")
        size = FINGERPRINT_ALGORITHMS[name].digest_size
        if len(pairs) != size or any(len(pair) != 2 for pair in pairs):
            raise WorkerTypeError(f"invalid {name} fingerprint value {value!r}")
        try:
            digest = bytes.fromhex("".join(pairs))
        except ValueError:
            raise WorkerTypeError(f"invalid {name} fingerprint value {value!r}") from None
        return cls(name, digest)

    def matches(self, certificate: x509.Certificate) -> bool:
        return certificate.fingerprint(FINGERPRINT_ALGORITHMS[self.algorithm]) == self.digest


@dataclass(frozen=True, slots=True)
class SrtpKeys:
    """The SRTP master keys and salts for one side: ``local`` protects what we send."""

    profile: SrtpProfile
    local_key: bytes
    local_salt: bytes
    remote_key: bytes
    remote_salt: bytes


def split_keying_material(material: bytes, profile: SrtpProfile, role: DtlsRole) -> SrtpKeys:
    """RFC 5764 section 4.2: client key | server key | client salt | server salt."""
    k, s = profile.master_key_bytes, profile.master_salt_bytes
    if len(material) != 2 * (k + s):
        raise ValueError(f"{profile.openssl_name} needs {2 * (k + s)} bytes of keying material, "
                         f"got {len(material)}")
    client_key, server_key = material[:k], material[k:2 * k]
    client_salt, server_salt = material[2 * k:2 * k + s], material[2 * k + s:]
    if role == "client":
        return SrtpKeys(profile, client_key, client_salt, server_key, server_salt)
    return SrtpKeys(profile, server_key, server_salt, client_key, client_salt)


def srtp_sessions(keys: SrtpKeys) -> tuple[SrtpContext, SrtpContext]:
    """``(inbound, outbound)`` SRTP contexts (the C batch's sessions): unprotect what the peer
    sends, protect what we send; both cover SRTP and SRTCP for any SSRC."""
    return (SrtpContext.inbound(keys.profile, keys.remote_key + keys.remote_salt),
            SrtpContext.outbound(keys.profile, keys.local_key + keys.local_salt))


@dataclass(frozen=True, slots=True)
class DtlsConnected:
    """What the handshake established."""

    remote_certificate_pem: str
    srtp: SrtpKeys

    @property
    def srtp_crypto_suite(self) -> str:
        return self.srtp.profile.crypto_suite


@dataclass(slots=True)
class DtlsUpdate:
    """The outcome of one call: datagrams to send in order, every state entered in order (with
    ``connected`` set when ``"connected"`` was entered, ``failure`` when ``"failed"`` was), and
    the application data records received."""

    datagrams: list[bytes] = field(default_factory=list)
    states: list[DtlsState] = field(default_factory=list)
    connected: DtlsConnected | None = None
    failure: str | None = None
    application_data: list[bytes] = field(default_factory=list)


def split_records(datagram: bytes) -> list[bytes] | None:
    """The DTLS 1.x records a datagram holds, or None unless it is exactly a sequence of them."""
    records: list[bytes] = []
    offset, size = 0, len(datagram)
    while offset < size:
        if size - offset < _RECORD_HEADER_BYTES:
            return None
        if datagram[offset] not in _RECORD_TYPES or datagram[offset + 1] != 0xFE:
            return None
        end = offset + _RECORD_HEADER_BYTES + int.from_bytes(
            datagram[offset + 11:offset + 13], "big")
        if end > size:
            return None
        records.append(datagram[offset:end])
        offset = end
    return records or None


def pack_records(records: Sequence[bytes], mtu: int) -> list[bytes]:
    """Records into datagrams of at most ``mtu`` bytes, in order; a record larger than ``mtu``
    travels alone."""
    datagrams: list[bytes] = []
    current: list[bytes] = []
    current_size = 0
    for record in records:
        if current and current_size + len(record) > mtu:
            datagrams.append(b"".join(current))
            current, current_size = [], 0
        current.append(record)
        current_size += len(record)
    if current:
        datagrams.append(b"".join(current))
    return datagrams


class _PeerCheck:
    """Lives in the connection's app data, so the verify callback reaches it without a
    reference cycle through the session."""

    __slots__ = ("fingerprint", "mismatch")

    def __init__(self, fingerprint: RemoteFingerprint) -> None:
        self.fingerprint = fingerprint
        self.mismatch = False


def _verify(connection: SSL.Connection, certificate: crypto.X509, error: int, depth: int,
            ok: int) -> bool:
    """Accept any chain (self-signed included) whose leaf has the remote fingerprint."""
    if depth != 0:
        return True
    check: _PeerCheck = connection.get_app_data()
    if check.fingerprint.matches(certificate.to_cryptography()):
        return True
    check.mismatch = True
    return False


class DtlsSession:
    """One DTLS association: a role, the local certificate and the remote fingerprint."""

    def __init__(self, certificate: DtlsCertificate, role: DtlsRole,
                 remote_fingerprint: RemoteFingerprint, *,
                 srtp_profiles: Sequence[SrtpProfile] = SUPPORTED_SRTP_PROFILES,
                 mtu: int = DTLS_MTU_BYTES,
                 handshake_timeout_s: float = DTLS_HANDSHAKE_TIMEOUT_S) -> None:
        if role not in ("client", "server"):
            raise WorkerTypeError(f"invalid DTLS role {role!r}")
        if not srtp_profiles:
            raise ValueError("at least one SRTP profile must be offered")
        self.role: DtlsRole = role
        self.remote_fingerprint = remote_fingerprint
        self.mtu = mtu
        self.handshake_timeout_s = handshake_timeout_s
        self.connected: DtlsConnected | None = None
        self.failure: str | None = None
        # Datagrams dropped before OpenSSL ("malformed", "inactive": before start or after the
        # end) and OpenSSL retransmissions made.
        self.stats: dict[str, int] = {"malformed": 0, "inactive": 0, "retransmissions": 0}
        self._state: DtlsState = "new"
        self._srtp_profiles = {profile.openssl_name: profile for profile in srtp_profiles}
        self._check = _PeerCheck(remote_fingerprint)
        self._conn = self._make_connection(certificate)
        self._handshake_deadline: float | None = None
        self._retransmit_at: float | None = None

    def _make_connection(self, certificate: DtlsCertificate) -> SSL.Connection:
        context = SSL.Context(SSL.DTLS_METHOD)
        context.use_certificate(certificate.certificate)
        key: Any = certificate.private_key  # pyOpenSSL raises TypeError for unusable key types
        context.use_privatekey(key)
        context.check_privatekey()
        context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, _verify)
        context.set_options(SSL.OP_NO_QUERY_MTU | SSL.OP_NO_TICKET
                            | SSL.OP_CIPHER_SERVER_PREFERENCE)
        context.set_tlsext_use_srtp(":".join(self._srtp_profiles).encode())
        conn = SSL.Connection(context, None)  # memory BIOs
        conn.set_app_data(self._check)
        conn.set_ciphertext_mtu(self.mtu)
        if self.role == "client":
            conn.set_connect_state()
        else:
            conn.set_accept_state()
        return conn

    @property
    def state(self) -> DtlsState:
        return self._state

    @property
    def deadline(self) -> float | None:
        """When :meth:`handle_timeout` is due (seconds on the caller's clock), or None."""
        if self._state == "connecting":
            assert self._handshake_deadline is not None
            if self._retransmit_at is None:
                return self._handshake_deadline
            return min(self._retransmit_at, self._handshake_deadline)
        if self._state == "connected":
            return self._retransmit_at
        return None

    def start(self, now: float) -> DtlsUpdate:
        """Begin the handshake: ``connecting``; a client also sends its ClientHello."""
        if self._state != "new":
            raise InvalidStateError(f"DTLS already started (state {self._state})")
        update = DtlsUpdate()
        self._enter(update, "connecting")
        self._handshake_deadline = now + self.handshake_timeout_s
        if self.role == "client":
            self._advance(update)
        self._schedule(now)
        return update

    def handle_datagram(self, data: bytes, now: float) -> DtlsUpdate:
        """Feed one received DTLS datagram. Never raises on what the peer sent."""
        update = DtlsUpdate()
        if self._state not in ("connecting", "connected"):
            self.stats["inactive"] += 1
            return update
        if self._handshake_expired(update, now):
            self.stats["inactive"] += 1
            return update
        if split_records(data) is None:
            self.stats["malformed"] += 1
            return update
        self._conn.bio_write(data)
        self._advance(update)
        self._schedule(now)
        return update

    def handle_timeout(self, now: float) -> DtlsUpdate:
        """Fail a handshake past its bound; let OpenSSL retransmit its last flight when due."""
        update = DtlsUpdate()
        if self._state not in ("connecting", "connected") or self._handshake_expired(update, now):
            return update
        if self._retransmit_at is None or now < self._retransmit_at:
            return update
        try:
            resent = self._conn.DTLSv1_handle_timeout()
        except SSL.Error as exc:
            self._fail(update, f"DTLS retransmission failed: {_describe(exc)}")
            return update
        if resent:
            self.stats["retransmissions"] += 1
        self._drain(update)
        self._schedule(now)
        return update

    def send_application_data(self, data: bytes) -> list[bytes]:
        """Encrypt one message (an SCTP packet) as one record; the datagrams to send."""
        if self._state != "connected":
            raise InvalidStateError(f"DTLS is not connected (state {self._state})")
        if not 0 < len(data) <= DTLS_MAX_APPLICATION_DATA_BYTES:
            raise ValueError(f"application data must be 1 to {DTLS_MAX_APPLICATION_DATA_BYTES} "
                             f"bytes, got {len(data)}")
        self._conn.send(data)
        update = DtlsUpdate()
        self._drain(update)
        return update.datagrams

    def close(self) -> list[bytes]:
        """Close locally (idempotent): the close alert to send if we were connected."""
        if self._state in ("closed", "failed"):
            return []
        update = DtlsUpdate()
        if self._state == "connected":
            self._send_close_notify(update)
        self._state = "closed"
        self._retransmit_at = None
        return update.datagrams

    # -- internals ------------------------------------------------------------------------

    def _enter(self, update: DtlsUpdate, state: DtlsState) -> None:
        self._state = state
        update.states.append(state)

    def _fail(self, update: DtlsUpdate, reason: str) -> None:
        self.failure = update.failure = reason
        self._retransmit_at = None
        self._enter(update, "failed")

    def _handshake_expired(self, update: DtlsUpdate, now: float) -> bool:
        if self._state != "connecting":
            return False
        assert self._handshake_deadline is not None
        if now < self._handshake_deadline:
            return False
        self._fail(update, f"DTLS handshake not done after {self.handshake_timeout_s:g} s")
        return True

    def _advance(self, update: DtlsUpdate) -> None:
        """Let OpenSSL process what the BIO holds, then send what it wrote."""
        if self._state == "connecting":
            self._handshake(update)
        if self._state == "connected":
            self._read_records(update)
        self._drain(update)

    def _handshake(self, update: DtlsUpdate) -> None:
        try:
            self._conn.do_handshake()
        except SSL.WantReadError:
            return
        except SSL.ZeroReturnError:
            self._drain(update)
            self._fail(update, "DTLS close alert received during the handshake")
            return
        except SSL.Error as exc:
            self._drain(update)  # the fatal alert OpenSSL wrote, if any
            if self._check.mismatch:
                self._fail(update, "the remote certificate does not match the "
                                   f"{self.remote_fingerprint.algorithm} fingerprint")
            else:
                self._fail(update, f"DTLS handshake failed: {_describe(exc)}")
            return
        self._drain(update)  # our last flight goes before anything else
        problem = self._check_handshake()
        if isinstance(problem, str):
            self._send_close_notify(update)
            self._fail(update, problem)
            return
        self.connected = update.connected = problem
        self._enter(update, "connected")

    def _check_handshake(self) -> DtlsConnected | str:
        """What the completed handshake established, or why it is not acceptable."""
        certificate: Any = self._conn.get_peer_certificate(as_cryptography=True)
        if not isinstance(certificate, x509.Certificate) or not self.remote_fingerprint.matches(
                certificate):
            return "the remote certificate does not match the fingerprint"
        name = self._conn.get_selected_srtp_profile().decode("ascii", "replace")
        profile = self._srtp_profiles.get(name)
        if profile is None:
            return "no SRTP profile negotiated (use_srtp is required)"
        material = self._conn.export_keying_material(
            SRTP_EXPORTER_LABEL, 2 * (profile.master_key_bytes + profile.master_salt_bytes))
        pem = certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
        return DtlsConnected(pem, split_keying_material(material, profile, self.role))

    def _read_records(self, update: DtlsUpdate) -> None:
        while True:
            try:
                data = self._conn.recv(DTLS_MAX_APPLICATION_DATA_BYTES)
            except SSL.WantReadError:
                return
            except SSL.ZeroReturnError:
                self._retransmit_at = None
                self._enter(update, "closed")
                return
            except SSL.Error:
                self._retransmit_at = None
                self._drain(update)
                self._enter(update, "closed")
                return
            update.application_data.append(data)

    def _send_close_notify(self, update: DtlsUpdate) -> None:
        with contextlib.suppress(SSL.Error):  # a broken association sends nothing: close anyway
            self._conn.shutdown()
        self._drain(update)

    def _drain(self, update: DtlsUpdate) -> None:
        chunks: list[bytes] = []
        while True:
            try:
                chunks.append(self._conn.bio_read(_BIO_READ_BYTES))
            except SSL.WantReadError:
                break
        if not chunks:
            return
        records = split_records(b"".join(chunks))
        if records is None:
            raise AssertionError("OpenSSL wrote something that is not DTLS records")
        update.datagrams.extend(pack_records(records, self.mtu))

    def _schedule(self, now: float) -> None:
        if self._state not in ("connecting", "connected"):
            self._retransmit_at = None
            return
        remaining = self._conn.DTLSv1_get_timeout()
        self._retransmit_at = None if remaining is None else now + remaining


def _describe(exc: SSL.Error) -> str:
    """The OpenSSL reason strings of an error (pyOpenSSL's ``[(lib, func, reason)]``)."""
    queue = exc.args[0] if exc.args and isinstance(exc.args[0], list) else []
    reasons = [str(item[2]) for item in queue if isinstance(item, tuple) and len(item) == 3]
    return ", ".join(reason for reason in reasons if reason) or type(exc).__name__
