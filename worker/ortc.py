"""RTP capability negotiation: mediasoup's ``ortc`` module, run inside the worker.

This part validates RTP capabilities and builds a router's capabilities from its
``mediaCodecs`` (:func:`generate_router_rtp_capabilities`). Producer mapping and consumer
parameters are to be added next to it, on the same validated shapes and :func:`match_codecs`.

What mediasoup leaves open, and what this module does:

- ``mediaCodecs`` absent or ``None`` means no codecs (a router for data channels only).
  mediasoup defaults only ``undefined`` and rejects ``null``; msgpack has no ``undefined`` and
  controllers send nil for an unset option, so both are taken as "not given". Anything else
  that is not a list is a ``TypeError``.
- Validation returns a normalised copy and never mutates its input (mediasoup fills defaults
  in place). One rule for optional fields: absent or ``None`` takes the default; present with
  the wrong type is a ``TypeError``. mediasoup instead replaces a wrong ``channels``,
  ``parameters``, ``rtcpFeedback`` or feedback ``parameter`` with the default silently, so
  ``channels: "2"`` became a mono codec there and is an error here.
- A codec's ``kind`` is taken from its ``mimeType``; a ``kind`` that contradicts it is a
  ``TypeError`` (mediasoup overwrites it).
- Numbers must be integers, within range: ``preferredPayloadType`` 0-127, ``clockRate`` and
  ``channels`` positive, header extension ``preferredId`` 1-255, ``apt`` an integer.
- RTX in ``mediaCodecs`` is refused as mediasoup refuses it: no supported codec matches
  ``video/rtx``, so it is an ``UnsupportedError`` naming the mime type. RTX is added by the
  router itself, right after each video codec.
- H264 (and H264-SVC, H265) in ``mediaCodecs`` match the single supported entry loosely, as in
  mediasoup: the router keeps the ``packetization-mode`` and ``profile-level-id`` it was given
  (no answer is generated against the supported entry, which has neither).
  ``packetization-mode`` and the profile are compared only in strict matching, i.e. when an
  endpoint's codec meets the router's. One addition: a ``profile-level-id`` that names no
  profile :mod:`worker.h264_profile` knows is an ``UnsupportedError`` at router creation,
  since no producer could ever match it.
- In matching, a numeric string equals its number (``"1"`` and ``1`` for
  ``packetization-mode``, ``profile-id``, ``num_streams``, ``coupled_streams``); mediasoup
  compares them strictly.
- Every supported header extension is offered, for both kinds, whatever the codecs are.
- Error reasons are mediasoup's sentences, with the offending value in brackets where
  mediasoup gives none (``duplicated codec.preferredPayloadType [preferredPayloadType:100]``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any, Final, TypeGuard

from worker.errors import UnsupportedError, WorkerError, WorkerTypeError
from worker.h264_profile import (
    H264ProfileError,
    generate_profile_level_id_for_answer,
    is_same_profile,
    parse_sdp_profile_level_id,
)
from worker.supported_rtp_capabilities import (
    SUPPORTED_CODECS,
    SUPPORTED_HEADER_EXTENSIONS,
    CodecParameters,
    Direction,
    MediaKind,
    RtcpFeedback,
    RtpCapabilities,
    RtpCodecCapability,
    RtpCodecParameters,
    RtpHeaderExtension,
)

__all__ = [
    "DYNAMIC_PAYLOAD_TYPES",
    "CodecLike",
    "generate_router_rtp_capabilities",
    "is_rtx_codec",
    "match_codecs",
    "validate_rtcp_feedback",
    "validate_rtp_capabilities",
    "validate_rtp_codec_capability",
    "validate_rtp_header_extension",
]

# The order dynamic payload types are handed out in: 100-127 first, then 96-99.
DYNAMIC_PAYLOAD_TYPES: Final[tuple[int, ...]] = (*range(100, 128), *range(96, 100))

MAX_PAYLOAD_TYPE: Final = 127
MAX_HEADER_EXTENSION_ID: Final = 255

# Either shape of codec: in capabilities (preferredPayloadType) or parameters (payloadType).
CodecLike = RtpCodecCapability | RtpCodecParameters

_MIME_TYPE_RE: Final = re.compile(r"^(audio|video)/(.+)", re.IGNORECASE)
_RTX_MIME_TYPE_RE: Final = re.compile(r".+/rtx$", re.IGNORECASE)
_DIRECTIONS: Final[dict[str, Direction]] = {
    "sendrecv": "sendrecv", "sendonly": "sendonly", "recvonly": "recvonly",
    "inactive": "inactive",
}
_H264_MIME_TYPES: Final = frozenset({"video/h264", "video/h264-svc"})


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# -- Validation ------------------------------------------------------------------------------


def validate_rtcp_feedback(fb: object) -> RtcpFeedback:
    """A normalised copy of one RTCP feedback entry (``parameter`` defaults to ``""``)."""
    if not isinstance(fb, dict):
        raise WorkerTypeError("fb is not an object")
    fb_type = fb.get("type")
    if not isinstance(fb_type, str) or not fb_type:
        raise WorkerTypeError("missing fb.type")
    parameter = fb.get("parameter")
    if parameter is None:
        parameter = ""
    elif not isinstance(parameter, str):
        raise WorkerTypeError("invalid fb.parameter")
    return {"type": fb_type, "parameter": parameter}


def _validate_codec_parameters(value: object) -> CodecParameters:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise WorkerTypeError("invalid codec.parameters")
    parameters: CodecParameters = {}
    for key, param in value.items():
        if not isinstance(key, str) or not (isinstance(param, str) or _is_number(param)):
            raise WorkerTypeError(f"invalid codec parameter [key:{key}, value:{param!r}]")
        if key == "apt" and not _is_int(param):
            raise WorkerTypeError("invalid codec apt parameter")
        parameters[key] = param
    return parameters


def _validate_rtcp_feedback_list(value: object) -> list[RtcpFeedback]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise WorkerTypeError("invalid codec.rtcpFeedback")
    return [validate_rtcp_feedback(fb) for fb in value]


def validate_rtp_codec_capability(codec: object) -> RtpCodecCapability:
    """A normalised copy of one codec of RTP capabilities; ``WorkerTypeError`` if invalid.

    ``kind`` comes from ``mimeType``; audio ``channels`` defaults to 1 and video codecs lose
    it; ``parameters`` defaults to ``{}`` and ``rtcpFeedback`` to ``[]``.
    """
    if not isinstance(codec, dict):
        raise WorkerTypeError("codec is not an object")
    mime_type = codec.get("mimeType")
    if not isinstance(mime_type, str) or not mime_type:
        raise WorkerTypeError("missing codec.mimeType")
    match = _MIME_TYPE_RE.match(mime_type)
    if match is None:
        raise WorkerTypeError("invalid codec.mimeType")
    kind: MediaKind = "audio" if match.group(1).lower() == "audio" else "video"
    given_kind = codec.get("kind")
    if given_kind is not None and given_kind != kind:
        raise WorkerTypeError("invalid codec.kind")

    preferred_pt = codec.get("preferredPayloadType")
    if preferred_pt is not None and not (
            _is_int(preferred_pt) and 0 <= preferred_pt <= MAX_PAYLOAD_TYPE):
        raise WorkerTypeError("invalid codec.preferredPayloadType")
    clock_rate = codec.get("clockRate")
    if not _is_int(clock_rate):
        raise WorkerTypeError("missing codec.clockRate")
    if clock_rate <= 0:
        raise WorkerTypeError("invalid codec.clockRate")

    result: RtpCodecCapability = {
        "kind": kind,
        "mimeType": mime_type,
        "clockRate": clock_rate,
        "parameters": _validate_codec_parameters(codec.get("parameters")),
        "rtcpFeedback": _validate_rtcp_feedback_list(codec.get("rtcpFeedback")),
    }
    if preferred_pt is not None:
        result["preferredPayloadType"] = preferred_pt
    if kind == "audio":
        channels = codec.get("channels")
        if channels is None:
            channels = 1
        elif not (_is_int(channels) and channels > 0):
            raise WorkerTypeError("invalid codec.channels")
        result["channels"] = channels
    return result


def validate_rtp_header_extension(ext: object) -> RtpHeaderExtension:
    """A normalised copy of one header extension of RTP capabilities.

    ``preferredEncrypt`` defaults to ``False`` and ``direction`` to ``"sendrecv"``.
    """
    if not isinstance(ext, dict):
        raise WorkerTypeError("ext is not an object")
    kind = ext.get("kind")
    if kind not in ("audio", "video"):
        raise WorkerTypeError("invalid ext.kind")
    uri = ext.get("uri")
    if not isinstance(uri, str) or not uri:
        raise WorkerTypeError("missing ext.uri")
    preferred_id = ext.get("preferredId")
    if not _is_int(preferred_id):
        raise WorkerTypeError("missing ext.preferredId")
    if not 1 <= preferred_id <= MAX_HEADER_EXTENSION_ID:
        raise WorkerTypeError("invalid ext.preferredId")
    encrypt = ext.get("preferredEncrypt")
    if encrypt is None:
        encrypt = False
    elif not isinstance(encrypt, bool):
        raise WorkerTypeError("invalid ext.preferredEncrypt")
    direction = ext.get("direction")
    if direction is None:
        direction = "sendrecv"
    elif not isinstance(direction, str) or direction not in _DIRECTIONS:
        raise WorkerTypeError("invalid ext.direction")
    return {"kind": kind, "uri": uri, "preferredId": preferred_id, "preferredEncrypt": encrypt,
            "direction": _DIRECTIONS[direction]}


def validate_rtp_capabilities(caps: object) -> RtpCapabilities:
    """A normalised copy of RTP capabilities (e.g. a consumer's ``rtpCapabilities``)."""
    if not isinstance(caps, dict):
        raise WorkerTypeError("caps is not an object")
    codecs = caps.get("codecs")
    if codecs is None:
        codecs = []
    elif not isinstance(codecs, list):
        raise WorkerTypeError("caps.codecs is not an array")
    extensions = caps.get("headerExtensions")
    if extensions is None:
        extensions = []
    elif not isinstance(extensions, list):
        raise WorkerTypeError("caps.headerExtensions is not an array")
    return {
        "codecs": [validate_rtp_codec_capability(codec) for codec in codecs],
        "headerExtensions": [validate_rtp_header_extension(ext) for ext in extensions],
    }


# -- Matching --------------------------------------------------------------------------------


def is_rtx_codec(codec: Mapping[str, Any]) -> bool:
    """Whether ``codec`` is an RTX (retransmission) codec, by its mime type."""
    mime_type = codec.get("mimeType")
    return isinstance(mime_type, str) and _RTX_MIME_TYPE_RE.match(mime_type) is not None


def _param(params: Mapping[str, object], key: str, default: object = None) -> object:
    """A codec parameter for comparison: falsy values are ``default``, "1" equals 1."""
    value = params.get(key)
    if not value:
        return default
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return value


def _match_h264(a: CodecLike, b: CodecLike, modify: bool) -> bool:
    a_params, b_params = a["parameters"], b["parameters"]
    if _param(a_params, "packetization-mode", 0) != _param(b_params, "packetization-mode", 0):
        return False
    if not is_same_profile(a_params, b_params):
        return False
    try:
        answer_plid = generate_profile_level_id_for_answer(a_params, b_params)
    except H264ProfileError:
        return False
    if modify:
        if answer_plid is not None:
            a_params["profile-level-id"] = answer_plid
        else:
            a_params.pop("profile-level-id", None)
    return True


def match_codecs(a: CodecLike, b: CodecLike, strict: bool = False, modify: bool = False) -> bool:
    """Whether two validated codecs are the same codec (mediasoup's ``matchCodecs``).

    Always compared: mime type (any case), clock rate, channels, and for multiopus the
    ``num_streams`` and ``coupled_streams`` parameters. With ``strict``, also H264's
    ``packetization-mode`` (default 0) and profile, and VP9's ``profile-id`` (default 0).
    With ``strict`` and ``modify``, ``a``'s H264 ``profile-level-id`` is set to the one to
    answer ``b`` with (``a`` being the local side), or removed when the answer has none.
    """
    mime_type = a["mimeType"].lower()
    if mime_type != b["mimeType"].lower():
        return False
    if a["clockRate"] != b["clockRate"] or a.get("channels") != b.get("channels"):
        return False

    if mime_type == "audio/multiopus":
        a_params, b_params = a["parameters"], b["parameters"]
        return (_param(a_params, "num_streams") == _param(b_params, "num_streams")
                and _param(a_params, "coupled_streams") == _param(b_params, "coupled_streams"))
    if not strict:
        return True
    if mime_type in _H264_MIME_TYPES:
        return _match_h264(a, b, modify)
    if mime_type == "video/vp9":
        return _param(a["parameters"], "profile-id", 0) == _param(b["parameters"],
                                                                   "profile-id", 0)
    return True


# -- Router capabilities ---------------------------------------------------------------------


def _find_supported_codec(media_codec: RtpCodecCapability) -> RtpCodecCapability:
    for supported in SUPPORTED_CODECS:
        if match_codecs(media_codec, supported):
            break
    else:
        raise UnsupportedError(f"media codec not supported [mimeType:{media_codec['mimeType']}]")
    if media_codec["mimeType"].lower() in _H264_MIME_TYPES:
        params = media_codec["parameters"]
        if parse_sdp_profile_level_id(params) is None:
            raise UnsupportedError(
                f"media codec not supported [mimeType:{media_codec['mimeType']}, "
                f"profile-level-id:{params.get('profile-level-id')}]")
    return supported


def _take_dynamic_payload_type(dynamic_pts: list[int]) -> int:
    if not dynamic_pts:
        raise WorkerError("cannot allocate more dynamic codec payload types")
    return dynamic_pts.pop(0)


def _choose_payload_type(media_codec: RtpCodecCapability, supported: RtpCodecCapability,
                         dynamic_pts: list[int]) -> int:
    """The router's payload type: the one asked for, else the static one, else a dynamic one."""
    if "preferredPayloadType" in media_codec:
        payload_type = media_codec["preferredPayloadType"]
        if payload_type in dynamic_pts:
            dynamic_pts.remove(payload_type)
        return payload_type
    if "preferredPayloadType" in supported:
        return supported["preferredPayloadType"]
    return _take_dynamic_payload_type(dynamic_pts)


def _router_codec(supported: RtpCodecCapability, payload_type: int,
                  parameters: CodecParameters) -> RtpCodecCapability:
    codec: RtpCodecCapability = {
        "kind": supported["kind"],
        "mimeType": supported["mimeType"],
        "preferredPayloadType": payload_type,
        "clockRate": supported["clockRate"],
        "parameters": parameters,
        "rtcpFeedback": copy.deepcopy(supported["rtcpFeedback"]),
    }
    if "channels" in supported:
        codec["channels"] = supported["channels"]
    return codec


def _rtx_codec(media: RtpCodecCapability, payload_type: int) -> RtpCodecCapability:
    return {
        "kind": media["kind"],
        "mimeType": f"{media['kind']}/rtx",
        "preferredPayloadType": payload_type,
        "clockRate": media["clockRate"],
        "parameters": {"apt": media["preferredPayloadType"]},
        "rtcpFeedback": [],
    }


def generate_router_rtp_capabilities(media_codecs: object) -> dict[str, Any]:
    """A router's RTP capabilities, ``{codecs, headerExtensions}``, from its ``mediaCodecs``.

    Each media codec must match a supported one (``UnsupportedError`` otherwise), whose mime
    type, clock rate, channels and RTCP feedback the router takes; its parameters are the
    supported ones overridden by the given ones. Payload types: the codec's
    ``preferredPayloadType`` if given, else the static one (PCMU 0, PCMA 8, G722 9, CN 13),
    else the next free one of :data:`DYNAMIC_PAYLOAD_TYPES`. Each video codec is followed by
    its RTX codec on the next free dynamic payload type. Raises ``WorkerTypeError`` on bad
    input or a duplicated payload type, and ``WorkerError`` when dynamic payload types run out.
    """
    if media_codecs is None:
        media_codecs = []
    if not isinstance(media_codecs, list):
        raise WorkerTypeError("mediaCodecs must be an array")

    dynamic_pts = list(DYNAMIC_PAYLOAD_TYPES)
    codecs: list[RtpCodecCapability] = []
    for entry in media_codecs:
        media_codec = validate_rtp_codec_capability(entry)
        supported = _find_supported_codec(media_codec)
        payload_type = _choose_payload_type(media_codec, supported, dynamic_pts)
        if any(codec["preferredPayloadType"] == payload_type for codec in codecs):
            raise WorkerTypeError(
                f"duplicated codec.preferredPayloadType [preferredPayloadType:{payload_type}]")
        parameters = {**supported["parameters"], **media_codec["parameters"]}
        codec = _router_codec(supported, payload_type, parameters)
        codecs.append(codec)
        if codec["kind"] == "video":
            codecs.append(_rtx_codec(codec, _take_dynamic_payload_type(dynamic_pts)))

    return {
        "codecs": codecs,
        "headerExtensions": copy.deepcopy(list(SUPPORTED_HEADER_EXTENSIONS)),
    }
