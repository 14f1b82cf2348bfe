"""WebRtcServer and WebRtcTransport creation, dumps and close, against the real worker.

mediasoup v3's semantics: ``worker.createWebRtcServer`` / ``closeWebRtcServer`` /
``webRtcServer.dump`` (which transports use it, by id, local username fragment and tuple hash),
``router.createWebRtcTransport`` argument checks and the transport dump, ICE candidate
priorities, and the close order: a server closes its transports (and their TCP connections)
before its sockets, and the worker closes everything on ``worker.close``.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.ice_client import IceCredentials, IceTcpClient, IceUdpClient
from tests.loopback import FAMILIES, HAVE_IPV6, IPV4, IPV6
from tests.reference import stun
from tests.worker_process import WorkerProcess

Json = dict[str, Any]

WAIT_S = 5.0
CLOSE_DEADLINE_S = 2.0  # PROTOCOL.md section 1: the worker exits within 2 s
# mediasoup's ICE candidate priority: 2^24 * 64 (host) + 2^8 * localPreference + 255.
LOCAL_PREFERENCE_START = 10000
LOCAL_PREFERENCE_STEP = 100
PREFERRED_BONUS = 1000
FINGERPRINT_BYTES = {"sha-1": 20, "sha-224": 28, "sha-256": 32, "sha-384": 48, "sha-512": 64}
HEX_COLON = re.compile(r"^[0-9A-F]{2}(:[0-9A-F]{2})*$")




# -- helpers --------------------------------------------------------------------------------


def new_id(prefix: str) -> str:
    return f"{prefix}-{os.urandom(6).hex()}"


def priority(local_preference: int) -> int:
    return (2**24) * 64 + (2**8) * local_preference + 255


def pools_in_use(worker: WorkerProcess) -> dict[str, int]:
    pools = worker.ok("worker.dump")["bufferPools"]
    return {name: pool["inUse"] for name, pool in pools.items()}


def wait_until(check: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def free_port(kind: socket.SocketKind, ip: str = IPV4) -> int:
    """A port nothing listens on right now (the kernel's pick, released at once)."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, kind) as sock:
        sock.bind((ip, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(kind: socket.SocketKind, port: int, ip: str = IPV4) -> bool:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, kind) as sock:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((ip, port))
        except OSError:
            return False
        return True


def udp_tcp(ip: str = IPV4) -> list[Json]:
    return [{"protocol": "udp", "ip": ip}, {"protocol": "tcp", "ip": ip}]


def create_router(worker: WorkerProcess) -> str:
    router_id = new_id("router")
    worker.ok("worker.createRouter", data={"routerId": router_id, "mediaCodecs": []})
    return router_id


def create_server(worker: WorkerProcess, listen_infos: list[Json] | None = None) -> str:
    server_id = new_id("server")
    assert worker.ok("worker.createWebRtcServer", data={
        "webRtcServerId": server_id, "listenInfos": listen_infos or udp_tcp()}) is None
    return server_id


def create_transport(worker: WorkerProcess, router_id: str, **options: Any) -> Json:
    dump: Json = worker.ok("router.createWebRtcTransport", router_id,
                           {"transportId": new_id("transport"), **options})
    return dump


def server_dump(worker: WorkerProcess, server_id: str) -> Json:
    dump: Json = worker.ok("webRtcServer.dump", server_id)
    return dump


def candidate(transport: Json, protocol: str) -> tuple[str, int]:
    found = [c for c in transport["iceCandidates"] if c["protocol"] == protocol]
    assert len(found) == 1, transport["iceCandidates"]
    return found[0]["ip"], found[0]["port"]


def priorities(transport: Json) -> dict[str, int]:
    return {c["protocol"]: c["priority"] for c in transport["iceCandidates"]}


def assert_error(response: Json, error: str, *words: str) -> None:
    assert response["accepted"] is False, response
    assert response["error"] == error, response
    for word in words:
        assert word in response["reason"], response


@pytest.fixture
def router(worker: WorkerProcess) -> str:
    return create_router(worker)


@pytest.fixture
def clients(worker: WorkerProcess) -> Iterator[list[Any]]:
    """Peers a test opens; closed at teardown, after which every TCP buffer must come back."""
    opened: list[Any] = []
    yield opened
    for client in opened:
        client.close()
    if worker.proc.poll() is None:
        wait_until(lambda: pools_in_use(worker)["tcpRecv"] == 0, "TCP buffers returned")


# -- createWebRtcServer, dump, close --------------------------------------------------------


@pytest.mark.parametrize("ip", FAMILIES)
def test_create_server_and_dump(worker: WorkerProcess, ip: str) -> None:
    server_id = create_server(worker, udp_tcp(ip))
    dump = server_dump(worker, server_id)
    assert dump["id"] == server_id
    assert [s["ip"] for s in dump["udpSockets"]] == [ip]
    assert [s["ip"] for s in dump["tcpServers"]] == [ip]
    assert dump["webRtcTransportIds"] == []
    assert dump["localIceUsernameFragments"] == []
    assert dump["tupleHashes"] == []
    udp_port = dump["udpSockets"][0]["port"]
    tcp_port = dump["tcpServers"][0]["port"]
    assert not port_is_free(socket.SOCK_DGRAM, udp_port, ip)
    with socket.create_connection((ip, tcp_port), timeout=WAIT_S):
        pass  # something accepts on the TCP port
    assert worker.ok("worker.dump")["webRtcServerIds"] == [server_id]

    assert worker.ok("worker.closeWebRtcServer", data={"webRtcServerId": server_id}) is None
    assert worker.ok("worker.dump")["webRtcServerIds"] == []
    assert_error(worker.request("webRtcServer.dump", server_id), "Error")
    assert port_is_free(socket.SOCK_DGRAM, udp_port, ip)
    assert port_is_free(socket.SOCK_STREAM, tcp_port, ip)


def test_explicit_port_and_port_range(worker: WorkerProcess) -> None:
    udp_port = free_port(socket.SOCK_DGRAM)
    tcp_port = free_port(socket.SOCK_STREAM)
    server_id = create_server(worker, [
        {"protocol": "udp", "ip": IPV4, "port": udp_port},
        {"protocol": "tcp", "ip": IPV4, "portRange": {"min": tcp_port, "max": tcp_port}},
    ])
    dump = server_dump(worker, server_id)
    assert dump["udpSockets"] == [{"ip": IPV4, "port": udp_port}]
    assert dump["tcpServers"] == [{"ip": IPV4, "port": tcp_port}]


def test_webrtc_server_close_method_and_unknown_ids(worker: WorkerProcess) -> None:
    server_id = create_server(worker)
    assert worker.ok("webRtcServer.close", server_id) is None
    assert worker.ok("worker.dump")["webRtcServerIds"] == []
    assert_error(worker.request("worker.closeWebRtcServer", data={"webRtcServerId": server_id}),
                 "Error")
    assert_error(worker.request("webRtcServer.close", server_id), "Error")
    assert_error(worker.request("worker.closeWebRtcServer", data={}), "TypeError")


def test_duplicate_id_is_an_error(worker: WorkerProcess, router: str) -> None:
    server_id = create_server(worker)
    before = server_dump(worker, server_id)
    for taken in (server_id, router):
        response = worker.request("worker.createWebRtcServer", data={
            "webRtcServerId": taken, "listenInfos": udp_tcp()})
        assert_error(response, "Error", "[method:worker.createWebRtcServer]")
    assert worker.ok("worker.dump")["webRtcServerIds"] == [server_id]
    assert server_dump(worker, server_id) == before
    assert worker.ok("router.dump", router)["id"] == router  # the router is untouched


@pytest.mark.parametrize("data", [
    pytest.param({"webRtcServerId": None, "listenInfos": udp_tcp()}, id="no-id"),
    pytest.param({"webRtcServerId": 7, "listenInfos": udp_tcp()}, id="id-not-a-string"),
    pytest.param({}, id="no-listenInfos"),
    pytest.param({"listenInfos": None}, id="listenInfos-null"),
    pytest.param({"listenInfos": []}, id="listenInfos-empty"),
    pytest.param({"listenInfos": "udp"}, id="listenInfos-not-an-array"),
    pytest.param({"listenInfos": ["udp"]}, id="listenInfo-not-an-object"),
    pytest.param({"listenInfos": [{"protocol": "udp"}]}, id="no-ip"),
    pytest.param({"listenInfos": [{"protocol": "udp", "ip": "localhost"}]}, id="ip-not-an-ip"),
    pytest.param({"listenInfos": [{"protocol": "sctp", "ip": IPV4}]}, id="bad-protocol"),
    pytest.param({"listenInfos": [{"protocol": "udp", "ip": IPV4, "port": 70000}]},
                 id="port-out-of-range"),
    pytest.param({"listenInfos": [{"protocol": "udp", "ip": IPV4, "port": "1"}]},
                 id="port-not-an-integer"),
    pytest.param({"listenInfos": [{"protocol": "udp", "ip": IPV4, "flags": {"ipv6Only": 1}}]},
                 id="flag-not-a-boolean"),
])
def test_invalid_arguments_are_type_errors(worker: WorkerProcess, data: Json) -> None:
    data = {"webRtcServerId": new_id("server"), **data}
    if data["webRtcServerId"] is None:
        del data["webRtcServerId"]
    response = worker.request("worker.createWebRtcServer", data=data)
    assert_error(response, "TypeError", "[method:worker.createWebRtcServer]")
    dump = worker.ok("worker.dump")
    assert dump["webRtcServerIds"] == []
    assert dump["channelMessageHandlers"]["channelRequestHandlers"] == []


@pytest.mark.parametrize("busy", ["udp", "tcp"])
def test_port_in_use_is_an_error_and_leaves_nothing_bound(worker: WorkerProcess,
                                                          busy: str) -> None:
    kind = socket.SOCK_DGRAM if busy == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as holder:
        holder.bind((IPV4, 0))
        if busy == "tcp":
            holder.listen()
        taken = holder.getsockname()[1]
        # The other socket of the server binds first: it must be released on the failure.
        other = "tcp" if busy == "udp" else "udp"
        other_kind = socket.SOCK_STREAM if other == "tcp" else socket.SOCK_DGRAM
        other_port = free_port(other_kind)
        infos = [{"protocol": other, "ip": IPV4, "port": other_port},
                 {"protocol": busy, "ip": IPV4, "port": taken}]
        response = worker.request("worker.createWebRtcServer", data={
            "webRtcServerId": new_id("server"), "listenInfos": infos})
        assert_error(response, "Error", str(taken))
        assert worker.ok("worker.dump")["webRtcServerIds"] == []
        assert port_is_free(other_kind, other_port)

        # A transport's own listenInfos: the same rule.
        router_id = create_router(worker)
        response = worker.request("router.createWebRtcTransport", router_id, {
            "transportId": new_id("transport"), "listenInfos": infos})
        assert_error(response, "Error", str(taken))
        assert worker.ok("router.dump", router_id)["transportIds"] == []
        assert port_is_free(other_kind, other_port)

    # Once the port is free the same server can be created.
    server_id = create_server(worker, infos)
    assert len(server_dump(worker, server_id)["udpSockets"]) == 1


def test_two_servers(worker: WorkerProcess, router: str) -> None:
    first = create_server(worker)
    second = create_server(worker, udp_tcp(IPV6) if HAVE_IPV6 else udp_tcp())
    assert worker.ok("worker.dump")["webRtcServerIds"] == [first, second]
    ports = {server_dump(worker, s)["udpSockets"][0]["port"] for s in (first, second)}
    assert len(ports) == 2
    t1 = create_transport(worker, router, webRtcServerId=first)
    t2 = create_transport(worker, router, webRtcServerId=second)
    assert server_dump(worker, first)["webRtcTransportIds"] == [t1["id"]]
    assert server_dump(worker, second)["webRtcTransportIds"] == [t2["id"]]
    assert candidate(t1, "udp")[1] == server_dump(worker, first)["udpSockets"][0]["port"]
    assert candidate(t2, "udp")[1] == server_dump(worker, second)["udpSockets"][0]["port"]

    worker.ok("worker.closeWebRtcServer", data={"webRtcServerId": first})
    assert worker.ok("worker.dump")["webRtcServerIds"] == [second]
    assert worker.ok("router.dump", router)["transportIds"] == [t2["id"]]
    assert server_dump(worker, second)["webRtcTransportIds"] == [t2["id"]]


def test_transports_listed_by_id_and_ufrag(worker: WorkerProcess, router: str) -> None:
    server_id = create_server(worker)
    transports = [create_transport(worker, router, webRtcServerId=server_id) for _ in range(3)]
    dump = server_dump(worker, server_id)
    assert dump["webRtcTransportIds"] == [t["id"] for t in transports]
    assert sorted(dump["localIceUsernameFragments"], key=lambda e: e["webRtcTransportId"]) == \
        sorted(({"localIceUsernameFragment": t["iceParameters"]["usernameFragment"],
                 "webRtcTransportId": t["id"]} for t in transports),
               key=lambda e: e["webRtcTransportId"])
    # A transport with its own listenInfos does not appear in the server.
    create_transport(worker, router, listenInfos=udp_tcp())
    assert server_dump(worker, server_id)["webRtcTransportIds"] == [t["id"] for t in transports]

    worker.ok("router.closeTransport", router, {"transportId": transports[0]["id"]})
    worker.ok("transport.close", transports[2]["id"])
    dump = server_dump(worker, server_id)
    assert dump["webRtcTransportIds"] == [transports[1]["id"]]
    assert dump["localIceUsernameFragments"] == [
        {"localIceUsernameFragment": transports[1]["iceParameters"]["usernameFragment"],
         "webRtcTransportId": transports[1]["id"]}]


def test_tuple_hashes_follow_ice_and_transport_close(worker: WorkerProcess, router: str,
                                                     clients: list[Any]) -> None:
    server_id = create_server(worker)
    transport = create_transport(worker, router, webRtcServerId=server_id)
    other = create_transport(worker, router, webRtcServerId=server_id)
    creds = IceCredentials.of(transport)
    udp = IceUdpClient(IPV4)
    tcp = IceTcpClient(candidate(transport, "tcp"))
    other_tcp = IceTcpClient(candidate(other, "tcp"))
    clients.extend([udp, tcp, other_tcp])
    assert server_dump(worker, server_id)["tupleHashes"] == []

    response = udp.request(creds, candidate(transport, "udp"))
    assert response.message_class is stun.StunClass.SUCCESS
    assert tcp.request(creds).message_class is stun.StunClass.SUCCESS
    assert other_tcp.request(IceCredentials.of(other)).message_class is stun.StunClass.SUCCESS
    hashes = server_dump(worker, server_id)["tupleHashes"]
    owners = sorted(h["webRtcTransportId"] for h in hashes)
    assert owners == sorted([transport["id"], transport["id"], other["id"]])
    assert len({h["tupleHash"] for h in hashes}) == 3
    assert all(isinstance(h["tupleHash"], int) for h in hashes)

    worker.ok("transport.close", transport["id"])
    assert [h["webRtcTransportId"] for h in server_dump(worker, server_id)["tupleHashes"]] == \
        [other["id"]]
    assert tcp.closed_by_peer()
    assert pools_in_use(worker)["tcpRecv"] == 1  # the other transport's connection


# -- createWebRtcTransport ------------------------------------------------------------------


@pytest.mark.parametrize(("options", "error", "words"), [
    pytest.param({"transportId": None}, "TypeError", ["transportId"], id="no-transportId"),
    pytest.param({"webRtcServerId": "no-such-server"}, "Error", [], id="unknown-server"),
    pytest.param({"enableUdp": False, "enableTcp": False}, "TypeError", [],
                 id="udp-and-tcp-disabled"),
    pytest.param({"iceConsentTimeout": "30"}, "TypeError", ["iceConsentTimeout"],
                 id="consent-timeout-string"),
    pytest.param({"iceConsentTimeout": True}, "TypeError", ["iceConsentTimeout"],
                 id="consent-timeout-bool"),
    pytest.param({"iceConsentTimeout": 12.5}, "TypeError", ["iceConsentTimeout"],
                 id="consent-timeout-float"),
    pytest.param({"enableSctp": True}, "Error", ["not implemented"], id="sctp"),
    pytest.param({"webRtcServerId": None}, "TypeError", [], id="no-server-no-listenInfos"),
    pytest.param({"enableUdp": "yes"}, "TypeError", ["enableUdp"], id="enableUdp-not-a-bool"),
])
def test_create_transport_argument_errors(worker: WorkerProcess, router: str, options: Json,
                                          error: str, words: list[str]) -> None:
    server_id = create_server(worker)
    data: Json = {"transportId": new_id("transport"), "webRtcServerId": server_id, **options}
    data = {key: value for key, value in data.items() if value is not None}
    response = worker.request("router.createWebRtcTransport", router, data)
    assert_error(response, error, "[method:router.createWebRtcTransport]", *words)
    assert worker.ok("router.dump", router)["transportIds"] == []
    dump = server_dump(worker, server_id)
    assert dump["webRtcTransportIds"] == []
    assert dump["localIceUsernameFragments"] == []
    assert sorted(worker.ok("worker.dump")["channelMessageHandlers"]
                  ["channelRequestHandlers"]) == sorted([router, server_id])


def test_duplicate_transport_id_is_an_error(worker: WorkerProcess, router: str) -> None:
    transport = create_transport(worker, router, listenInfos=udp_tcp())
    response = worker.request("router.createWebRtcTransport", router, {
        "transportId": transport["id"], "listenInfos": udp_tcp()})
    assert_error(response, "Error")
    assert worker.ok("router.dump", router)["transportIds"] == [transport["id"]]


@pytest.mark.parametrize("mode", ["own", "server"])
def test_transport_dump_fields(worker: WorkerProcess, router: str, mode: str) -> None:
    if mode == "server":
        server_id = create_server(worker)
        transport = create_transport(worker, router, webRtcServerId=server_id)
    else:
        transport = create_transport(worker, router, listenInfos=udp_tcp())
    assert worker.ok("transport.dump", transport["id"]) == transport
    assert worker.ok("router.dump", router)["transportIds"] == [transport["id"]]
    assert transport["iceRole"] == "controlled"
    params = transport["iceParameters"]
    assert set(params) == {"usernameFragment", "password", "iceLite"}
    assert params["iceLite"] is True
    assert isinstance(params["usernameFragment"], str) and len(params["usernameFragment"]) >= 4
    assert isinstance(params["password"], str) and len(params["password"]) >= 22
    assert transport["iceState"] == "new"
    assert "iceSelectedTuple" not in transport
    assert transport["dtlsState"] == "new"
    assert transport["dtlsParameters"]["role"] == "auto"
    fingerprints = transport["dtlsParameters"]["fingerprints"]
    assert [f["algorithm"] for f in fingerprints] == list(FINGERPRINT_BYTES)
    for fingerprint in fingerprints:
        assert HEX_COLON.match(fingerprint["value"]), fingerprint
        assert len(fingerprint["value"].split(":")) == FINGERPRINT_BYTES[fingerprint["algorithm"]]

    candidates = {c["protocol"]: c for c in transport["iceCandidates"]}
    assert set(candidates) == {"udp", "tcp"}
    for protocol, c in candidates.items():
        assert c["foundation"] == f"{protocol}candidate"
        assert c["address"] == c["ip"] == IPV4
        assert c["type"] == "host"
        assert isinstance(c["port"], int) and c["port"] > 0
        assert isinstance(c["priority"], int)
    assert candidates["tcp"]["tcpType"] == "passive"
    assert "tcpType" not in candidates["udp"]

    # Two transports never share credentials.
    again = create_transport(worker, router, listenInfos=udp_tcp())
    assert again["iceParameters"]["usernameFragment"] != params["usernameFragment"]
    assert again["iceParameters"]["password"] != params["password"]


@pytest.mark.parametrize("order", [("udp", "tcp"), ("tcp", "udp")])
def test_own_listen_infos_order_sets_priorities(worker: WorkerProcess, router: str,
                                                order: tuple[str, str]) -> None:
    transport = create_transport(worker, router,
                                 listenInfos=[{"protocol": p, "ip": IPV4} for p in order])
    assert priorities(transport) == {
        order[0]: priority(LOCAL_PREFERENCE_START),
        order[1]: priority(LOCAL_PREFERENCE_START - LOCAL_PREFERENCE_STEP),
    }
    # preferUdp/preferTcp only apply with a server: the listenInfos order decides here.
    preferred = create_transport(worker, router,
                                 listenInfos=[{"protocol": p, "ip": IPV4} for p in order],
                                 preferUdp=order[1] == "udp", preferTcp=order[1] == "tcp")
    assert priorities(preferred) == priorities(transport)


@pytest.mark.parametrize(("options", "expected"), [
    pytest.param({}, {"udp": 0, "tcp": 1}, id="default"),
    pytest.param({"preferUdp": True}, {"udp": 0 + 10, "tcp": 1}, id="preferUdp"),
    pytest.param({"preferTcp": True}, {"udp": 0, "tcp": 1 + 10}, id="preferTcp"),
    pytest.param({"enableUdp": False}, {"tcp": 1}, id="tcp-only"),
    pytest.param({"enableTcp": False, "preferUdp": True}, {"udp": 10}, id="udp-only"),
])
def test_server_candidate_priorities(worker: WorkerProcess, router: str, options: Json,
                                     expected: dict[str, int]) -> None:
    """``expected``: protocol -> index in listenInfos, plus 10 for the preferred bonus."""
    server_id = create_server(worker)
    transport = create_transport(worker, router, webRtcServerId=server_id, **options)

    def value(code: int) -> int:
        index, bonus = code % 10, PREFERRED_BONUS if code >= 10 else 0
        return priority(LOCAL_PREFERENCE_START - index * LOCAL_PREFERENCE_STEP + bonus)

    assert priorities(transport) == {protocol: value(code) for protocol, code in expected.items()}


@pytest.mark.parametrize("mode", ["own", "server"])
def test_announced_address_is_the_candidate_address(worker: WorkerProcess, router: str,
                                                    mode: str) -> None:
    infos = [{"protocol": "udp", "ip": IPV4, "announcedAddress": "203.0.113.7"},
             {"protocol": "tcp", "ip": IPV4, "announcedAddress": "media.example.com"}]
    if mode == "server":
        server_id = create_server(worker, infos)
        transport = create_transport(worker, router, webRtcServerId=server_id)
        dump = server_dump(worker, server_id)
        assert [s["ip"] for s in dump["udpSockets"] + dump["tcpServers"]] == [IPV4, IPV4]
    else:
        transport = create_transport(worker, router, listenInfos=infos)
    addresses = {c["protocol"]: (c["address"], c["ip"]) for c in transport["iceCandidates"]}
    assert addresses == {"udp": ("203.0.113.7", "203.0.113.7"),
                         "tcp": ("media.example.com", "media.example.com")}


def test_connect_before_ice_waits_for_ice(worker: WorkerProcess, router: str) -> None:
    """connect is accepted before ICE; DTLS starts only once ICE is connected (mediasoup)."""
    transport = create_transport(worker, router, listenInfos=udp_tcp())
    response = worker.request("transport.connect", transport["id"], {"dtlsParameters": {
        "role": "client",
        "fingerprints": [{"algorithm": "sha-256", "value": ":".join(["AB"] * 32)}]}})
    assert response["accepted"] is True and response["data"] == {"dtlsLocalRole": "server"}
    dump = worker.ok("transport.dump", transport["id"])
    assert (dump["iceState"], dump["dtlsState"]) == ("new", "new")
    assert dump["dtlsParameters"]["role"] == "server"


# -- close order ----------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["closeWebRtcServer", "webRtcServer.close"])
def test_closing_the_server_closes_its_transports_first(worker: WorkerProcess, router: str,
                                                        clients: list[Any], how: str) -> None:
    server_id = create_server(worker)
    dump = server_dump(worker, server_id)
    udp_port, tcp_port = dump["udpSockets"][0]["port"], dump["tcpServers"][0]["port"]
    transports = [create_transport(worker, router, webRtcServerId=server_id) for _ in range(2)]
    own = create_transport(worker, router, listenInfos=udp_tcp())
    # Each transport gets an ICE-TCP tuple and a UDP tuple; one connection stays pending.
    tcp_clients = []
    for transport in transports:
        creds = IceCredentials.of(transport)
        tcp = IceTcpClient(candidate(transport, "tcp"))
        udp = IceUdpClient(IPV4)
        clients.extend([tcp, udp])
        tcp_clients.append(tcp)
        assert tcp.request(creds, use_candidate=True).message_class is stun.StunClass.SUCCESS
        assert udp.request(creds, candidate(transport, "udp")).message_class is \
            stun.StunClass.SUCCESS
    pending = IceTcpClient(candidate(transports[0], "tcp"))
    clients.append(pending)
    tcp_clients.append(pending)
    wait_until(lambda: pools_in_use(worker)["tcpRecv"] == 3, "three TCP connections accepted")
    assert len(server_dump(worker, server_id)["tupleHashes"]) == 4
    worker.drain()  # the ICE notifications
    worker.notifications.clear()

    if how == "closeWebRtcServer":
        worker.ok("worker.closeWebRtcServer", data={"webRtcServerId": server_id})
    else:
        worker.ok("webRtcServer.close", server_id)

    assert worker.ok("router.dump", router)["transportIds"] == [own["id"]]
    for transport in transports:
        assert_error(worker.request("transport.dump", transport["id"]), "Error",
                     transport["id"])
        assert_error(worker.request("transport.restartIce", transport["id"]), "Error")
    for tcp in tcp_clients:
        assert tcp.closed_by_peer()
    assert pools_in_use(worker) == {"udpRecv": 0, "rtpPacket": 0, "tcpRecv": 0}
    assert port_is_free(socket.SOCK_DGRAM, udp_port)
    assert port_is_free(socket.SOCK_STREAM, tcp_port)
    # The closed transports said nothing after the close response.
    leftover = worker.notifications + worker.drain()
    assert [m for m in leftover
            if m.get("handlerId") in {t["id"] for t in transports}] == []
    # The transport with its own sockets is untouched.
    assert worker.ok("transport.dump", own["id"])["iceState"] == "new"


def test_closing_the_router_leaves_the_server(worker: WorkerProcess, router: str,
                                              clients: list[Any]) -> None:
    server_id = create_server(worker)
    transport = create_transport(worker, router, webRtcServerId=server_id)
    tcp = IceTcpClient(candidate(transport, "tcp"))
    clients.append(tcp)
    assert tcp.request(IceCredentials.of(transport)).message_class is stun.StunClass.SUCCESS
    worker.ok("worker.closeRouter", data={"routerId": router})
    assert tcp.closed_by_peer()
    dump = server_dump(worker, server_id)
    assert dump["webRtcTransportIds"] == []
    assert dump["localIceUsernameFragments"] == []
    assert dump["tupleHashes"] == []
    assert pools_in_use(worker)["tcpRecv"] == 0


def test_worker_close_with_servers_and_transports_open() -> None:
    """worker.close with servers, transports and ICE-TCP peers: exit 0 within the deadline,
    every peer's connection closed by the worker."""
    tcp_clients: list[IceTcpClient] = []
    with WorkerProcess() as proc:
        try:
            router_id = create_router(proc)
            transports = [create_transport(proc, router_id, webRtcServerId=server_id)
                          for server_id in (create_server(proc), create_server(proc))]
            transports.append(create_transport(proc, router_id,
                                               listenInfos=[{"protocol": "tcp", "ip": IPV4}]))
            for transport in transports:
                tcp = IceTcpClient(candidate(transport, "tcp"))
                tcp_clients.append(tcp)
                response = tcp.request(IceCredentials.of(transport))
                assert response.message_class is stun.StunClass.SUCCESS
            tcp_clients.append(IceTcpClient(candidate(transports[0], "tcp")))  # pending

            assert proc.request("worker.close")["accepted"] is True
            # A bound, not a timing measurement: PROTOCOL.md says the worker exits within 2 s.
            assert proc.wait(timeout=CLOSE_DEADLINE_S) == 0, proc.stderr_text()
            for tcp in tcp_clients:
                assert tcp.closed_by_peer()
        finally:
            for tcp in tcp_clients:
                tcp.close()
