"""Key-frame detection (``worker.keyframe``): hand-built payloads for every branch of each codec,
real payloads from aiortc's VP8 and H264 encoders and the captured ``aiortc_vp8_*`` fixtures,
the payload slice the caller takes after ``parse_rtp``, and random bytes that never raise.

In the hand-built descriptors the optional fields hold values chosen so that reading the
deciding byte at a wrong offset gives the opposite answer (odd bytes before a VP8 key frame's
payload header, even ones before a delta frame's; non-zero SID bits before a VP9 layer byte of
spatial layer 0, zero ones before a layer 1 byte).
"""

from __future__ import annotations

import fractions
import struct
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np
import pytest
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from hypothesis import given
from hypothesis import strategies as st

from tests.reference.rtp import RtpPacket
from worker._fast import parse_rtp
from worker.keyframe import is_keyframe, keyframe_detector
from worker.supported_rtp_capabilities import SUPPORTED_CODECS

RTP_FIXTURES = Path(__file__).parent / "fixtures" / "rtp"
VIDEO_MIMES = ("video/vp8", "video/vp9", "video/h264", "video/h264-svc", "video/h265",
               "video/av1")

# ---- VP8 (RFC 7741) ---------------------------------------------------------------------------

VP8_KEY_HEADER = bytes.fromhex("5002009d012a4001f000")  # P = 0, start code, 320x240
VP8_DELTA_HEADER = bytes.fromhex("b10400")  # P = 1


def vp8(key: bool, *, start: bool = True, pid: int = 0, x: bool = False,
        picture_id: int | None = None, tl0picidx: bool = False, tid: bool = False,
        keyidx: bool = False, header: bytes | None = None) -> bytes:
    """A VP8 payload: descriptor, then a key or delta payload header (or ``header``)."""
    filler = 0x01 if key else 0x02
    ext = 0
    fields = bytearray()
    if picture_id is not None:
        ext |= 0x80
        if picture_id > 0x7F:
            fields += bytes([0x80 | picture_id >> 8, picture_id & 0xFF])
        else:
            fields.append(picture_id)
    if tl0picidx:
        ext |= 0x40
        fields.append(filler)
    if tid or keyidx:
        ext |= (0x20 if tid else 0) | (0x10 if keyidx else 0)
        fields.append(0x40 | filler)  # TID 1, Y 0, KEYIDX 1 or 2
    b0 = (0x10 if start else 0) | pid
    descriptor = bytes([b0 | 0x80, ext]) + fields if ext or x else bytes([b0])
    if header is None:
        header = VP8_KEY_HEADER if key else VP8_DELTA_HEADER
    return descriptor + header


VP8_KEY_ID = 0x0103  # 15-bit picture id with odd bytes
VP8_DELTA_ID = 0x0204  # and with even bytes

VP8_CASES: list[tuple[str, bytes, bool]] = [
    ("no-extension", vp8(True), True),
    ("x-without-fields", vp8(True, x=True), True),
    ("picture-id-7bit", vp8(True, picture_id=0x11), True),
    ("picture-id-15bit", vp8(True, picture_id=VP8_KEY_ID), True),
    ("tl0picidx", vp8(True, tl0picidx=True), True),
    ("tid", vp8(True, tid=True), True),
    ("keyidx", vp8(True, keyidx=True), True),
    ("all-fields", vp8(True, picture_id=VP8_KEY_ID, tl0picidx=True, tid=True, keyidx=True),
     True),
    ("n-bit-ignored", bytes([0x30]) + VP8_KEY_HEADER, True),
    ("reserved-bits-ignored", bytes([0x58]) + VP8_KEY_HEADER, True),
    ("delta", vp8(False), False),
    ("delta-x-without-fields", vp8(False, x=True), False),
    ("delta-picture-id-7bit", vp8(False, picture_id=0x10), False),
    ("delta-all-fields",
     vp8(False, picture_id=VP8_DELTA_ID, tl0picidx=True, tid=True, keyidx=True), False),
    ("continuation", vp8(True, start=False), False),
    ("continuation-all-fields",
     vp8(True, start=False, picture_id=VP8_KEY_ID, tl0picidx=True, tid=True), False),
    ("partition-1", vp8(True, pid=1), False),
    ("partition-7-with-fields", vp8(True, pid=7, picture_id=VP8_KEY_ID), False),
    ("descriptor-only", vp8(True, header=b""), False),
    ("all-fields-descriptor-only",
     vp8(True, picture_id=VP8_KEY_ID, tl0picidx=True, tid=True, header=b""), False),
    ("x-byte-missing", bytes([0x90]), False),
    ("picture-id-missing", bytes([0x90, 0x80]), False),
    ("picture-id-15bit-cut", bytes([0x90, 0x80, 0x81]), False),
    ("empty", b"", False),
]

# ---- VP9 (RFC 9628) ---------------------------------------------------------------------------

VP9_FRAME = bytes.fromhex("8249834200")  # frame marker and sync code of a key frame


def vp9(*, p: bool = False, b: bool = True, e: bool = True, picture_id: int | None = None,
        sid: int | None = None, d: bool = False, flexible: bool = False,
        p_diffs: Sequence[int] = (), ss: bytes = b"", frame: bytes = VP9_FRAME) -> bytes:
    """A VP9 payload: descriptor (with a layer byte when ``sid`` is given), then ``frame``."""
    b0 = ((0x80 if picture_id is not None else 0) | (0x40 if p else 0)
          | (0x20 if sid is not None else 0) | (0x10 if flexible else 0) | (0x08 if b else 0)
          | (0x04 if e else 0) | (0x02 if ss else 0))
    out = bytearray([b0])
    if picture_id is not None:
        out += (bytes([0x80 | picture_id >> 8, picture_id & 0xFF]) if picture_id > 0x7F
                else bytes([picture_id]))
    if sid is not None:
        out.append(0x20 | 0x10 | sid << 1 | (1 if d else 0))  # TID 1, U 1
        if not flexible:
            out.append(0x00)  # TL0PICIDX
    if flexible and p:
        for i, diff in enumerate(p_diffs):
            out.append(diff << 1 | (1 if i < len(p_diffs) - 1 else 0))
    return bytes(out + ss + frame)


VP9_ID_SID_BITS = 0x0E0E  # a 15-bit picture id whose bytes have every SID bit set
VP9_ID_NO_SID_BITS = 0x0110  # and one whose bytes have none
VP9_SS = bytes.fromhex("18014000f000")  # N_S 0, Y: 320x240, no G

VP9_CASES: list[tuple[str, bytes, bool]] = [
    ("no-fields", vp9(), True),
    ("not-end-of-frame", vp9(e=False), True),
    ("picture-id-7bit", vp9(picture_id=0x0E), True),
    ("picture-id-15bit", vp9(picture_id=VP9_ID_SID_BITS), True),
    ("layer-sid0-non-flexible", vp9(picture_id=VP9_ID_SID_BITS, sid=0), True),
    ("layer-sid0-flexible", vp9(picture_id=VP9_ID_SID_BITS, sid=0, flexible=True), True),
    ("layer-sid0-no-picture-id", vp9(sid=0), True),
    ("layer-sid0-picture-id-7bit", vp9(picture_id=0x0E, sid=0), True),
    ("scalability-structure", vp9(picture_id=VP9_ID_SID_BITS, sid=0, ss=VP9_SS), True),
    ("descriptor-only", vp9(frame=b""), True),
    ("layer-sid1-inter-layer", vp9(picture_id=VP9_ID_NO_SID_BITS, sid=1, d=True), False),
    ("layer-sid1-flexible", vp9(picture_id=VP9_ID_NO_SID_BITS, sid=1, flexible=True), False),
    ("layer-sid7", vp9(picture_id=0x10, sid=7), False),
    ("inter-predicted", vp9(p=True), False),
    ("inter-predicted-flexible",
     vp9(p=True, picture_id=VP9_ID_NO_SID_BITS, sid=0, flexible=True, p_diffs=(1, 2)), False),
    ("inter-predicted-non-flexible", vp9(p=True, picture_id=VP9_ID_NO_SID_BITS, sid=0), False),
    ("continuation", vp9(b=False), False),
    ("continuation-with-layer", vp9(b=False, picture_id=VP9_ID_SID_BITS, sid=0), False),
    ("picture-id-missing", bytes([0xA8]), False),
    ("picture-id-15bit-cut", bytes([0xA8, 0x81]), False),
    ("layer-byte-missing", bytes([0xA8, 0x81, 0x02]), False),
    ("layer-byte-missing-no-picture-id", bytes([0x28]), False),
    ("empty", b"", False),
]

# ---- H264 (RFC 6184) --------------------------------------------------------------------------

H264_SPS = bytes.fromhex("6742c01fda8141f9")
H264_PPS = bytes.fromhex("68ce3c80")
H264_IDR = bytes.fromhex("65888400ff")
H264_SLICE = bytes.fromhex("419a2240")
H264_SEI = bytes.fromhex("0605ff")


def units(nals: Sequence[bytes]) -> bytes:
    """(16-bit size, NAL unit) pairs, as in a STAP or an H265 aggregation packet."""
    return b"".join(struct.pack("!H", len(nal)) + nal for nal in nals)


def stap_a(*nals: bytes) -> bytes:
    return bytes([0x78]) + units(nals)


def stap_b(*nals: bytes) -> bytes:
    return bytes([0x79, 0x00, 0x07]) + units(nals)  # decoding order number 7


def h264_fu(nal: bytes, *, start: bool, end: bool = False, fu_type: int = 28) -> bytes:
    """An FU-A (or FU-B with its decoding order number) carrying part of ``nal``."""
    indicator = (nal[0] & 0xE0) | fu_type
    header = (0x80 if start else 0) | (0x40 if end else 0) | (nal[0] & 0x1F)
    don = b"\x00\x07" if fu_type == 29 else b""
    return bytes([indicator, header]) + don + nal[1:]


H264_CASES: list[tuple[str, bytes, bool]] = [
    ("single-idr", H264_IDR, True),
    ("single-idr-nri-1", bytes([0x25]) + H264_IDR[1:], True),
    ("single-sps", H264_SPS, True),
    ("single-pps", H264_PPS, False),
    ("single-slice", H264_SLICE, False),
    ("single-sei", H264_SEI, False),
    ("single-header-only-idr", bytes([0x65]), True),
    ("stap-a-sps-pps-idr", stap_a(H264_SPS, H264_PPS, H264_IDR), True),
    ("stap-a-idr-last", stap_a(H264_SEI, H264_PPS, H264_IDR), True),
    ("stap-a-sps-only", stap_a(H264_SPS), True),
    ("stap-a-no-key", stap_a(H264_SEI, H264_PPS, H264_SLICE), False),
    ("stap-a-idr-past-end", stap_a(H264_PPS) + struct.pack("!H", 9) + H264_IDR, False),
    ("stap-a-size-zero", stap_a(H264_PPS) + b"\x00\x00" + H264_IDR, False),
    ("stap-a-size-only", stap_a(H264_PPS) + b"\x00\x05", False),
    ("stap-a-header-only", bytes([0x78]), False),
    ("stap-b-sps", stap_b(H264_SEI, H264_SPS), True),
    ("stap-b-no-key", stap_b(H264_PPS, H264_SLICE), False),
    ("stap-b-cut-don", bytes([0x79, 0x00]), False),
    ("fu-a-start-idr", h264_fu(H264_IDR, start=True), True),
    ("fu-a-start-end-idr", h264_fu(H264_IDR, start=True, end=True), True),
    ("fu-a-start-sps", h264_fu(H264_SPS, start=True), True),
    ("fu-a-middle-idr", h264_fu(H264_IDR, start=False), False),
    ("fu-a-end-idr", h264_fu(H264_IDR, start=False, end=True), False),
    ("fu-a-start-slice", h264_fu(H264_SLICE, start=True), False),
    ("fu-a-indicator-only", bytes([0x7C]), False),
    ("fu-b-start-idr", h264_fu(H264_IDR, start=True, fu_type=29), True),
    ("fu-b-middle-idr", h264_fu(H264_IDR, start=False, fu_type=29), False),
    ("mtap16", bytes([0x7A, 0x00, 0x07]) + units([H264_IDR]), False),
    ("type-0", bytes([0x00]) + H264_IDR, False),
    ("empty", b"", False),
]

# ---- H265 (RFC 7798) --------------------------------------------------------------------------


def h265_nal(nal_type: int, body: bytes = b"\xaf\x08\x40") -> bytes:
    return bytes([nal_type << 1, 0x01]) + body  # layer 0, TID 1


def h265_ap(*nals: bytes) -> bytes:
    return bytes([48 << 1, 0x01]) + units(nals)


def h265_fu(nal_type: int, *, start: bool, end: bool = False) -> bytes:
    return bytes([49 << 1, 0x01, (0x80 if start else 0) | (0x40 if end else 0) | nal_type,
                  0xAF, 0x08])


H265_KEY_TYPES = {19: "idr-w-radl", 20: "idr-n-lp", 21: "cra", 32: "vps", 33: "sps", 34: "pps"}
H265_OTHER_TYPES = {0: "trail-n", 1: "trail-r", 16: "bla-w-lp", 35: "aud", 39: "prefix-sei",
                    50: "paci"}

H265_CASES: list[tuple[str, bytes, bool]] = [
    *((f"single-{name}", h265_nal(t), True) for t, name in H265_KEY_TYPES.items()),
    *((f"single-{name}", h265_nal(t), False) for t, name in H265_OTHER_TYPES.items()),
    ("single-header-only-idr", h265_nal(19, b""), True),
    ("single-layer-1-bit", bytes([19 << 1 | 1, 0x01]), True),
    ("ap-vps-sps-pps-idr", h265_ap(h265_nal(32), h265_nal(33), h265_nal(34), h265_nal(19)),
     True),
    ("ap-cra-last", h265_ap(h265_nal(39), h265_nal(21)), True),
    ("ap-no-key", h265_ap(h265_nal(39), h265_nal(1)), False),
    ("ap-unit-size-1", h265_ap(h265_nal(39))[:2] + b"\x00\x01" + bytes([19 << 1]), False),
    ("ap-unit-past-end", h265_ap(h265_nal(39)) + b"\x00\x09" + h265_nal(19), False),
    ("ap-header-only", h265_ap(), False),
    *((f"fu-start-{name}", h265_fu(t, start=True), True) for t, name in H265_KEY_TYPES.items()),
    ("fu-start-end-idr", h265_fu(19, start=True, end=True), True),
    ("fu-middle-idr", h265_fu(19, start=False), False),
    ("fu-end-idr", h265_fu(19, start=False, end=True), False),
    ("fu-start-trail-r", h265_fu(1, start=True), False),
    ("fu-header-missing", bytes([49 << 1, 0x01]), False),
    ("one-byte", bytes([19 << 1]), False),
    ("empty", b"", False),
]

# ---- AV1 (AOMedia RTP payload format) ---------------------------------------------------------

AV1_OBU = bytes.fromhex("0a0b0000")  # a sequence header OBU's first bytes

AV1_CASES: list[tuple[str, bytes, bool]] = [
    ("new-sequence", bytes([0x08]) + AV1_OBU, True),
    ("new-sequence-w1", bytes([0x18]) + AV1_OBU, True),
    ("new-sequence-continued-last-obu", bytes([0x48]) + AV1_OBU, True),
    ("header-only", bytes([0x08]), True),
    ("same-sequence", bytes([0x10]) + AV1_OBU, False),
    ("same-sequence-continued", bytes([0xD0]) + AV1_OBU, False),
    ("n-with-z", bytes([0x88]) + AV1_OBU, False),
    ("empty", b"", False),
]

CASES: list[tuple[str, str, bytes, bool]] = [
    *(("video/vp8", *case) for case in VP8_CASES),
    *(("video/vp9", *case) for case in VP9_CASES),
    *(("video/h264", *case) for case in H264_CASES),
    *(("video/h264-svc", *case) for case in H264_CASES if case[0].startswith("stap-a")),
    *(("video/h265", *case) for case in H265_CASES),
    *(("video/av1", *case) for case in AV1_CASES),
]
CASE_IDS = [f"{mime.removeprefix('video/')}-{name}" for mime, name, _, _ in CASES]
KEY_CASES = [(mime, payload) for mime, _, payload, key in CASES if key]
KEY_CASE_IDS = [case_id for case_id, case in zip(CASE_IDS, CASES, strict=True) if case[3]]


def detect(mime: str, payload: bytes) -> bool:
    detector = keyframe_detector(mime)
    assert detector is not None
    return detector(memoryview(payload))


# ---- hand-built payloads ----------------------------------------------------------------------


@pytest.mark.parametrize(("mime", "name", "payload", "key"), CASES, ids=CASE_IDS)
def test_hand_built_payloads(mime: str, name: str, payload: bytes, key: bool) -> None:
    assert detect(mime, payload) is key, name
    assert is_keyframe(mime, payload) is key, name


@pytest.mark.parametrize(("mime", "name", "payload", "key"), CASES, ids=CASE_IDS)
def test_only_the_view_is_read(mime: str, name: str, payload: bytes, key: bool) -> None:
    """A slice of a larger buffer: the bytes around it are never read."""
    before = b"\x65\x08\x10\x26"  # a key byte for several codecs
    after = bytes([0x00, 0x05, 0x65, 0x26, 0x00, 0x00, 0x01]) * 3
    view = memoryview(before + payload + after)[len(before) : len(before) + len(payload)]
    assert detect(mime, bytes(view)) is key, name
    assert detect(mime, payload) is key, name
    detector = keyframe_detector(mime)
    assert detector is not None and detector(view) is key, name


@pytest.mark.parametrize(("mime", "payload"), KEY_CASES, ids=KEY_CASE_IDS)
def test_trailing_bytes_keep_a_key_frame(mime: str, payload: bytes) -> None:
    for tail in (b"\x00", b"\xff" * 7, bytes(range(40))):
        assert detect(mime, payload + tail)


@pytest.mark.parametrize(("mime", "payload"), KEY_CASES, ids=KEY_CASE_IDS)
def test_cut_before_the_deciding_byte(mime: str, payload: bytes) -> None:
    """Every prefix of a key payload is answered without raising; the empty one is False."""
    answers = [detect(mime, payload[:n]) for n in range(len(payload) + 1)]
    assert answers[0] is False
    assert answers[-1] is True
    # Once the deciding byte is in, the answer stays (no later byte changes a key frame).
    first_true = answers.index(True)
    assert all(answers[first_true:])


def test_vp8_key_needs_its_payload_header() -> None:
    payload = vp8(True, picture_id=VP8_KEY_ID, tl0picidx=True, tid=True)
    descriptor_len = 6
    assert not detect("video/vp8", payload[:descriptor_len])
    assert detect("video/vp8", payload[: descriptor_len + 1])


def test_h264_svc_uses_the_h264_rules() -> None:
    for _, payload, key in H264_CASES:
        assert detect("video/h264-svc", payload) is detect("video/h264", payload) is key


# ---- lookup -----------------------------------------------------------------------------------


def test_detector_lookup_ignores_case() -> None:
    for mime in VIDEO_MIMES:
        detector = keyframe_detector(mime)
        assert detector is not None
        assert keyframe_detector(mime.upper()) is detector
    assert keyframe_detector("Video/Vp8") is keyframe_detector("video/vp8")


@pytest.mark.parametrize("mime", ["audio/opus", "audio/PCMU", "video/rtx", "video/red",
                                  "video/ulpfec", "video/flexfec-03", "video/H266", "", "vp8"])
def test_no_detector(mime: str) -> None:
    assert keyframe_detector(mime) is None
    assert is_keyframe(mime.lower(), H264_IDR) is False


def test_every_supported_video_codec_has_a_detector() -> None:
    for codec in SUPPORTED_CODECS:
        detector = keyframe_detector(codec["mimeType"])
        if codec["kind"] == "video":
            assert detector is not None, codec["mimeType"]
        else:
            assert detector is None, codec["mimeType"]


def test_is_keyframe_takes_the_lowercased_type() -> None:
    assert is_keyframe("video/h264", H264_IDR)
    assert is_keyframe("video/h264", memoryview(H264_IDR))
    assert not is_keyframe("video/H264", H264_IDR)


# ---- the caller's slice after parse_rtp -------------------------------------------------------


def payload_view(packet: bytes) -> memoryview:
    h = parse_rtp(packet)
    return memoryview(packet)[h.payload_offset : h.payload_offset + h.payload_length]


@pytest.mark.parametrize(("mime", "payload", "padding"), [
    # Both would be key frames if the padding were read as payload.
    ("video/vp8", vp8(True, picture_id=0x05, header=b""), b"\x00\x00\x03"),
    ("video/h264", stap_a(H264_PPS), b"\x00\x01\x65\x04"),
], ids=["vp8-descriptor-only", "h264-stap-a-pps"])
def test_padding_is_not_payload(mime: str, payload: bytes, padding: bytes) -> None:
    packet = RtpPacket(payload_type=96, sequence_number=1, ssrc=0x1234, csrc=(7, 8),
                       extension_profile=0xBEDE, extension_data=b"\x10\x01\x00\x00",
                       payload=payload, padding=padding).serialize()
    view = payload_view(packet)
    assert bytes(view) == payload
    assert not detect(mime, bytes(view))
    assert detect(mime, bytes(view) + padding)  # what reading the padding would have said


@pytest.mark.parametrize(("mime", "name", "payload", "key"), CASES, ids=CASE_IDS)
def test_payload_view_of_a_packet(mime: str, name: str, payload: bytes, key: bool) -> None:
    packet = RtpPacket(payload_type=96, marker=1, sequence_number=9, timestamp=3000,
                       ssrc=0xABCD, csrc=(1,), extension_profile=0xBEDE,
                       extension_data=b"\x22\x01\x02\x03", payload=payload,
                       padding=b"\x65\x00\x03").serialize()
    detector = keyframe_detector(mime)
    assert detector is not None
    assert detector(payload_view(packet)) is key, name


# ---- captured aiortc packets ------------------------------------------------------------------


def test_captured_vp8_key_frame() -> None:
    """``aiortc_vp8_key_01`` starts the key frame; the others continue it (S = 0)."""
    keys = sorted(RTP_FIXTURES.glob("aiortc_vp8_key_*.bin"))
    assert keys, "no captured VP8 key-frame packets"
    detector = keyframe_detector("video/VP8")
    assert detector is not None
    answers = [detector(payload_view(path.read_bytes())) for path in keys]
    assert answers == [True] + [False] * (len(keys) - 1)


def test_captured_vp8_delta_frames() -> None:
    deltas = sorted(RTP_FIXTURES.glob("aiortc_vp8_delta_*.bin"))
    assert deltas, "no captured VP8 delta-frame packets"
    detector = keyframe_detector("video/VP8")
    assert detector is not None
    for path in [*deltas, RTP_FIXTURES / "doc_chrome_vp8_one_byte_ext.bin"]:
        assert not detector(payload_view(path.read_bytes())), path.name


# ---- real encoders ----------------------------------------------------------------------------


def encoded_frames(encoder: H264Encoder | Vp8Encoder, keys: set[int],
                   count: int) -> list[list[bytes]]:
    """``count`` frames of a moving noisy picture, as aiortc packetizes them."""
    rng = np.random.default_rng(5)
    frames = []
    for i in range(count):
        image = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = i * 3000
        frame.time_base = fractions.Fraction(1, 90000)
        payloads, _ = encoder.encode(frame, force_keyframe=i in keys)
        frames.append(payloads)
    return frames


def test_aiortc_vp8_encoder() -> None:
    detector = keyframe_detector("video/VP8")
    assert detector is not None
    frames = encoded_frames(Vp8Encoder(), {3}, 5)
    for i, payloads in enumerate(frames):
        answers = [detector(memoryview(p)) for p in payloads]
        expected_key = i in (0, 3)
        assert answers[0] is expected_key, (i, answers)
        assert not any(answers[1:]), (i, answers)


def test_aiortc_h264_encoder() -> None:
    """Key frames: STAP-A with SPS and PPS, then an FU-A starting the IDR slice."""
    detector = keyframe_detector("video/H264")
    assert detector is not None
    frames = encoded_frames(H264Encoder(), {3}, 5)
    for i, payloads in enumerate(frames):
        answers = [detector(memoryview(p)) for p in payloads]
        if i in (0, 3):
            assert answers[0], (i, answers)
            starts = [p for p in payloads if (p[0] & 0x1F) == 28 and p[1] & 0x80]
            assert starts and all(detector(memoryview(p)) for p in starts)
        else:
            assert not any(answers), (i, answers)


# ---- random input -----------------------------------------------------------------------------


@given(st.sampled_from(VIDEO_MIMES), st.binary(max_size=64))
def test_random_bytes_never_raise(mime: str, payload: bytes) -> None:
    assert detect(mime, payload) in (True, False)
    assert is_keyframe(mime, payload) is detect(mime, payload)


@given(st.data())
def test_mutated_payloads_never_raise(data: st.DataObject) -> None:
    mime, _, payload, _ = data.draw(st.sampled_from(CASES))
    buf = bytearray(payload)
    for _ in range(data.draw(st.integers(0, 4))):
        if buf:
            buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(buf)))
    view = memoryview(bytes(buf))[: cut]
    detector = keyframe_detector(mime)
    assert detector is not None
    assert detector(view) in (True, False)


@given(st.data())
def test_random_aggregates_never_raise(data: st.DataObject) -> None:
    """STAP-A and AP packets with random unit sizes walk to their end without raising."""
    sizes = data.draw(st.lists(st.integers(0, 0xFFFF) | st.integers(0, 8), max_size=8))
    body = b"".join(struct.pack("!H", size) + data.draw(st.binary(max_size=8)) for size in sizes)
    assert detect("video/h264", bytes([0x78]) + body) in (True, False)
    assert detect("video/h264", bytes([0x79, 0x00]) + body) in (True, False)
    assert detect("video/h265", bytes([48 << 1, 0x01]) + body) in (True, False)
