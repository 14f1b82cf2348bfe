"""Consumer: a producer's media sent to an endpoint through a transport (mediasoup's
``Consumer``).

Created by :meth:`controller.transport.Transport.consume`. Its state starts from the worker's
``transport.consume`` answer and is kept current from the worker's notifications. Events:
``transportclose`` (its transport closed, or the router or worker with it), ``producerclose``
(its producer closed: the worker closed the consumer already), ``producerpause``,
``producerresume``, ``score`` (dict), ``layerschange`` (dict or None), ``trace`` (dict), ``rtp``
(bytes, direct transports). Observer events: ``close``, ``pause``, ``resume``, ``score``,
``layerschange``, ``trace``. Internal events: ``@close`` (closed by :meth:`Consumer.close`) and
``@closed`` (closed by any path: tells its transport to forget it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from controller.channel import Channel, ChannelEntity, expect_map
from controller.errors import ControllerTypeError, InvalidStateError
from controller.producer import check_trace_types, stats_list

__all__ = ["Consumer"]


def _optional_map(value: Any) -> dict[str, Any] | None:
    return dict(value) if isinstance(value, dict) else None


class Consumer(ChannelEntity):
    """A consumer; its ``id`` is the handlerId the worker knows it by."""

    def __init__(
        self,
        *,
        channel: Channel,
        consumer_id: str,
        producer_id: str,
        transport_id: str,
        data: dict[str, Any],
        app_data: dict[str, Any] | None = None,
    ) -> None:
        """``data`` is the worker's ``transport.consume`` answer."""
        super().__init__(channel, consumer_id, app_data=app_data)
        self._producer_id = producer_id
        self._transport_id = transport_id
        self._media_kind = str(data.get("kind", ""))
        self._rtp_parameters: dict[str, Any] = _optional_map(data.get("rtpParameters")) or {}
        self._type = str(data.get("type", "simple"))
        self._paused = bool(data.get("paused", False))
        self._producer_paused = bool(data.get("producerPaused", False))
        self._priority = 1
        self._score: dict[str, Any] = _optional_map(data.get("score")) or {
            "score": 10,
            "producerScore": 10,
            "producerScores": [],
        }
        self._preferred_layers = _optional_map(data.get("preferredLayers"))
        self._current_layers: dict[str, Any] | None = None

    @property
    def producer_id(self) -> str:
        return self._producer_id

    @property
    def transport_id(self) -> str:
        return self._transport_id

    # As mediasoup, ``kind`` is the media kind here (see Producer.kind).
    @property
    def kind(self) -> str:  # type: ignore[override]
        """``"audio"`` or ``"video"``."""
        return self._media_kind

    @property
    def rtp_parameters(self) -> dict[str, Any]:
        """The consumer's RTP parameters as the worker computed them, for the endpoint."""
        return self._rtp_parameters

    @property
    def type(self) -> str:
        """``"simple"``, ``"simulcast"``, ``"svc"`` or ``"pipe"``."""
        return self._type

    @property
    def paused(self) -> bool:
        """Paused by :meth:`pause` (the producer's own pause is :attr:`producer_paused`)."""
        return self._paused

    @property
    def producer_paused(self) -> bool:
        return self._producer_paused

    @property
    def priority(self) -> int:
        return self._priority

    @property
    def score(self) -> dict[str, Any]:
        """``{score, producerScore, producerScores}``, as the worker last sent it."""
        return self._score

    @property
    def preferred_layers(self) -> dict[str, Any] | None:
        """``{spatialLayer, temporalLayer}``; None for simple consumers."""
        return self._preferred_layers

    @property
    def current_layers(self) -> dict[str, Any] | None:
        """The layers being sent, from ``layerschange``; None for simple consumers."""
        return self._current_layers

    # -- requests -------------------------------------------------------------------------

    async def _request(
        self, method: str, data: Mapping[str, Any] | None = None, *, handler_id: str | None = None
    ) -> Any:
        if self._closed:
            raise InvalidStateError(f"consumer closed [method:{method}]")
        return await super()._request(method, data, handler_id=handler_id)

    async def dump(self) -> dict[str, Any]:
        return expect_map(await self._request("consumer.dump"), "consumer.dump")

    async def get_stats(self) -> list[dict[str, Any]]:
        """``consumer.getStats``: its outbound-rtp entry, then its producer's inbound-rtp."""
        return stats_list(await self._request("consumer.getStats"), "consumer.getStats")

    async def pause(self) -> None:
        """Stop sending; observer ``pause`` unless it or its producer was paused already."""
        was_paused = self._paused
        await self._request("consumer.pause")
        self._paused = True
        if not was_paused and not self._producer_paused:
            self.observer.emit("pause")

    async def resume(self) -> None:
        """Send again; observer ``resume`` if it was paused and its producer is not."""
        was_paused = self._paused
        await self._request("consumer.resume")
        self._paused = False
        if was_paused and not self._producer_paused:
            self.observer.emit("resume")

    async def set_preferred_layers(
        self, *, spatial_layer: int, temporal_layer: int | None = None
    ) -> dict[str, Any] | None:
        """``consumer.setPreferredLayers``; returns (and stores) the worker's effective layers,
        None for simple consumers."""
        if isinstance(spatial_layer, bool) or not isinstance(spatial_layer, int):
            raise ControllerTypeError("spatial_layer must be an int")
        data: dict[str, Any] = {"spatialLayer": spatial_layer}
        if temporal_layer is not None:
            if isinstance(temporal_layer, bool) or not isinstance(temporal_layer, int):
                raise ControllerTypeError("temporal_layer must be an int")
            data["temporalLayer"] = temporal_layer
        result = await self._request("consumer.setPreferredLayers", data)
        self._preferred_layers = _optional_map(result)
        return self._preferred_layers

    async def set_priority(self, priority: int) -> None:
        """``consumer.setPriority``; stores the priority the worker answers."""
        if isinstance(priority, bool) or not isinstance(priority, int) or priority < 1:
            raise ControllerTypeError("priority must be a positive int")
        method = "consumer.setPriority"
        result = expect_map(await self._request(method, {"priority": priority}), method)
        answered = result.get("priority")
        self._priority = answered if isinstance(answered, int) else priority

    async def unset_priority(self) -> None:
        """Back to the default priority, 1."""
        await self.set_priority(1)

    async def request_key_frame(self) -> None:
        """``consumer.requestKeyFrame``: ask its producer's endpoint for a key frame."""
        await self._request("consumer.requestKeyFrame")

    async def enable_trace_event(self, types: Sequence[str] = ()) -> None:
        """``consumer.enableTraceEvent``: the worker emits ``trace`` for these types."""
        await self._request("consumer.enableTraceEvent", {"types": check_trace_types(types)})

    async def close(self) -> None:
        """Close the consumer (``transport.closeConsumer``). Closing twice is a no-op."""
        await self._close_through_parent("transport.closeConsumer", self._transport_id,
                                         {"consumerId": self.id})

    def _transport_closed(self) -> None:
        """Its transport closed (or the router or worker): the consumer is gone with it."""
        self._closed_with_parent("transportclose")

    # -- notifications --------------------------------------------------------------------

    def _on_notification(self, event: str, data: Any) -> None:
        if event == "producerclose":
            # The worker closed the consumer already: nothing is sent back.
            if not self._mark_closed():
                return
            self.emit("@closed")
            self.emit("producerclose")
            self.observer.emit("close")
        elif event == "producerpause":
            if self._producer_paused:
                return
            self._producer_paused = True
            self.emit("producerpause")
            if not self._paused:
                self.observer.emit("pause")
        elif event == "producerresume":
            if not self._producer_paused:
                return
            self._producer_paused = False
            self.emit("producerresume")
            if not self._paused:
                self.observer.emit("resume")
        elif event == "score":
            score = _optional_map(data) or {}
            self._score = score
            self.emit("score", score)
            self.observer.emit("score", score)
        elif event == "layerschange":
            self._current_layers = _optional_map(data)
            self.emit("layerschange", self._current_layers)
            self.observer.emit("layerschange", self._current_layers)
        elif event == "trace":
            body: dict[str, Any] = data if isinstance(data, dict) else {}
            self.emit("trace", body)
            self.observer.emit("trace", body)
        elif event == "rtp" and isinstance(data, bytes):
            self.emit("rtp", data)
        else:
            super()._on_notification(event, data)
