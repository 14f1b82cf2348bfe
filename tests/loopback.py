"""The loopback addresses network tests use, and whether this machine has IPv6 loopback."""

from __future__ import annotations

import socket

import pytest

IPV4 = "127.0.0.1"
IPV6 = "::1"


def _ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind((IPV6, 0))
    except OSError:
        return False
    return True


HAVE_IPV6 = _ipv6_loopback_available()
# Parameters for tests that run once per address family (IPv6 skipped where ::1 is missing).
FAMILIES = [
    pytest.param(IPV4, id="ipv4"),
    pytest.param(IPV6, id="ipv6", marks=pytest.mark.skipif(
        not HAVE_IPV6, reason="::1 cannot be bound on this machine")),
]
LOOPBACKS = [IPV4, IPV6] if HAVE_IPV6 else [IPV4]
