"""The DTLS-SRTP core: two sessions handshake in memory on a fake clock.

OpenSSL's retransmission timer reads the real clock (pyOpenSSL has no DTLS_set_timer_cb), so
the two retransmission tests also let about one real second pass; everything else is instant.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pylibsrtp
import pytest
from cryptography import x509

from worker.certificate import FINGERPRINT_ALGORITHMS, DtlsCertificate
from worker.dtls import (
    CANDIDATE_SRTP_PROFILES,
    DTLS_HANDSHAKE_TIMEOUT_S,
    SUPPORTED_SRTP_PROFILES,
    DtlsRole,
    DtlsSession,
    DtlsUpdate,
    RemoteFingerprint,
    SrtpProfile,
    local_role_for,
    pack_records,
    split_keying_material,
    split_records,
    srtp_profile_by_crypto_suite,
    srtp_sessions,
)
from worker.errors import InvalidStateError, WorkerTypeError

CERT_A = DtlsCertificate.generate()
CERT_B = DtlsCertificate.generate()
PROFILE_NAMES = [profile.openssl_name for profile in SUPPORTED_SRTP_PROFILES]
T0 = 1000.0

Drop = Callable[[str, int, bytes], bool]  # (sender name, index of its datagram, datagram)


def fingerprint_of(cert: DtlsCertificate, algorithm: str = "sha-256") -> RemoteFingerprint:
    return RemoteFingerprint(algorithm,
                             cert.certificate.fingerprint(FINGERPRINT_ALGORITHMS[algorithm]))


@dataclass
class Peer:
    name: str
    session: DtlsSession
    updates: list[DtlsUpdate] = field(default_factory=list)
    sent: int = 0

    @property
    def states(self) -> list[str]:
        return [state for update in self.updates for state in update.states]

    @property
    def received(self) -> list[bytes]:
        return [data for update in self.updates for data in update.application_data]


class Pair:
    """Two sessions wired back to back; datagrams are delivered until both are quiet."""

    def __init__(self, a_role: DtlsRole = "client", *,
                 a_profiles: Sequence[SrtpProfile] = SUPPORTED_SRTP_PROFILES,
                 b_profiles: Sequence[SrtpProfile] = SUPPORTED_SRTP_PROFILES,
                 a_expects: RemoteFingerprint | None = None,
                 b_expects: RemoteFingerprint | None = None,
                 mtu: int = 1200, drop: Drop | None = None) -> None:
        b_role: DtlsRole = "server" if a_role == "client" else "client"
        self.a = Peer("a", DtlsSession(CERT_A, a_role, b_expects or fingerprint_of(CERT_B),
                                       srtp_profiles=a_profiles, mtu=mtu))
        self.b = Peer("b", DtlsSession(CERT_B, b_role, a_expects or fingerprint_of(CERT_A),
                                       srtp_profiles=b_profiles, mtu=mtu))
        self.now = T0
        self.drop = drop
        self.inflight: list[tuple[Peer, bytes]] = []  # (receiver, datagram)
        self.all_datagrams: list[bytes] = []

    def other(self, peer: Peer) -> Peer:
        return self.b if peer is self.a else self.a

    def take(self, peer: Peer, update: DtlsUpdate) -> None:
        peer.updates.append(update)
        for datagram in update.datagrams:
            index, peer.sent = peer.sent, peer.sent + 1
            self.all_datagrams.append(datagram)
            if self.drop is None or not self.drop(peer.name, index, datagram):
                self.inflight.append((self.other(peer), datagram))

    def start(self) -> None:
        # The server starts first, as a transport does on connect before the peer's hello.
        for peer in sorted((self.a, self.b), key=lambda p: p.session.role != "server"):
            self.take(peer, peer.session.start(self.now))

    def pump(self) -> None:
        while self.inflight:
            receiver, datagram = self.inflight.pop(0)
            self.take(receiver, receiver.session.handle_datagram(datagram, self.now))

    def handshake(self) -> None:
        self.start()
        self.pump()

    def fire_timers(self, now: float) -> dict[str, DtlsUpdate]:
        """Call every due timer, then deliver; the timer updates by peer name."""
        self.now = now
        fired: dict[str, DtlsUpdate] = {}
        for peer in (self.a, self.b):
            deadline = peer.session.deadline
            if deadline is not None and deadline <= now:
                fired[peer.name] = peer.session.handle_timeout(now)
                self.take(peer, fired[peer.name])
        self.pump()
        return fired


def state_of(session: DtlsSession) -> str:
    """The state now (a call, so a type checker does not carry an earlier comparison over)."""
    return session.state


def deadline_of(session: DtlsSession) -> float | None:
    return session.deadline


def client_of(pair: Pair) -> Peer:
    return pair.a if pair.a.session.role == "client" else pair.b


def server_of(pair: Pair) -> Peer:
    return pair.other(client_of(pair))


# -- helpers and tables ----------------------------------------------------------------------


def test_all_four_profiles_are_supported_in_the_offer_order() -> None:
    # pyOpenSSL 26.4.0 (OpenSSL 4.0.3) and pylibsrtp 1.0.0 support all four.
    assert PROFILE_NAMES == ["SRTP_AEAD_AES_256_GCM", "SRTP_AEAD_AES_128_GCM",
                             "SRTP_AES128_CM_SHA1_80", "SRTP_AES128_CM_SHA1_32"]
    assert SUPPORTED_SRTP_PROFILES == CANDIDATE_SRTP_PROFILES
    sizes = {p.crypto_suite: (p.master_key_bytes, p.master_salt_bytes)
             for p in SUPPORTED_SRTP_PROFILES}
    assert sizes == {"AEAD_AES_256_GCM": (32, 12), "AEAD_AES_128_GCM": (16, 12),
                     "AES_CM_128_HMAC_SHA1_80": (16, 14), "AES_CM_128_HMAC_SHA1_32": (16, 14)}
    assert int(srtp_profile_by_crypto_suite("AEAD_AES_128_GCM")) == \
        pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM
    with pytest.raises(KeyError):
        srtp_profile_by_crypto_suite("NULL_HMAC_SHA1_80")


@pytest.mark.parametrize(("remote", "local"),
                         [("auto", "client"), ("server", "client"), ("client", "server")])
def test_local_role_follows_mediasoup(remote: str, local: str) -> None:
    assert local_role_for(remote) == local


@pytest.mark.parametrize("remote", ["Client", "", None, 1, "actpass"])
def test_local_role_rejects_anything_else(remote: object) -> None:
    with pytest.raises(WorkerTypeError):
        local_role_for(remote)


@pytest.mark.parametrize("algorithm", list(FINGERPRINT_ALGORITHMS))
def test_remote_fingerprint_parses_what_certificate_announces(algorithm: str) -> None:
    value = next(fp["value"] for fp in CERT_B.fingerprints() if fp["algorithm"] == algorithm)
    parsed = RemoteFingerprint.parse(algorithm.upper(), value.lower())
    assert parsed == fingerprint_of(CERT_B, algorithm)
    assert parsed.matches(CERT_B.certificate)
    assert not parsed.matches(CERT_A.certificate)


@pytest.mark.parametrize(("algorithm", "value"), [
    ("md5", "AA:" * 15 + "AA"),
    ("sha-256", "AA:" * 19 + "AA"),  # a sha-1 length
    ("sha-1", "AA:" * 19 + "GG"),
    ("sha-1", "AAA:" * 19 + "A"),
    ("sha-1", "AA" * 20),
    ("sha-1", None),
    (None, "AA:" * 19 + "AA"),
])
def test_remote_fingerprint_rejects_bad_values(algorithm: object, value: object) -> None:
    with pytest.raises(WorkerTypeError):
        RemoteFingerprint.parse(algorithm, value)


def test_keying_material_split_per_rfc_5764() -> None:
    profile = srtp_profile_by_crypto_suite("AEAD_AES_256_GCM")
    material = bytes(range(88))
    client = split_keying_material(material, profile, "client")
    server = split_keying_material(material, profile, "server")
    assert client.local_key == bytes(range(0, 32)) == server.remote_key
    assert client.remote_key == bytes(range(32, 64)) == server.local_key
    assert client.local_salt == bytes(range(64, 76)) == server.remote_salt
    assert client.remote_salt == bytes(range(76, 88)) == server.local_salt
    with pytest.raises(ValueError, match="88 bytes"):
        split_keying_material(material[:60], profile, "client")


def record(content_type: int, body: bytes, epoch: int = 0) -> bytes:
    return struct.pack("!BHH6sH", content_type, 0xFEFD, epoch, bytes(6), len(body)) + body


def test_split_records_accepts_only_whole_records() -> None:
    one, two = record(22, b"x" * 5), record(23, b"", epoch=1)
    assert split_records(one + two) == [one, two]
    assert split_records(two + one + two) == [two, one, two]
    for bad in (b"", one[:-1], one + b"\x16", record(19, b"x"), b"\x16\x03\x03" + one[3:]):
        assert split_records(bad) is None


def test_pack_records_respects_the_mtu() -> None:
    records = [bytes([n]) * size for n, size in enumerate((500, 600, 200, 1300, 100))]
    datagrams = pack_records(records, 1200)
    assert datagrams == [records[0] + records[1], records[2], records[3], records[4]]


# -- handshake ---------------------------------------------------------------------------------


@pytest.mark.parametrize("a_role", ["client", "server"])
@pytest.mark.parametrize("profile", SUPPORTED_SRTP_PROFILES, ids=PROFILE_NAMES)
def test_handshake_derives_matching_keys(a_role: DtlsRole, profile: SrtpProfile) -> None:
    pair = Pair(a_role, a_profiles=[profile], b_profiles=[profile])
    pair.handshake()
    for peer in (pair.a, pair.b):
        assert peer.states == ["connecting", "connected"]
        assert peer.session.state == "connected"
        assert peer.session.deadline is None
        assert peer.session.stats == {"malformed": 0, "inactive": 0, "retransmissions": 0}
    a, b = pair.a.session.connected, pair.b.session.connected
    assert a is not None and b is not None
    assert a.srtp.profile == b.srtp.profile == profile
    assert a.srtp_crypto_suite == profile.crypto_suite
    assert (a.srtp.local_key, a.srtp.local_salt) == (b.srtp.remote_key, b.srtp.remote_salt)
    assert (a.srtp.remote_key, a.srtp.remote_salt) == (b.srtp.local_key, b.srtp.local_salt)
    assert len(a.srtp.local_key) == profile.master_key_bytes
    assert len(a.srtp.local_salt) == profile.master_salt_bytes
    assert a.srtp.local_key != a.srtp.remote_key
    assert x509.load_pem_x509_certificate(a.remote_certificate_pem.encode()) == CERT_B.certificate
    assert x509.load_pem_x509_certificate(b.remote_certificate_pem.encode()) == CERT_A.certificate
    assert all(len(d) <= 1200 for d in pair.all_datagrams)


def test_start_reports_connecting_and_only_the_client_speaks_first() -> None:
    pair = Pair("server")
    server_update = pair.a.session.start(T0)
    client_update = pair.b.session.start(T0)
    assert server_update.states == client_update.states == ["connecting"]
    assert server_update.datagrams == []
    assert len(client_update.datagrams) == 1 and client_update.datagrams[0][0] == 22
    with pytest.raises(InvalidStateError):
        pair.a.session.start(T0)


def test_server_preference_decides_the_profile() -> None:
    cm80, gcm256 = (srtp_profile_by_crypto_suite(name)
                    for name in ("AES_CM_128_HMAC_SHA1_80", "AEAD_AES_256_GCM"))
    pair = Pair("client", a_profiles=[cm80, gcm256])  # b, the server, offers all four
    pair.handshake()
    assert pair.a.session.connected is not None
    assert pair.a.session.connected.srtp.profile == gcm256


def test_no_common_srtp_profile_fails_both_sides() -> None:
    cm80, gcm128 = (srtp_profile_by_crypto_suite(name)
                    for name in ("AES_CM_128_HMAC_SHA1_80", "AEAD_AES_128_GCM"))
    pair = Pair("client", a_profiles=[cm80], b_profiles=[gcm128])
    pair.handshake()
    for peer in (pair.a, pair.b):
        assert "connected" not in peer.states
        assert peer.states[-1] == "failed"
        assert peer.session.deadline is None
    assert pair.b.session.failure == "no SRTP profile negotiated (use_srtp is required)"


def test_small_mtu_fragments_the_handshake() -> None:
    pair = Pair("client", mtu=400)
    pair.handshake()
    assert pair.a.session.state == pair.b.session.state == "connected"
    assert max(len(d) for d in pair.all_datagrams) <= 400
    assert len(pair.all_datagrams) > 4  # the certificate flights needed several datagrams


# -- SRTP --------------------------------------------------------------------------------------


def rtp_packet(seq: int, payload: bytes) -> bytes:
    return struct.pack("!BBHII", 0x80, 96, seq, 1234 * seq, 0x11223344) + payload


def rtcp_receiver_report() -> bytes:
    return struct.pack("!BBHI", 0x80, 201, 1, 0x55667788)


@pytest.mark.parametrize("profile", SUPPORTED_SRTP_PROFILES, ids=PROFILE_NAMES)
def test_srtp_round_trip_both_directions(profile: SrtpProfile) -> None:
    pair = Pair("server", a_profiles=[profile], b_profiles=[profile])
    pair.handshake()
    assert pair.a.session.connected is not None and pair.b.session.connected is not None
    a_in, a_out = (ctx.session for ctx in srtp_sessions(pair.a.session.connected.srtp))
    b_in, b_out = (ctx.session for ctx in srtp_sessions(pair.b.session.connected.srtp))
    for sender, receiver in ((a_out, b_in), (b_out, a_in)):
        for seq in (1, 2, 3):
            packet = rtp_packet(seq, os.urandom(100))
            protected = sender.protect(packet)
            assert protected != packet and len(protected) > len(packet)
            assert receiver.unprotect(protected) == packet
        rtcp = rtcp_receiver_report()
        protected_rtcp = sender.protect_rtcp(rtcp)
        assert receiver.unprotect_rtcp(protected_rtcp) == rtcp
    tampered = bytearray(a_out.protect(rtp_packet(9, b"\x00" * 50)))
    tampered[20] ^= 1
    with pytest.raises(pylibsrtp.Error):
        b_in.unprotect(bytes(tampered))
    with pytest.raises(pylibsrtp.Error):  # a's own outbound key is not the one b sends with
        a_in.unprotect(a_out.protect(rtp_packet(10, b"\x00" * 50)))


# -- fingerprints ------------------------------------------------------------------------------


@pytest.mark.parametrize("checker_role", ["client", "server"])
def test_wrong_fingerprint_fails_the_checking_side(checker_role: DtlsRole) -> None:
    wrong = fingerprint_of(CERT_A)  # a expects its own certificate instead of b's
    pair = Pair(checker_role, b_expects=wrong)
    pair.handshake()
    assert pair.a.states == ["connecting", "failed"]
    assert pair.a.session.failure == \
        "the remote certificate does not match the sha-256 fingerprint"
    assert pair.a.session.connected is None
    # The bad_certificate alert fails the peer as well, which never reaches connected.
    assert pair.b.states == ["connecting", "failed"]
    assert pair.b.session.failure == "DTLS handshake failed: tlsv1 alert unknown ca"
    assert pair.b.session.connected is None
    assert pair.a.session.deadline is None and pair.b.session.deadline is None


@pytest.mark.parametrize("algorithm", list(FINGERPRINT_ALGORITHMS))
def test_every_fingerprint_algorithm_is_checked(algorithm: str) -> None:
    pair = Pair("client", b_expects=fingerprint_of(CERT_B, algorithm),
                a_expects=fingerprint_of(CERT_A, algorithm))
    pair.handshake()
    assert pair.a.session.state == pair.b.session.state == "connected"


# -- loss, timers, garbage ---------------------------------------------------------------------


def wait_real(seconds: float) -> None:
    """OpenSSL's DTLS timer runs on the real clock: let it expire as the fake one does."""
    time.sleep(seconds)


def test_lost_client_hello_is_retransmitted() -> None:
    pair = Pair("client", drop=lambda sender, index, _: sender == "a" and index == 0)
    pair.handshake()
    client = pair.a.session
    assert client.state == "connecting" and pair.b.session.state == "connecting"
    deadline = client.deadline
    assert deadline is not None and 0.5 < deadline - T0 <= 1.0
    assert client.handle_timeout(T0 + 0.1).datagrams == []  # not due yet
    wait_real(deadline - T0)
    fired = pair.fire_timers(deadline)
    assert list(fired) == ["a"]
    # The same ClientHello, in a record with the next record sequence number.
    [resent] = fired["a"].datagrams
    original = pair.all_datagrams[0]
    assert resent[13:] == original[13:] and resent[0] == 22
    assert int.from_bytes(resent[5:11], "big") == int.from_bytes(original[5:11], "big") + 1
    assert client.stats["retransmissions"] == 1
    assert state_of(client) == state_of(pair.b.session) == "connected"
    assert deadline_of(client) is None


def test_lost_final_flight_is_recovered_by_the_client_timer() -> None:
    # The server's last flight (ChangeCipherSpec, Finished) is lost: the client resends its
    # flight, the connected server answers the repeated Finished with its own again.
    lossy = [True]

    def drop(sender: str, index: int, _: bytes) -> bool:
        return sender == "b" and index >= 1 and lossy[0]

    pair = Pair("client", drop=drop)
    pair.handshake()
    assert pair.b.session.state == "connected"
    assert pair.a.session.state == "connecting"
    lossy[0] = False
    deadline = pair.a.session.deadline
    assert deadline is not None
    wait_real(deadline - T0)
    fired = pair.fire_timers(deadline)
    assert list(fired) == ["a"] and fired["a"].datagrams  # the client's flight again
    assert pair.a.session.stats["retransmissions"] == 1
    assert state_of(pair.a.session) == "connected"
    assert pair.b.states == ["connecting", "connected"]
    assert pair.a.session.connected is not None and pair.b.session.connected is not None
    assert pair.a.session.connected.srtp.local_key == pair.b.session.connected.srtp.remote_key


def test_handshake_that_never_completes_fails_at_the_bound() -> None:
    pair = Pair("client", drop=lambda *_: True)
    pair.handshake()
    client, server = pair.a.session, pair.b.session
    assert client.deadline is not None and client.deadline <= T0 + DTLS_HANDSHAKE_TIMEOUT_S
    almost = T0 + DTLS_HANDSHAKE_TIMEOUT_S - 0.01
    assert client.handle_timeout(almost).states == []
    assert client.deadline == T0 + DTLS_HANDSHAKE_TIMEOUT_S  # OpenSSL's 1 s is further away
    update = client.handle_timeout(T0 + DTLS_HANDSHAKE_TIMEOUT_S)
    assert update.states == ["failed"]
    assert update.failure == "DTLS handshake not done after 30 s"
    assert deadline_of(client) is None and client.handle_timeout(T0 + 100).states == []
    # The server never heard anything; its bound counts too, and a late datagram is inactive.
    assert server.deadline == T0 + DTLS_HANDSHAKE_TIMEOUT_S
    late = server.handle_datagram(pair.all_datagrams[0], T0 + DTLS_HANDSHAKE_TIMEOUT_S)
    assert late.states == ["failed"] and late.datagrams == []
    assert server.stats["inactive"] == 1


GARBAGE = [
    b"",
    b"\x16",
    b"\x16\xfe\xfd" + bytes(8),  # shorter than a record header
    record(22, b"\x01" * 40)[:-1],  # truncated record
    b"\x80\x60" + os.urandom(30),  # RTP, not DTLS
    b"\x17\x03\x03" + os.urandom(40),  # TLS, not DTLS
]


def test_garbage_during_the_handshake_is_dropped_and_counted() -> None:
    pair = Pair("client")
    pair.start()
    for datagram in GARBAGE:
        for peer in (pair.a, pair.b):
            update = peer.session.handle_datagram(datagram, pair.now)
            assert update == DtlsUpdate()
    pair.pump()
    for peer in (pair.a, pair.b):
        assert peer.session.stats["malformed"] == len(GARBAGE)
        assert peer.session.state == "connected"


def test_garbage_records_do_not_disturb_a_connected_session() -> None:
    pair = Pair("server")
    pair.handshake()
    forged = [record(content_type, os.urandom(size), epoch=epoch)
              for content_type in (20, 21, 22, 23) for epoch in (0, 1, 2) for size in (1, 48)]
    forged += [
        record(21, b"\x02\x28"),  # a plaintext fatal alert
        record(21, b"\x01\x00"),  # a plaintext close_notify
        record(21, b"\x02\x28", epoch=1),  # an alert that does not authenticate
        record(22, b"\x01" + bytes(11)),  # an empty ClientHello
    ]
    for datagram in [*GARBAGE, *forged]:
        update = pair.a.session.handle_datagram(datagram, pair.now)
        assert update.states == [] and update.application_data == []
    assert pair.a.session.state == "connected"
    assert pair.a.session.stats["malformed"] == len(GARBAGE)
    pair.take(pair.b, DtlsUpdate(datagrams=pair.b.session.send_application_data(b"still here")))
    pair.pump()
    assert pair.a.received == [b"still here"]


# -- application data and close ----------------------------------------------------------------


def test_application_data_both_ways() -> None:
    pair = Pair("client")
    pair.handshake()
    with pytest.raises(ValueError, match="1 to 16384"):
        pair.a.session.send_application_data(b"")
    big = os.urandom(1100)
    for sender, message in ((pair.a, b"hello"), (pair.b, big), (pair.a, b"again")):
        datagrams = sender.session.send_application_data(message)
        assert len(datagrams) == 1 and datagrams[0][0] == 23
        pair.take(sender, DtlsUpdate(datagrams=datagrams))
    pair.pump()
    assert pair.a.received == [big]
    assert pair.b.received == [b"hello", b"again"]


def test_application_data_needs_a_connected_session() -> None:
    session = DtlsSession(CERT_A, "client", fingerprint_of(CERT_B))
    with pytest.raises(InvalidStateError):
        session.send_application_data(b"x")
    session.start(T0)
    with pytest.raises(InvalidStateError):
        session.send_application_data(b"x")


@pytest.mark.parametrize("closer_role", ["client", "server"])
def test_close_alert_closes_the_peer(closer_role: DtlsRole) -> None:
    pair = Pair(closer_role)
    pair.handshake()
    alert = pair.a.session.close()
    assert len(alert) == 1 and alert[0][0] == 21  # one encrypted alert record
    assert pair.a.session.state == "closed" and pair.a.session.deadline is None
    assert pair.a.session.close() == []
    update = pair.b.session.handle_datagram(alert[0], pair.now)
    assert update.states == ["closed"] and update.datagrams == []  # as mediasoup: no reply
    assert pair.b.session.state == "closed"
    # Nothing more is processed by either side.
    assert pair.b.session.handle_datagram(alert[0], pair.now) == DtlsUpdate()
    assert pair.b.session.stats["inactive"] == 1
    with pytest.raises(InvalidStateError):
        pair.b.session.send_application_data(b"x")


def test_close_before_connected_sends_nothing() -> None:
    session = DtlsSession(CERT_A, "client", fingerprint_of(CERT_B))
    session.start(T0)
    assert session.close() == []
    assert session.state == "closed" and session.deadline is None
    assert session.handle_timeout(T0 + 60) == DtlsUpdate()


def test_session_rejects_a_bad_role() -> None:
    with pytest.raises(WorkerTypeError):
        DtlsSession(CERT_A, "auto", fingerprint_of(CERT_B))  # type: ignore[arg-type]
