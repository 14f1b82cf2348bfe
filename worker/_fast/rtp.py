"""RTP parse and in-place rewrite, header extensions, RTX: ``cffi_build/rtp.h``.

Parse and in-place rewrite of RTP packets (RFC 3550), header extensions (RFC 8285) and RTX
(RFC 4588). Errors: parse_rtp raises RtpParseError (the peer's packet is malformed); the
rewrites raise RtpRewriteError when the request cannot be done on that packet (no room, no such
element, ...) and RtpParseError when the packet they were given is malformed. Both are
ValueErrors with a ``reason`` (an RtpReason), so the caller can count drops by reason.
The rewrites work on a writable buffer (bytearray, memoryview of a pool slot): ``length`` is the
packet's length in it (default: the whole buffer) and the buffer's size is the capacity a
rewrite may grow into; they return the packet's new length. An integer outside its C type
(uint32 for SSRC, timestamp) raises OverflowError; inside it but outside the field's range
(sequence number, payload type, extension id), RtpRewriteError(BAD_ARGUMENT).
The forwarding path uses RtpBatch (one C call for a whole receive batch); RtpBuffer keeps one
slot's cffi view and parsed header for repeated single-packet work without allocating.
"""

from __future__ import annotations

import collections.abc as _rtp_abc
import enum as _rtp_enum
import mmap as _rtp_mmap
import typing as _rtp_typing
from enum import IntEnum
from typing import Any

from worker._fast._lib import Buffer, buffer_pointer, ffi, lib

WritableBuffer = bytearray | memoryview | _rtp_mmap.mmap

RTP_MAX_EXT_ELEMENTS: int = lib.MW_RTP_MAX_EXT_ELEMENTS
RTP_ONE_BYTE_PROFILE: int = lib.MW_RTP_ONE_BYTE_PROFILE
RTP_TWO_BYTE_PROFILE: int = lib.MW_RTP_TWO_BYTE_PROFILE
_RTP_SET_SSRC: int = lib.MW_RTP_SET_SSRC
_RTP_SET_SEQ: int = lib.MW_RTP_SET_SEQ
_RTP_SET_TIMESTAMP: int = lib.MW_RTP_SET_TIMESTAMP
_RTP_SET_PAYLOAD_TYPE: int = lib.MW_RTP_SET_PAYLOAD_TYPE
_RTP_SET_MARKER: int = lib.MW_RTP_SET_MARKER


class RtpReason(IntEnum):
    """Result codes of the RTP functions (``enum mw_rtp_status``); OK is 0, the rest negative."""

    OK = lib.MW_RTP_OK
    TOO_SHORT = lib.MW_RTP_ERR_TOO_SHORT
    BAD_VERSION = lib.MW_RTP_ERR_BAD_VERSION
    CSRC_PAST_END = lib.MW_RTP_ERR_CSRC_PAST_END
    EXT_PAST_END = lib.MW_RTP_ERR_EXT_PAST_END
    BAD_EXT_ELEMENT = lib.MW_RTP_ERR_BAD_EXT_ELEMENT
    PADDING_ZERO = lib.MW_RTP_ERR_PADDING_ZERO
    PADDING_PAST_PAYLOAD = lib.MW_RTP_ERR_PADDING_PAST_PAYLOAD
    BAD_ARGUMENT = lib.MW_RTP_ERR_BAD_ARGUMENT
    NO_ROOM = lib.MW_RTP_ERR_NO_ROOM
    EXT_NOT_FOUND = lib.MW_RTP_ERR_EXT_NOT_FOUND
    EXT_EXISTS = lib.MW_RTP_ERR_EXT_EXISTS
    EXT_LENGTH_MISMATCH = lib.MW_RTP_ERR_EXT_LENGTH_MISMATCH
    EXT_OPAQUE = lib.MW_RTP_ERR_EXT_OPAQUE
    EXT_TOO_MANY = lib.MW_RTP_ERR_EXT_TOO_MANY
    RTX_TOO_SHORT = lib.MW_RTP_ERR_RTX_TOO_SHORT
    OUT_OF_BOUNDS = lib.MW_RTP_ERR_OUT_OF_BOUNDS


class RtpExtensionForm(IntEnum):
    """What a packet's header extension block is (``enum mw_rtp_ext_form``)."""

    NONE = lib.MW_RTP_EXT_NONE
    ONE_BYTE = lib.MW_RTP_EXT_ONE_BYTE
    TWO_BYTE = lib.MW_RTP_EXT_TWO_BYTE
    OPAQUE = lib.MW_RTP_EXT_OPAQUE


class RtpField(_rtp_enum.IntFlag):
    """Fixed-header fields a batch rewrite sets (``enum mw_rtp_field``)."""

    SSRC = lib.MW_RTP_SET_SSRC
    SEQ = lib.MW_RTP_SET_SEQ
    TIMESTAMP = lib.MW_RTP_SET_TIMESTAMP
    PAYLOAD_TYPE = lib.MW_RTP_SET_PAYLOAD_TYPE
    MARKER = lib.MW_RTP_SET_MARKER


_RTP_REASON_SENTENCES: dict[RtpReason, str] = {
    RtpReason.OK: "no error",
    RtpReason.TOO_SHORT: "the packet is shorter than the 12-byte RTP header",
    RtpReason.BAD_VERSION: "the RTP version is not 2",
    RtpReason.CSRC_PAST_END: "the CSRC list runs past the end of the packet",
    RtpReason.EXT_PAST_END: "the header extension runs past the end of the packet",
    RtpReason.BAD_EXT_ELEMENT: "a header extension element overruns its block or has id 0",
    RtpReason.PADDING_ZERO: "the padding bit is set and the padding length is 0",
    RtpReason.PADDING_PAST_PAYLOAD: "the padding is longer than the payload",
    RtpReason.BAD_ARGUMENT: "an argument is out of range (length, id, value size or field)",
    RtpReason.NO_ROOM: "the rewritten packet would not fit in the buffer",
    RtpReason.EXT_NOT_FOUND: "the packet has no header extension element with that id",
    RtpReason.EXT_EXISTS: "the packet already has a header extension element with that id",
    RtpReason.EXT_LENGTH_MISMATCH: "the new extension value's length differs from the old one's",
    RtpReason.EXT_OPAQUE: "the header extension is not in an RFC 8285 form",
    RtpReason.EXT_TOO_MANY: "the packet has more header extension elements than the C stores",
    RtpReason.RTX_TOO_SHORT: "the RTX payload has no original sequence number",
    RtpReason.OUT_OF_BOUNDS: "the packet lies outside the batch's buffer",
}
_RTP_PARSE_REASONS = frozenset(range(int(RtpReason.PADDING_PAST_PAYLOAD), 0))
_RTP_REASONS: dict[int, RtpReason] = {int(reason): reason for reason in RtpReason}


class RtpError(ValueError):
    """An RTP packet could not be parsed or rewritten; ``reason`` says why."""

    def __init__(self, reason: RtpReason, prefix: str = "") -> None:
        super().__init__(prefix + _RTP_REASON_SENTENCES[reason])
        self.reason = reason


class RtpParseError(RtpError):
    """The packet is not well-formed RTP (the sender's fault)."""

    def __init__(self, reason: RtpReason) -> None:
        super().__init__(reason, "malformed RTP packet: ")


class RtpRewriteError(RtpError):
    """The rewrite cannot be done on this packet, or an argument is out of range (our fault)."""

    def __init__(self, reason: RtpReason) -> None:
        super().__init__(reason, "RTP rewrite refused: ")


def _rtp_error(code: int) -> RtpError:
    reason = _RTP_REASONS[code]
    if code in _RTP_PARSE_REASONS:
        return RtpParseError(reason)
    return RtpRewriteError(reason)


class RtpExtensionElement(_rtp_typing.NamedTuple):
    """One RFC 8285 element: its id, and its value's offset (from the packet's start) and length."""

    id: int
    offset: int
    length: int


class RtpHeaderView(_rtp_typing.NamedTuple):
    """A parsed RTP header, detached from the packet (offsets are from the packet's start).

    ``extensions`` holds the first RTP_MAX_EXT_ELEMENTS elements; ``extension_count`` counts all.
    """

    marker: bool
    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    csrc_count: int
    padding: bool
    extension: bool
    payload_offset: int
    payload_length: int
    padding_length: int
    extension_form: RtpExtensionForm
    extension_profile: int
    extension_offset: int
    extension_length: int
    extension_count: int
    extensions: tuple[RtpExtensionElement, ...]

    def extension_value(self, data: Buffer, ext_id: int) -> bytes | None:
        """The value of the first element with this id, read from the packet, or None."""
        for element in self.extensions:
            if element.id == ext_id:
                return bytes(data[element.offset : element.offset + element.length])
        return None


_RTP_FORMS: tuple[RtpExtensionForm, ...] = tuple(RtpExtensionForm)
_RTP_NO_ELEMENTS: tuple[RtpExtensionElement, ...] = ()
_U8_ARRAY: Any = ffi.typeof("uint8_t[]")


def _rtp_view(h: Any) -> RtpHeaderView:
    stored = h.ext_stored
    elements = (tuple([RtpExtensionElement(e.id, e.offset, e.length) for e in h.ext[0:stored]])
                if stored else _RTP_NO_ELEMENTS)
    return RtpHeaderView(
        bool(h.marker), h.payload_type, h.sequence_number, h.timestamp, h.ssrc, h.csrc_count,
        bool(h.padding), bool(h.extension), h.payload_offset, h.payload_length,
        h.padding_length, _RTP_FORMS[h.ext_form], h.ext_profile, h.ext_offset, h.ext_length,
        h.ext_count, elements)


def _rtp_length(buf: Buffer | WritableBuffer, length: int | None) -> int:
    size = len(buf)
    if length is None:
        return size
    if not 0 <= length <= size:
        raise RtpRewriteError(RtpReason.BAD_ARGUMENT)
    return length


def _rtp_writable(buf: WritableBuffer) -> Any:
    return ffi.from_buffer(_U8_ARRAY, buf, True)


def parse_rtp(data: Buffer, length: int | None = None) -> RtpHeaderView:
    """Parse the RTP packet in ``data[:length]``; raise RtpParseError if it is malformed."""
    n = _rtp_length(data, length)
    h = ffi.new("struct mw_rtp_header *")
    rc = lib.mw_rtp_parse(ffi.from_buffer(data), n, h)
    if rc:
        raise _rtp_error(rc)
    return _rtp_view(h)


def rtp_reason(data: Buffer, length: int | None = None) -> RtpReason:
    """OK if ``data[:length]`` is a well-formed RTP packet, else why not (never raises for it)."""
    return _RTP_REASONS[lib.mw_rtp_parse(ffi.from_buffer(data), _rtp_length(data, length),
                                         ffi.NULL)]


def rewrite_rtp(buf: WritableBuffer, length: int | None = None, *, ssrc: int | None = None,
                sequence_number: int | None = None, timestamp: int | None = None,
                payload_type: int | None = None, marker: bool | None = None) -> None:
    """Set the given fixed-header fields in place (one C call that parses, checks and writes).

    ``ssrc`` and ``timestamp`` outside 0..2**32-1 raise OverflowError."""
    fields = 0
    if ssrc is not None:
        fields = _RTP_SET_SSRC
    else:
        ssrc = 0
    if sequence_number is not None:
        fields |= _RTP_SET_SEQ
    else:
        sequence_number = 0
    if timestamp is not None:
        fields |= _RTP_SET_TIMESTAMP
    else:
        timestamp = 0
    if payload_type is not None:
        fields |= _RTP_SET_PAYLOAD_TYPE
    else:
        payload_type = 0
    if marker is not None:
        fields |= _RTP_SET_MARKER
    n = len(buf) if length is None else _rtp_length(buf, length)
    rc = lib.mw_rtp_rewrite(ffi.from_buffer(_U8_ARRAY, buf, True), n, fields, ssrc,
                            sequence_number, timestamp, payload_type, 1 if marker else 0,
                            ffi.NULL)
    if rc < 0:
        raise _rtp_error(rc)


def _rtp_check(rc: int) -> int:
    if rc < 0:
        raise _rtp_error(rc)
    return rc


def set_rtp_extension(buf: WritableBuffer, ext_id: int, value: bytes, *,
                      length: int | None = None) -> int:
    """Overwrite the value of element ``ext_id`` with a value of the same length."""
    if not 0 <= ext_id <= 0xFFFF:
        raise RtpRewriteError(RtpReason.BAD_ARGUMENT)
    return _rtp_check(lib.mw_rtp_ext_set(_rtp_writable(buf), _rtp_length(buf, length), ext_id,
                                         value, len(value), ffi.NULL))


def put_rtp_extension(buf: WritableBuffer, ext_id: int, value: bytes, *,
                      length: int | None = None) -> int:
    """Set element ``ext_id`` to ``value`` of any length (added if absent); the new length."""
    if not 0 <= ext_id <= 0xFFFF:
        raise RtpRewriteError(RtpReason.BAD_ARGUMENT)
    return _rtp_check(lib.mw_rtp_ext_put(_rtp_writable(buf), _rtp_length(buf, length), len(buf),
                                         ext_id, value, len(value), ffi.NULL))


def add_rtp_extension(buf: WritableBuffer, ext_id: int, value: bytes, *,
                      length: int | None = None) -> int:
    """Append element ``ext_id`` (creating the block if needed); the new length."""
    if not 0 <= ext_id <= 0xFFFF:
        raise RtpRewriteError(RtpReason.BAD_ARGUMENT)
    return _rtp_check(lib.mw_rtp_ext_add(_rtp_writable(buf), _rtp_length(buf, length), len(buf),
                                         ext_id, value, len(value), ffi.NULL))


class RtpExtensionIdMap:
    """A 256-entry id table for remap_rtp_extensions, made once per consumer.

    Ids in ``mapping`` map to its values (0 removes the element); other ids are removed, or kept
    as they are with ``keep_unmapped``."""

    __slots__ = ("table",)

    def __init__(self, mapping: _rtp_abc.Mapping[int, int], *, keep_unmapped: bool = False) -> None:
        table = bytearray(range(256)) if keep_unmapped else bytearray(256)
        for old, new in mapping.items():
            if not (1 <= old <= 255 and 0 <= new <= 255):
                raise ValueError(f"extension id mapping {old} -> {new} is outside 1..255")
            table[old] = new
        self.table: Any = ffi.new("uint8_t[256]", bytes(table))


def remap_rtp_extensions(buf: WritableBuffer, id_map: RtpExtensionIdMap, *,
                         length: int | None = None) -> int:
    """Renumber (and drop) header extension elements by ``id_map``; the new length."""
    return _rtp_check(lib.mw_rtp_ext_remap(_rtp_writable(buf), _rtp_length(buf, length),
                                           len(buf), id_map.table, ffi.NULL))


def rtx_encapsulate(buf: WritableBuffer, *, ssrc: int, payload_type: int, sequence_number: int,
                    length: int | None = None) -> int:
    """Turn the packet into its RTX form (RFC 4588) with the RTX stream's fields; length + 2."""
    return _rtp_check(lib.mw_rtp_rtx_encapsulate(
        _rtp_writable(buf), _rtp_length(buf, length), len(buf), ssrc, payload_type,
        sequence_number, ffi.NULL))


def rtx_decapsulate(buf: WritableBuffer, *, ssrc: int, payload_type: int,
                    length: int | None = None) -> int:
    """Restore the original packet from its RTX form (RFC 4588); length - 2."""
    return _rtp_check(lib.mw_rtp_rtx_decapsulate(
        _rtp_writable(buf), _rtp_length(buf, length), ssrc, payload_type, ffi.NULL))


class RtpHeaderStruct(_rtp_typing.Protocol):
    """The fields of a cffi ``struct mw_rtp_header`` (see cffi_build/rtp.h), for typed reads at
    C-struct speed."""

    version: int
    padding: int
    extension: int
    csrc_count: int
    marker: int
    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload_offset: int
    payload_length: int
    padding_length: int
    ext_profile: int
    ext_form: int
    ext_stored: int
    ext_offset: int
    ext_length: int
    ext_count: int


class RtpBuffer:
    """One writable buffer (a pool slot) with its cffi view and a reusable parsed header.

    For per-packet work off the batch path without allocating: ``parse(length)`` fills
    ``header`` (read its fields directly: ``rb.header.ssrc``), ``rewrite(...)`` sets fields in
    one C call and refreshes ``header``."""

    __slots__ = ("_buf", "_owner", "_ptr", "capacity", "header", "length")

    def __init__(self, buf: WritableBuffer) -> None:
        self._buf = buf
        if isinstance(buf, memoryview):
            # Never keep an export of the memoryview itself (see buffer_pointer).
            self._ptr, self._owner = buffer_pointer(buf, True)
            self.capacity: int = len(buf)
        else:
            self._ptr = self._owner = _rtp_writable(buf)
            self.capacity = len(self._ptr)
        self.header: RtpHeaderStruct = ffi.new("struct mw_rtp_header *")
        self.length = 0

    def parse(self, length: int) -> int:
        """Parse ``length`` bytes; return 0 (RtpReason.OK) or the negative reason."""
        if not 0 <= length <= self.capacity:
            return int(RtpReason.BAD_ARGUMENT)
        self.length = length
        rc: int = lib.mw_rtp_parse(self._ptr, length, self.header)
        return rc

    def rewrite(self, fields: int, *, ssrc: int = 0, sequence_number: int = 0, timestamp: int = 0,
                payload_type: int = 0, marker: int = 0) -> int:
        """Set the RtpField ``fields`` of the packet (re-parsed first); 0 or a negative reason."""
        rc: int = lib.mw_rtp_rewrite(self._ptr, self.length, fields, ssrc, sequence_number,
                                     timestamp, payload_type, marker, self.header)
        return rc if rc < 0 else 0

    def view(self) -> RtpHeaderView:
        """The last successful parse as a detached view."""
        return _rtp_view(self.header)


class RtpBatch:
    """Preallocated arrays to parse or rewrite up to ``capacity`` packets of one slab per call.

    Fill ``offsets[i]`` and ``lengths[i]`` (bytes from the slab's start), call ``parse(count)``,
    then read ``status[i]`` (0 or a negative RtpReason) and the per-packet arrays. For a rewrite,
    fill ``new_ssrc`` ... ``new_marker`` for the fields named and call ``rewrite(count, fields)``.
    The arrays are cffi arrays: index them directly, they are never reallocated."""

    __slots__ = ("_base", "_base_len", "_slab", "capacity", "headers", "lengths", "marker",
                 "new_marker", "new_payload_type", "new_seq", "new_ssrc", "new_timestamp",
                 "offsets", "payload_length", "payload_offset", "payload_type", "seq", "ssrc",
                 "status", "timestamp")

    def __init__(self, slab: WritableBuffer, capacity: int = 64) -> None:
        if capacity <= 0:
            raise ValueError("an RtpBatch needs a positive capacity")
        self._slab = slab
        self._base: Any = _rtp_writable(slab)
        self._base_len = len(self._base)
        self.capacity = capacity
        self.offsets: Any = ffi.new("uint32_t[]", capacity)
        self.lengths: Any = ffi.new("uint32_t[]", capacity)
        self.ssrc: Any = ffi.new("uint32_t[]", capacity)
        self.seq: Any = ffi.new("uint16_t[]", capacity)
        self.timestamp: Any = ffi.new("uint32_t[]", capacity)
        self.payload_type: Any = ffi.new("uint8_t[]", capacity)
        self.marker: Any = ffi.new("uint8_t[]", capacity)
        self.payload_offset: Any = ffi.new("uint32_t[]", capacity)
        self.payload_length: Any = ffi.new("uint32_t[]", capacity)
        self.status: Any = ffi.new("int32_t[]", capacity)
        self.headers: Any = ffi.new("struct mw_rtp_header[]", capacity)
        self.new_ssrc: Any = ffi.new("uint32_t[]", capacity)
        self.new_seq: Any = ffi.new("uint16_t[]", capacity)
        self.new_timestamp: Any = ffi.new("uint32_t[]", capacity)
        self.new_payload_type: Any = ffi.new("uint8_t[]", capacity)
        self.new_marker: Any = ffi.new("uint8_t[]", capacity)

    def _count(self, count: int) -> int:
        if not 0 <= count <= self.capacity:
            raise ValueError(f"batch count {count} is outside 0..{self.capacity}")
        return count

    def parse(self, count: int) -> int:
        """Parse packets 0..count-1 into the flat arrays; the number well-formed."""
        return int(lib.mw_rtp_parse_batch(
            self._base, self._base_len, self.offsets, self.lengths, self._count(count),
            self.ssrc, self.seq, self.timestamp, self.payload_type, self.marker,
            self.payload_offset, self.payload_length, self.status))

    def parse_headers(self, count: int) -> int:
        """Parse packets 0..count-1 into ``headers[i]`` (full structs, with extension elements)."""
        return int(lib.mw_rtp_parse_batch_headers(
            self._base, self._base_len, self.offsets, self.lengths, self._count(count),
            self.headers, self.status))

    def rewrite(self, count: int, fields: int) -> int:
        """Set the RtpField ``fields`` of packets 0..count-1 from the ``new_*`` arrays."""
        return int(lib.mw_rtp_rewrite_batch(
            self._base, self._base_len, self.offsets, self.lengths, self._count(count),
            int(fields), self.new_ssrc, self.new_seq, self.new_timestamp, self.new_payload_type,
            self.new_marker, self.status))

    def header_view(self, index: int) -> RtpHeaderView:
        """``headers[index]`` (after parse_headers) as a detached view."""
        if not 0 <= index < self.capacity:
            raise IndexError(f"batch index {index} is outside 0..{self.capacity - 1}")
        return _rtp_view(self.headers[index])




class SlabRtp:
    """Per-packet header work on packets that live in the slots of one slab (a pool's), with
    one reusable header struct and no allocation per packet: the ingress path parses each
    received packet once here, reads the fields it routes on straight from ``header``, and
    restores RTX packets in place.

    ``parse(offset, length)`` returns 0 (RtpReason.OK) or the negative reason; the element
    offsets in ``header`` are relative to ``offset``."""

    __slots__ = ("_owner", "_ptr", "_slab_len", "header")

    def __init__(self, slab: WritableBuffer) -> None:
        view = memoryview(slab).cast("B")
        self._ptr, self._owner = buffer_pointer(view, True)
        self._slab_len = len(view)
        self.header: RtpHeaderStruct = ffi.new("struct mw_rtp_header *")

    def parse(self, offset: int, length: int) -> int:
        if offset < 0 or length < 0 or offset + length > self._slab_len:
            return int(RtpReason.BAD_ARGUMENT)
        rc: int = lib.mw_rtp_parse(self._ptr + offset, length, self.header)
        return rc

    def extension(self, ext_id: int) -> tuple[int, int] | None:
        """(offset from the packet's start, length) of the parsed header's element ``ext_id``."""
        index: int = lib.mw_rtp_ext_find(self.header, ext_id)
        if index < 0:
            return None
        element = self.header.ext[index]  # type: ignore[attr-defined]
        return int(element.offset), int(element.length)

    def rtx_decapsulate(self, offset: int, length: int, ssrc: int, payload_type: int) -> int:
        """Restore the original packet from the RTX packet at ``offset`` (RFC 4588) in place
        and re-parse it; its new length, or a negative RtpReason."""
        if offset < 0 or length < 0 or offset + length > self._slab_len:
            return int(RtpReason.BAD_ARGUMENT)
        rc: int = lib.mw_rtp_rtx_decapsulate(self._ptr + offset, length, ssrc, payload_type,
                                             self.header)
        return rc
