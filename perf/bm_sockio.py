"""Benchmark batched UDP receive and send on loopback: C batches against a Python loop (pyperf).

Usage::

    python -m perf.bm_sockio            # full run (about 2 minutes)
    python -m perf.bm_sockio --fast     # quick run
    python -m perf.bm_sockio --fast -o sockio.json   # keep the results

Every pyperf option works (``--help``). A batch is 64 datagrams of 1200 bytes (seeded bytes) on
127.0.0.1, and every time is **per packet** (pyperf's ``inner_loops`` divides by 64). The
kernel's own work is included, since that is most of the cost: measured from C on this machine
class, sendmmsg costs about 0.9-1.0 µs per packet on loopback (delivery into the receiving
socket included) and recvmmsg about 0.27 µs, so the C batches can only save the Python-side
cost per packet (about 0.3-0.6 µs for ``sendto`` with an address tuple and ``recv_into``).

- ``sockio_forward_c``: what a reflector does per batch: :meth:`worker._fast.RecvBatch.recv`
  (one recvmmsg into pool slots, with source addresses), then :meth:`SendBatch.send` of the
  same slots to another socket (one sendmmsg); two C calls per 64 packets.
- ``sockio_forward_py``: the same in a Python loop: 64 x ``sock.recv_into(slot)`` then
  64 x ``sock.sendto(slot[:n], addr)``.
- ``sockio_recv_c`` / ``sockio_recv_py``: the receive half alone.
- ``sockio_send_c`` / ``sockio_send_py``: the send half alone.

Only the named part is timed: filling the receiving socket before a batch and draining the
destination after it happen outside the timer, and both check that every packet arrived.
"""

from __future__ import annotations

import random
import socket
import sys
from collections.abc import Callable
from time import perf_counter
from typing import Final

import pyperf

from worker import _fast

__all__ = ["BATCH", "PACKET_BYTES", "SEED", "Rig", "benchmark_names", "main"]

SEED: Final = 20240611
BATCH: Final = 64
PACKET_BYTES: Final = 1200
SLOT_BYTES: Final = 2048
SOCKET_BUFFER_BYTES: Final = 4 << 20


class Rig:
    """Three loopback sockets: a generator, the socket under test ("fwd") and a sink."""

    def __init__(self, seed: int = SEED) -> None:
        rng = random.Random(seed)
        self.gen = self._udp()
        self.fwd = self._udp()
        self.sink = self._udp()
        self.sink_addr: tuple[str, int] = self.sink.getsockname()
        self.slab = bytearray(SLOT_BYTES * BATCH * 2)  # slots 0..63: packets; 64..127: scratch
        for i in range(BATCH):
            self.slab[i * SLOT_BYTES : i * SLOT_BYTES + PACKET_BYTES] = rng.randbytes(PACKET_BYTES)
        slab = memoryview(self.slab)
        # Generator -> fwd: the packets in slots 0..63.
        self.fill_batch = _fast.SendBatch(slab, BATCH)
        for i in range(BATCH):
            self.fill_batch.set(i, i * SLOT_BYTES, PACKET_BYTES, self.fwd.getsockname())
        # fwd receives into slots 64..127 and sends them on to the sink.
        self.recv_batch = _fast.RecvBatch(slab, SLOT_BYTES, BATCH)
        self.recv_batch.slots[0:BATCH] = list(range(BATCH, 2 * BATCH))
        self.send_batch = _fast.SendBatch(slab, BATCH)
        for i in range(BATCH):
            self.send_batch.set(i, (BATCH + i) * SLOT_BYTES, PACKET_BYTES, self.sink_addr)
        # The sink drains into slots 64..127 too (their content no longer matters then).
        self.drain_batch = _fast.RecvBatch(slab, SLOT_BYTES, BATCH)
        self.drain_batch.slots[0:BATCH] = list(range(BATCH, 2 * BATCH))
        # The Python loop's buffers: views of the same slots.
        self.py_views = [slab[(BATCH + i) * SLOT_BYTES : (BATCH + i + 1) * SLOT_BYTES]
                         for i in range(BATCH)]
        self.py_lengths = [0] * BATCH

    @staticmethod
    def _udp() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER_BYTES)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        return sock

    def fill(self) -> None:
        """Queue one batch on the socket under test (untimed)."""
        if self.fill_batch.send(self.gen.fileno(), BATCH) != BATCH:
            raise AssertionError(f"filling the socket stopped: errno {self.fill_batch.err}")

    def drain_sink(self, expected: int) -> None:
        """Take what the socket under test sent out of the sink (untimed); all must be there."""
        got = self.drain_batch.recv(self.sink.fileno(), BATCH)
        if got != expected or any(self.drain_batch.lengths[i] != PACKET_BYTES
                                  for i in range(got)):
            raise AssertionError(f"the sink received {got} of {expected} packets")

    def check_received(self, got: int) -> None:
        if got != BATCH:
            raise AssertionError(f"received {got} of {BATCH} packets")

    def close(self) -> None:
        for sock in (self.gen, self.fwd, self.sink):
            sock.close()


# -- timed functions (pyperf calls them with the number of loops) ---------------------------


def time_forward_c(loops: int, rig: Rig) -> float:
    recv, send, fwd = rig.recv_batch.recv, rig.send_batch.send, rig.fwd.fileno()
    memmove, send_lengths, recv_lengths = _fast.ffi.memmove, rig.send_batch.lengths, \
        rig.recv_batch.lengths
    total = 0.0
    for _ in range(loops):
        rig.fill()
        t0 = perf_counter()
        got = recv(fwd, BATCH)
        memmove(send_lengths, recv_lengths, 4 * got)  # one call, not one per packet
        sent = send(fwd, got)
        total += perf_counter() - t0
        rig.check_received(got)
        rig.drain_sink(sent)
    return total


def time_forward_py(loops: int, rig: Rig) -> float:
    recv_into, sendto, views, lengths = rig.fwd.recv_into, rig.fwd.sendto, rig.py_views, \
        rig.py_lengths
    addr = rig.sink_addr
    total = 0.0
    for _ in range(loops):
        rig.fill()
        t0 = perf_counter()
        for i in range(BATCH):
            lengths[i] = recv_into(views[i])
        for i in range(BATCH):
            sendto(views[i][: lengths[i]], addr)
        total += perf_counter() - t0
        rig.drain_sink(BATCH)
    return total


def time_recv_c(loops: int, rig: Rig) -> float:
    recv, fwd = rig.recv_batch.recv, rig.fwd.fileno()
    total = 0.0
    for _ in range(loops):
        rig.fill()
        t0 = perf_counter()
        got = recv(fwd, BATCH)
        total += perf_counter() - t0
        rig.check_received(got)
    return total


def time_recv_py(loops: int, rig: Rig) -> float:
    recv_into, views, lengths = rig.fwd.recv_into, rig.py_views, rig.py_lengths
    total = 0.0
    for _ in range(loops):
        rig.fill()
        t0 = perf_counter()
        for i in range(BATCH):
            lengths[i] = recv_into(views[i])
        total += perf_counter() - t0
    return total


def time_send_c(loops: int, rig: Rig) -> float:
    send, fwd = rig.send_batch.send, rig.fwd.fileno()
    total = 0.0
    for _ in range(loops):
        t0 = perf_counter()
        sent = send(fwd, BATCH)
        total += perf_counter() - t0
        rig.drain_sink(sent)
    return total


def time_send_py(loops: int, rig: Rig) -> float:
    sendto, views, addr = rig.fwd.sendto, rig.py_views, rig.sink_addr
    total = 0.0
    for _ in range(loops):
        t0 = perf_counter()
        for i in range(BATCH):
            sendto(views[i][:PACKET_BYTES], addr)
        total += perf_counter() - t0
        rig.drain_sink(BATCH)
    return total


TIMED: Final[dict[str, Callable[[int, Rig], float]]] = {
    "sockio_forward_c": time_forward_c,
    "sockio_forward_py": time_forward_py,
    "sockio_recv_c": time_recv_c,
    "sockio_recv_py": time_recv_py,
    "sockio_send_c": time_send_c,
    "sockio_send_py": time_send_py,
}


def benchmark_names() -> list[str]:
    """Every benchmark this script runs, in order."""
    return list(TIMED)


def main() -> None:
    program_args = ("-m", __spec__.name) if __spec__ is not None else (sys.argv[0],)
    runner = pyperf.Runner(program_args=program_args)
    runner.metadata["description"] = (
        f"Batched UDP I/O on loopback: {BATCH} x {PACKET_BYTES} B per batch, time per packet")
    runner.metadata["sockio_seed"] = str(SEED)
    rig = Rig()
    meta = {"batch_packets": str(BATCH), "packet_bytes": str(PACKET_BYTES)}
    for name, func in TIMED.items():
        runner.bench_time_func(name, func, rig, inner_loops=BATCH, metadata=meta)


if __name__ == "__main__":
    main()
