"""Batched UDP receive and send (recvmmsg, sendmmsg) into pool slots: ``cffi_build/sockio.h``.
"""

from __future__ import annotations

import socket as _sockio_socket
from typing import Any

from worker._fast._lib import Buffer, buffer_pointer, ffi, lib

SOCKIO_MAX_RECV: int = lib.MW_SOCKIO_MAX_RECV
RECV_TRUNCATED: int = lib.MW_SOCKIO_RECV_TRUNCATED


class SockioArgumentError(ValueError):
    """A batch named a slot or a byte range outside its slab, or a destination without family.

    This is a bug in the caller (the C checked before any system call; nothing was sent)."""


def sockio_addr_to_tuple(addr: Any) -> tuple[str, int] | None:
    """A ``struct mw_sockio_addr`` as ``(host, port)``, or None when it holds no IP address.

    For the control plane only: the forwarding path never builds address tuples. An IPv6 zone
    comes back as ``"fe80::1%2"`` (interface index)."""
    raw = ffi.buffer(addr.addr)[:]
    if addr.family == lib.MW_SOCKIO_FAMILY_IPV4:
        return _sockio_socket.inet_ntop(_sockio_socket.AF_INET, raw[:4]), int(addr.port)
    if addr.family == lib.MW_SOCKIO_FAMILY_IPV6:
        host = _sockio_socket.inet_ntop(_sockio_socket.AF_INET6, raw)
        if addr.scope_id:
            host = f"{host}%{addr.scope_id}"
        return host, int(addr.port)
    return None


def sockio_addr_set(addr: Any, host: str, port: int, *, v4_mapped: bool = False) -> None:
    """Fill a ``struct mw_sockio_addr`` from a numeric host and a port (control plane).

    ``host`` is ``"192.0.2.1"``, ``"2001:db8::1"`` or ``"fe80::1%eth0"`` / ``"fe80::1%2"``. With
    ``v4_mapped`` an IPv4 host is stored as ``::ffff:a.b.c.d``, as an AF_INET6 dual-stack socket
    needs it. Raises ValueError for anything else."""
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"port {port} is outside 0..65535")
    name, _, zone = host.partition("%")
    scope_id = 0
    try:
        packed = _sockio_socket.inet_pton(_sockio_socket.AF_INET, name)
        family = lib.MW_SOCKIO_FAMILY_IPV4
        if zone:
            raise ValueError(f"IPv4 address {host!r} cannot have a zone")
        if v4_mapped:
            packed = b"\x00" * 10 + b"\xff\xff" + packed
            family = lib.MW_SOCKIO_FAMILY_IPV6
    except OSError:
        try:
            packed = _sockio_socket.inet_pton(_sockio_socket.AF_INET6, name)
        except OSError:
            raise ValueError(f"{host!r} is not a numeric IPv4 or IPv6 address") from None
        family = lib.MW_SOCKIO_FAMILY_IPV6
        if zone.isdigit():
            scope_id = int(zone)
        elif zone:
            try:
                scope_id = _sockio_socket.if_nametoindex(zone)
            except OSError:
                raise ValueError(f"{host!r} names an unknown interface") from None
    ffi.memmove(addr.addr, packed.ljust(16, b"\x00"), 16)
    addr.family = family
    addr.port = port
    addr.scope_id = scope_id


class RecvBatch:
    """The preallocated arrays of one ``recvmmsg`` batch into a slab of fixed-size slots.

    Create it once per receiving socket, with ``memoryview(pool.slab)`` and the pool's slot size.
    Before each ``recv`` the caller puts the indices of the slots it has acquired into
    ``slots[0:n]``; ``recv`` makes exactly one C call and leaves datagram ``i`` in slot
    ``slots[i]``, its length in ``lengths[i]``, its source in ``addrs[i]`` and its flags
    (``RECV_TRUNCATED``: larger than the slot; drop and count it) in ``flags[i]``. The C parsers
    read those arrays directly; ``view``/``source`` are for the control plane and tests."""

    __slots__ = ("_err", "_owner", "_slab", "_slab_len", "_view", "addrs", "capacity", "count",
                 "err", "flags", "kinds", "lengths", "slot_size", "slots")

    def __init__(self, slab: Buffer, slot_size: int, capacity: int = 64) -> None:
        if not 0 < capacity <= SOCKIO_MAX_RECV:
            raise ValueError(f"capacity {capacity} is outside 1..{SOCKIO_MAX_RECV}")
        self._view = memoryview(slab).cast("B")
        if self._view.readonly:
            raise TypeError("the slab of a RecvBatch must be writable")
        if not 0 < slot_size <= len(self._view):
            raise ValueError(f"slot size {slot_size} does not fit a slab of {len(self._view)} B")
        self._slab, self._owner = buffer_pointer(self._view, writable=True)
        self._slab_len = len(self._view)
        self.slot_size = slot_size
        self.capacity = capacity
        self.slots: Any = ffi.new("uint32_t[]", capacity)
        self.lengths: Any = ffi.new("uint32_t[]", capacity)
        self.addrs: Any = ffi.new("struct mw_sockio_addr[]", capacity)
        self.flags: Any = ffi.new("uint8_t[]", capacity)
        self.kinds: Any = ffi.new("uint8_t[]", capacity)
        self._err: Any = ffi.new("int *")
        self.count = 0  # datagrams the last recv received
        self.err = 0  # errno of the last recv: 0, EAGAIN (socket empty) or the socket's error

    def recv(self, fd: int, n: int | None = None) -> int:
        """Receive up to ``n`` (default: capacity) datagrams from ``fd`` into ``slots[0:n]``.

        One C call. Returns how many came (0 when the socket is empty or failed: ``err`` says
        which, EAGAIN or the errno). Never raises for the network; raises SockioArgumentError
        when ``slots[0:n]`` names a slot outside the slab."""
        if n is None:
            n = self.capacity
        elif not 0 < n <= self.capacity:
            raise ValueError(f"n {n} is outside 1..{self.capacity}")
        got: int = lib.mw_sockio_recv_batch(fd, self._slab, self._slab_len, self.slot_size,
                                             self.slots, n, self.lengths, self.addrs,
                                             self.flags, self._err)
        self.err = self._err[0]
        if got < 0:
            if got == lib.MW_SOCKIO_ERR_ARGS:
                raise SockioArgumentError(
                    f"a slot in slots[0:{n}] is outside a slab of "
                    f"{self._slab_len // self.slot_size} slots")
            got = 0
        self.count = got
        return got

    def classify(self) -> Any:
        """Classify every datagram of the last batch in one C call (RFC 7983); returns the
        ``kinds`` array (``enum mw_kind`` values; see ``worker._fast.Kind``)."""
        lib.mw_classify_slots(self._slab, self._slab_len, self.slot_size, self.slots,
                              self.lengths, self.count, self.kinds)
        return self.kinds

    def view(self, i: int) -> memoryview:
        """The bytes of datagram ``i`` of the last batch, inside its slot."""
        if not 0 <= i < self.count:
            raise IndexError(f"datagram {i} is not in the last batch of {self.count}")
        start = self.slots[i] * self.slot_size
        return self._view[start : start + self.lengths[i]]

    def source(self, i: int) -> tuple[str, int] | None:
        """Where datagram ``i`` came from, as ``(host, port)`` (control plane)."""
        if not 0 <= i < self.count:
            raise IndexError(f"datagram {i} is not in the last batch of {self.count}")
        return sockio_addr_to_tuple(self.addrs[i])

    def truncated(self, i: int) -> bool:
        return bool(self.flags[i] & RECV_TRUNCATED)


class SendBatch:
    """The preallocated arrays of one ``sendmmsg`` batch out of a slab.

    Message ``i`` is ``lengths[i]`` bytes at ``offsets[i]`` in the slab (a slot index times the
    slot size, plus any headroom), to ``dests[i]``; several messages may point at the same bytes.
    The C fan-out fills these arrays itself; ``set`` is for the control plane and tests. ``send``
    makes exactly one C call; afterwards ``sent + dropped + left == count``, ``left`` being the
    last messages of the batch (the socket would block: keep or drop and count them),
    ``dropped`` those the kernel refused one by one (``drop_err``)."""

    __slots__ = ("_owner", "_result", "_slab", "_slab_len", "capacity", "dests", "lengths",
                 "offsets")

    def __init__(self, slab: Buffer, capacity: int = 64) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity {capacity} must be positive")
        view = memoryview(slab).cast("B")
        self._slab, self._owner = buffer_pointer(view, writable=False)
        self._slab_len = len(view)
        self.capacity = capacity
        self.offsets: Any = ffi.new("size_t[]", capacity)
        self.lengths: Any = ffi.new("uint32_t[]", capacity)
        self.dests: Any = ffi.new("struct mw_sockio_addr[]", capacity)
        self._result: Any = ffi.new("struct mw_sockio_send_result *")

    def set(self, i: int, offset: int, length: int, dest: tuple[str, int] | None = None,
            *, v4_mapped: bool = False) -> None:
        """Describe message ``i`` (control plane and tests)."""
        if not 0 <= i < self.capacity:
            raise IndexError(f"message {i} is outside a batch of {self.capacity}")
        self.offsets[i] = offset
        self.lengths[i] = length
        if dest is not None:
            sockio_addr_set(self.dests[i], dest[0], dest[1], v4_mapped=v4_mapped)

    def send(self, fd: int, count: int, *, connected: bool = False) -> int:
        """Send messages ``0..count`` on ``fd``, one C call; returns how many the kernel took.

        ``connected`` ignores ``dests`` (a connected socket). Never raises for the network;
        raises SockioArgumentError when a message lies outside the slab or has no destination."""
        if not 0 <= count <= self.capacity:
            raise ValueError(f"count {count} is outside 0..{self.capacity}")
        sent: int = lib.mw_sockio_send_batch(fd, self._slab, self._slab_len, self.offsets,
                                             self.lengths, ffi.NULL if connected else self.dests,
                                             count, self._result)
        if sent < 0:
            raise SockioArgumentError(
                f"a message in 0..{count} lies outside a slab of {self._slab_len} B"
                " or has a destination without family")
        return sent

    @property
    def sent(self) -> int:
        return int(self._result.sent)

    @property
    def dropped(self) -> int:
        return int(self._result.dropped)

    @property
    def left(self) -> int:
        return int(self._result.left)

    @property
    def err(self) -> int:
        """errno that stopped the last batch (EAGAIN, ENOBUFS, EBADF...), 0 if none."""
        return int(self._result.err)

    @property
    def drop_err(self) -> int:
        """errno of the last message dropped on its own, 0 if none."""
        return int(self._result.drop_err)


