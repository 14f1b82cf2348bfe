"""Router: a media routing domain inside a worker (mediasoup's ``Router``).

Created by :meth:`controller.worker.Worker.create_router`. Events: ``workerclose`` (the worker
closed or died), and on :attr:`Router.observer` ``close`` and ``newtransport`` (transport).
Its transports (``create_webrtc_transport``, ``create_plain_transport``,
``create_pipe_transport``, ``create_direct_transport``) close with it and emit ``routerclose``
(and their producers and consumers ``transportclose``). :meth:`Router.can_consume` asks the
worker, which does the capability negotiation, whether a producer can be consumed.

:meth:`Router.pipe_to_router` makes one of its producers available in another router, on
another worker: it keeps one connected pair of pipe transports per pair of routers
(created on first use, forgotten when either closes), consumes the producer on this side and
produces it, with the same id, on the other, and keeps the two in step (pause, resume, close).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import uuid
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, TypeVar

from controller.channel import Channel, ChannelEntity, expect_map
from controller.consumer import Consumer
from controller.direct_transport import DirectTransport
from controller.errors import (
    ControllerError,
    ControllerTypeError,
    InvalidStateError,
    RequestTimeoutError,
)
from controller.pipe_transport import PipeTransport
from controller.plain_transport import PlainTransport, check_listen_info
from controller.producer import Producer
from controller.transport import Transport
from controller.webrtc_server import WebRtcServer, check_listen_infos
from controller.webrtc_transport import WebRtcTransport

__all__ = ["DEFAULT_PIPE_LISTEN_INFO", "PipeToRouterResult", "Router"]

T = TypeVar("T", bound=Transport)

logger = logging.getLogger("mediaworker.controller")

# Where pipe_to_router's transports listen unless told otherwise: both routers in one host.
DEFAULT_PIPE_LISTEN_INFO: Final[Mapping[str, Any]] = {"protocol": "udp", "ip": "127.0.0.1"}
DEFAULT_MAX_MESSAGE_SIZE: Final = 262144

# A pair of connected pipe transports by router id, shared by the two routers' caches while it
# is being created (so that concurrent pipe_to_router calls create one pair).
_PipePair = asyncio.Future[dict[str, PipeTransport]]


@dataclass(frozen=True, slots=True)
class PipeToRouterResult:
    """What :meth:`Router.pipe_to_router` made: the consumer of the producer on this router's
    pipe transport, and the producer (with the same id) on the other router's."""

    pipe_consumer: Consumer
    pipe_producer: Producer


def _check_flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ControllerTypeError(f"{name} must be a bool")
    return value


def _check_app_data(app_data: Any) -> None:
    if app_data is not None and not isinstance(app_data, dict):
        raise ControllerTypeError("app_data must be a dict")


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
        # Pipe transport pairs towards other routers, by the other router's id.
        self._pipe_pairs: dict[str, _PipePair] = {}

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

        transport = await self._create_transport(WebRtcTransport, method, data, app_data)
        self._keep_transport(transport, announce=False)
        if webrtc_server is not None:
            if webrtc_server.closed:  # closed while the request was in flight
                transport._listen_server_closed()
                return transport
            webrtc_server._handle_webrtc_transport(transport)
        self.observer.emit("newtransport", transport)
        return transport

    async def create_plain_transport(
        self,
        *,
        listen_info: Mapping[str, Any],
        rtcp_listen_info: Mapping[str, Any] | None = None,
        rtcp_mux: bool = True,
        comedia: bool = False,
        enable_srtp: bool = False,
        srtp_crypto_suite: str | None = None,
        enable_sctp: bool = False,
        app_data: dict[str, Any] | None = None,
    ) -> PlainTransport:
        """``router.createPlainTransport``: plain RTP (optionally SRTP) on one UDP socket, or
        two when ``rtcp_mux`` is False (the RTCP one on ``rtcp_listen_info``, by default
        ``listen_info`` with another port). With ``comedia`` the remote address is learned from
        the first packet received. Bad arguments raise :class:`ControllerTypeError` before
        anything is sent; the worker's refusals pass through (SCTP is not implemented)."""
        method = "router.createPlainTransport"
        transport_id = str(uuid.uuid4())
        data: dict[str, Any] = {
            "transportId": transport_id,
            "listenInfo": check_listen_info(listen_info),
            "rtcpMux": _check_flag(rtcp_mux, "rtcp_mux"),
            "comedia": _check_flag(comedia, "comedia"),
            "enableSrtp": _check_flag(enable_srtp, "enable_srtp"),
            "enableSctp": _check_flag(enable_sctp, "enable_sctp"),
        }
        if rtcp_listen_info is not None:
            data["rtcpListenInfo"] = check_listen_info(rtcp_listen_info, "rtcp_listen_info")
        if srtp_crypto_suite is not None:
            if not isinstance(srtp_crypto_suite, str) or not srtp_crypto_suite:
                raise ControllerTypeError("srtp_crypto_suite must be a non-empty str")
            data["srtpCryptoSuite"] = srtp_crypto_suite
        _check_app_data(app_data)
        transport = await self._create_transport(PlainTransport, method, data, app_data)
        self._keep_transport(transport)
        return transport

    async def create_pipe_transport(
        self,
        *,
        listen_info: Mapping[str, Any],
        enable_rtx: bool = False,
        enable_srtp: bool = False,
        enable_sctp: bool = False,
        app_data: dict[str, Any] | None = None,
    ) -> PipeTransport:
        """``router.createPipeTransport``: one UDP socket towards another router's pipe
        transport (see :meth:`pipe_to_router`, which makes and connects such pairs). With
        ``enable_rtx`` its pipe consumers carry RTX and answer NACKs; with ``enable_srtp`` the
        pipe is SRTP, each side connecting with the other's ``srtp_parameters``."""
        method = "router.createPipeTransport"
        transport_id = str(uuid.uuid4())
        data: dict[str, Any] = {
            "transportId": transport_id,
            "listenInfo": check_listen_info(listen_info),
            "enableRtx": _check_flag(enable_rtx, "enable_rtx"),
            "enableSrtp": _check_flag(enable_srtp, "enable_srtp"),
            "enableSctp": _check_flag(enable_sctp, "enable_sctp"),
        }
        _check_app_data(app_data)
        transport = await self._create_transport(PipeTransport, method, data, app_data)
        self._keep_transport(transport)
        return transport

    async def create_direct_transport(
        self,
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        app_data: dict[str, Any] | None = None,
    ) -> DirectTransport:
        """``router.createDirectTransport``: media through the channel (``Producer.send``, the
        consumers' ``rtp`` event, ``send_rtcp`` and the ``rtcp`` event), no network."""
        method = "router.createDirectTransport"
        if (
            isinstance(max_message_size, bool)
            or not isinstance(max_message_size, int)
            or max_message_size <= 0
        ):
            raise ControllerTypeError("max_message_size must be a positive int")
        _check_app_data(app_data)
        transport_id = str(uuid.uuid4())
        data = {"transportId": transport_id, "maxMessageSize": max_message_size}
        transport = await self._create_transport(DirectTransport, method, data, app_data)
        self._keep_transport(transport)
        return transport

    async def _create_transport(self, cls: type[T], method: str, data: dict[str, Any],
                                app_data: dict[str, Any] | None) -> T:
        """Send ``method`` (``data["transportId"]`` names the new transport) and make the
        transport object from the worker's answer, unless the router closed meanwhile."""
        result = expect_map(await self._request(method, data), method)
        if self._closed:
            raise InvalidStateError(f"router closed while creating a transport [method:{method}]")
        return cls(channel=self._channel, transport_id=data["transportId"], router_id=self.id,
                   data=result, app_data=app_data)

    def _keep_transport(self, transport: Transport, *, announce: bool = True) -> None:
        """Hold a new transport until it closes; observer ``newtransport`` when ``announce``."""
        transport_id = transport.id
        self._transports[transport_id] = transport
        transport.once("@closed", lambda: self._transports.pop(transport_id, None))
        if announce:
            self.observer.emit("newtransport", transport)

    # -- pipe_to_router -------------------------------------------------------------------

    async def pipe_to_router(
        self,
        *,
        producer_id: str,
        router: Router,
        listen_info: Mapping[str, Any] | None = None,
        enable_rtx: bool = False,
        enable_srtp: bool = False,
        keep_id: bool | None = None,
    ) -> PipeToRouterResult:
        """Make the producer ``producer_id`` of this router available in ``router``, where
        consumers can then consume it by ``pipe_producer.id``.

        ``keep_id``: the pipe producer has the producer's id (the default when ``router`` is
        on another worker) or a new one (the default, and the only choice, when both routers
        are on the same worker, whose ids are unique across its routers, as mediasoup's
        ``keepId``).

        The first call for a pair of routers creates a pipe transport on each with
        ``listen_info`` (default :data:`DEFAULT_PIPE_LISTEN_INFO`; give the address the other
        side can reach, e.g. an ``announcedAddress``, across hosts), ``enable_rtx`` and
        ``enable_srtp``, and connects each to the other's tuple (and SRTP parameters); later
        calls, in either direction, reuse that pair and ignore these three arguments. When either
        transport closes, the other is closed and the pair forgotten.

        The producer is consumed on this router's pipe transport and produced, with the same id,
        kind, the pipe consumer's RTP parameters and its paused state, on the other router's.
        Then the producer's pause and resume reach the pipe producer, the producer's (or this
        side's) close closes the pipe producer, and the pipe producer's close closes the pipe
        consumer. Raises :class:`ControllerTypeError` for bad arguments or a producer this
        router does not have, :class:`InvalidStateError` for a closed router; the worker's
        refusals pass through (then nothing created for this producer stays open).
        """
        if not isinstance(producer_id, str) or not producer_id:
            raise ControllerTypeError("producer_id must be a non-empty str")
        if not isinstance(router, Router):
            raise ControllerTypeError("router must be a Router")
        if router is self:
            raise ControllerTypeError("cannot pipe a producer to its own router")
        same_worker = router._channel is self._channel
        if keep_id is None:
            keep_id = not same_worker
        _check_flag(keep_id, "keep_id")
        if keep_id and same_worker:
            raise ControllerTypeError("keep_id=True needs routers on different workers: ids "
                                      "are unique within a worker")
        info = check_listen_info(
            DEFAULT_PIPE_LISTEN_INFO if listen_info is None else listen_info
        )
        _check_flag(enable_rtx, "enable_rtx")
        _check_flag(enable_srtp, "enable_srtp")
        if self._closed:
            raise InvalidStateError("router closed [method:pipeToRouter]")
        if router.closed:
            raise InvalidStateError("destination router closed [method:pipeToRouter]")
        producer = self._find_producer(producer_id)
        if producer is None:
            raise ControllerTypeError(f"producer {producer_id} not found in router {self.id}")

        local, remote = await self._pipe_pair(
            router, info, enable_rtx=enable_rtx, enable_srtp=enable_srtp
        )
        pipe_consumer: Consumer | None = None
        pipe_producer: Producer | None = None
        try:
            pipe_consumer = await local.consume(producer_id=producer_id)
            pipe_producer = await remote.produce(
                producer_id=producer_id if keep_id else None,
                kind=pipe_consumer.kind,
                rtp_parameters=pipe_consumer.rtp_parameters,
                paused=pipe_consumer.producer_paused,
                app_data=producer.app_data,
            )
            if pipe_consumer.closed or producer.closed:
                raise InvalidStateError("the producer closed while it was being piped")
            # The producer may have been paused or resumed while the pipe producer was made.
            if pipe_consumer.producer_paused and not pipe_producer.paused:
                await pipe_producer.pause()
            elif not pipe_consumer.producer_paused and pipe_producer.paused:
                await pipe_producer.resume()
        except BaseException:
            if pipe_consumer is not None:
                await pipe_consumer.close()
            if pipe_producer is not None:
                await pipe_producer.close()
            raise
        _link_pipe(pipe_consumer, pipe_producer)
        return PipeToRouterResult(pipe_consumer=pipe_consumer, pipe_producer=pipe_producer)

    def _find_producer(self, producer_id: str) -> Producer | None:
        for transport in self._transports.values():
            producer = transport._producers.get(producer_id)
            if producer is not None:
                return producer
        return None

    async def _pipe_pair(
        self, router: Router, listen_info: dict[str, Any], *, enable_rtx: bool, enable_srtp: bool
    ) -> tuple[PipeTransport, PipeTransport]:
        """(this router's, ``router``'s) connected pipe transports, created on first use."""
        pending = self._pipe_pairs.get(router.id)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            self._pipe_pairs[router.id] = pending
            router._pipe_pairs[self.id] = pending
            try:
                pair = await self._create_pipe_pair(
                    router, listen_info, enable_rtx=enable_rtx, enable_srtp=enable_srtp
                )
            except BaseException as exc:
                self._forget_pipe_pair(router, pending)
                # Concurrent calls waiting for this pair fail with the same error (or, when this
                # call was cancelled, with one that says so); retrieved here, waiters or not.
                pending.set_exception(
                    exc
                    if isinstance(exc, Exception)
                    else ControllerError("creating the pipe transports was cancelled")
                )
                pending.exception()
                raise
            pending.set_result(pair)
        else:
            pair = await asyncio.shield(pending)
        return pair[self.id], pair[router.id]

    async def _create_pipe_pair(
        self, router: Router, listen_info: dict[str, Any], *, enable_rtx: bool, enable_srtp: bool
    ) -> dict[str, PipeTransport]:
        options: dict[str, Any] = {
            "listen_info": listen_info,
            "enable_rtx": enable_rtx,
            "enable_srtp": enable_srtp,
        }
        local = await self.create_pipe_transport(**options)
        remote: PipeTransport | None = None
        try:
            remote = await router.create_pipe_transport(**options)
            await local.connect(
                ip=_tuple_address(remote),
                port=int(remote.tuple.get("localPort", 0)),
                srtp_parameters=remote.srtp_parameters,
            )
            await remote.connect(
                ip=_tuple_address(local),
                port=int(local.tuple.get("localPort", 0)),
                srtp_parameters=local.srtp_parameters,
            )
        except BaseException:
            await local.close()
            if remote is not None:
                await remote.close()
            raise
        pair = {self.id: local, router.id: remote}
        pending = self._pipe_pairs.get(router.id)

        def closed(other: PipeTransport) -> Coroutine[Any, Any, None]:
            if pending is not None:
                self._forget_pipe_pair(router, pending)
            return other.close()  # the emitter runs it as a task; a no-op if closed already

        local.observer.once("close", lambda: closed(remote))
        remote.observer.once("close", lambda: closed(local))
        return pair

    def _forget_pipe_pair(self, router: Router, pending: _PipePair) -> None:
        if self._pipe_pairs.get(router.id) is pending:
            del self._pipe_pairs[router.id]
        if router._pipe_pairs.get(self.id) is pending:
            del router._pipe_pairs[self.id]

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


def _tuple_address(transport: PipeTransport) -> str:
    """The address the other side reaches ``transport`` at: its announced address, else its IP."""
    tuple_ = transport.tuple
    address = tuple_.get("localAddress") or tuple_.get("localIp")
    if not isinstance(address, str) or not address:
        raise ControllerError(f"pipe transport {transport.id} has no local address in its tuple")
    return address


def _link_pipe(pipe_consumer: Consumer, pipe_producer: Producer) -> None:
    """Keep a pipe producer in step with the pipe consumer that feeds it."""

    async def follow(paused: bool) -> None:
        if pipe_producer.closed:
            return
        try:
            if paused:
                await pipe_producer.pause()
            else:
                await pipe_producer.resume()
        except ControllerError as exc:
            logger.warning("pipe producer %s: pause/resume failed: %s", pipe_producer.id, exc)

    pipe_consumer.on("producerpause", lambda: follow(True))
    pipe_consumer.on("producerresume", lambda: follow(False))
    # However the pipe consumer closes (producerclose, transportclose, close()), and the other
    # way round.
    pipe_consumer.observer.once("close", pipe_producer.close)
    pipe_producer.observer.once("close", pipe_consumer.close)
