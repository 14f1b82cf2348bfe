"""The SFU fan-out of a received batch in one C call (``cffi_build/forward.h``).

Python decides the routing, C moves the bytes. :class:`ForwardTable` turns the routing (for
each producer stream's SSRC, its consumers) into the compact arrays the C walks, and is rebuilt
when the routing changes, never per packet; :class:`ForwardBatch` owns the preallocated arrays
of one receiving path and runs one C call per received batch (:meth:`ForwardBatch.run`) and one
per send (:meth:`ForwardBatch.send`): per output packet Python makes no call, copies no bytes
and builds no object. The outputs land in free slots of the output pool and in
``SendBatch``-shaped arrays.

A consumer is described by a :class:`ForwardConsumer` dict::

    {"id": "c1",                  # any hashable, unique in the table: to read its state back
     "ssrc": 0x1234,              # output SSRC
     "payloadTypes": {100: 101},  # input PT -> output PT; a PT not in the map is dropped
     "seqOffset": 0,              # added to the sequence number (mod 2^16); default 0
     "tsOffset": 0,               # added to the timestamp (mod 2^32); default 0
     "extMap": {1: 3, 4: 4},      # header-extension id -> new id; absent ids are removed;
                                  # None or missing: extensions left as they are
     "mid": "0", "midExtId": 1,   # the consumer's MID, written as extension 1 (added or
                                  # replaced); missing, None or id 0: not written
     "absSendTimeExtId": 2,       # an abs-send-time element (3 bytes) with this id gets the
                                  # run's send time; missing or 0: left alone
     "twccExtId": 3,              # a transport-wide-cc element (2 bytes) with this id gets the
     "twccCounter": counter,      # next number of this TwccCounter (the transport's)
     "paused": False,
     "srtp": ctx,                 # an outbound SrtpContext, or None: plain RTP
     "dest": ("192.0.2.1", 5004), # where it goes
     "fd": 12}                    # through this UDP socket; missing or negative: no socket,
                                  # the caller sends it (TCP); destinations are deduplicated by
                                  # (fd, host, port) into the table's dests

The extension ids are the consumer's (after ``extMap``). The send time is the table's
:attr:`ForwardTable.abs_send_time`, which :meth:`ForwardBatch.run` sets from its
``abs_send_time`` argument (see :func:`abs_send_time`). A TWCC counter holds the last number
used; one counter per transport, shared by its consumers in every table.

Sending: :meth:`ForwardBatch.send` sends the last run's outputs whose destination has a socket
(one ``sendmmsg`` batch per socket) and returns the indices of the others (``deferred``), which
the caller sends itself: ``table.dest_addresses[batch.dest_index[k]]`` is deferred output k's
destination, ``batch.view(k)`` its bytes. A ForwardBatch made with ``send=SendBatch`` also
leaves the outputs in that SendBatch (every one to one socket, the older way); both work.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from itertools import accumulate
from typing import Any, Final, NamedTuple, NotRequired, TypedDict

from worker._fast._lib import Buffer, buffer_pointer, ffi, lib
from worker._fast.sockio import SendBatch, sockio_addr_set
from worker._fast.srtp import SrtpApi, SrtpContext, srtp_api

__all__ = ["FORWARD_PT_DROP", "ConsumerState", "ForwardArgumentError", "ForwardBatch",
           "ForwardConsumer", "ForwardSendResult", "ForwardTable", "ForwardTableError",
           "TwccCounter", "abs_send_time"]

FORWARD_PT_DROP: int = lib.MW_FORWARD_PT_DROP
_PT_MAP_BYTES: Final[int] = lib.MW_FORWARD_PT_MAP_BYTES
_EXT_MAP_BYTES: Final[int] = lib.MW_FORWARD_EXT_MAP_BYTES
_MID_MAX_BYTES: Final[int] = lib.MW_FORWARD_MID_MAX_BYTES
_ABS_SEND_TIME_MASK: Final = 0xFFFFFF
_STATE_FIELDS: Final = ("last_seq", "last_ts", "sent_any", "packets", "bytes", "dropped_pt",
                        "failures", "last_error")
RESULT_FIELDS: Final = ("outputs", "stopped_at", "handled", "forwarded", "malformed",
                        "unknown_ssrc", "dropped_pt", "paused", "out_of_slots", "too_big",
                        "rewrite_failed", "srtp_failed", "table_errors")


class ForwardArgumentError(ValueError):
    """The batch named a slot outside a slab, or a slab the C cannot use; nothing was done."""


class ForwardTableError(RuntimeError):
    """The table handed to the C pointed outside itself: a bug in :class:`ForwardTable`."""


def abs_send_time(now_seconds: float) -> int:
    """The abs-send-time value of ``now_seconds``: 24-bit fixed point, 6 bits of seconds and
    18 of fraction (the NTP time's bits 14-37, so the seconds wrap every 64 s). Any clock in
    seconds does (``time.time()``, the loop's time): receivers use differences only, and the
    Unix and NTP epochs are a multiple of 64 s apart."""
    return math.floor(now_seconds * (1 << 18)) & _ABS_SEND_TIME_MASK


class TwccCounter:
    """The transport-wide sequence counter of one transport, in C memory that the consumer
    entries of any number of tables point at. ``value`` is the last number used: the next
    output carrying the transport-wide-cc extension gets ``value + 1`` (mod 2^16)."""

    __slots__ = ("pointer",)

    def __init__(self, value: int = 0) -> None:
        self.pointer: Any = ffi.new("uint16_t[1]")
        self.value = value

    @property
    def value(self) -> int:
        return int(self.pointer[0])

    @value.setter
    def value(self, value: int) -> None:
        self.pointer[0] = value & 0xFFFF


class ForwardConsumer(TypedDict):
    """One consumer of a producer stream (see the module's docstring)."""

    id: Hashable
    ssrc: int
    payloadTypes: Mapping[int, int]
    dest: tuple[str, int]
    fd: NotRequired[int]
    seqOffset: NotRequired[int]
    tsOffset: NotRequired[int]
    extMap: NotRequired[Mapping[int, int] | None]
    mid: NotRequired[str | None]
    midExtId: NotRequired[int]
    absSendTimeExtId: NotRequired[int]
    twccExtId: NotRequired[int]
    twccCounter: NotRequired[TwccCounter]
    paused: NotRequired[bool]
    srtp: NotRequired[SrtpContext | None]


class ForwardSendResult(NamedTuple):
    """What :meth:`ForwardBatch.send` did: ``sent + dropped + left + len(deferred)`` is the
    number of outputs. ``deferred`` lists the outputs (indices into the last run's) whose
    destination has no socket; ``left`` the ones a socket would not take now (EAGAIN...), ``err``
    the errno that stopped a socket (0: none)."""

    sent: int
    dropped: int
    left: int
    deferred: list[int]
    err: int


class ConsumerState(NamedTuple):
    """What the C wrote in a consumer's entry: the last sequence number and timestamp sent
    (None before the first packet), and its counters."""

    last_seq: int | None
    last_ts: int | None
    packets: int
    bytes: int
    dropped_pt: int
    failures: int
    last_error: int


def _pt_map(payload_types: Mapping[int, int]) -> bytes:
    table = bytearray([FORWARD_PT_DROP]) * _PT_MAP_BYTES
    for src, dst in payload_types.items():
        if not (0 <= src <= 127 and 0 <= dst <= 127):
            raise ValueError(f"payload type mapping {src} -> {dst} is outside 0..127")
        table[src] = dst
    return bytes(table)


def _ext_id(value: int, name: str) -> int:
    if not 0 <= value <= 255:
        raise ValueError(f"{name} {value} is outside 0..255")
    return value


def _ext_map(ext_map: Mapping[int, int]) -> bytes:
    table = bytearray(_EXT_MAP_BYTES)
    for src, dst in ext_map.items():
        if not (1 <= src <= 255 and 0 <= dst <= 255):
            raise ValueError(f"header extension id mapping {src} -> {dst} is outside 1..255")
        table[src] = dst
    return bytes(table)


class _Parts:
    """What the consumer entries of one rebuild share: destinations, extension maps, and the
    objects whose C memory the entries point at."""

    __slots__ = ("contexts", "counters", "dests", "ext_maps")

    def __init__(self) -> None:
        self.dests: dict[tuple[int, str, int], int] = {}
        self.ext_maps: dict[bytes, int] = {}
        self.contexts: list[SrtpContext] = []
        self.counters: list[TwccCounter] = []


class ForwardTable:
    """The routing of one receiving path as the C sees it: ``struct mw_forward_table``.

    ``producers`` maps each producer stream's input SSRC to its consumers. :meth:`update`
    rebuilds every array (the consumers' last sequence numbers, timestamps and counters are
    carried over by ``id``) and adds one to ``generation``; :meth:`set_paused` and
    :meth:`set_offsets` change one entry in place. ``dest_addresses`` and ``dest_fds`` are the
    destinations in the C's order (an output's ``dest_index``). The table holds the SRTP
    contexts and TWCC counters its entries point at. ``v4_mapped`` writes IPv4 destinations as
    IPv4-mapped IPv6 addresses (for AF_INET6 sockets), for every destination of the table."""

    __slots__ = ("_api", "_arrays", "_contexts", "_counters", "_index", "_v4_mapped",
                 "consumers", "dest_addresses", "dest_fds", "generation", "struct")

    def __init__(self, producers: Mapping[int, Sequence[ForwardConsumer]] | None = None, *,
                 v4_mapped: bool = False, api: SrtpApi | None = None) -> None:
        self._v4_mapped = v4_mapped
        self._api = api
        self._arrays: list[Any] = []
        self._contexts: list[SrtpContext] = []
        self._counters: list[TwccCounter] = []
        self._index: dict[Hashable, int] = {}
        self.consumers: Any = ffi.NULL
        self.dest_addresses: list[tuple[str, int]] = []
        self.dest_fds: list[int] = []
        self.generation = 0
        self.struct: Any = ffi.new("struct mw_forward_table *")
        self.update(producers or {})

    @property
    def abs_send_time(self) -> int:
        """The abs-send-time value the next run writes (24 bits, see :func:`abs_send_time`)."""
        return int(self.struct.abs_send_time)

    @abs_send_time.setter
    def abs_send_time(self, value: int) -> None:
        if not 0 <= value <= _ABS_SEND_TIME_MASK:
            raise ValueError(f"abs-send-time {value} is outside 0..2^24-1")
        self.struct.abs_send_time = value

    def update(self, producers: Mapping[int, Sequence[ForwardConsumer]]) -> None:
        """Rebuild the arrays from ``producers`` (a routing change; not per packet)."""
        ssrcs = sorted(producers)
        specs = [spec for ssrc in ssrcs for spec in producers[ssrc]]
        for ssrc in ssrcs:
            if not 0 <= ssrc <= 0xFFFFFFFF:
                raise ValueError(f"SSRC {ssrc} is outside 0..2^32-1")
        ids = [spec["id"] for spec in specs]
        if len(set(ids)) != len(ids):
            raise ValueError("two consumers of the table have the same id")
        old = {key: self.state_raw(key) for key in self._index}
        parts = _Parts()
        consumers = ffi.new("struct mw_forward_consumer[]", max(len(specs), 1))
        for j, spec in enumerate(specs):
            self._fill(consumers[j], spec, parts)
            if spec["id"] in old:
                for name, value in zip(_STATE_FIELDS, old[spec["id"]], strict=True):
                    setattr(consumers[j], name, value)
        counts = [len(producers[ssrc]) for ssrc in ssrcs]
        firsts = [0, *accumulate(counts)][: len(counts)]
        self._build(ssrcs, firsts, counts, consumers, len(specs), parts)
        self._index = {key: j for j, key in enumerate(ids)}
        self.generation += 1

    @staticmethod
    def _fill(entry: Any, spec: ForwardConsumer, parts: _Parts) -> None:
        entry.ssrc = spec["ssrc"]
        entry.seq_offset = spec.get("seqOffset", 0) & 0xFFFF
        entry.ts_offset = spec.get("tsOffset", 0) & 0xFFFFFFFF
        entry.paused = bool(spec.get("paused", False))
        ffi.memmove(entry.pt_map, _pt_map(spec["payloadTypes"]), _PT_MAP_BYTES)
        ext_map = spec.get("extMap")
        if ext_map is not None:
            entry.remap_ext = 1
            entry.ext_map = parts.ext_maps.setdefault(_ext_map(ext_map), len(parts.ext_maps))
        mid = spec.get("mid")
        mid_ext_id = _ext_id(spec.get("midExtId", 0), "midExtId")
        if mid is not None and mid_ext_id:
            value = mid.encode()
            if not 1 <= len(value) <= _MID_MAX_BYTES:
                raise ValueError(f"MID {mid!r} is not 1..{_MID_MAX_BYTES} bytes")
            entry.mid_ext_id, entry.mid_len = mid_ext_id, len(value)
            ffi.memmove(entry.mid, value, len(value))
        entry.abs_send_time_ext_id = _ext_id(spec.get("absSendTimeExtId", 0), "absSendTimeExtId")
        twcc_ext_id = _ext_id(spec.get("twccExtId", 0), "twccExtId")
        if twcc_ext_id:
            counter = spec.get("twccCounter")
            if counter is None:
                raise ValueError(f"consumer {spec['id']!r} has a twccExtId but no twccCounter")
            parts.counters.append(counter)
            entry.twcc_ext_id, entry.twcc_seq = twcc_ext_id, counter.pointer
        fd = int(spec.get("fd", lib.MW_FORWARD_NO_FD))
        if not -0x80000000 <= fd <= 0x7FFFFFFF:
            raise ValueError(f"socket descriptor {fd} is outside -2^31..2^31-1")
        dest = (fd, spec["dest"][0], int(spec["dest"][1]))
        entry.dest = parts.dests.setdefault(dest, len(parts.dests))
        ctx = spec.get("srtp")
        if ctx is not None:
            parts.contexts.append(ctx)
            entry.srtp = ctx.pointer

    def _build(self, ssrcs: list[int], firsts: list[int], counts: list[int], consumers: Any,
               consumer_count: int, parts: _Parts) -> None:
        n = max(len(ssrcs), 1)
        ssrc_array = ffi.new("uint32_t[]", n)
        ssrc_array[0 : len(ssrcs)] = ssrcs
        streams = ffi.new("uint32_t[]", n)
        streams[0 : len(ssrcs)] = list(range(len(ssrcs)))
        first = ffi.new("uint32_t[]", n)
        first[0 : len(firsts)] = firsts
        count = ffi.new("uint32_t[]", n)
        count[0 : len(counts)] = counts
        maps = ffi.new("uint8_t[]", b"".join(parts.ext_maps) or b"\x00")
        addrs = ffi.new("struct mw_sockio_addr[]", max(len(parts.dests), 1))
        fds = ffi.new("int32_t[]", max(len(parts.dests), 1))
        for (fd, host, port), k in parts.dests.items():
            sockio_addr_set(addrs[k], host, port, v4_mapped=self._v4_mapped)
            fds[k] = fd
        t = self.struct
        t.ssrcs, t.streams, t.first, t.count = ssrc_array, streams, first, count
        t.ssrc_count = t.stream_count = len(ssrcs)
        t.consumers, t.consumer_count = consumers, consumer_count
        t.ext_maps, t.ext_map_count = maps, len(parts.ext_maps)
        t.dests, t.dest_fds, t.dest_count = addrs, fds, len(parts.dests)
        t.api = (self._api or srtp_api()).struct if parts.contexts else ffi.NULL
        self._arrays = [ssrc_array, streams, first, count, maps, addrs, fds]
        self._contexts = parts.contexts
        self._counters = parts.counters
        self.consumers = consumers
        self.dest_addresses = [(host, port) for _, host, port in parts.dests]
        self.dest_fds = [fd for fd, _, _ in parts.dests]

    def _entry(self, consumer_id: Hashable) -> Any:
        try:
            return self.consumers[self._index[consumer_id]]
        except KeyError:
            raise KeyError(f"no consumer {consumer_id!r} in the table") from None

    def set_paused(self, consumer_id: Hashable, paused: bool) -> None:
        self._entry(consumer_id).paused = bool(paused)

    def set_offsets(self, consumer_id: Hashable, seq_offset: int, ts_offset: int) -> None:
        """New sequence-number and timestamp offsets (a stream switch, a key frame)."""
        entry = self._entry(consumer_id)
        entry.seq_offset = seq_offset & 0xFFFF
        entry.ts_offset = ts_offset & 0xFFFFFFFF

    def state_raw(self, consumer_id: Hashable) -> tuple[int, ...]:
        entry = self._entry(consumer_id)
        return tuple(int(getattr(entry, name)) for name in _STATE_FIELDS)

    def state(self, consumer_id: Hashable) -> ConsumerState:
        """The consumer's last sequence number and timestamp sent, and its counters."""
        entry = self._entry(consumer_id)
        sent = bool(entry.sent_any)
        return ConsumerState(int(entry.last_seq) if sent else None,
                             int(entry.last_ts) if sent else None, int(entry.packets),
                             int(entry.bytes), int(entry.dropped_pt), int(entry.failures),
                             int(entry.last_error))

    def __len__(self) -> int:
        return len(self._index)


class ForwardBatch:
    """The preallocated arrays of the fan-out of one receiving path: ``struct
    mw_forward_input``/``output``/``result``, and those of :meth:`send`.

    ``in_slab`` holds the received packets in ``in_slot_size`` slots (a RecvBatch's slab),
    ``out_slab`` the output pool's slab (``out_slot_size`` slots, a multiple of 4 bytes, and
    room for the 16-byte SRTP trailer). With ``send_batch`` (the ``send`` argument) the outputs
    are written straight into that SendBatch's ``offsets``/``lengths``/``dests``; otherwise into
    arrays of this object. ``dest_index[k]`` is output k's index in the table's
    ``dest_addresses``/``dest_fds``. :meth:`send` does not need a SendBatch."""

    __slots__ = ("_in_owner", "_last_run", "_out_owner", "_out_view", "_scratch", "area",
                 "capacity", "deferred", "dest_index", "dests", "free", "input", "lengths",
                 "offsets", "output", "result", "send_batch", "send_result")

    def __init__(self, in_slab: Buffer, in_slot_size: int, out_slab: Buffer, out_slot_size: int,
                 capacity: int = 1024, *, send: SendBatch | None = None) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity {capacity} must be positive")
        in_view = memoryview(in_slab).cast("B")
        self._out_view = memoryview(out_slab).cast("B")
        if self._out_view.readonly:
            raise TypeError("the output slab of a ForwardBatch must be writable")
        in_ptr, self._in_owner = buffer_pointer(in_view, writable=False)
        out_ptr, self._out_owner = buffer_pointer(self._out_view, writable=True)
        self.capacity = capacity if send is None else min(capacity, send.capacity)
        self.send_batch = send
        self.free: Any = ffi.new("uint32_t[]", self.capacity)
        self.offsets: Any = send.offsets if send else ffi.new("size_t[]", self.capacity)
        self.lengths: Any = send.lengths if send else ffi.new("uint32_t[]", self.capacity)
        self.dests: Any = send.dests if send else ffi.new("struct mw_sockio_addr[]",
                                                          self.capacity)
        self.dest_index: Any = ffi.new("uint32_t[]", self.capacity)
        self.input: Any = ffi.new("struct mw_forward_input *")
        self.input.slab, self.input.slab_len = in_ptr, len(in_view)
        self.input.slot_size = in_slot_size
        self.output: Any = ffi.new("struct mw_forward_output *")
        o = self.output
        o.slab, o.slab_len, o.slot_size = out_ptr, len(self._out_view), out_slot_size
        o.free_slots, o.capacity = self.free, self.capacity
        o.offsets, o.lengths, o.addrs, o.dest_index = (self.offsets, self.lengths, self.dests,
                                                       self.dest_index)
        self.result: Any = ffi.new("struct mw_forward_result *")
        self._last_run: tuple[ForwardTable, int] | None = None
        self.area: Any = ffi.new("struct mw_forward_send_area *")
        self.deferred: Any = ffi.new("uint32_t[]", self.capacity)
        self._scratch = (ffi.new("size_t[]", self.capacity), ffi.new("uint32_t[]", self.capacity),
                         ffi.new("struct mw_sockio_addr[]", self.capacity),
                         ffi.new("uint32_t[]", self.capacity))
        a = self.area
        a.capacity, a.deferred = self.capacity, self.deferred
        a.offsets, a.lengths, a.addrs, a.pending = self._scratch
        self.send_result: Any = ffi.new("struct mw_forward_send_result *")

    def run(self, table: ForwardTable, slots: Any, lengths: Any, count: int,
            free: Sequence[int], *, abs_send_time: int | None = None) -> int:
        """Fan out ``count`` received packets (packet i: ``lengths[i]`` bytes in slot
        ``slots[i]``; cdata ``uint32_t`` arrays such as RecvBatch's) into the output slots
        ``free`` (in that order). One C call. Returns how many outputs were made: they are in
        ``free[:n]``, the caller gives the rest back to its pool. ``result`` holds the counts.
        ``abs_send_time`` (24 bits, :func:`abs_send_time`), when given, is first set as the
        table's :attr:`ForwardTable.abs_send_time`.

        Raises ForwardArgumentError (nothing done) for a slot outside a slab."""
        n_free = len(free)
        if n_free > self.capacity:
            raise ValueError(f"{n_free} free slots exceed the batch's capacity {self.capacity}")
        if abs_send_time is not None:
            table.abs_send_time = abs_send_time
        self.free[0:n_free] = free
        self.input.slots, self.input.lengths, self.input.count = slots, lengths, count
        self.output.free_count = n_free
        self._last_run = None
        status = lib.mw_forward_batch(self.input, table.struct, self.output, self.result)
        if status != lib.MW_FORWARD_OK:
            raise ForwardArgumentError(
                "a received or free slot lies outside its slab, the output slot size is not a "
                "multiple of 4 or the table has a session (or a TWCC id) but no api (or no "
                "counter); nothing was done")
        self._last_run = (table, table.generation)
        if self.result.table_errors:
            raise ForwardTableError(f"{self.result.table_errors} table entries point outside "
                                    "the table")
        outputs: int = self.result.outputs
        return outputs

    def send(self, table: ForwardTable, count: int | None = None) -> ForwardSendResult:
        """Send the outputs ``[0, count)`` of the last run (default: all of them), which must
        have used ``table`` (not updated since): one C call, one ``sendmmsg`` batch per socket
        (``table.dest_fds``). Never blocks. Outputs whose destination has no socket are not
        sent: their indices come back in ``deferred``. ``send_result`` holds the C's counts
        (also ``sockets`` and ``drop_err``).

        Raises ForwardArgumentError (nothing sent) when the table is not the last run's, or a
        destination with a socket has no address."""
        outputs = int(self.result.outputs)
        n = outputs if count is None else count
        if not 0 <= n <= outputs:
            raise ValueError(f"{n} outputs asked, the last run made {outputs}")
        if self._last_run != (table, table.generation):
            raise ForwardArgumentError("send() takes the table of the last run, not updated "
                                       "since")
        status = lib.mw_forward_send(table.struct, self.output, n, self.area, self.send_result)
        if status != lib.MW_FORWARD_OK:
            raise ForwardArgumentError("an output lies outside the slab or a destination with a "
                                       "socket has no address; nothing was sent")
        r = self.send_result
        return ForwardSendResult(int(r.sent), int(r.dropped), int(r.left),
                                 list(self.deferred[0 : r.deferred]), int(r.err))

    def counts(self) -> dict[str, int]:
        """The last run's counts by name (stats, tests)."""
        return {name: int(getattr(self.result, name)) for name in RESULT_FIELDS}

    def view(self, k: int) -> memoryview:
        """Output ``k`` of the last run, in the output slab."""
        if not 0 <= k < self.result.outputs:
            raise IndexError(f"output {k} is not in the last run's {self.result.outputs}")
        start = self.offsets[k]
        return self._out_view[start : start + self.lengths[k]]
