"""WebRtcTransport: an ICE-lite endpoint for WebRTC peers, over UDP and ICE-TCP.

It is reached either through its own sockets (``listenInfos``: a private
:class:`~worker.ice_listener.IceListener` it owns) or through a WebRtcServer's shared ones
(``webRtcServerId``). Either way it owns its ICE tuples and their TCP connections: when a tuple
goes (ICE eviction, consent expiry, ICE restart retiring a tuple, the transport or its server
closing), its connection is closed and its buffer returned at once (DESIGN.md rule 5).

``transport.connect {dtlsParameters}`` sets up DTLS (:mod:`worker.dtls_transport`), which starts
once ICE is connected; a DTLS datagram on a valid tuple selects that tuple. Once DTLS is
connected its exported keys make the SRTP contexts: RTP arriving on a valid tuple goes to the
media ingress (unprotected in place in its pool slot), RTCP to the transport's RTCP handling,
and media and RTCP leave on the selected tuple. Before that, RTP and RTCP are counted
(``packetsIgnored``) and dropped. Only a tuple that passed ICE is ever sent to.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from worker._fast import Kind, StunMessageView, StunParseError, classify, parse_stun
from worker._fast.srtp import SrtpContext, SrtpError, unprotect_rtcp
from worker.dtls import DtlsConnected, srtp_sessions
from worker.dtls_transport import DtlsTransport
from worker.entity import Context, handles
from worker.errors import InvalidStateError, WorkerError, WorkerTypeError
from worker.ice_listener import IceListener
from worker.ice_server import IceServer, IceTuple, IceUpdate
from worker.listen_info import parse_listen_infos
from worker.media_ingress import DEFERRED_SINKS, new_sink_id
from worker.net.tcp import TcpConnection
from worker.transport import Transport

if TYPE_CHECKING:
    import asyncio

    from worker.webrtc_server import WebRtcServer

__all__ = ["WebRtcTransport", "WebRtcTransportOptions"]

ICE_CONSENT_TIMEOUT_DEFAULT_S: Final = 30
ICE_CONSENT_TIMEOUT_MIN_S: Final = 10
ICE_CONSENT_TIMEOUT_MAX_S: Final = 60
ICE_UFRAG_CHARS: Final = 16
ICE_PASSWORD_CHARS: Final = 32
_ICE_ALPHABET: Final = string.ascii_lowercase + string.digits
# ICE candidate priority (mediasoup's IceCandidate): 2^24 * 64 + 2^8 * localPref + 255.
_TYPE_PREFERENCE: Final = 64
_LOCAL_PREFERENCE_START: Final = 10000
_LOCAL_PREFERENCE_STEP: Final = 100
_PREFERRED_BONUS: Final = 1000


def _random_token(length: int) -> str:
    """``length`` uniformly random characters of [a-z0-9] (bytes of 252 and above are skipped,
    so that ``byte % 36`` has no bias), from few calls to the system's random source."""
    alphabet = _ICE_ALPHABET
    limit = 256 - 256 % len(alphabet)
    chars: list[str] = []
    while len(chars) < length:
        chars.extend(alphabet[b % len(alphabet)] for b in secrets.token_bytes(length) if b < limit)
    return "".join(chars[:length])


def _candidate_priority(local_preference: int) -> int:
    return (2**24) * _TYPE_PREFERENCE + (2**8) * local_preference + 255


def _bool(data: dict[str, Any], key: str, default: bool) -> bool:
    value = data.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise WorkerTypeError(f"invalid {key} (a boolean)")
    return value


@dataclass(frozen=True, slots=True)
class WebRtcTransportOptions:
    enable_udp: bool
    enable_tcp: bool
    prefer_udp: bool
    prefer_tcp: bool
    ice_consent_timeout_s: int
    initial_available_outgoing_bitrate: int

    @classmethod
    def parse(cls, data: dict[str, Any], with_server: bool) -> WebRtcTransportOptions:
        timeout = data.get("iceConsentTimeout", ICE_CONSENT_TIMEOUT_DEFAULT_S)
        if timeout is None:
            timeout = ICE_CONSENT_TIMEOUT_DEFAULT_S
        if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 0:
            raise WorkerTypeError("invalid iceConsentTimeout (seconds: 0, or 10 to 60)")
        if timeout:  # mediasoup clamps to 10-60; 0 disables consent checks
            timeout = min(max(timeout, ICE_CONSENT_TIMEOUT_MIN_S), ICE_CONSENT_TIMEOUT_MAX_S)
        bitrate = data.get("initialAvailableOutgoingBitrate", 600000)
        if bitrate is None:
            bitrate = 600000
        if not isinstance(bitrate, int) or isinstance(bitrate, bool) or bitrate <= 0:
            raise WorkerTypeError("invalid initialAvailableOutgoingBitrate (bps, positive)")
        options = cls(
            enable_udp=_bool(data, "enableUdp", True),
            enable_tcp=_bool(data, "enableTcp", with_server),
            prefer_udp=_bool(data, "preferUdp", False),
            prefer_tcp=_bool(data, "preferTcp", False),
            ice_consent_timeout_s=timeout,
            initial_available_outgoing_bitrate=bitrate,
        )
        if with_server and not (options.enable_udp or options.enable_tcp):
            raise WorkerTypeError("at least one of enableUdp and enableTcp must be true")
        return options


class WebRtcTransport(Transport):
    transport_type = "webrtc-transport"

    def __init__(self, transport_id: str, ctx: Context, data: dict[str, Any],
                 on_closed: Callable[[Transport], None]) -> None:
        super().__init__(transport_id, ctx, on_closed)
        if data.get("enableSctp"):
            raise WorkerError("enableSctp: DataChannels (SCTP) are not implemented yet")
        server_id = data.get("webRtcServerId")
        self._server: WebRtcServer | None = None
        self._own_listener: IceListener | None = None
        self.options = WebRtcTransportOptions.parse(data, with_server=server_id is not None)
        if server_id is not None:
            self._server = self._find_server(server_id)
            listener = self._server.listener
        else:
            infos = parse_listen_infos(data.get("listenInfos"), (ctx.settings.rtc_min_port,
                                                                 ctx.settings.rtc_max_port))
            listener = self._own_listener = IceListener(ctx.loop, ctx.pools, ctx.logger, infos)
        self._listener = listener
        self._loop: asyncio.AbstractEventLoop = ctx.loop
        self.ice = IceServer(_random_token(ICE_UFRAG_CHARS), _random_token(ICE_PASSWORD_CHARS),
                             self.options.ice_consent_timeout_s)
        self._registered_ufrags: list[str] = [self.ice.ufrag]
        self._tcp_tuples: dict[TcpConnection, IceTuple] = {}
        self._consent_timer: asyncio.TimerHandle | None = None
        self._removing = False
        self.dtls: DtlsTransport | None = None
        self.dtls_connected: DtlsConnected | None = None  # the SRTP keys, once connected
        self._srtp_in: SrtpContext | None = None
        self._srtp_out: SrtpContext | None = None
        self._sink_id: int | None = None  # our deferred sink while a TCP tuple is selected
        self.srtcp_failed = 0
        self.bytes_sent = 0
        self.packets_ignored = 0
        self.stun_malformed = 0
        self.ice_candidates = self._candidates()
        if not self.ice_candidates:
            self.release_transport()
            raise WorkerTypeError("no ICE candidate: no listening socket of an enabled protocol")
        ctx.registry.register(self)
        listener.add_ufrag(self.ice.ufrag, self)
        if self._server is not None:
            self._server.transport_created(self)

    def _find_server(self, server_id: object) -> WebRtcServer:
        from worker.webrtc_server import WebRtcServer  # noqa: PLC0415 (mutual references)

        if not isinstance(server_id, str):
            raise WorkerTypeError("invalid webRtcServerId (a string)")
        server = self.ctx.registry.get(server_id)
        if not isinstance(server, WebRtcServer):
            raise WorkerError(f"webRtcServer {server_id!r} not found")
        return server

    def _candidates(self) -> list[dict[str, Any]]:
        candidates = []
        options = self.options
        with_server = self._server is not None
        for index, (protocol, ip, port, announced) in enumerate(self._listener.local_endpoints()):
            if with_server and not (options.enable_udp if protocol == "udp"
                                    else options.enable_tcp):
                continue
            preference = _LOCAL_PREFERENCE_START - index * _LOCAL_PREFERENCE_STEP
            if with_server and ((protocol == "udp" and options.prefer_udp)
                                or (protocol == "tcp" and options.prefer_tcp)):
                preference += _PREFERRED_BONUS
            candidate: dict[str, Any] = {
                "foundation": f"{protocol}candidate",
                "priority": _candidate_priority(preference),
                "address": announced or ip,
                "ip": announced or ip,
                "protocol": protocol,
                "port": port,
                "type": "host",
            }
            if protocol == "tcp":
                candidate["tcpType"] = "passive"
            candidates.append(candidate)
        candidates.sort(key=lambda c: -int(c["priority"]))
        return candidates

    # -- requests -------------------------------------------------------------------------

    @handles("dump")
    def dump(self, data: dict[str, Any]) -> dict[str, Any]:
        dump = self.base_dump()
        dump.update(
            iceRole="controlled",
            iceParameters=self.ice_parameters(),
            iceCandidates=self.ice_candidates,
            iceState=self.ice.state,
            dtlsParameters={"role": self.dtls.local_role if self.dtls else "auto",
                            "fingerprints": self.ctx.certificate.fingerprints()},
            dtlsState=self.dtls.state if self.dtls else "new",
        )
        if self.ice.selected is not None:
            dump["iceSelectedTuple"] = self.ice.selected.dump()
        dump["iceTuples"] = [tup.dump() for tup in self.ice.tuples]
        dump["counters"] = {
            "bytesReceived": self.bytes_received,
            "bytesSent": self.bytes_sent,
            "stunRejected": self.ice.requests_rejected,
            "stunMalformed": self.stun_malformed,
            "packetsIgnored": self.packets_ignored,
            "tcpConnections": len(self._tcp_tuples),
        }
        if self._ingress is not None:
            dump["counters"].update(self._ingress.counters())
        if self._own_listener is not None:
            dump["listenerCounters"] = self._own_listener.counters()
        return dump

    def ice_parameters(self) -> dict[str, Any]:
        return {"usernameFragment": self.ice.ufrag, "password": self.ice.password,
                "iceLite": True}

    @handles("connect")
    def connect(self, data: dict[str, Any]) -> dict[str, Any]:
        """``{dtlsParameters: {role, fingerprints}}`` → ``{dtlsLocalRole}`` (mediasoup's rule:
        remote ``auto`` or ``server`` makes us the client, ``client`` the server)."""
        if self.dtls is not None:
            raise InvalidStateError("connect() already called")
        self.dtls = DtlsTransport(self._loop, self.ctx.certificate, data.get("dtlsParameters"),
                                  self._send_dtls, self.emit, self._dtls_connected)
        self._start_dtls_if_ready()
        return {"dtlsLocalRole": self.dtls.local_role}

    def _start_dtls_if_ready(self) -> None:
        if self.dtls is not None and self.ice.state in ("connected", "completed"):
            self.dtls.start()

    def _send_dtls(self, datagram: bytes) -> None:
        if self.ice.selected is not None:
            self._send_on(self.ice.selected, datagram)

    def _dtls_connected(self, connected: DtlsConnected) -> None:
        self.dtls_connected = connected
        self._srtp_in, self._srtp_out = srtp_sessions(connected.srtp)
        self.ctx.logger.debug(f"DTLS connected [transportId:{self.id}, srtpCryptoSuite:"
                              f"{connected.srtp_crypto_suite}]", tag="dtls")
        self.media_changed()
        self.send_path_changed()

    # -- media ----------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """mediasoup's WebRtcTransport stats, plus the media path's counters."""
        stats = super().stats()
        stats.update(
            iceRole="controlled", iceState=self.ice.state,
            dtlsState=self.dtls.state if self.dtls else "new",
            bytesReceived=self.bytes_received, bytesSent=self.bytes_sent,
            srtcpFailed=self.srtcp_failed, packetsIgnored=self.packets_ignored,
        )
        if self.ice.selected is not None:
            stats["iceSelectedTuple"] = self.ice.selected.dump()
        return stats

    def media_ready(self) -> bool:
        return self._srtp_out is not None and self.ice.selected is not None and not self.closed

    def srtp_out(self) -> SrtpContext | None:
        return self._srtp_out

    def srtp_in(self) -> SrtpContext | None:
        return self._srtp_in

    def srtp_required(self) -> bool:
        return True

    def fast_remote(self, udp: object) -> tuple[str, int] | None:
        """The selected tuple's remote address, when it is UDP on socket ``udp``: the C
        receive path takes media from that address only (the others, ICE checks and DTLS
        come through the listener)."""
        tup = self.ice.selected
        if tup is None or tup.connection is not None or tup.socket is not udp:
            return None
        return tup.remote_ip, tup.remote_port

    def send_target(self, consumer: object = None) -> tuple[int, tuple[str, int]] | None:
        tup = self.ice.selected
        if tup is None or self._srtp_out is None:
            return None
        if tup.connection is None:
            return tup.socket.fd, (tup.remote_ip, tup.remote_port)
        if self._sink_id is None:
            self._sink_id = new_sink_id()
        DEFERRED_SINKS[self._sink_id] = self._send_deferred
        return self._sink_id, (tup.remote_ip, tup.remote_port)

    def _send_deferred(self, packet: memoryview) -> None:
        """An output of the C fan-out for our TCP tuple (already protected)."""
        tup = self.ice.selected
        if tup is not None and tup.connection is not None and tup.connection.send(packet):
            self.bytes_sent += len(packet)

    def send_rtp(self, packet: bytes, consumer: object = None) -> bool:
        return self._send_protected(packet, rtcp=False)

    def send_rtcp(self, packet: bytes) -> bool:
        return self._send_protected(packet, rtcp=True)

    def _send_protected(self, packet: bytes, *, rtcp: bool) -> bool:
        tup = self.ice.selected
        if self._srtp_out is None or tup is None:
            return False
        data = self.protected(packet, rtcp=rtcp)
        return data is not None and self._send_on(tup, data)

    def _receive_media(self, tup: IceTuple, data: memoryview, kind: Kind) -> None:
        if kind is Kind.RTCP:
            try:
                plain = unprotect_rtcp(self._srtp_in, data)  # type: ignore[arg-type]
            except SrtpError:
                self.srtcp_failed += 1
                return
            self.receive_rtcp(plain)
            return
        if tup.connection is None:
            self.receive_udp_rtp(tup.socket, len(data), self._listener.media_flush.add)
            return
        self.receive_rtp_copy(data, self._srtp_in)  # a TCP frame

    @handles("restartIce")
    def restart_ice(self, data: dict[str, Any]) -> dict[str, Any]:
        self.ice.restart(_random_token(ICE_UFRAG_CHARS), _random_token(ICE_PASSWORD_CHARS),
                         self._loop.time())
        self._listener.add_ufrag(self.ice.ufrag, self)
        self._registered_ufrags.append(self.ice.ufrag)
        self._sync_ufrags()
        self._schedule_consent()
        return {"iceParameters": self.ice_parameters()}

    # -- packets from the listener --------------------------------------------------------

    def handle_stun(self, data: bytes, msg: StunMessageView, tup: IceTuple) -> None:
        if self.closed:
            return
        self._bytes_received += len(data)
        update = self.ice.handle_stun(data, msg, tup, self._loop.time())
        if update.response is not None:
            self._send_on(tup, update.response)
        self._apply(update)
        self._sync_ufrags()

    def handle_packet(self, tup: IceTuple, data: memoryview, kind: Kind) -> None:
        self._bytes_received += len(data)
        if kind is Kind.DTLS and self.dtls is not None and self.dtls.started:
            self._apply(self.ice.force_select(tup))  # DTLS on a valid tuple selects it
            self.dtls.handle_datagram(bytes(data))
        elif (kind is Kind.RTP or kind is Kind.RTCP) and self._srtp_in is not None:
            self._receive_media(tup, data, kind)
        else:
            self.packets_ignored += 1  # before DTLS gave keys, or not media

    def _on_tcp_frame(self, conn: TcpConnection, view: memoryview) -> None:
        tup = self._tcp_tuples.get(conn)
        if tup is None:
            return
        kind = classify(view)
        if kind is Kind.STUN:
            data = bytes(view)
            try:
                msg = parse_stun(data)
            except StunParseError:
                self.stun_malformed += 1
                return
            self.handle_stun(data, msg, tup)
        else:
            self.handle_packet(tup, view, kind)

    def _send_on(self, tup: IceTuple, data: bytes) -> bool:
        if tup.connection is not None:
            sent = tup.connection.send(data)
        else:
            sent = tup.socket.send(data, (tup.remote_ip, tup.remote_port))
        if sent:
            self.bytes_sent += len(data)
        return bool(sent)

    # -- ICE updates ----------------------------------------------------------------------

    def _apply(self, update: IceUpdate) -> None:
        for tup in update.removed:
            self._drop_tuple(tup)
        added = update.added
        if added is not None:
            self._listener.add_tuple(added, self)
            conn = added.connection
            if conn is not None and conn.owner is not self:
                conn.transfer(self, self._on_tcp_frame)
                self._tcp_tuples[conn] = added
        self._schedule_consent()
        if update.selected_changed:
            self._drop_sink()
            self.media_changed()
            if self.ice.selected is not None:
                self.emit("iceselectedtuplechange",
                          {"iceSelectedTuple": self.ice.selected.dump()})
            self.send_path_changed()
        if update.state_changed:
            self.emit("icestatechange", {"iceState": self.ice.state})
            self._start_dtls_if_ready()

    def _drop_tuple(self, tup: IceTuple) -> None:
        """A tuple ICE removed: forget it everywhere and close its TCP connection now."""
        self._listener.remove_tuple(tup)
        conn = tup.connection
        if conn is not None and not conn.closed:
            self._removing = True
            try:
                conn.close("ICE tuple removed")
            finally:
                self._removing = False

    def tcp_connection_closed(self, conn: TcpConnection) -> None:
        """One of our connections closed (by us, or by the peer: FIN, RST, error)."""
        tup = self._tcp_tuples.pop(conn, None)
        if tup is None or self._removing or self.closed:
            return
        self._apply(self.ice.remove_tuple(tup))

    def _sync_ufrags(self) -> None:
        """Unregister username fragments ICE no longer accepts (after a restart)."""
        accepted = {self.ice.ufrag, self.ice.old_ufrag}
        for ufrag in [u for u in self._registered_ufrags if u not in accepted]:
            self._listener.remove_ufrag(ufrag)
            self._registered_ufrags.remove(ufrag)

    def _schedule_consent(self) -> None:
        deadline = self.ice.deadline
        timer = self._consent_timer
        if timer is not None and (deadline is None or timer.when() != deadline):
            timer.cancel()
            self._consent_timer = timer = None
        if deadline is not None and timer is None:
            self._consent_timer = self._loop.call_at(deadline, self._on_consent_timer)

    def _on_consent_timer(self) -> None:
        self._consent_timer = None
        if not self.closed:
            self._apply(self.ice.handle_timeout(self._loop.time()))

    # -- close ----------------------------------------------------------------------------

    def server_closing(self) -> None:
        """Our WebRtcServer is closing: close before its sockets do."""
        self.close()

    def _drop_sink(self) -> None:
        if self._sink_id is not None:
            DEFERRED_SINKS.pop(self._sink_id, None)
            self._sink_id = None

    def release_transport(self) -> None:
        """Higher layers first: the DTLS close alert, then ICE tuples and their connections,
        then the sockets (our own listener's) or our registration with the server."""
        self._drop_sink()
        if self.dtls is not None:
            self.dtls.close()
        if self._consent_timer is not None:
            self._consent_timer.cancel()
            self._consent_timer = None
        for tup in self.ice.close():
            self._drop_tuple(tup)
        for conn in list(self._tcp_tuples):
            conn.close("transport closed")
        self._tcp_tuples.clear()
        for ufrag in self._registered_ufrags:
            self._listener.remove_ufrag(ufrag)
        self._registered_ufrags.clear()
        self.detach_fast_paths()
        if self._own_listener is not None:
            self._own_listener.close()
        if self._server is not None:
            self._server.transport_closed(self)
