"""DirectTransport: media in and out through the channel, for controllers that make or read
RTP themselves.

A producer on it is fed with ``producer.send`` notifications (one RTP packet each, msgpack
bin); each consumer on it emits every packet it would send as an ``rtp`` notification; RTCP
comes in with ``transport.sendRtcp`` notifications and goes out as ``rtcp`` notifications of
the transport. The C fan-out hands a direct consumer's outputs back to Python (a deferred
destination per consumer), which emits them: a direct transport is a control-plane path, one
notification per packet, bounded by the channel's outgoing limits.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Final

from worker.consumer import Consumer
from worker.entity import Context, handles
from worker.errors import WorkerTypeError
from worker.media_ingress import DEFERRED_SINKS, new_sink_id
from worker.transport import Transport

__all__ = ["DirectTransport"]

DEFAULT_MAX_MESSAGE_SIZE: Final = 262144
_NOWHERE: Final = ("0.0.0.0", 9)  # a direct consumer's destination is its notifications


class DirectTransport(Transport):
    transport_type = "direct-transport"
    accepts_producer_send = True

    def __init__(self, transport_id: str, ctx: Context, data: dict[str, Any],
                 on_closed: Callable[[Transport], None]) -> None:
        super().__init__(transport_id, ctx, on_closed)
        size = data.get("maxMessageSize", DEFAULT_MAX_MESSAGE_SIZE)
        if size is None:
            size = DEFAULT_MAX_MESSAGE_SIZE
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise WorkerTypeError("invalid maxMessageSize (a positive integer)")
        self.max_message_size = size
        self._sinks: dict[str, int] = {}
        self.rtp_dropped = 0
        ctx.registry.register(self)
        self._start_rtcp_timer()  # always able to send: its RTCP goes out as notifications

    @handles("dump")
    def dump(self, data: dict[str, Any]) -> dict[str, Any]:
        dump = self.base_dump()
        dump.update(direct=True, maxMessageSize=self.max_message_size)
        if self._ingress is not None:
            dump["counters"] = self._ingress.counters()
        return dump

    @handles("connect")
    def connect(self, data: dict[str, Any]) -> dict[str, Any]:
        """Nothing to connect: media goes through the channel."""
        return {}

    # -- media ------------------------------------------------------------------------------

    def media_ready(self) -> bool:
        return not self.closed

    def send_target(self, consumer: object = None) -> tuple[int, tuple[str, int]] | None:
        if not isinstance(consumer, Consumer) or self.closed:
            return None
        sink = self._sinks.get(consumer.id)
        if sink is None:
            sink = self._sinks[consumer.id] = new_sink_id()
            DEFERRED_SINKS[sink] = partial(self._emit_rtp, consumer)
        return sink, _NOWHERE

    def _emit_rtp(self, consumer: Consumer, packet: bytes | memoryview) -> None:
        if len(packet) > self.max_message_size:
            self.rtp_dropped += 1
            return
        consumer.emit("rtp", bytes(packet))

    def send_rtp(self, packet: bytes, consumer: object = None) -> bool:
        if not isinstance(consumer, Consumer):
            return False
        self._emit_rtp(consumer, packet)
        return True

    def send_rtcp(self, packet: bytes) -> bool:
        self.emit("rtcp", packet)
        return True

    def handle_notification(self, event: str, data: Any) -> None:
        """``transport.sendRtcp``: RTCP from the controller's endpoint."""
        if event != "transport.sendRtcp":
            raise WorkerTypeError(f"unknown notification {event} for a direct transport")
        if not isinstance(data, bytes):
            raise WorkerTypeError("transport.sendRtcp data must be binary (msgpack bin)")
        self.receive_rtcp(data)

    def _consumer_closed(self, consumer: Consumer) -> None:
        super()._consumer_closed(consumer)
        sink = self._sinks.pop(consumer.id, None)
        if sink is not None:
            DEFERRED_SINKS.pop(sink, None)

    def release_transport(self) -> None:
        for sink in self._sinks.values():
            DEFERRED_SINKS.pop(sink, None)
        self._sinks.clear()
