"""RTP parse and in-place rewrite: the C (through ``worker._fast``) against the pure-Python
reference (``tests.reference.rtp``), on fixtures and on hypothesis-generated packets.

Fixtures are every ``tests/fixtures/rtp/*.bin`` (captured ``aiortc_*`` ones are picked up as they
appear). The hand-made ones (``rfc_*``/``doc_*``) are:

- ``rfc_3550_fixed_header``: 12-byte header only, PT 96, marker set.
- ``rfc_3550_two_csrcs``: CC=2, a mixer's output.
- ``rfc_3550_padding``: P set, 4 padding bytes ending in the count 4.
- ``rfc_3550_padding_only``: a probe with no payload and 255 bytes of padding.
- ``rfc_3550_opaque_extension``: a profile-specific extension (profile 0x1234, 2 words).
- ``rfc_8285_one_byte_example``: the section 4.2 layout (L=0, L=1, two pad bytes, L=3).
- ``rfc_8285_two_byte_example``: the section 4.3 layout (appbits 5; L=0, L=1, a pad byte, L=4).
- ``rfc_8285_one_byte_id15_stop``: id 15 ends the walk; the bytes after it are ignored.
- ``rfc_4588_rtx``: an RTX packet whose payload starts with the original sequence number 0x1234.
- ``doc_chrome_vp8_one_byte_ext``: Chrome's default extmap: abs-send-time (2), transport-cc (3),
  mid (4).
- ``doc_opus_audio_level_csrc``: ssrc-audio-level (1) and one CSRC.
- ``doc_two_byte_long_rid``: a 20-byte rtp-stream-id (10), which needs the two-byte form.
- ``doc_malformed_*``: one fault each, named by the file.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tests.reference import rtp as ref
from worker import _fast
from worker._fast import RtpError, RtpExtensionForm, RtpParseError, RtpReason, RtpRewriteError

FIXTURE_DIR = Path(__file__).parent / "fixtures" / "rtp"
FIXTURES = sorted(FIXTURE_DIR.glob("*.bin"))


def fixture(name: str) -> bytes:
    return (FIXTURE_DIR / f"{name}.bin").read_bytes()


# ---- comparing the two sides -----------------------------------------------------------------


def exact_buffer(data: bytes, cap: int) -> memoryview:
    """``data`` at the start of a writable buffer of exactly ``cap`` bytes, with no slack after
    it (bytes and bytearray keep a NUL past their end), so that the sanitizer build catches even
    a one-byte overrun."""
    raw = _fast.ffi.new("uint8_t[]", max(cap, 1))
    view = memoryview(_fast.ffi.buffer(raw))[:cap]
    view[: len(data)] = data
    return view


def c_fields(view: _fast.RtpHeaderView) -> dict[str, Any]:
    return {
        "marker": int(view.marker), "payload_type": view.payload_type,
        "sequence_number": view.sequence_number, "timestamp": view.timestamp, "ssrc": view.ssrc,
        "csrc_count": view.csrc_count, "padding": view.padding, "extension": view.extension,
        "payload_offset": view.payload_offset, "payload_length": view.payload_length,
        "padding_length": view.padding_length, "ext_form": int(view.extension_form),
        "ext_profile": view.extension_profile, "ext_offset": view.extension_offset,
        "ext_length": view.extension_length, "ext_count": view.extension_count,
        "elements": [(e.id, e.offset, e.length) for e in view.extensions],
    }


def ref_fields(info: ref.HeaderInfo) -> dict[str, Any]:
    return {
        "marker": info.marker, "payload_type": info.payload_type,
        "sequence_number": info.sequence_number, "timestamp": info.timestamp, "ssrc": info.ssrc,
        "csrc_count": len(info.csrc), "padding": info.padding, "extension": info.extension,
        "payload_offset": info.payload_offset, "payload_length": info.payload_length,
        "padding_length": info.padding_length, "ext_form": int(info.ext_form),
        "ext_profile": info.ext_profile, "ext_offset": info.ext_offset,
        "ext_length": info.ext_length, "ext_count": len(info.elements),
        "elements": [(e.id, e.offset, len(e.value)) for e in info.elements[:16]],
    }


def assert_parse_agrees(data: bytes) -> int:
    """Both sides agree on malformed-or-not, the reason, and every field; returns the reason."""
    c_reason = _fast.rtp_reason(exact_buffer(data, len(data)))
    ref_reason = ref.parse_reason(data)
    assert int(c_reason) == int(ref_reason), (c_reason, ref_reason, data.hex())
    if c_reason == RtpReason.OK:
        assert c_fields(_fast.parse_rtp(data)) == ref_fields(ref.parse_header(data))
        assert ref.RtpPacket.parse(data).serialize() == data
    else:
        with pytest.raises(RtpParseError) as info:
            _fast.parse_rtp(data)
        assert info.value.reason == c_reason
    return int(c_reason)


# An operation is (name, args); both sides run it on the packet in a buffer of `cap` bytes and
# give the new packet's bytes, or the reason code it was refused with.
Op = tuple[str, dict[str, Any]]


def id_map(table: bytes) -> _fast.RtpExtensionIdMap:
    return _fast.RtpExtensionIdMap({i: table[i] for i in range(1, 256)})


def run_c(op: Op, data: bytes, cap: int) -> bytes | int:
    name, args = op
    buf = exact_buffer(data, cap)
    n = len(data)
    try:
        if name == "rewrite":
            _fast.rewrite_rtp(buf, n, **args)
            new_len = n
        elif name in ("set", "put", "add"):
            fn = {"set": _fast.set_rtp_extension, "put": _fast.put_rtp_extension,
                  "add": _fast.add_rtp_extension}[name]
            new_len = fn(buf, args["ext_id"], args["value"], length=n)
        elif name == "remap":
            new_len = _fast.remap_rtp_extensions(buf, id_map(args["table"]), length=n)
        elif name == "rtx_enc":
            new_len = _fast.rtx_encapsulate(buf, length=n, **args)
        else:
            new_len = _fast.rtx_decapsulate(buf, length=n, **args)
    except RtpError as exc:
        assert bytes(buf[:n]) == data, "a refused rewrite must leave the packet unchanged"
        return int(exc.reason)
    return bytes(buf[:new_len])


def run_ref(op: Op, data: bytes, cap: int) -> bytes | int:
    name, args = op
    try:
        if name == "rewrite":
            return ref.rewrite(data, **{k: int(v) for k, v in args.items()})
        if name == "set":
            return ref.ext_set(data, args["ext_id"], args["value"])
        if name in ("put", "add"):
            fn = ref.ext_put if name == "put" else ref.ext_add
            return fn(data, cap, args["ext_id"], args["value"])
        if name == "remap":
            return ref.ext_remap(data, cap, args["table"])
        if name == "rtx_enc":
            return ref.rtx_encapsulate(data, cap, args["ssrc"], args["payload_type"],
                                       args["sequence_number"])
        return ref.rtx_decapsulate(data, args["ssrc"], args["payload_type"])
    except ref.RtpError as exc:
        return int(exc.reason)


def assert_op_agrees(op: Op, data: bytes, cap: int) -> bytes | int:
    c_out = run_c(op, data, cap)
    ref_out = run_ref(op, data, cap)
    assert c_out == ref_out, (op, data.hex(), cap)
    if isinstance(c_out, bytes):
        assert ref.parse_reason(c_out) == ref.Reason.OK, "a rewrite must leave a valid packet"
        assert len(c_out) <= cap
    return c_out


# ---- strategies ------------------------------------------------------------------------------

u32 = st.integers(0, 2**32 - 1)


@st.composite
def extension_blocks(draw: st.DrawFn) -> tuple[int, bytes] | None:
    """A header extension block in any form, sometimes with padding between elements."""
    form = draw(st.sampled_from(["none", "one", "two", "opaque"]))
    if form == "none":
        return None
    if form == "opaque":
        profile = draw(st.integers(0, 0xFFFF).filter(
            lambda p: p != ref.ONE_BYTE_PROFILE and p & 0xFFF0 != ref.TWO_BYTE_PROFILE))
        return profile, draw(st.binary(max_size=12).map(lambda b: b + bytes(-len(b) % 4)))
    one = form == "one"
    count = draw(st.integers(0, 18 if not one else 8))
    out = bytearray()
    for _ in range(count):
        out += bytes(draw(st.integers(0, 2)) if draw(st.booleans()) else 0)
        if one:
            value = draw(st.binary(min_size=1, max_size=16))
            out.append(draw(st.integers(1, 14)) << 4 | (len(value) - 1))
        else:
            value = draw(st.binary(max_size=8))
            out += bytes((draw(st.integers(1, 255)), len(value)))
        out += value
    if one and draw(st.integers(0, 9)) == 0:
        out += bytes([0xF0 | draw(st.integers(0, 15))]) + draw(st.binary(max_size=3))
    out += bytes(-len(out) % 4)
    profile = ref.ONE_BYTE_PROFILE if one else ref.TWO_BYTE_PROFILE | draw(st.integers(0, 15))
    return profile, bytes(out)


@st.composite
def rtp_packets(draw: st.DrawFn) -> bytes:
    """A well-formed RTP packet."""
    block = draw(extension_blocks())
    pad = draw(st.integers(0, 40))
    padding = draw(st.binary(min_size=pad - 1, max_size=pad - 1)) + bytes([pad]) if pad else b""
    packet = ref.RtpPacket(
        payload_type=draw(st.integers(0, 127)), marker=draw(st.integers(0, 1)),
        sequence_number=draw(st.integers(0, 0xFFFF)), timestamp=draw(u32), ssrc=draw(u32),
        csrc=tuple(draw(st.lists(u32, max_size=15))),
        extension_profile=block[0] if block else None, extension_data=block[1] if block else b"",
        payload=draw(st.binary(max_size=48)),
        padding=padding)
    return packet.serialize()


@st.composite
def mutated_packets(draw: st.DrawFn) -> bytes:
    """A valid packet with bit flips, a truncation, or bytes inserted or appended."""
    data = bytearray(draw(rtp_packets()))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "append"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        else:
            data += draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


any_packet = st.one_of(rtp_packets(), rtp_packets(), mutated_packets(), st.binary(max_size=80),
                       st.binary(min_size=1, max_size=80).map(lambda b: bytes([0x80 | b[0] & 0x3F])
                                                              + b[1:]))


@st.composite
def operations(draw: st.DrawFn, data: bytes) -> Op:
    """A rewrite to try on `data`, with ids drawn from the packet's own elements mostly."""
    ids = [1, 2, 14, 15, 255]
    lengths = {}
    if ref.parse_reason(data) == ref.Reason.OK:
        elements = ref.parse_header(data).elements
        ids += [e.id for e in elements] * 3
        lengths = {e.id: len(e.value) for e in reversed(elements)}
    odd = draw(st.integers(0, 9)) == 0  # now and then an argument out of range
    ext_id = draw(st.integers(0, 256) if odd else st.sampled_from(ids))
    size = draw(st.sampled_from([0, 1, 2, 3, 16, 17, 20]))
    if ext_id in lengths and draw(st.booleans()):
        size = lengths[ext_id]
    value = draw(st.binary(min_size=256 if odd else size, max_size=256 if odd else size))
    name = draw(st.sampled_from(["rewrite", "set", "put", "add", "remap", "rtx_enc", "rtx_dec"]))
    if name == "rewrite":
        args = {k: draw(st.one_of(st.none(), strat)) for k, strat in (
            ("ssrc", u32), ("sequence_number", st.integers(0, 0x1FFFF)), ("timestamp", u32),
            ("payload_type", st.integers(0, 200)), ("marker", st.booleans()))}
        return name, {k: v for k, v in args.items() if v is not None}
    if name in ("set", "put", "add"):
        return name, {"ext_id": ext_id, "value": value}
    if name == "remap":
        table = bytearray(range(256)) if draw(st.booleans()) else bytearray(256)
        for old in set(ids):
            if old < 256 and draw(st.booleans()):
                table[old] = draw(st.sampled_from([0, 1, 3, 14, 15, 200, old]))
        table[0] = 0
        return name, {"table": bytes(table)}
    args = {"ssrc": draw(u32), "payload_type": draw(st.integers(0, 130))}
    if name == "rtx_enc":
        args["sequence_number"] = draw(st.integers(0, 0x1FFFF))
    return name, args


# ---- fixtures --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_fixture_parse_agrees_whole_prefixes_and_trailing(path: Path) -> None:
    data = path.read_bytes()
    assert_parse_agrees(data)
    for end in range(len(data)):  # fed one byte at a time: every prefix
        assert_parse_agrees(data[:end])
    for extra in (b"\x00", b"\x01\x02\x03", bytes(range(16))):
        assert_parse_agrees(data + extra)


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_fixture_rewrites_agree_byte_for_byte(path: Path) -> None:
    data = path.read_bytes()
    table = bytearray(range(256))
    table[1], table[2], table[3] = 0, 12, 200
    ops: list[Op] = [
        ("rewrite", {"ssrc": 0x01020304, "sequence_number": 9, "timestamp": 77,
                     "payload_type": 101, "marker": False}),
        ("set", {"ext_id": 2, "value": b"\x01\x02\x03"}),
        ("put", {"ext_id": 3, "value": b"\xaa\xbb"}), ("put", {"ext_id": 4, "value": b"m" * 17}),
        ("add", {"ext_id": 5, "value": b"\x07"}), ("add", {"ext_id": 20, "value": b""}),
        ("remap", {"table": bytes(table)}), ("remap", {"table": bytes(256)}),
        ("rtx_enc", {"ssrc": 5, "payload_type": 97, "sequence_number": 1000}),
        ("rtx_dec", {"ssrc": 6, "payload_type": 96}),
    ]
    for op in ops:
        for cap in (len(data), len(data) + 2, len(data) + 64):
            assert_op_agrees(op, data, cap)


def test_rfc_8285_one_byte_example() -> None:
    data = fixture("rfc_8285_one_byte_example")
    view = _fast.parse_rtp(data)
    assert view.extension_form == RtpExtensionForm.ONE_BYTE
    assert view.extension_profile == 0xBEDE
    assert (view.extension_offset, view.extension_length) == (16, 12)
    assert [(e.id, e.offset, e.length) for e in view.extensions] == [(1, 17, 1), (2, 19, 2),
                                                                      (3, 24, 4)]
    assert view.extension_value(data, 2) == b"\xaa\xbb"
    assert view.extension_value(data, 3) == b"\x01\x02\x03\x04"
    assert view.extension_value(data, 4) is None
    assert (view.payload_offset, view.payload_length) == (28, 40)


def test_rfc_8285_two_byte_example_and_id15_stop() -> None:
    data = fixture("rfc_8285_two_byte_example")
    view = _fast.parse_rtp(data)
    assert view.extension_form == RtpExtensionForm.TWO_BYTE
    assert view.extension_profile == 0x1005
    assert [(e.id, e.length) for e in view.extensions] == [(32, 0), (33, 1), (255, 4)]
    assert view.extension_value(data, 255) == b"\xde\xad\xbe\xef"
    stop = _fast.parse_rtp(fixture("rfc_8285_one_byte_id15_stop"))
    assert [(e.id, e.length) for e in stop.extensions] == [(1, 1)]
    assert stop.extension_count == 1


def test_fixed_header_csrc_padding_fixtures() -> None:
    view = _fast.parse_rtp(fixture("rfc_3550_fixed_header"))
    assert (view.marker, view.payload_type, view.sequence_number) == (True, 96, 4660)
    assert (view.timestamp, view.ssrc) == (0x11223344, 0xDEADBEEF)
    assert _fast.parse_rtp(fixture("rfc_3550_two_csrcs")).payload_offset == 20
    padded = _fast.parse_rtp(fixture("rfc_3550_padding"))
    assert (padded.padding, padded.padding_length, padded.payload_length) == (True, 4, 16)
    probe = _fast.parse_rtp(fixture("rfc_3550_padding_only"))
    assert (probe.payload_length, probe.padding_length) == (0, 255)
    opaque = _fast.parse_rtp(fixture("rfc_3550_opaque_extension"))
    assert opaque.extension_form == RtpExtensionForm.OPAQUE
    assert (opaque.extension_profile, opaque.extension_length, opaque.extensions) == (0x1234, 8,
                                                                                      ())


@pytest.mark.parametrize(("name", "reason"), [
    ("doc_malformed_too_short", RtpReason.TOO_SHORT),
    ("doc_malformed_version1", RtpReason.BAD_VERSION),
    ("doc_malformed_csrc_past_end", RtpReason.CSRC_PAST_END),
    ("doc_malformed_ext_past_end", RtpReason.EXT_PAST_END),
    ("doc_malformed_one_byte_overrun", RtpReason.BAD_EXT_ELEMENT),
    ("doc_malformed_padding_zero", RtpReason.PADDING_ZERO),
    ("doc_malformed_padding_too_long", RtpReason.PADDING_PAST_PAYLOAD),
])
def test_malformed_fixtures_raise_with_reason(name: str, reason: RtpReason) -> None:
    with pytest.raises(RtpParseError, match="malformed RTP packet") as info:
        _fast.parse_rtp(fixture(name))
    assert info.value.reason == reason
    assert isinstance(info.value, ValueError)
    with pytest.raises(ref.RtpError) as ref_info:
        ref.parse_header(fixture(name))
    assert int(ref_info.value.reason) == int(reason)


# ---- hypothesis: parse -----------------------------------------------------------------------


@given(rtp_packets())
def test_valid_packets_parse_the_same(data: bytes) -> None:
    assert assert_parse_agrees(data) == RtpReason.OK


@given(mutated_packets())
def test_mutated_packets_agree(data: bytes) -> None:
    assert_parse_agrees(data)


@given(any_packet)
def test_random_bytes_agree(data: bytes) -> None:
    assert_parse_agrees(data)


# ---- hypothesis: rewrites --------------------------------------------------------------------


@given(st.data())
def test_rewrites_agree_byte_for_byte(data: st.DataObject) -> None:
    packet = data.draw(any_packet)
    op = data.draw(operations(packet))
    cap = len(packet) + data.draw(st.sampled_from([0, 1, 2, 3, 8, 64]))
    assert_op_agrees(op, packet, cap)


@given(rtp_packets(), st.tuples(u32, st.integers(0, 0xFFFF), u32, st.integers(0, 127),
                                st.booleans()))
def test_rewrite_sets_exactly_the_fields(data: bytes,
                                         values: tuple[int, int, int, int, bool]) -> None:
    ssrc, seq, ts, pt, marker = values
    buf = bytearray(data)
    _fast.rewrite_rtp(buf, ssrc=ssrc, sequence_number=seq, timestamp=ts, payload_type=pt,
                      marker=marker)
    after = ref.parse_header(bytes(buf))
    assert (after.ssrc, after.sequence_number, after.timestamp) == (ssrc, seq, ts)
    assert (after.payload_type, after.marker) == (pt, int(marker))
    assert buf[12:] == data[12:] and buf[0] == data[0]


@given(rtp_packets(), st.integers(1, 255), st.binary(max_size=20), st.integers(0, 64))
def test_put_then_reference_parse_sees_the_value(data: bytes, ext_id: int, value: bytes,
                                                 room: int) -> None:
    before = ref.RtpPacket.parse(data)
    assume(before.extension_form != ref.ExtensionForm.OPAQUE and len(before.extensions) <= 16)
    buf = bytearray(data) + bytearray(room)
    try:
        n = _fast.put_rtp_extension(buf, ext_id, value, length=len(data))
    except RtpRewriteError as exc:
        assert exc.reason == RtpReason.NO_ROOM
        return
    after = ref.RtpPacket.parse(bytes(buf[:n]))
    elements = [(i, v) for i, v in before.extensions]
    index = next((k for k, (i, _) in enumerate(elements) if i == ext_id), None)
    if index is None:
        elements.append((ext_id, value))
    else:
        elements[index] = (ext_id, value)
    assert after.extensions == elements
    assert (after.payload, after.padding, after.csrc) == (before.payload, before.padding,
                                                          before.csrc)


@given(rtp_packets(), u32, st.integers(0, 127), st.integers(0, 0xFFFF))
def test_rtx_round_trip(data: bytes, rtx_ssrc: int, rtx_pt: int, rtx_seq: int) -> None:
    before = ref.parse_header(data)
    buf = bytearray(data) + bytearray(2)
    n = _fast.rtx_encapsulate(buf, ssrc=rtx_ssrc, payload_type=rtx_pt, sequence_number=rtx_seq,
                              length=len(data))
    assert n == len(data) + 2
    rtx = ref.parse_header(bytes(buf[:n]))
    assert (rtx.ssrc, rtx.payload_type, rtx.sequence_number) == (rtx_ssrc, rtx_pt, rtx_seq)
    osn = buf[rtx.payload_offset : rtx.payload_offset + 2]
    assert struct.unpack("!H", osn)[0] == before.sequence_number
    n = _fast.rtx_decapsulate(buf, ssrc=before.ssrc, payload_type=before.payload_type, length=n)
    assert bytes(buf[:n]) == data


# ---- rewrite semantics -----------------------------------------------------------------------


def plain(payload: bytes = b"\x01\x02\x03\x04") -> bytes:
    return ref.RtpPacket(payload_type=96, sequence_number=1, ssrc=7, payload=payload).serialize()


def test_add_creates_one_byte_block_then_upgrades_to_two_byte() -> None:
    buf = bytearray(plain()) + bytearray(64)
    n = _fast.add_rtp_extension(buf, 2, b"\x12\x34\x56", length=16)  # abs-send-time
    n = _fast.add_rtp_extension(buf, 3, b"\x00\x07", length=n)  # transport-wide cc
    view = _fast.parse_rtp(buf, n)
    assert view.extension_form == RtpExtensionForm.ONE_BYTE
    assert bytes(buf[12:n]) == (b"\xbe\xde\x00\x02" + b"\x22\x12\x34\x56\x31\x00\x07\x00"
                                + b"\x01\x02\x03\x04")
    n = _fast.add_rtp_extension(buf, 15, b"", length=n)
    view = _fast.parse_rtp(buf, n)
    assert view.extension_form == RtpExtensionForm.TWO_BYTE
    assert [(e.id, e.length) for e in view.extensions] == [(2, 3), (3, 2), (15, 0)]
    with pytest.raises(RtpRewriteError) as info:
        _fast.add_rtp_extension(buf, 3, b"\x00\x08", length=n)
    assert info.value.reason == RtpReason.EXT_EXISTS


def test_set_same_length_and_mismatch() -> None:
    data = fixture("doc_chrome_vp8_one_byte_ext")
    buf = bytearray(data)
    assert _fast.set_rtp_extension(buf, 3, b"\xff\xfe") == len(data)
    assert _fast.parse_rtp(buf).extension_value(buf, 3) == b"\xff\xfe"
    assert buf[:21] == data[:21] and buf[23:] == data[23:]
    for ext_id, value, reason in [(3, b"\x01", RtpReason.EXT_LENGTH_MISMATCH),
                                  (9, b"\x01", RtpReason.EXT_NOT_FOUND),
                                  (0, b"\x01", RtpReason.BAD_ARGUMENT)]:
        with pytest.raises(RtpRewriteError) as info:
            _fast.set_rtp_extension(buf, ext_id, value)
        assert info.value.reason == reason


def test_remap_in_place_and_removal_clears_x() -> None:
    data = fixture("doc_chrome_vp8_one_byte_ext")
    buf = bytearray(data)
    assert _fast.remap_rtp_extensions(buf, _fast.RtpExtensionIdMap({2: 5, 3: 6, 4: 7})) == len(data)
    assert [e.id for e in _fast.parse_rtp(buf).extensions] == [5, 6, 7]
    expected = bytearray(data)
    expected[16], expected[20], expected[23] = 0x52, 0x61, 0x70  # only the id bytes changed
    assert buf == expected
    n = _fast.remap_rtp_extensions(buf, _fast.RtpExtensionIdMap({6: 1}))
    view = _fast.parse_rtp(buf, n)
    assert [(e.id, e.length) for e in view.extensions] == [(1, 2)]
    n = _fast.remap_rtp_extensions(buf, _fast.RtpExtensionIdMap({}), length=n)
    view = _fast.parse_rtp(buf, n)
    assert (view.extension, view.extension_form, view.payload_offset) == (
        False, RtpExtensionForm.NONE, 12)
    assert bytes(buf[12:n]) == data[28:]


def test_errors_opaque_no_room_too_many_rtx_short() -> None:
    opaque = bytearray(fixture("rfc_3550_opaque_extension")) + bytearray(8)
    with pytest.raises(RtpRewriteError) as info:
        _fast.put_rtp_extension(opaque, 1, b"\x01", length=len(opaque) - 8)
    assert info.value.reason == RtpReason.EXT_OPAQUE
    full = bytearray(plain())
    with pytest.raises(RtpRewriteError) as info:
        _fast.add_rtp_extension(full, 1, b"\x01")
    assert info.value.reason == RtpReason.NO_ROOM and full == plain()
    many = ref.RtpPacket(payload_type=1)
    many.set_extensions([(i, bytes([i])) for i in range(1, 18)])
    data = many.serialize()
    view = _fast.parse_rtp(data)
    assert (view.extension_count, len(view.extensions)) == (17, 16)
    with pytest.raises(RtpRewriteError) as info:
        _fast.add_rtp_extension(bytearray(data) + bytearray(16), 40, b"", length=len(data))
    assert info.value.reason == RtpReason.EXT_TOO_MANY
    with pytest.raises(RtpRewriteError) as info:
        _fast.rtx_decapsulate(bytearray(plain(b"\x01")), ssrc=1, payload_type=1)
    assert info.value.reason == RtpReason.RTX_TOO_SHORT
    with pytest.raises(RtpRewriteError) as info:
        _fast.rewrite_rtp(bytearray(plain()), 99)
    assert info.value.reason == RtpReason.BAD_ARGUMENT


def test_rtx_decapsulate_fixture() -> None:
    buf = bytearray(fixture("rfc_4588_rtx"))
    n = _fast.rtx_decapsulate(buf, ssrc=0x1111, payload_type=96)
    view = _fast.parse_rtp(buf, n)
    assert (view.sequence_number, view.ssrc, view.payload_type) == (0x1234, 0x1111, 96)
    assert bytes(buf[12:n]) == bytes(range(1, 41))


# ---- batches and the reusable buffer ---------------------------------------------------------


@given(st.lists(any_packet, min_size=1, max_size=12), st.data())
def test_batch_parse_matches_single_parse(packets: list[bytes], data: st.DataObject) -> None:
    slab = bytearray(2048 * len(packets))
    batch = _fast.RtpBatch(slab, capacity=16)
    for i, packet in enumerate(packets):
        offset = 2048 * i + data.draw(st.integers(0, 64))
        slab[offset : offset + len(packet)] = packet
        batch.offsets[i], batch.lengths[i] = offset, len(packet)
    batch.offsets[len(packets)], batch.lengths[len(packets)] = len(slab) - 4, 12
    count = len(packets) + 1
    ok = batch.parse(count)
    assert batch.status[len(packets)] == RtpReason.OUT_OF_BOUNDS
    assert ok == sum(ref.parse_reason(p) == ref.Reason.OK for p in packets)
    assert batch.parse_headers(count) == ok
    for i, packet in enumerate(packets):
        assert batch.status[i] == ref.parse_reason(packet)
        if batch.status[i] == 0:
            info = ref.parse_header(packet)
            got = (batch.ssrc[i], batch.seq[i], batch.timestamp[i], batch.payload_type[i],
                   batch.marker[i], batch.payload_offset[i], batch.payload_length[i])
            assert got == (info.ssrc, info.sequence_number, info.timestamp, info.payload_type,
                           info.marker, info.payload_offset, info.payload_length)
            assert c_fields(batch.header_view(i)) == ref_fields(info)
        else:
            assert (batch.ssrc[i], batch.payload_length[i]) == (0, 0)


def test_batch_rewrite() -> None:
    packets = [fixture("doc_chrome_vp8_one_byte_ext"), fixture("doc_malformed_version1"),
               fixture("rfc_3550_padding")]
    slab = bytearray(4096)
    batch = _fast.RtpBatch(slab, capacity=4)
    for i, packet in enumerate(packets):
        slab[1000 * i : 1000 * i + len(packet)] = packet
        batch.offsets[i], batch.lengths[i] = 1000 * i, len(packet)
        batch.new_ssrc[i], batch.new_seq[i], batch.new_payload_type[i] = 100 + i, 200 + i, 100
    fields = _fast.RtpField.SSRC | _fast.RtpField.SEQ | _fast.RtpField.PAYLOAD_TYPE
    assert batch.rewrite(3, fields) == 2
    assert list(batch.status[0:3]) == [0, RtpReason.BAD_VERSION, 0]
    for i in (0, 2):
        packet = bytes(slab[1000 * i : 1000 * i + len(packets[i])])
        expected = ref.rewrite(packets[i], ssrc=100 + i, sequence_number=200 + i, payload_type=100)
        assert packet == expected
    assert bytes(slab[1000 : 1000 + len(packets[1])]) == packets[1]
    with pytest.raises(ValueError, match="outside"):
        batch.parse(5)


def test_rtp_buffer_parse_and_rewrite_in_a_pool_slot() -> None:
    data = fixture("rfc_3550_fixed_header")
    slab = memoryview(bytearray(4096))
    slot = slab[2048:4096]
    slot[: len(data)] = data
    rb = _fast.RtpBuffer(slot)
    assert rb.capacity == 2048
    assert rb.parse(len(data)) == RtpReason.OK
    h = rb.header
    assert (h.ssrc, h.sequence_number, h.payload_type, h.marker) == (0xDEADBEEF, 4660, 96, 1)
    assert (h.payload_offset, h.payload_length, h.timestamp) == (12, 40, 0x11223344)
    assert rb.rewrite(_fast.RtpField.SSRC | _fast.RtpField.MARKER, ssrc=5, marker=0) == 0
    assert (h.ssrc, h.marker) == (5, 0)
    assert bytes(slab[2048 : 2048 + len(data)]) == ref.rewrite(data, ssrc=5, marker=0)
    assert rb.view().ssrc == 5
    assert rb.parse(5000) == RtpReason.BAD_ARGUMENT
    assert rb.parse(11) == RtpReason.TOO_SHORT


def test_length_beyond_buffer_is_refused() -> None:
    with pytest.raises(RtpRewriteError) as info:
        _fast.parse_rtp(b"\x80" * 12, 13)
    assert info.value.reason == RtpReason.BAD_ARGUMENT
    with pytest.raises(ValueError, match=r"outside 1\.\.255"):
        _fast.RtpExtensionIdMap({0: 1})



def test_c_argument_checks() -> None:
    """What the facade cannot pass: NULL pointers, cap < len, unknown field bits."""
    lib, ffi = _fast.lib, _fast.ffi
    data = fixture("doc_chrome_vp8_one_byte_ext")
    buf = ffi.new("uint8_t[]", data)
    bad = int(RtpReason.BAD_ARGUMENT)
    assert lib.mw_rtp_parse(ffi.NULL, 10, ffi.NULL) == bad
    assert lib.mw_rtp_ext_put(buf, len(data), len(data) - 1, 2, b"abc", 3, ffi.NULL) == bad
    assert lib.mw_rtp_ext_add(buf, len(data), len(data), 5, ffi.NULL, 1, ffi.NULL) == bad
    assert lib.mw_rtp_ext_remap(buf, len(data), len(data), ffi.NULL, ffi.NULL) == bad
    assert lib.mw_rtp_rewrite(buf, len(data), 64, 0, 0, 0, 0, 0, ffi.NULL) == bad
    assert lib.mw_rtp_rtx_encapsulate(buf, len(data), len(data) - 1, 1, 1, 1, ffi.NULL) == bad
    assert lib.mw_rtp_ext_find(ffi.NULL, 2) == -1
    assert ffi.buffer(buf, len(data))[:] == data
    offsets, lengths = ffi.new("uint32_t[]", [0]), ffi.new("uint32_t[]", [len(data)])
    status = ffi.new("int32_t[]", 1)
    done = lib.mw_rtp_rewrite_batch(buf, len(data), offsets, lengths, 1,
                                    lib.MW_RTP_SET_SSRC, ffi.NULL, ffi.NULL, ffi.NULL, ffi.NULL,
                                    ffi.NULL, status)
    assert (done, status[0]) == (0, bad)
    assert lib.mw_rtp_parse_batch_headers(buf, len(data), offsets, lengths, 1, ffi.NULL,
                                          status) == 0
