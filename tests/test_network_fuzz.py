"""Hostile network input against the real worker: it never crashes, never leaks, and counts.

Random bytes and mutated STUN (bit flips, truncations, random attributes, a valid header with a
garbage body, a valid request signed with the wrong password) go to every UDP port and, as RFC
4571 frames, to every TCP port of a WebRtcServer and of a transport with its own listenInfos.
For each datagram or frame from an unknown tuple the test predicts, with the pure-Python
references (``tests/reference``), exactly which counter it lands in: ``droppedUnknown``,
``droppedMalformedStun``, ``droppedTruncated``, or the matched transport's ``bytesReceived``
(the local username fragment routed it to ICE). Raw unframed TCP bytes, an announced frame
larger than the receive buffer, and half frames followed by a close are handled: the
connection is kept pending or closed, and its receive buffer comes back to the pool.
"""

from __future__ import annotations

import functools
import itertools
import os
import socket
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.ice_client import (
    IceCredentials,
    IceTcpClient,
    IceUdpClient,
    binding_request,
    error_code,
    parse_response,
)
from tests.loopback import IPV4, LOOPBACKS
from tests.reference import classify as ref_classify
from tests.reference import stun
from tests.worker_process import WorkerProcess

Json = dict[str, Any]

WAIT_S = 5.0
QUIET_S = 0.3  # how long a peer listens for an answer that must not come
UDP_SLOT_BYTES = 2048  # the udpRecv pool's slot: a longer datagram is truncated and dropped
TCP_RECV_BYTES = 65536  # the tcpRecv pool's slot: a frame (with its header) must fit
PENDING_TCP_TIMEOUT_S = 10.0  # worker/ice_listener.py: a connection with no valid request
# Each example costs a few round trips to the worker: at most 150 in everyday runs, more only
# when the profile asks for a long session ("deep").
FUZZ_EXAMPLES = settings().max_examples
if FUZZ_EXAMPLES <= 1000:
    FUZZ_EXAMPLES = min(FUZZ_EXAMPLES, 150)
FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])




# -- helpers --------------------------------------------------------------------------------


def new_id(prefix: str) -> str:
    return f"{prefix}-{os.urandom(6).hex()}"


def wait_until(check: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def pools_in_use(worker: WorkerProcess) -> dict[str, int]:
    pools = worker.ok("worker.dump")["bufferPools"]
    return {name: pool["inUse"] for name, pool in pools.items()}


def tcp_in_use(worker: WorkerProcess) -> int:
    return pools_in_use(worker)["tcpRecv"]


def frame(payload: bytes) -> bytes:
    return struct.pack("!H", len(payload)) + payload


@dataclass
class Listener:
    """The sockets of one WebRtcServer, or of one transport's own listenInfos, and how to read
    their counters."""

    name: str
    udp: list[tuple[str, int]]
    tcp: list[tuple[str, int]]
    read_counters: Callable[[], Json]
    transport: Json  # the one transport reached through these sockets

    @property
    def ufrag(self) -> str:
        ufrag: str = self.transport["iceParameters"]["usernameFragment"]
        return ufrag


@dataclass
class Env:
    worker: WorkerProcess
    router_id: str
    server_id: str
    listeners: list[Listener] = field(default_factory=list)

    def transport_dump(self, transport: Json) -> Json:
        dump: Json = self.worker.ok("transport.dump", transport["id"])
        return dump


def make_env(worker: WorkerProcess) -> Env:
    router_id = new_id("router")
    worker.ok("worker.createRouter", data={"routerId": router_id, "mediaCodecs": []})
    server_id = new_id("server")
    infos = [{"protocol": p, "ip": ip} for ip in LOOPBACKS for p in ("udp", "tcp")]
    worker.ok("worker.createWebRtcServer", data={"webRtcServerId": server_id,
                                                 "listenInfos": infos})
    env = Env(worker, router_id, server_id)
    served = worker.ok("router.createWebRtcTransport", router_id, {
        "transportId": new_id("transport"), "webRtcServerId": server_id, "enableTcp": True})
    own = worker.ok("router.createWebRtcTransport", router_id, {
        "transportId": new_id("transport"), "listenInfos": infos})

    def server_counters() -> Json:
        counters: Json = worker.ok("webRtcServer.dump", server_id)["counters"]
        return counters

    def own_counters() -> Json:
        counters: Json = worker.ok("transport.dump", own["id"])["listenerCounters"]
        return counters

    dump = worker.ok("webRtcServer.dump", server_id)
    env.listeners.append(Listener(
        "server", [(s["ip"], s["port"]) for s in dump["udpSockets"]],
        [(s["ip"], s["port"]) for s in dump["tcpServers"]], server_counters, served))
    env.listeners.append(Listener(
        "own", [(c["ip"], c["port"]) for c in own["iceCandidates"] if c["protocol"] == "udp"],
        [(c["ip"], c["port"]) for c in own["iceCandidates"] if c["protocol"] == "tcp"],
        own_counters, own))
    for listener in env.listeners:
        assert len(listener.udp) == len(LOOPBACKS)
        assert len(listener.tcp) == len(LOOPBACKS)
    return env


def close_env(env: Env) -> None:
    """Close the transports and the server: every buffer back, nothing pending."""
    worker = env.worker
    worker.ok("worker.closeRouter", data={"routerId": env.router_id})
    worker.ok("worker.closeWebRtcServer", data={"webRtcServerId": env.server_id})
    assert pools_in_use(worker) == {"udpRecv": 0, "rtpPacket": 0, "tcpRecv": 0}
    dump = worker.ok("worker.dump")
    assert dump["webRtcServerIds"] == [] and dump["routerIds"] == []


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    """One worker for the module's property tests (spawning one per example would be slow)."""
    with WorkerProcess() as worker:
        environment = make_env(worker)
        yield environment
        assert worker.proc.poll() is None, "the worker died while being fuzzed"
        close_env(environment)


# -- predicting where a datagram or frame from an unknown tuple lands -----------------------


def expected_sink(data: bytes, listener: Listener) -> str:
    """``droppedUnknown``, ``droppedMalformedStun`` or ``routed`` (to the transport's ICE), for
    ``data`` arriving from a tuple ICE never accepted (mediasoup's WebRtcServer rules)."""
    if ref_classify.classify(data) != ref_classify.STUN:
        return "droppedUnknown"
    try:
        message = stun.parse_message(data)
    except stun.StunFormatError:
        return "droppedMalformedStun"
    username = message.attributes.get(stun.USERNAME)
    if message.message_class is not stun.StunClass.REQUEST or username is None:
        return "droppedUnknown"
    if username.partition(b":")[0] != listener.ufrag.encode():
        return "droppedUnknown"
    return "routed"


@dataclass
class Tally:
    """What one listener's counters and its transport's bytesReceived must reach."""

    counters: Json
    bytes_received: int

    @classmethod
    def now(cls, env: Env, listener: Listener) -> Tally:
        return cls(dict(listener.read_counters()),
                   env.transport_dump(listener.transport)["counters"]["bytesReceived"])

    def add(self, sink: str, size: int) -> None:
        if sink == "routed":
            self.bytes_received += size
        else:
            self.counters[sink] += 1

    def reached(self, env: Env, listener: Listener) -> bool:
        counters = listener.read_counters()
        received = env.transport_dump(listener.transport)["counters"]["bytesReceived"]
        keys = ("droppedUnknown", "droppedMalformedStun", "droppedTruncated")
        if any(counters[k] > self.counters[k] for k in keys) or received > self.bytes_received:
            raise AssertionError(f"{listener.name}: counted more than expected: {counters}, "
                                 f"bytesReceived {received}; expected {self.counters}, "
                                 f"{self.bytes_received}")
        return all(counters[k] == self.counters[k] for k in keys) and \
            received == self.bytes_received


class FreshUdp:
    """UDP sockets whose source port never carried a request ICE accepted before."""

    def __init__(self) -> None:
        self.used: set[tuple[str, int]] = set()

    def socket(self, ip: str) -> IceUdpClient:
        for _ in range(20):
            client = IceUdpClient(ip, timeout=QUIET_S)
            if client.address not in self.used:
                self.used.add(client.address)
                return client
            client.close()
        raise AssertionError("no fresh UDP source port")


FRESH_UDP = FreshUdp()


# -- strategies ------------------------------------------------------------------------------


def _raw_stun(message_type: int, tid: bytes, attributes: list[tuple[int, bytes]],
              key: bytes | None, fingerprint: bool) -> bytes:
    """A STUN message from raw attributes (any type, any value, padded), optionally signed."""
    body = b"".join(struct.pack("!HH", t, len(v)) + v + bytes(-len(v) % 4)
                    for t, v in attributes)
    data = struct.pack("!HHI12s", message_type, len(body), stun.COOKIE, tid) + body

    def with_length(data: bytes, extra: int) -> bytes:
        return data[:2] + struct.pack("!H", len(data) + extra - 20) + data[4:]

    if key is not None:
        mac = stun.integrity_of(data, key)
        data = with_length(data + struct.pack("!HH", stun.MESSAGE_INTEGRITY, 20) + mac, 0)
    if fingerprint:
        data = with_length(data, 8)
        data += struct.pack("!HHI", stun.FINGERPRINT, 4, stun.fingerprint_of(data))
    return data


@st.composite
def valid_requests(draw: st.DrawFn, creds: IceCredentials) -> bytes:
    _, data = binding_request(
        creds, use_candidate=draw(st.booleans()),
        priority=draw(st.integers(0, 2**32 - 1)),
        nomination=draw(st.none() | st.integers(0, 2**32 - 1)),
        controlled=draw(st.booleans()),
        transaction_id=draw(st.binary(min_size=12, max_size=12)))
    return data


@st.composite
def bit_flips(draw: st.DrawFn, creds: IceCredentials) -> bytes:
    data = bytearray(draw(valid_requests(creds)))
    for bit in draw(st.lists(st.integers(0, len(data) * 8 - 1), min_size=1, max_size=4)):
        data[bit // 8] ^= 1 << (bit % 8)
    return bytes(data)


@st.composite
def truncations(draw: st.DrawFn, creds: IceCredentials) -> bytes:
    data = draw(valid_requests(creds))
    return data[: draw(st.integers(0, len(data) - 1))]


@st.composite
def extensions(draw: st.DrawFn, creds: IceCredentials) -> bytes:
    """A valid request with bytes appended (the header length no longer matches)."""
    return draw(valid_requests(creds)) + draw(st.binary(min_size=1, max_size=64))


@st.composite
def random_attributes(draw: st.DrawFn, creds: IceCredentials) -> bytes:
    username = f"{creds.local_ufrag}:{creds.remote_ufrag}".encode()
    known = st.sampled_from([
        (stun.USERNAME, username), (stun.PRIORITY, b"\x6e\x7f\x1e\xff"),
        (stun.ICE_CONTROLLING, bytes(8)), (stun.ICE_CONTROLLED, bytes(8)),
        (stun.USE_CANDIDATE, b""), (stun.NOMINATION, b"\x00\x00\x00\x05"),
        (stun.USE_CANDIDATE, b"\x01"), (stun.PRIORITY, b"\x01"),
        (stun.MESSAGE_INTEGRITY, bytes(20)), (stun.FINGERPRINT, bytes(4)),
        (stun.ERROR_CODE, b"\x00\x00\x04\x01"), (stun.XOR_MAPPED_ADDRESS, bytes(8)),
    ])
    anything = st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=40))
    attributes = draw(st.lists(known | anything, max_size=8))
    message_type = draw(st.sampled_from([0x0001, 0x0011, 0x0101, 0x0111, 0x0003])
                        | st.integers(0, 0x3FFF))
    key = draw(st.sampled_from([None, creds.password.encode(), b"wrong password"]))
    return _raw_stun(message_type, draw(st.binary(min_size=12, max_size=12)), attributes,
                     key, draw(st.booleans()))


@st.composite
def garbage_bodies(draw: st.DrawFn) -> bytes:
    """A STUN header (binding request, the cookie) in front of random bytes; the length field
    either matches the body or is random."""
    body = draw(st.binary(max_size=200))
    length = draw(st.just(len(body)) | st.integers(0, 0xFFFF))
    return struct.pack("!HHI12s", 0x0001, length, stun.COOKIE,
                       draw(st.binary(min_size=12, max_size=12))) + body


@st.composite
def wrong_integrity(draw: st.DrawFn, creds: IceCredentials) -> bytes:
    wrong = IceCredentials(creds.local_ufrag, draw(st.text(min_size=1, max_size=40)))
    if wrong.password == creds.password:
        wrong.password += "x"
    _, data = binding_request(wrong, use_candidate=draw(st.booleans()),
                              transaction_id=draw(st.binary(min_size=12, max_size=12)))
    return data


def payloads(creds: IceCredentials) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=300),
        st.binary(min_size=20, max_size=120).map(lambda b: bytes([b[0] & 0x03]) + b[1:]),
        bit_flips(creds),
        truncations(creds),
        extensions(creds),
        random_attributes(creds),
        garbage_bodies(),
        wrong_integrity(creds),
    )


# -- property tests --------------------------------------------------------------------------


def _send_everywhere(env: Env, data: bytes, splits: list[int]) -> list[IceTcpClient]:
    """``data`` as a datagram to every UDP port and as one frame (written in pieces) on a new
    connection to every TCP port; returns the TCP clients (still open)."""
    clients: list[IceTcpClient] = []
    framed = frame(data)
    cuts = sorted({min(c, len(framed)) for c in splits} | {0, len(framed)})
    for listener in env.listeners:
        for address in listener.udp:
            client = FRESH_UDP.socket(address[0])
            try:
                client.send(data, address)
            finally:
                client.close()
        for address in listener.tcp:
            tcp = IceTcpClient(address)
            clients.append(tcp)
            tcp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for start, end in itertools.pairwise(cuts):
                tcp.send_raw(framed[start:end])
    return clients


@FUZZ
@given(data=st.data())
def test_fuzzed_packets_from_unknown_tuples_are_counted(env: Env, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(env.listeners) - 1), label="credentials of")
    payload = data.draw(payloads(IceCredentials.of(env.listeners[index].transport)),
                        label="payload")
    # Rarely (hypothesis likes small integers, hence the last of 16 choices).
    oversize = data.draw(st.sampled_from(range(16)), label="oversize") == 15
    if oversize:  # a datagram longer than a udpRecv slot: truncated, dropped and counted
        payload += bytes(UDP_SLOT_BYTES + 1 - len(payload))
    splits = data.draw(st.lists(st.integers(0, len(payload) + 2), max_size=3), label="splits")
    tallies = [Tally.now(env, listener) for listener in env.listeners]
    for listener, tally in zip(env.listeners, tallies, strict=True):
        # Built from one transport's credentials: for the other listener, a ufrag of nobody.
        sink = expected_sink(payload, listener)
        for _ in listener.udp:
            if oversize:
                tally.counters["droppedTruncated"] += 1
            else:
                tally.add(sink, len(payload))
        for _ in listener.tcp:
            if payload:  # a zero-length frame is a null packet: skipped, not counted
                tally.add(sink, len(payload))

    clients = _send_everywhere(env, payload, splits)
    try:
        for listener, tally in zip(env.listeners, tallies, strict=True):
            wait_until(functools.partial(tally.reached, env, listener),
                       f"{listener.name}'s counters to account for the payload")
    finally:
        for client in clients:
            client.close()
    # The peers are gone: every connection (pending, or a tuple ICE accepted) is freed.
    wait_until(lambda: tcp_in_use(env.worker) == 0, "the closed connections' buffers")
    for listener in env.listeners:
        assert listener.read_counters()["tcpConnectionsPending"] == 0


def split_frames(stream: bytes) -> tuple[list[bytes], bool]:
    """RFC 4571 frames in ``stream`` (zero-length ones skipped), and whether a frame header
    announces more than the receive buffer holds (the worker then closes the connection)."""
    frames: list[bytes] = []
    pos = 0
    while len(stream) - pos >= 2:
        (length,) = struct.unpack_from("!H", stream, pos)
        if 2 + length > TCP_RECV_BYTES:
            return frames, True
        if pos + 2 + length > len(stream):
            break
        if length:
            frames.append(stream[pos + 2 : pos + 2 + length])
        pos += 2 + length
    return frames, False


@FUZZ
@given(chunks=st.lists(st.binary(min_size=1, max_size=400), min_size=1, max_size=6),
       header=st.none() | st.integers(0, 0xFFFF), target=st.integers(0, 3),
       how=st.sampled_from(["fin", "rst"]))
def test_raw_tcp_bytes_never_crash_or_leak(env: Env, chunks: list[bytes], header: int | None,
                                           target: int, how: str) -> None:
    """Unframed bytes (optionally behind a chosen 2-byte header): every complete frame in them
    is counted like any frame, a header announcing more than 64 KiB closes the connection,
    anything else keeps it pending; once the peer is gone its buffer is back."""
    if header is not None:
        chunks = [struct.pack("!H", header) + chunks[0], *chunks[1:]]
    stream = b"".join(chunks)
    listener = env.listeners[target % len(env.listeners)]
    address = listener.tcp[(target // len(env.listeners)) % len(listener.tcp)]
    frames, oversize = split_frames(stream)
    tally = Tally.now(env, listener)
    for piece in frames:
        tally.add(expected_sink(piece, listener), len(piece))
    client = IceTcpClient(address)
    try:
        for chunk in chunks:
            try:
                client.send_raw(chunk)
            except (BrokenPipeError, ConnectionResetError):
                if not oversize:
                    raise
                break  # the worker closed the connection on the oversize header
        wait_until(lambda: tally.reached(env, listener), "the frames counted")
        if oversize:
            assert client.closed_by_peer()
            wait_until(lambda: listener.read_counters()["tcpConnectionsPending"] == 0,
                       "the closed connection forgotten")
        else:
            assert listener.read_counters()["tcpConnectionsPending"] == 1
    finally:
        if how == "rst":
            client.reset()
        else:
            client.close()
    wait_until(lambda: tcp_in_use(env.worker) == 0, "the connection's buffer")
    wait_until(lambda: listener.read_counters()["tcpConnectionsPending"] == 0,
               "no pending connection")


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_fuzz_on_an_accepted_tuple(worker: WorkerProcess, protocol: str) -> None:
    """Garbage on a tuple ICE accepted reaches the transport (counted in its bytesReceived),
    never closes or breaks the tuple; closing the transport then frees its connection."""
    router_id = new_id("router")
    worker.ok("worker.createRouter", data={"routerId": router_id, "mediaCodecs": []})
    transport = worker.ok("router.createWebRtcTransport", router_id, {
        "transportId": new_id("transport"), "listenInfos": [{"protocol": protocol, "ip": IPV4}]})
    address = (transport["iceCandidates"][0]["ip"], transport["iceCandidates"][0]["port"])
    creds = IceCredentials.of(transport)
    tcp: IceTcpClient | None = None
    udp: IceUdpClient | None = None
    if protocol == "tcp":
        tcp = IceTcpClient(address)
        tcp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle delays
        assert tcp.request(creds, use_candidate=True).message_class is stun.StunClass.SUCCESS
    else:
        udp = IceUdpClient(IPV4)
        response = udp.request(creds, address, use_candidate=True)
        assert response.message_class is stun.StunClass.SUCCESS

    def counters() -> Json:
        dump = worker.ok("transport.dump", transport["id"])
        assert dump["iceState"] == "completed"
        assert len(dump["iceTuples"]) == 1
        value: Json = {**dump["counters"], **dump["listenerCounters"]}
        return value

    def expected(payload: bytes) -> dict[str, int]:
        """Where ``payload`` is counted when it arrives on the accepted tuple."""
        if not payload and tcp is not None:
            return {}  # a zero-length frame is a null packet: skipped
        if ref_classify.classify(payload) != ref_classify.STUN:
            ignored = {"bytesReceived": len(payload), "packetsIgnored": 1}
            return {key: value for key, value in ignored.items() if value}
        try:
            stun.parse_message(payload)
        except stun.StunFormatError:
            # Over UDP the shared socket's demultiplexer drops it; over TCP the transport does.
            return {"droppedMalformedStun" if udp is not None else "stunMalformed": 1}
        return {"bytesReceived": len(payload)}

    @settings(max_examples=max(1, FUZZ_EXAMPLES // 2), deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(payload=payloads(creds))
    def fuzz(payload: bytes) -> None:
        before = counters()
        if tcp is not None:
            if payload:
                tcp.send_frame(payload)
            response = next_answer(tcp.send_frame, tcp.read_frame, creds)
        else:
            assert udp is not None
            udp.send(payload, address)
            response = next_answer(lambda data: udp.send(data, address),
                                   lambda: udp.sock.recv(65536), creds)
        assert response.message_class is stun.StunClass.SUCCESS
        after = counters()
        # The garbage is counted exactly once, where it belongs; the valid request after it
        # is received too (its answer came back). Whether ICE answered the garbage with an
        # error is ICE's business (test_webrtc_ice): at most one rejection.
        valid = len(binding_request(creds)[1])
        grown = {key: after[key] - before[key] for key in after
                 if after[key] != before[key] and key != "bytesSent"}
        assert grown.pop("stunRejected", 0) <= 1
        want = expected(payload)
        want["bytesReceived"] = want.get("bytesReceived", 0) + valid
        assert grown == want

    try:
        fuzz()
        assert worker.ok("worker.dump")["pid"] == worker.pid
        worker.ok("router.closeTransport", router_id, {"transportId": transport["id"]})
        if tcp is not None:
            assert tcp.closed_by_peer()
        assert pools_in_use(worker) == {"udpRecv": 0, "rtpPacket": 0, "tcpRecv": 0}
    finally:
        for client in (tcp, udp):
            if client is not None:
                client.close()


def next_answer(send: Callable[[bytes], None], receive: Callable[[], bytes],
                creds: IceCredentials) -> stun.StunMessage:
    """Send a valid request and return the answer to it, skipping answers to earlier garbage."""
    tid, request = binding_request(creds)
    send(request)
    for _ in range(16):
        response = parse_response(receive())
        if response.transaction_id == tid:
            return response
    raise AssertionError("no answer to the valid request")


# -- deterministic cases ---------------------------------------------------------------------


@pytest.fixture
def fresh(worker: WorkerProcess) -> Iterator[Env]:
    """A server and a transport with its own sockets on a worker of this test alone."""
    environment = make_env(worker)
    yield environment
    if worker.proc.poll() is None:
        close_env(environment)


@pytest.fixture(params=["server", "own"])
def listener(request: pytest.FixtureRequest, fresh: Env) -> Listener:
    found: Listener = fresh.listeners[0 if request.param == "server" else 1]
    return found


def transport_state(env: Env, listener: Listener) -> tuple[str, list[Any], int]:
    dump = env.transport_dump(listener.transport)
    return dump["iceState"], dump["iceTuples"], dump["counters"]["stunRejected"]


def rtp_like() -> bytes:
    return bytes([0x80, 96]) + os.urandom(10) + b"payload"


def malformed_stun() -> bytes:
    """Classified as STUN (first byte < 4, 20 bytes or more) but not a STUN message."""
    return bytes([0x00, 0x01, 0x00, 0x04]) + b"no magic cookie!" + bytes(4)


def unknown_ufrag_request() -> bytes:
    return binding_request(IceCredentials("nobodysufrag", "nobodyspassword0123456"))[1]


def success_response(creds: IceCredentials) -> bytes:
    return stun.binding_success(os.urandom(12), IPV4, 4444, creds.password.encode())


def test_unknown_tuples_are_dropped_counted_and_not_answered(fresh: Env,
                                                             listener: Listener) -> None:
    creds = IceCredentials.of(listener.transport)
    cases = [("droppedUnknown", rtp_like()), ("droppedUnknown", b"\x17" * 40),
             ("droppedUnknown", b"\x01"), ("droppedMalformedStun", malformed_stun()),
             ("droppedUnknown", unknown_ufrag_request()),
             ("droppedUnknown", success_response(creds))]
    for sink, data in cases:
        assert expected_sink(data, listener) == sink  # the references agree with the test
    state = transport_state(fresh, listener)

    def all_counted(before: Json) -> Callable[[], bool]:
        def check() -> bool:
            counters = listener.read_counters()
            return all(counters[sink] == before[sink] + sum(1 for s, _ in cases if s == sink)
                       for sink in ("droppedUnknown", "droppedMalformedStun"))
        return check

    for address in listener.udp:
        before = listener.read_counters()
        client = FRESH_UDP.socket(address[0])
        try:
            for _, data in cases:
                client.send(data, address)
            wait_until(all_counted(before), "every datagram counted")
            with pytest.raises(TimeoutError):
                client.sock.recv(65536)  # nothing is ever sent to an unknown tuple
        finally:
            client.close()
    for address in listener.tcp:
        before = listener.read_counters()
        tcp = IceTcpClient(address)
        try:
            for _, data in cases:
                tcp.send_frame(data)
            wait_until(all_counted(before), "every frame counted")
            with pytest.raises(TimeoutError):
                tcp.read_frame(timeout=QUIET_S)
            # Dropped, not closed: the connection waits for a valid request.
            assert listener.read_counters()["tcpConnectionsPending"] == 1
        finally:
            tcp.close()
        wait_until(lambda: listener.read_counters()["tcpConnectionsPending"] == 0,
                   "the closed connection forgotten")
    assert transport_state(fresh, listener) == state
    assert fresh.transport_dump(listener.transport)["counters"]["bytesReceived"] == 0
    assert tcp_in_use(fresh.worker) == 0


def test_wrong_integrity_is_answered_401_over_udp(fresh: Env, listener: Listener) -> None:
    """STUN errors go back to the requester (as mediasoup does), and change nothing."""
    creds = IceCredentials.of(listener.transport)
    for address in listener.udp:
        client = FRESH_UDP.socket(address[0])
        client.sock.settimeout(WAIT_S)
        try:
            response = client.request(creds, address, password="not the password",
                                      use_candidate=True)
        finally:
            client.close()
        assert error_code(response) == 401
    state, tuples, rejected = transport_state(fresh, listener)
    assert (state, tuples, rejected) == ("new", [], len(listener.udp))


def test_unframed_garbage_keeps_the_connection_pending_until_closed(fresh: Env,
                                                                    listener: Listener) -> None:
    """An HTTP request is not RFC 4571: its first two bytes announce an 18245-byte frame that
    never completes. The connection stays pending, holding one buffer, until the peer goes."""
    before = listener.read_counters()
    client = IceTcpClient(listener.tcp[0])
    try:
        client.send_raw(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
        wait_until(lambda: tcp_in_use(fresh.worker) == 1, "the connection accepted")
        with pytest.raises(TimeoutError):
            client.read_frame(timeout=QUIET_S)
        counters = listener.read_counters()
        assert counters["tcpConnectionsPending"] == 1
        assert counters["droppedUnknown"] == before["droppedUnknown"]
    finally:
        client.close()
    wait_until(lambda: tcp_in_use(fresh.worker) == 0, "the buffer returned")
    assert listener.read_counters()["tcpConnectionsPending"] == 0


def test_frame_larger_than_the_buffer_closes_the_connection(fresh: Env,
                                                            listener: Listener) -> None:
    # 65535 bytes behind a 2-byte header do not fit a 64 KiB receive buffer: closed at once,
    # before the payload arrives.
    client = IceTcpClient(listener.tcp[0])
    try:
        client.send_raw(b"\xff\xff" + bytes(100))
        assert client.closed_by_peer()
    finally:
        client.close()
    wait_until(lambda: tcp_in_use(fresh.worker) == 0, "the buffer returned")
    assert listener.read_counters()["tcpConnectionsPending"] == 0

    # 65534 bytes do fit: the frame is read whole, dropped as unknown, the connection stays.
    before = listener.read_counters()
    client = IceTcpClient(listener.tcp[0])
    try:
        client.send_frame(bytes([0x80]) + bytes(65533))
        wait_until(lambda: listener.read_counters()["droppedUnknown"]
                   == before["droppedUnknown"] + 1, "the largest frame read and dropped")
        assert listener.read_counters()["tcpConnectionsPending"] == 1
        assert tcp_in_use(fresh.worker) == 1
    finally:
        client.close()
    wait_until(lambda: tcp_in_use(fresh.worker) == 0, "the buffer returned")


def test_frames_across_the_end_of_the_receive_buffer_are_kept(fresh: Env,
                                                              listener: Listener) -> None:
    """Many frames written at once: a frame that starts near the end of the 64 KiB buffer must
    be moved to its start, not taken for a frame larger than the buffer (mediasoup moves the
    partial frame to the front and closes only for a frame that cannot fit at all)."""
    count = 100
    before = listener.read_counters()
    client = IceTcpClient(listener.tcp[0])
    try:
        client.send_raw(frame(bytes([0x80]) + bytes(999)) * count)  # 100,200 bytes
        wait_until(lambda: listener.read_counters()["droppedUnknown"]
                   >= before["droppedUnknown"] + count
                   or listener.read_counters()["tcpConnectionsPending"] == 0,
                   "the frames read")
        counters = listener.read_counters()
        assert counters["tcpConnectionsPending"] == 1, "the worker closed the connection"
        assert counters["droppedUnknown"] == before["droppedUnknown"] + count
    finally:
        client.close()
    wait_until(lambda: tcp_in_use(fresh.worker) == 0, "the buffer returned")


@pytest.mark.parametrize("how", ["fin", "rst"])
def test_half_frame_then_close_returns_the_buffer(fresh: Env, listener: Listener,
                                                  how: str) -> None:
    creds = IceCredentials.of(listener.transport)
    request = binding_request(creds)[1]
    client = IceTcpClient(listener.tcp[0])
    try:
        client.send_raw(frame(request)[: len(request) // 2])
        wait_until(lambda: tcp_in_use(fresh.worker) == 1, "the connection accepted")
    finally:
        if how == "rst":
            client.reset()
        else:
            client.close()
    wait_until(lambda: tcp_in_use(fresh.worker) == 0, "the buffer returned")
    assert listener.read_counters()["tcpConnectionsPending"] == 0
    assert transport_state(fresh, listener) == ("new", [], 0)


def test_a_half_frame_is_completed_by_later_bytes(fresh: Env, listener: Listener) -> None:
    """Zero-length frames are skipped, and a request split anywhere is reassembled."""
    creds = IceCredentials.of(listener.transport)
    tid, request = binding_request(creds)
    data = frame(b"") * 3 + frame(request) + frame(b"")
    client = IceTcpClient(listener.tcp[0])
    try:
        client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for cut in range(0, len(data), 7):
            client.send_raw(data[cut : cut + 7])
            time.sleep(0.001)
        response = parse_response(client.read_frame())
        assert response.transaction_id == tid
        assert response.message_class is stun.StunClass.SUCCESS
        assert listener.read_counters()["tcpConnectionsPending"] == 0  # ICE took it
    finally:
        client.close()
    wait_until(lambda: tcp_in_use(fresh.worker) == 0, "the buffer returned")


@pytest.mark.parametrize("close", ["server", "transport", "router"])
def test_pending_connections_close_with_their_owner(worker: WorkerProcess, close: str) -> None:
    """Connections no transport took yet belong to the listener: when the server (or the
    transport owning its own sockets) closes, the worker closes them and frees their buffers."""
    env = make_env(worker)
    listener = env.listeners[0 if close == "server" else 1]
    clients = [IceTcpClient(address) for address in listener.tcp for _ in range(2)]
    try:
        clients[0].send_raw(b"GET / HTTP/1.1\r\n\r\n")  # a half frame, forever
        clients[1].send_frame(rtp_like())  # a dropped frame
        wait_until(lambda: listener.read_counters()["tcpConnectionsPending"] == len(clients),
                   "the connections pending")
        assert tcp_in_use(worker) == len(clients)
        if close == "server":
            worker.ok("worker.closeWebRtcServer", data={"webRtcServerId": env.server_id})
        elif close == "transport":
            worker.ok("transport.close", listener.transport["id"])
        else:
            worker.ok("worker.closeRouter", data={"routerId": env.router_id})
        for client in clients:
            assert client.closed_by_peer()
        assert tcp_in_use(worker) == 0
    finally:
        for client in clients:
            client.close()


def test_pending_connection_without_a_valid_request_expires(fresh: Env) -> None:
    """A peer that connects and never sends a valid request cannot hold a buffer for ever."""
    listener = fresh.listeners[0]
    silent = IceTcpClient(listener.tcp[0])
    garbage = IceTcpClient(listener.tcp[0])
    try:
        garbage.send_frame(malformed_stun())
        wait_until(lambda: listener.read_counters()["tcpConnectionsPending"] == 2,
                   "the connections pending")
        for client in (silent, garbage):
            assert client.closed_by_peer(timeout=PENDING_TCP_TIMEOUT_S + WAIT_S)
    finally:
        silent.close()
        garbage.close()
    assert listener.read_counters()["tcpConnectionsPending"] == 0
    assert tcp_in_use(fresh.worker) == 0
