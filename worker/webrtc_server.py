"""WebRtcServer: UDP sockets and TCP servers shared by many WebRtcTransports.

The server owns the listening sockets (through its :class:`~worker.ice_listener.IceListener`);
each transport created through it owns its own ICE tuples and TCP connections. Closing the
server closes its transports first (each closes its connections), then its sockets
(mediasoup PR #1390's order).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from worker.entity import Context, Entity, handles
from worker.ice_listener import IceListener
from worker.listen_info import parse_listen_infos

if TYPE_CHECKING:
    from worker.webrtc_transport import WebRtcTransport

__all__ = ["WebRtcServer"]


class WebRtcServer(Entity):
    kind = "webRtcServer"

    def __init__(self, server_id: str, ctx: Context, data: dict[str, Any],
                 on_closed: Callable[[WebRtcServer], None]) -> None:
        super().__init__(server_id, ctx)
        infos = parse_listen_infos(data.get("listenInfos"),
                                   (ctx.settings.rtc_min_port, ctx.settings.rtc_max_port))
        ctx.registry.check_free(server_id)
        self.listener = IceListener(ctx.loop, ctx.pools, ctx.logger, infos)
        self._on_closed = on_closed
        self.transports: dict[str, WebRtcTransport] = {}
        ctx.registry.register(self)

    def transport_created(self, transport: WebRtcTransport) -> None:
        self.transports[transport.id] = transport

    def transport_closed(self, transport: WebRtcTransport) -> None:
        self.transports.pop(transport.id, None)

    @handles("dump")
    def dump(self, data: dict[str, Any]) -> dict[str, Any]:
        dump: dict[str, Any] = {
            "id": self.id,
            "udpSockets": [s.dump() for s in self.listener.udp_sockets],
            "tcpServers": [{"ip": s.local[0], "port": s.local[1]}
                           for s in self.listener.tcp_servers],
            "webRtcTransportIds": list(self.transports),
            "counters": self.listener.counters(),
        }
        dump.update(self.listener.dump_maps())
        return dump

    @handles("close")
    def close_request(self, data: dict[str, Any]) -> None:
        self.close()

    def close_children(self) -> None:
        for transport in list(self.transports.values()):
            transport.server_closing()
        self.transports.clear()

    def release(self) -> None:
        self.listener.close()
        self._on_closed(self)
