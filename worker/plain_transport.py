"""PlainTransport: plain RTP (optionally SRTP with exchanged keys) to and from RTP tools such
as GStreamer and FFmpeg, on its own UDP socket(s).

Options as mediasoup's: ``listenInfo``, ``rtcpListenInfo`` (only without ``rtcpMux``; by
default ``listenInfo`` on another port), ``rtcpMux`` (default true), ``comedia`` (the remote
tuple is learned from the first RTP or RTCP packet, announced with ``tuple``/``rtcptuple``),
``enableSrtp`` with ``srtpCryptoSuite``. See :mod:`worker.socket_transport`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from worker.entity import handles
from worker.listen_info import parse_listen_info
from worker.socket_transport import SocketTransport, parse_bool

__all__ = ["PlainTransport"]


class PlainTransport(SocketTransport):
    transport_type = "plain-rtp-transport"

    def configure(self, data: dict[str, Any], port_range: tuple[int, int]) -> None:
        self.rtcp_mux = parse_bool(data, "rtcpMux", True)
        self.comedia = parse_bool(data, "comedia", False)
        if not self.rtcp_mux:
            rtcp_info = data.get("rtcpListenInfo")
            if rtcp_info is None:
                info = replace(self._rtp.info, port=0)
            else:
                info = parse_listen_info(rtcp_info, port_range, ("udp",))
            self._rtcp = self._open(info)

    @handles("dump")
    def dump(self, data: dict[str, Any]) -> dict[str, Any]:
        dump = self.socket_dump()
        dump.update(rtcpMux=self.rtcp_mux, comedia=self.comedia)
        return dump

    def stats(self) -> dict[str, Any]:
        stats = super().stats()
        stats.update(rtcpMux=self.rtcp_mux, comedia=self.comedia)
        return stats

    @handles("connect")
    def connect(self, data: dict[str, Any]) -> dict[str, Any]:
        """``{ip, port, rtcpPort, srtpParameters}`` → ``{tuple, rtcpTuple, srtpParameters}``."""
        self.connect_endpoints(data, ignore_rtcp_port=False)
        answer: dict[str, Any] = {"tuple": self._rtp.tuple_dump()}
        if self._rtcp is not None:
            answer["rtcpTuple"] = self._rtcp.tuple_dump()
        srtp = self.srtp_parameters()
        if srtp is not None:
            answer["srtpParameters"] = srtp
        return answer
