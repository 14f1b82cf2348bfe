"""The C key-frame detector ``mw_keyframe`` (``cffi_build/keyframe.c``) against the pure-Python
detectors of ``worker.keyframe``, its reference: the same answer for every payload.

Payloads: every payload of 0, 1 and 2 bytes; hypothesis-generated random bytes; structured
payloads built to reach each branch (VP8 and VP9 descriptors with every combination of their
extension bits, H264 STAP-A/B and H265 aggregation packets whose unit sizes may be zero, short or
run past the end, FU-A/B and H265 FU start and non-start fragments), each also cut at a random
length; the hand-built cases of ``tests/test_keyframe.py``, the captured RTP fixtures and the
payloads of aiortc's VP8 and H264 encoders.

The C reads an exact-size copy (``ffi.new("uint8_t[]", n)``, no byte after the last), so that
under ``scripts/sanitize.py`` AddressSanitizer reports a read of even one byte past the end (a
``bytes`` object keeps a NUL there that hides it), and a slice of a larger buffer whose bytes
around it would change the answer.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from hypothesis import given
from hypothesis import strategies as st

from tests.test_keyframe import CASE_IDS, CASES, VIDEO_MIMES, encoded_frames
from worker._fast import parse_rtp
from worker._fast._lib import ffi, lib
from worker.keyframe import is_keyframe, keyframe_codec, keyframe_detector
from worker.supported_rtp_capabilities import SUPPORTED_CODECS

RTP_FIXTURES = Path(__file__).parent / "fixtures" / "rtp"

VP8, VP9, H264, H265, AV1 = 1, 2, 3, 4, 5
CODECS = (VP8, VP9, H264, H265, AV1)
CODEC_MIMES = {VP8: "video/vp8", VP9: "video/vp9", H264: "video/h264", H265: "video/h265",
               AV1: "video/av1"}
# Bytes put around a payload: for several codecs each would make a key frame if it were read.
BEFORE = b"\x65\x08\x10\x26\x28"
AFTER = bytes([0x00, 0x05, 0x65, 0x26, 0x00, 0x00, 0x01, 0x10, 0x08]) * 3


def exact(data: bytes) -> Any:
    """An exact-size C copy of ``data`` (``ffi.new`` with a bytes initializer adds a NUL)."""
    buf = ffi.new("uint8_t[]", len(data))
    ffi.memmove(buf, data, len(data))
    return buf


def c_keyframe(codec: int, data: bytes) -> int:
    answer: int = lib.mw_keyframe(codec, exact(data), len(data))
    return answer


def reference(codec: int) -> Callable[[memoryview], bool]:
    detector = keyframe_detector(CODEC_MIMES[codec])
    assert detector is not None
    return detector


REFERENCES = {codec: reference(codec) for codec in CODECS}


def check(codec: int, data: bytes) -> None:
    """The C answers as the reference, for an exact-size copy and inside a larger buffer."""
    expected = int(REFERENCES[codec](memoryview(data)))
    assert c_keyframe(codec, data) == expected, (codec, data.hex())
    around = exact(BEFORE + data + AFTER)
    assert lib.mw_keyframe(codec, around + len(BEFORE), len(data)) == expected, (codec, data.hex())


# ---- the interface ----------------------------------------------------------------------------


def test_enum_values() -> None:
    values = (lib.MW_KEYFRAME_NONE, lib.MW_KEYFRAME_VP8, lib.MW_KEYFRAME_VP9, lib.MW_KEYFRAME_H264,
              lib.MW_KEYFRAME_H265, lib.MW_KEYFRAME_AV1)
    assert values == (0, *CODECS)


@pytest.mark.parametrize("codec", [0, 6, 7, 255, 256, -1, 2**31 - 1, -(2**31)])
def test_none_or_unknown_codec_is_never_a_key_frame(codec: int) -> None:
    for data in (b"\x65", b"\x10\x9d\x01\x2a", b"\x08", bytes([0x78, 0, 1, 0x67]), b"\x26\x01"):
        assert lib.mw_keyframe(codec, exact(data), len(data)) == 0


@pytest.mark.parametrize("codec", CODECS)
def test_empty_and_null(codec: int) -> None:
    assert c_keyframe(codec, b"") == 0
    assert lib.mw_keyframe(codec, ffi.NULL, 0) == 0
    assert lib.mw_keyframe(codec, ffi.NULL, 16) == 0
    # A length of 0 reads nothing, whatever the pointer points at.
    assert lib.mw_keyframe(codec, exact(b"\x65\x26\x08\x10"), 0) == 0


def test_keyframe_codec_mapping() -> None:
    expected = {"video/vp8": VP8, "video/vp9": VP9, "video/h264": H264, "video/h264-svc": H264,
                "video/h265": H265, "video/av1": AV1}
    assert set(expected) == set(VIDEO_MIMES)
    for mime, codec in expected.items():
        assert keyframe_codec(mime) == codec
        assert keyframe_codec(mime.upper()) == codec
        assert keyframe_codec(mime.title()) == codec
        assert type(keyframe_codec(mime)) is int


@pytest.mark.parametrize("mime", ["audio/opus", "audio/PCMU", "video/rtx", "video/red",
                                  "video/ulpfec", "video/flexfec-03", "video/H266", "", "vp8",
                                  " video/vp8", "video/vp8 "])
def test_keyframe_codec_none(mime: str) -> None:
    assert keyframe_codec(mime) == lib.MW_KEYFRAME_NONE == 0
    assert keyframe_detector(mime) is None


def test_keyframe_codec_agrees_with_keyframe_detector() -> None:
    """The same mapping: 0 exactly where there is no detector, else the detector's own rules."""
    samples = [payload for _, _, payload, _ in CASES]
    mimes = {*VIDEO_MIMES, *(codec["mimeType"] for codec in SUPPORTED_CODECS)}
    for mime in sorted(mimes):
        for spelling in (mime, mime.lower(), mime.upper()):
            codec = keyframe_codec(spelling)
            detector = keyframe_detector(spelling)
            assert (codec == 0) is (detector is None), spelling
            if detector is None:
                continue
            for payload in samples:
                assert c_keyframe(codec, payload) == int(detector(memoryview(payload)))
                assert is_keyframe(spelling.lower(), payload) is detector(memoryview(payload))


# ---- every short payload ----------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
def test_every_payload_up_to_two_bytes(codec: int) -> None:
    detect = REFERENCES[codec]
    check(codec, b"")
    for size in (1, 2):
        for data in map(bytes, itertools.product(range(256), repeat=size)):
            assert c_keyframe(codec, data) == int(detect(memoryview(data))), (codec, data.hex())


# ---- every NAL unit type in an aggregate, every fragmentation header --------------------------

AGGREGATES = [
    (H264, "stap-a", bytes([0x78]), lambda t: bytes([0x60 | t]) + b"\xaa\x55"),
    (H264, "stap-b", bytes([0x79, 0x00, 0x07]), lambda t: bytes([0x60 | t]) + b"\xaa\x55"),
    (H265, "ap", bytes([48 << 1, 0x01]), lambda t: bytes([t << 1, 0x01]) + b"\xaa\x55"),
]


@pytest.mark.parametrize(("codec", "header", "nal"), [(c, h, n) for c, _, h, n in AGGREGATES],
                         ids=[name for _, name, _, _ in AGGREGATES])
def test_every_unit_type_in_an_aggregate(codec: int, header: bytes,
                                         nal: Callable[[int], bytes]) -> None:
    """Each NAL unit type as the first unit and after a non-key one; fitting exactly, running one
    byte past the end, with sizes 0, 1 and 2; then every cut of those."""
    types = range(32 if codec == H264 else 64)
    other = nal(1)
    for nal_type in types:
        unit = nal(nal_type)
        payloads = [
            header + struct.pack("!H", len(unit)) + unit,
            header + struct.pack("!H", len(other)) + other + struct.pack("!H", len(unit)) + unit,
            header + struct.pack("!H", len(unit) + 1) + unit,
            header + struct.pack("!H", len(other)) + other + struct.pack("!H", len(unit) + 1)
            + unit,
            *(header + struct.pack("!H", size) + unit for size in (0, 1, 2)),
        ]
        for payload in payloads:
            for end in range(len(payload) + 1):
                check(codec, payload[:end])


@pytest.mark.parametrize("fu_type", [28, 29], ids=["fu-a", "fu-b"])
def test_every_h264_fu_header(fu_type: int) -> None:
    for nri in (0x00, 0x60, 0xE0):
        for fu_header in range(256):
            payload = bytes([nri | fu_type, fu_header, 0x00, 0x07, 0x88])
            for end in range(len(payload) + 1):
                check(H264, payload[:end])


def test_every_h265_fu_header() -> None:
    for first in (49 << 1, 49 << 1 | 1, 0x80 | 49 << 1):
        for fu_header in range(256):
            for second in (0x01, 0xFF):
                check(H265, bytes([first, second, fu_header]))
                check(H265, bytes([first, second, fu_header, 0xAF]))


# ---- hand-built cases, fixtures, encoders -----------------------------------------------------


@pytest.mark.parametrize(("mime", "name", "payload", "key"), CASES, ids=CASE_IDS)
def test_hand_built_cases(mime: str, name: str, payload: bytes, key: bool) -> None:
    codec = keyframe_codec(mime)
    assert c_keyframe(codec, payload) == int(key), name
    check(codec, payload)
    for cut in range(len(payload)):
        check(codec, payload[:cut])


def fixture_payloads() -> list[tuple[str, bytes]]:
    payloads = []
    for path in sorted(RTP_FIXTURES.glob("*.bin")):
        packet = path.read_bytes()
        try:
            h = parse_rtp(packet)
        except ValueError:
            continue  # the malformed ones have no payload to detect
        payloads.append((path.name, packet[h.payload_offset : h.payload_offset + h.payload_length]))
    return payloads


FIXTURE_PAYLOADS = fixture_payloads()


def test_fixtures_found() -> None:
    names = [name for name, _ in FIXTURE_PAYLOADS]
    assert any(name.startswith("aiortc_vp8_key_") for name in names)
    assert any(name.startswith("aiortc_vp8_delta_") for name in names)


@pytest.mark.parametrize(("name", "payload"), FIXTURE_PAYLOADS,
                         ids=[name for name, _ in FIXTURE_PAYLOADS])
def test_captured_fixtures(name: str, payload: bytes) -> None:
    """Every captured payload (audio and RTX ones too) read as each codec."""
    for codec in CODECS:
        check(codec, payload)


def test_aiortc_encoders() -> None:
    for codec, encoder in ((VP8, Vp8Encoder()), (H264, H264Encoder())):
        frames = encoded_frames(encoder, {2}, 4)
        answers = []
        for payloads in frames:
            for payload in payloads:
                check(codec, payload)
                answers.append(c_keyframe(codec, payload))
        assert answers[0] == 1 and 0 in answers


# ---- generated payloads -----------------------------------------------------------------------


@given(st.sampled_from(CODECS), st.binary(max_size=96))
def test_random_bytes(codec: int, data: bytes) -> None:
    check(codec, data)


@given(st.data())
def test_mutated_cases(data: st.DataObject) -> None:
    mime, _, payload, _ = data.draw(st.sampled_from(CASES))
    buf = bytearray(payload)
    for _ in range(data.draw(st.integers(0, 4))):
        if buf:
            buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
    check(keyframe_codec(mime), bytes(buf[: data.draw(st.integers(0, len(buf)))]))


def cut(data: st.DataObject, payload: bytes) -> bytes:
    """The whole payload or, half the time, a prefix of it."""
    if data.draw(st.booleans()):
        return payload
    return payload[: data.draw(st.integers(0, len(payload)))]


bits = st.booleans


@given(st.data(), bits(), bits(), bits(), bits(), bits(), bits(), bits(), bits(), bits(),
       st.integers(0, 7))
def test_vp8_descriptors(data: st.DataObject, x: bool, i: bool, m: bool, l_: bool, t: bool,
                         k: bool, s: bool, n_bit: bool, r: bool, pid: int) -> None:
    """Descriptors with every combination of X, I (7- or 15-bit id), L, T and K."""
    b0 = (0x80 if x else 0) | (0x40 if r else 0) | (0x20 if n_bit else 0) | (0x10 if s else 0)
    out = bytearray([b0 | pid])
    if x:
        out.append((0x80 if i else 0) | (0x40 if l_ else 0) | (0x20 if t else 0)
                   | (0x10 if k else 0) | data.draw(st.integers(0, 15)))
        if i:
            first = data.draw(st.integers(0, 0x7F))
            out.append((0x80 if m else 0) | first)
            if m:
                out.append(data.draw(st.integers(0, 255)))
        if l_:
            out.append(data.draw(st.integers(0, 255)))
        if t or k:
            out.append(data.draw(st.integers(0, 255)))
    out += data.draw(st.binary(max_size=6))  # the VP8 payload header (P bit random)
    check(VP8, cut(data, bytes(out)))


@given(st.data(), bits(), bits(), bits(), bits(), bits(), bits(), bits(), bits(), bits(),
       bits())
def test_vp9_descriptors(data: st.DataObject, i: bool, p: bool, l_: bool, f: bool, b: bool,
                         e: bool, v: bool, z: bool, m: bool, layer_sid0: bool) -> None:
    """Descriptors with every combination of I (7- or 15-bit id), P, L, F, B, E, V and Z."""
    b0 = ((0x80 if i else 0) | (0x40 if p else 0) | (0x20 if l_ else 0) | (0x10 if f else 0)
          | (0x08 if b else 0) | (0x04 if e else 0) | (0x02 if v else 0) | (0x01 if z else 0))
    out = bytearray([b0])
    if i:
        out.append((0x80 if m else 0) | data.draw(st.integers(0, 0x7F)))
        if m:
            out.append(data.draw(st.integers(0, 255)))
    if l_:
        layer = data.draw(st.integers(0, 255))
        out.append(layer & ~0x0E if layer_sid0 else layer)
        if not f:
            out.append(data.draw(st.integers(0, 255)))  # TL0PICIDX
    out += data.draw(st.binary(max_size=8))  # P_DIFF, scalability structure, frame
    check(VP9, cut(data, bytes(out)))


def unit_sizes_and_bodies(data: st.DataObject, nal_header: st.SearchStrategy[bytes]) -> bytes:
    """(16-bit size, unit) pairs whose size is right, zero, one, or random (often past the
    end), followed by a random tail."""
    out = bytearray()
    for _ in range(data.draw(st.integers(0, 5))):
        body = data.draw(nal_header) + data.draw(st.binary(max_size=6))
        size = data.draw(st.sampled_from(["right", "zero", "one", "random", "over"]))
        value = {"right": len(body), "zero": 0, "one": 1, "over": len(body) + 1}.get(size)
        if value is None:
            value = data.draw(st.integers(0, 0xFFFF))
        out += struct.pack("!H", value) + body
    out += data.draw(st.binary(max_size=3))
    return bytes(out)


def h264_nal_header(key: bool | None = None) -> st.SearchStrategy[bytes]:
    types = st.sampled_from([5, 7]) if key else st.integers(0, 31)
    return st.builds(lambda f_nri, t: bytes([f_nri << 5 | t]), st.integers(0, 7), types)


@given(st.data(), st.sampled_from([24, 25]), st.integers(0, 7))
def test_h264_stap(data: st.DataObject, stap_type: int, f_nri: int) -> None:
    """STAP-A and STAP-B with unit sizes that fit, are zero, or run past the end."""
    header = bytes([f_nri << 5 | stap_type])
    if stap_type == 25:
        header += data.draw(st.binary(min_size=2, max_size=2))  # decoding order number
    nal = data.draw(st.sampled_from([h264_nal_header(), h264_nal_header(key=True)]))
    check(H264, cut(data, header + unit_sizes_and_bodies(data, nal)))


@given(st.data(), st.sampled_from([28, 29]), st.integers(0, 7), bits(), bits(), bits(),
       st.integers(0, 31))
def test_h264_fu(data: st.DataObject, fu_type: int, f_nri: int, start: bool, end: bool,
                 r: bool, nal_type: int) -> None:
    """FU-A and FU-B: start and non-start fragments of every NAL unit type."""
    fu_header = (0x80 if start else 0) | (0x40 if end else 0) | (0x20 if r else 0) | nal_type
    out = bytes([f_nri << 5 | fu_type, fu_header]) + data.draw(st.binary(max_size=6))
    check(H264, cut(data, out))


@given(st.data(), st.integers(0, 255), st.binary(max_size=8))
def test_h264_single_nal_units(data: st.DataObject, first: int, rest: bytes) -> None:
    check(H264, cut(data, bytes([first]) + rest))


def h265_nal_header(key: bool | None = None) -> st.SearchStrategy[bytes]:
    types = st.sampled_from([19, 20, 21, 32, 33, 34]) if key else st.integers(0, 63)
    return st.builds(lambda f, t, layer_tid: bytes([f << 7 | t << 1 | layer_tid >> 8,
                                                    layer_tid & 0xFF]),
                     st.integers(0, 1), types, st.integers(0, 0x1FF))


@given(st.data(), st.integers(0, 1), st.integers(0, 0x1FF))
def test_h265_aggregation_packets(data: st.DataObject, f: int, layer_tid: int) -> None:
    """Aggregation packets with unit sizes that fit, are below 2, or run past the end."""
    header = bytes([f << 7 | 48 << 1 | layer_tid >> 8, layer_tid & 0xFF])
    nal = data.draw(st.sampled_from([h265_nal_header(), h265_nal_header(key=True)]))
    check(H265, cut(data, header + unit_sizes_and_bodies(data, nal)))


@given(st.data(), st.integers(0, 1), st.integers(0, 0x1FF), bits(), bits(),
       st.integers(0, 63))
def test_h265_fu(data: st.DataObject, f: int, layer_tid: int, start: bool, end: bool,
                 fu_type: int) -> None:
    """Fragmentation units: start and non-start fragments of every NAL unit type."""
    out = bytes([f << 7 | 49 << 1 | layer_tid >> 8, layer_tid & 0xFF,
                 (0x80 if start else 0) | (0x40 if end else 0) | fu_type])
    check(H265, cut(data, out + data.draw(st.binary(max_size=6))))


@given(st.data(), h265_nal_header(), st.binary(max_size=8))
def test_h265_single_nal_units(data: st.DataObject, header: bytes, rest: bytes) -> None:
    check(H265, cut(data, header + rest))


@given(st.data(), st.integers(0, 255), st.binary(max_size=8))
def test_av1(data: st.DataObject, aggregation_header: int, rest: bytes) -> None:
    check(AV1, cut(data, bytes([aggregation_header]) + rest))
