"""The controller's WebRtcServer and WebRtcTransport against the real worker (no mocks).

Every socket binds 127.0.0.1; every wait is bounded (each test runs under ``asyncio.run`` with a
time limit, the ICE-TCP peer's reads have timeouts).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import pytest

from controller import (
    ControllerTypeError,
    InvalidStateError,
    WebRtcServer,
    WebRtcTransport,
    create_worker,
)
from tests.controller_support import Recorder, async_test, is_closed, running_worker, wait_until
from tests.ice_client import IceCredentials, IceTcpClient

LOCALHOST = "127.0.0.1"
SERVER_LISTEN_INFOS: list[dict[str, Any]] = [
    {"protocol": "udp", "ip": LOCALHOST},
    {"protocol": "tcp", "ip": LOCALHOST},
]
REMOTE_DTLS = {
    "role": "client",
    "fingerprints": [{"algorithm": "sha-256", "value": ":".join(["AB"] * 32)}],
}



def _listen_port(dump: dict[str, Any], protocol: str) -> int:
    key = "udpSockets" if protocol == "udp" else "tcpServers"
    port: int = dump[key][0]["port"]
    return port


def _candidate(transport: WebRtcTransport, protocol: str) -> tuple[str, int]:
    for candidate in transport.ice_candidates:
        if candidate["protocol"] == protocol:
            return candidate["ip"], candidate["port"]
    raise AssertionError(f"no {protocol} candidate")


# -- WebRtcServer ---------------------------------------------------------------------------


@async_test
async def test_create_webrtc_server_dump_and_close() -> None:
    async with running_worker() as worker:
        new_servers = Recorder()
        worker.observer.on("newwebrtcserver", new_servers)
        server = await worker.create_webrtc_server(
            listen_infos=SERVER_LISTEN_INFOS, app_data={"s": 1}
        )
        assert isinstance(server, WebRtcServer)
        assert new_servers.calls == [(server,)]
        assert server.app_data == {"s": 1}
        assert not server.closed
        dump = await server.dump()
        assert dump["id"] == server.id
        assert dump["udpSockets"][0]["ip"] == LOCALHOST
        assert dump["tcpServers"][0]["ip"] == LOCALHOST
        assert (await worker.dump())["webRtcServerIds"] == [server.id]

        closed = Recorder()
        server.observer.on("close", closed)
        worker_closed = Recorder()
        server.on("workerclose", worker_closed)
        await server.close()
        assert is_closed(server)
        assert closed.calls == [()]
        assert worker_closed.calls == []
        assert (await worker.dump())["webRtcServerIds"] == []
        with pytest.raises(InvalidStateError):
            await server.dump()
        await server.close()  # idempotent
        assert closed.calls == [()]


@async_test
async def test_webrtc_server_bad_arguments() -> None:
    async with running_worker() as worker:
        bad_infos: list[Any] = [[], "udp", [1], None]
        for infos in bad_infos:
            with pytest.raises(ControllerTypeError):
                await worker.create_webrtc_server(listen_infos=infos)
        with pytest.raises(ControllerTypeError):
            await worker.create_webrtc_server(
                listen_infos=SERVER_LISTEN_INFOS,
                app_data="x",  # type: ignore[arg-type]
            )
        # A field of the wrong type is the worker's TypeError, passed through.
        with pytest.raises(TypeError):
            await worker.create_webrtc_server(
                listen_infos=[{"protocol": "udp", "ip": LOCALHOST, "port": "x"}]
            )
        assert (await worker.dump())["webRtcServerIds"] == []


@async_test
async def test_worker_close_closes_servers_routers_and_transports() -> None:
    worker = await create_worker()
    server = await worker.create_webrtc_server(listen_infos=SERVER_LISTEN_INFOS)
    router = await worker.create_router()
    transport = await router.create_webrtc_transport(webrtc_server=server)
    events = Recorder()
    server.on("workerclose", functools.partial(events, "server workerclose"))
    server.observer.on("close", functools.partial(events, "server close"))
    transport.on("routerclose", functools.partial(events, "transport routerclose"))
    transport.on("listenserverclose", functools.partial(events, "transport listenserverclose"))
    transport.observer.on("close", functools.partial(events, "transport close"))
    await worker.close()
    assert is_closed(server) and is_closed(router) and is_closed(transport)
    assert events.calls == [
        ("transport routerclose",),
        ("transport close",),
        ("server workerclose",),
        ("server close",),
    ]
    assert transport.ice_state == "closed" and transport.dtls_state == "closed"
    with pytest.raises(InvalidStateError):
        await transport.dump()


# -- WebRtcTransport ------------------------------------------------------------------------


@async_test
async def test_transport_through_server_matches_the_worker_dump() -> None:
    async with running_worker() as worker:
        server = await worker.create_webrtc_server(listen_infos=SERVER_LISTEN_INFOS)
        router = await worker.create_router()
        new_transports = Recorder()
        router.observer.on("newtransport", new_transports)
        handled = Recorder()
        server.observer.on("webrtctransporthandled", handled)
        unhandled = Recorder()
        server.observer.on("webrtctransportunhandled", unhandled)

        transport = await router.create_webrtc_transport(
            webrtc_server=server, enable_udp=True, enable_tcp=True, prefer_udp=True,
            app_data={"t": 2},
        )
        assert isinstance(transport, WebRtcTransport)
        assert new_transports.calls == [(transport,)]
        assert handled.calls == [(transport,)]
        assert transport.app_data == {"t": 2}
        assert router.transports == [transport]

        dump = await transport.dump()
        assert dump["id"] == transport.id
        assert transport.ice_role == dump["iceRole"] == "controlled"
        assert transport.ice_parameters == dump["iceParameters"]
        assert transport.ice_parameters["iceLite"] is True
        assert transport.ice_candidates == dump["iceCandidates"]
        assert transport.ice_state == dump["iceState"] == "new"
        assert transport.ice_selected_tuple is None and "iceSelectedTuple" not in dump
        assert transport.dtls_parameters == dump["dtlsParameters"]
        assert transport.dtls_parameters["role"] == "auto"
        assert transport.dtls_state == dump["dtlsState"] == "new"
        assert transport.dtls_remote_cert is None

        server_dump = await server.dump()
        assert server_dump["webRtcTransportIds"] == [transport.id]
        # preferUdp: the UDP candidate comes first; both use the server's ports.
        assert [c["protocol"] for c in transport.ice_candidates] == ["udp", "tcp"]
        assert _candidate(transport, "udp")[1] == _listen_port(server_dump, "udp")
        assert _candidate(transport, "tcp")[1] == _listen_port(server_dump, "tcp")
        assert (await router.dump())["transportIds"] == [transport.id]

        tcp_only = await router.create_webrtc_transport(webrtc_server=server, enable_udp=False)
        assert [c["protocol"] for c in tcp_only.ice_candidates] == ["tcp"]

        closed = Recorder()
        transport.observer.on("close", closed)
        await transport.close()
        assert is_closed(transport)
        assert closed.calls == [()]
        assert unhandled.calls == [(transport,)]
        assert router.transports == [tcp_only]
        assert (await router.dump())["transportIds"] == [tcp_only.id]
        assert (await server.dump())["webRtcTransportIds"] == [tcp_only.id]
        with pytest.raises(InvalidStateError):
            await transport.restart_ice()
        await transport.close()  # idempotent
        assert closed.calls == [()]


@async_test
async def test_transport_with_own_listen_infos() -> None:
    async with running_worker() as worker:
        router = await worker.create_router()
        transport = await router.create_webrtc_transport(
            listen_infos=[
                {"protocol": "tcp", "ip": LOCALHOST},
                {"protocol": "udp", "ip": LOCALHOST},
            ],
            ice_consent_timeout=20,
            initial_available_outgoing_bitrate=600000,
        )
        dump = await transport.dump()
        assert transport.ice_candidates == dump["iceCandidates"]
        assert [c["protocol"] for c in transport.ice_candidates] == ["tcp", "udp"]
        assert all(c["ip"] == LOCALHOST for c in transport.ice_candidates)
        assert "listenerCounters" in dump

        events = Recorder()
        transport.on("routerclose", functools.partial(events, "routerclose"))
        transport.observer.on("close", functools.partial(events, "close"))
        await router.close()
        assert is_closed(transport)
        assert events.calls == [("routerclose",), ("close",)]
        assert router.transports == []


@async_test
async def test_server_close_closes_its_transports() -> None:
    async with running_worker() as worker:
        server = await worker.create_webrtc_server(listen_infos=SERVER_LISTEN_INFOS)
        router = await worker.create_router()
        transport = await router.create_webrtc_transport(webrtc_server=server)
        events = Recorder()
        transport.on("listenserverclose", functools.partial(events, "listenserverclose"))
        transport.on("routerclose", functools.partial(events, "routerclose"))
        transport.observer.on("close", functools.partial(events, "close"))
        await server.close()
        assert is_closed(transport)
        assert events.calls == [("listenserverclose",), ("close",)]
        assert router.transports == []
        assert (await router.dump())["transportIds"] == []
        assert not router.closed
        with pytest.raises(InvalidStateError):
            await router.create_webrtc_transport(webrtc_server=server)


@async_test
async def test_create_webrtc_transport_bad_arguments() -> None:
    async with running_worker() as worker:
        server = await worker.create_webrtc_server(listen_infos=SERVER_LISTEN_INFOS)
        router = await worker.create_router()
        infos = [{"protocol": "udp", "ip": LOCALHOST}]
        bad_calls: list[dict[str, Any]] = [
            {},
            {"listen_infos": infos, "webrtc_server": server},
            {"listen_infos": []},
            {"listen_infos": "udp"},
            {"webrtc_server": "server"},
            {"webrtc_server": server, "enable_udp": "yes"},
            {"webrtc_server": server, "ice_consent_timeout": "30"},
            {"webrtc_server": server, "initial_available_outgoing_bitrate": True},
            {"webrtc_server": server, "app_data": []},
        ]
        for kwargs in bad_calls:
            with pytest.raises(ControllerTypeError):
                await router.create_webrtc_transport(**kwargs)
        # The worker's TypeError (UDP and TCP both disabled) passes through.
        with pytest.raises(ControllerTypeError):
            await router.create_webrtc_transport(
                webrtc_server=server, enable_udp=False, enable_tcp=False
            )
        assert (await router.dump())["transportIds"] == []
        assert router.transports == []


@async_test
async def test_ice_tcp_connect_and_restart_ice() -> None:
    async with running_worker() as worker:
        server = await worker.create_webrtc_server(listen_infos=SERVER_LISTEN_INFOS)
        router = await worker.create_router()
        transport = await router.create_webrtc_transport(webrtc_server=server, enable_udp=False)
        events = Recorder()
        transport.on("icestatechange", functools.partial(events, "icestatechange"))
        transport.on("iceselectedtuplechange", functools.partial(events, "tuple"))
        observed = Recorder()
        transport.observer.on("icestatechange", observed)

        client = IceTcpClient(_candidate(transport, "tcp"))
        try:
            creds = IceCredentials.of({"iceParameters": transport.ice_parameters})
            response = await asyncio.to_thread(client.request, creds, use_candidate=True)
            assert response.transaction_id
            await wait_until(lambda: transport.ice_state == "completed")
            assert ("icestatechange", "completed") in events.calls
            assert observed.calls[-1] == ("completed",)
            selected = transport.ice_selected_tuple
            assert selected is not None
            assert selected["protocol"] == "tcp"
            assert selected["remotePort"] == client.sock.getsockname()[1]
            assert ("tuple", selected) in events.calls
            dump = await transport.dump()
            assert dump["iceState"] == "completed"
            assert dump["iceSelectedTuple"] == selected

            stats = await transport.get_stats()
            assert stats[0]["type"] == "webrtc-transport"
            assert stats[0]["transportId"] == transport.id

            await transport.connect(dtls_parameters=REMOTE_DTLS)
            assert transport.dtls_parameters["role"] == "server"
            assert (await transport.dump())["dtlsParameters"]["role"] == "server"
            with pytest.raises(InvalidStateError):
                await transport.connect(dtls_parameters=REMOTE_DTLS)
            with pytest.raises(ControllerTypeError):
                await transport.connect(dtls_parameters="client")  # type: ignore[arg-type]

            old = dict(transport.ice_parameters)
            new = await transport.restart_ice()
            assert new["usernameFragment"] != old["usernameFragment"]
            assert new["password"] != old["password"]
            assert transport.ice_parameters == new
            assert (await transport.dump())["iceParameters"] == new
        finally:
            client.close()


@async_test
async def test_refused_connect_leaves_transport_connectable() -> None:
    async with running_worker() as worker:
        router = await worker.create_router()
        transport = await router.create_webrtc_transport(
            listen_infos=[{"protocol": "udp", "ip": LOCALHOST}]
        )
        with pytest.raises(ControllerTypeError):
            await transport.connect(dtls_parameters={"role": "client", "fingerprints": []})
        assert transport.dtls_parameters["role"] == "auto"
        await transport.connect(dtls_parameters={**REMOTE_DTLS, "role": "auto"})
        assert transport.dtls_parameters["role"] == "client"
