"""Transport: the base of every transport a router holds (mediasoup's ``Transport``).

Created by a router (:meth:`controller.router.Router.create_webrtc_transport` for now). Events:
``routerclose`` (its router closed, or the worker with it), ``listenserverclose`` (the
WebRtcServer it was created through closed); on :attr:`Transport.observer`: ``close``.
Internal events: ``@close`` (closed by :meth:`Transport.close`, as mediasoup) and ``@closed``
(closed by any path: tells its router and its server to forget it).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from controller.channel import Channel, ChannelEntity, expect_map
from controller.errors import ControllerError, InvalidStateError

__all__ = ["Transport"]

logger = logging.getLogger("mediaworker.controller")


class Transport(ChannelEntity):
    """A transport; its ``id`` is the handlerId the worker knows it by."""

    kind: ClassVar[str] = "transport"

    def __init__(
        self,
        *,
        channel: Channel,
        transport_id: str,
        router_id: str,
        data: dict[str, Any],
        app_data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(channel, transport_id, app_data=app_data)
        self._router_id = router_id
        self._data = data

    @property
    def router_id(self) -> str:
        return self._router_id

    async def dump(self) -> dict[str, Any]:
        return expect_map(await self._request("transport.dump"), "transport.dump")

    async def get_stats(self) -> list[dict[str, Any]]:
        """``transport.getStats``; errors (e.g. "not implemented yet") pass through."""
        result = await self._request("transport.getStats")
        if isinstance(result, list):
            return [dict(entry) for entry in result if isinstance(entry, dict)]
        return [expect_map(result, "transport.getStats")]

    async def close(self) -> None:
        """Close the transport (``router.closeTransport``). Closing twice is a no-op."""
        if not self._mark_closed():
            return
        self._closed_locally()
        try:
            await self._channel.request(
                "router.closeTransport", self._router_id, {"transportId": self.id}
            )
        except InvalidStateError as exc:
            logger.debug("transport %s: router.closeTransport not sent: %s", self.id, exc)
        except ControllerError as exc:
            logger.warning("transport %s: router.closeTransport failed: %s", self.id, exc)
        finally:
            self.emit("@close")
            self.emit("@closed")
            self.observer.emit("close")

    def _router_closed(self) -> None:
        """The router closed (or the worker with it): the transport is gone with it."""
        if not self._mark_closed():
            return
        self._closed_locally()
        self.emit("@closed")
        self.emit("routerclose")
        self.observer.emit("close")

    def _listen_server_closed(self) -> None:
        """The WebRtcServer it listens through closed; the worker closed it already."""
        if not self._mark_closed():
            return
        self._closed_locally()
        self.emit("@closed")
        self.emit("listenserverclose")
        self.observer.emit("close")

    def _closed_locally(self) -> None:
        """Hook for subclasses: update local state when the transport closes, however."""
