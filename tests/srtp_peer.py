"""A scripted WebRTC endpoint for media tests: ICE, DTLS and SRTP on one UDP socket (or one
ICE-TCP connection), with no WebRTC stack, every step synchronous and bounded.

What it owns:

* :class:`SrtpPeer`: connects to a worker WebRtcTransport on 127.0.0.1 (``transport.connect``
  with its own certificate's fingerprint and role ``client``, one ICE binding request with
  USE-CANDIDATE, a DTLS handshake in the client role with the worker's sans-IO
  :class:`worker.dtls.DtlsSession`), then protects what the test sends and unprotects what the
  worker sends with pylibsrtp sessions made from the exported keys. A peer made with
  ``wrong_keys`` completes the handshake but protects with random keys. With
  ``protocol="tcp"`` everything (ICE, DTLS, SRTP, SRTCP) travels as RFC 4571 frames on one
  connection to the transport's TCP candidate (:class:`Link`).
* :class:`Watch`: reads what a peer received from a point on, so that several readers (one per
  consumer on one peer, say) each see every item;
* packet builders: :class:`RtpSource` (one stream's numbering, RTP built with the pure-Python
  reference in ``tests/reference/rtp.py``) and VP8 / Opus payloads;
* what a mediasoup-client endpoint sends as ``rtpParameters`` for Opus and VP8 (with RTX), and
  the router and transport set-up the tests drive over :class:`tests.worker_process.WorkerProcess`.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import pylibsrtp

from tests.ice_client import IceCredentials, IceTcpClient, IceUdpClient
from tests.reference import classify as demux
from tests.reference import rtcp as ref_rtcp
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
    "Link",
    "Received",
    "RtpSource",
    "SrtpPeer",
    "Watch",
    "create_router",
    "create_transport",
    "opus_parameters",
    "pools_in_use",
    "rtcp_of",
    "rtp_of",
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


def create_transport(worker: WorkerProcess, router_id: str,
                     protocols: tuple[str, ...] = ("udp",)) -> str:
    """A WebRtcTransport listening on 127.0.0.1 (ephemeral ports), one socket per protocol."""
    transport_id = f"transport-{os.urandom(4).hex()}"
    worker.ok("router.createWebRtcTransport", router_id, {
        "transportId": transport_id,
        "listenInfos": [{"protocol": protocol, "ip": PEER_IP} for protocol in protocols]})
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
    extensions: tuple[tuple[int, bytes], ...] = ()  # more one-byte elements (id, value)

    def packet(self, payload: bytes, *, marker: bool = True, ts_step: int = 3000,
               padding: bytes = b"") -> bytes:
        """The next packet: ``seq`` is its sequence number, then both advance."""
        packet = ref_rtp.RtpPacket(payload_type=self.payload_type, marker=int(marker),
                                   sequence_number=self.seq, timestamp=self.timestamp,
                                   ssrc=self.ssrc, payload=payload, padding=padding)
        elements = [(MID_EXT_ID, self.mid.encode())] if self.mid is not None else []
        elements += self.extensions
        if elements:
            packet.set_extensions(elements)
        self.seq = (self.seq + 1) & 0xFFFF
        self.timestamp = (self.timestamp + ts_step) & 0xFFFFFFFF
        return packet.serialize()


# -- the peer ----------------------------------------------------------------------------------


class Link:
    """How the peer's datagrams travel: UDP datagrams to ``server``, or (``framed``) RFC 4571
    frames on a connected ICE-TCP socket, each frame one datagram."""

    def __init__(self, sock: socket.socket, server: tuple[str, int], *,
                 framed: bool = False) -> None:
        self.sock = sock
        self.server = server
        self.framed = framed
        self.eof = False  # framed: the worker closed (or reset) the connection
        self._buffer = bytearray()

    def send(self, data: bytes) -> None:
        if self.framed:
            self.sock.settimeout(CONNECT_TIMEOUT_S)  # a read may have left it non-blocking
            self.sock.sendall(struct.pack("!H", len(data)) + data)
        else:
            self.sock.sendto(data, self.server)

    def read(self, timeout: float) -> bytes | None:
        """The next datagram (frame), waiting up to ``timeout`` (0: only what is queued now);
        None if none came."""
        if not self.framed:
            self.sock.settimeout(max(timeout, 0.0))
            try:
                return self.sock.recv(MAX_DATAGRAM)
            except (TimeoutError, BlockingIOError):
                return None
        deadline = time.monotonic() + timeout
        while True:
            frame = self._next_frame()
            if frame is not None:
                return frame
            if self.eof:
                return None
            self.sock.settimeout(max(deadline - time.monotonic(), 0.0))
            try:
                chunk = self.sock.recv(MAX_DATAGRAM)
            except (TimeoutError, BlockingIOError):
                return None
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if not chunk:
                self.eof = True
            self._buffer += chunk

    def _next_frame(self) -> bytes | None:
        buffer = self._buffer
        while len(buffer) >= 2:
            (length,) = struct.unpack_from("!H", buffer)
            if len(buffer) < 2 + length:
                return None
            frame = bytes(buffer[2:2 + length])
            del buffer[:2 + length]
            if frame:  # a zero-length frame is a null packet (RFC 4571)
                return frame
        return None


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
    link: Link | None = None  # None: UDP datagrams from ``sock`` to ``server``
    _io: Link = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.link is None:
            self.link = Link(self.sock, self.server)
        self._io = self.link

    @classmethod
    def connect(cls, worker: WorkerProcess, transport_id: str, *, wrong_keys: bool = False,
                timeout: float = CONNECT_TIMEOUT_S, protocol: str = "udp") -> SrtpPeer:
        """``transport.connect``, ICE, DTLS; returns once the worker's DTLS is connected.
        ``protocol`` picks the transport's candidate: ``udp``, or ``tcp`` (ICE-TCP)."""
        dump = worker.ok("transport.dump", transport_id)
        candidate = next(c for c in dump["iceCandidates"] if c["protocol"] == protocol)
        server = (candidate["ip"], candidate["port"])
        certificate = DtlsCertificate.generate()
        answer = worker.ok("transport.connect", transport_id, {"dtlsParameters": {
            "role": "client",
            "fingerprints": [{"algorithm": "sha-256",
                              "value": fingerprint(certificate.certificate, "sha-256")}]}})
        assert answer == {"dtlsLocalRole": "server"}, answer
        theirs = next(f for f in dump["dtlsParameters"]["fingerprints"]
                      if f["algorithm"] == "sha-256")
        creds = IceCredentials.of(dump)
        ice: IceUdpClient | IceTcpClient
        if protocol == "tcp":
            ice = IceTcpClient(server, timeout=timeout)
            link = Link(ice.sock, server, framed=True)
        else:
            ice = IceUdpClient(PEER_IP, timeout=timeout)
            link = Link(ice.sock, server)
        try:
            if isinstance(ice, IceTcpClient):
                response = ice.request(creds, use_candidate=True)
            else:
                response = ice.request(creds, server, use_candidate=True)
            assert response.message_class == stun.StunClass.SUCCESS, response
            session = DtlsSession(certificate, "client",
                                  RemoteFingerprint.parse("sha-256", theirs["value"]))
            keys = _handshake(link, session, timeout)
        except BaseException:
            ice.close()
            raise
        tx_key = os.urandom(len(keys.local_key) + len(keys.local_salt)) if wrong_keys else None
        peer = cls(ice.sock, server, session, keys, _srtp_session(keys, inbound=False, key=tx_key),
                   _srtp_session(keys, inbound=True), link=link)
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
        self._io.send(data)

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
        wait = timeout
        while (data := self._io.read(wait)) is not None:
            got.append(self._decode(data))
            wait = 0.0
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


# -- reading what a peer received ------------------------------------------------------------


def rtp_of(item: Received) -> ref_rtp.RtpPacket | None:
    """The RTP packet of a received item (None if it is not RTP)."""
    kind, data = item
    return ref_rtp.RtpPacket.parse(data) if kind == "rtp" else None


def rtcp_of(item: Received) -> list[ref_rtcp.Packet]:
    """The RTCP packets of a received compound (none if it is not RTCP); the worker's RTCP
    must parse."""
    kind, data = item
    if kind != "rtcp":
        return []
    packets, error = ref_rtcp.parse_compound(data)
    assert error is None, f"the worker sent malformed RTCP: {error} in {data.hex()}"
    return packets


class Watch:
    """What one peer received, read from a point on. Several watches share a peer: each item
    stays in ``peer.received`` for the others."""

    def __init__(self, peer: SrtpPeer) -> None:
        self.peer = peer
        self.pos = len(peer.received)

    def next(self, timeout: float) -> Received | None:
        if self.pos == len(self.peer.received):
            self.peer.recv(timeout)
            if self.pos == len(self.peer.received):
                return None
        item = self.peer.received[self.pos]
        self.pos += 1
        return item

    def until(self, predicate: Callable[[Received], bool], timeout: float,
              what: str) -> list[Received]:
        """Items up to and including the first ``predicate`` accepts."""
        deadline = time.monotonic() + timeout
        seen: list[Received] = []
        while True:
            remaining = deadline - time.monotonic()
            item = self.next(max(remaining, 0.0))
            if item is None:
                if remaining <= 0:
                    raise AssertionError(f"timed out waiting for {what} ({len(seen)} items)")
                continue
            seen.append(item)
            if predicate(item):
                return seen

    def during(self, duration: float) -> list[Received]:
        deadline = time.monotonic() + duration
        seen: list[Received] = []
        while (remaining := deadline - time.monotonic()) > 0:
            item = self.next(remaining)
            if item is not None:
                seen.append(item)
        while (item := self.next(0.0)) is not None:
            seen.append(item)
        return seen

    def rtcp(self, duration: float) -> list[ref_rtcp.Packet]:
        """The RTCP packets of :meth:`during`."""
        return [p for item in self.during(duration) for p in rtcp_of(item)]


def _handshake(link: Link, session: DtlsSession, timeout: float) -> SrtpKeys:
    """Run the client side of the handshake over ``link``; the keys, or AssertionError."""
    deadline = time.monotonic() + timeout
    for datagram in session.start(time.monotonic()).datagrams:
        link.send(datagram)
    while session.state == "connecting":
        now = time.monotonic()
        if now > deadline or link.eof:
            raise AssertionError("DTLS handshake with the worker timed out (or was cut)")
        wake = min(deadline, session.deadline or deadline)
        data = link.read(max(wake - now, 0.001))
        if data is None:
            update = session.handle_timeout(time.monotonic())
        else:
            if demux.classify(data) != demux.DTLS:
                continue
            update = session.handle_datagram(data, time.monotonic())
        for datagram in update.datagrams:
            link.send(datagram)
    connected = session.connected
    if connected is None:
        raise AssertionError(f"DTLS with the worker ended {session.state}: {session.failure}")
    return connected.srtp


def _summary(items: list[Received]) -> str:
    counts: dict[str, int] = {}
    for kind, _ in items:
        counts[kind] = counts.get(kind, 0) + 1
    return ", ".join(f"{n} {kind}" for kind, n in counts.items()) or "nothing"
