"""What PlainTransport and PipeTransport share: their own UDP sockets, a remote tuple set by
``connect`` (or learned from the first packet with ``comedia``), and optional SRTP with keys
exchanged as ``srtpParameters`` instead of DTLS.

The transport owns its sockets (one, or two without RTCP multiplexing): each is read in
batches like every UDP socket of the worker, RTP goes to the media ingress (queued slots,
flushed at the end of the socket's batch), RTCP to the transport's RTCP handling. Once media
flows, the RTP socket gets the C receive path (:mod:`worker.fast_ingress`): the packets of the
remote tuple that need no decision are then received, unprotected, accounted, stored, fanned
out and sent in one C call per wake-up, and only the others come through here. Packets from
any address other than the remote tuple are dropped and counted: the worker only ever sends to
the address the controller connected it to, or (``comedia``) the address the first packet came
from.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable
from typing import Any, Final, TypeGuard

from worker._fast import Kind
from worker._fast.srtp import SrtpContext, SrtpError, unprotect_rtcp
from worker.dtls import srtp_profile_by_crypto_suite
from worker.entity import Context
from worker.errors import InvalidStateError, WorkerError, WorkerTypeError
from worker.listen_info import ListenInfo, bind_socket, parse_listen_info
from worker.media_ingress import FlushQueue
from worker.net.udp import UdpSocket
from worker.transport import Transport

__all__ = ["SRTP_CRYPTO_SUITES", "SocketTransport", "parse_srtp_parameters"]

SRTP_CRYPTO_SUITES: Final = ("AEAD_AES_256_GCM", "AEAD_AES_128_GCM", "AES_CM_128_HMAC_SHA1_80",
                             "AES_CM_128_HMAC_SHA1_32")
DEFAULT_SRTP_CRYPTO_SUITE: Final = "AES_CM_128_HMAC_SHA1_80"


def _key_length(crypto_suite: str) -> int:
    profile = srtp_profile_by_crypto_suite(crypto_suite)
    return profile.master_key_bytes + profile.master_salt_bytes


def parse_crypto_suite(value: object) -> str:
    if value is None:
        return DEFAULT_SRTP_CRYPTO_SUITE
    if value not in SRTP_CRYPTO_SUITES:
        raise WorkerTypeError(f"invalid srtpCryptoSuite [srtpCryptoSuite:{value!r}]")
    return str(value)


def parse_srtp_parameters(value: object) -> tuple[str, bytes]:
    """``{cryptoSuite, keyBase64}`` → (suite, master key + salt), checked."""
    if not isinstance(value, dict):
        raise WorkerTypeError("missing or invalid srtpParameters (an object)")
    suite = value.get("cryptoSuite")
    if suite not in SRTP_CRYPTO_SUITES:
        raise WorkerTypeError(f"invalid srtpParameters.cryptoSuite [cryptoSuite:{suite!r}]")
    key_b64 = value.get("keyBase64")
    if not isinstance(key_b64, str):
        raise WorkerTypeError("missing or invalid srtpParameters.keyBase64 (a string)")
    try:
        key = base64.b64decode(key_b64, validate=True)
    except (binascii.Error, ValueError):
        raise WorkerTypeError("invalid srtpParameters.keyBase64 (not base64)") from None
    if len(key) != _key_length(suite):
        raise WorkerTypeError(f"invalid srtpParameters.keyBase64 length [{len(key)} bytes, "
                              f"{suite} needs {_key_length(suite)}]")
    return str(suite), key


def parse_bool(data: dict[str, Any], key: str, default: bool) -> bool:
    value = data.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise WorkerTypeError(f"invalid {key} (a boolean)")
    return value


class _Endpoint:
    """One of our sockets and the remote address it talks to."""

    __slots__ = ("info", "remote", "socket")

    def __init__(self, info: ListenInfo, udp: UdpSocket) -> None:
        self.info = info
        self.socket = udp
        self.remote: tuple[str, int] | None = None

    def tuple_dump(self) -> dict[str, Any]:
        local_ip, local_port = self.socket.local
        tup: dict[str, Any] = {"localAddress": self.info.announced_address or local_ip,
                               "localIp": local_ip, "localPort": local_port,
                               "protocol": "udp"}
        if self.remote is not None:
            tup["remoteIp"], tup["remotePort"] = self.remote
        return tup


class SocketTransport(Transport):
    """A transport on its own UDP socket(s) with a remote tuple (Plain and Pipe)."""

    comedia = False
    rtcp_mux = True

    def __init__(self, transport_id: str, ctx: Context, data: dict[str, Any],
                 on_closed: Callable[[Transport], None]) -> None:
        super().__init__(transport_id, ctx, on_closed)
        if data.get("enableSctp"):
            raise WorkerError("enableSctp: DataChannels (SCTP) are not implemented yet")
        self.enable_srtp = parse_bool(data, "enableSrtp", False)
        self.srtp_crypto_suite = parse_crypto_suite(data.get("srtpCryptoSuite"))
        self._local_key = os.urandom(_key_length(self.srtp_crypto_suite))
        self._srtp_in: SrtpContext | None = None
        self._srtp_out: SrtpContext | None = None
        self.connect_called = False
        self._media_flush = FlushQueue(ctx.logger)
        self.packets_from_unknown = 0
        self.packets_ignored = 0
        self.srtcp_failed = 0
        self.bytes_sent = 0
        port_range = (ctx.settings.rtc_min_port, ctx.settings.rtc_max_port)
        self._rtp = self._open(parse_listen_info(data.get("listenInfo"), port_range, ("udp",)))
        self._rtcp: _Endpoint | None = None
        try:
            self.configure(data, port_range)
        except BaseException:
            self.release_transport()
            raise
        ctx.registry.register(self)

    def configure(self, data: dict[str, Any], port_range: tuple[int, int]) -> None:
        """Subclass options, after the RTP socket is open (may open the RTCP one)."""

    def _open(self, info: ListenInfo) -> _Endpoint:
        sock = bind_socket(info)
        udp = UdpSocket(self.ctx.loop, sock, self.ctx.pools["udpRecv"], self._on_datagram)
        udp.on_batch_end = self._media_flush.flush
        return _Endpoint(info, udp)

    # -- dump, stats ------------------------------------------------------------------------

    def srtp_parameters(self) -> dict[str, Any] | None:
        """Our SRTP parameters (the key we protect with), for the remote side."""
        if not self.enable_srtp:
            return None
        return {"cryptoSuite": self.srtp_crypto_suite,
                "keyBase64": base64.b64encode(self._local_key).decode()}

    def socket_dump(self) -> dict[str, Any]:
        dump = self.base_dump()
        dump["tuple"] = self._rtp.tuple_dump()
        if self._rtcp is not None:
            dump["rtcpTuple"] = self._rtcp.tuple_dump()
        srtp = self.srtp_parameters()
        if srtp is not None:
            dump["srtpParameters"] = srtp
        dump["counters"] = {"bytesReceived": self.bytes_received, "bytesSent": self.bytes_sent,
                            "packetsFromUnknownAddress": self.packets_from_unknown,
                            "packetsIgnored": self.packets_ignored,
                            "srtcpFailed": self.srtcp_failed}
        if self._ingress is not None:
            dump["counters"].update(self._ingress.counters())
        return dump

    def stats(self) -> dict[str, Any]:
        stats = super().stats()
        stats.update(bytesReceived=self.bytes_received, bytesSent=self.bytes_sent,
                     tuple=self._rtp.tuple_dump(), srtcpFailed=self.srtcp_failed,
                     packetsFromUnknownAddress=self.packets_from_unknown)
        if self._rtcp is not None:
            stats["rtcpTuple"] = self._rtcp.tuple_dump()
        return stats

    # -- connect ----------------------------------------------------------------------------

    def connect_endpoints(self, data: dict[str, Any], *, ignore_rtcp_port: bool) -> None:
        """The common part of ``connect``: remote tuple(s) and SRTP keys, all checked first."""
        if self.connect_called:
            raise InvalidStateError("connect() already called")
        srtp = data.get("srtpParameters")
        if self.enable_srtp:
            suite, remote_key = parse_srtp_parameters(srtp)
        elif srtp is not None:
            raise WorkerTypeError("srtpParameters given but SRTP is not enabled")
        remote = rtcp_remote = None
        if not self.comedia:
            ip = data.get("ip")
            port = data.get("port")
            if not isinstance(ip, str) or not ip:
                raise WorkerTypeError("missing or invalid ip (a string)")
            if not _is_port(port):
                raise WorkerTypeError("missing or invalid port (1-65535)")
            remote = (ip, port)
            rtcp_port = data.get("rtcpPort")
            if self._rtcp is not None:
                if not _is_port(rtcp_port):
                    raise WorkerTypeError("missing or invalid rtcpPort (required when rtcpMux "
                                          "is false)")
                rtcp_remote = (ip, rtcp_port)
            elif rtcp_port is not None and not ignore_rtcp_port:
                raise WorkerTypeError("rtcpPort is not allowed with rtcpMux")
            _check_family(ip, self._rtp.info)
        if self.enable_srtp:
            profile = srtp_profile_by_crypto_suite(suite)
            self._srtp_in = SrtpContext.inbound(profile, remote_key)
            self._srtp_out = SrtpContext.outbound(profile, self._local_key)
        self.connect_called = True
        if remote is not None:
            self._rtp.remote = remote
        if rtcp_remote is not None and self._rtcp is not None:
            self._rtcp.remote = rtcp_remote
        self.media_changed()
        self.send_path_changed()

    # -- media ------------------------------------------------------------------------------

    def media_ready(self) -> bool:
        if self.closed or self._rtp.remote is None:
            return False
        return not self.enable_srtp or self._srtp_out is not None

    def srtp_out(self) -> SrtpContext | None:
        return self._srtp_out

    def srtp_in(self) -> SrtpContext | None:
        return self._srtp_in

    def srtp_required(self) -> bool:
        return self.enable_srtp

    def fast_remote(self, udp: object) -> tuple[str, int] | None:
        return self._rtp.remote if udp is self._rtp.socket else None

    def send_target(self, consumer: object = None) -> tuple[int, tuple[str, int]] | None:
        if not self.media_ready() or self._rtp.remote is None:
            return None
        return self._rtp.socket.fd, self._rtp.remote

    def _send(self, endpoint: _Endpoint, data: bytes) -> bool:
        if endpoint.remote is None:
            return False
        sent = endpoint.socket.send(data, endpoint.remote)
        if sent:
            self.bytes_sent += len(data)
        return sent

    def send_rtp(self, packet: bytes, consumer: object = None) -> bool:
        if not self.media_ready():
            return False
        data = self.protected(packet, rtcp=False)
        return data is not None and self._send(self._rtp, data)

    def send_rtcp(self, packet: bytes) -> bool:
        endpoint = self._rtcp or self._rtp
        if endpoint.remote is None or (self.enable_srtp and self._srtp_out is None):
            return False
        data = self.protected(packet, rtcp=True)
        return data is not None and self._send(endpoint, data)

    def _on_datagram(self, sock: UdpSocket, view: memoryview, source: tuple[str, int],
                     kind: Kind) -> None:
        if self.closed:
            return
        endpoint = self._rtp if sock is self._rtp.socket else self._rtcp
        if endpoint is None:
            return
        if endpoint.remote != source:
            if endpoint.remote is not None or not self.comedia or kind not in (Kind.RTP,
                                                                              Kind.RTCP):
                self.packets_from_unknown += 1
                return
            self._learn(endpoint, source)
        self._bytes_received += len(view)
        if kind is Kind.RTCP:
            self._receive_rtcp(view)
        elif kind is Kind.RTP and endpoint is self._rtp:
            if self.enable_srtp and self._srtp_in is None:
                self.packets_ignored += 1  # keys come with connect
                return
            self.receive_udp_rtp(sock, len(view), self._media_flush.add)
        else:
            self.packets_ignored += 1

    def _receive_rtcp(self, view: memoryview) -> None:
        if self.enable_srtp:
            if self._srtp_in is None:
                self.packets_ignored += 1
                return
            try:
                data: bytes | memoryview = unprotect_rtcp(self._srtp_in, view)
            except SrtpError:
                self.srtcp_failed += 1
                return
        else:
            data = view
        self.receive_rtcp(data)

    def _learn(self, endpoint: _Endpoint, source: tuple[str, int]) -> None:
        """comedia: the first packet's source becomes the remote tuple."""
        endpoint.remote = source
        if endpoint is self._rtp:
            self.media_changed()
            self.emit("tuple", {"tuple": endpoint.tuple_dump()})
            self.send_path_changed()
        else:
            self.emit("rtcptuple", {"rtcpTuple": endpoint.tuple_dump()})

    # -- close ------------------------------------------------------------------------------

    def release_transport(self) -> None:
        self.detach_fast_paths()
        self._rtp.socket.close()
        if self._rtcp is not None:
            self._rtcp.socket.close()


def _is_port(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536


def _check_family(ip: str, info: ListenInfo) -> None:
    if (":" in ip) != (":" in info.ip):
        raise WorkerTypeError(f"ip {ip!r} is not of the listening socket's family "
                              f"({info.ip})")

