"""ICE end to end: real peers against the real worker's WebRtcTransport (ICE-lite, controlled).

- A full ICE agent (aioice, controlling) completes connectivity checks over UDP against a
  transport with its own listenInfos and one reached through a WebRtcServer, on IPv4 and IPv6
  loopback; the notifications come in mediasoup's order, the dump agrees with the peer's
  address, and data sent afterwards is received on the selected tuple.
- ICE-TCP (RFC 4571) with the test client: binding responses, nomination, ICE restart, error
  responses (400, 401, 487) that change nothing, consent expiry, peers that close or reset,
  the 8-tuple limit, and the ownership rule that matters most: every TCP connection a tuple
  held is closed by the worker and its receive buffer returned the moment the tuple goes.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import aioice
import aioice.ice
import pytest

from tests.ice_client import (
    BINDING,
    IceCredentials,
    IceTcpClient,
    binding_request,
    error_code,
    parse_response,
)
from tests.loopback import FAMILIES, IPV4
from tests.reference import stun
from tests.worker_process import WorkerProcess

Json = dict[str, Any]

WAIT_S = 5.0
# The consent test: the smallest iceConsentTimeout mediasoup accepts, and how long past it we
# wait for the worker to act (a bound, not a timing assertion).
CONSENT_TIMEOUT_S = 10
CONSENT_GRACE_S = 6.0




# -- helpers --------------------------------------------------------------------------------


def new_id(prefix: str) -> str:
    return f"{prefix}-{os.urandom(6).hex()}"


def lent(worker: WorkerProcess, pool: str = "tcpRecv") -> int:
    in_use: int = worker.ok("worker.dump")["bufferPools"][pool]["inUse"]
    return in_use


def wait_until(check: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    """Poll ``check`` (each call is a request to the worker) until it holds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def wait_notification(worker: WorkerProcess, handler_id: str, event: str,
                      timeout: float = WAIT_S) -> Json:
    """The first kept-aside notification ``event`` from ``handler_id`` (removed from the list)."""
    deadline = time.monotonic() + timeout
    while True:
        for index, message in enumerate(worker.notifications):
            if message["handlerId"] == handler_id and message["event"] == event:
                return worker.notifications.pop(index)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no {event} from {handler_id}: {worker.notifications}")
        try:
            message = worker.read_message(timeout=remaining)
        except AssertionError:
            continue
        worker._keep(message)


def events_of(worker: WorkerProcess, handler_id: str,
              quiet_s: float = 0.2) -> list[tuple[str, Any]]:
    """Every notification from ``handler_id`` so far (until the worker is quiet), consumed."""
    for message in worker.drain(quiet_s):
        worker._keep(message)
    mine = [m for m in worker.notifications if m["handlerId"] == handler_id]
    worker.notifications = [m for m in worker.notifications if m["handlerId"] != handler_id]
    return [(m["event"], m["data"]) for m in mine]


def tuple_of(client: IceTcpClient, server: tuple[str, int]) -> Json:
    host, port = client.sock.getsockname()[:2]
    return {"localAddress": server[0], "localPort": server[1], "remoteIp": host,
            "remotePort": port, "protocol": "tcp"}


def without_counters(dump: Json) -> Json:
    return {key: value for key, value in dump.items()
            if key not in ("counters", "listenerCounters")}


class Setup:
    """A router and, for ``mode == "server"``, a WebRtcServer; makes transports on either."""

    def __init__(self, worker: WorkerProcess, mode: str, ip: str, protocols: tuple[str, ...]):
        self.worker = worker
        self.mode = mode
        self.ip = ip
        self.protocols = protocols
        self.router_id = new_id("router")
        worker.ok("worker.createRouter", data={"routerId": self.router_id, "mediaCodecs": []})
        self.server_id: str | None = None
        if mode == "server":
            self.server_id = new_id("server")
            worker.ok("worker.createWebRtcServer", data={
                "webRtcServerId": self.server_id,
                "listenInfos": [{"protocol": p, "ip": ip} for p in protocols],
            })

    def transport(self, **options: Any) -> Json:
        data: Json = {"transportId": new_id("transport"), **options}
        if self.server_id is not None:
            data["webRtcServerId"] = self.server_id
            data.setdefault("enableTcp", "tcp" in self.protocols)
            data.setdefault("enableUdp", "udp" in self.protocols)
        else:
            data["listenInfos"] = [{"protocol": p, "ip": self.ip} for p in self.protocols]
        dump: Json = self.worker.ok("router.createWebRtcTransport", self.router_id, data)
        return dump

    def server_dump(self) -> Json:
        assert self.server_id is not None
        dump: Json = self.worker.ok("webRtcServer.dump", self.server_id)
        return dump


def candidate(transport: Json, protocol: str) -> tuple[str, int]:
    found = [c for c in transport["iceCandidates"] if c["protocol"] == protocol]
    assert len(found) == 1, transport["iceCandidates"]
    return found[0]["ip"], found[0]["port"]


def dump_of(worker: WorkerProcess, transport: Json) -> Json:
    dump: Json = worker.ok("transport.dump", transport["id"])
    return dump


@pytest.fixture(params=["own", "server"])
def mode(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
def clients(worker: WorkerProcess) -> Iterator[list[IceTcpClient]]:
    """TCP clients a test opens. At teardown they are closed (FIN), and the worker must then
    give their receive buffers back (the worker fixture checks every pool after this)."""
    opened: list[IceTcpClient] = []
    yield opened
    for client in opened:
        client.close()
    if worker.proc.poll() is None:
        wait_until(lambda: lent(worker) == 0, "the closed clients' buffers returned")


# -- aioice over UDP ------------------------------------------------------------------------


def remote_candidates(transport: Json) -> list[aioice.Candidate]:
    return [
        aioice.Candidate(foundation=c["foundation"], component=1, transport=c["protocol"],
                         priority=c["priority"], host=c["ip"], port=c["port"], type=c["type"],
                         tcptype=c.get("tcpType"))
        for c in transport["iceCandidates"]
    ]


async def aioice_session(worker: WorkerProcess, transport: Json, remote_is_lite: bool,
                         payload: bytes) -> tuple[str, int]:
    """Connect a controlling aioice agent to ``transport``, send ``payload`` on component 1,
    and wait until the worker counts it; returns the agent's local (host, port)."""
    conn = aioice.Connection(ice_controlling=True, components=1)
    conn.remote_is_lite = remote_is_lite
    try:
        await conn.gather_candidates()
        assert len(conn.local_candidates) == 1, conn.local_candidates
        local = conn.local_candidates[0]
        params = transport["iceParameters"]
        conn.remote_username = params["usernameFragment"]
        conn.remote_password = params["password"]
        for remote in remote_candidates(transport):
            await conn.add_remote_candidate(remote)
        await conn.add_remote_candidate(None)
        await asyncio.wait_for(conn.connect(), timeout=WAIT_S)

        before = await asyncio.to_thread(dump_of, worker, transport)
        await conn.sendto(payload, 1)
        deadline = time.monotonic() + WAIT_S
        while True:
            after = await asyncio.to_thread(dump_of, worker, transport)
            grown = after["counters"]["bytesReceived"] - before["counters"]["bytesReceived"]
            if grown >= len(payload):
                break
            assert time.monotonic() < deadline, "the worker never counted the data sent"
            await asyncio.sleep(0.02)
        assert grown == len(payload)
        assert after["counters"]["packetsIgnored"] == before["counters"]["packetsIgnored"] + 1
        return local.host, local.port
    finally:
        await conn.close()


@pytest.mark.parametrize("ip", FAMILIES)
@pytest.mark.parametrize("remote_is_lite", [False, True], ids=["aggressive", "regular"])
def test_aioice_connects_over_udp(worker: WorkerProcess, monkeypatch: pytest.MonkeyPatch,
                                  mode: str, ip: str, remote_is_lite: bool) -> None:
    """A full ICE agent completes checks; notifications, dump and data agree with it."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses",
                        lambda use_ipv4, use_ipv6: [ip])
    setup = Setup(worker, mode, ip, ("udp", "tcp"))
    transport = setup.transport()
    assert transport["iceState"] == "new"
    server = candidate(transport, "udp")
    # RTP-looking bytes: not STUN, so the worker counts them as data on the tuple.
    payload = bytes([0x80, 96]) + os.urandom(10) + b"media" * 20

    local = asyncio.run(aioice_session(worker, transport, remote_is_lite, payload))

    expected_tuple = {"localAddress": server[0], "localPort": server[1], "remoteIp": local[0],
                      "remotePort": local[1], "protocol": "udp"}
    events = events_of(worker, transport["id"])
    # mediasoup's order: the tuple is selected, then the state changes. aioice nominates
    # aggressively (USE-CANDIDATE in its first check: straight to completed) unless told the
    # peer is ICE-lite, when it nominates regularly (a check, then the same check with
    # USE-CANDIDATE: connected, then completed). Its consent checks afterwards change nothing.
    states = ["connected", "completed"] if remote_is_lite else ["completed"]
    assert events == [("iceselectedtuplechange", {"iceSelectedTuple": expected_tuple}),
                      *[("icestatechange", {"iceState": s}) for s in states]]
    dump = dump_of(worker, transport)
    assert dump["iceState"] == "completed"
    assert dump["iceSelectedTuple"] == expected_tuple
    assert dump["iceTuples"] == [expected_tuple]
    if setup.server_id is not None:
        hashes = setup.server_dump()["tupleHashes"]
        assert [h["webRtcTransportId"] for h in hashes] == [transport["id"]]
    worker.ok("transport.close", transport["id"])
    if setup.server_id is not None:
        assert setup.server_dump()["tupleHashes"] == []


# -- ICE-TCP --------------------------------------------------------------------------------


@pytest.mark.parametrize("ip", FAMILIES)
def test_tcp_binding_and_nomination(worker: WorkerProcess, clients: list[IceTcpClient],
                                    mode: str, ip: str) -> None:
    setup = Setup(worker, mode, ip, ("tcp",))
    transport = setup.transport()
    creds = IceCredentials.of(transport)
    server = candidate(transport, "tcp")
    client = IceTcpClient(server)
    clients.append(client)
    wait_until(lambda: lent(worker) == 1, "the accepted connections' buffers")

    response = client.request(creds)
    assert response.message_class is stun.StunClass.SUCCESS
    assert response.method == BINDING
    assert response.fingerprint_valid is True
    assert response.attributes[stun.XOR_MAPPED_ADDRESS] == client.sock.getsockname()[:2]
    expected = tuple_of(client, server)
    assert events_of(worker, transport["id"]) == [
        ("iceselectedtuplechange", {"iceSelectedTuple": expected}),
        ("icestatechange", {"iceState": "connected"}),
    ]

    response = client.request(creds, use_candidate=True)
    assert response.message_class is stun.StunClass.SUCCESS
    assert events_of(worker, transport["id"]) == [("icestatechange", {"iceState": "completed"})]
    dump = dump_of(worker, transport)
    assert dump["iceState"] == "completed"
    assert dump["iceSelectedTuple"] == expected
    assert dump["counters"]["tcpConnections"] == 1
    if setup.server_id is not None:
        server_dump = setup.server_dump()
        assert [h["webRtcTransportId"] for h in server_dump["tupleHashes"]] == [transport["id"]]
        assert server_dump["counters"]["tcpConnectionsPending"] == 0

    # Closing the transport closes its connection at once, whoever owns the listening socket.
    worker.ok("router.closeTransport", setup.router_id, {"transportId": transport["id"]})
    assert client.closed_by_peer()
    assert lent(worker) == 0
    if setup.server_id is not None:
        assert setup.server_dump()["tupleHashes"] == []


def test_success_response_is_signed_with_the_password(worker: WorkerProcess,
                                                      clients: list[IceTcpClient]) -> None:
    setup = Setup(worker, "server", IPV4, ("tcp",))
    transport = setup.transport()
    creds = IceCredentials.of(transport)
    client = IceTcpClient(candidate(transport, "tcp"))
    clients.append(client)
    raw, response = signed_request(client, creds)
    assert response.attributes[stun.XOR_MAPPED_ADDRESS] == client.sock.getsockname()[:2]
    assert stun.check_message_integrity(raw, response, creds.password.encode())
    assert not stun.check_message_integrity(raw, response, b"not the password")


def signed_request(client: IceTcpClient,
                   creds: IceCredentials) -> tuple[bytes, stun.StunMessage]:
    """A valid binding request; the raw response and its parse."""
    tid, request = stun_request(creds)
    client.send_frame(request)
    raw = client.read_frame()
    response = parse_response(raw)
    assert response.transaction_id == tid
    return raw, response


def stun_request(creds: IceCredentials, *, attributes: dict[int, Any] | None = None,
                 password: str | None = None) -> tuple[bytes, bytes]:
    """A binding request with exactly ``attributes`` (default: a valid controlling check)."""
    tid = os.urandom(12)
    if attributes is None:
        attributes = {stun.USERNAME: f"{creds.local_ufrag}:{creds.remote_ufrag}".encode(),
                      stun.PRIORITY: 1853817087, stun.ICE_CONTROLLING: 1}
    message = stun.StunMessage(BINDING, stun.StunClass.REQUEST, tid, attributes)
    key = (password if password is not None else creds.password).encode()
    return tid, message.build(integrity_key=key)


def test_restart_ice_keeps_old_credentials_until_new_ones_are_used(
        worker: WorkerProcess, clients: list[IceTcpClient], mode: str) -> None:
    setup = Setup(worker, mode, IPV4, ("tcp",))
    transport = setup.transport()
    old = IceCredentials.of(transport)
    client = IceTcpClient(candidate(transport, "tcp"))
    clients.append(client)
    assert client.request(old).message_class is stun.StunClass.SUCCESS

    restarted = worker.ok("transport.restartIce", transport["id"])
    params = restarted["iceParameters"]
    assert set(params) == {"usernameFragment", "password", "iceLite"}
    assert params["iceLite"] is True
    assert params["usernameFragment"] != old.local_ufrag
    assert params["password"] != old.password
    assert dump_of(worker, transport)["iceParameters"] == params
    new = IceCredentials(params["usernameFragment"], params["password"])
    if setup.server_id is not None:
        ufrags = {u["localIceUsernameFragment"]
                  for u in setup.server_dump()["localIceUsernameFragments"]}
        assert ufrags == {old.local_ufrag, new.local_ufrag}

    # The old credentials still work, on the known tuple and on a new connection.
    assert client.request(old).message_class is stun.StunClass.SUCCESS
    second = IceTcpClient(candidate(transport, "tcp"))
    clients.append(second)
    assert second.request(old).message_class is stun.StunClass.SUCCESS
    # A mix (new ufrag, old password) is not accepted.
    mixed = IceCredentials(new.local_ufrag, old.password)
    assert error_code(client.request(mixed)) == 401

    # The first request with the new credentials retires the old ones; the answer is signed
    # with the new password.
    raw, response = signed_request(client, new)
    assert response.message_class is stun.StunClass.SUCCESS
    assert stun.check_message_integrity(raw, response, new.password.encode())
    assert error_code(client.request(old)) == 401
    assert error_code(second.request(old)) == 401
    assert client.request(new).message_class is stun.StunClass.SUCCESS
    if setup.server_id is not None:
        listed = [u["localIceUsernameFragment"]
                  for u in setup.server_dump()["localIceUsernameFragments"]]
        assert listed == [new.local_ufrag]
        # A new connection with the old ufrag is no longer routed to the transport at all.
        third = IceTcpClient(candidate(transport, "tcp"))
        clients.append(third)
        _, request = stun_request(old)
        before = setup.server_dump()["counters"]["droppedUnknown"]
        third.send_frame(request)
        wait_until(lambda: setup.server_dump()["counters"]["droppedUnknown"] == before + 1,
                   "the old ufrag's request dropped as unknown")


def test_wrong_message_integrity_gets_401_and_changes_nothing(
        worker: WorkerProcess, clients: list[IceTcpClient], mode: str) -> None:
    setup = Setup(worker, mode, IPV4, ("tcp",))
    transport = setup.transport()
    creds = IceCredentials.of(transport)
    server = candidate(transport, "tcp")
    selected = IceTcpClient(server)
    clients.append(selected)
    assert selected.request(creds).message_class is stun.StunClass.SUCCESS
    events_of(worker, transport["id"])
    before = dump_of(worker, transport)
    server_before = setup.server_dump() if setup.server_id is not None else None

    # On the known tuple, with USE-CANDIDATE (which would otherwise complete ICE) ...
    response = selected.request(creds, password="wrong password", use_candidate=True)
    assert error_code(response) == 401
    # ... and on a new connection, which must not become a tuple.
    newcomer = IceTcpClient(server)
    clients.append(newcomer)
    response = newcomer.request(creds, password="wrong password", use_candidate=True)
    assert error_code(response) == 401
    assert stun.MESSAGE_INTEGRITY not in response.attributes  # nothing signed with a bad key

    after = dump_of(worker, transport)
    assert without_counters(after) == without_counters(before)
    assert after["counters"]["stunRejected"] == before["counters"]["stunRejected"] + 2
    assert after["counters"]["tcpConnections"] == 1
    assert events_of(worker, transport["id"]) == []
    if server_before is not None:
        server_after = setup.server_dump()
        assert server_after["tupleHashes"] == server_before["tupleHashes"]
        assert server_after["counters"]["tcpConnectionsPending"] == 1  # the newcomer
    # The newcomer's connection is still usable with the right credentials.
    assert newcomer.request(creds).message_class is stun.StunClass.SUCCESS
    assert len(dump_of(worker, transport)["iceTuples"]) == 2


@pytest.mark.parametrize(("case", "code"), [
    ("no-priority", 400),
    ("no-fingerprint", 400),
    ("no-integrity", 400),
    ("no-username", 400),
    ("bad-username", 401),
    ("ice-controlled", 487),
    ("other-method", 400),
])
def test_error_responses(worker: WorkerProcess, clients: list[IceTcpClient], mode: str,
                         case: str, code: int) -> None:
    setup = Setup(worker, mode, IPV4, ("tcp",))
    transport = setup.transport()
    creds = IceCredentials.of(transport)
    username = f"{creds.local_ufrag}:{creds.remote_ufrag}".encode()
    attributes: dict[int, Any] = {stun.USERNAME: username, stun.PRIORITY: 1853817087,
                                  stun.ICE_CONTROLLING: 1, stun.USE_CANDIDATE: True}
    password: str | None = creds.password
    method = BINDING
    if case == "no-priority":
        del attributes[stun.PRIORITY]
    elif case == "no-integrity":
        password = None
    elif case == "no-username":
        del attributes[stun.USERNAME]
    elif case == "bad-username":
        attributes[stun.USERNAME] = creds.local_ufrag.encode()  # no ":<remote ufrag>"
    elif case == "ice-controlled":
        del attributes[stun.ICE_CONTROLLING]
        attributes[stun.ICE_CONTROLLED] = 1
    elif case == "other-method":
        method = 0x003  # a TURN Allocate
    tid = os.urandom(12)
    message = stun.StunMessage(method, stun.StunClass.REQUEST, tid, attributes)
    data = message.build(integrity_key=None if password is None else password.encode(),
                         fingerprint=case != "no-fingerprint")

    client = IceTcpClient(candidate(transport, "tcp"))
    clients.append(client)
    if case == "no-username":
        # A request without USERNAME names no transport: on a connection no transport owns yet
        # it is dropped (see test_network_fuzz). On a known tuple it reaches ICE: 400.
        assert client.request(creds).message_class is stun.StunClass.SUCCESS
        events_of(worker, transport["id"])
    before = dump_of(worker, transport)
    client.send_frame(data)
    response = parse_response(client.read_frame())
    assert response.transaction_id == tid
    assert response.message_class is stun.StunClass.ERROR
    assert error_code(response) == code
    assert response.fingerprint_valid is True
    after = dump_of(worker, transport)
    assert without_counters(after) == without_counters(before)
    assert after["counters"]["stunRejected"] == before["counters"]["stunRejected"] + 1
    assert events_of(worker, transport["id"]) == []


def test_error_response_has_the_request_method(worker: WorkerProcess,
                                               clients: list[IceTcpClient]) -> None:
    """RFC 5389 section 7.3.1 (and mediasoup's ``CreateErrorResponse``): the 400 answering a
    request of another method is an error response of that method, not of Binding."""
    setup = Setup(worker, "server", IPV4, ("tcp",))
    transport = setup.transport()
    creds = IceCredentials.of(transport)
    attributes: dict[int, Any] = {
        stun.USERNAME: f"{creds.local_ufrag}:{creds.remote_ufrag}".encode(),
        stun.PRIORITY: 1853817087, stun.ICE_CONTROLLING: 1}
    allocate = 0x003
    tid = os.urandom(12)
    data = stun.StunMessage(allocate, stun.StunClass.REQUEST, tid, attributes).build(
        integrity_key=creds.password.encode())
    client = IceTcpClient(candidate(transport, "tcp"))
    clients.append(client)
    client.send_frame(data)
    response = parse_response(client.read_frame())
    assert response.transaction_id == tid
    assert (response.message_class, error_code(response)) == (stun.StunClass.ERROR, 400)
    assert response.method == allocate


def test_wrong_fingerprint_is_dropped_silently(worker: WorkerProcess,
                                               clients: list[IceTcpClient], mode: str) -> None:
    """A FINGERPRINT that does not match: maybe not STUN at all, so no answer and no change."""
    setup = Setup(worker, mode, IPV4, ("tcp",))
    transport = setup.transport()
    creds = IceCredentials.of(transport)
    client = IceTcpClient(candidate(transport, "tcp"))
    clients.append(client)
    assert client.request(creds).message_class is stun.StunClass.SUCCESS
    events_of(worker, transport["id"])
    before = dump_of(worker, transport)
    _, data = binding_request(creds, use_candidate=True)
    client.send_frame(data[:-1] + bytes([data[-1] ^ 0x01]))
    with pytest.raises(TimeoutError):
        client.read_frame(timeout=0.3)
    after = dump_of(worker, transport)
    assert without_counters(after) == without_counters(before)
    assert after["iceState"] == "connected"  # the USE-CANDIDATE was not taken
    assert after["counters"]["stunRejected"] == before["counters"]["stunRejected"]
    assert events_of(worker, transport["id"]) == []


def test_consent_expiry_closes_the_tcp_connection(worker: WorkerProcess,
                                                  clients: list[IceTcpClient]) -> None:
    """The seed leak's trigger: a peer that goes silent (airplane mode) behind a server."""
    setup = Setup(worker, "server", IPV4, ("udp", "tcp"))
    transport = setup.transport(iceConsentTimeout=CONSENT_TIMEOUT_S)
    creds = IceCredentials.of(transport)
    client = IceTcpClient(candidate(transport, "tcp"))
    clients.append(client)
    assert client.request(creds, use_candidate=True).message_class is stun.StunClass.SUCCESS
    assert [e for e, _ in events_of(worker, transport["id"])] == ["iceselectedtuplechange",
                                                                  "icestatechange"]
    assert lent(worker) == 1
    assert len(setup.server_dump()["tupleHashes"]) == 1

    # The client stays connected and silent: the worker must close it when consent expires.
    assert client.closed_by_peer(timeout=CONSENT_TIMEOUT_S + CONSENT_GRACE_S)
    notification = wait_notification(worker, transport["id"], "icestatechange")
    assert notification["data"] == {"iceState": "disconnected"}
    dump = dump_of(worker, transport)
    assert dump["iceState"] == "disconnected"
    assert "iceSelectedTuple" not in dump
    assert dump["iceTuples"] == []
    assert dump["counters"]["tcpConnections"] == 0
    assert lent(worker) == 0
    server_dump = setup.server_dump()
    assert server_dump["tupleHashes"] == []
    assert server_dump["counters"]["tcpConnectionsPending"] == 0
    assert server_dump["webRtcTransportIds"] == [transport["id"]]  # the transport stays open
    assert events_of(worker, transport["id"]) == []

    # The transport can connect again with a new connection.
    again = IceTcpClient(candidate(transport, "tcp"))
    clients.append(again)
    assert again.request(creds).message_class is stun.StunClass.SUCCESS
    assert dump_of(worker, transport)["iceState"] == "connected"


@pytest.mark.parametrize("how", ["fin", "rst"])
def test_peer_close_removes_the_tuple(worker: WorkerProcess, clients: list[IceTcpClient],
                                      mode: str, how: str) -> None:
    setup = Setup(worker, mode, IPV4, ("tcp",))
    transport = setup.transport()
    creds = IceCredentials.of(transport)
    server = candidate(transport, "tcp")
    first = IceTcpClient(server)
    second = IceTcpClient(server)
    clients.extend([first, second])
    assert first.request(creds, use_candidate=True).message_class is stun.StunClass.SUCCESS
    assert second.request(creds).message_class is stun.StunClass.SUCCESS
    events_of(worker, transport["id"])
    assert lent(worker) == 2

    def close(client: IceTcpClient) -> None:
        if how == "fin":
            client.close()
        else:
            client.reset()

    # The selected tuple goes: the other one is selected, ICE stays up.
    close(first)
    wait_until(lambda: len(dump_of(worker, transport)["iceTuples"]) == 1, "the tuple removed")
    assert lent(worker) == 1
    dump = dump_of(worker, transport)
    assert dump["iceState"] == "completed"
    assert dump["iceSelectedTuple"] == tuple_of(second, server)
    assert events_of(worker, transport["id"]) == [
        ("iceselectedtuplechange", {"iceSelectedTuple": tuple_of(second, server)})]
    if setup.server_id is not None:
        assert len(setup.server_dump()["tupleHashes"]) == 1

    # The only tuple goes: ICE is disconnected.
    close(second)
    wait_until(lambda: dump_of(worker, transport)["iceTuples"] == [], "the last tuple removed")
    dump = dump_of(worker, transport)
    assert dump["iceState"] == "disconnected"
    assert "iceSelectedTuple" not in dump
    assert dump["counters"]["tcpConnections"] == 0
    assert lent(worker) == 0
    assert events_of(worker, transport["id"]) == [("icestatechange",
                                                   {"iceState": "disconnected"})]
    if setup.server_id is not None:
        assert setup.server_dump()["tupleHashes"] == []


def test_ninth_tuple_evicts_the_oldest_unselected(worker: WorkerProcess,
                                                  clients: list[IceTcpClient],
                                                  mode: str) -> None:
    setup = Setup(worker, mode, IPV4, ("tcp",))
    transport = setup.transport()
    creds = IceCredentials.of(transport)
    server = candidate(transport, "tcp")
    for _ in range(9):
        clients.append(IceTcpClient(server))
    for client in clients[:8]:
        assert client.request(creds).message_class is stun.StunClass.SUCCESS
    dump = dump_of(worker, transport)
    assert dump["iceTuples"] == [tuple_of(c, server) for c in clients[:8]]
    assert dump["iceSelectedTuple"] == tuple_of(clients[0], server)
    events_of(worker, transport["id"])
    wait_until(lambda: lent(worker) == 9, "the accepted connections' buffers")

    # The ninth: the oldest tuple that is not the selected one (the second client's) goes.
    evicted = clients[1]
    assert clients[8].request(creds).message_class is stun.StunClass.SUCCESS
    assert evicted.closed_by_peer()
    dump = dump_of(worker, transport)
    assert dump["iceTuples"] == [tuple_of(c, server) for c in [clients[0], *clients[2:9]]]
    assert dump["iceSelectedTuple"] == tuple_of(clients[0], server)
    assert dump["iceState"] == "connected"
    assert dump["counters"]["tcpConnections"] == 8
    assert lent(worker) == 8
    assert events_of(worker, transport["id"]) == []
    if setup.server_id is not None:
        assert len(setup.server_dump()["tupleHashes"]) == 8
    # The others are untouched and still answered.
    assert clients[0].request(creds).message_class is stun.StunClass.SUCCESS
    assert clients[2].request(creds).message_class is stun.StunClass.SUCCESS

    worker.ok("transport.close", transport["id"])
    for client in [clients[0], *clients[2:9]]:
        assert client.closed_by_peer()
    assert lent(worker) == 0


def test_nomination_moves_the_selected_tuple(worker: WorkerProcess,
                                             clients: list[IceTcpClient], mode: str) -> None:
    setup = Setup(worker, mode, IPV4, ("tcp",))
    transport = setup.transport()
    creds = IceCredentials.of(transport)
    server = candidate(transport, "tcp")
    a, b, c = IceTcpClient(server), IceTcpClient(server), IceTcpClient(server)
    clients.extend([a, b, c])
    assert a.request(creds, use_candidate=True).message_class is stun.StunClass.SUCCESS
    assert b.request(creds).message_class is stun.StunClass.SUCCESS
    assert c.request(creds).message_class is stun.StunClass.SUCCESS
    assert events_of(worker, transport["id"]) == [
        ("iceselectedtuplechange", {"iceSelectedTuple": tuple_of(a, server)}),
        ("icestatechange", {"iceState": "completed"}),
    ]

    # USE-CANDIDATE on another tuple selects it.
    assert b.request(creds, use_candidate=True).message_class is stun.StunClass.SUCCESS
    assert events_of(worker, transport["id"]) == [
        ("iceselectedtuplechange", {"iceSelectedTuple": tuple_of(b, server)})]
    assert dump_of(worker, transport)["iceSelectedTuple"] == tuple_of(b, server)
    # A plain check on the first tuple does not take it back.
    assert a.request(creds).message_class is stun.StunClass.SUCCESS
    assert events_of(worker, transport["id"]) == []

    # Renomination: a higher NOMINATION value selects its tuple; a value not higher does not.
    assert c.request(creds, nomination=5).message_class is stun.StunClass.SUCCESS
    assert events_of(worker, transport["id"]) == [
        ("iceselectedtuplechange", {"iceSelectedTuple": tuple_of(c, server)})]
    assert a.request(creds, nomination=5).message_class is stun.StunClass.SUCCESS
    assert events_of(worker, transport["id"]) == []
    assert a.request(creds, nomination=6).message_class is stun.StunClass.SUCCESS
    assert events_of(worker, transport["id"]) == [
        ("iceselectedtuplechange", {"iceSelectedTuple": tuple_of(a, server)})]
    dump = dump_of(worker, transport)
    assert dump["iceSelectedTuple"] == tuple_of(a, server)
    assert dump["iceState"] == "completed"
    assert lent(worker) == 3
