"""Pure-Python reference for STUN parse and build (RFC 5389/8489, ICE attributes of RFC 8445).

This is the specification the C in ``cffi_build/stun.c`` is tested against: written for clarity,
not speed, and independent of it (``zlib`` computes the CRC-32, ``ipaddress`` formats addresses).
One table of attribute codecs drives both parse and build. A malformed message raises
``StunFormatError`` whose ``reason`` is the same ``StunReason`` number the C returns, checked in
the same order, so the differential tests can compare the two on any input.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, NamedTuple

COOKIE = 0x2112A442
FINGERPRINT_XOR = 0x5354554E
HEADER_BYTES = 20
INTEGRITY_BYTES = 20
USERNAME_MAX_BYTES = 512
REASON_MAX_BYTES = 763
METHOD_BINDING = 0x001

USERNAME = 0x0006
MESSAGE_INTEGRITY = 0x0008
ERROR_CODE = 0x0009
XOR_MAPPED_ADDRESS = 0x0020
PRIORITY = 0x0024
USE_CANDIDATE = 0x0025
SOFTWARE = 0x8022
FINGERPRINT = 0x8028
ICE_CONTROLLED = 0x8029
ICE_CONTROLLING = 0x802A
NOMINATION = 0xC001

_HEADER = struct.Struct("!HHI12s")
_ATTR_HEADER = struct.Struct("!HH")


class StunReason(IntEnum):
    """Why a message is malformed; the numbers of ``enum mw_stun_reason`` in ``stun.h``."""

    OK = 0
    TOO_SHORT = 1
    NOT_STUN = 2
    BAD_COOKIE = 3
    UNALIGNED_LENGTH = 4
    LENGTH_MISMATCH = 5
    ATTR_TRUNCATED = 6
    ATTR_BAD_LENGTH = 7
    ATTR_BAD_VALUE = 8
    FINGERPRINT_NOT_LAST = 9


class StunClass(IntEnum):
    """The class of a message: the C1 and C0 bits of its type."""

    REQUEST = 0
    INDICATION = 1
    SUCCESS = 2
    ERROR = 3


class StunFormatError(ValueError):
    """The peer sent bytes that are not a well-formed STUN message."""

    def __init__(self, reason: StunReason, sentence: str) -> None:
        super().__init__(sentence)
        self.reason = reason


class ErrorCode(NamedTuple):
    """The value of ERROR-CODE: a code from 300 to 699 and its reason phrase (UTF-8 bytes)."""

    code: int
    reason: bytes


# ---- attribute codecs ----------------------------------------------------------------------

Unpack = Callable[[bytes, bytes], Any]  # (value, transaction_id) -> decoded value
Pack = Callable[[Any, bytes], bytes]  # (decoded value, transaction_id) -> value bytes


def _bad_length(name: str, length: int, expected: str) -> StunFormatError:
    return StunFormatError(StunReason.ATTR_BAD_LENGTH,
                           f"{name} attribute is {length} bytes long, expected {expected}")


def _fixed_uint(name: str, size: int) -> tuple[Unpack, Pack]:
    def unpack(value: bytes, tid: bytes) -> int:
        if len(value) != size:
            raise _bad_length(name, len(value), str(size))
        return int.from_bytes(value, "big")

    def pack(value: int, tid: bytes) -> bytes:
        return value.to_bytes(size, "big")

    return unpack, pack


def _unpack_username(value: bytes, tid: bytes) -> bytes:
    if len(value) > USERNAME_MAX_BYTES:
        raise _bad_length("USERNAME", len(value), f"at most {USERNAME_MAX_BYTES}")
    return value


def _unpack_integrity(value: bytes, tid: bytes) -> bytes:
    if len(value) != INTEGRITY_BYTES:
        raise _bad_length("MESSAGE-INTEGRITY", len(value), str(INTEGRITY_BYTES))
    return value


def _unpack_flag(value: bytes, tid: bytes) -> bool:
    if value:
        raise _bad_length("USE-CANDIDATE", len(value), "0")
    return True


def _pack_flag(value: bool, tid: bytes) -> bytes:
    return b""


def _unpack_error_code(value: bytes, tid: bytes) -> ErrorCode:
    if not 4 <= len(value) <= 4 + REASON_MAX_BYTES:
        raise _bad_length("ERROR-CODE", len(value), f"4 to {4 + REASON_MAX_BYTES}")
    klass, number = value[2] & 0x07, value[3]
    if not 3 <= klass <= 6 or number > 99:
        raise StunFormatError(StunReason.ATTR_BAD_VALUE,
                              f"ERROR-CODE has class {klass} and number {number}, outside 300-699")
    return ErrorCode(klass * 100 + number, value[4:])


def _pack_error_code(value: ErrorCode, tid: bytes) -> bytes:
    return bytes([0, 0, value.code // 100, value.code % 100]) + value.reason


def _xor_pad(tid: bytes) -> bytes:
    return COOKIE.to_bytes(4, "big") + tid


def _unpack_xor_address(value: bytes, tid: bytes) -> tuple[str, int]:
    if len(value) < 4:
        raise _bad_length("XOR-MAPPED-ADDRESS", len(value), "at least 4")
    family = value[1]
    if family not in (1, 2):
        raise StunFormatError(StunReason.ATTR_BAD_VALUE,
                              f"XOR-MAPPED-ADDRESS has address family {family}, not 1 or 2")
    size = 4 if family == 1 else 16
    if len(value) != 4 + size:
        raise _bad_length("XOR-MAPPED-ADDRESS", len(value), str(4 + size))
    port = int.from_bytes(value[2:4], "big") ^ (COOKIE >> 16)
    packed = bytes(a ^ b for a, b in zip(value[4:], _xor_pad(tid), strict=False))
    return str(ipaddress.ip_address(packed)), port


def _pack_xor_address(value: tuple[str, int], tid: bytes) -> bytes:
    host, port = value
    packed = ipaddress.ip_address(host).packed
    family = 1 if len(packed) == 4 else 2
    xored = bytes(a ^ b for a, b in zip(packed, _xor_pad(tid), strict=False))
    return bytes([0, family]) + (port ^ (COOKIE >> 16)).to_bytes(2, "big") + xored


def _unpack_fingerprint(value: bytes, tid: bytes) -> int:
    if len(value) != 4:
        raise _bad_length("FINGERPRINT", len(value), "4")
    return int.from_bytes(value, "big")


def _raw(value: bytes, tid: bytes) -> bytes:
    return value


class AttributeCodec(NamedTuple):
    """How one attribute type is decoded and encoded."""

    type: int
    name: str
    unpack: Unpack
    pack: Pack


ATTRIBUTES: tuple[AttributeCodec, ...] = (
    AttributeCodec(USERNAME, "USERNAME", _unpack_username, _raw),
    AttributeCodec(MESSAGE_INTEGRITY, "MESSAGE-INTEGRITY", _unpack_integrity, _raw),
    AttributeCodec(ERROR_CODE, "ERROR-CODE", _unpack_error_code, _pack_error_code),
    AttributeCodec(XOR_MAPPED_ADDRESS, "XOR-MAPPED-ADDRESS", _unpack_xor_address,
                   _pack_xor_address),
    AttributeCodec(PRIORITY, "PRIORITY", *_fixed_uint("PRIORITY", 4)),
    AttributeCodec(USE_CANDIDATE, "USE-CANDIDATE", _unpack_flag, _pack_flag),
    AttributeCodec(SOFTWARE, "SOFTWARE", _raw, _raw),
    AttributeCodec(FINGERPRINT, "FINGERPRINT", _unpack_fingerprint,
                   lambda value, tid: value.to_bytes(4, "big")),
    AttributeCodec(ICE_CONTROLLED, "ICE-CONTROLLED", *_fixed_uint("ICE-CONTROLLED", 8)),
    AttributeCodec(ICE_CONTROLLING, "ICE-CONTROLLING", *_fixed_uint("ICE-CONTROLLING", 8)),
    AttributeCodec(NOMINATION, "NOMINATION", *_fixed_uint("NOMINATION", 4)),
)
CODECS: dict[int, AttributeCodec] = {codec.type: codec for codec in ATTRIBUTES}
_UNKNOWN = AttributeCodec(-1, "unknown", _raw, _raw)


# ---- message -------------------------------------------------------------------------------


def _split_type(message_type: int) -> tuple[int, StunClass]:
    method = (message_type & 0x000F) | ((message_type & 0x00E0) >> 1) | \
        ((message_type & 0x3E00) >> 2)
    klass = ((message_type >> 4) & 1) | ((message_type >> 7) & 2)
    return method, StunClass(klass)


def _join_type(method: int, klass: StunClass) -> int:
    return (method & 0x000F) | ((method & 0x0070) << 1) | ((method & 0x0F80) << 2) | \
        ((klass & 1) << 4) | ((klass & 2) << 7)


def fingerprint_of(data: bytes) -> int:
    """The FINGERPRINT value for ``data``, the message up to that attribute (RFC 5389 15.5)."""
    return zlib.crc32(data) ^ FINGERPRINT_XOR


def integrity_of(data: bytes, key: bytes) -> bytes:
    """HMAC-SHA1 of ``data`` (the message up to MESSAGE-INTEGRITY) with the header length made to
    end right after MESSAGE-INTEGRITY (RFC 5389 15.4)."""
    adjusted = data[:2] + struct.pack("!H", len(data) + 24 - HEADER_BYTES) + data[4:]
    return hmac.new(key, adjusted, hashlib.sha1).digest()


@dataclass
class StunMessage:
    """One STUN message. ``attributes`` maps attribute type to decoded value, in wire order, first
    occurrence only; unknown types keep their raw bytes. The parse-only fields say where
    MESSAGE-INTEGRITY and FINGERPRINT were and whether the fingerprint matched."""

    method: int
    message_class: StunClass
    transaction_id: bytes
    attributes: dict[int, Any] = field(default_factory=dict)
    integrity_offset: int | None = field(default=None, compare=False)
    fingerprint_offset: int | None = field(default=None, compare=False)
    fingerprint_valid: bool | None = field(default=None, compare=False)

    def build(self, integrity_key: bytes | None = None, fingerprint: bool = True) -> bytes:
        """The wire form: every attribute but MESSAGE-INTEGRITY and FINGERPRINT in order, zero
        padded, then MESSAGE-INTEGRITY (when a key is given) and FINGERPRINT (when asked)."""
        body = bytearray()
        for attr_type, value in self.attributes.items():
            if attr_type in (MESSAGE_INTEGRITY, FINGERPRINT):
                continue
            encoded = CODECS.get(attr_type, _UNKNOWN).pack(value, self.transaction_id)
            body += _ATTR_HEADER.pack(attr_type, len(encoded)) + encoded
            body += bytes(-len(encoded) % 4)
        message_type = _join_type(self.method, self.message_class)
        data = _HEADER.pack(message_type, len(body), COOKIE, self.transaction_id) + bytes(body)
        if integrity_key is not None:
            mac = integrity_of(data, integrity_key)
            data = _set_length(data + _ATTR_HEADER.pack(MESSAGE_INTEGRITY, 20) + mac)
        if fingerprint:
            data = _set_length(data, extra=8)
            data += _ATTR_HEADER.pack(FINGERPRINT, 4) + fingerprint_of(data).to_bytes(4, "big")
        return data


def _set_length(data: bytes, extra: int = 0) -> bytes:
    return data[:2] + struct.pack("!H", len(data) + extra - HEADER_BYTES) + data[4:]


def _check_header(data: bytes) -> None:
    if len(data) < HEADER_BYTES:
        raise StunFormatError(StunReason.TOO_SHORT,
                              f"STUN message is {len(data)} bytes, shorter than its 20-byte header")
    if data[0] & 0xC0:
        raise StunFormatError(StunReason.NOT_STUN,
                              f"first byte 0x{data[0]:02x} has its two top bits set: not STUN")
    _, length, cookie, _ = _HEADER.unpack_from(data)
    if cookie != COOKIE:
        raise StunFormatError(StunReason.BAD_COOKIE, f"magic cookie is 0x{cookie:08x}")
    if length % 4:
        raise StunFormatError(StunReason.UNALIGNED_LENGTH,
                              f"header length {length} is not a multiple of 4")
    if HEADER_BYTES + length != len(data):
        raise StunFormatError(StunReason.LENGTH_MISMATCH,
                              f"header length {length} does not match the {len(data)}-byte "
                              "datagram")


def parse_message(data: bytes) -> StunMessage:
    """Parse one whole STUN message; raise ``StunFormatError`` when it is malformed."""
    data = bytes(data)
    _check_header(data)
    message_type, _, _, tid = _HEADER.unpack_from(data)
    method, klass = _split_type(message_type)
    message = StunMessage(method, klass, tid)
    pos = HEADER_BYTES
    while pos < len(data):
        if len(data) - pos < 4:
            raise StunFormatError(StunReason.ATTR_TRUNCATED,
                                  f"attribute header at offset {pos} is cut short")
        attr_type, length = _ATTR_HEADER.unpack_from(data, pos)
        if length > len(data) - pos - 4:
            raise StunFormatError(StunReason.ATTR_TRUNCATED,
                                  f"attribute 0x{attr_type:04x} of {length} bytes at offset {pos}"
                                  " runs past the message")
        if message.fingerprint_offset is not None:
            raise StunFormatError(StunReason.FINGERPRINT_NOT_LAST,
                                  f"attribute 0x{attr_type:04x} follows FINGERPRINT")
        after_integrity = message.integrity_offset is not None
        if attr_type not in message.attributes and (
                not after_integrity or attr_type == FINGERPRINT):
            value = data[pos + 4:pos + 4 + length]
            message.attributes[attr_type] = CODECS.get(attr_type, _UNKNOWN).unpack(value, tid)
            if attr_type == MESSAGE_INTEGRITY:
                message.integrity_offset = pos
            elif attr_type == FINGERPRINT:
                message.fingerprint_offset = pos
                message.fingerprint_valid = (message.attributes[FINGERPRINT]
                                             == fingerprint_of(data[:pos]))
        pos += 4 + length + (-length % 4)
    return message


def check_message_integrity(data: bytes, message: StunMessage, key: bytes) -> bool:
    """Whether ``data`` (the bytes ``message`` was parsed from) carries a MESSAGE-INTEGRITY that
    ``key`` produced."""
    offset = message.integrity_offset
    if offset is None:
        return False
    return hmac.compare_digest(integrity_of(bytes(data[:offset]), key),
                               message.attributes[MESSAGE_INTEGRITY])


def binding_success(transaction_id: bytes, host: str, port: int, key: bytes) -> bytes:
    """A Binding success response: XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY, FINGERPRINT."""
    message = StunMessage(METHOD_BINDING, StunClass.SUCCESS, transaction_id,
                          {XOR_MAPPED_ADDRESS: (host, port)})
    return message.build(key)


def binding_error(transaction_id: bytes, code: int, reason: str, key: bytes | None) -> bytes:
    """A Binding error response: ERROR-CODE, MESSAGE-INTEGRITY when a key is given, FINGERPRINT."""
    message = StunMessage(METHOD_BINDING, StunClass.ERROR, transaction_id,
                          {ERROR_CODE: ErrorCode(code, reason.encode())})
    return message.build(key)
