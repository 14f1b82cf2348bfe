"""Transport: the base of every transport a router holds (mediasoup's ``Transport``), and the
owner of the producers and consumers created on it.

Created by a router (``Router.create_webrtc_transport``, ``create_plain_transport``,
``create_pipe_transport``, ``create_direct_transport``). Events:
``routerclose`` (its router closed, or the worker with it), ``listenserverclose`` (the
WebRtcServer it was created through closed); on :attr:`Transport.observer`: ``close``,
``newproducer`` (producer), ``newconsumer`` (consumer). Internal events: ``@close`` (closed by
:meth:`Transport.close`, as mediasoup) and ``@closed`` (closed by any path: tells its router and
its server to forget it). However it closes, its producers and consumers close with it and emit
``transportclose``.
"""

from __future__ import annotations

import copy
import logging
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

from controller.channel import Channel, ChannelEntity, expect_map
from controller.consumer import Consumer
from controller.errors import ControllerError, ControllerTypeError, InvalidStateError
from controller.producer import Producer

__all__ = ["Transport"]

logger = logging.getLogger("mediaworker.controller")


def _check_app_data(app_data: Any) -> None:
    if app_data is not None and not isinstance(app_data, dict):
        raise ControllerTypeError("app_data must be a dict")


class _EarlyNotifications:
    """Holds the notifications for a new entity's id that arrive before the entity exists.

    The channel hands a response to the awaiting coroutine through a future but dispatches the
    notifications read with it at once; one the worker sent just after a ``transport.produce``
    or ``transport.consume`` answer would otherwise find no listener. Listening from before the
    request, and replaying into the new entity, keeps them in order.
    """

    def __init__(self, channel: Channel, handler_id: str) -> None:
        self._channel = channel
        self._handler_id = handler_id
        self._held: list[tuple[str, Any]] = []

    def __enter__(self) -> _EarlyNotifications:
        self._channel.add_listener(self._handler_id, self._hold)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._channel.remove_listener(self._handler_id, self._hold)

    def _hold(self, event: str, data: Any) -> None:
        self._held.append((event, data))

    def replay(self, entity: ChannelEntity) -> None:
        """Deliver the held notifications to ``entity``, while it stays open."""
        held, self._held = self._held, []
        for event, data in held:
            if entity.closed:
                break
            entity._on_notification(event, data)


class Transport(ChannelEntity):
    """A transport; its ``id`` is the handlerId the worker knows it by."""

    kind: ClassVar[str] = "transport"
    # Whether its producers take RTP through Producer.send (DirectTransport).
    _direct: ClassVar[bool] = False

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
        self._producers: dict[str, Producer] = {}
        self._consumers: dict[str, Consumer] = {}

    @property
    def router_id(self) -> str:
        return self._router_id

    @property
    def producers(self) -> list[Producer]:
        """The transport's open producers."""
        return list(self._producers.values())

    @property
    def consumers(self) -> list[Consumer]:
        """The transport's open consumers."""
        return list(self._consumers.values())

    async def dump(self) -> dict[str, Any]:
        return expect_map(await self._request("transport.dump"), "transport.dump")

    async def get_stats(self) -> list[dict[str, Any]]:
        """``transport.getStats``; errors (e.g. "not implemented yet") pass through."""
        result = await self._request("transport.getStats")
        if isinstance(result, list):
            return [dict(entry) for entry in result if isinstance(entry, dict)]
        return [expect_map(result, "transport.getStats")]

    async def produce(
        self,
        *,
        kind: str,
        rtp_parameters: Mapping[str, Any],
        paused: bool = False,
        key_frame_request_delay: int = 0,
        producer_id: str | None = None,
        app_data: dict[str, Any] | None = None,
    ) -> Producer:
        """``transport.produce``: receive media the endpoint sends with ``rtp_parameters`` (as
        mediasoup-client or pymediasoup built them). Bad arguments raise
        :class:`ControllerTypeError` before anything is sent; the worker's refusals pass
        through (e.g. :class:`UnsupportedError` for codecs the router does not have)."""
        method = "transport.produce"
        if kind not in ("audio", "video"):
            raise ControllerTypeError('kind must be "audio" or "video"')
        if not isinstance(rtp_parameters, Mapping):
            raise ControllerTypeError("rtp_parameters must be a mapping")
        if not isinstance(paused, bool):
            raise ControllerTypeError("paused must be a bool")
        if (
            isinstance(key_frame_request_delay, bool)
            or not isinstance(key_frame_request_delay, int)
            or key_frame_request_delay < 0
        ):
            raise ControllerTypeError("key_frame_request_delay must be a non-negative int")
        if producer_id is None:
            producer_id = str(uuid.uuid4())
        elif not isinstance(producer_id, str) or not producer_id:
            raise ControllerTypeError("producer_id must be a non-empty str")
        _check_app_data(app_data)
        params = copy.deepcopy(dict(rtp_parameters))
        data = {
            "producerId": producer_id,
            "kind": kind,
            "rtpParameters": params,
            "paused": paused,
            "keyFrameRequestDelay": key_frame_request_delay,
        }
        with _EarlyNotifications(self._channel, producer_id) as early:
            result = expect_map(await self._request(method, data), method)
        producer = Producer(
            channel=self._channel,
            producer_id=producer_id,
            transport_id=self.id,
            media_kind=kind,
            rtp_parameters=params,
            producer_type=str(result.get("type", "simple")),
            paused=paused,
            direct=self._direct,
            app_data=app_data,
        )
        if self._closed:  # closed while the request was in flight
            producer._transport_closed()
            raise InvalidStateError(f"transport closed while producing [method:{method}]")
        self._producers[producer_id] = producer
        producer.once("@closed", lambda: self._producers.pop(producer_id, None))
        self.observer.emit("newproducer", producer)
        early.replay(producer)
        return producer

    async def consume(
        self,
        *,
        producer_id: str,
        rtp_capabilities: Mapping[str, Any],
        paused: bool = False,
        mid: str | None = None,
        preferred_layers: Mapping[str, Any] | None = None,
        enable_rtx: bool | None = None,
        ignore_dtx: bool = False,
        app_data: dict[str, Any] | None = None,
    ) -> Consumer:
        """``transport.consume``: send the producer's media to the endpoint whose
        ``rtp_capabilities`` are given. The consumer's ``rtp_parameters`` (the worker's answer)
        go unchanged to the endpoint's client library. Capabilities that cannot consume raise
        :class:`UnsupportedError`, an unknown producer :class:`ControllerError` (the worker's
        answers)."""
        if not isinstance(producer_id, str) or not producer_id:
            raise ControllerTypeError("producer_id must be a non-empty str")
        if not isinstance(rtp_capabilities, Mapping):
            raise ControllerTypeError("rtp_capabilities must be a mapping")
        if not isinstance(paused, bool):
            raise ControllerTypeError("paused must be a bool")
        if mid is not None and (not isinstance(mid, str) or not mid):
            raise ControllerTypeError("mid must be a non-empty str")
        if preferred_layers is not None and not isinstance(preferred_layers, Mapping):
            raise ControllerTypeError("preferred_layers must be a mapping")
        if enable_rtx is not None and not isinstance(enable_rtx, bool):
            raise ControllerTypeError("enable_rtx must be a bool")
        if not isinstance(ignore_dtx, bool):
            raise ControllerTypeError("ignore_dtx must be a bool")
        _check_app_data(app_data)
        data: dict[str, Any] = {
            "rtpCapabilities": copy.deepcopy(dict(rtp_capabilities)),
            "paused": paused,
            "ignoreDtx": ignore_dtx,
        }
        if mid is not None:
            data["mid"] = mid
        if preferred_layers is not None:
            data["preferredLayers"] = dict(preferred_layers)
        if enable_rtx is not None:
            data["enableRtx"] = enable_rtx
        return await self._consume(producer_id, data, app_data)

    async def _consume(
        self, producer_id: str, options: dict[str, Any], app_data: dict[str, Any] | None
    ) -> Consumer:
        """Send ``transport.consume`` with ``options`` (checked by the caller) and keep the new
        consumer."""
        method = "transport.consume"
        consumer_id = str(uuid.uuid4())
        data: dict[str, Any] = {"consumerId": consumer_id, "producerId": producer_id, **options}
        with _EarlyNotifications(self._channel, consumer_id) as early:
            result = expect_map(await self._request(method, data), method)
        consumer = Consumer(
            channel=self._channel,
            consumer_id=consumer_id,
            producer_id=producer_id,
            transport_id=self.id,
            data=result,
            app_data=app_data,
        )
        if self._closed:  # closed while the request was in flight
            consumer._transport_closed()
            raise InvalidStateError(f"transport closed while consuming [method:{method}]")
        self._consumers[consumer_id] = consumer
        consumer.once("@closed", lambda: self._consumers.pop(consumer_id, None))
        self.observer.emit("newconsumer", consumer)
        early.replay(consumer)
        return consumer

    async def close(self) -> None:
        """Close the transport (``router.closeTransport``). Closing twice is a no-op."""
        if not self._mark_closed():
            return
        self._closed_locally()
        self._close_children()
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
        self._close_children()
        self.emit("@closed")
        self.emit("routerclose")
        self.observer.emit("close")

    def _listen_server_closed(self) -> None:
        """The WebRtcServer it listens through closed; the worker closed it already."""
        if not self._mark_closed():
            return
        self._closed_locally()
        self._close_children()
        self.emit("@closed")
        self.emit("listenserverclose")
        self.observer.emit("close")

    def _closed_locally(self) -> None:
        """Hook for subclasses: update local state when the transport closes, however."""

    def _close_children(self) -> None:
        """Close the producers and consumers locally: each emits ``transportclose`` (the worker
        closes them with the transport)."""
        producers, self._producers = self._producers, {}
        for producer in producers.values():
            producer._transport_closed()
        consumers, self._consumers = self._consumers, {}
        for consumer in consumers.values():
            consumer._transport_closed()
