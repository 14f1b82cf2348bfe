"""PlainTransport: plain RTP and RTCP over UDP, optionally SRTP, towards an endpoint that does no
ICE or DTLS, such as GStreamer or FFmpeg (mediasoup's ``PlainTransport``).

Created by :meth:`controller.router.Router.create_plain_transport`. Its properties start from the
worker's dump in the ``router.createPlainTransport`` answer and are kept current from
:meth:`PlainTransport.connect`'s answer and the worker's notifications, which are also emitted as
events with the same names and on the observer: ``tuple`` (tuple, learned with comedia),
``rtcptuple`` (rtcp_tuple, learned with comedia when RTCP is not muxed), ``sctpstatechange``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, ClassVar

from controller.channel import expect_map
from controller.errors import ControllerTypeError
from controller.transport import Transport

__all__ = ["PlainTransport", "SocketTransport", "check_listen_info", "check_port",
           "check_srtp_parameters"]


def check_listen_info(listen_info: Any, what: str = "listen_info") -> dict[str, Any]:
    """``listen_info`` as a dict; :class:`ControllerTypeError` unless it is a mapping (the worker
    checks the fields)."""
    if not isinstance(listen_info, Mapping):
        raise ControllerTypeError(f"{what} must be a listen info mapping")
    return copy.deepcopy(dict(listen_info))


def check_port(port: Any, what: str) -> int:
    """``port`` if it is an int in 1..65535, else :class:`ControllerTypeError`."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ControllerTypeError(f"{what} must be an int in 1..65535")
    return port


def check_srtp_parameters(srtp_parameters: Any) -> dict[str, Any]:
    """``srtp_parameters`` as a dict; :class:`ControllerTypeError` unless it is a mapping (the
    worker checks the crypto suite and the key)."""
    if not isinstance(srtp_parameters, Mapping):
        raise ControllerTypeError("srtp_parameters must be a mapping {cryptoSuite, keyBase64}")
    return dict(srtp_parameters)


class SocketTransport(Transport):
    """What plain and pipe transports share: their tuple, SRTP parameters and SCTP state,
    kept current from the worker's notifications (re-emitted, also on the observer, with the
    new value). ``_STATE_EVENTS`` maps each such event to the dump key it updates."""

    _STATE_EVENTS: ClassVar[dict[str, str]] = {"tuple": "tuple", "sctpstatechange": "sctpState"}

    @property
    def tuple(self) -> dict[str, Any]:
        """``{localAddress, localIp, localPort, protocol, remoteIp?, remotePort?}``."""
        value: dict[str, Any] = self._data.get("tuple") or {}
        return value

    @property
    def srtp_parameters(self) -> dict[str, Any] | None:
        """The worker's own ``{cryptoSuite, keyBase64}`` with SRTP, else None."""
        value: dict[str, Any] | None = self._data.get("srtpParameters")
        return value

    @property
    def sctp_state(self) -> str | None:
        value: str | None = self._data.get("sctpState")
        return value

    def _on_notification(self, event: str, data: Any) -> None:
        key = self._STATE_EVENTS.get(event)
        if key is None:
            super()._on_notification(event, data)
            return
        value = data.get(key) if isinstance(data, dict) else None
        self._data[key] = value
        self.emit(event, value)
        self.observer.emit(event, value)

    def _closed_locally(self) -> None:
        if self._data.get("sctpState") is not None:
            self._data["sctpState"] = "closed"


class PlainTransport(SocketTransport):
    """A plain RTP transport. Events besides :class:`Transport`'s: ``tuple`` (tuple),
    ``rtcptuple`` (rtcp_tuple), ``sctpstatechange`` (state); the observer emits them too.
    """

    kind: ClassVar[str] = "plainTransport"
    _STATE_EVENTS: ClassVar[dict[str, str]] = {
        **SocketTransport._STATE_EVENTS, "rtcptuple": "rtcpTuple"}

    @property
    def rtcp_tuple(self) -> dict[str, Any] | None:
        """The RTCP socket's tuple when RTCP is not muxed, else None."""
        value: dict[str, Any] | None = self._data.get("rtcpTuple")
        return value

    @property
    def rtcp_mux(self) -> bool:
        return bool(self._data.get("rtcpMux", True))

    @property
    def comedia(self) -> bool:
        """Whether the remote tuple is learned from the first packet received."""
        return bool(self._data.get("comedia", False))

    # -- requests -------------------------------------------------------------------------

    async def connect(
        self,
        *,
        ip: str | None = None,
        port: int | None = None,
        rtcp_port: int | None = None,
        srtp_parameters: Mapping[str, Any] | None = None,
    ) -> None:
        """``transport.connect``: the endpoint's address (not with comedia), its RTCP port (only
        when RTCP is not muxed) and its SRTP parameters (only, and always, with SRTP). The answer's
        tuples and SRTP parameters are stored. Bad types raise :class:`ControllerTypeError`; the
        worker refuses missing or extra arguments (``TypeError``) and a second connect
        (:class:`InvalidStateError`)."""
        method = "transport.connect"
        data: dict[str, Any] = {}
        if ip is not None:
            if not isinstance(ip, str) or not ip:
                raise ControllerTypeError("ip must be a non-empty str")
            data["ip"] = ip
        if port is not None:
            data["port"] = check_port(port, "port")
        if rtcp_port is not None:
            data["rtcpPort"] = check_port(rtcp_port, "rtcp_port")
        if srtp_parameters is not None:
            data["srtpParameters"] = check_srtp_parameters(srtp_parameters)
        result = expect_map(await self._request(method, data), method)
        for key in ("tuple", "rtcpTuple", "srtpParameters"):
            if isinstance(result.get(key), dict):
                self._data[key] = result[key]
