"""WebRtcTransport: ICE-lite plus DTLS towards a WebRTC endpoint (mediasoup's ``WebRtcTransport``).

Its properties start from the worker's dump in the ``router.createWebRtcTransport`` answer and are
kept current from the worker's notifications, which are also emitted as events with the same
names and on the observer: ``icestatechange`` (ice_state), ``iceselectedtuplechange``
(ice_selected_tuple), ``dtlsstatechange`` (dtls_state).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from controller.channel import expect_map
from controller.errors import ControllerTypeError
from controller.transport import Transport

__all__ = ["WebRtcTransport"]

logger = logging.getLogger("mediaworker.controller")


class WebRtcTransport(Transport):
    """A WebRTC transport. Events besides :class:`Transport`'s: ``icestatechange`` (state),
    ``iceselectedtuplechange`` (tuple), ``dtlsstatechange`` (state); the observer emits them too.
    """

    kind: ClassVar[str] = "webRtcTransport"

    @property
    def ice_role(self) -> str:
        return str(self._data.get("iceRole", "controlled"))

    @property
    def ice_parameters(self) -> dict[str, Any]:
        params: dict[str, Any] = self._data.get("iceParameters") or {}
        return params

    @property
    def ice_candidates(self) -> list[dict[str, Any]]:
        candidates: list[dict[str, Any]] = self._data.get("iceCandidates") or []
        return candidates

    @property
    def ice_state(self) -> str:
        return str(self._data.get("iceState", "new"))

    @property
    def ice_selected_tuple(self) -> dict[str, Any] | None:
        selected: dict[str, Any] | None = self._data.get("iceSelectedTuple")
        return selected

    @property
    def dtls_parameters(self) -> dict[str, Any]:
        params: dict[str, Any] = self._data.get("dtlsParameters") or {}
        return params

    @property
    def dtls_state(self) -> str:
        return str(self._data.get("dtlsState", "new"))

    @property
    def dtls_remote_cert(self) -> str | None:
        cert: str | None = self._data.get("dtlsRemoteCert")
        return cert

    # -- requests -------------------------------------------------------------------------

    async def connect(self, *, dtls_parameters: Mapping[str, Any]) -> None:
        """``transport.connect``; stores the local DTLS role in ``dtls_parameters["role"]``.

        A second connect raises :class:`InvalidStateError` (the worker's answer).
        """
        if not isinstance(dtls_parameters, Mapping):
            raise ControllerTypeError("dtls_parameters must be a mapping")
        method = "transport.connect"
        result = expect_map(
            await self._request(method, {"dtlsParameters": copy.deepcopy(dict(dtls_parameters))}),
            method,
        )
        role = result.get("dtlsLocalRole")
        if isinstance(role, str):
            self._data.setdefault("dtlsParameters", {})["role"] = role

    async def restart_ice(self) -> dict[str, Any]:
        """``transport.restartIce``: new ICE credentials, returned and stored."""
        method = "transport.restartIce"
        result = expect_map(await self._request(method), method)
        params = expect_map(result.get("iceParameters"), method)
        self._data["iceParameters"] = params
        return params

    # -- notifications --------------------------------------------------------------------

    def _on_notification(self, event: str, data: Any) -> None:
        body: dict[str, Any] = data if isinstance(data, dict) else {}
        if event == "icestatechange":
            state = body.get("iceState")
            self._data["iceState"] = state
            self.emit("icestatechange", state)
            self.observer.emit("icestatechange", state)
        elif event == "iceselectedtuplechange":
            selected = body.get("iceSelectedTuple")
            self._data["iceSelectedTuple"] = selected
            self.emit("iceselectedtuplechange", selected)
            self.observer.emit("iceselectedtuplechange", selected)
        elif event == "dtlsstatechange":
            state = body.get("dtlsState")
            self._data["dtlsState"] = state
            if state == "connected" and "dtlsRemoteCert" in body:
                self._data["dtlsRemoteCert"] = body["dtlsRemoteCert"]
            self.emit("dtlsstatechange", state)
            self.observer.emit("dtlsstatechange", state)
        else:
            super()._on_notification(event, data)

    def _closed_locally(self) -> None:
        # As mediasoup: a closed transport reports closed states and no selected tuple.
        self._data["iceState"] = "closed"
        self._data.pop("iceSelectedTuple", None)
        self._data["dtlsState"] = "closed"
