"""The lossy UDP relay the media tests put between a peer and the worker (tests/udp_proxy.py).

An echo server on 127.0.0.1 stands for the worker; clients are plain UDP sockets driven from
asyncio. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable
from typing import cast

import pytest

from tests.controller_support import async_test, wait_until
from tests.udp_proxy import Address, UdpRelay, classify

LOCALHOST = "127.0.0.1"
WAIT_S = 5.0


def rtp(seq: int, payload_type: int = 96, marker: bool = False) -> bytes:
    second = (0x80 if marker else 0) | payload_type
    return struct.pack("!BBHII", 0x80, second, seq & 0xFFFF, seq * 3000, 0x1234) + bytes(20)


def rtcp(packet_type: int = 201) -> bytes:
    return struct.pack("!BBH", 0x81, packet_type, 1) + bytes(4)


STUN = b"\x00\x01\x00\x00\x21\x12\xa4\x42" + bytes(12)
DTLS = b"\x16\xfe\xfd" + bytes(10)


class Echo(asyncio.DatagramProtocol):
    """Sends every datagram back to where it came from, and remembers the sources."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.received: list[tuple[bytes, Address]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        source = (str(addr[0]), int(addr[1]))
        self.received.append((data, source))
        assert self.transport is not None
        self.transport.sendto(data, source)


class Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.received.append(data)

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.sendto(data)


class Sockets:
    """The test's echo servers and clients; :meth:`close` closes every one."""

    def __init__(self) -> None:
        self._transports: list[asyncio.BaseTransport] = []

    async def echo(self) -> tuple[Echo, Address]:
        loop = asyncio.get_running_loop()
        transport, echo = await loop.create_datagram_endpoint(Echo, local_addr=(LOCALHOST, 0))
        self._transports.append(transport)
        host, port = transport.get_extra_info("sockname")[:2]
        return echo, (str(host), int(port))

    async def client(self, address: Address) -> Client:
        loop = asyncio.get_running_loop()
        transport, client = await loop.create_datagram_endpoint(Client, remote_addr=address)
        self._transports.append(transport)
        return client

    def close(self) -> None:
        for transport in self._transports:
            transport.close()


async def settle(check: Callable[[], int]) -> None:
    """Wait until ``check()`` stops changing for 0.2 s (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    last = -1
    while loop.time() < deadline:
        now = check()
        if now == last:
            return
        last = now
        await asyncio.sleep(0.2)
    raise AssertionError("traffic did not settle")


async def paced(client: Client, packets: list[bytes]) -> None:
    """Send in small bursts, so that no socket buffer on loopback overflows."""
    for i, data in enumerate(packets):
        client.send(data)
        if i % 50 == 49:
            await asyncio.sleep(0.005)


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (STUN, "stun"),
        (DTLS, "dtls"),
        (rtp(1), "rtp"),
        (rtp(1, payload_type=111, marker=True), "rtp"),
        (rtcp(200), "rtcp"),
        (rtcp(205), "rtcp"),
        (rtcp(223), "rtcp"),
        (b"", "other"),
        (b"\x40\x00", "other"),
    ],
)
def test_classify(data: bytes, kind: str) -> None:
    assert classify(data) == kind


@async_test
async def test_forwards_every_kind_both_ways_without_loss() -> None:
    with contextlib.closing(Sockets()) as net:
        echo, upstream = await net.echo()
        async with UdpRelay(upstream) as relay:
            client = await net.client(relay.address)
            sent = [STUN, DTLS, *[rtp(i) for i in range(50)], rtcp()]
            await paced(client, sent)
            await wait_until(lambda: len(client.received) == len(sent))
            assert [d for d, _ in echo.received] == sent
            assert client.received == sent
            up, down = relay.counters.to_upstream, relay.counters.to_client
            assert up.forwarded == {"stun": 1, "dtls": 1, "rtp": 50, "rtcp": 1}
            assert down.forwarded == up.forwarded
            assert up.dropped_rtp == down.dropped_rtp == 0
            # The worker sees the relay's upstream socket, not the client.
            assert client.transport is not None
            assert relay.clients == [client.transport.get_extra_info("sockname")[:2]]
            upstream_side = relay.upstream_address_of(relay.clients[0])
            assert {src for _, src in echo.received} == {upstream_side}


@async_test
async def test_drops_only_rtp_and_only_in_the_lossy_direction() -> None:
    with contextlib.closing(Sockets()) as net:
        echo, upstream = await net.echo()
        async with UdpRelay(upstream, drop_to_upstream=1.0) as relay:
            client = await net.client(relay.address)
            await paced(client, [STUN, DTLS, rtcp(), *[rtp(i) for i in range(20)], rtcp(206)])
            await wait_until(lambda: len(client.received) == 4)
            await settle(lambda: len(echo.received))
            assert [classify(d) for d, _ in echo.received] == ["stun", "dtls", "rtcp", "rtcp"]
            assert relay.counters.to_upstream.dropped_rtp == 20
            assert relay.counters.to_client.dropped_rtp == 0

        echo, upstream = await net.echo()
        async with UdpRelay(upstream, drop_to_client=1.0) as relay:
            client = await net.client(relay.address)
            await paced(client, [STUN, *[rtp(i) for i in range(20)], DTLS])
            await wait_until(lambda: len(echo.received) == 22)
            await wait_until(lambda: len(client.received) == 2)
            await settle(lambda: relay.counters.to_client.dropped_rtp)
            assert client.received == [STUN, DTLS]
            assert relay.counters.to_upstream.dropped_rtp == 0
            assert relay.counters.to_client.dropped_rtp == 20
            assert relay.counters.to_upstream.forwarded_rtp == 20


async def _dropped_sequence_numbers(seed: int, count: int, loss: float) -> list[int]:
    with contextlib.closing(Sockets()) as net:
        echo, upstream = await net.echo()
        async with UdpRelay(upstream, drop_to_upstream=loss, seed=seed) as relay:
            client = await net.client(relay.address)
            await paced(client, [rtp(i) for i in range(count)])
            up = relay.counters.to_upstream
            await wait_until(lambda: len(echo.received) + up.dropped_rtp == count)
            arrived = {struct.unpack("!H", d[2:4])[0] for d, _ in echo.received}
            assert relay.counters.to_upstream.dropped_rtp == count - len(arrived)
            return [i for i in range(count) if i not in arrived]


@async_test
async def test_loss_rate_is_close_to_the_probability_and_reproducible() -> None:
    count, loss = 2000, 0.05
    first = await _dropped_sequence_numbers(7, count, loss)
    again = await _dropped_sequence_numbers(7, count, loss)
    other = await _dropped_sequence_numbers(8, count, loss)
    # 2000 draws at p=0.05: mean 100, sd ~9.7; a +-50 band is more than five sd wide.
    assert 50 <= len(first) <= 150
    assert first == again
    assert first != other


@async_test
async def test_each_client_gets_its_own_upstream_socket() -> None:
    with contextlib.closing(Sockets()) as net:
        echo, upstream = await net.echo()
        async with UdpRelay(upstream) as relay:
            a = await net.client(relay.address)
            b = await net.client(relay.address)
            a.send(b"\x00\x01a")
            b.send(b"\x00\x01b")
            await wait_until(lambda: len(a.received) == 1 and len(b.received) == 1)
            assert a.received == [b"\x00\x01a"]
            assert b.received == [b"\x00\x01b"]
            sources = {data: src for data, src in echo.received}
            assert sources[b"\x00\x01a"] != sources[b"\x00\x01b"]
            assert len(relay.clients) == 2


@async_test
async def test_set_loss_changes_the_rate_while_running() -> None:
    with contextlib.closing(Sockets()) as net:
        echo, upstream = await net.echo()
        async with UdpRelay(upstream) as relay:
            client = await net.client(relay.address)
            await paced(client, [rtp(i) for i in range(100)])
            await wait_until(lambda: len(echo.received) == 100)
            relay.set_loss(to_upstream=1.0)
            await paced(client, [rtp(i) for i in range(100, 150)])
            await wait_until(lambda: relay.counters.to_upstream.dropped_rtp == 50)
            relay.set_loss(to_upstream=0.0)
            client.send(rtp(150))
            await wait_until(lambda: len(echo.received) == 101)
            with pytest.raises(ValueError):
                relay.set_loss(to_client=1.5)


@async_test
async def test_close_releases_the_port_and_stops_forwarding() -> None:
    with contextlib.closing(Sockets()) as net:
        echo, upstream = await net.echo()
        relay = UdpRelay(upstream)
        address = await relay.start()
        client = await net.client(address)
        client.send(STUN)
        await wait_until(lambda: len(client.received) == 1)
        await relay.close()
        await relay.close()  # idempotent
        client.send(STUN)
        await asyncio.sleep(0.2)
        assert len(echo.received) == 1
        # The relay's client-facing port is free again.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(address)
