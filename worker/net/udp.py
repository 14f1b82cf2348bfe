"""A UDP socket read in batches: one ``recvmmsg`` per readiness event into pool slots.

The slots of a batch are lent from the ``udpRecv`` pool for the duration of the callbacks and
given back after ``on_batch_end`` returns: a datagram that must outlive the batch is copied by
its consumer. During a callback, ``current_slot`` names the datagram's slot, so the media path
can queue slots and fan them out in one C call at the end of the batch. When the pool is empty,
datagrams are read into a private scratch buffer and dropped (counted), so the socket is always
drained and never spins the loop.

A media socket can have a C receive path (:attr:`UdpSocket.fast`, a
:class:`worker.fast_ingress.FastSocket`): then a readiness event is one C call that receives
the batch and handles every datagram that needs no decision; the datagrams it leaves (the first
that needs Python and every later one) are delivered here as usual, in order, with
``current_unprotected`` set for those whose SRTP the C already removed.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from worker._fast import Kind, RecvBatch, ffi, lib
from worker._fast.sockio import RECV_TRUNCATED, sockio_addr_to_tuple
from worker.bufferpool import BufferPool

if TYPE_CHECKING:
    from worker.fast_ingress import FastSocket

__all__ = ["RECV_BATCH", "UdpSocket"]

RECV_BATCH: Final = 64
MIN_RECV_BATCH: Final = 4
MAX_BATCHES_PER_EVENT: Final = 4  # then other sockets get their turn
_KINDS: Final = tuple(sorted(Kind))
_ADDR_BYTES: Final[int] = ffi.sizeof("struct mw_sockio_addr")
_SOURCE_CACHE: Final = 1024  # distinct sources remembered per socket (then forgotten at once)
_UNPROTECTED: Final[int] = lib.MW_INGRESS_UNPROTECTED

# (socket, datagram view valid during the call, source (ip, port), Kind by RFC 7983)
DatagramHandler = Callable[["UdpSocket", memoryview, tuple[str, int], Kind], None]


class UdpSocket:
    """One bound, non-blocking UDP socket and its reader."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, pool: BufferPool,
                 on_datagram: DatagramHandler) -> None:
        self._loop = loop
        self._sock = sock
        self._pool = pool
        self._slab = memoryview(pool.slab)
        self._slot_size = pool.slot_size
        self._batch = RecvBatch(self._slab, pool.slot_size, RECV_BATCH)
        self.fast: FastSocket | None = None  # the C receive path, set by the owner
        self._sources: dict[bytes, tuple[str, int]] = {}
        self._want = MIN_RECV_BATCH
        self._scratch = bytearray(pool.slot_size)
        self.on_datagram = on_datagram
        # Set by the owner: called once after each receive batch, while its slots are still
        # lent (the media path flushes its queue of slots there).
        self.on_batch_end: Callable[[], None] | None = None
        self.current_slot = -1  # the pool slot of the datagram being delivered
        self.current_unprotected = False  # the C receive path removed its SRTP already
        self.fd = sock.fileno()
        self.local: tuple[str, int] = sock.getsockname()[:2]
        self.closed = False
        self.packets_received = 0
        self.bytes_received = 0
        self.packets_sent = 0
        self.bytes_sent = 0
        self.dropped_truncated = 0
        self.dropped_no_buffer = 0
        self.send_errors = 0
        loop.add_reader(self.fd, self._on_readable)

    @property
    def recv_batch(self) -> RecvBatch:
        """The receive arrays (the C receive path fills them too)."""
        return self._batch

    def _on_readable(self) -> None:
        if self.fast is not None:
            self._on_readable_fast(self.fast)
            return
        for _ in range(MAX_BATCHES_PER_EVENT):
            if self.closed:
                return
            want = self._want
            slots = self._pool.acquire_batch(want)
            if not slots:
                self._drain_without_buffers()
                return
            try:
                received = self._receive(slots)
            finally:
                self._pool.release_batch(slots)
            # Lend as many slots as the traffic needs: a full batch quadruples the next one,
            # a light one shrinks it (lending and taking back 64 slots per lone datagram
            # costs more than receiving it).
            if received == len(slots):
                self._want = min(RECV_BATCH, want * 4)
            else:
                self._want = min(RECV_BATCH, max(MIN_RECV_BATCH, 2 * received))
            if received < len(slots):
                return

    def _on_readable_fast(self, fast: FastSocket) -> None:
        now_ms = int(self._loop.time() * 1000)
        for _ in range(MAX_BATCHES_PER_EVENT):
            if self.closed:
                return
            result = fast.run(now_ms)
            received, asked = result.received, result.asked
            if not received:
                if result.err == errno.ENOBUFS:  # the receive pool is empty
                    self._drain_without_buffers()
                return
            if result.slow_from < received:
                try:
                    self._deliver_slow(fast, result.slow_from, received, now_ms)
                finally:
                    fast.release()
            if received < asked:
                return

    def _deliver_slow(self, fast: FastSocket, first: int, received: int, now_ms: int) -> None:
        """The datagrams the C left: each one here, then the C goes on after it."""
        i = first
        while i < received:
            if not fast.enabled:
                self._deliver(i, received)
                return
            self._deliver(i, i + 1)
            if self.closed:
                return
            i = fast.resume(i + 1, now_ms)

    def _receive(self, slots: list[int]) -> int:
        batch = self._batch
        batch.slots[0 : len(slots)] = slots
        received = batch.recv(self.fd, len(slots))
        if not received:
            return 0
        batch.classify()
        self._deliver(0, received)
        return received

    def _deliver(self, start: int, received: int) -> None:
        """Hand datagrams ``[start, received)`` of the batch to ``on_datagram``, then call
        ``on_batch_end``."""
        batch = self._batch
        batch_slots, kinds = batch.slots, batch.kinds
        flags, lengths, slab, slot_size = batch.flags, batch.lengths, self._slab, self._slot_size
        # Sources: one copy of the batch's address structs, each looked up by its bytes in a
        # small cache, so a steady peer costs a slice and a dict look-up, not a conversion.
        raw = ffi.buffer(batch.addrs + start, (received - start) * _ADDR_BYTES)[:]
        sources = self._sources
        for i in range(start, received):
            if flags[i] & RECV_TRUNCATED:
                self.dropped_truncated += 1
                continue
            key = raw[(i - start) * _ADDR_BYTES : (i - start + 1) * _ADDR_BYTES]
            source = sources.get(key)
            if source is None:
                source = sockio_addr_to_tuple(batch.addrs[i])
                if source is None:
                    continue
                if len(sources) >= _SOURCE_CACHE:
                    sources.clear()
                sources[key] = source
            slot = batch_slots[i]
            length = lengths[i]
            offset = slot * slot_size
            self.packets_received += 1
            self.bytes_received += length
            self.current_slot = slot
            self.current_unprotected = bool(flags[i] & _UNPROTECTED)
            self.on_datagram(self, slab[offset : offset + length], source, _KINDS[kinds[i]])
            if self.closed:  # a handler may close the socket (its owner closing)
                break
        self.current_slot = -1
        self.current_unprotected = False
        if self.on_batch_end is not None:
            self.on_batch_end()

    def _drain_without_buffers(self) -> None:
        for _ in range(RECV_BATCH):
            try:
                self._sock.recv_into(self._scratch)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self.dropped_no_buffer += 1

    def send(self, data: bytes | bytearray | memoryview, address: tuple[str, int]) -> bool:
        """Send one datagram (control traffic: STUN, DTLS); False if the kernel refused it."""
        if self.closed:
            return False
        try:
            sent = self._sock.sendto(data, address)
        except OSError:
            self.send_errors += 1
            return False
        self.packets_sent += 1
        self.bytes_sent += sent
        return True

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._loop.remove_reader(self.fd)
        self._sock.close()

    def dump(self) -> dict[str, object]:
        return {"ip": self.local[0], "port": self.local[1]}
