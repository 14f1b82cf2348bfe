"""RTCP compound walk, typed parsers and builders: ``cffi_build/rtcp.h``.

RTCP is control traffic: Python handles it per compound packet, so these are typed
single-compound functions, not batches. walk_rtcp splits a compound packet; parse_rtcp also
parses every sub-packet into the dataclasses below (stopping at the first malformed one, whose
index and reason it reports, never raising on peer input); parse_rtcp_packet parses one
sub-packet and raises RtcpParseError. RtcpWriter builds sub-packets one after the other into
one buffer (put SR/RR and SDES first, as RFC 3550 6.1 wants); build_rtcp returns the bytes.
Scratch cffi arrays are allocated once (grown on demand) and read back with struct views, so
these functions are for the worker's one thread (results are copied out before returning).
"""

from __future__ import annotations

import dataclasses as _rtcp_dc
import itertools as _rtcp_itertools
import operator as _rtcp_operator
import struct as _rtcp_struct
import typing as _rtcp_typing
from enum import IntEnum
from typing import Any

from worker._fast._lib import Buffer, ffi, lib


class RtcpReason(IntEnum):
    """Result codes of the RTCP functions (``enum mw_rtcp_error``)."""

    OK = lib.MW_RTCP_OK
    EMPTY = lib.MW_RTCP_ERR_EMPTY
    HEADER_TRUNCATED = lib.MW_RTCP_ERR_HEADER_TRUNCATED
    VERSION = lib.MW_RTCP_ERR_VERSION
    LENGTH = lib.MW_RTCP_ERR_LENGTH
    PADDING = lib.MW_RTCP_ERR_PADDING
    WRONG_TYPE = lib.MW_RTCP_ERR_WRONG_TYPE
    TRUNCATED = lib.MW_RTCP_ERR_TRUNCATED
    ITEM_LENGTH = lib.MW_RTCP_ERR_ITEM_LENGTH
    NO_ITEMS = lib.MW_RTCP_ERR_NO_ITEMS
    SDES_UNTERMINATED = lib.MW_RTCP_ERR_SDES_UNTERMINATED
    NOT_REMB = lib.MW_RTCP_ERR_NOT_REMB
    TCC_RESERVED = lib.MW_RTCP_ERR_TCC_RESERVED
    NO_SPACE = lib.MW_RTCP_ERR_NO_SPACE
    INVALID_ARGUMENT = lib.MW_RTCP_ERR_INVALID_ARGUMENT


_RTCP_SENTENCES: dict[RtcpReason, str] = {
    RtcpReason.OK: "no error",
    RtcpReason.EMPTY: "the datagram is empty",
    RtcpReason.HEADER_TRUNCATED: "fewer than 4 bytes are left for an RTCP header",
    RtcpReason.VERSION: "the RTCP version is not 2",
    RtcpReason.LENGTH: "the RTCP length field runs past the end of the datagram",
    RtcpReason.PADDING: "the padding count is 0 or larger than the packet body",
    RtcpReason.WRONG_TYPE: "the packet is of another RTCP type or FMT",
    RtcpReason.TRUNCATED: "the packet body is shorter than its fields and counts require",
    RtcpReason.ITEM_LENGTH: "the FCI or an XR block is not a whole number of entries",
    RtcpReason.NO_ITEMS: "the feedback message has no FCI entry",
    RtcpReason.SDES_UNTERMINATED: "an SDES chunk lacks its null item or its padding",
    RtcpReason.NOT_REMB: "the application-layer feedback is not a REMB",
    RtcpReason.TCC_RESERVED: "a transport-cc status symbol has the reserved value 3",
    RtcpReason.NO_SPACE: "the output buffer is too small",
    RtcpReason.INVALID_ARGUMENT: "a count or value is out of range for the wire format",
}
_RTCP_REASONS: dict[int, RtcpReason] = {int(reason): reason for reason in RtcpReason}


class RtcpError(ValueError):
    """An RTCP packet could not be parsed or built; ``reason`` says why."""

    def __init__(self, reason: RtcpReason) -> None:
        super().__init__(_RTCP_SENTENCES[reason])
        self.reason = reason


class RtcpParseError(RtcpError):
    """The peer's RTCP packet is malformed (the remote side's fault)."""


class RtcpBuildError(RtcpError):
    """Our own values do not fit the wire format, or the buffer is too small (local fault)."""


class RtcpItem(_rtcp_typing.NamedTuple):
    """One sub-packet found by walk_rtcp; ``length`` includes header and padding."""

    offset: int
    length: int
    packet_type: int
    count_fmt: int  # the 5-bit RC / SC / FMT field
    padding: int


@_rtcp_dc.dataclass(frozen=True, slots=True)
class RtcpWalkError:
    """Where a compound packet stops being valid: sub-packet ``index`` at byte ``offset``."""

    index: int
    offset: int
    reason: RtcpReason


@_rtcp_dc.dataclass(slots=True)
class ReportBlock:
    """RFC 3550 reception report; packets_lost is the 24-bit signed cumulative count."""

    ssrc: int
    fraction_lost: int
    packets_lost: int
    highest_seq: int
    jitter: int
    lsr: int
    dlsr: int


@_rtcp_dc.dataclass(slots=True)
class SenderReport:
    """RFC 3550 SR; ntp_timestamp is the 64-bit NTP time (seconds << 32 | fraction)."""

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: list[ReportBlock] = _rtcp_dc.field(default_factory=list)


@_rtcp_dc.dataclass(slots=True)
class ReceiverReport:
    ssrc: int
    reports: list[ReportBlock] = _rtcp_dc.field(default_factory=list)


@_rtcp_dc.dataclass(slots=True)
class SdesChunk:
    """One SDES chunk: its SSRC and first CNAME (None without one); other items are skipped."""

    ssrc: int
    cname: bytes | None


@_rtcp_dc.dataclass(slots=True)
class SourceDescription:
    chunks: list[SdesChunk] = _rtcp_dc.field(default_factory=list)


@_rtcp_dc.dataclass(slots=True)
class Bye:
    sources: list[int] = _rtcp_dc.field(default_factory=list)
    reason: bytes | None = None


@_rtcp_dc.dataclass(slots=True)
class Nack:
    """Generic NACK: ``lost`` in RTP order; ``items`` the (PID, BLP) pairs as received.

    To build, give ``lost`` (ascending modulo 2^16); the items are packed from it.
    """

    sender_ssrc: int
    media_ssrc: int
    lost: list[int]
    items: list[tuple[int, int]] = _rtcp_dc.field(default_factory=list, compare=False)


@_rtcp_dc.dataclass(slots=True)
class Pli:
    sender_ssrc: int
    media_ssrc: int


@_rtcp_dc.dataclass(slots=True)
class FirEntry:
    ssrc: int
    seq: int  # command sequence number, 8 bits


@_rtcp_dc.dataclass(slots=True)
class Fir:
    sender_ssrc: int
    media_ssrc: int
    entries: list[FirEntry]


@_rtcp_dc.dataclass(slots=True)
class Remb:
    """REMB; a built bitrate is rounded down to 18 significant bits (mantissa << exponent)."""

    sender_ssrc: int
    media_ssrc: int
    bitrate: int
    ssrcs: list[int] = _rtcp_dc.field(default_factory=list)


@_rtcp_dc.dataclass(slots=True)
class TransportFeedback:
    """transport-cc feedback for packets base_seq, base_seq + 1, ... (modulo 2^16).

    ``deltas[i]`` is packet i's receive delta in 250 us ticks, or None if it was not received;
    ``reference_time`` is 24-bit signed in units of 64 ms. ``statuses`` holds the received
    status symbols (0 not received, 1 small delta, 2 large delta); the builder derives its own.
    """

    sender_ssrc: int
    media_ssrc: int
    base_seq: int
    reference_time: int
    fb_count: int
    deltas: list[int | None]
    statuses: bytes = _rtcp_dc.field(default=b"", compare=False)


@_rtcp_dc.dataclass(slots=True)
class DlrrSubBlock:
    ssrc: int
    lrr: int
    dlrr: int


@_rtcp_dc.dataclass(slots=True)
class ExtendedReport:
    """RFC 3611 XR: the first RRT block's NTP timestamp and every DLRR sub-block."""

    sender_ssrc: int
    rrt_ntp: int | None = None
    dlrr: list[DlrrSubBlock] = _rtcp_dc.field(default_factory=list)


@_rtcp_dc.dataclass(slots=True)
class RtcpUnknown:
    """APP, an unknown type or FMT, or application feedback that is not REMB (body unpadded)."""

    packet_type: int
    count_fmt: int
    body: bytes


RtcpPacket: _rtcp_typing.TypeAlias = (
    SenderReport | ReceiverReport | SourceDescription | Bye | Nack | Pli | Fir | Remb
    | TransportFeedback | ExtendedReport | RtcpUnknown)

# Layouts of the C structs, read and written through struct views (all fields 4 or 8 bytes).
_RTCP_LAYOUTS = {
    "struct mw_rtcp_item": "=IIIII", "struct mw_rtcp_walk_result": "=III",
    "struct mw_rtcp_report_block": "=IIiIIII", "struct mw_rtcp_sender_report": "=QIIIIII",
    "struct mw_rtcp_receiver_report": "=II", "struct mw_rtcp_sdes_chunk": "=IIII",
    "struct mw_rtcp_bye": "=IIII", "struct mw_rtcp_feedback": "=III",
    "struct mw_rtcp_nack_item": "=HH", "struct mw_rtcp_fir_entry": "=II",
    "struct mw_rtcp_remb": "=QIIIIII", "struct mw_rtcp_tcc": "=IIIIiIII",
    "struct mw_rtcp_xr": "=QIIII", "struct mw_rtcp_dlrr": "=III",
}
for _rtcp_ctype, _rtcp_layout in _RTCP_LAYOUTS.items():
    if ffi.sizeof(_rtcp_ctype) != _rtcp_struct.calcsize(_rtcp_layout):
        raise ImportError(f"{_rtcp_ctype} does not have the layout {_rtcp_layout}")


class _RtcpScratch:
    """A preallocated C array (or single struct) with a struct view; grown on demand.

    ``words`` sees the array as uint32_t (or uint16_t for NACK items) for ffi.unpack."""

    __slots__ = ("array", "capacity", "ctype", "layout", "view", "words", "words_ctype")

    def __init__(self, ctype: str, capacity: int, words_ctype: str = "uint32_t *") -> None:
        self.ctype = ctype
        self.layout = _rtcp_struct.Struct(_RTCP_LAYOUTS.get(ctype, "=I"))
        self.words_ctype = words_ctype
        self.capacity = 0
        self.array: Any = None
        self.words: Any = None
        self.view = memoryview(b"")
        self.ensure(capacity)

    def ensure(self, capacity: int) -> Any:
        if capacity > self.capacity:
            self.capacity = max(capacity, 2 * self.capacity)
            self.array = ffi.new(f"{self.ctype}[]", self.capacity)
            self.words = ffi.cast(self.words_ctype, self.array)
            self.view = memoryview(ffi.buffer(self.array))
        return self.array


# Output arrays of the parsers. Those bounded by the wire format never grow and are read through
# module constants; the others are grown by ensure() and always read through their attributes.
_rtcp_items = _RtcpScratch("struct mw_rtcp_item", 64)
_rtcp_blocks = _RtcpScratch("struct mw_rtcp_report_block", 31)
_rtcp_chunks = _RtcpScratch("struct mw_rtcp_sdes_chunk", 31)
_rtcp_nack = _RtcpScratch("struct mw_rtcp_nack_item", 64, "uint16_t *")
_rtcp_fir = _RtcpScratch("struct mw_rtcp_fir_entry", 8)
_rtcp_dlrr = _RtcpScratch("struct mw_rtcp_dlrr", 8)
_rtcp_u32 = _RtcpScratch("uint32_t", 255)
_rtcp_u16 = _RtcpScratch("uint16_t", 256)
_rtcp_u8 = _RtcpScratch("uint8_t", 256)
_rtcp_i32 = _RtcpScratch("int32_t", 256)
_rtcp_count = ffi.new("uint32_t *")
_rtcp_walk_out = _RtcpScratch("struct mw_rtcp_walk_result", 1)
_rtcp_sr = _RtcpScratch("struct mw_rtcp_sender_report", 1)
_rtcp_rr = _RtcpScratch("struct mw_rtcp_receiver_report", 1)
_rtcp_bye = _RtcpScratch("struct mw_rtcp_bye", 1)
_rtcp_fb = _RtcpScratch("struct mw_rtcp_feedback", 1)
_rtcp_remb = _RtcpScratch("struct mw_rtcp_remb", 1)
_rtcp_tcc = _RtcpScratch("struct mw_rtcp_tcc", 1)
_rtcp_xr = _RtcpScratch("struct mw_rtcp_xr", 1)
_RTCP_WALK_OUT, _RTCP_WALK_VIEW = _rtcp_walk_out.array, _rtcp_walk_out.view
_RTCP_WALK_ROW = _rtcp_walk_out.layout.unpack_from
_RTCP_BLOCK_ROW, _RTCP_BLOCKS_VIEW = _rtcp_blocks.layout.unpack_from, _rtcp_blocks.view
_RTCP_CHUNK_ROW, _RTCP_CHUNKS_VIEW = _rtcp_chunks.layout.unpack_from, _rtcp_chunks.view


def walk_rtcp(data: Buffer) -> tuple[list[RtcpItem], RtcpWalkError | None]:
    """Split a compound RTCP packet into its sub-packets (RFC 3550 6.1; version must be 2).

    Returns the valid sub-packets before the end or before the first malformed one (a header
    cut short, a length running past the datagram, bad padding), and that error or None.
    """
    ptr = ffi.from_buffer(data)
    try:
        flat, error = _rtcp_walk(ptr, len(data))
    finally:
        ffi.release(ptr)  # exports are never held: see RtcpWriter._build
    return [RtcpItem(*flat[i : i + 5]) for i in range(0, len(flat), 5)], error


def _rtcp_walk(ptr: Any, size: int) -> tuple[list[int], RtcpWalkError | None]:
    """Walk; returns the valid items' fields flat (5 per item) and the error, if any."""
    err = lib.mw_rtcp_walk(ptr, size, _rtcp_items.array, _rtcp_items.capacity, _RTCP_WALK_OUT)
    count, _, offset = _RTCP_WALK_ROW(_RTCP_WALK_VIEW)
    if count > _rtcp_items.capacity:
        err = lib.mw_rtcp_walk(ptr, size, _rtcp_items.ensure(count), count, _RTCP_WALK_OUT)
    error = RtcpWalkError(count, offset, _RTCP_REASONS[err]) if err else None
    return ffi.unpack(_rtcp_items.words, 5 * count), error


def parse_rtcp(data: Buffer) -> tuple[list[RtcpPacket], RtcpWalkError | None]:
    """Parse every sub-packet of a compound RTCP packet, never raising on its content.

    Stops at the first malformed sub-packet (by its header or by its body) and returns the
    packets before it with an RtcpWalkError naming its index, offset and reason. Sub-packets of
    other types (APP, unknown FMTs, application feedback that is not REMB) come as RtcpUnknown.
    """
    ptr = ffi.from_buffer(data)
    try:
        return _rtcp_parse_all(data, ptr)
    finally:
        ffi.release(ptr)


def _rtcp_parse_all(data: Buffer, ptr: Any) -> tuple[list[RtcpPacket], RtcpWalkError | None]:
    flat, error = _rtcp_walk(ptr, len(data))
    packets: list[RtcpPacket] = []
    for i in range(0, len(flat), 5):
        parser = _RTCP_PARSERS.get(flat[i + 2] << 5 | flat[i + 3], _rtcp_parse_unknown)
        try:
            packets.append(parser(data, ptr + flat[i], flat, i))
        except RtcpParseError as exc:
            return packets, RtcpWalkError(i // 5, flat[i], exc.reason)
    return packets, error


def parse_rtcp_packet(data: Buffer, offset: int = 0) -> RtcpPacket:
    """Parse the one sub-packet starting at ``data[offset]``; raise RtcpParseError if malformed."""
    if not 0 <= offset <= len(data):
        raise ValueError(f"offset {offset} is outside the {len(data)}-byte buffer")
    base = ffi.from_buffer(data)
    try:
        ptr = base + offset
        err = lib.mw_rtcp_walk(ptr, len(data) - offset, _rtcp_items.array, 1, _RTCP_WALK_OUT)
        if _RTCP_WALK_ROW(_RTCP_WALK_VIEW)[0] == 0:
            raise RtcpParseError(_RTCP_REASONS[err])
        flat: list[int] = ffi.unpack(_rtcp_items.words, 5)
        flat[0] = offset
        return _RTCP_PARSERS.get(flat[2] << 5 | flat[3], _rtcp_parse_unknown)(data, ptr, flat, 0)
    finally:
        ffi.release(base)


# Every parser takes (data, pointer to the sub-packet, the walk's flat item fields, index of
# this item's first field) and returns the packet or raises RtcpParseError.


def _rtcp_parse_unknown(data: Buffer, ptr: Any, flat: list[int], i: int) -> RtcpUnknown:
    offset, length, packet_type, count_fmt, padding = flat[i : i + 5]
    return RtcpUnknown(packet_type, count_fmt, bytes(data[offset + 4 : offset + length - padding]))


def _rtcp_blocks_read(count: int) -> list[ReportBlock]:
    return [ReportBlock(*_RTCP_BLOCK_ROW(_RTCP_BLOCKS_VIEW, 28 * k)) for k in range(count)]


def _rtcp_parse_sr(data: Buffer, ptr: Any, flat: list[int], i: int) -> SenderReport:
    err = lib.mw_rtcp_parse_sr(ptr, flat[i + 1], _rtcp_sr.array, _rtcp_blocks.array, 31)
    if err:
        raise RtcpParseError(_RTCP_REASONS[err])
    ntp, ssrc, rtp, packets, octets, count, _ = _rtcp_sr.layout.unpack_from(_rtcp_sr.view)
    return SenderReport(ssrc, ntp, rtp, packets, octets, _rtcp_blocks_read(count))


def _rtcp_parse_rr(data: Buffer, ptr: Any, flat: list[int], i: int) -> ReceiverReport:
    err = lib.mw_rtcp_parse_rr(ptr, flat[i + 1], _rtcp_rr.array, _rtcp_blocks.array, 31)
    if err:
        raise RtcpParseError(_RTCP_REASONS[err])
    ssrc, count = _rtcp_rr.layout.unpack_from(_rtcp_rr.view)
    return ReceiverReport(ssrc, _rtcp_blocks_read(count))


def _rtcp_parse_sdes(data: Buffer, ptr: Any, flat: list[int], i: int) -> SourceDescription:
    err = lib.mw_rtcp_parse_sdes(ptr, flat[i + 1], _rtcp_chunks.array, 31, _rtcp_count)
    if err:
        raise RtcpParseError(_RTCP_REASONS[err])
    offset = flat[i]
    chunks = []
    for k in range(_rtcp_count[0]):
        ssrc, has_cname, at, size = _RTCP_CHUNK_ROW(_RTCP_CHUNKS_VIEW, 16 * k)
        at += offset
        chunks.append(SdesChunk(ssrc, bytes(data[at : at + size]) if has_cname else None))
    return SourceDescription(chunks)


def _rtcp_parse_bye(data: Buffer, ptr: Any, flat: list[int], i: int) -> Bye:
    err = lib.mw_rtcp_parse_bye(ptr, flat[i + 1], _rtcp_bye.array, _rtcp_u32.array, 31)
    if err:
        raise RtcpParseError(_RTCP_REASONS[err])
    count, has_reason, at, size = _rtcp_bye.layout.unpack_from(_rtcp_bye.view)
    at += flat[i]
    reason = bytes(data[at : at + size]) if has_reason else None
    return Bye(ffi.unpack(_rtcp_u32.array, count), reason)


def _rtcp_parse_nack(data: Buffer, ptr: Any, flat: list[int], i: int) -> Nack:
    length = flat[i + 1]
    err = lib.mw_rtcp_parse_nack(ptr, length, _rtcp_fb.array, _rtcp_nack.array,
                                 _rtcp_nack.capacity)
    sender, media, count = _rtcp_fb.layout.unpack_from(_rtcp_fb.view)
    if not err and count > _rtcp_nack.capacity:
        err = lib.mw_rtcp_parse_nack(ptr, length, _rtcp_fb.array, _rtcp_nack.ensure(count), count)
    if err:
        raise RtcpParseError(_RTCP_REASONS[err])
    lost = lib.mw_rtcp_nack_expand(_rtcp_nack.array, count, _rtcp_u16.array, _rtcp_u16.capacity)
    if lost > _rtcp_u16.capacity:
        lost = lib.mw_rtcp_nack_expand(_rtcp_nack.array, count, _rtcp_u16.ensure(lost), lost)
    pairs = ffi.unpack(_rtcp_nack.words, 2 * count)
    return Nack(sender, media, ffi.unpack(_rtcp_u16.array, lost),
                list(zip(pairs[0::2], pairs[1::2], strict=True)))


def _rtcp_parse_tcc(data: Buffer, ptr: Any, flat: list[int], i: int) -> TransportFeedback:
    length = flat[i + 1]
    err = lib.mw_rtcp_parse_tcc(ptr, length, _rtcp_tcc.array, _rtcp_u8.array, _rtcp_i32.array,
                                min(_rtcp_u8.capacity, _rtcp_i32.capacity))
    sender, media, base, count, ref_time, fb_count, _, _ = _rtcp_tcc.layout.unpack_from(
        _rtcp_tcc.view)
    if not err and count > min(_rtcp_u8.capacity, _rtcp_i32.capacity):
        err = lib.mw_rtcp_parse_tcc(ptr, length, _rtcp_tcc.array, _rtcp_u8.ensure(count),
                                    _rtcp_i32.ensure(count), count)
    if err:
        raise RtcpParseError(_RTCP_REASONS[err])
    statuses = bytes(_rtcp_u8.view[:count])
    deltas: list[int | None] = ffi.unpack(_rtcp_i32.array, count)
    k = statuses.find(0)  # C-speed search; Python work only per packet not received
    while k >= 0:
        deltas[k] = None
        k = statuses.find(0, k + 1)
    return TransportFeedback(sender, media, base, ref_time, fb_count, deltas, statuses)


def _rtcp_parse_pli(data: Buffer, ptr: Any, flat: list[int], i: int) -> Pli:
    err = lib.mw_rtcp_parse_pli(ptr, flat[i + 1], _rtcp_fb.array)
    if err:
        raise RtcpParseError(_RTCP_REASONS[err])
    sender, media, _ = _rtcp_fb.layout.unpack_from(_rtcp_fb.view)
    return Pli(sender, media)


def _rtcp_parse_fir(data: Buffer, ptr: Any, flat: list[int], i: int) -> Fir:
    length = flat[i + 1]
    err = lib.mw_rtcp_parse_fir(ptr, length, _rtcp_fb.array, _rtcp_fir.array,
                                _rtcp_fir.capacity)
    sender, media, count = _rtcp_fb.layout.unpack_from(_rtcp_fb.view)
    if not err and count > _rtcp_fir.capacity:
        err = lib.mw_rtcp_parse_fir(ptr, length, _rtcp_fb.array, _rtcp_fir.ensure(count), count)
    if err:
        raise RtcpParseError(_RTCP_REASONS[err])
    words = ffi.unpack(_rtcp_fir.words, 2 * count)
    return Fir(sender, media, [FirEntry(words[k], words[k + 1]) for k in range(0, 2 * count, 2)])


def _rtcp_parse_remb(data: Buffer, ptr: Any, flat: list[int], i: int) -> Remb | RtcpUnknown:
    err = lib.mw_rtcp_parse_remb(ptr, flat[i + 1], _rtcp_remb.array, _rtcp_u32.array, 255)
    if err == lib.MW_RTCP_ERR_NOT_REMB:
        return _rtcp_parse_unknown(data, ptr, flat, i)
    if err:
        raise RtcpParseError(_RTCP_REASONS[err])
    bitrate, sender, media, _, _, count, _ = _rtcp_remb.layout.unpack_from(_rtcp_remb.view)
    return Remb(sender, media, bitrate, ffi.unpack(_rtcp_u32.array, count))


def _rtcp_parse_xr(data: Buffer, ptr: Any, flat: list[int], i: int) -> ExtendedReport:
    length = flat[i + 1]
    err = lib.mw_rtcp_parse_xr(ptr, length, _rtcp_xr.array, _rtcp_dlrr.array,
                               _rtcp_dlrr.capacity)
    rrt, sender, _, has_rrt, count = _rtcp_xr.layout.unpack_from(_rtcp_xr.view)
    if not err and count > _rtcp_dlrr.capacity:
        err = lib.mw_rtcp_parse_xr(ptr, length, _rtcp_xr.array, _rtcp_dlrr.ensure(count), count)
    if err:
        raise RtcpParseError(_RTCP_REASONS[err])
    words = ffi.unpack(_rtcp_dlrr.words, 3 * count)
    dlrr = [DlrrSubBlock(*words[k : k + 3]) for k in range(0, 3 * count, 3)]
    return ExtendedReport(sender, rrt if has_rrt else None, dlrr)


# Parsers by (packet type << 5 | RC/SC/FMT field).
_RTCP_PARSERS: dict[int, _rtcp_typing.Callable[[Buffer, Any, list[int], int], RtcpPacket]] = {
    **{200 << 5 | n: _rtcp_parse_sr for n in range(32)},
    **{201 << 5 | n: _rtcp_parse_rr for n in range(32)},
    **{202 << 5 | n: _rtcp_parse_sdes for n in range(32)},
    **{203 << 5 | n: _rtcp_parse_bye for n in range(32)},
    **{207 << 5 | n: _rtcp_parse_xr for n in range(32)},
    205 << 5 | 1: _rtcp_parse_nack, 205 << 5 | 15: _rtcp_parse_tcc,
    206 << 5 | 1: _rtcp_parse_pli, 206 << 5 | 4: _rtcp_parse_fir, 206 << 5 | 15: _rtcp_parse_remb,
}


class RtcpWriter:
    """Builds RTCP sub-packets one after the other into one buffer (a compound packet).

    Give it a writable buffer (a pool slot) to build in place, or a capacity for a bytearray of
    its own; ``offset`` is where the first sub-packet goes. Every ``add_*`` returns the bytes it
    wrote and raises RtcpBuildError (NO_SPACE, or INVALID_ARGUMENT for a value the wire cannot
    carry), leaving ``length`` as it was.
    """

    __slots__ = ("_ptr", "buffer", "length", "start")

    def __init__(self, buffer: bytearray | memoryview | None = None, *, capacity: int = 1500,
                 offset: int = 0) -> None:
        self.buffer = bytearray(capacity) if buffer is None else buffer
        if memoryview(self.buffer).readonly:
            raise TypeError("an RtcpWriter needs a writable buffer")
        if not 0 <= offset <= len(self.buffer):
            raise ValueError(f"offset {offset} is outside the {len(self.buffer)}-byte buffer")
        self.start = offset
        self.length = offset
        # A bytearray is never cleared by the GC, so its export may be held (it cannot be
        # resized while the writer lives); any other buffer is exported per call (_build).
        self._ptr: Any = ffi.from_buffer(self.buffer) if type(self.buffer) is bytearray else None

    def getvalue(self) -> bytes:
        """The sub-packets written so far."""
        return bytes(self.buffer[self.start : self.length])

    def reset(self) -> None:
        self.length = self.start

    def _build(self, builder: Any, *args: Any) -> int:
        """Call a C builder at the end of what is written. A memoryview's export is released at
        once, never held: CPython crashes if the GC clears a memoryview that is still exported,
        as can happen to a pool slot's view caught in a reference cycle."""
        base = self._ptr if self._ptr is not None else ffi.from_buffer(self.buffer)
        try:
            written: int = builder(base + self.length, len(self.buffer) - self.length, *args)
        except OverflowError as exc:  # an SSRC, count, timestamp... out of its C type's range
            raise RtcpBuildError(RtcpReason.INVALID_ARGUMENT) from exc
        finally:
            if base is not self._ptr:
                ffi.release(base)
        if written < 0:
            raise RtcpBuildError(_RTCP_REASONS[-written])
        self.length += written
        return written

    def add(self, packet: RtcpPacket) -> int:
        """Write any of the packet dataclasses (RtcpUnknown is written as it is)."""
        adder = _RTCP_ADDERS.get(type(packet))
        if adder is None:
            raise TypeError(f"cannot build RTCP from {type(packet).__name__}")
        return adder(self, packet)

    def add_sr(self, sr: SenderReport) -> int:
        return self._build(lib.mw_rtcp_build_sr, sr.ssrc, sr.ntp_timestamp, sr.rtp_timestamp,
                           sr.packet_count, sr.octet_count, *_rtcp_blocks_arg(sr.reports))

    def add_rr(self, rr: ReceiverReport) -> int:
        return self._build(lib.mw_rtcp_build_rr, rr.ssrc, *_rtcp_blocks_arg(rr.reports))

    def add_sdes(self, sdes: SourceDescription) -> int:
        """One CNAME item per chunk (every chunk needs a ``cname``)."""
        ssrcs, names, lengths = [], [], []
        for chunk in sdes.chunks:
            if chunk.cname is None:
                raise RtcpBuildError(RtcpReason.INVALID_ARGUMENT)
            ssrcs.append(chunk.ssrc)
            names.append(chunk.cname)
            lengths.append(len(chunk.cname))
        return self._build(lib.mw_rtcp_build_sdes, ssrcs, b"".join(names), lengths, len(ssrcs))

    def add_bye(self, bye: Bye) -> int:
        reason = ffi.NULL if bye.reason is None else bye.reason
        size = -1 if bye.reason is None else len(bye.reason)
        return self._build(lib.mw_rtcp_build_bye, bye.sources, len(bye.sources), reason, size)

    def add_nack(self, nack: Nack) -> int:
        """Pack ``nack.lost`` (RTP order) greedily into PID+BLP items."""
        return self._build(lib.mw_rtcp_build_nack, nack.sender_ssrc, nack.media_ssrc, nack.lost,
                           len(nack.lost))

    def add_pli(self, pli: Pli) -> int:
        return self._build(lib.mw_rtcp_build_pli, pli.sender_ssrc, pli.media_ssrc)

    def add_fir(self, fir: Fir) -> int:
        entries = [(entry.ssrc, entry.seq) for entry in fir.entries]
        return self._build(lib.mw_rtcp_build_fir, fir.sender_ssrc, fir.media_ssrc, entries,
                           len(entries))

    def add_remb(self, remb: Remb) -> int:
        return self._build(lib.mw_rtcp_build_remb, remb.sender_ssrc, remb.media_ssrc,
                           remb.bitrate, remb.ssrcs, len(remb.ssrcs))

    def add_tcc(self, fb: TransportFeedback) -> int:
        deltas = fb.deltas
        n = len(deltas)
        if n > 65535:
            raise RtcpBuildError(RtcpReason.INVALID_ARGUMENT)
        # C-speed passes; Python work only per packet not received.
        received = bytes(map(_rtcp_operator.is_not, deltas, _rtcp_itertools.repeat(None)))
        values: list[Any] = deltas
        k = received.find(0)
        if k >= 0:
            values = list(deltas)
            while k >= 0:
                values[k] = 0
                k = received.find(0, k + 1)
        array = _rtcp_i32.ensure(n)
        try:
            _rtcp_struct.pack_into(f"={n}i", _rtcp_i32.view, 0, *values)
        except _rtcp_struct.error as exc:
            raise RtcpBuildError(RtcpReason.INVALID_ARGUMENT) from exc
        return self._build(lib.mw_rtcp_build_tcc, fb.sender_ssrc, fb.media_ssrc, fb.base_seq,
                           fb.reference_time, fb.fb_count, received, array, n)

    def add_xr(self, xr: ExtendedReport) -> int:
        """An RRT block when ``rrt_ntp`` is set, then one DLRR block when ``dlrr`` is not empty."""
        dlrr = [(sub.ssrc, sub.lrr, sub.dlrr) for sub in xr.dlrr]
        ntp = 0 if xr.rrt_ntp is None else xr.rrt_ntp
        return self._build(lib.mw_rtcp_build_xr, xr.sender_ssrc, xr.rrt_ntp is not None, ntp,
                           dlrr, len(dlrr))

    def add_unknown(self, packet: RtcpUnknown) -> int:
        body = packet.body
        size = 4 + len(body)
        if (len(body) % 4 or size > 4 * 65536 or not 0 <= packet.count_fmt <= 31
                or not 0 <= packet.packet_type <= 255):
            raise RtcpBuildError(RtcpReason.INVALID_ARGUMENT)
        if self.length + size > len(self.buffer):
            raise RtcpBuildError(RtcpReason.NO_SPACE)
        header = bytes((0x80 | packet.count_fmt, packet.packet_type)) + (
            (size // 4 - 1).to_bytes(2, "big"))
        self.buffer[self.length : self.length + size] = header + body
        self.length += size
        return size


_RTCP_ADDERS: dict[type, _rtcp_typing.Callable[[RtcpWriter, _rtcp_typing.Any], int]] = {
    SenderReport: RtcpWriter.add_sr, ReceiverReport: RtcpWriter.add_rr,
    SourceDescription: RtcpWriter.add_sdes, Bye: RtcpWriter.add_bye, Nack: RtcpWriter.add_nack,
    Pli: RtcpWriter.add_pli, Fir: RtcpWriter.add_fir, Remb: RtcpWriter.add_remb,
    TransportFeedback: RtcpWriter.add_tcc, ExtendedReport: RtcpWriter.add_xr,
    RtcpUnknown: RtcpWriter.add_unknown,
}


def _rtcp_blocks_arg(blocks: list[ReportBlock]) -> tuple[Any, int]:
    """Report blocks as the C builders take them (cffi makes the array from the tuples)."""
    rows = [(b.ssrc, b.fraction_lost, b.packets_lost, b.highest_seq, b.jitter, b.lsr, b.dlsr)
            for b in blocks]
    return rows, len(rows)


_RTCP_MAX_BUILD_BYTES = 1 << 22
_rtcp_writer = RtcpWriter(capacity=1500)


def build_rtcp(packets: _rtcp_typing.Iterable[RtcpPacket]) -> bytes:
    """Build packets into one compound RTCP packet (SR/RR and SDES first, per RFC 3550)."""
    global _rtcp_writer
    packets = list(packets)
    while True:
        writer = _rtcp_writer
        writer.length = writer.start = 0
        try:
            for packet in packets:
                adder = _RTCP_ADDERS.get(type(packet))
                if adder is None:
                    raise TypeError(f"cannot build RTCP from {type(packet).__name__}")
                adder(writer, packet)
        except RtcpBuildError as exc:
            if exc.reason != RtcpReason.NO_SPACE or len(writer.buffer) >= _RTCP_MAX_BUILD_BYTES:
                raise
            _rtcp_writer = RtcpWriter(capacity=4 * len(writer.buffer))
            continue
        return bytes(writer.buffer[: writer.length])


def build_rtcp_into(buffer: bytearray | memoryview, offset: int,
                    packets: _rtcp_typing.Iterable[RtcpPacket]) -> int:
    """Build packets into ``buffer`` from ``offset``; returns the bytes written."""
    writer = RtcpWriter(buffer, offset=offset)
    for packet in packets:
        writer.add(packet)
    return writer.length - offset


