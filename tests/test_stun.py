"""STUN: the C parser and builders (through ``worker._fast``) against the pure-Python reference.

Every fixture in ``tests/fixtures/stun/`` and every generated message, valid or mutated, must give
the same outcome on both sides: the same fields when valid, the same ``StunReason`` when not.
"""

from __future__ import annotations

import hashlib
import ipaddress
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.reference import stun as ref
from worker import _fast
from worker._fast import (
    StunClass,
    StunMessageView,
    StunParseError,
    StunReason,
    build_binding_error,
    build_binding_success,
    check_message_integrity,
    parse_stun,
)
from worker._fast import stun as _fast_stun

FIXTURES = Path(__file__).parent / "fixtures" / "stun"
FIXTURE_FILES = sorted(FIXTURES.glob("*.bin"))
RFC5769_PASSWORD = "VOkJxbRl1RmTxUk/WvJxBt"
DOC_PASSWORD = "doc-ice-password-0123456"
RFC5769_LONG_TERM_KEY = hashlib.md5("マトリックス:example.org:TheMatrIX".encode()).digest()


# ---- differential helpers ------------------------------------------------------------------


def _normal_address(value: tuple[str, int] | None) -> tuple[Any, int] | None:
    return None if value is None else (ipaddress.ip_address(value[0]), value[1])


def expected_view(message: ref.StunMessage) -> StunMessageView:
    """The view the facade should return for a message the reference parsed."""
    attrs = message.attributes
    error = attrs.get(ref.ERROR_CODE)
    return StunMessageView(
        method=message.method,
        message_class=StunClass(message.message_class),
        transaction_id=message.transaction_id,
        username=attrs.get(ref.USERNAME),
        priority=attrs.get(ref.PRIORITY),
        use_candidate=ref.USE_CANDIDATE in attrs,
        ice_controlling=attrs.get(ref.ICE_CONTROLLING),
        ice_controlled=attrs.get(ref.ICE_CONTROLLED),
        nomination=attrs.get(ref.NOMINATION),
        error_code=None if error is None else error.code,
        error_reason=None if error is None else error.reason.decode("utf-8", "replace"),
        xor_mapped_address=attrs.get(ref.XOR_MAPPED_ADDRESS),
        integrity_offset=message.integrity_offset,
        fingerprint_present=message.fingerprint_offset is not None,
        fingerprint_valid=bool(message.fingerprint_valid),
    )


def differential(data: bytes) -> StunMessageView | StunReason:
    """Parse with both sides; they must agree. Returns the view, or the reason both refused."""
    try:
        message = ref.parse_message(data)
    except ref.StunFormatError as exc:
        with pytest.raises(StunParseError) as caught:
            parse_stun(data)
        assert int(caught.value.reason) == int(exc.reason), (data.hex(), exc)
        assert caught.value.reason.name == exc.reason.name
        return caught.value.reason
    view = parse_stun(data)
    expected = expected_view(message)
    normal = expected._replace(xor_mapped_address=_normal_address(expected.xor_mapped_address))
    got = view._replace(xor_mapped_address=_normal_address(view.xor_mapped_address))
    assert got == normal, data.hex()
    # The facade also accepts bytearray and memoryview.
    assert parse_stun(bytearray(data)) == view
    assert parse_stun(memoryview(data)) == view
    return view


def accepted(data: bytes, key: bytes) -> bool:
    """Whether a receiver would accept ``data``: well formed, valid FINGERPRINT and integrity."""
    try:
        view = parse_stun(data)
    except StunParseError:
        return False
    return view.fingerprint_valid and check_message_integrity(data, view, key)


# ---- strategies ----------------------------------------------------------------------------

transaction_ids = st.binary(min_size=12, max_size=12)
ipv4 = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
ipv6 = st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n)))
addresses = st.one_of(ipv4, ipv6)
ports = st.integers(0, 0xFFFF)
passwords = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1,
                    max_size=32)
reasons = st.text(max_size=200).filter(lambda text: len(text.encode()) <= ref.REASON_MAX_BYTES)
error_codes = st.integers(300, 699)
KNOWN_TYPES = set(ref.CODECS)
unknown_types = st.integers(0, 0xFFFF).filter(lambda t: t not in KNOWN_TYPES)

attribute_values: dict[int, st.SearchStrategy[Any]] = {
    ref.USERNAME: st.binary(max_size=ref.USERNAME_MAX_BYTES),
    ref.PRIORITY: st.integers(0, 2**32 - 1),
    ref.USE_CANDIDATE: st.just(True),
    ref.ICE_CONTROLLING: st.integers(0, 2**64 - 1),
    ref.ICE_CONTROLLED: st.integers(0, 2**64 - 1),
    ref.NOMINATION: st.integers(0, 2**32 - 1),
    ref.ERROR_CODE: st.builds(ref.ErrorCode, error_codes, st.binary(max_size=100)),
    ref.XOR_MAPPED_ADDRESS: st.tuples(addresses, ports),
    ref.SOFTWARE: st.binary(max_size=40),
}


@st.composite
def messages(draw: st.DrawFn) -> tuple[ref.StunMessage, bytes | None, bool]:
    """A valid message (reference value type), its integrity key or None, and whether it ends
    with FINGERPRINT."""
    method = draw(st.one_of(st.just(ref.METHOD_BINDING), st.integers(0, 0xFFF)))
    klass = draw(st.sampled_from(list(ref.StunClass)))
    kinds = draw(st.lists(st.sampled_from(sorted(attribute_values)), unique=True, max_size=9))
    attrs: dict[int, Any] = {kind: draw(attribute_values[kind]) for kind in kinds}
    for attr_type in draw(st.lists(unknown_types, unique=True, max_size=3)):
        attrs[attr_type] = draw(st.binary(max_size=24))
    key = draw(st.one_of(st.none(), passwords.map(str.encode), st.binary(max_size=100)))
    message = ref.StunMessage(method, ref.StunClass(klass), draw(transaction_ids), attrs)
    return message, key, draw(st.booleans())


@st.composite
def attribute_soup(draw: st.DrawFn) -> bytes:
    """A header with the right cookie and length over attributes of known and unknown types with
    arbitrary values and lengths (which may lie): reaches every check of the attribute walk."""
    body = bytearray()
    for _ in range(draw(st.integers(0, 8))):
        attr_type = draw(st.one_of(st.sampled_from(sorted(KNOWN_TYPES)), unknown_types))
        size = draw(st.one_of(st.sampled_from([0, 4, 8, 20]), st.integers(0, 28)))
        value = draw(st.binary(min_size=size, max_size=size))
        lies = draw(st.integers(0, 7)) == 0
        length = draw(st.integers(0, 0xFFFF)) if lies else size
        body += struct.pack("!HH", attr_type, length) + value + bytes(-len(value) % 4)
    message_type = draw(st.integers(0, 0x3FFF))
    return (struct.pack("!HHI", message_type, len(body), ref.COOKIE) + draw(transaction_ids)
            + bytes(body))


# ---- fixtures ------------------------------------------------------------------------------


def test_fixture_directory_has_the_rfc_vectors() -> None:
    names = {path.name for path in FIXTURE_FILES}
    assert {"rfc_5769_sample_request.bin", "rfc_5769_ipv4_response.bin",
            "rfc_5769_ipv6_response.bin", "rfc_5769_long_term_request.bin"} <= names


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda path: path.name)
def test_fixture_parses_the_same_on_both_sides(path: Path) -> None:
    data = path.read_bytes()
    view = differential(data)
    assert isinstance(view, StunMessageView), f"{path.name} is refused: {view!r}"
    assert view.transaction_id == data[8:20]
    if view.fingerprint_present:
        assert view.fingerprint_valid


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda path: path.name)
def test_fixture_prefixes_and_trailing_bytes_are_refused_alike(path: Path) -> None:
    data = path.read_bytes()
    for end in range(len(data)):
        reason = differential(data[:end])
        assert isinstance(reason, StunReason)
    assert differential(data + b"\x00\x00\x00\x00") is StunReason.LENGTH_MISMATCH
    assert differential(data + b"\x01") is StunReason.LENGTH_MISMATCH


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda path: path.name)
def test_fixture_rebuilds_through_the_reference(path: Path) -> None:
    data = path.read_bytes()
    message = ref.parse_message(data)
    rebuilt = ref.parse_message(message.build(None, fingerprint=False))
    assert rebuilt == _without_checks(message)


def _without_checks(message: ref.StunMessage) -> ref.StunMessage:
    attrs = {k: v for k, v in message.attributes.items()
             if k not in (ref.MESSAGE_INTEGRITY, ref.FINGERPRINT)}
    return ref.StunMessage(message.method, message.message_class, message.transaction_id, attrs)


# ---- RFC 5769 test vectors -----------------------------------------------------------------


def test_rfc5769_sample_request() -> None:
    data = (FIXTURES / "rfc_5769_sample_request.bin").read_bytes()
    view = parse_stun(data)
    assert (view.method, view.message_class) == (_fast.STUN_METHOD_BINDING, StunClass.REQUEST)
    assert view.transaction_id == bytes.fromhex("b7e7a701bc34d686fa87dfae")
    assert view.username == b"evtj:h6vY"
    assert view.username_text == "evtj:h6vY"
    assert view.priority == 0x6E0001FF
    assert view.ice_controlled == 0x932FF9B151263B36
    assert view.ice_controlling is None and not view.use_candidate
    assert view.integrity_offset == 76
    assert view.fingerprint_present and view.fingerprint_valid
    assert check_message_integrity(data, view, RFC5769_PASSWORD)
    assert check_message_integrity(data, view, RFC5769_PASSWORD.encode())
    assert not check_message_integrity(data, view, "VOkJxbRl1RmTxUk/WvJxBT")
    assert ref.check_message_integrity(data, ref.parse_message(data), RFC5769_PASSWORD.encode())


@pytest.mark.parametrize(("name", "host"), [
    ("rfc_5769_ipv4_response.bin", "192.0.2.1"),
    ("rfc_5769_ipv6_response.bin", "2001:db8:1234:5678:11:2233:4455:6677"),
])
def test_rfc5769_responses(name: str, host: str) -> None:
    data = (FIXTURES / name).read_bytes()
    view = parse_stun(data)
    assert (view.method, view.message_class) == (_fast.STUN_METHOD_BINDING, StunClass.SUCCESS)
    assert view.xor_mapped_address == (host, 32853)
    assert view.fingerprint_valid
    assert check_message_integrity(data, view, RFC5769_PASSWORD)
    message = ref.parse_message(data)
    assert message.attributes[ref.XOR_MAPPED_ADDRESS] == (host, 32853)
    assert message.attributes[ref.SOFTWARE] == b"test vector"
    assert message.fingerprint_valid
    assert ref.check_message_integrity(data, message, RFC5769_PASSWORD.encode())


def test_rfc5769_long_term_request() -> None:
    data = (FIXTURES / "rfc_5769_long_term_request.bin").read_bytes()
    view = parse_stun(data)
    assert view.username_text == "マトリックス"
    assert not view.fingerprint_present and not view.fingerprint_valid
    assert check_message_integrity(data, view, RFC5769_LONG_TERM_KEY)
    assert not check_message_integrity(data, view, RFC5769_PASSWORD)
    message = ref.parse_message(data)
    assert message.attributes[0x0014] == b"example.org"  # REALM, kept raw
    assert ref.check_message_integrity(data, message, RFC5769_LONG_TERM_KEY)


def test_doc_fixtures_are_signed_with_the_doc_password() -> None:
    signed = [path for path in FIXTURE_FILES
              if path.name.startswith("doc_") and parse_stun(path.read_bytes()).integrity_offset]
    assert len(signed) >= 4
    for path in signed:
        data = path.read_bytes()
        assert check_message_integrity(data, parse_stun(data), DOC_PASSWORD), path.name


def test_doc_fixture_fields() -> None:
    view = parse_stun((FIXTURES / "doc_binding_request_nomination.bin").read_bytes())
    assert (view.username, view.ice_controlled, view.priority, view.nomination) == (
        b"ufragRemote:ufragLocal", 0x0102030405060708, 0x7E0000FF, 3)
    view = parse_stun((FIXTURES / "doc_browser_binding_request_use_candidate.bin").read_bytes())
    assert view.use_candidate and view.ice_controlling == 0xA1B2C3D4E5F60718
    view = parse_stun((FIXTURES / "doc_binding_error_487_role_conflict.bin").read_bytes())
    assert (view.message_class, view.error_code, view.error_reason) == (
        StunClass.ERROR, 487, "Role Conflict")
    view = parse_stun((FIXTURES / "doc_binding_success_ipv6_software.bin").read_bytes())
    assert view.xor_mapped_address == ("fe80::1", 50000)


# ---- hand-written malformed messages -------------------------------------------------------

GOOD = (FIXTURES / "rfc_5769_sample_request.bin").read_bytes()


def _header(message_type: int = 1, length: int = 0, cookie: int = ref.COOKIE) -> bytes:
    return struct.pack("!HHI", message_type, length, cookie) + bytes(12)


def _with_attrs(*attrs: bytes, message_type: int = 1) -> bytes:
    body = b"".join(attrs)
    return _header(message_type, len(body)) + body


def _attr(attr_type: int, value: bytes, length: int | None = None) -> bytes:
    size = len(value) if length is None else length
    return struct.pack("!HH", attr_type, size) + value + bytes(-len(value) % 4)


@pytest.mark.parametrize(("data", "reason"), [
    (b"", StunReason.TOO_SHORT),
    (GOOD[:19], StunReason.TOO_SHORT),
    (b"\x40" + GOOD[1:], StunReason.NOT_STUN),
    (b"\x80" + GOOD[1:], StunReason.NOT_STUN),
    (_header(cookie=0x2112A443), StunReason.BAD_COOKIE),
    (_header(length=2) + b"\x00\x00", StunReason.UNALIGNED_LENGTH),
    (_header(length=4), StunReason.LENGTH_MISMATCH),
    (_header(length=4) + b"\x00\x06\x00", StunReason.LENGTH_MISMATCH),
    (_with_attrs(_attr(0x0006, b"abcd", length=5)), StunReason.ATTR_TRUNCATED),
    (_with_attrs(_attr(0x1234, b"", length=0xFFFF)), StunReason.ATTR_TRUNCATED),
    (_with_attrs(_attr(0x0024, b"\x00\x00\x00")), StunReason.ATTR_BAD_LENGTH),
    (_with_attrs(_attr(0x0025, b"\x01")), StunReason.ATTR_BAD_LENGTH),
    (_with_attrs(_attr(0x802A, bytes(4))), StunReason.ATTR_BAD_LENGTH),
    (_with_attrs(_attr(0x8029, bytes(9))), StunReason.ATTR_BAD_LENGTH),
    (_with_attrs(_attr(0xC001, bytes(8))), StunReason.ATTR_BAD_LENGTH),
    (_with_attrs(_attr(0x0008, bytes(19))), StunReason.ATTR_BAD_LENGTH),
    (_with_attrs(_attr(0x8028, bytes(8))), StunReason.ATTR_BAD_LENGTH),
    (_with_attrs(_attr(0x0006, bytes(513))), StunReason.ATTR_BAD_LENGTH),
    (_with_attrs(_attr(0x0009, bytes(3))), StunReason.ATTR_BAD_LENGTH),
    (_with_attrs(_attr(0x0009, bytes([0, 0, 2, 0]))), StunReason.ATTR_BAD_VALUE),
    (_with_attrs(_attr(0x0009, bytes([0, 0, 7, 0]))), StunReason.ATTR_BAD_VALUE),
    (_with_attrs(_attr(0x0009, bytes([0, 0, 4, 100]))), StunReason.ATTR_BAD_VALUE),
    (_with_attrs(_attr(0x0020, bytes([0, 1, 0, 0]))), StunReason.ATTR_BAD_LENGTH),
    (_with_attrs(_attr(0x0020, bytes([0, 2]) + bytes(6))), StunReason.ATTR_BAD_LENGTH),
    (_with_attrs(_attr(0x0020, bytes([0, 3]) + bytes(6))), StunReason.ATTR_BAD_VALUE),
    (_with_attrs(_attr(0x0020, bytes(2))), StunReason.ATTR_BAD_LENGTH),
    (_with_attrs(_attr(0x8028, bytes(4)), _attr(0x1234, b"")),
     StunReason.FINGERPRINT_NOT_LAST),
    (_with_attrs(_attr(0x8028, bytes(4)), _attr(0x8028, bytes(4))),
     StunReason.FINGERPRINT_NOT_LAST),
])
def test_malformed_messages_have_the_same_reason(data: bytes, reason: StunReason) -> None:
    assert differential(data) is reason


def test_parse_error_is_a_value_error_naming_the_reason() -> None:
    with pytest.raises(ValueError, match="magic cookie") as caught:
        parse_stun(_header(cookie=0))
    assert isinstance(caught.value, StunParseError)
    assert caught.value.reason is StunReason.BAD_COOKIE


def test_only_the_first_occurrence_counts_and_nothing_after_integrity_but_fingerprint() -> None:
    data = _with_attrs(_attr(0x0024, struct.pack("!I", 7)), _attr(0x0024, struct.pack("!I", 9)),
                       _attr(0x0008, bytes(20)), _attr(0x0006, b"late"),
                       _attr(0x0024, b"bad"), _attr(0x0025, b""))
    view = differential(data)
    assert isinstance(view, StunMessageView)
    assert (view.priority, view.username, view.use_candidate) == (7, None, False)
    assert view.integrity_offset == 20 + 8 + 8
    assert not view.fingerprint_present


def test_empty_binding_request_and_unknown_attributes() -> None:
    view = differential(_with_attrs(_attr(0x0003, b"\x00\x00\x00\x00"), _attr(0xFFFF, b"x")))
    assert isinstance(view, StunMessageView)
    assert view.username is None and view.integrity_offset is None
    assert not check_message_integrity(b"", view, "key")


def test_method_and_class_bits() -> None:
    # Method 0xFFF with class error spreads over every type bit: 0x3FFF.
    view = differential(_header(0x3FFF))
    assert isinstance(view, StunMessageView)
    assert (view.method, view.message_class) == (0xFFF, StunClass.ERROR)
    view = differential(_header(0x0011))
    assert isinstance(view, StunMessageView)
    assert (view.method, view.message_class) == (1, StunClass.INDICATION)


# ---- generated messages --------------------------------------------------------------------


@given(messages())
def test_generated_messages_agree_and_round_trip(case: tuple[ref.StunMessage, bytes | None,
                                                             bool]) -> None:
    message, key, fingerprint = case
    data = message.build(key, fingerprint)
    view = differential(data)
    assert isinstance(view, StunMessageView)
    assert view.fingerprint_present is fingerprint and view.fingerprint_valid is fingerprint
    parsed = ref.parse_message(data)
    assert _without_checks(parsed) == message
    assert parsed.build(key, fingerprint) == data
    if key is not None:
        assert check_message_integrity(data, view, key)
        assert ref.check_message_integrity(data, parsed, key)
        assert not check_message_integrity(data, view, key + b"x")


@given(messages(), st.data())
def test_mutated_messages_agree(case: tuple[ref.StunMessage, bytes | None, bool],
                                data: st.DataObject) -> None:
    message, key, fingerprint = case
    wire = bytearray(message.build(key, fingerprint))
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(wire) - 1))
        wire[index] ^= 1 << data.draw(st.integers(0, 7))
    differential(bytes(wire))
    cut = data.draw(st.integers(0, len(wire)))
    differential(bytes(wire[:cut]))
    differential(bytes(wire) + data.draw(st.binary(min_size=1, max_size=8)))


@given(st.binary(max_size=200))
def test_random_bytes_agree(data: bytes) -> None:
    differential(data)


@given(st.integers(0, 0x3FFF), transaction_ids, st.binary(max_size=160))
def test_random_bodies_under_a_valid_header_agree(message_type: int, tid: bytes,
                                                  body: bytes) -> None:
    body += bytes(-len(body) % 4)
    differential(struct.pack("!HHI", message_type, len(body), ref.COOKIE) + tid + body)


@given(attribute_soup())
def test_attribute_soup_agrees(data: bytes) -> None:
    differential(data)


@given(st.binary(max_size=300))
def test_crc32_matches_zlib(data: bytes) -> None:
    assert _fast.stun_crc32(data) == zlib.crc32(data)


# ---- builders ------------------------------------------------------------------------------


@given(transaction_ids, addresses, ports, passwords)
def test_build_success_matches_reference(tid: bytes, host: str, port: int,
                                         password: str) -> None:
    data = build_binding_success(tid, host, port, password)
    assert data == ref.binding_success(tid, host, port, password.encode())
    view = differential(data)
    assert isinstance(view, StunMessageView)
    assert (view.method, view.message_class) == (_fast.STUN_METHOD_BINDING, StunClass.SUCCESS)
    assert view.transaction_id == tid
    assert _normal_address(view.xor_mapped_address) == _normal_address((host, port))
    assert view.fingerprint_valid and check_message_integrity(data, view, password)
    assert len(data) == (76 if ":" in host else 64)


@given(transaction_ids, error_codes, reasons, st.one_of(st.none(), passwords))
def test_build_error_matches_reference(tid: bytes, code: int, reason: str,
                                       password: str | None) -> None:
    data = build_binding_error(tid, code, reason, password)
    key = None if password is None else password.encode()
    assert data == ref.binding_error(tid, code, reason, key)
    view = differential(data)
    assert isinstance(view, StunMessageView)
    assert (view.message_class, view.error_code, view.error_reason) == (StunClass.ERROR, code,
                                                                        reason)
    assert view.fingerprint_valid
    assert (view.integrity_offset is not None) is (password is not None)
    if password is not None:
        assert check_message_integrity(data, view, password)


def test_build_error_with_the_longest_reason() -> None:
    reason = "é" * 381 + "x"  # 763 bytes
    data = build_binding_error(bytes(12), 699, reason, "pw")
    assert len(data) == 20 + 4 + 4 + 764 + 24 + 8
    assert data == ref.binding_error(bytes(12), 699, reason, b"pw")
    assert parse_stun(data).error_reason == reason


@given(transaction_ids, addresses, ports, passwords, st.data())
def test_a_flipped_bit_in_a_built_response_is_caught(tid: bytes, host: str, port: int,
                                                      password: str, data: st.DataObject) -> None:
    wire = bytearray(build_binding_success(tid, host, port, password))
    assert accepted(bytes(wire), password.encode())
    wire[data.draw(st.integers(0, len(wire) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    assert not accepted(bytes(wire), password.encode())


def test_every_flipped_byte_is_caught_by_integrity_or_fingerprint() -> None:
    for wire in (build_binding_success(bytes(range(12)), "2001:db8::7", 4444, "secret"),
                 build_binding_error(bytes(12), 487, "Role Conflict", "secret")):
        for index in range(len(wire)):
            flipped = bytearray(wire)
            flipped[index] ^= 0x01
            assert not accepted(bytes(flipped), b"secret"), index


@given(messages(), st.data())
def test_integrity_alone_catches_a_flipped_bit(case: tuple[ref.StunMessage, bytes | None, bool],
                                               data: st.DataObject) -> None:
    message, _, _ = case
    wire = bytearray(message.build(b"key", fingerprint=False))
    end = ref.parse_message(bytes(wire)).integrity_offset
    assert end is not None
    wire[data.draw(st.integers(0, end + 23))] ^= 1 << data.draw(st.integers(0, 7))
    try:
        view = parse_stun(bytes(wire))
    except StunParseError:
        return
    assert not check_message_integrity(bytes(wire), view, b"key")


@pytest.mark.parametrize(("call", "error"), [
    (lambda: build_binding_success(bytes(11), "1.2.3.4", 1, "p"), ValueError),
    (lambda: build_binding_success("x" * 12, "1.2.3.4", 1, "p"), TypeError),  # type: ignore[arg-type]
    (lambda: build_binding_success(bytes(12), "1.2.3", 1, "p"), ValueError),
    (lambda: build_binding_success(bytes(12), "::g", 1, "p"), ValueError),
    (lambda: build_binding_success(bytes(12), "1.2.3.4", 65536, "p"), ValueError),
    (lambda: build_binding_success(bytes(12), "1.2.3.4", -1, "p"), ValueError),
    (lambda: build_binding_success(bytes(12), "1.2.3.4", 1, 5), TypeError),  # type: ignore[arg-type]
    (lambda: build_binding_error(bytes(12), 299, "r", None), ValueError),
    (lambda: build_binding_error(bytes(12), 700, "r", None), ValueError),
    (lambda: build_binding_error(bytes(12), 400, "x" * 764, None), ValueError),
])
def test_builder_argument_errors(call: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        call()


def test_integrity_offset_past_the_buffer_is_not_valid() -> None:
    view = parse_stun(GOOD)
    assert not check_message_integrity(GOOD[:80], view, RFC5769_PASSWORD)


@given(st.binary(max_size=100), st.binary(max_size=120))
def test_integrity_matches_the_hmac_module_for_any_key(key: bytes, body: bytes) -> None:
    body += bytes(-len(body) % 4)
    message = ref.StunMessage(1, ref.StunClass.REQUEST, bytes(12), {0x7777: body})
    wire = message.build(key, fingerprint=False)
    view = parse_stun(wire)
    assert check_message_integrity(wire, view, key)
    assert check_message_integrity(bytearray(wire), view, key)
    assert not check_message_integrity(wire, view, key + b"x")


def test_keyed_hmac_states_are_bounded() -> None:
    wire = (FIXTURES / "rfc_5769_sample_request.bin").read_bytes()
    view = parse_stun(wire)
    for n in range(_fast_stun._STUN_HMAC_CACHE_MAX_KEYS + 10):
        assert not check_message_integrity(wire, view, f"key-{n}")
    assert len(_fast_stun._stun_hmac_states) <= _fast_stun._STUN_HMAC_CACHE_MAX_KEYS
    assert check_message_integrity(wire, view, RFC5769_PASSWORD)


def test_reference_and_facade_reason_numbers_match() -> None:
    assert {r.name: r.value for r in StunReason} == {
        r.name: r.value for r in ref.StunReason if r is not ref.StunReason.OK}


@pytest.mark.parametrize("method", [0x001, 0x003, 0x004, 0xABC])
def test_error_response_keeps_the_request_method(method: int) -> None:
    """RFC 5389 7.3.1: an error response carries the method of the request it answers."""
    tid = bytes(range(12))
    data = build_binding_error(tid, 400, "Bad Request", None, method=method)
    message = ref.parse_message(data)
    assert (message.method, message.message_class) == (method, ref.StunClass.ERROR)
    assert message.transaction_id == tid and message.fingerprint_valid
    view = parse_stun(data)
    assert (view.method, view.error_code) == (method, 400)
