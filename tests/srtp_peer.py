"""A scripted WebRTC endpoint for media tests: ICE, DTLS and SRTP on one UDP socket, with no
WebRTC stack, every step synchronous and bounded.

What it owns:

* :class:`SrtpPeer`: connects to a worker WebRtcTransport on 127.0.0.1 (``transport.connect``
  with its own certificate's fingerprint and role ``client``, one ICE binding request with
  USE-CANDIDATE, a DTLS handshake in the client role with the worker's sans-IO
  :class:`worker.dtls.DtlsSession`), then protects what the test sends and unprotects what the
  worker sends with pylibsrtp sessions made from the exported keys. A peer made with
  ``wrong_keys`` completes the handshake but protects with random keys.
* packet builders: :class:`RtpSource` (one stream's numbering, RTP built with the pure-Python
  reference in ``tests/reference/rtp.py``) and VP8 / Opus payloads;
* what a mediasoup-client endpoint sends as ``rtpParameters`` for Opus and VP8 (with RTX), and
  the router and transport set-up the tests drive over :class:`tests.worker_process.WorkerProcess`.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import pylibsrtp

from tests.ice_client import IceCredentials, IceUdpClient
from tests.reference import classify as demux
from tests.reference import rtp as ref_rtp
from tests.reference import stun
from tests.worker_process import WorkerProcess
from worker.certificate import DtlsCertificate, fingerprint
from worker.dtls import DtlsSession, DtlsUpdate, RemoteFingerprint, SrtpKeys

__all__ = [
    "AUDIO_CODECS",
    "MID_EXT_ID",
    "MID_URI",
    "OPUS_PT",
    "PEER_IP",
    "RTX_PT",
    "VIDEO_CODECS",
    "VP8_PT",
    "Received",
    "RtpSource",
    "SrtpPeer",
    "create_router",
    "create_transport",
    "opus_parameters",
    "pools_in_use",
    "vp8_parameters",
    "vp8_payload",
]

PEER_IP: Final = "127.0.0.1"
CONNECT_TIMEOUT_S: Final = 10.0
MAX_DATAGRAM: Final = 65536

# What a browser offers and mediasoup-client sends in a producer's rtpParameters.
VP8_PT: Final = 96
RTX_PT: Final = 97
OPUS_PT: Final = 111
MID_EXT_ID: Final = 4
MID_URI: Final = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME_URI: Final = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
TWCC_URI: Final = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
AUDIO_LEVEL_URI: Final = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"

AUDIO_CODECS: Final[dict[str, Any]] = {
    "kind": "audio", "mimeType": "audio/opus", "clockRate": 48000, "channels": 2}
VIDEO_CODECS: Final[dict[str, Any]] = {
    "kind": "video", "mimeType": "video/VP8", "clockRate": 90000}

Json = dict[str, Any]
Received = tuple[str, bytes]  # (kind: "rtp", "rtcp", "dtls", "stun", "other", "undecryptable")

_KIND_NAMES: Final = {demux.OTHER: "other", demux.STUN: "stun", demux.DTLS: "dtls",
                      demux.RTP: "rtp", demux.RTCP: "rtcp"}


# -- the worker side ---------------------------------------------------------------------------


def create_router(worker: WorkerProcess) -> tuple[str, Json]:
    """A router for Opus and VP8: its id and its rtpCapabilities."""
    router_id = f"router-{os.urandom(4).hex()}"
    answer = worker.ok("worker.createRouter", data={
        "routerId": router_id, "mediaCodecs": [AUDIO_CODECS, VIDEO_CODECS]})
    return router_id, answer["rtpCapabilities"]


def create_transport(worker: WorkerProcess, router_id: str) -> str:
    """A WebRtcTransport listening on UDP 127.0.0.1 (an ephemeral port)."""
    transport_id = f"transport-{os.urandom(4).hex()}"
    worker.ok("router.createWebRtcTransport", router_id, {
        "transportId": transport_id, "listenInfos": [{"protocol": "udp", "ip": PEER_IP}]})
    return transport_id


def pools_in_use(worker: WorkerProcess) -> dict[str, int]:
    """The buffer pools that have slots lent out now."""
    pools = worker.ok("worker.dump")["bufferPools"]
    return {name: pool["inUse"] for name, pool in pools.items() if pool["inUse"]}


def _extensions(*uris: tuple[str, int]) -> list[Json]:
    return [{"uri": uri, "id": ext_id, "encrypt": False, "parameters": {}} for uri, ext_id in uris]


def vp8_parameters(ssrc: int, rtx_ssrc: int, *, mid: str = "0",
                   cname: str = "srtp-peer") -> Json:
    """A VP8 producer's rtpParameters as mediasoup-client sends them (with RTX)."""
    return {
        "mid": mid,
        "codecs": [
            {"mimeType": "video/VP8", "payloadType": VP8_PT, "clockRate": 90000,
             "parameters": {},
             "rtcpFeedback": [{"type": "goog-remb", "parameter": ""},
                              {"type": "transport-cc", "parameter": ""},
                              {"type": "ccm", "parameter": "fir"},
                              {"type": "nack", "parameter": ""},
                              {"type": "nack", "parameter": "pli"}]},
            {"mimeType": "video/rtx", "payloadType": RTX_PT, "clockRate": 90000,
             "parameters": {"apt": VP8_PT}, "rtcpFeedback": []},
        ],
        "headerExtensions": _extensions((MID_URI, MID_EXT_ID), (ABS_SEND_TIME_URI, 2),
                                        (TWCC_URI, 3)),
        "encodings": [{"ssrc": ssrc, "rtx": {"ssrc": rtx_ssrc}, "dtx": False}],
        "rtcp": {"cname": cname, "reducedSize": True},
    }


def opus_parameters(ssrc: int, *, mid: str = "0", cname: str = "srtp-peer") -> Json:
    """An Opus producer's rtpParameters as mediasoup-client sends them."""
    return {
        "mid": mid,
        "codecs": [{"mimeType": "audio/opus", "payloadType": OPUS_PT, "clockRate": 48000,
                    "channels": 2, "parameters": {"minptime": 10, "useinbandfec": 1},
                    "rtcpFeedback": [{"type": "transport-cc", "parameter": ""}]}],
        "headerExtensions": _extensions((MID_URI, MID_EXT_ID), (AUDIO_LEVEL_URI, 1),
                                        (TWCC_URI, 3)),
        "encodings": [{"ssrc": ssrc, "dtx": False}],
        "rtcp": {"cname": cname, "reducedSize": True},
    }


# -- packets -----------------------------------------------------------------------------------


def vp8_payload(keyframe: bool, body: bytes = b"") -> bytes:
    """A one-packet VP8 frame: payload descriptor (S = 1, partition 0), then a frame header
    whose P bit says key frame or not (a key frame carries the start code and a 320x240 size)."""
    if keyframe:
        return bytes([0x10, 0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A, 0x40, 0x01, 0xF0, 0x00]) + body
    return bytes([0x10, 0x11, 0x02, 0x00]) + body


@dataclass
class RtpSource:
    """One RTP stream's numbering: each packet takes the next sequence number."""

    ssrc: int
    payload_type: int
    seq: int = 1000
    timestamp: int = 90000
    mid: str | None = "0"  # carried in the MID extension (id MID_EXT_ID); None: no extension

    def packet(self, payload: bytes, *, marker: bool = True, ts_step: int = 3000,
               padding: bytes = b"") -> bytes:
        """The next packet: ``seq`` is its sequence number, then both advance."""
        packet = ref_rtp.RtpPacket(payload_type=self.payload_type, marker=int(marker),
                                   sequence_number=self.seq, timestamp=self.timestamp,
                                   ssrc=self.ssrc, payload=payload, padding=padding)
        if self.mid is not None:
            packet.set_extensions([(MID_EXT_ID, self.mid.encode())])
        self.seq = (self.seq + 1) & 0xFFFF
        self.timestamp = (self.timestamp + ts_step) & 0xFFFFFFFF
        return packet.serialize()


# -- the peer ----------------------------------------------------------------------------------


def _srtp_session(keys: SrtpKeys, *, inbound: bool, key: bytes | None = None) -> pylibsrtp.Session:
    material = key if key is not None else (
        keys.remote_key + keys.remote_salt if inbound else keys.local_key + keys.local_salt)
    policy = pylibsrtp.Policy(
        key=material, srtp_profile=int(keys.profile),
        ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND if inbound
        else pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    return pylibsrtp.Session(policy)


@dataclass
class SrtpPeer:
    """One endpoint of one worker WebRtcTransport; make it with :meth:`connect`."""

    sock: socket.socket
    server: tuple[str, int]
    dtls: DtlsSession
    keys: SrtpKeys
    tx: pylibsrtp.Session
    rx: pylibsrtp.Session
    received: list[Received] = field(default_factory=list)  # everything, in arrival order
    undecryptable: int = 0

    @classmethod
    def connect(cls, worker: WorkerProcess, transport_id: str, *, wrong_keys: bool = False,
                timeout: float = CONNECT_TIMEOUT_S) -> SrtpPeer:
        """``transport.connect``, ICE, DTLS; returns once the worker's DTLS is connected."""
        dump = worker.ok("transport.dump", transport_id)
        candidate = next(c for c in dump["iceCandidates"] if c["protocol"] == "udp")
        server = (candidate["ip"], candidate["port"])
        certificate = DtlsCertificate.generate()
        answer = worker.ok("transport.connect", transport_id, {"dtlsParameters": {
            "role": "client",
            "fingerprints": [{"algorithm": "sha-256",
                              "value": fingerprint(certificate.certificate, "sha-256")}]}})
        assert answer == {"dtlsLocalRole": "server"}, answer
        theirs = next(f for f in dump["dtlsParameters"]["fingerprints"]
                      if f["algorithm"] == "sha-256")
        ice = IceUdpClient(PEER_IP, timeout=timeout)
        try:
            response = ice.request(IceCredentials.of(dump), server, use_candidate=True)
            assert response.message_class == stun.StunClass.SUCCESS, response
            session = DtlsSession(certificate, "client",
                                  RemoteFingerprint.parse("sha-256", theirs["value"]))
            keys = _handshake(ice.sock, server, session, timeout)
        except BaseException:
            ice.close()
            raise
        tx_key = os.urandom(len(keys.local_key) + len(keys.local_salt)) if wrong_keys else None
        peer = cls(ice.sock, server, session, keys, _srtp_session(keys, inbound=False, key=tx_key),
                   _srtp_session(keys, inbound=True))
        deadline = time.monotonic() + timeout
        while worker.ok("transport.dump", transport_id)["dtlsState"] != "connected":
            if time.monotonic() > deadline:
                peer.close()
                raise AssertionError("the worker's DTLS did not connect in time")
            time.sleep(0.02)
        return peer

    def use_keys(self, *, wrong: bool) -> None:
        """Protect from now on with random keys (``wrong``) or with the negotiated ones."""
        keys = self.keys
        key = os.urandom(len(keys.local_key) + len(keys.local_salt)) if wrong else None
        self.tx = _srtp_session(keys, inbound=False, key=key)

    # -- sending --------------------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        self.sock.sendto(data, self.server)

    def send_rtp(self, packet: bytes) -> bytes:
        """Protect and send one RTP packet; returns the SRTP bytes sent (to replay them)."""
        protected: bytes = self.tx.protect(packet)
        self.send_raw(protected)
        return protected

    def send_rtcp(self, compound: bytes) -> bytes:
        """Protect and send one compound RTCP packet; returns the SRTCP bytes sent."""
        protected: bytes = self.tx.protect_rtcp(compound)
        self.send_raw(protected)
        return protected

    # -- receiving ------------------------------------------------------------------------

    def recv(self, timeout: float) -> list[Received]:
        """What arrives: waits up to ``timeout`` for a first datagram, then takes whatever else
        is already queued. RTP and RTCP are unprotected (``undecryptable`` if they cannot be),
        DTLS records go to the session (its answers are sent)."""
        got: list[Received] = []
        self.sock.settimeout(max(timeout, 0.0))
        while True:
            try:
                data = self.sock.recv(MAX_DATAGRAM)
            except (TimeoutError, BlockingIOError):
                break
            got.append(self._decode(data))
            self.sock.settimeout(0.0)
        self.received.extend(got)
        return got

    def wait_for(self, predicate: Callable[[Received], bool], timeout: float,
                 what: str = "a packet") -> list[Received]:
        """Everything received until (and including) the first item ``predicate`` accepts."""
        deadline = time.monotonic() + timeout
        seen: list[Received] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {what}; got {_summary(seen)}")
            for item in self.recv(remaining):
                seen.append(item)
                if predicate(item):
                    return seen

    def collect(self, duration: float) -> list[Received]:
        """Everything received during ``duration`` seconds."""
        deadline = time.monotonic() + duration
        seen: list[Received] = []
        while (remaining := deadline - time.monotonic()) > 0:
            seen.extend(self.recv(remaining))
        return seen

    def _decode(self, data: bytes) -> Received:
        kind = _KIND_NAMES[demux.classify(data)]
        try:
            if kind == "rtp":
                return kind, self.rx.unprotect(data)
            if kind == "rtcp":
                return kind, self.rx.unprotect_rtcp(data)
        except pylibsrtp.Error:
            self.undecryptable += 1
            return "undecryptable", data
        if kind == "dtls":
            self._send_all(self.dtls.handle_datagram(data, time.monotonic()))
        return kind, data

    def _send_all(self, update: DtlsUpdate) -> None:
        for datagram in update.datagrams:
            self.send_raw(datagram)

    def close(self) -> None:
        self.sock.close()


def _handshake(sock: socket.socket, server: tuple[str, int], session: DtlsSession,
               timeout: float) -> SrtpKeys:
    """Run the client side of the handshake over ``sock``; the keys, or AssertionError."""
    deadline = time.monotonic() + timeout
    for datagram in session.start(time.monotonic()).datagrams:
        sock.sendto(datagram, server)
    while session.state == "connecting":
        now = time.monotonic()
        if now > deadline:
            raise AssertionError("DTLS handshake with the worker timed out")
        wake = min(deadline, session.deadline or deadline)
        sock.settimeout(max(wake - now, 0.001))
        try:
            data = sock.recv(MAX_DATAGRAM)
        except TimeoutError:
            update = session.handle_timeout(time.monotonic())
        else:
            if demux.classify(data) != demux.DTLS:
                continue
            update = session.handle_datagram(data, time.monotonic())
        for datagram in update.datagrams:
            sock.sendto(datagram, server)
    connected = session.connected
    if connected is None:
        raise AssertionError(f"DTLS with the worker ended {session.state}: {session.failure}")
    return connected.srtp


def _summary(items: list[Received]) -> str:
    counts: dict[str, int] = {}
    for kind, _ in items:
        counts[kind] = counts.get(kind, 0) + 1
    return ", ".join(f"{n} {kind}" for kind, n in counts.items()) or "nothing"
