"""Pure-Python reference for ``cffi_build/rtp.c``: RTP packets (RFC 3550) with RFC 8285 header
extensions, the in-place rewrites, and RTX encapsulation (RFC 4588).

It follows the C's rules exactly, so that tests can compare the two byte for byte:

- Parse reasons are checked in the order of :class:`Reason`; a packet gets the first that applies.
- One-byte extension form (profile 0xBEDE): a 0 byte is padding, id 15 ends the walk (the bytes
  after it are ignored), id 0 with a non-zero length is a bad element. Two-byte form (0x100X): a
  0 byte is padding. Any other profile is an opaque block.
- A rebuilt extension block is canonical: elements in order, packed, zero-padded to 4 bytes; it
  keeps the two-byte form (and its appbits) if it had it, else uses the one-byte form when every
  element fits it; a block left empty is removed with the X bit.
- Argument errors come first, then the packet's parse reason, then the operation's own errors.

Malformed input raises :class:`RtpError` (a ``ValueError``) with a sentence and a ``reason``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import NamedTuple

ONE_BYTE_PROFILE = 0xBEDE
TWO_BYTE_PROFILE = 0x1000
MAX_STORED_ELEMENTS = 16
FIXED_HEADER_BYTES = 12

_FIXED = struct.Struct("!BBHII")


class Reason(IntEnum):
    """The same codes as ``enum mw_rtp_status``."""

    OK = 0
    TOO_SHORT = -1
    BAD_VERSION = -2
    CSRC_PAST_END = -3
    EXT_PAST_END = -4
    BAD_EXT_ELEMENT = -5
    PADDING_ZERO = -6
    PADDING_PAST_PAYLOAD = -7
    BAD_ARGUMENT = -20
    NO_ROOM = -21
    EXT_NOT_FOUND = -22
    EXT_EXISTS = -23
    EXT_LENGTH_MISMATCH = -24
    EXT_OPAQUE = -25
    EXT_TOO_MANY = -26
    RTX_TOO_SHORT = -27
    OUT_OF_BOUNDS = -28


class ExtensionForm(IntEnum):
    """The same codes as ``enum mw_rtp_ext_form``."""

    NONE = 0
    ONE_BYTE = 1
    TWO_BYTE = 2
    OPAQUE = 3


class RtpError(ValueError):
    """The packet is malformed, or the rewrite cannot be done on it."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ExtensionElement(NamedTuple):
    """One RFC 8285 element, with its value's offset from the packet's start."""

    id: int
    offset: int
    value: bytes


class HeaderInfo(NamedTuple):
    """Everything ``struct mw_rtp_header`` holds (with all elements, not only the first 16)."""

    padding: bool
    extension: bool
    marker: int
    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    csrc: tuple[int, ...]
    payload_offset: int
    payload_length: int
    padding_length: int
    ext_profile: int
    ext_form: ExtensionForm
    ext_offset: int
    ext_length: int
    elements: tuple[ExtensionElement, ...]

    def find(self, ext_id: int) -> ExtensionElement | None:
        """The first of the first 16 elements with this id (the C looks no further)."""
        for element in self.elements[:MAX_STORED_ELEMENTS]:
            if element.id == ext_id:
                return element
        return None


def _walk_one_byte(data: bytes, pos: int, end: int) -> list[ExtensionElement]:
    elements = []
    while pos < end:
        first = data[pos]
        if first == 0:
            pos += 1
            continue
        ext_id, length = first >> 4, (first & 0x0F) + 1
        if ext_id == 15:
            break
        if ext_id == 0:
            raise RtpError(Reason.BAD_EXT_ELEMENT, "one-byte extension element has id 0")
        if pos + 1 + length > end:
            raise RtpError(Reason.BAD_EXT_ELEMENT, "one-byte extension element is truncated")
        elements.append(ExtensionElement(ext_id, pos + 1, data[pos + 1 : pos + 1 + length]))
        pos += 1 + length
    return elements


def _walk_two_byte(data: bytes, pos: int, end: int) -> list[ExtensionElement]:
    elements = []
    while pos < end:
        ext_id = data[pos]
        if ext_id == 0:
            pos += 1
            continue
        if pos + 2 > end or pos + 2 + data[pos + 1] > end:
            raise RtpError(Reason.BAD_EXT_ELEMENT, "two-byte extension element is truncated")
        length = data[pos + 1]
        elements.append(ExtensionElement(ext_id, pos + 2, data[pos + 2 : pos + 2 + length]))
        pos += 2 + length
    return elements


def parse_header(data: bytes) -> HeaderInfo:
    """Parse an RTP packet's header; raise :class:`RtpError` if it is malformed."""
    data = bytes(data)
    if len(data) < FIXED_HEADER_BYTES:
        raise RtpError(Reason.TOO_SHORT, f"RTP packet has {len(data)} bytes, fewer than 12")
    b0, b1, seq, timestamp, ssrc = _FIXED.unpack_from(data)
    if b0 >> 6 != 2:
        raise RtpError(Reason.BAD_VERSION, f"RTP packet has version {b0 >> 6}, not 2")
    csrc_count = b0 & 0x0F
    pos = FIXED_HEADER_BYTES + 4 * csrc_count
    if pos > len(data):
        raise RtpError(Reason.CSRC_PAST_END, "RTP packet's CSRC list runs past its end")
    csrc = struct.unpack_from(f"!{csrc_count}I", data, FIXED_HEADER_BYTES)
    profile, form, ext_offset, ext_length = 0, ExtensionForm.NONE, 0, 0
    elements: list[ExtensionElement] = []
    if b0 & 0x10:
        if pos + 4 > len(data):
            raise RtpError(Reason.EXT_PAST_END, "RTP header extension runs past the end")
        profile, words = struct.unpack_from("!HH", data, pos)
        ext_offset, ext_length = pos + 4, words * 4
        if ext_offset + ext_length > len(data):
            raise RtpError(Reason.EXT_PAST_END, "RTP header extension runs past the end")
        end = ext_offset + ext_length
        if profile == ONE_BYTE_PROFILE:
            form = ExtensionForm.ONE_BYTE
            elements = _walk_one_byte(data, ext_offset, end)
        elif profile & 0xFFF0 == TWO_BYTE_PROFILE:
            form = ExtensionForm.TWO_BYTE
            elements = _walk_two_byte(data, ext_offset, end)
        else:
            form = ExtensionForm.OPAQUE
        pos = end
    rest = len(data) - pos
    pad = 0
    if b0 & 0x20:
        if rest == 0:
            raise RtpError(Reason.PADDING_PAST_PAYLOAD, "RTP padding bit set but no payload")
        pad = data[-1]
        if pad == 0:
            raise RtpError(Reason.PADDING_ZERO, "RTP padding length is 0")
        if pad > rest:
            raise RtpError(Reason.PADDING_PAST_PAYLOAD, "RTP padding is longer than the payload")
    return HeaderInfo(
        padding=bool(b0 & 0x20), extension=bool(b0 & 0x10), marker=b1 >> 7,
        payload_type=b1 & 0x7F, sequence_number=seq, timestamp=timestamp, ssrc=ssrc, csrc=csrc,
        payload_offset=pos, payload_length=rest - pad, padding_length=pad, ext_profile=profile,
        ext_form=form, ext_offset=ext_offset, ext_length=ext_length, elements=tuple(elements))


def parse_reason(data: bytes) -> Reason:
    """OK, or why the packet is malformed."""
    try:
        parse_header(data)
    except RtpError as exc:
        return exc.reason
    return Reason.OK


def fits_one_byte(ext_id: int, value: bytes) -> bool:
    return 1 <= ext_id <= 14 and 1 <= len(value) <= 16


def build_extension_block(elements: Sequence[tuple[int, bytes]],
                          form: ExtensionForm = ExtensionForm.NONE,
                          profile: int = 0) -> tuple[int | None, bytes]:
    """The canonical block for ``elements``: ``(profile, data)``, or ``(None, b"")`` when empty.

    ``form`` and ``profile`` are the packet's current ones: a two-byte block stays two-byte with
    its appbits; otherwise the one-byte form is used when every element fits it.
    """
    if not elements:
        return None, b""
    one_byte = form != ExtensionForm.TWO_BYTE and all(fits_one_byte(i, v) for i, v in elements)
    out = bytearray()
    for ext_id, value in elements:
        if one_byte:
            out.append(ext_id << 4 | (len(value) - 1))
        else:
            out += bytes((ext_id, len(value)))
        out += value
    out += bytes(-len(out) % 4)
    if one_byte:
        return ONE_BYTE_PROFILE, bytes(out)
    return (profile if form == ExtensionForm.TWO_BYTE else TWO_BYTE_PROFILE), bytes(out)


@dataclass(slots=True)
class RtpPacket:
    """An RTP packet as a value: ``parse`` and ``serialize`` are exact inverses.

    The extension block is kept as raw ``extension_data`` (so that any block round-trips byte for
    byte); :attr:`extensions` reads its elements and :meth:`set_extensions` writes a canonical one.
    ``padding`` holds the padding bytes with the count byte last (empty when P is clear).
    """

    payload_type: int = 0
    marker: int = 0
    sequence_number: int = 0
    timestamp: int = 0
    ssrc: int = 0
    csrc: tuple[int, ...] = ()
    extension_profile: int | None = None
    extension_data: bytes = b""
    payload: bytes = b""
    padding: bytes = field(default=b"")

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        data = bytes(data)
        info = parse_header(data)
        end = info.payload_offset + info.payload_length
        return cls(
            payload_type=info.payload_type, marker=info.marker,
            sequence_number=info.sequence_number, timestamp=info.timestamp, ssrc=info.ssrc,
            csrc=info.csrc,
            extension_profile=info.ext_profile if info.extension else None,
            extension_data=data[info.ext_offset : info.ext_offset + info.ext_length],
            payload=data[info.payload_offset : end], padding=data[end:])

    def serialize(self) -> bytes:
        if len(self.extension_data) % 4:
            raise ValueError("RTP extension data must be a multiple of 4 bytes")
        if self.padding and self.padding[-1] != len(self.padding):
            raise ValueError("RTP padding must end with its own length")
        b0 = 0x80 | (0x20 if self.padding else 0) | len(self.csrc)
        if self.extension_profile is not None:
            b0 |= 0x10
        out = bytearray(_FIXED.pack(b0, self.marker << 7 | self.payload_type,
                                    self.sequence_number, self.timestamp, self.ssrc))
        out += struct.pack(f"!{len(self.csrc)}I", *self.csrc)
        if self.extension_profile is not None:
            out += struct.pack("!HH", self.extension_profile, len(self.extension_data) // 4)
            out += self.extension_data
        return bytes(out + self.payload + self.padding)

    @property
    def extension_form(self) -> ExtensionForm:
        if self.extension_profile is None:
            return ExtensionForm.NONE
        if self.extension_profile == ONE_BYTE_PROFILE:
            return ExtensionForm.ONE_BYTE
        if self.extension_profile & 0xFFF0 == TWO_BYTE_PROFILE:
            return ExtensionForm.TWO_BYTE
        return ExtensionForm.OPAQUE

    @property
    def extensions(self) -> list[tuple[int, bytes]]:
        """The RFC 8285 elements, in order (empty for an opaque block)."""
        data = self.extension_data
        if self.extension_form == ExtensionForm.ONE_BYTE:
            return [(e.id, e.value) for e in _walk_one_byte(data, 0, len(data))]
        if self.extension_form == ExtensionForm.TWO_BYTE:
            return [(e.id, e.value) for e in _walk_two_byte(data, 0, len(data))]
        return []

    def set_extensions(self, elements: Sequence[tuple[int, bytes]]) -> None:
        """Replace the block by the canonical one for ``elements``."""
        profile = self.extension_profile or 0
        self.extension_profile, self.extension_data = build_extension_block(
            elements, self.extension_form, profile)


# ---- the in-place rewrites, as functions from bytes to bytes ------------------------------


def _fail(reason: Reason, message: str) -> RtpError:
    return RtpError(reason, message)


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise _fail(Reason.BAD_ARGUMENT, message)


def rewrite(data: bytes, *, ssrc: int | None = None, sequence_number: int | None = None,
            timestamp: int | None = None, payload_type: int | None = None,
            marker: int | None = None) -> bytes:
    """Set fixed-header fields (``mw_rtp_rewrite``)."""
    _check(sequence_number is None or 0 <= sequence_number <= 0xFFFF, "bad sequence number")
    _check(payload_type is None or 0 <= payload_type <= 127, "bad payload type")
    _check(marker is None or marker in (0, 1), "bad marker")
    packet = RtpPacket.parse(data)
    out = bytearray(data)
    if ssrc is not None:
        struct.pack_into("!I", out, 8, ssrc)
    if sequence_number is not None:
        struct.pack_into("!H", out, 2, sequence_number)
    if timestamp is not None:
        struct.pack_into("!I", out, 4, timestamp)
    pt = packet.payload_type if payload_type is None else payload_type
    mark = packet.marker if marker is None else marker
    out[1] = mark << 7 | pt
    return bytes(out)


def _ext_args(data: bytes, cap: int, ext_id: int, value: bytes) -> HeaderInfo:
    _check(cap >= len(data), "capacity is smaller than the packet")
    _check(1 <= ext_id <= 255 and len(value) <= 255, "bad extension id or value length")
    info = parse_header(data)
    if info.ext_form == ExtensionForm.OPAQUE:
        raise _fail(Reason.EXT_OPAQUE, "the extension block is not in an RFC 8285 form")
    return info


def _splice(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value) :]


def _rebuild(data: bytes, cap: int, info: HeaderInfo,
             elements: Sequence[tuple[int, bytes]]) -> bytes:
    packet = RtpPacket.parse(data)
    packet.extension_profile, packet.extension_data = build_extension_block(
        elements, info.ext_form, info.ext_profile)
    out = packet.serialize()
    if len(out) > cap:
        raise _fail(Reason.NO_ROOM, f"the rewritten packet needs {len(out)} bytes, cap is {cap}")
    return out


def _check_all_stored(info: HeaderInfo) -> None:
    if len(info.elements) > MAX_STORED_ELEMENTS:
        raise _fail(Reason.EXT_TOO_MANY, "the packet has more than 16 extension elements")


def ext_set(data: bytes, ext_id: int, value: bytes) -> bytes:
    """Overwrite an element's value, of the same length (``mw_rtp_ext_set``)."""
    data = bytes(data)
    info = _ext_args(data, len(data), ext_id, value)
    element = info.find(ext_id)
    if element is None:
        _check_all_stored(info)
        raise _fail(Reason.EXT_NOT_FOUND, f"no extension element with id {ext_id}")
    if len(element.value) != len(value):
        raise _fail(Reason.EXT_LENGTH_MISMATCH, "the new value's length differs from the old")
    return _splice(data, element.offset, value)


def _store(data: bytes, cap: int, ext_id: int, value: bytes, replace_existing: bool) -> bytes:
    data = bytes(data)
    info = _ext_args(data, cap, ext_id, value)
    element = info.find(ext_id)
    if element is not None and not replace_existing:
        raise _fail(Reason.EXT_EXISTS, f"an extension element with id {ext_id} exists")
    if element is not None and len(element.value) == len(value):
        return _splice(data, element.offset, value)
    _check_all_stored(info)
    elements = [(e.id, e.value) for e in info.elements]
    if element is None:
        elements.append((ext_id, value))
    else:
        elements[info.elements.index(element)] = (ext_id, value)
    return _rebuild(data, cap, info, elements)


def ext_put(data: bytes, cap: int, ext_id: int, value: bytes) -> bytes:
    """Set an element to a value of any length, adding it if absent (``mw_rtp_ext_put``)."""
    return _store(data, cap, ext_id, value, True)


def ext_add(data: bytes, cap: int, ext_id: int, value: bytes) -> bytes:
    """Append a new element (``mw_rtp_ext_add``)."""
    return _store(data, cap, ext_id, value, False)


def ext_remap(data: bytes, cap: int, table: bytes) -> bytes:
    """Give each element the id ``table[id]``, removing those mapped to 0 (``mw_rtp_ext_remap``)."""
    data = bytes(data)
    _check(cap >= len(data) and len(table) == 256, "bad capacity or table")
    info = parse_header(data)
    if info.ext_form == ExtensionForm.NONE:
        return data
    if info.ext_form == ExtensionForm.OPAQUE:
        raise _fail(Reason.EXT_OPAQUE, "the extension block is not in an RFC 8285 form")
    _check_all_stored(info)
    two_byte = info.ext_form == ExtensionForm.TWO_BYTE
    new_ids = [table[e.id] for e in info.elements]
    if all(i != 0 and (two_byte or i <= 14) for i in new_ids):
        out = bytearray(data)
        for element, new_id in zip(info.elements, new_ids, strict=True):
            if two_byte:
                out[element.offset - 2] = new_id
            else:
                out[element.offset - 1] = new_id << 4 | (len(element.value) - 1)
        return bytes(out)
    kept = [(i, e.value) for e, i in zip(info.elements, new_ids, strict=True) if i != 0]
    return _rebuild(data, cap, info, kept)


def rtx_encapsulate(data: bytes, cap: int, ssrc: int, payload_type: int,
                    sequence_number: int) -> bytes:
    """RFC 4588 encapsulation (``mw_rtp_rtx_encapsulate``)."""
    data = bytes(data)
    _check(cap >= len(data) and 0 <= payload_type <= 127 and 0 <= sequence_number <= 0xFFFF,
           "bad capacity, payload type or sequence number")
    packet = RtpPacket.parse(data)
    if cap - len(data) < 2:
        raise _fail(Reason.NO_ROOM, "no room for the original sequence number")
    rtx = replace(packet, ssrc=ssrc, payload_type=payload_type, sequence_number=sequence_number,
                  payload=struct.pack("!H", packet.sequence_number) + packet.payload)
    return rtx.serialize()


def rtx_decapsulate(data: bytes, ssrc: int, payload_type: int) -> bytes:
    """RFC 4588 decapsulation (``mw_rtp_rtx_decapsulate``)."""
    data = bytes(data)
    _check(0 <= payload_type <= 127, "bad payload type")
    packet = RtpPacket.parse(data)
    if len(packet.payload) < 2:
        raise _fail(Reason.RTX_TOO_SHORT, "RTX payload has no original sequence number")
    (original,) = struct.unpack_from("!H", packet.payload)
    restored = replace(packet, ssrc=ssrc, payload_type=payload_type, sequence_number=original,
                       payload=packet.payload[2:])
    return restored.serialize()
