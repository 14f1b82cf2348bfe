"""``listenInfos`` (``worker/listen_info.py``): validation as mediasoup v3's TransportListenInfo,
and binding of real sockets on loopback.

Ports are never guessed: a port "in use" is one this test holds, obtained from the kernel, and
ranges are built around such ports, so the tests do not depend on what else runs on the machine.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from channel.protocol import DEFAULT_RTC_MAX_PORT, DEFAULT_RTC_MIN_PORT
from worker import listen_info as li
from worker.errors import WorkerError, WorkerTypeError
from worker.listen_info import ListenInfo, bind_socket, parse_listen_info, parse_listen_infos

DEFAULT_RANGE = (DEFAULT_RTC_MIN_PORT, DEFAULT_RTC_MAX_PORT)


def _ipv6_loopback_works() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def _nonlocal_bind_allowed(ip: str) -> bool:
    family = "ipv6" if ":" in ip else "ipv4"
    try:
        with open(f"/proc/sys/net/{family}/ip_nonlocal_bind") as setting:
            return setting.read().strip() != "0"
    except OSError:
        return False


needs_ipv6 = pytest.mark.skipif(not _ipv6_loopback_works(), reason="::1 cannot be bound here")


class Sockets:
    """Every socket a test opens, closed at teardown."""

    def __init__(self) -> None:
        self.open: list[socket.socket] = []

    def keep(self, sock: socket.socket) -> socket.socket:
        self.open.append(sock)
        return sock

    def bind(self, info: ListenInfo) -> socket.socket:
        return self.keep(bind_socket(info))

    def occupied_port(self, protocol: str, host: str = "127.0.0.1") -> int:
        """A port the kernel gave us, held open for the rest of the test."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
        sock = self.keep(socket.socket(family, kind))
        sock.bind((host, 0))
        if protocol == "tcp":
            sock.listen(1)
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def sockets() -> Iterator[Sockets]:
    holder = Sockets()
    yield holder
    for sock in holder.open:
        sock.close()


def parse(data: Any) -> ListenInfo:
    return parse_listen_info(data, DEFAULT_RANGE)


# ---- valid entries -------------------------------------------------------------------------


def test_minimal_udp_entry() -> None:
    info = parse({"protocol": "udp", "ip": "127.0.0.1"})
    assert info == ListenInfo(protocol="udp", ip="127.0.0.1", announced_address=None, port=0,
                              port_range=DEFAULT_RANGE, ipv6_only=False, udp_reuse_port=False,
                              send_buffer_size=None, recv_buffer_size=None)
    assert info.family == socket.AF_INET
    assert info.dump() == {
        "protocol": "udp", "ip": "127.0.0.1", "announcedAddress": None, "port": 0,
        "portRange": {"min": DEFAULT_RTC_MIN_PORT, "max": DEFAULT_RTC_MAX_PORT},
        "flags": {"ipv6Only": False, "udpReusePort": False},
        "sendBufferSize": None, "recvBufferSize": None,
    }


def test_full_tcp_entry() -> None:
    info = parse({"protocol": "tcp", "ip": "127.0.0.1", "announcedAddress": "media.example.com",
                  "port": 40123, "portRange": {"min": 40000, "max": 40999},
                  "flags": {"ipv6Only": False, "udpReusePort": True},
                  "sendBufferSize": 262144, "recvBufferSize": 131072})
    assert info.protocol == "tcp" and info.port == 40123
    assert info.announced_address == "media.example.com"
    assert info.port_range == (40000, 40999)
    assert info.udp_reuse_port is True and info.ipv6_only is False
    assert (info.send_buffer_size, info.recv_buffer_size) == (262144, 131072)
    assert info.dump()["portRange"] == {"min": 40000, "max": 40999}


@pytest.mark.parametrize(("given", "normal"), [("::1", "::1"), ("0:0:0:0:0:0:0:1", "::1"),
                                               ("::", "::"), ("2001:DB8::1", "2001:db8::1")])
def test_ipv6_entries_are_normalised(given: str, normal: str) -> None:
    info = parse({"protocol": "udp", "ip": given, "flags": {"ipv6Only": True}})
    assert info.ip == normal and info.family == socket.AF_INET6 and info.ipv6_only is True


def test_announced_ip_is_the_deprecated_announced_address() -> None:
    assert parse({"protocol": "udp", "ip": "127.0.0.1",
                  "announcedIp": "203.0.113.9"}).announced_address == "203.0.113.9"
    both = parse({"protocol": "udp", "ip": "127.0.0.1", "announcedIp": "203.0.113.9",
                  "announcedAddress": "198.51.100.1"})
    assert both.announced_address == "198.51.100.1"


def test_nulls_mean_absent() -> None:
    info = parse({"protocol": "udp", "ip": "127.0.0.1", "announcedAddress": None, "port": None,
                  "portRange": None, "flags": None, "sendBufferSize": None,
                  "recvBufferSize": None})
    assert info.port == 0 and info.port_range == DEFAULT_RANGE
    assert info.announced_address is None and not info.ipv6_only


def test_port_zero_takes_the_range() -> None:
    info = parse({"protocol": "udp", "ip": "127.0.0.1", "port": 0,
                  "portRange": {"min": 45000, "max": 45010}})
    assert info.port == 0 and info.port_range == (45000, 45010)


def test_protocols_can_be_restricted() -> None:
    info = parse_listen_info({"protocol": "udp", "ip": "127.0.0.1"}, DEFAULT_RANGE, ("udp",))
    assert info.protocol == "udp"
    with pytest.raises(WorkerTypeError, match="protocol"):
        parse_listen_info({"protocol": "tcp", "ip": "127.0.0.1"}, DEFAULT_RANGE, ("udp",))


# ---- invalid entries -----------------------------------------------------------------------

BASE = {"protocol": "udp", "ip": "127.0.0.1"}

INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("protocol-name", {"protocol": "sctp"}, "protocol"),
    ("protocol-type", {"protocol": 17}, "protocol"),
    ("protocol-case", {"protocol": "UDP"}, "protocol"),
    ("ip-missing", {"ip": None}, "ip"),
    ("ip-type", {"ip": 2130706433}, "ip"),
    ("ip-text", {"ip": "localhost"}, "ip"),
    ("ip-range", {"ip": "256.0.0.1"}, "ip"),
    ("ip-empty", {"ip": ""}, "ip"),
    ("announced-type", {"announcedAddress": 5}, "announcedAddress"),
    ("announced-empty", {"announcedAddress": ""}, "announcedAddress"),
    ("announced-ip-type", {"announcedIp": ["x"]}, "announcedAddress"),
    ("port-text", {"port": "40000"}, "port"),
    ("port-negative", {"port": -1}, "port"),
    ("port-high", {"port": 65536}, "port"),
    ("port-bool", {"port": True}, "port"),
    ("port-float", {"port": 4000.5}, "port"),
    ("range-type", {"portRange": [40000, 40010]}, "portRange"),
    ("range-min-only", {"portRange": {"min": 40000}}, "portRange"),
    ("range-max-only", {"portRange": {"max": 40000}}, "portRange"),
    ("range-reversed", {"portRange": {"min": 40010, "max": 40000}}, "portRange"),
    ("range-zero", {"portRange": {"min": 0, "max": 40000}}, "min"),
    ("range-high", {"portRange": {"min": 40000, "max": 70000}}, "max"),
    ("range-text", {"portRange": {"min": "40000", "max": 40010}}, "min"),
    ("flags-type", {"flags": ["ipv6Only"]}, "flags"),
    ("flags-ipv6only", {"flags": {"ipv6Only": 1}}, "ipv6Only"),
    ("flags-reuseport", {"flags": {"udpReusePort": "yes"}}, "udpReusePort"),
    ("sndbuf-zero", {"sendBufferSize": 0}, "sendBufferSize"),
    ("sndbuf-text", {"sendBufferSize": "big"}, "sendBufferSize"),
    ("sndbuf-bool", {"sendBufferSize": True}, "sendBufferSize"),
    ("rcvbuf-negative", {"recvBufferSize": -5}, "recvBufferSize"),
    ("rcvbuf-huge", {"recvBufferSize": 2**31}, "recvBufferSize"),
]


@pytest.mark.parametrize(("changes", "field"), [pytest.param(c, f, id=i) for i, c, f in INVALID])
def test_invalid_field_is_a_type_error_naming_it(changes: dict[str, Any], field: str) -> None:
    data = {**BASE, **changes}
    with pytest.raises(WorkerTypeError) as caught:
        parse(data)
    assert isinstance(caught.value, TypeError) and isinstance(caught.value, WorkerError)
    assert caught.value.wire_name == "TypeError"
    assert field in str(caught.value)


@pytest.mark.parametrize("data", [None, "127.0.0.1", ["udp", "127.0.0.1"], 7])
def test_an_entry_that_is_not_an_object(data: Any) -> None:
    with pytest.raises(WorkerTypeError, match="listenInfo"):
        parse(data)


def test_listen_infos_count() -> None:
    entry = {"protocol": "udp", "ip": "127.0.0.1"}
    assert len(parse_listen_infos([entry] * li.MAX_LISTEN_INFOS, DEFAULT_RANGE)) == 8
    with pytest.raises(WorkerTypeError, match="too many"):
        parse_listen_infos([entry] * (li.MAX_LISTEN_INFOS + 1), DEFAULT_RANGE)
    bad: object
    for bad in ([], None, {"protocol": "udp"}, "x"):
        with pytest.raises(WorkerTypeError, match="listenInfos"):
            parse_listen_infos(bad, DEFAULT_RANGE)
    with pytest.raises(WorkerTypeError, match="ip"):
        parse_listen_infos([entry, {"protocol": "udp"}], DEFAULT_RANGE)


def test_max_listen_infos_is_eight() -> None:
    assert li.MAX_LISTEN_INFOS == 8


# ---- binding -------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_explicit_port(sockets: Sockets, protocol: str) -> None:
    probe = sockets.occupied_port(protocol)
    sockets.open.pop().close()  # free it again: a port the kernel just handed out
    sock = sockets.bind(parse({"protocol": protocol, "ip": "127.0.0.1", "port": probe}))
    assert sock.getsockname() == ("127.0.0.1", probe)
    assert sock.getblocking() is False
    expected = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
    assert sock.type == expected


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_port_zero_takes_a_port_inside_the_range(sockets: Sockets, protocol: str) -> None:
    free = sockets.occupied_port(protocol)
    sockets.open.pop().close()
    low, high = max(1024, free - 5), min(65535, free + 5)
    for _ in range(5):
        sock = sockets.bind(parse({"protocol": protocol, "ip": "127.0.0.1",
                                   "portRange": {"min": low, "max": high}}))
        assert low <= sock.getsockname()[1] <= high


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_port_zero_without_range_takes_the_default_range(sockets: Sockets, protocol: str) -> None:
    for _ in range(3):
        sock = sockets.bind(parse({"protocol": protocol, "ip": "127.0.0.1"}))
        assert DEFAULT_RTC_MIN_PORT <= sock.getsockname()[1] <= DEFAULT_RTC_MAX_PORT


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_range_skips_ports_in_use(sockets: Sockets, protocol: str) -> None:
    taken = sockets.occupied_port(protocol)
    neighbour = taken + 1 if taken < 65535 else taken - 1
    low, high = min(taken, neighbour), max(taken, neighbour)
    try:
        sock = sockets.bind(parse({"protocol": protocol, "ip": "127.0.0.1",
                                   "portRange": {"min": low, "max": high}}))
    except WorkerError:
        pytest.skip(f"port {neighbour} is in use by something else")
    assert sock.getsockname()[1] == neighbour


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_explicit_port_in_use_is_an_error_naming_it(sockets: Sockets, protocol: str) -> None:
    taken = sockets.occupied_port(protocol)
    info = parse({"protocol": protocol, "ip": "127.0.0.1", "port": taken})
    with pytest.raises(WorkerError) as caught:
        bind_socket(info)
    assert not isinstance(caught.value, WorkerTypeError)
    assert caught.value.wire_name == "Error"
    assert str(taken) in str(caught.value) and "in use" in str(caught.value)
    assert protocol in str(caught.value)


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_a_full_range_is_an_error(sockets: Sockets, protocol: str) -> None:
    taken = sockets.occupied_port(protocol)
    info = parse({"protocol": protocol, "ip": "127.0.0.1",
                  "portRange": {"min": taken, "max": taken}})
    with pytest.raises(WorkerError, match=f"no free {protocol} port") as caught:
        bind_socket(info)
    assert f"{taken}-{taken}" in str(caught.value)


def test_udp_and_tcp_share_a_port_number(sockets: Sockets) -> None:
    udp = sockets.bind(parse({"protocol": "udp", "ip": "127.0.0.1"}))
    port = udp.getsockname()[1]
    tcp = sockets.bind(parse({"protocol": "tcp", "ip": "127.0.0.1", "port": port}))
    assert tcp.getsockname()[1] == port


@pytest.mark.parametrize(("protocol", "ip"), [("udp", "192.0.2.1"), ("tcp", "192.0.2.1"),
                                              ("udp", "2001:db8::1"), ("tcp", "2001:db8::1")])
def test_an_address_not_on_this_machine_fails_at_once(
        monkeypatch: pytest.MonkeyPatch, protocol: str, ip: str) -> None:
    """EADDRNOTAVAIL is not "port in use": the range is not scanned, the first bind answers."""
    if _nonlocal_bind_allowed(ip):
        pytest.skip("this machine allows binding addresses it does not have")
    attempts: list[int] = []
    real_try_bind = li._try_bind

    def counting_try_bind(info: ListenInfo, port: int) -> socket.socket | None:
        attempts.append(port)
        return real_try_bind(info, port)

    monkeypatch.setattr(li, "_try_bind", counting_try_bind)
    info = parse({"protocol": protocol, "ip": ip})  # port 0: the whole default range
    with pytest.raises(WorkerError) as caught:
        bind_socket(info)
    assert ip in str(caught.value)
    assert len(attempts) == 1
    assert DEFAULT_RTC_MIN_PORT <= attempts[0] <= DEFAULT_RTC_MAX_PORT


@needs_ipv6
@pytest.mark.parametrize("protocol", ["udp", "tcp"])
@pytest.mark.parametrize("ipv6_only", [True, False])
def test_ipv6_only_flag(sockets: Sockets, protocol: str, ipv6_only: bool) -> None:
    info = parse({"protocol": protocol, "ip": "::1", "flags": {"ipv6Only": ipv6_only}})
    # Checked before bind: Linux sets IPV6_V6ONLY itself once a socket is bound to a specific
    # IPv6 address such as ::1, and tests only bind loopback, never "::".
    unbound = sockets.keep(li._new_socket(info))
    assert unbound.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == int(ipv6_only)
    sock = sockets.bind(info)
    assert sock.family == socket.AF_INET6
    assert sock.getsockname()[0] == "::1"
    if ipv6_only:
        assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1


@needs_ipv6
def test_ipv6_tcp_accepts_a_connection(sockets: Sockets) -> None:
    server = sockets.bind(parse({"protocol": "tcp", "ip": "::1"}))
    client = sockets.keep(socket.create_connection(server.getsockname()[:2], timeout=5))
    server.settimeout(5)
    accepted, peer = server.accept()
    sockets.keep(accepted)
    assert peer[:2] == client.getsockname()[:2]


def test_tcp_socket_listens_and_reuses_address(sockets: Sockets) -> None:
    server = sockets.bind(parse({"protocol": "tcp", "ip": "127.0.0.1"}))
    assert server.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
    assert server.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
    client = sockets.keep(socket.create_connection(server.getsockname(), timeout=5))
    server.settimeout(5)
    accepted, _ = server.accept()
    sockets.keep(accepted)
    client.sendall(b"x")
    accepted.settimeout(5)
    assert accepted.recv(1) == b"x"


def test_udp_reuse_port(sockets: Sockets) -> None:
    first = sockets.bind(parse({"protocol": "udp", "ip": "127.0.0.1",
                                "flags": {"udpReusePort": True}}))
    port = first.getsockname()[1]
    assert first.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
    second = sockets.bind(parse({"protocol": "udp", "ip": "127.0.0.1", "port": port,
                                 "flags": {"udpReusePort": True}}))
    assert second.getsockname()[1] == port
    # Without the flag, the same port is in use.
    with pytest.raises(WorkerError, match="in use"):
        bind_socket(parse({"protocol": "udp", "ip": "127.0.0.1", "port": port}))


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_buffer_sizes_are_applied(sockets: Sockets, protocol: str) -> None:
    small = sockets.bind(parse({"protocol": protocol, "ip": "127.0.0.1",
                                "sendBufferSize": 8192, "recvBufferSize": 8192}))
    large = sockets.bind(parse({"protocol": protocol, "ip": "127.0.0.1",
                                "sendBufferSize": 200_000, "recvBufferSize": 200_000}))
    for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        # Linux doubles the value and clamps it to its limits; the order must survive.
        assert small.getsockopt(socket.SOL_SOCKET, option) >= 8192
        assert large.getsockopt(socket.SOL_SOCKET, option) > small.getsockopt(socket.SOL_SOCKET,
                                                                              option)


def test_udp_socket_receives(sockets: Sockets) -> None:
    server = sockets.bind(parse({"protocol": "udp", "ip": "127.0.0.1"}))
    client = sockets.keep(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    client.bind(("127.0.0.1", 0))
    client.sendto(b"ping", server.getsockname())
    server.settimeout(5)
    data, peer = server.recvfrom(64)
    assert data == b"ping" and peer == client.getsockname()

