"""Router: the media routing domain that transports, producers and consumers live in.

It owns its transports and RTP observers (closing it closes them) and the RTP capabilities
computed from its ``mediaCodecs`` when it is created.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from worker.direct_transport import DirectTransport
from worker.entity import Context, Entity, handles, require_str
from worker.errors import WorkerError
from worker.ortc import generate_router_rtp_capabilities
from worker.ortc_consume import can_consume
from worker.pipe_transport import PipeTransport
from worker.plain_transport import PlainTransport
from worker.producer import Producer
from worker.transport import Transport
from worker.webrtc_transport import WebRtcTransport

__all__ = ["Router"]


class Router(Entity):
    kind = "router"

    def __init__(self, router_id: str, ctx: Context, media_codecs: Any,
                 on_closed: Callable[[Router], None]) -> None:
        super().__init__(router_id, ctx)
        # Validate first: a router that cannot be created is never registered.
        self.rtp_capabilities: dict[str, Any] = generate_router_rtp_capabilities(media_codecs)
        self._on_closed = on_closed
        self.transports: dict[str, Transport] = {}
        self.rtp_observers: dict[str, Entity] = {}
        self.producers: dict[str, Producer] = {}
        ctx.registry.register(self)

    @handles("dump")
    def dump(self, data: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": self.id,
            "transportIds": list(self.transports),
            "rtpObserverIds": list(self.rtp_observers),
            "mapProducerIdConsumerIds": [
                {"key": pid, "values": list(p.consumers)} for pid, p in self.producers.items()],
            "mapConsumerIdProducerId": [
                {"key": cid, "value": pid} for pid, p in self.producers.items()
                for cid in p.consumers],
            "mapProducerIdObserverIds": [],
            "mapDataProducerIdDataConsumerIds": [],
            "mapDataConsumerIdDataProducerId": [],
        }

    @handles("close")
    def close_request(self, data: dict[str, Any]) -> None:
        self.close()

    @handles("createWebRtcTransport")
    def create_webrtc_transport(self, data: dict[str, Any]) -> dict[str, Any]:
        return self._create_transport(WebRtcTransport, data)

    @handles("createPlainTransport")
    def create_plain_transport(self, data: dict[str, Any]) -> dict[str, Any]:
        return self._create_transport(PlainTransport, data)

    @handles("createPipeTransport")
    def create_pipe_transport(self, data: dict[str, Any]) -> dict[str, Any]:
        return self._create_transport(PipeTransport, data)

    @handles("createDirectTransport")
    def create_direct_transport(self, data: dict[str, Any]) -> dict[str, Any]:
        return self._create_transport(DirectTransport, data)

    def _create_transport(self, cls: type[WebRtcTransport | PlainTransport | PipeTransport
                                           | DirectTransport],
                          data: dict[str, Any]) -> dict[str, Any]:
        transport_id = require_str(data, "transportId")
        self.ctx.registry.check_free(transport_id)
        transport = cls(transport_id, self.ctx, data, self._transport_closed)
        transport.router = self
        self.transports[transport_id] = transport
        self.ctx.logger.debug(f"{cls.transport_type} created [transportId:{transport_id}]",
                              tag="info")
        dump: dict[str, Any] = transport.dump({})
        return dump

    @handles("closeTransport")
    def close_transport(self, data: dict[str, Any]) -> None:
        transport_id = require_str(data, "transportId")
        transport = self.transports.get(transport_id)
        if transport is None:
            raise WorkerError(f"transport {transport_id!r} not found")
        transport.close()

    @handles("canConsume")
    def can_consume(self, data: dict[str, Any]) -> bool:
        producer_id = require_str(data, "producerId")
        producer = self.producers.get(producer_id)
        if producer is None:
            raise WorkerError(f"producer not found [producerId:{producer_id}]")
        return can_consume(producer.consumable_rtp_parameters, data.get("rtpCapabilities"))

    def producer_added(self, producer: Producer) -> None:
        self.producers[producer.id] = producer

    def producer_removed(self, producer: Producer) -> None:
        self.producers.pop(producer.id, None)

    def _transport_closed(self, transport: Transport) -> None:
        self.transports.pop(transport.id, None)

    def close_children(self) -> None:
        for transport in list(self.transports.values()):
            transport.close()
        self.transports.clear()
        for observer in list(self.rtp_observers.values()):
            observer.close()
        self.rtp_observers.clear()

    def release(self) -> None:
        self._on_closed(self)
