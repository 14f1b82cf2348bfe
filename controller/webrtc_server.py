"""WebRtcServer: UDP sockets and TCP servers that many WebRtcTransports share (mediasoup's
``WebRtcServer``).

Created by :meth:`controller.worker.Worker.create_webrtc_server`. Events: ``workerclose`` (the
worker closed or died). Observer events: ``close``, ``webrtctransporthandled`` (transport: a
transport was created through it) and ``webrtctransportunhandled`` (transport: that transport
closed). Closing the server closes its transports: they emit ``listenserverclose`` and, on their
observer, ``close``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from controller.channel import Channel, ChannelEntity, expect_map
from controller.errors import ControllerError, ControllerTypeError, InvalidStateError

if TYPE_CHECKING:
    from controller.webrtc_transport import WebRtcTransport

__all__ = ["WebRtcServer", "check_listen_infos"]

logger = logging.getLogger("mediaworker.controller")


def check_listen_infos(listen_infos: Any, what: str = "listen_infos") -> list[dict[str, Any]]:
    """``listen_infos`` as a list of dicts; :class:`ControllerTypeError` unless it is a
    non-empty sequence of mappings (the worker checks the fields)."""
    if isinstance(listen_infos, (str, bytes)) or not isinstance(listen_infos, Sequence):
        raise ControllerTypeError(f"{what} must be a sequence of listen info mappings")
    if not listen_infos:
        raise ControllerTypeError(f"{what} must not be empty")
    infos: list[dict[str, Any]] = []
    for info in listen_infos:
        if not isinstance(info, Mapping):
            raise ControllerTypeError(f"each entry of {what} must be a mapping")
        infos.append(dict(info))
    return infos


class WebRtcServer(ChannelEntity):
    """A WebRtcServer; its ``id`` is the handlerId the worker knows it by.

    Internal event ``@close`` tells the worker object to forget it.
    """

    kind: ClassVar[str] = "webRtcServer"

    def __init__(
        self, *, channel: Channel, webrtc_server_id: str, app_data: dict[str, Any] | None = None
    ) -> None:
        super().__init__(channel, webrtc_server_id, app_data=app_data)
        self._transports: dict[str, WebRtcTransport] = {}

    @property
    def webrtc_transports(self) -> list[WebRtcTransport]:
        """The open transports created through this server."""
        return list(self._transports.values())

    async def dump(self) -> dict[str, Any]:
        return expect_map(await self._request("webRtcServer.dump"), "webRtcServer.dump")

    async def close(self) -> None:
        """Close the server (``worker.closeWebRtcServer``) and, locally, its transports.
        Closing twice is a no-op."""
        if not self._mark_closed():
            return
        # Its transports close locally first (as a router's do): their producers' and
        # consumers' close is ``transportclose``, not the worker's ``producerclose`` that the
        # close request makes other consumers of them hear.
        transports, self._transports = self._transports, {}
        for transport in transports.values():
            transport._listen_server_closed()
        try:
            await self._channel.request(
                "worker.closeWebRtcServer", "", {"webRtcServerId": self.id}
            )
        except InvalidStateError as exc:
            logger.debug("webRtcServer %s: worker.closeWebRtcServer not sent: %s", self.id, exc)
        except ControllerError as exc:
            logger.warning("webRtcServer %s: worker.closeWebRtcServer failed: %s", self.id, exc)
        finally:
            self.emit("@close")
            self.observer.emit("close")

    def _worker_closed(self) -> None:
        """The worker closed or died: the server is gone with it (its transports close with
        their routers)."""
        if not self._mark_closed():
            return
        self._transports.clear()
        self.emit("workerclose")
        self.observer.emit("close")

    def _handle_webrtc_transport(self, transport: WebRtcTransport) -> None:
        """Track a transport created through this server."""
        self._transports[transport.id] = transport
        self.observer.emit("webrtctransporthandled", transport)

        def unhandled() -> None:
            self._transports.pop(transport.id, None)
            self.observer.emit("webrtctransportunhandled", transport)

        transport.once("@closed", unhandled)
