"""transport.connect: DTLS between the worker and aiortc's own ICE and DTLS transports.

aiortc's RTCIceTransport (full ICE, controlling, restricted to loopback) and RTCDtlsTransport
are a real, independent DTLS peer: the handshake, the fingerprint checks both ways, the SRTP
profile negotiation and the close alert are exercised against it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

import aioice.ice
import pytest
from aiortc import (
    RTCCertificate,
    RTCDtlsFingerprint,
    RTCDtlsParameters,
    RTCDtlsTransport,
    RTCIceCandidate,
    RTCIceGatherer,
    RTCIceParameters,
    RTCIceTransport,
)
from cryptography import x509

from tests.loopback import IPV4
from tests.worker_process import WorkerProcess
from worker.certificate import fingerprint as certificate_fingerprint

Json = dict[str, Any]
WAIT_S = 10.0


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """aiortc gathers, binds and sends on 127.0.0.1 only."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses",
                        lambda use_ipv4, use_ipv6: [IPV4] if use_ipv4 else [])
    yield


def fingerprint_of(certificate: x509.Certificate) -> str:
    return certificate_fingerprint(certificate, "sha-256")


def new_transport(worker: WorkerProcess) -> Json:
    router_id = f"router-{os.urandom(4).hex()}"
    worker.ok("worker.createRouter", data={"routerId": router_id})
    dump: Json = worker.ok("router.createWebRtcTransport", router_id, {
        "transportId": f"transport-{os.urandom(4).hex()}",
        "listenInfos": [{"protocol": "udp", "ip": IPV4}],
    })
    dump["routerId"] = router_id
    return dump


def dtls_events(worker: WorkerProcess, transport_id: str) -> list[Json]:
    worker.ok("worker.dump")  # a round trip: every notification sent before it has arrived
    return [n["data"] for n in worker.notifications
            if n["handlerId"] == transport_id and n["event"] == "dtlsstatechange"]


async def wait_for(check: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


class AiortcPeer:
    """aiortc's ICE + DTLS transports, pointed at a worker transport."""

    def __init__(self) -> None:
        self.certificate = RTCCertificate.generateCertificate()
        self.gatherer = RTCIceGatherer()
        self.ice = RTCIceTransport(self.gatherer)
        self.dtls = RTCDtlsTransport(self.ice, [self.certificate])

    def dtls_parameters(self, role: str = "server", wrong: bool = False) -> Json:
        fingerprints = [{"algorithm": f.algorithm, "value": f.value}
                        for f in self.certificate.getFingerprints()]
        if wrong:
            fingerprints = [{"algorithm": "sha-256", "value": ":".join(["AB"] * 32)}]
        return {"role": role, "fingerprints": fingerprints}

    async def connect(self, transport: Json) -> None:
        await self.gatherer.gather()
        for c in transport["iceCandidates"]:
            await self.ice.addRemoteCandidate(RTCIceCandidate(
                component=1, foundation=c["foundation"], ip=c["ip"], port=c["port"],
                priority=c["priority"], protocol=c["protocol"], type=c["type"]))
        await self.ice.addRemoteCandidate(None)
        params = transport["iceParameters"]
        await self.ice.start(RTCIceParameters(usernameFragment=params["usernameFragment"],
                                              password=params["password"], iceLite=True))
        sha256 = next(f for f in transport["dtlsParameters"]["fingerprints"]
                      if f["algorithm"] == "sha-256")
        await self.dtls.start(RTCDtlsParameters(
            fingerprints=[RTCDtlsFingerprint(algorithm="sha-256", value=sha256["value"])],
            role="auto"))

    async def stop(self) -> None:
        await self.dtls.stop()
        await self.ice.stop()


def test_dtls_handshake_with_aiortc(worker: WorkerProcess) -> None:
    transport = new_transport(worker)
    tid = transport["id"]
    assert transport["dtlsState"] == "new"

    async def scenario() -> None:
        peer = AiortcPeer()
        answer = await asyncio.to_thread(worker.ok, "transport.connect", tid,
                                         {"dtlsParameters": peer.dtls_parameters("server")})
        assert answer == {"dtlsLocalRole": "client"}  # remote server → we are the client
        await peer.connect(transport)
        assert peer.dtls.state == "connected"

        async def worker_connected() -> bool:
            dump = await asyncio.to_thread(worker.ok, "transport.dump", tid)
            return bool(dump["dtlsState"] == "connected")

        await wait_for(worker_connected, "the worker's DTLS to connect")
        dump = await asyncio.to_thread(worker.ok, "transport.dump", tid)
        assert dump["dtlsParameters"]["role"] == "client"
        assert dump["iceState"] in ("connected", "completed")
        events = await asyncio.to_thread(dtls_events, worker, tid)
        assert [e["dtlsState"] for e in events] == ["connecting", "connected"]
        assert events[1]["dtlsRemoteCert"].startswith("-----BEGIN CERTIFICATE-----")
        # The remote certificate the worker reports is aiortc's: same SHA-256 fingerprint.
        remote = x509.load_pem_x509_certificate(events[1]["dtlsRemoteCert"].encode())
        theirs = next(f.value for f in peer.certificate.getFingerprints()
                      if f.algorithm == "sha-256")
        assert fingerprint_of(remote) == theirs.upper()

        again = await asyncio.to_thread(worker.request, "transport.connect", tid,
                                        {"dtlsParameters": peer.dtls_parameters("server")})
        assert again["error"] == "InvalidStateError"

        # Closing the transport sends a close alert: aiortc's DTLS transport closes.
        await asyncio.to_thread(worker.ok, "router.closeTransport", transport["routerId"],
                                {"transportId": tid})

        async def peer_closed() -> bool:
            return bool(peer.dtls.state == "closed")

        await wait_for(peer_closed, "aiortc to see the close alert")
        await peer.stop()

    asyncio.run(scenario())


def test_wrong_remote_fingerprint_fails_dtls(worker: WorkerProcess) -> None:
    transport = new_transport(worker)
    tid = transport["id"]

    async def scenario() -> None:
        peer = AiortcPeer()
        await asyncio.to_thread(worker.ok, "transport.connect", tid,
                                {"dtlsParameters": peer.dtls_parameters("server", wrong=True)})
        connect = asyncio.ensure_future(peer.connect(transport))

        async def worker_failed() -> bool:
            dump = await asyncio.to_thread(worker.ok, "transport.dump", tid)
            return bool(dump["dtlsState"] == "failed")

        await wait_for(worker_failed, "the worker's DTLS to fail")
        events = await asyncio.to_thread(dtls_events, worker, tid)
        assert [e["dtlsState"] for e in events] == ["connecting", "failed"]
        # aiortc's start raises its own error once the worker aborts the handshake.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(connect, WAIT_S)
        assert peer.dtls.state != "connected"
        await peer.stop()

    asyncio.run(scenario())


def test_worker_as_dtls_server(worker: WorkerProcess) -> None:
    """Remote role client: the worker is the server."""
    transport = new_transport(worker)
    peer = AiortcPeer()
    answer = worker.ok("transport.connect", transport["id"],
                       {"dtlsParameters": peer.dtls_parameters("client")})
    assert answer == {"dtlsLocalRole": "server"}
    assert worker.ok("transport.dump", transport["id"])["dtlsParameters"]["role"] == "server"


@pytest.mark.parametrize(
    "parameters",
    [
        None,
        "x",
        {"role": "auto"},
        {"role": "auto", "fingerprints": []},
        {"role": "boss", "fingerprints": [{"algorithm": "sha-256", "value": "AB:CD"}]},
        {"role": "auto", "fingerprints": [{"algorithm": "md5", "value": "AB:CD"}]},
        {"role": "auto", "fingerprints": [{"algorithm": "sha-256", "value": "not hex"}]},
        {"role": "auto", "fingerprints": ["sha-256 AB"]},
    ],
)
def test_connect_argument_errors(worker: WorkerProcess, parameters: Any) -> None:
    transport = new_transport(worker)
    data = {} if parameters is None else {"dtlsParameters": parameters}
    response = worker.request("transport.connect", transport["id"], data)
    assert response["error"] == "TypeError", response
    # A refused connect leaves the transport connectable.
    assert worker.ok("transport.dump", transport["id"])["dtlsState"] == "new"
    fingerprint = {"algorithm": "sha-256", "value": ":".join(["AB"] * 32)}
    ok = worker.request("transport.connect", transport["id"],
                        {"dtlsParameters": {"role": "auto", "fingerprints": [fingerprint]}})
    assert ok["accepted"] is True and ok["data"] == {"dtlsLocalRole": "client"}
