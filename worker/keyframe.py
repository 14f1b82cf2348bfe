"""Key-frame detection from an RTP payload, for every video codec the router supports.

This module owns one question: does this RTP packet start a key frame (or carry the parameter
sets that come with one)? It is sans-IO and keeps no state: each detector reads a few bytes of
one payload and answers.

- :func:`keyframe_detector` turns a codec's MIME type (any case) into a detector, or None for
  audio and for codecs that carry no frames of their own (RTX, RED, FEC) or are unknown. Look it
  up once per stream and call the detector for each received packet.
- :func:`is_keyframe` answers for one payload given the lowercased MIME type (False for a type
  with no detector).
- :func:`keyframe_codec` turns a MIME type (any case) into the ``enum mw_keyframe_codec`` value
  of the C twin of these detectors, ``mw_keyframe`` (``cffi_build/keyframe.c``), which the
  batch media path calls without Python: 0 (``MW_KEYFRAME_NONE``) exactly where
  :func:`keyframe_detector` gives None. The C gives the same answer as the detector here for
  every payload (``tests/test_keyframe_c.py`` checks it against these detectors).

The detectors here stay in Python: for one payload held in a memoryview, a cffi call (with
``ffi.from_buffer`` on the view) costs more than these few byte reads, most of which stop at the
first byte (measured on aiortc's VP8 and H264 streams sliced from a slab: about 140 and 240 ns
per payload here, 410 and 540 ns through the C).

The payload is the RTP payload only, without the RTP header and without RTP padding. With the
header parsed by :func:`worker._fast.parse_rtp` (whose ``payload_length`` already excludes the
padding)::

    h = parse_rtp(packet)
    end = h.payload_offset + h.payload_length
    if detect(memoryview(packet)[h.payload_offset:end]): ...

The memoryview must have the byte format (``"B"``, what ``memoryview`` of ``bytes`` or
``bytearray`` gives). The slice is a view, so nothing is copied; the detectors only index
single bytes. RTX packets are detected after decapsulation, never as sent (their payload starts
with the original sequence number).

A detector never raises on network input: a payload that is empty, truncated or malformed gives
False. It answers True only for the packet that begins a key frame, not for the packets that
continue it:

- VP8 (RFC 7741): the payload descriptor (X byte with its I, L, T and K extensions; a 15-bit
  picture id when M is set) has S = 1 and PID = 0, and the VP8 payload header that follows it has
  the P bit clear (RFC 6386 section 9.1, "key frame").
- VP9 (RFC 9628): the descriptor's B bit (start of a frame) is set and its P bit (inter-picture
  predicted) is clear, and the frame is of spatial layer 0 (SID of the layer byte, present when L
  is set; none means layer 0). The layer byte is at the same place in flexible and non-flexible
  mode, after the picture id (one or two bytes when I is set); with P clear there are no P_DIFF
  bytes.
- H264 (RFC 6184), also for H264-SVC's base layer (RFC 6190): a single NAL unit of type 5 (IDR
  slice) or 7 (SPS); a STAP-A (24) or STAP-B (25) whose aggregated units include one of those (a
  unit whose size runs past the payload ends the walk with False); an FU-A (28) or FU-B (29)
  fragment with the start bit set that fragments a type 5 or 7 unit.
- H265 (RFC 7798): a single NAL unit of type IDR_W_RADL (19), IDR_N_LP (20), CRA (21), VPS (32),
  SPS (33) or PPS (34); an aggregation packet (48) including one (no DONL fields: WebRTC sends
  none); a fragmentation unit (49) with the start bit set and one of those types.
- AV1 (the AOMedia RTP payload format): the aggregation header's N bit (first packet of a new
  coded video sequence) is set and its Z bit (the first OBU continues one from the previous
  packet) is clear.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from worker._fast._lib import lib

__all__ = ["KeyframeDetector", "Payload", "is_keyframe", "keyframe_codec", "keyframe_detector"]

Payload = bytes | memoryview
KeyframeDetector = Callable[[memoryview], bool]

# H264 NAL unit types (RFC 6184 section 5.2, ITU-T H.264 table 7-1).
_H264_IDR: Final = 5
_H264_SPS: Final = 7
_H264_STAP_A: Final = 24
_H264_STAP_B: Final = 25
_H264_FU_A: Final = 28
_H264_FU_B: Final = 29
_H264_TYPE_MASK: Final = 0x1F
_H264_KEY_TYPES: Final = frozenset({_H264_IDR, _H264_SPS})
_H264_FU_TYPES: Final = frozenset({_H264_FU_A, _H264_FU_B})
# An FU header (S|E|R|Type) with the start bit and a key type, E and R masked out.
_H264_FU_START_MASK: Final = 0x9F
_H264_FU_KEY_STARTS: Final = frozenset({0x80 | _H264_IDR, 0x80 | _H264_SPS})

# H265 NAL unit types (RFC 7798 section 1.1.4, ITU-T H.265 table 7-1).
_H265_KEY_TYPES: Final = frozenset({19, 20, 21, 32, 33, 34})
_H265_AP: Final = 48
_H265_FU: Final = 49
_H265_NAL_HEADER_BYTES: Final = 2

# VP8 payload descriptor (RFC 7741 section 4.2).
_VP8_X: Final = 0x80
_VP8_S_PID_MASK: Final = 0x17  # S bit and the 3 PID bits; R and N are ignored
_VP8_S_PID0: Final = 0x10
_VP8_I: Final = 0x80
_VP8_L: Final = 0x40
_VP8_T_OR_K: Final = 0x30
_VP8_M: Final = 0x80
_VP8_INTER_FRAME: Final = 0x01  # P bit of the VP8 payload header: set on inter frames

# VP9 payload descriptor (RFC 9628 section 4.2).
_VP9_I: Final = 0x80
_VP9_P_B_MASK: Final = 0x48  # P (inter-picture predicted) and B (start of frame)
_VP9_B_ONLY: Final = 0x08
_VP9_L: Final = 0x20
_VP9_M: Final = 0x80
_VP9_SID_MASK: Final = 0x0E  # TID(3) U SID(3) D

# AV1 aggregation header: Z Y W(2) N - - -.
_AV1_Z_N_MASK: Final = 0x88
_AV1_N_ONLY: Final = 0x08


def _vp8(p: Payload) -> bool:
    n = len(p)
    if n < 2 or (p[0] & _VP8_S_PID_MASK) != _VP8_S_PID0:
        return False
    offset = 1
    if p[0] & _VP8_X:
        ext = p[1]
        offset = 2
        if ext & _VP8_I:
            if offset >= n:
                return False
            offset += 2 if p[offset] & _VP8_M else 1
        if ext & _VP8_L:
            offset += 1
        if ext & _VP8_T_OR_K:
            offset += 1
    return offset < n and not (p[offset] & _VP8_INTER_FRAME)


def _vp9(p: Payload) -> bool:
    n = len(p)
    if n < 1:
        return False
    b0 = p[0]
    if (b0 & _VP9_P_B_MASK) != _VP9_B_ONLY:
        return False
    if not b0 & _VP9_L:
        return True
    offset = 1
    if b0 & _VP9_I:
        if n < 2:
            return False
        offset = 3 if p[1] & _VP9_M else 2
    return offset < n and not (p[offset] & _VP9_SID_MASK)


def _h264_aggregate(p: Payload, offset: int, n: int) -> bool:
    """Walk the (16-bit size, NAL unit) pairs of a STAP from ``offset``."""
    while offset + 2 < n:
        size = (p[offset] << 8) | p[offset + 1]
        offset += 2
        if size == 0 or offset + size > n:
            return False
        if (p[offset] & _H264_TYPE_MASK) in _H264_KEY_TYPES:
            return True
        offset += size
    return False


def _h264(p: Payload) -> bool:
    n = len(p)
    if n < 1:
        return False
    nal_type = p[0] & _H264_TYPE_MASK
    if nal_type in _H264_KEY_TYPES:
        return True
    if nal_type in _H264_FU_TYPES:
        return n >= 2 and (p[1] & _H264_FU_START_MASK) in _H264_FU_KEY_STARTS
    if nal_type == _H264_STAP_A:
        return _h264_aggregate(p, 1, n)
    if nal_type == _H264_STAP_B:
        return _h264_aggregate(p, 3, n)  # after the 16-bit decoding order number
    return False


def _h265_aggregate(p: Payload, n: int) -> bool:
    """Walk the (16-bit size, NAL unit) pairs of an aggregation packet."""
    offset = _H265_NAL_HEADER_BYTES
    while offset + 2 < n:
        size = (p[offset] << 8) | p[offset + 1]
        offset += 2
        if size < _H265_NAL_HEADER_BYTES or offset + size > n:
            return False
        if ((p[offset] >> 1) & 0x3F) in _H265_KEY_TYPES:
            return True
        offset += size
    return False


def _h265(p: Payload) -> bool:
    n = len(p)
    if n < _H265_NAL_HEADER_BYTES:
        return False
    nal_type = (p[0] >> 1) & 0x3F
    if nal_type in _H265_KEY_TYPES:
        return True
    if nal_type == _H265_FU:
        # FU header: S E FuType(6).
        return n >= 3 and bool(p[2] & 0x80) and (p[2] & 0x3F) in _H265_KEY_TYPES
    if nal_type == _H265_AP:
        return _h265_aggregate(p, n)
    return False


def _av1(p: Payload) -> bool:
    return len(p) >= 1 and (p[0] & _AV1_Z_N_MASK) == _AV1_N_ONLY


# The lowercased MIME types with a detector, and their codec in the C (cffi_build/keyframe.h).
_CODECS: Final[dict[str, int]] = {
    "video/vp8": lib.MW_KEYFRAME_VP8,
    "video/vp9": lib.MW_KEYFRAME_VP9,
    "video/h264": lib.MW_KEYFRAME_H264,
    "video/h264-svc": lib.MW_KEYFRAME_H264,
    "video/h265": lib.MW_KEYFRAME_H265,
    "video/av1": lib.MW_KEYFRAME_AV1,
}
_CODEC_DETECTORS: Final[dict[int, Callable[[Payload], bool]]] = {
    lib.MW_KEYFRAME_VP8: _vp8,
    lib.MW_KEYFRAME_VP9: _vp9,
    lib.MW_KEYFRAME_H264: _h264,
    lib.MW_KEYFRAME_H265: _h265,
    lib.MW_KEYFRAME_AV1: _av1,
}
_DETECTORS: Final[dict[str, Callable[[Payload], bool]]] = {
    mime: _CODEC_DETECTORS[codec] for mime, codec in _CODECS.items()
}


def keyframe_detector(mime_type: str) -> KeyframeDetector | None:
    """The detector for this MIME type (any case), or None when it has none (audio, RTX, ...)."""
    return _DETECTORS.get(mime_type.lower())


def keyframe_codec(mime_type: str) -> int:
    """The ``enum mw_keyframe_codec`` value for this MIME type (any case), for ``mw_keyframe``:
    the codec whose rules :func:`keyframe_detector` applies, 0 (``MW_KEYFRAME_NONE``) where it
    gives None."""
    codec: int = _CODECS.get(mime_type.lower(), lib.MW_KEYFRAME_NONE)
    return codec


def is_keyframe(mime_type_lower: str, payload: Payload) -> bool:
    """Whether ``payload`` (an RTP payload, padding excluded) starts a key frame.

    ``mime_type_lower`` is the lowercased MIME type, e.g. ``"video/vp8"``; one without a detector
    gives False. Never raises on the payload's contents."""
    detect = _DETECTORS.get(mime_type_lower)
    return detect is not None and detect(payload)
