"""Router: the media routing domain that transports, producers and consumers live in.

It owns its transports and RTP observers (closing it closes them) and the RTP capabilities
computed from its ``mediaCodecs`` when it is created.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from worker.entity import Context, Entity, handles
from worker.ortc import generate_router_rtp_capabilities

__all__ = ["Router"]


class Router(Entity):
    kind = "router"

    def __init__(self, router_id: str, ctx: Context, media_codecs: Any,
                 on_closed: Callable[[Router], None]) -> None:
        super().__init__(router_id, ctx)
        # Validate first: a router that cannot be created is never registered.
        self.rtp_capabilities: dict[str, Any] = generate_router_rtp_capabilities(media_codecs)
        self._on_closed = on_closed
        self.transports: dict[str, Entity] = {}
        self.rtp_observers: dict[str, Entity] = {}
        ctx.registry.register(self)

    @handles("dump")
    def dump(self, data: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": self.id,
            "transportIds": list(self.transports),
            "rtpObserverIds": list(self.rtp_observers),
            "mapProducerIdConsumerIds": [],
            "mapConsumerIdProducerId": [],
            "mapProducerIdObserverIds": [],
            "mapDataProducerIdDataConsumerIds": [],
            "mapDataConsumerIdDataProducerId": [],
        }

    @handles("close")
    def close_request(self, data: dict[str, Any]) -> None:
        self.close()

    def close_children(self) -> None:
        for transport in list(self.transports.values()):
            transport.close()
        self.transports.clear()
        for observer in list(self.rtp_observers.values()):
            observer.close()
        self.rtp_observers.clear()

    def release(self) -> None:
        self._on_closed(self)
