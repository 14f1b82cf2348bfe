"""Minimal ICE clients for tests: binding requests over UDP and over ICE-TCP (RFC 4571).

Requests are built with the pure-Python STUN reference (``tests/reference/stun.py``), so the
worker's C parser is checked against independent bytes. Every read has a timeout.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any

from tests.reference import stun

BINDING = 0x001


@dataclass
class IceCredentials:
    """The transport's ICE parameters plus our own username fragment."""

    local_ufrag: str  # the transport's (the server side's) usernameFragment
    password: str  # the transport's password
    remote_ufrag: str = "testclient"

    @classmethod
    def of(cls, transport_dump: dict[str, Any]) -> IceCredentials:
        params = transport_dump["iceParameters"]
        return cls(params["usernameFragment"], params["password"])


def binding_request(creds: IceCredentials, *, use_candidate: bool = False,
                    priority: int = 1853817087, nomination: int | None = None,
                    password: str | None = None, controlled: bool = False,
                    transaction_id: bytes | None = None) -> tuple[bytes, bytes]:
    """A binding request as a controlling full-ICE agent sends it; returns (tid, bytes)."""
    tid = transaction_id or os.urandom(12)
    attributes: dict[int, Any] = {
        stun.USERNAME: f"{creds.local_ufrag}:{creds.remote_ufrag}".encode(),
        stun.PRIORITY: priority,
    }
    if controlled:
        attributes[stun.ICE_CONTROLLED] = 0x1122334455667788
    else:
        attributes[stun.ICE_CONTROLLING] = 0x1122334455667788
    if use_candidate:
        attributes[stun.USE_CANDIDATE] = True
    if nomination is not None:
        attributes[stun.NOMINATION] = nomination
    message = stun.StunMessage(BINDING, stun.StunClass.REQUEST, tid, attributes)
    key = (password if password is not None else creds.password).encode()
    return tid, message.build(integrity_key=key)


def parse_response(data: bytes) -> stun.StunMessage:
    return stun.parse_message(data)


def error_code(message: stun.StunMessage) -> int | None:
    value = message.attributes.get(stun.ERROR_CODE)
    return None if value is None else int(value.code)


class IceTcpClient:
    """An ICE-TCP peer: RFC 4571 frames (2-byte length) over one TCP connection."""

    def __init__(self, address: tuple[str, int], timeout: float = 5.0) -> None:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(address)
        self._buffer = b""

    def send_frame(self, payload: bytes) -> None:
        self.sock.sendall(struct.pack("!H", len(payload)) + payload)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_frame(self, timeout: float = 5.0) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            if len(self._buffer) >= 2:
                (length,) = struct.unpack_from("!H", self._buffer)
                if len(self._buffer) >= 2 + length:
                    frame = self._buffer[2 : 2 + length]
                    self._buffer = self._buffer[2 + length :]
                    return frame
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no frame from the worker in time")
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the worker closed the connection")
            self._buffer += chunk

    def request(self, creds: IceCredentials, **options: Any) -> stun.StunMessage:
        """Send a binding request and return the parsed response to it."""
        tid, data = binding_request(creds, **options)
        self.send_frame(data)
        response = parse_response(self.read_frame())
        assert response.transaction_id == tid
        return response

    def closed_by_peer(self, timeout: float = 5.0) -> bool:
        """True once the worker has closed its side (EOF or reset) within ``timeout``."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
        return True

    def reset(self) -> None:
        """Close with an RST instead of a FIN (SO_LINGER 0)."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self) -> None:
        self.sock.close()


class IceUdpClient:
    """An ICE peer over UDP on one local socket."""

    def __init__(self, local_ip: str = "127.0.0.1", timeout: float = 5.0) -> None:
        family = socket.AF_INET6 if ":" in local_ip else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((local_ip, 0))
        self.sock.settimeout(timeout)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()[:2]
        return host, port

    def request(self, creds: IceCredentials, server: tuple[str, int],
                **options: Any) -> stun.StunMessage:
        tid, data = binding_request(creds, **options)
        self.sock.sendto(data, server)
        while True:
            response = parse_response(self.sock.recv(65536))
            if response.transaction_id == tid:
                return response

    def send(self, data: bytes, server: tuple[str, int]) -> None:
        self.sock.sendto(data, server)

    def close(self) -> None:
        self.sock.close()
