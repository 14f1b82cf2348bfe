"""The seed-leak scenario: many ICE-TCP peers through one WebRtcServer, then every way to part.

mediasoup issue #1381 (reference/mediasoup.md section 1): a WebRtcTransport reached through a
WebRtcServer over TCP closed its connection's socket but never gave the 64 KiB receive buffer
back, so a server lost 64 KiB per closed ICE-TCP peer. This module drives the real worker
through the same situation, many peers at a time, and checks that everything the peers held is
free again: the ``tcpRecv`` pool (every pool), the server's tuple and username-fragment maps,
and the worker's file descriptors.

It is shared by ``tests/test_seed_regression.py`` (the regression test) and
``perf/bm_churn.py`` (the churn benchmark). A :class:`SeedRig` holds one worker, one router and
a TCP-only WebRtcServer on 127.0.0.1; :meth:`SeedRig.open_peers` creates transports through the
server and completes ICE (USE-CANDIDATE) with one :class:`~tests.ice_client.IceTcpClient` each;
the ``round_*`` functions are the ways a round ends; :meth:`SeedRig.check_freed` is the leak
checker, which raises ``AssertionError`` naming what is still held.

Everything is pipelined so that hundreds of peers take a fraction of a second: worker requests
go out in batches of frames written at once, every client sends its binding request before any
response is read, and no wait is unbounded.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from channel.codec import encode_frame
from tests.ice_client import IceCredentials, IceTcpClient, binding_request, parse_response
from tests.reference import stun

__all__ = [
    "CONSENT_TIMEOUT_S",
    "HALF_FRAME",
    "ROUNDS",
    "ROUTER_ID",
    "PeerSet",
    "SeedRig",
    "WorkerChannel",
    "fd_count",
    "round_consent_expiry",
    "round_controller_close",
    "round_half_frame",
    "round_reset",
    "round_server_close",
    "rss_bytes",
]

ROUTER_ID: Final = "seed-router"
SERVER_ID_PREFIX: Final = "seed-server"
PIPELINE_FRAMES: Final = 50  # request frames written at once (well under a pipe's 64 KiB)
RESPONSE_TIMEOUT_S: Final = 10.0
STUN_TIMEOUT_S: Final = 5.0
PEER_CLOSE_TIMEOUT_S: Final = 5.0
CONSENT_TIMEOUT_S: Final = 10  # the smallest iceConsentTimeout mediasoup accepts
# Consent expires CONSENT_TIMEOUT_S after the last valid request; this is the margin on top.
CONSENT_MARGIN_S: Final = 8.0
# "Half a frame": an RFC 4571 header announcing 100 bytes, followed by only 40 of them.
HALF_FRAME: Final = struct.pack("!H", 100) + bytes(range(40))


class WorkerChannel(Protocol):
    """What the scenario needs of a worker client: :class:`tests.worker_process.WorkerProcess`
    (named structurally, so that ``perf/`` can use this module under mypy's strict mode)."""

    notifications: list[dict[str, Any]]
    logs: list[dict[str, Any]]
    other_responses: list[dict[str, Any]]

    @property
    def pid(self) -> int: ...

    def ok(self, method: str, handler_id: str = "", data: Any = None) -> Any: ...

    def send_bytes(self, data: bytes) -> None: ...

    def next_id(self) -> int: ...

    def read_message(self, timeout: float = 10.0) -> Any: ...

    def close(self) -> None: ...


def fd_count(pid: int) -> int:
    """Open file descriptors of process ``pid``."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_bytes(pid: int) -> int:
    """Resident set size of process ``pid`` (VmRSS), in bytes."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


# -- pipelined requests ------------------------------------------------------------------------

def _stash(worker: WorkerChannel, message: dict[str, Any]) -> None:
    """Keep a message that is not one of the awaited responses where WorkerProcess keeps it."""
    if "event" in message:
        worker.notifications.append(message)
    elif "log" in message:
        worker.logs.append(message)
    else:
        worker.other_responses.append(message)


def pipeline(worker: WorkerChannel, requests: Sequence[tuple[str, str, dict[str, Any]]],
             timeout: float = RESPONSE_TIMEOUT_S) -> list[Any]:
    """Send ``(method, handlerId, data)`` requests in batches of frames written at once and
    return each one's response data, in request order; every request must be accepted.
    Responses may come in any order (PROTOCOL.md); they are matched by id."""
    results: list[Any] = []
    for start in range(0, len(requests), PIPELINE_FRAMES):
        batch = requests[start : start + PIPELINE_FRAMES]
        ids = [worker.next_id() for _ in batch]
        worker.send_bytes(b"".join(
            encode_frame({"id": rid, "method": method, "handlerId": handler, "data": data})
            for rid, (method, handler, data) in zip(ids, batch, strict=True)))
        pending = set(ids)
        answers: dict[int, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout
        while pending:
            message = worker.read_message(timeout=max(0.0, deadline - time.monotonic()))
            rid = message.get("id")
            if "accepted" in message and rid in pending:
                pending.discard(rid)
                answers[rid] = message
            else:
                _stash(worker, message)
        for rid, (method, _, _) in zip(ids, batch, strict=True):
            answer = answers[rid]
            assert answer["accepted"] is True, f"{method} refused: {answer}"
            results.append(answer.get("data"))
    return results


def wait_notifications(worker: WorkerChannel, event: str,
                       expected: dict[str, Callable[[Any], bool]], timeout: float) -> None:
    """Wait (at most ``timeout``) until each handlerId of ``expected`` has sent ``event``
    with data its predicate accepts; those notifications are consumed, the others kept."""
    waiting = dict(expected)

    def take_matching() -> None:
        kept = []
        for note in worker.notifications:
            accepts = waiting.get(note.get("handlerId", "")) if note["event"] == event else None
            if accepts is not None and accepts(note.get("data")):
                del waiting[note["handlerId"]]
            else:
                kept.append(note)
        worker.notifications[:] = kept

    take_matching()
    deadline = time.monotonic() + timeout
    while waiting:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{len(waiting)} {event} notification(s) missing after "
                                 f"{timeout} s, e.g. from {sorted(waiting)[:3]}")
        try:
            message = worker.read_message(timeout=remaining)
        except AssertionError:
            continue  # the deadline check above reports it
        _stash(worker, message)
        take_matching()


def wait_ice_states(worker: WorkerChannel, transport_ids: Sequence[str], state: str,
                    timeout: float) -> None:
    """Wait until every transport has notified ``icestatechange`` to ``state``."""
    def is_state(data: Any) -> bool:
        return bool(data["iceState"] == state)

    wait_notifications(worker, "icestatechange", dict.fromkeys(transport_ids, is_state), timeout)


# -- the rig -----------------------------------------------------------------------------------

@dataclass
class PeerSet:
    """Transports created through the server, and the ICE-TCP client connected to each."""

    transport_ids: list[str]
    credentials: list[IceCredentials]
    clients: list[IceTcpClient] = field(default_factory=list)
    transports_open: bool = True

    def close_clients(self) -> None:
        for client in self.clients:
            client.close()
        self.clients.clear()


def _selects(local: tuple[str, int], remote: tuple[str, int]) -> Callable[[Any], bool]:
    """A predicate: an iceselectedtuplechange to the TCP tuple ``local`` <- ``remote``."""
    expected = {"localAddress": local[0], "localPort": local[1], "remoteIp": remote[0],
                "remotePort": remote[1], "protocol": "tcp"}

    def matches(data: Any) -> bool:
        return bool(data["iceSelectedTuple"] == expected)

    return matches


class SeedRig:
    """One worker, one router, and a TCP-only WebRtcServer on 127.0.0.1.

    ``fds_without_server`` and ``fds_with_server`` are the worker's descriptor counts taken
    before and after the server was first created, with no transport: the baselines every
    check returns to.
    """

    def __init__(self, worker: WorkerChannel) -> None:
        self.worker = worker
        self._servers_created = 0
        self._transports_created = 0
        self.server_id = ""
        self.address: tuple[str, int] = ("", 0)
        worker.ok("worker.createRouter", data={"routerId": ROUTER_ID, "mediaCodecs": []})
        self.fds_without_server = fd_count(worker.pid)
        self.create_server()
        self.fds_with_server = fd_count(worker.pid)

    # -- server ------------------------------------------------------------------------

    def create_server(self) -> None:
        self._servers_created += 1
        self.server_id = f"{SERVER_ID_PREFIX}-{self._servers_created}"
        self.worker.ok("worker.createWebRtcServer", data={
            "webRtcServerId": self.server_id,
            "listenInfos": [{"protocol": "tcp", "ip": "127.0.0.1"}],
        })
        dump = self.worker.ok("webRtcServer.dump", self.server_id)
        assert dump["udpSockets"] == [], dump
        (tcp_server,) = dump["tcpServers"]
        self.address = (tcp_server["ip"], tcp_server["port"])

    def close_server(self) -> None:
        self.worker.ok("worker.closeWebRtcServer", data={"webRtcServerId": self.server_id})
        self.server_id = ""

    # -- peers -------------------------------------------------------------------------

    def create_transports(self, count: int, consent_timeout_s: int = 0) -> PeerSet:
        """``count`` TCP-only transports through the server (``iceConsentTimeout`` 0 disables
        consent checks, so that only the action under test frees anything)."""
        ids = [f"seed-t{self._transports_created + n}" for n in range(count)]
        self._transports_created += count
        dumps = pipeline(self.worker, [
            ("router.createWebRtcTransport", ROUTER_ID, {
                "transportId": transport_id, "webRtcServerId": self.server_id,
                "enableUdp": False, "enableTcp": True, "iceConsentTimeout": consent_timeout_s,
            }) for transport_id in ids])
        for dump in dumps:
            (candidate,) = dump["iceCandidates"]
            assert (candidate["protocol"], candidate["ip"], candidate["port"]) == (
                "tcp", *self.address), candidate
            assert dump["iceState"] == "new", dump["iceState"]
        return PeerSet(ids, [IceCredentials.of(dump) for dump in dumps])

    def connect(self, peers: PeerSet, trailer: bytes = b"") -> None:
        """Connect one ICE-TCP client per transport and complete ICE on each: every client
        sends its binding request (USE-CANDIDATE, then ``trailer`` in the same write) before
        any response is read. Checks each success response and the notifications."""
        clients = peers.clients
        for _ in peers.transport_ids:
            clients.append(IceTcpClient(self.address, timeout=STUN_TIMEOUT_S))
        tids = []
        for client, creds in zip(clients, peers.credentials, strict=True):
            tid, request = binding_request(creds, use_candidate=True)
            tids.append(tid)
            client.send_raw(struct.pack("!H", len(request)) + request + trailer)
        for client, tid in zip(clients, tids, strict=True):
            response = parse_response(client.read_frame(timeout=STUN_TIMEOUT_S))
            assert response.transaction_id == tid
            assert response.message_class == stun.StunClass.SUCCESS, response
            mapped = response.attributes[stun.XOR_MAPPED_ADDRESS]
            assert tuple(mapped) == client.sock.getsockname()[:2], mapped
        wait_ice_states(self.worker, peers.transport_ids, "completed", RESPONSE_TIMEOUT_S)
        selected = {transport_id: _selects(self.address, client.sock.getsockname()[:2])
                    for transport_id, client in zip(peers.transport_ids, clients, strict=True)}
        wait_notifications(self.worker, "iceselectedtuplechange", selected, RESPONSE_TIMEOUT_S)

    def open_peers(self, count: int, consent_timeout_s: int = 0,
                   trailer: bytes = b"") -> PeerSet:
        """Transports and connected clients, ICE completed, and the server's maps checked."""
        peers = self.create_transports(count, consent_timeout_s)
        try:
            self.connect(peers, trailer)
        except BaseException:
            peers.close_clients()
            raise
        dump = self.server_dump()
        assert len(dump["tupleHashes"]) == count, len(dump["tupleHashes"])
        assert len(dump["localIceUsernameFragments"]) == count
        assert dump["counters"]["tcpConnectionsPending"] == 0, dump["counters"]
        assert self.pools()["tcpRecv"]["inUse"] == count
        return peers

    def close_transports(self, peers: PeerSet) -> None:
        pipeline(self.worker, [("router.closeTransport", ROUTER_ID, {"transportId": t})
                               for t in peers.transport_ids])
        peers.transports_open = False

    # -- observations ------------------------------------------------------------------

    def pools(self) -> dict[str, dict[str, int]]:
        pools: dict[str, dict[str, int]] = self.worker.ok("worker.dump")["bufferPools"]
        return pools

    def server_dump(self) -> dict[str, Any]:
        dump: dict[str, Any] = self.worker.ok("webRtcServer.dump", self.server_id)
        return dump

    def fds(self) -> int:
        return fd_count(self.worker.pid)

    def rss(self) -> int:
        return rss_bytes(self.worker.pid)

    def check_freed(self, peers: PeerSet) -> None:
        """The leak checker: raise AssertionError naming everything still held.

        Every pool lends nothing; the server (if open) maps no tuple, has no pending
        connection, and, once the transports are closed, no username fragment nor transport;
        with the server closed, no server nor transport is left in the worker; the worker's
        file descriptors are back to the baseline for the server's state.
        """
        problems = [f"pool {name!r} still lends {stats['inUse']} slot(s)"
                    for name, stats in self.pools().items() if stats["inUse"]]
        if self.server_id:
            dump = self.server_dump()
            if dump["tupleHashes"]:
                problems.append(f"webRtcServer maps {len(dump['tupleHashes'])} tuple(s)")
            if dump["counters"]["tcpConnectionsPending"]:
                pending = dump["counters"]["tcpConnectionsPending"]
                problems.append(f"webRtcServer holds {pending} pending connection(s)")
            if not peers.transports_open and dump["localIceUsernameFragments"]:
                problems.append(f"webRtcServer maps {len(dump['localIceUsernameFragments'])} "
                                "username fragment(s) of closed transports")
            if not peers.transports_open and dump["webRtcTransportIds"]:
                problems.append(f"webRtcServer lists {len(dump['webRtcTransportIds'])} "
                                "closed transport(s)")
            expected_fds = self.fds_with_server
        else:
            worker_dump = self.worker.ok("worker.dump")
            if worker_dump["webRtcServerIds"]:
                problems.append(f"worker still lists servers {worker_dump['webRtcServerIds']}")
            expected_fds = self.fds_without_server
        if not peers.transports_open:
            router = self.worker.ok("router.dump", ROUTER_ID)
            if router["transportIds"]:
                problems.append(f"router still lists {len(router['transportIds'])} transport(s)")
            handlers = set(self.worker.ok("worker.dump")["channelMessageHandlers"]
                           ["channelRequestHandlers"])
            registered = handlers & set(peers.transport_ids)
            if registered:
                problems.append(f"{len(registered)} closed transport(s) still registered")
        fds = self.fds()
        if fds != expected_fds:
            problems.append(f"worker has {fds} open fds, baseline {expected_fds}")
        if problems:
            raise AssertionError("not freed: " + "; ".join(problems))

    def check_peers_closed(self, peers: PeerSet) -> None:
        """Every client sees the worker's side closed (EOF or reset)."""
        still_open = sum(not client.closed_by_peer(PEER_CLOSE_TIMEOUT_S)
                         for client in peers.clients)
        assert not still_open, f"{still_open} client(s) still connected to the worker"


# -- the rounds --------------------------------------------------------------------------------
# Each round opens ``count`` peers, parts from them one way, and checks that everything is
# free. The clients are always closed at the end, whatever happened.

def round_controller_close(rig: SeedRig, count: int) -> None:
    """(a) The clients go silent without closing their sockets; the controller closes the
    transports. Everything must be free as soon as the close requests are answered."""
    peers = rig.open_peers(count)
    try:
        rig.close_transports(peers)
        rig.check_freed(peers)
        rig.check_peers_closed(peers)
    finally:
        peers.close_clients()


def round_consent_expiry(rig: SeedRig, count: int) -> None:
    """(b) The clients stay silent and ICE consent expires (iceConsentTimeout 10), for every
    transport at once. The transports stay open (disconnected) with their connections closed
    and freed; then the controller closes them."""
    peers = rig.open_peers(count, consent_timeout_s=CONSENT_TIMEOUT_S)
    try:
        wait_ice_states(rig.worker, peers.transport_ids, "disconnected",
                        CONSENT_TIMEOUT_S + CONSENT_MARGIN_S)
        rig.check_freed(peers)
        rig.check_peers_closed(peers)
        states = pipeline(rig.worker, [("transport.dump", t, {}) for t in peers.transport_ids])
        assert {s["iceState"] for s in states} == {"disconnected"}
        assert all(s["iceTuples"] == [] and "iceSelectedTuple" not in s for s in states)
        rig.close_transports(peers)
        rig.check_freed(peers)
    finally:
        peers.close_clients()


def round_reset(rig: SeedRig, count: int) -> None:
    """(c) The clients reset their connections (RST). Each transport goes disconnected with
    its connection freed; then the controller closes them."""
    peers = rig.open_peers(count)
    try:
        for client in peers.clients:
            client.reset()
        peers.clients.clear()
        wait_ice_states(rig.worker, peers.transport_ids, "disconnected", RESPONSE_TIMEOUT_S)
        rig.check_freed(peers)
        rig.close_transports(peers)
        rig.check_freed(peers)
    finally:
        peers.close_clients()


def round_half_frame(rig: SeedRig, count: int) -> None:
    """(d) Each client sends half a frame (a header announcing 100 bytes, 40 of them) in the
    same write as its binding request, then stops with its connection open: the worker holds
    a partial frame in every receive buffer when the controller closes the transports."""
    peers = rig.open_peers(count, trailer=HALF_FRAME)
    try:
        rig.close_transports(peers)
        rig.check_freed(peers)
        rig.check_peers_closed(peers)
    finally:
        peers.close_clients()


def round_server_close(rig: SeedRig, count: int) -> None:
    """(e) The WebRtcServer is closed with its transports open and their clients connected:
    it closes the transports (which free their connections), then its socket. A new server is
    created for the next round, back to the same descriptor count."""
    peers = rig.open_peers(count)
    try:
        rig.close_server()
        peers.transports_open = False
        rig.check_freed(peers)
        rig.check_peers_closed(peers)
    finally:
        peers.close_clients()
    rig.create_server()
    assert rig.fds() == rig.fds_with_server, (rig.fds(), rig.fds_with_server)


RoundFunction = Callable[[SeedRig, int], None]
ROUNDS: Final[dict[str, RoundFunction]] = {
    "a": round_controller_close,
    "b": round_consent_expiry,
    "c": round_reset,
    "d": round_half_frame,
    "e": round_server_close,
}
