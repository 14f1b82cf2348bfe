"""DirectTransport: media in and out through the channel itself, with no network (mediasoup's
``DirectTransport``).

Created by :meth:`controller.router.Router.create_direct_transport`. Its producers take RTP
packets from :meth:`controller.producer.Producer.send`; its consumers emit each packet they send
as their ``rtp`` event (bytes). RTCP goes in with :meth:`DirectTransport.send_rtcp` and comes
out as the transport's ``rtcp`` event (bytes: the compound packet the worker sends, SR, RR,
NACK, PLI or FIR). Everything is a channel notification: no answers, and what the worker cannot
parse it drops and counts.
"""

from __future__ import annotations

from typing import Any, ClassVar

from controller.errors import ControllerTypeError, InvalidStateError
from controller.transport import Transport

__all__ = ["DirectTransport"]


class DirectTransport(Transport):
    """A direct transport; its ``id`` is the handlerId the worker knows it by.

    Events besides :class:`Transport`'s: ``rtcp`` (bytes).
    """

    kind: ClassVar[str] = "directTransport"
    _direct: ClassVar[bool] = True

    @property
    def max_message_size(self) -> int:
        """The largest message it takes or gives (``max_message_size`` at creation)."""
        value = self._data.get("maxMessageSize")
        return value if isinstance(value, int) else 0

    async def connect(self) -> None:
        """A no-op, as mediasoup: a direct transport has nothing to connect to."""
        if self._closed:
            raise InvalidStateError("directTransport closed [method:transport.connect]")

    def send_rtcp(self, rtcp_packet: bytes | bytearray | memoryview) -> None:
        """Give the worker one (compound) RTCP packet, as if the endpoint had sent it (a
        ``transport.sendRtcp`` notification: no answer)."""
        if not isinstance(rtcp_packet, (bytes, bytearray, memoryview)):
            raise ControllerTypeError("rtcp_packet must be bytes")
        if self._closed:
            raise InvalidStateError("directTransport closed [event:transport.sendRtcp]")
        self._channel.notify("transport.sendRtcp", self.id, bytes(rtcp_packet))

    def _on_notification(self, event: str, data: Any) -> None:
        if event == "rtcp" and isinstance(data, bytes):
            self.emit("rtcp", data)
        else:
            super()._on_notification(event, data)
