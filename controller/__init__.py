"""The Python controller: an asyncio API over the worker channel, after mediasoup v3's Node API.

    async with await create_worker(log_level="warn") as worker:
        router = await worker.create_router(media_codecs=[...])
        print(router.rtp_capabilities)
"""

from controller.channel import Channel, ChannelEntity
from controller.errors import (
    ControllerError,
    ControllerTypeError,
    InvalidStateError,
    RequestTimeoutError,
    UnsupportedError,
)
from controller.events import EnhancedEventEmitter
from controller.router import Router
from controller.transport import Transport
from controller.webrtc_server import WebRtcServer
from controller.webrtc_transport import WebRtcTransport
from controller.worker import Worker, create_worker

__all__ = [
    "Channel",
    "ChannelEntity",
    "ControllerError",
    "ControllerTypeError",
    "EnhancedEventEmitter",
    "InvalidStateError",
    "RequestTimeoutError",
    "Router",
    "Transport",
    "UnsupportedError",
    "WebRtcServer",
    "WebRtcTransport",
    "Worker",
    "create_worker",
]
