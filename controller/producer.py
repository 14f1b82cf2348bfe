"""Producer: media an endpoint sends into a router through a transport (mediasoup's ``Producer``).

Created by :meth:`controller.transport.Transport.produce`. On a DirectTransport,
:meth:`Producer.send` injects its RTP packets. Events: ``transportclose`` (its
transport closed, or the router or worker with it), ``score`` (list of per-encoding scores),
``videoorientationchange`` (dict), ``trace`` (dict). Observer events: ``close``, ``pause``,
``resume``, ``score``, ``videoorientationchange``, ``trace``. Internal events: ``@close``
(closed by :meth:`Producer.close`) and ``@closed`` (closed by any path: tells its transport to
forget it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from controller.channel import Channel, ChannelEntity, expect_map
from controller.errors import ControllerTypeError, InvalidStateError

__all__ = ["Producer", "check_trace_types", "stats_list"]


def check_trace_types(types: Sequence[str]) -> list[str]:
    """``types`` as a list of str; :class:`ControllerTypeError` unless it is a sequence of str
    (the worker checks the names)."""
    if isinstance(types, (str, bytes)) or not isinstance(types, Sequence):
        raise ControllerTypeError("types must be a sequence of str")
    if not all(isinstance(t, str) for t in types):
        raise ControllerTypeError("each trace event type must be a str")
    return list(types)


def stats_list(result: Any, method: str) -> list[dict[str, Any]]:
    """A ``getStats`` answer as a list of stats dicts."""
    if isinstance(result, list):
        return [dict(entry) for entry in result if isinstance(entry, dict)]
    return [expect_map(result, method)]


class Producer(ChannelEntity):
    """A producer; its ``id`` is the handlerId the worker knows it by."""

    def __init__(
        self,
        *,
        channel: Channel,
        producer_id: str,
        transport_id: str,
        media_kind: str,
        rtp_parameters: dict[str, Any],
        producer_type: str,
        paused: bool,
        direct: bool = False,
        app_data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(channel, producer_id, app_data=app_data)
        self._direct = direct
        self._transport_id = transport_id
        self._media_kind = media_kind
        self._rtp_parameters = rtp_parameters
        self._type = producer_type
        self._paused = paused
        self._score: list[dict[str, Any]] = []

    # As mediasoup, ``kind`` is the media kind here, not the entity kind that ChannelEntity's
    # class attribute of that name holds for the other entities.
    @property
    def kind(self) -> str:  # type: ignore[override]
        """``"audio"`` or ``"video"``."""
        return self._media_kind

    @property
    def transport_id(self) -> str:
        return self._transport_id

    @property
    def rtp_parameters(self) -> dict[str, Any]:
        """The RTP parameters the endpoint sent (as given to :meth:`Transport.produce`)."""
        return self._rtp_parameters

    @property
    def type(self) -> str:
        """``"simple"``, ``"simulcast"`` or ``"svc"`` (the worker's answer)."""
        return self._type

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def score(self) -> list[dict[str, Any]]:
        """The last ``score`` the worker sent: ``[{encodingIdx, ssrc, rid, score}]``."""
        return self._score

    # -- requests -------------------------------------------------------------------------

    async def _request(
        self, method: str, data: Mapping[str, Any] | None = None, *, handler_id: str | None = None
    ) -> Any:
        if self._closed:
            raise InvalidStateError(f"producer closed [method:{method}]")
        return await super()._request(method, data, handler_id=handler_id)

    async def dump(self) -> dict[str, Any]:
        return expect_map(await self._request("producer.dump"), "producer.dump")

    async def get_stats(self) -> list[dict[str, Any]]:
        """``producer.getStats``: one inbound-rtp entry per stream."""
        return stats_list(await self._request("producer.getStats"), "producer.getStats")

    async def pause(self) -> None:
        """Stop forwarding the producer's media; observer ``pause`` if it was not paused."""
        was_paused = self._paused
        await self._request("producer.pause")
        self._paused = True
        if not was_paused:
            self.observer.emit("pause")

    async def resume(self) -> None:
        """Forward the producer's media again; observer ``resume`` if it was paused."""
        was_paused = self._paused
        await self._request("producer.resume")
        self._paused = False
        if was_paused:
            self.observer.emit("resume")

    def send(self, rtp_packet: bytes | bytearray | memoryview) -> None:
        """Inject one RTP packet (a ``producer.send`` notification: no answer; the worker drops
        and counts a packet it cannot parse or map). Only for producers on a DirectTransport:
        others raise :class:`InvalidStateError`, as a closed producer does."""
        if not isinstance(rtp_packet, (bytes, bytearray, memoryview)):
            raise ControllerTypeError("rtp_packet must be bytes")
        if self._closed:
            raise InvalidStateError("producer closed [event:producer.send]")
        if not self._direct:
            raise InvalidStateError(
                "producer.send needs a producer on a DirectTransport [event:producer.send]"
            )
        self._channel.notify("producer.send", self.id, bytes(rtp_packet))

    async def enable_trace_event(self, types: Sequence[str] = ()) -> None:
        """``producer.enableTraceEvent``: the worker emits ``trace`` for these types."""
        await self._request("producer.enableTraceEvent", {"types": check_trace_types(types)})

    async def close(self) -> None:
        """Close the producer (``transport.closeProducer``). Closing twice is a no-op."""
        await self._close_through_parent("transport.closeProducer", self._transport_id,
                                         {"producerId": self.id})

    def _transport_closed(self) -> None:
        """Its transport closed (or the router or worker): the producer is gone with it."""
        self._closed_with_parent("transportclose")

    # -- notifications --------------------------------------------------------------------

    def _on_notification(self, event: str, data: Any) -> None:
        if event == "score":
            entries = data if isinstance(data, list) else []
            score = [dict(entry) for entry in entries if isinstance(entry, dict)]
            self._score = score
            self.emit("score", score)
            self.observer.emit("score", score)
        elif event in ("videoorientationchange", "trace"):
            body: dict[str, Any] = data if isinstance(data, dict) else {}
            self.emit(event, body)
            self.observer.emit(event, body)
        else:
            super()._on_notification(event, data)
