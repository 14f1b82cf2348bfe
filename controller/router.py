"""Router: a media routing domain inside a worker (mediasoup's ``Router``).

Created by :meth:`controller.worker.Worker.create_router`. Events: ``workerclose`` (the worker
closed or died), and on :attr:`Router.observer` ``close``. Transports, producers and consumers
will hang off it as children that it closes when it closes.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from controller.channel import Channel, ChannelEntity, expect_map
from controller.errors import ControllerError, InvalidStateError

__all__ = ["Router"]

logger = logging.getLogger("mediaworker.controller")


class Router(ChannelEntity):
    """A router; its ``id`` is the handlerId the worker knows it by.

    Events: ``workerclose``; internal ``@close`` (tells the worker object to forget it).
    Observer events: ``close``.
    """

    kind: ClassVar[str] = "router"

    def __init__(
        self,
        *,
        channel: Channel,
        router_id: str,
        rtp_capabilities: dict[str, Any],
        app_data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(channel, router_id, app_data=app_data)
        self._rtp_capabilities = rtp_capabilities

    @property
    def rtp_capabilities(self) -> dict[str, Any]:
        """The router's RTP capabilities, as the worker computed them from its media codecs."""
        return self._rtp_capabilities

    async def dump(self) -> dict[str, Any]:
        return expect_map(await self._request("router.dump"), "router.dump")

    async def close(self) -> None:
        """Close the router in the worker (``worker.closeRouter``). Closing twice is a no-op."""
        if not self._mark_closed():
            return
        try:
            await self._channel.request("worker.closeRouter", "", {"routerId": self.id})
        except InvalidStateError as exc:
            logger.debug("router %s: worker.closeRouter not sent: %s", self.id, exc)
        except ControllerError as exc:
            logger.warning("router %s: worker.closeRouter failed: %s", self.id, exc)
        finally:
            self._closed_children()
            self.emit("@close")
            self.observer.emit("close")

    def _worker_closed(self) -> None:
        """The worker closed or died: the router is gone with it."""
        if not self._mark_closed():
            return
        self._closed_children()
        self.emit("workerclose")
        self.observer.emit("close")

    def _closed_children(self) -> None:
        """Hook for the children (transports, observers) that close with the router."""
