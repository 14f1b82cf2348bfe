"""A lossy UDP relay on 127.0.0.1 for media tests: it owns the sockets between a WebRTC peer and
the worker, and the decision which RTP packets never arrive.

A peer is pointed at :attr:`UdpRelay.address` instead of the worker's candidate; every client
address the relay hears from gets its own upstream socket towards the worker, so the worker sees
one distinct remote tuple per client, as it would without the relay. RTP packets (first byte
128..191, second byte outside the RTCP payload types 192..223, RFC 5761 / RFC 7983) are dropped
with a given probability per direction, drawn from a seeded :class:`random.Random` so that a run
is reproducible; STUN, DTLS and RTCP always pass. :class:`RelayCounters` says what was forwarded
and what was dropped.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

__all__ = ["Address", "PacketKind", "RelayCounters", "UdpRelay", "classify"]

Address = tuple[str, int]
PacketKind = Literal["stun", "dtls", "rtp", "rtcp", "other"]
LOCALHOST = "127.0.0.1"


def classify(data: bytes) -> PacketKind:
    """What a datagram on a WebRTC 5-tuple is, by its first bytes (RFC 7983, RFC 5761)."""
    if not data:
        return "other"
    first = data[0]
    if first <= 3:
        return "stun"
    if 20 <= first <= 63:
        return "dtls"
    if 128 <= first <= 191 and len(data) >= 2:
        return "rtcp" if 192 <= data[1] <= 223 else "rtp"
    return "other"


@dataclass
class DirectionCounters:
    """Datagrams seen in one direction, by kind, and the RTP packets dropped."""

    forwarded: dict[PacketKind, int] = field(default_factory=dict)
    dropped_rtp: int = 0

    def count(self, kind: PacketKind) -> None:
        self.forwarded[kind] = self.forwarded.get(kind, 0) + 1

    @property
    def forwarded_rtp(self) -> int:
        return self.forwarded.get("rtp", 0)


@dataclass
class RelayCounters:
    """Both directions: ``to_upstream`` (client → worker) and ``to_client`` (worker → client)."""

    to_upstream: DirectionCounters = field(default_factory=DirectionCounters)
    to_client: DirectionCounters = field(default_factory=DirectionCounters)


class _ClientSide(asyncio.DatagramProtocol):
    def __init__(self, relay: UdpRelay) -> None:
        self._relay = relay

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self._relay._from_client(data, (str(addr[0]), int(addr[1])))


class _UpstreamSide(asyncio.DatagramProtocol):
    def __init__(self, relay: UdpRelay, client: Address) -> None:
        self._relay = relay
        self._client = client

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self._relay._from_upstream(data, self._client)


class _Link:
    """One client's upstream socket; packets wait in ``pending`` until it is open."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: list[bytes] = []


class UdpRelay:
    """Relays datagrams between clients and ``upstream``, dropping a fraction of RTP.

    ``drop_to_upstream`` and ``drop_to_client`` are probabilities in [0, 1]; :meth:`set_loss`
    changes them while running. Use as ``async with UdpRelay(...) as relay:`` or call
    :meth:`start` and :meth:`close`.
    """

    def __init__(
        self,
        upstream: Address,
        *,
        drop_to_upstream: float = 0.0,
        drop_to_client: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.upstream = upstream
        self.counters = RelayCounters()
        self._drop_to_upstream = 0.0
        self._drop_to_client = 0.0
        self.set_loss(to_upstream=drop_to_upstream, to_client=drop_to_client)
        # One generator per direction: a direction's drops do not depend on the other's traffic.
        self._random_up = random.Random(seed)
        self._random_down = random.Random(seed + 1)
        self._listener: asyncio.DatagramTransport | None = None
        self._links: dict[Address, _Link] = {}
        self._opening: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def address(self) -> Address:
        """Where clients send: the relay's own 127.0.0.1 port."""
        if self._listener is None:
            raise RuntimeError("relay not started")
        sockname = self._listener.get_extra_info("sockname")
        return str(sockname[0]), int(sockname[1])

    @property
    def clients(self) -> list[Address]:
        return list(self._links)

    def upstream_address_of(self, client: Address) -> Address | None:
        """The relay's local address towards the worker for ``client`` (None until open)."""
        link = self._links.get(client)
        if link is None or link.transport is None:
            return None
        sockname = link.transport.get_extra_info("sockname")
        return str(sockname[0]), int(sockname[1])

    def set_loss(self, *, to_upstream: float | None = None, to_client: float | None = None) -> None:
        for value in (to_upstream, to_client):
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"a drop probability must be in [0, 1], not {value}")
        if to_upstream is not None:
            self._drop_to_upstream = to_upstream
        if to_client is not None:
            self._drop_to_client = to_client

    async def start(self) -> Address:
        if self._listener is not None:
            raise RuntimeError("relay already started")
        loop = asyncio.get_running_loop()
        self._listener, _ = await loop.create_datagram_endpoint(
            lambda: _ClientSide(self), local_addr=(LOCALHOST, 0)
        )
        return self.address

    async def close(self) -> None:
        """Close every socket; datagrams arriving later go nowhere. Closing twice is a no-op."""
        if self._closed:
            return
        self._closed = True
        for task in list(self._opening):
            task.cancel()
        if self._opening:
            await asyncio.wait(self._opening)
        if self._listener is not None:
            self._listener.close()
        for link in self._links.values():
            if link.transport is not None:
                link.transport.close()
            link.pending.clear()
        await asyncio.sleep(0)  # let the transports' close callbacks run

    async def __aenter__(self) -> UdpRelay:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- forwarding -----------------------------------------------------------------------

    def _drops(self, kind: PacketKind, probability: float, rng: random.Random) -> bool:
        if kind != "rtp" or probability <= 0.0:
            return False
        # Draw for every RTP packet, so that the sequence of drops depends only on the seed
        # and on the order of the packets.
        return rng.random() < probability

    def _from_client(self, data: bytes, client: Address) -> None:
        if self._closed:
            return
        kind = classify(data)
        counters = self.counters.to_upstream
        if self._drops(kind, self._drop_to_upstream, self._random_up):
            counters.dropped_rtp += 1
            return
        counters.count(kind)
        link = self._links.get(client)
        if link is None:
            link = self._links[client] = _Link()
            task = asyncio.get_running_loop().create_task(self._open(client, link))
            self._opening.add(task)
            task.add_done_callback(self._opening.discard)
        if link.transport is None:
            link.pending.append(data)
        else:
            link.transport.sendto(data)

    async def _open(self, client: Address, link: _Link) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UpstreamSide(self, client),
            local_addr=(LOCALHOST, 0),
            remote_addr=self.upstream,
        )
        if self._closed:
            transport.close()
            return
        link.transport = transport
        pending, link.pending = link.pending, []
        for data in pending:
            transport.sendto(data)

    def _from_upstream(self, data: bytes, client: Address) -> None:
        if self._closed or self._listener is None:
            return
        kind = classify(data)
        counters = self.counters.to_client
        if self._drops(kind, self._drop_to_client, self._random_down):
            counters.dropped_rtp += 1
            return
        counters.count(kind)
        self._listener.sendto(data, client)
