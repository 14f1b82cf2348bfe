"""PipeTransport: plain RTP between two routers, in one host or across hosts (mediasoup's
``PipeTransport``).

Created by :meth:`controller.router.Router.create_pipe_transport`, and in pairs by
:meth:`controller.router.Router.pipe_to_router`, which connects each to the other's tuple. A
consumer on it is a pipe consumer: it forwards every stream of its producer as received, with
the producer's consumable parameters, so :meth:`PipeTransport.consume` takes no RTP
capabilities. Events besides :class:`controller.transport.Transport`'s (also on the observer):
``tuple`` (tuple), ``sctpstatechange`` (state).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from controller.channel import expect_map
from controller.consumer import Consumer
from controller.errors import ControllerTypeError
from controller.plain_transport import SocketTransport, check_port, check_srtp_parameters

__all__ = ["PipeTransport"]


class PipeTransport(SocketTransport):
    """A pipe transport; its ``id`` is the handlerId the worker knows it by."""

    kind: ClassVar[str] = "pipeTransport"

    @property
    def rtx(self) -> bool:
        """Whether its pipe consumers carry RTX (``enable_rtx``)."""
        return bool(self._data.get("rtx", False))

    # -- requests -------------------------------------------------------------------------

    async def connect(
        self, *, ip: str, port: int, srtp_parameters: Mapping[str, Any] | None = None
    ) -> None:
        """``transport.connect`` to the other pipe transport's address, with its SRTP
        parameters (only, and always, when SRTP is enabled: the worker refuses otherwise). The
        answer's tuple is stored; a second connect raises :class:`InvalidStateError`."""
        method = "transport.connect"
        if not isinstance(ip, str) or not ip:
            raise ControllerTypeError("ip must be a non-empty str")
        data: dict[str, Any] = {"ip": ip, "port": check_port(port, "port")}
        if srtp_parameters is not None:
            data["srtpParameters"] = check_srtp_parameters(srtp_parameters)
        result = expect_map(await self._request(method, data), method)
        if isinstance(result.get("tuple"), dict):
            self._data["tuple"] = result["tuple"]

    # As mediasoup, a pipe transport's consume takes only the producer: the consumer forwards the
    # producer's streams with its consumable parameters, whatever the other end can receive.
    async def consume(  # type: ignore[override]
        self, *, producer_id: str, app_data: dict[str, Any] | None = None
    ) -> Consumer:
        """``transport.consume``: a pipe consumer of the producer (type ``"pipe"``), whose
        ``rtp_parameters`` are what the other router's pipe transport produces with."""
        if not isinstance(producer_id, str) or not producer_id:
            raise ControllerTypeError("producer_id must be a non-empty str")
        if app_data is not None and not isinstance(app_data, dict):
            raise ControllerTypeError("app_data must be a dict")
        return await self._consume(producer_id, {}, app_data)
