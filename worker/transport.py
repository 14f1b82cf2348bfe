"""The base of every transport: identity, its router, what all transports dump, and close."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from worker.entity import Context, Entity, handles

__all__ = ["Transport"]


class Transport(Entity):
    kind = "transport"
    transport_type: ClassVar[str]  # mediasoup's stats type, e.g. "webrtc-transport"

    def __init__(self, transport_id: str, ctx: Context,
                 on_closed: Callable[[Transport], None]) -> None:
        super().__init__(transport_id, ctx)
        self._on_closed = on_closed

    def base_dump(self) -> dict[str, Any]:
        """The fields every transport's dump has (mediasoup's ``Transport::FillBuffer``)."""
        return {
            "id": self.id,
            "direct": False,
            "producerIds": [],
            "consumerIds": [],
            "mapSsrcConsumerId": [],
            "mapRtxSsrcConsumerId": [],
            "dataProducerIds": [],
            "dataConsumerIds": [],
            "recvRtpHeaderExtensions": {},
            "rtpListener": {"ssrcTable": [], "midTable": [], "ridTable": []},
            "maxMessageSize": 262144,
            "traceEventTypes": [],
        }

    @handles("close")
    def close_request(self, data: dict[str, Any]) -> None:
        self.close()

    def release(self) -> None:
        self.release_transport()
        self._on_closed(self)

    def release_transport(self) -> None:
        """Free what this kind of transport owns (subclasses)."""
