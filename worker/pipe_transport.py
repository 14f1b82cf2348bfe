"""PipeTransport: a router's link to another router, on this worker or another one (on this
host or another), over plain UDP (optionally SRTP with exchanged keys).

Every consumer on a pipe transport is a pipe consumer (type ``pipe``): it forwards the
producer's stream as the router has it (its payload types and mapped SSRC, RTX when the
transport has ``enableRtx``, no MID), ready to be produced, unchanged, on the other router's
pipe transport. See :mod:`worker.socket_transport`.
"""

from __future__ import annotations

from typing import Any

from worker.entity import handles
from worker.socket_transport import SocketTransport, parse_bool

__all__ = ["PipeTransport"]


class PipeTransport(SocketTransport):
    transport_type = "pipe-transport"
    pipe_consumers = True

    def configure(self, data: dict[str, Any], port_range: tuple[int, int]) -> None:
        self.enable_rtx = parse_bool(data, "enableRtx", False)

    @handles("dump")
    def dump(self, data: dict[str, Any]) -> dict[str, Any]:
        dump = self.socket_dump()
        dump["rtx"] = self.enable_rtx
        return dump

    @handles("connect")
    def connect(self, data: dict[str, Any]) -> dict[str, Any]:
        """``{ip, port, srtpParameters}`` → ``{tuple}``."""
        self.connect_endpoints(data, ignore_rtcp_port=True)
        return {"tuple": self._rtp.tuple_dump()}
