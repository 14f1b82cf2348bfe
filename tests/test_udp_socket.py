"""The worker's batched UDP reader (worker/net/udp.py) on a real loop and real sockets.

It lends pool slots by the traffic: a full batch makes the next one larger, a light one makes
it smaller, never past the batch arrays' capacity. Bursts of every size must all be delivered,
with no exception escaping into the loop and every slot given back.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from worker.bufferpool import BufferPool
from worker.net.udp import RECV_BATCH, UdpSocket


def test_bursts_of_every_size_are_delivered_and_slots_returned() -> None:
    loop = asyncio.new_event_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    pool = BufferPool("udpRecv", 2048, 512)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    got: list[bytes] = []
    udp = UdpSocket(loop, sock, pool, lambda _s, view, _src, _kind: got.append(bytes(view)))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    expected: list[bytes] = []
    try:
        # Full batches first (the lent count grows to the cap), then light batches of sizes
        # whose double exceeds the cap, then small ones.
        for burst in (3 * RECV_BATCH, RECV_BATCH - 1, RECV_BATCH // 2 + 7, 40, 5, 1,
                      2 * RECV_BATCH):
            for _ in range(burst):
                data = len(expected).to_bytes(4, "big") + b"x" * 100
                sender.sendto(data, udp.local)
                expected.append(data)
            loop.run_until_complete(_until(lambda: len(got) == len(expected)))
            assert pool.in_use == 0
    finally:
        udp.close()
        sender.close()
        loop.close()
    assert errors == []
    assert got == expected
    assert udp.packets_received == len(expected)


async def _until(done: Any, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not done():
        assert loop.time() < deadline, "datagrams not delivered in time"
        await asyncio.sleep(0.005)
