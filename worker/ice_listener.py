"""The sockets ICE-lite transports are reached through, and the demultiplexing to them.

An :class:`IceListener` owns UDP sockets and TCP listening servers. It is used by a WebRtcServer
(shared by many transports) and privately by a transport created with its own ``listenInfos``.
The first STUN request from a new tuple is matched to a transport by the local username fragment
(the USERNAME part before ``:``); every later packet by its 5-tuple, which the transport
registers once ICE has accepted it. Anything else is dropped and counted.

TCP ownership: an accepted connection belongs to the listener until ICE accepts a binding
request on it; the transport then takes it (``TcpConnection.transfer``). A connection that no
transport takes within ``PENDING_TCP_TIMEOUT_S`` is closed, so a silent or hostile peer cannot
hold a 64 KiB receive buffer. Closing the listener closes its pending connections, then its
sockets; the transports (which own their connections) close before it.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any, Final, Protocol

from worker._fast import Kind, StunClass, StunMessageView, StunParseError, classify, parse_stun
from worker.bufferpool import PoolSet
from worker.ice_server import IceTuple
from worker.listen_info import ListenInfo, bind_socket
from worker.logger import Logger
from worker.media_ingress import FlushQueue
from worker.net.tcp import TcpConnection, TcpServer
from worker.net.udp import UdpSocket

__all__ = ["PENDING_TCP_TIMEOUT_S", "IceListener", "IcePeer", "TupleKey", "tuple_hash"]

PENDING_TCP_TIMEOUT_S: Final = 10.0

TupleKey = tuple[str, str, int, str, int]


def tuple_hash(key: TupleKey) -> int:
    """A stable 64-bit number for a tuple (``tupleHashes`` in dumps)."""
    text = "|".join(str(part) for part in key).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


class IcePeer(Protocol):
    """What a listener needs of a transport."""

    id: str

    def handle_stun(self, data: bytes, msg: StunMessageView, tup: IceTuple) -> None: ...

    def handle_packet(self, tup: IceTuple, data: memoryview, kind: Kind) -> None: ...


class IceListener:
    def __init__(self, loop: asyncio.AbstractEventLoop, pools: PoolSet, logger: Logger,
                 infos: list[ListenInfo]) -> None:
        self._loop = loop
        self._pools = pools
        self._logger = logger
        self.infos = infos
        self.udp_sockets: list[UdpSocket] = []
        self.tcp_servers: list[TcpServer] = []
        self._announced: dict[tuple[str, str, int], str | None] = {}
        self._by_ufrag: dict[str, IcePeer] = {}
        self._by_tuple: dict[TupleKey, tuple[IcePeer, IceTuple]] = {}
        self._pending: dict[TcpConnection, asyncio.TimerHandle] = {}
        self.closed = False
        self.dropped_unknown = 0
        self.dropped_malformed_stun = 0
        self.media_flush = FlushQueue(logger)
        try:
            for info in infos:
                self._open(info)
        except BaseException:
            self.close()
            raise

    def _open(self, info: ListenInfo) -> None:
        sock = bind_socket(info)
        if info.protocol == "udp":
            udp = UdpSocket(self._loop, sock, self._pools["udpRecv"], self._on_udp_datagram)
            udp.on_batch_end = self.media_flush.flush
            self.udp_sockets.append(udp)
            self._announced[("udp", *udp.local)] = info.announced_address
        else:
            server = TcpServer(self._loop, sock, self._pools["tcpRecv"], self,
                               self._on_pending_frame, self._on_accepted, self._logger)
            self.tcp_servers.append(server)
            self._announced[("tcp", *server.local)] = info.announced_address

    # -- registrations (by transports) -----------------------------------------------------

    def add_ufrag(self, ufrag: str, peer: IcePeer) -> None:
        self._by_ufrag[ufrag] = peer

    def remove_ufrag(self, ufrag: str) -> None:
        self._by_ufrag.pop(ufrag, None)

    def add_tuple(self, tup: IceTuple, peer: IcePeer) -> None:
        self._by_tuple[tup.key] = (peer, tup)

    def remove_tuple(self, tup: IceTuple) -> None:
        entry = self._by_tuple.get(tup.key)
        if entry is not None and entry[1] is tup:
            del self._by_tuple[tup.key]

    def local_endpoints(self) -> list[tuple[str, str, int, str | None]]:
        """(protocol, ip, port, announced address) of every socket, in listenInfos order."""
        endpoints = [("udp", *s.local, self._announced[("udp", *s.local)])
                     for s in self.udp_sockets]
        endpoints += [("tcp", *s.local, self._announced[("tcp", *s.local)])
                      for s in self.tcp_servers]
        order = {(i.protocol, i.ip): n for n, i in enumerate(self.infos)}
        endpoints.sort(key=lambda e: order.get((e[0], e[1]), len(order)))
        return endpoints

    # -- UDP ------------------------------------------------------------------------------

    def _on_udp_datagram(self, sock: UdpSocket, view: memoryview, source: tuple[str, int],
                         kind: Kind) -> None:
        key: TupleKey = ("udp", sock.local[0], sock.local[1], source[0], source[1])
        entry = self._by_tuple.get(key)
        if kind is Kind.STUN:
            tup = entry[1] if entry is not None else IceTuple("udp", sock.local[0],
                                                              sock.local[1], *source,
                                                              socket=sock)
            self._deliver_stun(bytes(view), tup, entry[0] if entry is not None else None)
        elif entry is not None:
            entry[0].handle_packet(entry[1], view, kind)
        else:
            self.dropped_unknown += 1

    def _deliver_stun(self, data: bytes, tup: IceTuple, peer: IcePeer | None) -> None:
        try:
            msg = parse_stun(data)
        except StunParseError:
            self.dropped_malformed_stun += 1
            return
        if peer is None:
            peer = self._peer_for(msg)
            if peer is None:
                self.dropped_unknown += 1
                return
        peer.handle_stun(data, msg, tup)

    def _peer_for(self, msg: StunMessageView) -> IcePeer | None:
        if msg.message_class is not StunClass.REQUEST or msg.username is None:
            return None
        ufrag = msg.username.partition(b":")[0]
        try:
            return self._by_ufrag.get(ufrag.decode("ascii"))
        except UnicodeDecodeError:
            return None

    # -- TCP ------------------------------------------------------------------------------

    def _on_accepted(self, conn: TcpConnection) -> None:
        self._pending[conn] = self._loop.call_later(PENDING_TCP_TIMEOUT_S, self._expire, conn)

    def _expire(self, conn: TcpConnection) -> None:
        if conn in self._pending:
            conn.close("no valid ICE request in time")

    def _on_pending_frame(self, conn: TcpConnection, view: memoryview) -> None:
        """A frame on a connection no transport owns yet: only STUN can claim it."""
        if classify(view) is not Kind.STUN:
            self.dropped_unknown += 1
            return
        tup = IceTuple("tcp", conn.local[0], conn.local[1], conn.remote[0], conn.remote[1],
                       connection=conn)
        self._deliver_stun(bytes(view), tup, None)
        if conn.owner is not self:  # ICE accepted it: the transport owns it now
            handle = self._pending.pop(conn, None)
            if handle is not None:
                handle.cancel()

    def tcp_connection_closed(self, conn: TcpConnection) -> None:
        """A pending connection closed (peer, error, timeout, or the listener closing)."""
        handle = self._pending.pop(conn, None)
        if handle is not None:
            handle.cancel()

    # -- dump and close -------------------------------------------------------------------

    @property
    def pending_tcp_connections(self) -> int:
        return len(self._pending)

    def counters(self) -> dict[str, int]:
        """What this listener dropped, and what it holds, for dumps and leak checks."""
        return {
            "droppedUnknown": self.dropped_unknown,
            "droppedMalformedStun": self.dropped_malformed_stun,
            "droppedTruncated": sum(s.dropped_truncated for s in self.udp_sockets),
            "droppedNoBuffer": sum(s.dropped_no_buffer for s in self.udp_sockets),
            "tcpConnectionsPending": len(self._pending),
            "tcpConnectionsRefused": sum(s.refused for s in self.tcp_servers),
        }

    def dump_maps(self) -> dict[str, Any]:
        return {
            "localIceUsernameFragments": [
                {"localIceUsernameFragment": ufrag, "webRtcTransportId": peer.id}
                for ufrag, peer in self._by_ufrag.items()
            ],
            "tupleHashes": [
                {"tupleHash": tuple_hash(key), "webRtcTransportId": peer.id}
                for key, (peer, _) in self._by_tuple.items()
            ],
        }

    def close(self) -> None:
        """Close pending connections, then the sockets. Transports must have closed first."""
        if self.closed:
            return
        self.closed = True
        for conn in list(self._pending):
            conn.close("listener closed")
        self._pending.clear()
        for server in self.tcp_servers:
            server.close()
        for udp in self.udp_sockets:
            udp.close()
        self._by_ufrag.clear()
        self._by_tuple.clear()
