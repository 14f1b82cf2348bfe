"""STUN parse, MESSAGE-INTEGRITY check and binding response build: ``cffi_build/stun.h``.

STUN is control traffic (one request per ICE check), so these are single-message functions.
parse_stun raises StunParseError (a ValueError) whose ``reason`` is a StunReason, so the caller
counts the drop by reason. HMAC-SHA1 is computed here (RFC 2104 over hashlib's SHA-1, with the
keyed states cached per key, a bounded number); the C writes the message around it and
computes FINGERPRINT. Scratch structs and buffers are per thread (cffi releases the GIL during
the call).
"""

from __future__ import annotations

import hashlib as _stun_hashlib
import hmac as _stun_hmac
import socket as _stun_socket
import struct as _stun_struct
import threading as _stun_threading
import typing as _stun_typing
from enum import IntEnum
from typing import Any

from worker._fast._lib import Buffer, ffi, lib

STUN_METHOD_BINDING: int = lib.MW_STUN_METHOD_BINDING
_STUN_BUILD_MAX_BYTES: int = lib.MW_STUN_BUILD_MAX_BYTES
_STUN_REASON_MAX_BYTES: int = lib.MW_STUN_REASON_MAX_BYTES
_STUN_FAMILY_IPV4: int = lib.MW_STUN_FAMILY_IPV4
_STUN_FAMILY_IPV6: int = lib.MW_STUN_FAMILY_IPV6
_STUN_HAS_USERNAME: int = lib.MW_STUN_HAS_USERNAME
_STUN_HAS_PRIORITY: int = lib.MW_STUN_HAS_PRIORITY
_STUN_HAS_USE_CANDIDATE: int = lib.MW_STUN_HAS_USE_CANDIDATE
_STUN_HAS_ICE_CONTROLLING: int = lib.MW_STUN_HAS_ICE_CONTROLLING
_STUN_HAS_ICE_CONTROLLED: int = lib.MW_STUN_HAS_ICE_CONTROLLED
_STUN_HAS_NOMINATION: int = lib.MW_STUN_HAS_NOMINATION
_STUN_HAS_ERROR_CODE: int = lib.MW_STUN_HAS_ERROR_CODE
_STUN_HAS_XOR_MAPPED_ADDRESS: int = lib.MW_STUN_HAS_XOR_MAPPED_ADDRESS
_STUN_HAS_MESSAGE_INTEGRITY: int = lib.MW_STUN_HAS_MESSAGE_INTEGRITY
_STUN_HAS_FINGERPRINT: int = lib.MW_STUN_HAS_FINGERPRINT
_STUN_HMAC_CACHE_MAX_KEYS = 1024


class StunClass(IntEnum):
    """The class of a STUN message (the C1 and C0 bits of its type)."""

    REQUEST = lib.MW_STUN_CLASS_REQUEST
    INDICATION = lib.MW_STUN_CLASS_INDICATION
    SUCCESS = lib.MW_STUN_CLASS_SUCCESS
    ERROR = lib.MW_STUN_CLASS_ERROR


class StunReason(IntEnum):
    """Why a datagram is not a well-formed STUN message (``enum mw_stun_reason``)."""

    TOO_SHORT = lib.MW_STUN_TOO_SHORT
    NOT_STUN = lib.MW_STUN_NOT_STUN
    BAD_COOKIE = lib.MW_STUN_BAD_COOKIE
    UNALIGNED_LENGTH = lib.MW_STUN_UNALIGNED_LENGTH
    LENGTH_MISMATCH = lib.MW_STUN_LENGTH_MISMATCH
    ATTR_TRUNCATED = lib.MW_STUN_ATTR_TRUNCATED
    ATTR_BAD_LENGTH = lib.MW_STUN_ATTR_BAD_LENGTH
    ATTR_BAD_VALUE = lib.MW_STUN_ATTR_BAD_VALUE
    FINGERPRINT_NOT_LAST = lib.MW_STUN_FINGERPRINT_NOT_LAST


_STUN_REASON_SENTENCES: dict[StunReason, str] = {
    StunReason.TOO_SHORT: "it is shorter than the 20-byte STUN header",
    StunReason.NOT_STUN: "the two top bits of its type are not zero",
    StunReason.BAD_COOKIE: "its magic cookie is not 0x2112A442",
    StunReason.UNALIGNED_LENGTH: "its header length is not a multiple of 4",
    StunReason.LENGTH_MISMATCH: "its header length does not match the datagram",
    StunReason.ATTR_TRUNCATED: "an attribute runs past the end of the message",
    StunReason.ATTR_BAD_LENGTH: "a known attribute has a length its definition forbids",
    StunReason.ATTR_BAD_VALUE: "a known attribute has a value its definition forbids",
    StunReason.FINGERPRINT_NOT_LAST: "an attribute follows FINGERPRINT",
}
_STUN_CLASSES: tuple[StunClass, ...] = tuple(StunClass)
_STUN_REASONS: dict[int, StunReason] = {int(reason): reason for reason in StunReason}


class StunParseError(ValueError):
    """The peer sent a datagram that is not a well-formed STUN message."""

    def __init__(self, reason: StunReason) -> None:
        super().__init__(f"malformed STUN message from the peer: "
                         f"{_STUN_REASON_SENTENCES[reason]}")
        self.reason = reason


class StunMessageView(_stun_typing.NamedTuple):
    """What ``parse_stun`` found, detached from the datagram. An absent attribute is None (False
    for the flags). ``integrity_offset`` is where MESSAGE-INTEGRITY starts: the HMAC input end."""

    method: int
    message_class: StunClass
    transaction_id: bytes
    username: bytes | None
    priority: int | None
    use_candidate: bool
    ice_controlling: int | None
    ice_controlled: int | None
    nomination: int | None
    error_code: int | None
    error_reason: str | None
    xor_mapped_address: tuple[str, int] | None
    integrity_offset: int | None
    fingerprint_present: bool
    fingerprint_valid: bool

    @property
    def username_text(self) -> str | None:
        """USERNAME as text (UTF-8; invalid sequences replaced)."""
        return None if self.username is None else self.username.decode("utf-8", "replace")


def _stun_fields_struct() -> _stun_struct.Struct:
    """A struct.Struct that reads ``struct mw_stun_message`` in one call, checked field by field
    against the compiled layout (a mismatch is a build bug and fails the import)."""
    fields = [("ice_controlling", "Q"), ("ice_controlled", "Q"), ("present", "I"),
              ("priority", "I"), ("nomination", "I"), ("username_offset", "I"),
              ("username_length", "I"), ("error_reason_offset", "I"),
              ("error_reason_length", "I"), ("integrity_offset", "I"),
              ("fingerprint_offset", "I"), ("method", "H"), ("message_class", "H"),
              ("error_code", "H"), ("mapped_port", "H"), ("mapped_family", "B"),
              ("fingerprint_valid", "B"), ("mapped_address", "16s")]
    fmt = "="
    for name, code in fields:
        if _stun_struct.calcsize(fmt) != ffi.offsetof("struct mw_stun_message", name):
            raise ImportError(f"struct mw_stun_message.{name} is not where the facade reads it")
        fmt += code
    return _stun_struct.Struct(fmt)


_STUN_FIELDS = _stun_fields_struct()
_stun_local = _stun_threading.local()
_stun_hmac_states: dict[bytes, tuple[Any, Any]] = {}


def _stun_scratch() -> tuple[Any, Any]:
    """This thread's reusable parse result struct and a buffer over it."""
    try:
        scratch: tuple[Any, Any] = _stun_local.parse
    except AttributeError:
        msg = ffi.new("struct mw_stun_message *")
        scratch = _stun_local.parse = (msg, ffi.buffer(msg))
    return scratch


def parse_stun(buf: Buffer) -> StunMessageView:
    """Parse one whole STUN message (a datagram, or one RFC 4571 frame) of bytes.

    Raises ``StunParseError`` (a ``ValueError``) with a ``StunReason`` when it is malformed. A
    wrong FINGERPRINT is not a parse error: ``fingerprint_valid`` is False and the caller drops
    the message. MESSAGE-INTEGRITY is checked by ``check_message_integrity``, since the key
    depends on the USERNAME.
    """
    msg, raw = _stun_scratch()
    if type(buf) is bytes:
        data = buf
        rc = lib.mw_stun_parse(buf, len(buf), msg)
    else:
        data = bytes(buf)
        rc = lib.mw_stun_parse(data, len(data), msg)
    if rc:
        raise StunParseError(_STUN_REASONS[rc])
    (controlling, controlled, present, priority, nomination, user_off, user_len, reason_off,
     reason_len, integrity_off, _, method, klass, code, port, family, fingerprint_ok,
     address) = _STUN_FIELDS.unpack_from(raw)
    mapped = None
    if present & _STUN_HAS_XOR_MAPPED_ADDRESS:
        if family == _STUN_FAMILY_IPV4:
            mapped = (_stun_socket.inet_ntop(_stun_socket.AF_INET, address[:4]), port)
        else:
            mapped = (_stun_socket.inet_ntop(_stun_socket.AF_INET6, address), port)
    has_error = present & _STUN_HAS_ERROR_CODE
    return tuple.__new__(StunMessageView, (
        method,
        _STUN_CLASSES[klass],
        data[8:20],
        data[user_off:user_off + user_len] if present & _STUN_HAS_USERNAME else None,
        priority if present & _STUN_HAS_PRIORITY else None,
        bool(present & _STUN_HAS_USE_CANDIDATE),
        controlling if present & _STUN_HAS_ICE_CONTROLLING else None,
        controlled if present & _STUN_HAS_ICE_CONTROLLED else None,
        nomination if present & _STUN_HAS_NOMINATION else None,
        code if has_error else None,
        data[reason_off:reason_off + reason_len].decode("utf-8", "replace") if has_error else None,
        mapped,
        integrity_off if present & _STUN_HAS_MESSAGE_INTEGRITY else None,
        bool(present & _STUN_HAS_FINGERPRINT),
        bool(present & _STUN_HAS_FINGERPRINT and fingerprint_ok),
    ))


def _stun_key(password: str | bytes) -> bytes:
    """The short-term credential key: the ICE password's bytes (ICE passwords are ASCII, which
    SASLprep leaves unchanged)."""
    if isinstance(password, str):
        return password.encode("utf-8")
    if isinstance(password, bytes | bytearray):
        return bytes(password)
    raise TypeError(f"STUN password must be str or bytes, not {type(password).__name__}")


_STUN_HMAC_INNER_PAD = bytes(x ^ 0x36 for x in range(256))
_STUN_HMAC_OUTER_PAD = bytes(x ^ 0x5C for x in range(256))


def _stun_hmac_sha1(key: bytes, data: Buffer) -> bytes:
    """HMAC-SHA1 (RFC 2104) from cached keyed SHA-1 states: keying costs more than hashing a
    STUN message, and an ICE session uses one key for every message."""
    states = _stun_hmac_states.get(key)
    if states is None:
        block = (_stun_hashlib.sha1(key).digest() if len(key) > 64 else key).ljust(64, b"\0")
        states = (_stun_hashlib.sha1(block.translate(_STUN_HMAC_INNER_PAD)),
                  _stun_hashlib.sha1(block.translate(_STUN_HMAC_OUTER_PAD)))
        if len(_stun_hmac_states) >= _STUN_HMAC_CACHE_MAX_KEYS:
            _stun_hmac_states.pop(next(iter(_stun_hmac_states)), None)
        _stun_hmac_states[key] = states
    inner = states[0].copy()
    inner.update(data)
    outer = states[1].copy()
    outer.update(inner.digest())
    return outer.digest()


def check_message_integrity(buf: Buffer, parsed: StunMessageView, key: str | bytes) -> bool:
    """Whether ``buf`` (the datagram ``parsed`` came from) carries a MESSAGE-INTEGRITY made with
    ``key`` (RFC 5389 15.4: HMAC-SHA1 of the message up to the attribute, the header length
    counting through it). Compared in constant time; False when the message has none."""
    offset = parsed.integrity_offset
    if offset is None or offset + 24 > len(buf):
        return False
    signed = bytearray(buf[:offset])
    signed[2:4] = (offset + 24 - 20).to_bytes(2, "big")
    mac = _stun_hmac_sha1(_stun_key(key), signed)
    return _stun_hmac.compare_digest(mac, bytes(buf[offset + 4:offset + 24]))


def _stun_transaction_id(transaction_id: bytes) -> bytes:
    if not isinstance(transaction_id, bytes | bytearray):
        raise TypeError("STUN transaction id must be bytes")
    if len(transaction_id) != 12:
        raise ValueError(f"STUN transaction id is {len(transaction_id)} bytes, not 12")
    return bytes(transaction_id)


def _stun_out() -> tuple[bytearray, Any]:
    """This thread's reusable output buffer for the builders, and its cdata view."""
    try:
        out: tuple[bytearray, Any] = _stun_local.out
    except AttributeError:
        buf = bytearray(_STUN_BUILD_MAX_BYTES)
        out = _stun_local.out = (buf, ffi.from_buffer(buf))
    return out


def _stun_finish(out: bytearray, cout: Any, off: int, key: bytes | None) -> bytes:
    """Step 2 of a build: HMAC over out[:off] here, then MESSAGE-INTEGRITY and FINGERPRINT
    written by the C."""
    if off < 0:
        raise ValueError(f"STUN builder refused its arguments (code {off})")
    if key is None:
        end = lib.mw_stun_build_finish(cout, len(out), off, ffi.NULL)
    else:
        with memoryview(out) as view:
            mac = _stun_hmac_sha1(key, view[:off])
        end = lib.mw_stun_build_finish(cout, len(out), off, mac)
    if end < 0:
        raise ValueError(f"STUN builder refused its arguments (code {end})")
    return bytes(out[:end])


def build_binding_success(transaction_id: bytes, address: str, port: int,
                          password: str | bytes) -> bytes:
    """A Binding success response to the request with ``transaction_id``: XOR-MAPPED-ADDRESS
    (``address`` is IPv4 or IPv6 text), MESSAGE-INTEGRITY keyed by ``password``, FINGERPRINT."""
    tid = _stun_transaction_id(transaction_id)
    key = _stun_key(password)
    if not isinstance(port, int) or not 0 <= port <= 0xFFFF:
        raise ValueError(f"port {port!r} is not an integer from 0 to 65535")
    try:
        if ":" in address:
            family = _STUN_FAMILY_IPV6
            packed = _stun_socket.inet_pton(_stun_socket.AF_INET6, address)
        else:
            family = _STUN_FAMILY_IPV4
            packed = _stun_socket.inet_pton(_stun_socket.AF_INET, address)
    except (OSError, TypeError) as exc:
        raise ValueError(f"{address!r} is not an IPv4 or IPv6 address") from exc
    out, cout = _stun_out()
    off = lib.mw_stun_build_binding_success(cout, len(out), tid, family, packed, port)
    return _stun_finish(out, cout, off, key)


def build_binding_error(transaction_id: bytes, code: int, reason: str,
                        password: str | bytes | None, method: int = 0x001) -> bytes:
    """An error response: ERROR-CODE (``code`` 300-699, ``reason`` at most 763 bytes of
    UTF-8), MESSAGE-INTEGRITY when a password is given, FINGERPRINT. ``method`` is the
    request's (Binding unless given), as RFC 5389 7.3.1 answers."""
    tid = _stun_transaction_id(transaction_id)
    key = None if password is None else _stun_key(password)
    if not isinstance(code, int) or not 300 <= code <= 699:
        raise ValueError(f"STUN error code {code!r} is not an integer from 300 to 699")
    phrase = reason.encode("utf-8")
    if len(phrase) > _STUN_REASON_MAX_BYTES:
        raise ValueError(f"STUN reason phrase is {len(phrase)} bytes, more than 763")
    out, cout = _stun_out()
    if not isinstance(method, int) or not 0 <= method <= 0xFFF:
        raise ValueError(f"STUN method {method!r} is not an integer from 0 to 0xFFF")
    off = lib.mw_stun_build_error_response(cout, len(out), tid, method, code, phrase,
                                           len(phrase))
    return _stun_finish(out, cout, off, key)


def stun_crc32(data: Buffer) -> int:
    """CRC-32 (zlib's) of ``data``, as the C computes it for FINGERPRINT."""
    cdata = ffi.from_buffer(data)
    return int(lib.mw_stun_crc32(cdata, len(cdata)))
