"""The Python controller: an asyncio API over the worker channel, after mediasoup v3's Node API.

    async with await create_worker(log_level="warn") as worker:
        router = await worker.create_router(media_codecs=[...])
        transport = await router.create_webrtc_transport(listen_infos=[...])
        producer = await transport.produce(kind="audio", rtp_parameters={...})
        consumer = await other_transport.consume(
            producer_id=producer.id, rtp_capabilities=device_rtp_capabilities
        )

Besides WebRtcTransport, routers make PlainTransport (RTP to GStreamer, FFmpeg ...),
PipeTransport (router to router; see ``Router.pipe_to_router``) and DirectTransport (RTP through
the channel: ``Producer.send``, the consumer's ``rtp`` event).
"""

from controller.channel import Channel, ChannelEntity
from controller.consumer import Consumer
from controller.direct_transport import DirectTransport
from controller.errors import (
    ControllerError,
    ControllerTypeError,
    InvalidStateError,
    RequestTimeoutError,
    UnsupportedError,
)
from controller.events import EnhancedEventEmitter
from controller.pipe_transport import PipeTransport
from controller.plain_transport import PlainTransport
from controller.producer import Producer
from controller.router import PipeToRouterResult, Router
from controller.transport import Transport
from controller.webrtc_server import WebRtcServer
from controller.webrtc_transport import WebRtcTransport
from controller.worker import Worker, create_worker

__all__ = [
    "Channel",
    "ChannelEntity",
    "Consumer",
    "ControllerError",
    "ControllerTypeError",
    "DirectTransport",
    "EnhancedEventEmitter",
    "InvalidStateError",
    "PipeToRouterResult",
    "PipeTransport",
    "PlainTransport",
    "Producer",
    "RequestTimeoutError",
    "Router",
    "Transport",
    "UnsupportedError",
    "WebRtcServer",
    "WebRtcTransport",
    "Worker",
    "create_worker",
]
