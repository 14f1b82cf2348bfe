"""Router: a media routing domain inside a worker (mediasoup's ``Router``).

Created by :meth:`controller.worker.Worker.create_router`. Events: ``workerclose`` (the worker
closed or died), and on :attr:`Router.observer` ``close`` and ``newtransport`` (transport).
Its transports (:meth:`Router.create_webrtc_transport`) close with it and emit ``routerclose``
(and their producers and consumers ``transportclose``). :meth:`Router.can_consume` asks the
worker, which does the capability negotiation, whether a producer can be consumed.
"""

from __future__ import annotations

import copy
import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from controller.channel import Channel, ChannelEntity, expect_map
from controller.errors import (
    ControllerError,
    ControllerTypeError,
    InvalidStateError,
    RequestTimeoutError,
)
from controller.transport import Transport
from controller.webrtc_server import WebRtcServer, check_listen_infos
from controller.webrtc_transport import WebRtcTransport

__all__ = ["Router"]

logger = logging.getLogger("mediaworker.controller")


class Router(ChannelEntity):
    """A router; its ``id`` is the handlerId the worker knows it by.

    Events: ``workerclose``; internal ``@close`` (tells the worker object to forget it).
    Observer events: ``close``, ``newtransport`` (transport).
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
        self._transports: dict[str, Transport] = {}

    @property
    def rtp_capabilities(self) -> dict[str, Any]:
        """The router's RTP capabilities, as the worker computed them from its media codecs."""
        return self._rtp_capabilities

    @property
    def transports(self) -> list[Transport]:
        """The router's open transports."""
        return list(self._transports.values())

    async def dump(self) -> dict[str, Any]:
        return expect_map(await self._request("router.dump"), "router.dump")

    async def can_consume(self, producer_id: str, rtp_capabilities: Mapping[str, Any]) -> bool:
        """``router.canConsume``: whether an endpoint with ``rtp_capabilities`` can consume the
        producer. As mediasoup, an unknown producer or capabilities the worker refuses give
        False (logged); a closed router or channel raises :class:`InvalidStateError`."""
        method = "router.canConsume"
        if not isinstance(producer_id, str) or not producer_id:
            raise ControllerTypeError("producer_id must be a non-empty str")
        if not isinstance(rtp_capabilities, Mapping):
            raise ControllerTypeError("rtp_capabilities must be a mapping")
        data = {"producerId": producer_id, "rtpCapabilities": copy.deepcopy(dict(rtp_capabilities))}
        try:
            result = await self._request(method, data)
        except (InvalidStateError, RequestTimeoutError):
            raise
        except ControllerError as exc:
            logger.error("router %s: %s failed: %s", self.id, method, exc)
            return False
        if not isinstance(result, bool):
            raise ControllerError(
                f"worker answered {method} with a {type(result).__name__}, expected a bool"
            )
        return result

    async def create_webrtc_transport(
        self,
        *,
        listen_infos: Sequence[Mapping[str, Any]] | None = None,
        webrtc_server: WebRtcServer | None = None,
        enable_udp: bool | None = None,
        enable_tcp: bool | None = None,
        prefer_udp: bool | None = None,
        prefer_tcp: bool | None = None,
        ice_consent_timeout: int | None = None,
        initial_available_outgoing_bitrate: int | None = None,
        app_data: dict[str, Any] | None = None,
    ) -> WebRtcTransport:
        """``router.createWebRtcTransport`` with its own ``listen_infos`` or through
        ``webrtc_server`` (exactly one of them). Bad arguments raise :class:`ControllerTypeError`
        before anything is sent; the worker's refusals pass through."""
        method = "router.createWebRtcTransport"
        if (listen_infos is None) == (webrtc_server is None):
            raise ControllerTypeError("give exactly one of listen_infos and webrtc_server")
        transport_id = str(uuid.uuid4())
        data: dict[str, Any] = {"transportId": transport_id}
        if webrtc_server is not None:
            if not isinstance(webrtc_server, WebRtcServer):
                raise ControllerTypeError("webrtc_server must be a WebRtcServer")
            if webrtc_server.closed:
                raise InvalidStateError(f"webRtcServer closed [method:{method}]")
            data["webRtcServerId"] = webrtc_server.id
        else:
            data["listenInfos"] = check_listen_infos(listen_infos)
        flags = {
            "enableUdp": enable_udp,
            "enableTcp": enable_tcp,
            "preferUdp": prefer_udp,
            "preferTcp": prefer_tcp,
        }
        for key, flag in flags.items():
            if flag is None:
                continue
            if not isinstance(flag, bool):
                raise ControllerTypeError(f"{key} must be a bool")
            data[key] = flag
        numbers = {
            "iceConsentTimeout": ice_consent_timeout,
            "initialAvailableOutgoingBitrate": initial_available_outgoing_bitrate,
        }
        for key, number in numbers.items():
            if number is None:
                continue
            if isinstance(number, bool) or not isinstance(number, int) or number < 0:
                raise ControllerTypeError(f"{key} must be a non-negative int")
            data[key] = number
        if app_data is not None and not isinstance(app_data, dict):
            raise ControllerTypeError("app_data must be a dict")

        result = expect_map(await self._request(method, data), method)
        if self._closed:
            raise InvalidStateError(f"router closed while creating a transport [method:{method}]")
        transport = WebRtcTransport(
            channel=self._channel,
            transport_id=transport_id,
            router_id=self.id,
            data=result,
            app_data=app_data,
        )
        self._transports[transport_id] = transport
        transport.once("@closed", lambda: self._transports.pop(transport_id, None))
        if webrtc_server is not None:
            if webrtc_server.closed:  # closed while the request was in flight
                transport._listen_server_closed()
                return transport
            webrtc_server._handle_webrtc_transport(transport)
        self.observer.emit("newtransport", transport)
        return transport

    async def close(self) -> None:
        """Close the router in the worker (``worker.closeRouter``). Closing twice is a no-op."""
        if not self._mark_closed():
            return
        # Its children close at once, as mediasoup: the notifications the worker sends while
        # closing them (a consumer's producerclose) must not reach them.
        self._closed_children()
        try:
            await self._channel.request("worker.closeRouter", "", {"routerId": self.id})
        except InvalidStateError as exc:
            logger.debug("router %s: worker.closeRouter not sent: %s", self.id, exc)
        except ControllerError as exc:
            logger.warning("router %s: worker.closeRouter failed: %s", self.id, exc)
        finally:
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
        """Close the children (transports) locally: each emits ``routerclose``."""
        transports, self._transports = self._transports, {}
        for transport in transports.values():
            transport._router_closed()
