"""The Worker entity: the root of the entity tree and the handler of ``worker.*`` requests.

It owns the routers and WebRtcServers, and answers ``dump`` with the channel counters and the
buffer pools, so that a controller can see a leak the moment it starts (PROTOCOL.md section 7).
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable
from typing import Any

from channel.messages import Notification, Request
from worker import __version__
from worker.channel_endpoint import ChannelCounters
from worker.entity import Context, Entity, handles, require_str
from worker.errors import WorkerError, WorkerTypeError
from worker.router import Router
from worker.settings import SettingsError, check_log_level, check_log_tags
from worker.webrtc_server import WebRtcServer

__all__ = ["Worker", "resource_usage"]


def resource_usage() -> dict[str, int]:
    """``getrusage`` of the worker process, as mediasoup reports it (times in milliseconds)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "ru_utime": int(ru.ru_utime * 1000),
        "ru_stime": int(ru.ru_stime * 1000),
        "ru_maxrss": ru.ru_maxrss,
        "ru_ixrss": ru.ru_ixrss,
        "ru_idrss": ru.ru_idrss,
        "ru_isrss": ru.ru_isrss,
        "ru_minflt": ru.ru_minflt,
        "ru_majflt": ru.ru_majflt,
        "ru_nswap": ru.ru_nswap,
        "ru_inblock": ru.ru_inblock,
        "ru_oublock": ru.ru_oublock,
        "ru_msgsnd": ru.ru_msgsnd,
        "ru_msgrcv": ru.ru_msgrcv,
        "ru_nsignals": ru.ru_nsignals,
        "ru_nvcsw": ru.ru_nvcsw,
        "ru_nivcsw": ru.ru_nivcsw,
    }


class Worker(Entity):
    kind = "worker"

    def __init__(self, ctx: Context, counters: ChannelCounters,
                 on_close_requested: Callable[[], None]) -> None:
        super().__init__("", ctx)
        self._counters = counters
        self._on_close_requested = on_close_requested
        self.routers: dict[str, Router] = {}
        self.webrtc_servers: dict[str, WebRtcServer] = {}

    # -- dispatch -------------------------------------------------------------------------

    def dispatch_request(self, request: Request) -> Any:
        """Route a request: ``worker.*`` here, everything else by handlerId."""
        kind, _, method = request.method.partition(".")
        if kind == "worker":
            return self.handle_request(method, request.data)
        target = self.ctx.registry.get(request.handler_id)
        if target is None:
            raise WorkerError(f"no entity with handlerId {request.handler_id!r}")
        if not _kind_matches(target.kind, kind):
            raise WorkerError(f"method {request.method} does not apply to a {target.kind}")
        return target.handle_request(method, request.data)

    def dispatch_notification(self, notification: Notification) -> None:
        target = self.ctx.registry.get(notification.handler_id)
        if target is None:
            raise WorkerError(f"no entity with handlerId {notification.handler_id!r}")
        handle = getattr(target, "handle_notification", None)
        if handle is None:
            raise WorkerError(f"{target.kind} takes no notification {notification.event}")
        handle(notification.event, notification.data)

    # -- worker.* requests ----------------------------------------------------------------

    @handles("close")
    def close_request(self, data: dict[str, Any]) -> None:
        self._on_close_requested()

    @handles("dump")
    def dump(self, data: dict[str, Any]) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "version": __version__,
            "webRtcServerIds": list(self.webrtc_servers),
            "routerIds": list(self.routers),
            "channelMessageHandlers": {
                "channelRequestHandlers": self.ctx.registry.ids(),
                "channelNotificationHandlers": [],
            },
            "channel": self._counters.dump(),
            "bufferPools": self.ctx.pools.dump(),
        }

    @handles("getResourceUsage")
    def get_resource_usage(self, data: dict[str, Any]) -> dict[str, int]:
        return resource_usage()

    @handles("updateSettings")
    def update_settings(self, data: dict[str, Any]) -> None:
        try:
            level = check_log_level(data["logLevel"]) if data.get("logLevel") is not None else None
            tags = data.get("logTags")
            if tags is not None and not isinstance(tags, list):
                raise SettingsError("logTags must be an array of strings")
            new_tags = check_log_tags(tags) if tags is not None else None
        except SettingsError as exc:
            raise WorkerTypeError(str(exc)) from None
        if level is not None:
            self.ctx.logger.level = level
            self.ctx.settings.log_level = level
        if new_tags is not None:
            self.ctx.logger.tags = new_tags
            self.ctx.settings.log_tags = new_tags

    @handles("createRouter")
    def create_router(self, data: dict[str, Any]) -> dict[str, Any]:
        router_id = require_str(data, "routerId")
        self.ctx.registry.check_free(router_id)
        router = Router(router_id, self.ctx, data.get("mediaCodecs"), self._router_closed)
        self.routers[router_id] = router
        self.ctx.logger.debug(f"router created [routerId:{router_id}]", tag="info")
        return {"rtpCapabilities": router.rtp_capabilities}

    @handles("createWebRtcServer")
    def create_webrtc_server(self, data: dict[str, Any]) -> None:
        server_id = require_str(data, "webRtcServerId")
        self.ctx.registry.check_free(server_id)
        server = WebRtcServer(server_id, self.ctx, data, self._webrtc_server_closed)
        self.webrtc_servers[server_id] = server

    @handles("closeWebRtcServer")
    def close_webrtc_server(self, data: dict[str, Any]) -> None:
        server_id = require_str(data, "webRtcServerId")
        server = self.webrtc_servers.get(server_id)
        if server is None:
            raise WorkerError(f"webRtcServer {server_id!r} not found")
        server.close()

    def _webrtc_server_closed(self, server: WebRtcServer) -> None:
        self.webrtc_servers.pop(server.id, None)

    @handles("closeRouter")
    def close_router(self, data: dict[str, Any]) -> None:
        router_id = require_str(data, "routerId")
        router = self.routers.get(router_id)
        if router is None:
            raise WorkerError(f"router {router_id!r} not found")
        router.close()

    def _router_closed(self, router: Router) -> None:
        self.routers.pop(router.id, None)

    # -- close ----------------------------------------------------------------------------

    def close_children(self) -> None:
        """Routers first (they close their transports), then the WebRtcServers."""
        for router in list(self.routers.values()):
            router.close()
        for server in list(self.webrtc_servers.values()):
            server.close()


_TRANSPORT_KINDS = frozenset(
    {"transport", "webRtcTransport", "plainTransport", "pipeTransport", "directTransport"}
)
_OBSERVER_KINDS = frozenset({"rtpObserver", "activeSpeakerObserver", "audioLevelObserver"})


def _kind_matches(entity_kind: str, method_kind: str) -> bool:
    if entity_kind == method_kind:
        return True
    if method_kind == "transport":
        return entity_kind in _TRANSPORT_KINDS
    if method_kind == "rtpObserver":
        return entity_kind in _OBSERVER_KINDS
    return False


