"""``listenInfos``: validation (mediasoup v3's TransportListenInfo) and binding of the sockets.

A listen info is ``{protocol, ip, announcedAddress?, port?, portRange? {min, max}, flags?
{ipv6Only, udpReusePort}, sendBufferSize?, recvBufferSize?}``. ``announcedIp`` (deprecated in
mediasoup) is accepted as ``announcedAddress``. A ``port`` of 0 or none takes a free port from
``portRange``, or from the worker's ``--rtcMinPort``/``--rtcMaxPort``; a given port that is in use
is an ``Error``.
"""

from __future__ import annotations

import errno
import ipaddress
import random
import socket
from dataclasses import dataclass
from typing import Any, Final

from worker.errors import WorkerError, WorkerTypeError

__all__ = ["ListenInfo", "bind_socket", "parse_listen_info", "parse_listen_infos"]

TCP_LISTEN_BACKLOG: Final = 512  # mediasoup's
MAX_LISTEN_INFOS: Final = 8


@dataclass(frozen=True, slots=True)
class ListenInfo:
    protocol: str  # "udp" or "tcp"
    ip: str
    announced_address: str | None
    port: int  # 0: pick from port_range
    port_range: tuple[int, int]
    ipv6_only: bool
    udp_reuse_port: bool
    send_buffer_size: int | None
    recv_buffer_size: int | None

    @property
    def family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if ":" in self.ip else socket.AF_INET

    def dump(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "ip": self.ip,
            "announcedAddress": self.announced_address,
            "port": self.port,
            "portRange": {"min": self.port_range[0], "max": self.port_range[1]},
            "flags": {"ipv6Only": self.ipv6_only, "udpReusePort": self.udp_reuse_port},
            "sendBufferSize": self.send_buffer_size,
            "recvBufferSize": self.recv_buffer_size,
        }


def _optional_int(data: dict[str, Any], key: str, low: int, high: int,
                  where: str = "listenInfo") -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise WorkerTypeError(f"invalid {where}.{key} (an integer from {low} to {high})")
    return value


def _flag(flags: dict[str, Any], key: str) -> bool:
    value = flags.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise WorkerTypeError(f"invalid listenInfo.flags.{key} (a boolean)")
    return value


def parse_listen_info(data: object, default_range: tuple[int, int],
                      protocols: tuple[str, ...] = ("udp", "tcp")) -> ListenInfo:
    if not isinstance(data, dict):
        raise WorkerTypeError("listenInfo must be an object")
    protocol = data.get("protocol", "udp")
    if protocol not in protocols:
        raise WorkerTypeError(f"invalid listenInfo.protocol {protocol!r} "
                              f"(one of {', '.join(protocols)})")
    ip = data.get("ip")
    if not isinstance(ip, str):
        raise WorkerTypeError("missing listenInfo.ip")
    try:
        ip = str(ipaddress.ip_address(ip))
    except ValueError:
        raise WorkerTypeError(f"invalid listenInfo.ip {ip!r} (an IPv4 or IPv6 address)") from None
    announced = data.get("announcedAddress", data.get("announcedIp"))
    if announced is not None and (not isinstance(announced, str) or not announced):
        raise WorkerTypeError("invalid listenInfo.announcedAddress (a non-empty string)")
    port = _optional_int(data, "port", 0, 65535) or 0
    port_range = default_range
    raw_range = data.get("portRange")
    if raw_range is not None:
        if not isinstance(raw_range, dict):
            raise WorkerTypeError("invalid listenInfo.portRange (an object {min, max})")
        low = _optional_int(raw_range, "min", 1, 65535, "listenInfo.portRange")
        high = _optional_int(raw_range, "max", 1, 65535, "listenInfo.portRange")
        if low is not None or high is not None:
            if low is None or high is None or low > high:
                raise WorkerTypeError("invalid listenInfo.portRange (min and max, min <= max)")
            port_range = (low, high)
    flags = data.get("flags") or {}
    if not isinstance(flags, dict):
        raise WorkerTypeError("invalid listenInfo.flags (an object)")
    return ListenInfo(
        protocol=protocol,
        ip=ip,
        announced_address=announced,
        port=port,
        port_range=port_range,
        ipv6_only=_flag(flags, "ipv6Only"),
        udp_reuse_port=_flag(flags, "udpReusePort"),
        send_buffer_size=_optional_int(data, "sendBufferSize", 1, 2**31 - 1),
        recv_buffer_size=_optional_int(data, "recvBufferSize", 1, 2**31 - 1),
    )


def parse_listen_infos(data: object, default_range: tuple[int, int]) -> list[ListenInfo]:
    if not isinstance(data, list) or not data:
        raise WorkerTypeError("listenInfos must be a non-empty array")
    if len(data) > MAX_LISTEN_INFOS:
        raise WorkerTypeError(f"too many listenInfos (at most {MAX_LISTEN_INFOS})")
    return [parse_listen_info(item, default_range) for item in data]


def _new_socket(info: ListenInfo) -> socket.socket:
    kind = socket.SOCK_DGRAM if info.protocol == "udp" else socket.SOCK_STREAM
    sock = socket.socket(info.family, kind)
    try:
        sock.setblocking(False)
        if info.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(info.ipv6_only))
        if info.protocol == "tcp":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        elif info.udp_reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if info.send_buffer_size is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, info.send_buffer_size)
        if info.recv_buffer_size is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, info.recv_buffer_size)
    except OSError:
        sock.close()
        raise
    return sock


def _try_bind(info: ListenInfo, port: int) -> socket.socket | None:
    """The bound socket, None if the port is taken; ``Error`` if the address cannot be used."""
    try:
        sock = _new_socket(info)
    except OSError as exc:
        raise WorkerError(f"cannot open a {info.protocol} socket for {info.ip}: {exc}") from None
    try:
        sock.bind((info.ip, port))
        if info.protocol == "tcp":
            sock.listen(TCP_LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            return None
        raise WorkerError(f"cannot bind {info.protocol} {info.ip}:{port}: {exc.strerror}") from None
    return sock


def bind_socket(info: ListenInfo) -> socket.socket:
    """A bound (and, for TCP, listening) non-blocking socket for ``info``; ``Error`` if none."""
    if info.port:
        sock = _try_bind(info, info.port)
        if sock is None:
            raise WorkerError(f"cannot bind {info.protocol} {info.ip}:{info.port}: "
                              "address already in use")
        return sock
    low, high = info.port_range
    ports = list(range(low, high + 1))
    start = random.randrange(len(ports))
    for port in ports[start:] + ports[:start]:
        sock = _try_bind(info, port)
        if sock is not None:
            return sock
    raise WorkerError(f"no free {info.protocol} port on {info.ip} in {low}-{high}")
