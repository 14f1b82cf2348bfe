"""Producer side of mediasoup's ``ortc``: RTP parameters validated, mapped onto a router.

A producer's ``rtpParameters`` (as mediasoup-client or pymediasoup build them) are checked
by :func:`validate_rtp_parameters`. Against the router's capabilities,
:func:`get_producer_rtp_parameters_mapping` gives the router payload type of each producer
payload type and the SSRC each encoding is rewritten to; :func:`get_consumable_rtp_parameters`
describes the media as the router forwards it, which :mod:`worker.ortc_consume` builds
consumers from.

The rules of :mod:`worker.ortc` hold here too (absent or ``None`` takes the default, present
with the wrong type is a ``TypeError``; inputs are never mutated; mediasoup's sentences with
the offending value in brackets). mediasoup splits these checks between its Node ``ortc``
and the C++ ``RtpParameters``/``Producer`` constructors; this module does both, and also:

- Numbers are ranged: ``payloadType`` 0-127, SSRCs 32-bit, header extension ``id`` 1-255
  (mediasoup refuses only 0), ``maxBitrate`` and ``scaleResolutionDownBy`` positive.
- Duplicated header extension ids, encoding SSRCs (RTX ones included) and rids are a
  ``TypeError`` (mediasoup keeps the last id; its transport refuses SSRCs already in use by
  another producer, which stays the transport's check).
- All codecs must be of one media kind (mediasoup does not check).
- ``scalabilityMode`` must read ``L<n>T<n>`` or ``S<n>T<n>`` (mediasoup silently drops a
  value it cannot parse). ``rtcp.reducedSize: false`` stays false (mediasoup turns it into
  true); an empty ``rtcp.cname`` counts as not given.
- Unknown encoding fields are dropped, as mediasoup's C++ side does; an encoding without
  ``codecPayloadType`` gets the first media codec's, as there too.
- The producer's own parameters keep the H264 ``profile-level-id`` the endpoint sent;
  mediasoup overwrites it with the one the router would answer. That answer is used where it
  matters, in the consumable parameters.
- The mapping also lists ``headerExtensions`` ``[{id, mappedId}]``: producer extension id to
  the router's id, for the extensions the router receives for that kind. mediasoup's worker
  does the same through its fixed extension ids.
"""

from __future__ import annotations

import copy
import random
import re
from collections.abc import Mapping
from typing import Any, Final, NotRequired, TypedDict, TypeGuard, cast

from worker.errors import UnsupportedError, WorkerTypeError
from worker.ortc import is_rtx_codec, match_codecs, validate_rtp_codec_capability
from worker.supported_rtp_capabilities import (
    CodecParameters,
    MediaKind,
    RtpCodecCapability,
    RtpCodecParameters,
    RtpHeaderExtension,
)

__all__ = [
    "MAX_SSRC",
    "RtcpParameters",
    "RtpEncodingParameters",
    "RtpHeaderExtensionParameters",
    "RtpMapping",
    "RtpParameters",
    "generate_ssrc",
    "get_consumable_rtp_parameters",
    "get_producer_rtp_parameters_mapping",
    "parse_scalability_mode",
    "rtp_parameters_kind",
    "validate_rtp_parameters",
]

MAX_SSRC: Final = 0xFFFFFFFF
MAX_PAYLOAD_TYPE: Final = 127
MAX_HEADER_EXTENSION_ID: Final = 255
# mediasoup's utils.generateRandomNumber(): SSRCs it hands out are in this range.
SSRC_RANDOM_MIN: Final = 100_000_000
SSRC_RANDOM_MAX: Final = 999_999_999

_SCALABILITY_MODE_RE: Final = re.compile(r"^[LS]([1-9]\d?)T([1-9]\d?)(_KEY)?")
_MIME_KIND_RE: Final = re.compile(r"^(audio|video)/", re.IGNORECASE)


class RtpRtxParameters(TypedDict):
    ssrc: int


class RtpEncodingParameters(TypedDict):
    """One encoding (RTP stream) of RTP parameters."""

    ssrc: NotRequired[int]
    rid: NotRequired[str]
    codecPayloadType: NotRequired[int]
    rtx: NotRequired[RtpRtxParameters]
    dtx: NotRequired[bool]
    scalabilityMode: NotRequired[str]
    scaleResolutionDownBy: NotRequired[int | float]
    maxBitrate: NotRequired[int | float]


class RtpHeaderExtensionParameters(TypedDict):
    uri: str
    id: int
    encrypt: bool
    parameters: CodecParameters


class RtcpParameters(TypedDict):
    cname: NotRequired[str]
    reducedSize: bool
    mux: NotRequired[bool]


class RtpParameters(TypedDict):
    """What a producer sends or a consumer receives."""

    mid: NotRequired[str]
    codecs: list[RtpCodecParameters]
    headerExtensions: list[RtpHeaderExtensionParameters]
    encodings: list[RtpEncodingParameters]
    rtcp: RtcpParameters


class CodecMapping(TypedDict):
    payloadType: int
    mappedPayloadType: int


class HeaderExtensionMapping(TypedDict):
    id: int
    mappedId: int


class EncodingMapping(TypedDict):
    ssrc: NotRequired[int]
    rid: NotRequired[str]
    scalabilityMode: NotRequired[str]
    mappedSsrc: int


class RtpMapping(TypedDict):
    """How a producer's packets are rewritten into the router's canonical form."""

    codecs: list[CodecMapping]
    headerExtensions: list[HeaderExtensionMapping]
    encodings: list[EncodingMapping]


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_positive_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _is_ssrc(value: object) -> TypeGuard[int]:
    return _is_int(value) and 0 <= value <= MAX_SSRC


def _optional_bool(obj: dict[Any, Any], key: str, field: str) -> bool | None:
    """``obj[key]`` if it is a bool, ``None`` if absent or null, else a ``TypeError``."""
    value = obj.get(key)
    if value is not None and not isinstance(value, bool):
        raise WorkerTypeError(f"invalid {field}")
    return value


def generate_ssrc(rng: random.Random | None = None) -> int:
    """A random SSRC in mediasoup's range (100000000-999999999), so that +n never wraps."""
    return (rng or random).randint(SSRC_RANDOM_MIN, SSRC_RANDOM_MAX)


def parse_scalability_mode(mode: str | None) -> tuple[int, int, bool] | None:
    """``(spatialLayers, temporalLayers, ksvc)`` of ``"L3T3_KEY"``-like text, else ``None``."""
    match = _SCALABILITY_MODE_RE.match(mode or "")
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), match.group(3) is not None


def _kind_of(mime_type: str) -> MediaKind:
    match = _MIME_KIND_RE.match(mime_type)
    if match is None:  # validated codecs always match
        raise AssertionError(f"codec mime type without a kind: {mime_type}")
    return "audio" if match.group(1).lower() == "audio" else "video"


def rtp_parameters_kind(params: RtpParameters) -> MediaKind:
    """The media kind of validated RTP parameters (all their codecs share it)."""
    return _kind_of(params["codecs"][0]["mimeType"])


# -- Validation ------------------------------------------------------------------------------


def _validate_codec(codec: object) -> RtpCodecParameters:
    if not isinstance(codec, dict):
        raise WorkerTypeError("codec is not an object")
    payload_type = codec.get("payloadType")
    if payload_type is None:
        raise WorkerTypeError("missing codec.payloadType")
    if not (_is_int(payload_type) and 0 <= payload_type <= MAX_PAYLOAD_TYPE):
        raise WorkerTypeError(f"invalid codec.payloadType [payloadType:{payload_type!r}]")
    # The capability validator checks the fields both shapes share.
    shared = {key: codec.get(key)
              for key in ("mimeType", "clockRate", "channels", "parameters", "rtcpFeedback")}
    capability = validate_rtp_codec_capability(shared)
    result: RtpCodecParameters = {
        "mimeType": capability["mimeType"],
        "payloadType": payload_type,
        "clockRate": capability["clockRate"],
        "parameters": capability["parameters"],
        "rtcpFeedback": capability["rtcpFeedback"],
    }
    if "channels" in capability:
        result["channels"] = capability["channels"]
    if is_rtx_codec(result):
        apt = result["parameters"].get("apt")
        if not (_is_int(apt) and apt > 0):
            raise WorkerTypeError(
                f"missing apt parameter in RTX codec [payloadType:{payload_type}]")
    return result


def _validate_codecs(value: object) -> list[RtpCodecParameters]:
    if not isinstance(value, list):
        raise WorkerTypeError("missing params.codecs")
    codecs = [_validate_codec(entry) for entry in value]
    if not codecs:
        raise WorkerTypeError("empty params.codecs")
    by_pt: dict[int, RtpCodecParameters] = {}
    for codec in codecs:
        if codec["payloadType"] in by_pt:
            raise WorkerTypeError(
                f"duplicated codec.payloadType [payloadType:{codec['payloadType']}]")
        by_pt[codec["payloadType"]] = codec
    kinds = {_kind_of(codec["mimeType"]) for codec in codecs}
    if len(kinds) > 1:
        raise WorkerTypeError("params.codecs mix audio and video codecs")
    if all(is_rtx_codec(codec) for codec in codecs):
        raise WorkerTypeError("no media codecs found in params.codecs")
    for codec in codecs:
        if not is_rtx_codec(codec):
            continue
        apt = codec["parameters"]["apt"]
        target = by_pt.get(cast(int, apt))
        if target is None:
            raise WorkerTypeError(f"apt in RTX codec points to a non existing codec [apt:{apt}]")
        if is_rtx_codec(target):
            raise WorkerTypeError(f"apt in RTX codec points to a RTX codec [apt:{apt}]")
    return codecs


def _validate_ext_parameters(value: object) -> CodecParameters:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise WorkerTypeError("invalid ext.parameters")
    parameters: CodecParameters = {}
    for key, param in value.items():
        if not isinstance(key, str) or not (
                isinstance(param, str | int | float) and not isinstance(param, bool)):
            raise WorkerTypeError(f"invalid header extension parameter [key:{key}]")
        parameters[key] = param
    return parameters


def _validate_header_extension(ext: object) -> RtpHeaderExtensionParameters:
    if not isinstance(ext, dict):
        raise WorkerTypeError("ext is not an object")
    uri = ext.get("uri")
    if not isinstance(uri, str) or not uri:
        raise WorkerTypeError("missing ext.uri")
    ext_id = ext.get("id")
    if not _is_int(ext_id):
        raise WorkerTypeError(f"missing ext.id [uri:{uri}]")
    if not 1 <= ext_id <= MAX_HEADER_EXTENSION_ID:
        raise WorkerTypeError(f"invalid ext.id [uri:{uri}, id:{ext_id}]")
    encrypt = _optional_bool(ext, "encrypt", "ext.encrypt")
    return {"uri": uri, "id": ext_id, "encrypt": bool(encrypt),
            "parameters": _validate_ext_parameters(ext.get("parameters"))}


def _validate_header_extensions(value: object) -> list[RtpHeaderExtensionParameters]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise WorkerTypeError("params.headerExtensions is not an array")
    extensions = [_validate_header_extension(ext) for ext in value]
    seen: set[int] = set()
    for ext in extensions:
        if ext["id"] in seen:
            raise WorkerTypeError(f"duplicated ext.id [id:{ext['id']}]")
        seen.add(ext["id"])
    return extensions


def _validate_encoding_ids(encoding: dict[Any, Any], result: RtpEncodingParameters) -> None:
    """ssrc, rid and rtx.ssrc of one encoding."""
    ssrc = encoding.get("ssrc")
    if ssrc is not None:
        if not _is_ssrc(ssrc):
            raise WorkerTypeError(f"invalid encoding.ssrc [ssrc:{ssrc!r}]")
        result["ssrc"] = ssrc
    rid = encoding.get("rid")
    if rid is not None:
        if not isinstance(rid, str) or not rid:
            raise WorkerTypeError(f"invalid encoding.rid [rid:{rid!r}]")
        result["rid"] = rid
    rtx = encoding.get("rtx")
    if rtx is not None:
        if not isinstance(rtx, dict):
            raise WorkerTypeError("invalid encoding.rtx")
        rtx_ssrc = rtx.get("ssrc")
        if rtx_ssrc is None:
            raise WorkerTypeError("missing encoding.rtx.ssrc")
        if not _is_ssrc(rtx_ssrc):
            raise WorkerTypeError(f"invalid encoding.rtx.ssrc [ssrc:{rtx_ssrc!r}]")
        result["rtx"] = {"ssrc": rtx_ssrc}


def _optional_positive(encoding: dict[Any, Any], key: str) -> int | float | None:
    value = encoding.get(key)
    if value is not None and not _is_positive_number(value):
        raise WorkerTypeError(f"invalid encoding.{key} [{key}:{value!r}]")
    return cast(int | float | None, value)


def _validate_encoding(encoding: object, codecs: list[RtpCodecParameters]) -> RtpEncodingParameters:
    if not isinstance(encoding, dict):
        raise WorkerTypeError("encoding is not an object")
    result: RtpEncodingParameters = {}
    _validate_encoding_ids(encoding, result)

    payload_type = encoding.get("codecPayloadType")
    if payload_type is None:
        payload_type = next(c["payloadType"] for c in codecs if not is_rtx_codec(c))
    elif not _is_int(payload_type):
        raise WorkerTypeError("invalid encoding.codecPayloadType")
    codec = next((c for c in codecs if c["payloadType"] == payload_type), None)
    if codec is None:
        raise WorkerTypeError(
            f"unknown encoding.codecPayloadType [codecPayloadType:{payload_type}]")
    if is_rtx_codec(codec):
        raise WorkerTypeError(
            f"invalid encoding.codecPayloadType, a RTX codec [codecPayloadType:{payload_type}]")
    result["codecPayloadType"] = payload_type

    result["dtx"] = bool(_optional_bool(encoding, "dtx", "encoding.dtx"))
    mode = encoding.get("scalabilityMode")
    if mode is not None:
        if not isinstance(mode, str) or parse_scalability_mode(mode) is None:
            raise WorkerTypeError(f"invalid encoding.scalabilityMode [scalabilityMode:{mode!r}]")
        result["scalabilityMode"] = mode
    scale = _optional_positive(encoding, "scaleResolutionDownBy")
    if scale is not None:
        result["scaleResolutionDownBy"] = scale
    max_bitrate = _optional_positive(encoding, "maxBitrate")
    if max_bitrate is not None:
        result["maxBitrate"] = max_bitrate
    return result


def _check_encodings(encodings: list[RtpEncodingParameters], mid: str | None) -> None:
    """What the encodings must satisfy together (mediasoup's Producer and RtpParameters)."""
    if not encodings:
        raise WorkerTypeError("empty params.encodings")
    if len(encodings) > 1:
        for encoding in encodings:
            if "ssrc" not in encoding and "rid" not in encoding:
                raise WorkerTypeError("missing encoding.ssrc or encoding.rid")
            layers = parse_scalability_mode(encoding.get("scalabilityMode"))
            if layers is not None and layers[0] > 1:
                raise WorkerTypeError(
                    "cannot use both simulcast and encodings with multiple SVC spatial layers")
    elif mid is None and "ssrc" not in encodings[0] and "rid" not in encodings[0]:
        raise WorkerTypeError("missing encoding.ssrc or encoding.rid, or params.mid")
    ssrcs: set[int] = set()
    rids: set[str] = set()
    for encoding in encodings:
        rtx_ssrc = encoding["rtx"]["ssrc"] if "rtx" in encoding else None
        for ssrc in (encoding.get("ssrc"), rtx_ssrc):
            if ssrc is None:
                continue
            if ssrc in ssrcs:
                raise WorkerTypeError(f"duplicated encoding ssrc [ssrc:{ssrc}]")
            ssrcs.add(ssrc)
        rid = encoding.get("rid")
        if rid is not None:
            if rid in rids:
                raise WorkerTypeError(f"duplicated encoding.rid [rid:{rid}]")
            rids.add(rid)


def _validate_encodings(value: object, codecs: list[RtpCodecParameters],
                        mid: str | None) -> list[RtpEncodingParameters]:
    if value is None:
        value = []
    if not isinstance(value, list):
        raise WorkerTypeError("params.encodings is not an array")
    encodings = [_validate_encoding(encoding, codecs) for encoding in value]
    _check_encodings(encodings, mid)
    return encodings


def _validate_rtcp(value: object) -> RtcpParameters:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise WorkerTypeError("params.rtcp is not an object")
    rtcp: RtcpParameters = {"reducedSize": True}
    cname = value.get("cname")
    if cname is not None:
        if not isinstance(cname, str):
            raise WorkerTypeError("invalid rtcp.cname")
        if cname:
            rtcp["cname"] = cname
    reduced_size = _optional_bool(value, "reducedSize", "rtcp.reducedSize")
    if reduced_size is not None:
        rtcp["reducedSize"] = reduced_size
    mux = _optional_bool(value, "mux", "rtcp.mux")
    if mux is not None:
        rtcp["mux"] = mux
    return rtcp


def validate_rtp_parameters(params: object) -> RtpParameters:
    """A normalised copy of a producer's RTP parameters; ``WorkerTypeError`` if invalid.

    ``codecs`` is required and non-empty, with unique payload types, one media kind, at least
    one media codec, and RTX codecs whose ``apt`` names a media codec of the list.
    ``encodings`` is required and non-empty; with several, each has an ``ssrc`` or a ``rid``;
    with one and no ``mid``, it has one of them. ``headerExtensions`` defaults to ``[]`` and
    ``rtcp`` to ``{reducedSize: true}``.
    """
    if not isinstance(params, dict):
        raise WorkerTypeError("params is not an object")
    mid = params.get("mid")
    if mid is not None:
        if not isinstance(mid, str):
            raise WorkerTypeError("params.mid is not a string")
        if not mid:
            raise WorkerTypeError("empty params.mid")
    codecs = _validate_codecs(params.get("codecs"))
    result: RtpParameters = {
        "codecs": codecs,
        "headerExtensions": _validate_header_extensions(params.get("headerExtensions")),
        "encodings": _validate_encodings(params.get("encodings"), codecs, mid),
        "rtcp": _validate_rtcp(params.get("rtcp")),
    }
    if mid is not None:
        result["mid"] = mid
    return result


# -- Mapping onto the router -----------------------------------------------------------------


def _router_codecs(caps: Mapping[str, Any]) -> list[RtpCodecCapability]:
    return cast(list[RtpCodecCapability], caps["codecs"])


def _router_extensions(caps: Mapping[str, Any]) -> list[RtpHeaderExtension]:
    return cast(list[RtpHeaderExtension], caps["headerExtensions"])


def _router_rtx_for(cap_codec: RtpCodecCapability,
                    caps: Mapping[str, Any]) -> RtpCodecCapability | None:
    pt = cap_codec.get("preferredPayloadType")
    return next((c for c in _router_codecs(caps)
                 if is_rtx_codec(c) and c["parameters"].get("apt") == pt), None)


def _codec_mappings(params: RtpParameters, caps: Mapping[str, Any]) -> list[CodecMapping]:
    media: dict[int, RtpCodecCapability] = {}
    for codec in params["codecs"]:
        if is_rtx_codec(codec):
            continue
        cap_codec = next((c for c in _router_codecs(caps)
                          if match_codecs(codec, c, strict=True)), None)
        if cap_codec is None:
            raise UnsupportedError(f"unsupported codec [mimeType:{codec['mimeType']}, "
                                   f"payloadType:{codec['payloadType']}]")
        media[codec["payloadType"]] = cap_codec
    mappings: list[CodecMapping] = [
        {"payloadType": pt, "mappedPayloadType": cap_codec["preferredPayloadType"]}
        for pt, cap_codec in media.items()]
    for codec in params["codecs"]:
        if not is_rtx_codec(codec):
            continue
        cap_media = media[cast(int, codec["parameters"]["apt"])]
        cap_rtx = _router_rtx_for(cap_media, caps)
        if cap_rtx is None:
            raise UnsupportedError(
                f"no RTX codec for capability codec PT {cap_media['preferredPayloadType']} "
                f"[payloadType:{codec['payloadType']}]")
        mappings.append({"payloadType": codec["payloadType"],
                         "mappedPayloadType": cap_rtx["preferredPayloadType"]})
    return mappings


def _extension_mappings(params: RtpParameters,
                        caps: Mapping[str, Any]) -> list[HeaderExtensionMapping]:
    kind = rtp_parameters_kind(params)
    received = {ext["uri"]: ext["preferredId"] for ext in _router_extensions(caps)
                if ext["kind"] == kind and ext["direction"] in ("sendrecv", "recvonly")}
    return [{"id": ext["id"], "mappedId": received[ext["uri"]]}
            for ext in params["headerExtensions"] if ext["uri"] in received]


def get_producer_rtp_parameters_mapping(rtp_parameters: RtpParameters,
                                        router_caps: Mapping[str, Any],
                                        rng: random.Random | None = None) -> RtpMapping:
    """How a producer's packets map onto the router (mediasoup's ``rtpMapping``).

    ``rtp_parameters`` come from :func:`validate_rtp_parameters` and ``router_caps`` from
    :func:`worker.ortc.generate_router_rtp_capabilities`. Each media codec is matched
    strictly to a router codec (``UnsupportedError`` "unsupported codec [...]" if none); each
    RTX codec maps to the router's RTX for its media codec's match. Encodings get consecutive
    ``mappedSsrc`` values from a random base (:func:`generate_ssrc`, drawn from ``rng``).
    """
    mapping: RtpMapping = {
        "codecs": _codec_mappings(rtp_parameters, router_caps),
        "headerExtensions": _extension_mappings(rtp_parameters, router_caps),
        "encodings": [],
    }
    mapped_ssrc = generate_ssrc(rng)
    for index, encoding in enumerate(rtp_parameters["encodings"]):
        entry: EncodingMapping = {"mappedSsrc": mapped_ssrc + index}
        if "rid" in encoding:
            entry["rid"] = encoding["rid"]
        if "ssrc" in encoding:
            entry["ssrc"] = encoding["ssrc"]
        if "scalabilityMode" in encoding:
            entry["scalabilityMode"] = encoding["scalabilityMode"]
        mapping["encodings"].append(entry)
    return mapping


def _consumable_codec(cap_codec: RtpCodecCapability,
                      parameters: CodecParameters) -> RtpCodecParameters:
    """The router's codec, with ``parameters``."""
    result: RtpCodecParameters = {
        "mimeType": cap_codec["mimeType"],
        "payloadType": cap_codec["preferredPayloadType"],
        "clockRate": cap_codec["clockRate"],
        "parameters": parameters,
        "rtcpFeedback": copy.deepcopy(cap_codec["rtcpFeedback"]),
    }
    if "channels" in cap_codec:
        result["channels"] = cap_codec["channels"]
    return result


def get_consumable_rtp_parameters(kind: str, params: RtpParameters, caps: Mapping[str, Any],
                                  mapping: RtpMapping) -> RtpParameters:
    """The producer's media as the router forwards it: what consumers are made from.

    Codecs are the router's (payload type, clock rate, channels, RTCP feedback) with the
    producer's parameters, each followed by the router's RTX codec for it; header extensions
    are all the router sends for ``kind``, on their preferred ids; encodings are the
    producer's without ``rid``, ``rtx`` and ``codecPayloadType``, on their mapped SSRCs;
    RTCP is ``{cname, reducedSize: true}``.
    """
    if kind not in ("audio", "video"):
        raise WorkerTypeError(f"invalid kind [kind:{kind!r}]")
    if rtp_parameters_kind(params) != kind:
        raise WorkerTypeError(f"kind does not match the codecs [kind:{kind}]")
    mapped = {entry["payloadType"]: entry["mappedPayloadType"] for entry in mapping["codecs"]}
    by_pt = {codec.get("preferredPayloadType"): codec for codec in _router_codecs(caps)}
    codecs: list[RtpCodecParameters] = []
    for codec in params["codecs"]:
        if is_rtx_codec(codec):
            continue
        cap_codec = by_pt[mapped[codec["payloadType"]]]
        answered = copy.deepcopy(codec)  # the producer's parameters, H264 level as answered
        match_codecs(answered, cap_codec, strict=True, modify=True)
        codecs.append(_consumable_codec(cap_codec, answered["parameters"]))
        cap_rtx = _router_rtx_for(cap_codec, caps)
        if cap_rtx is not None:
            codecs.append(_consumable_codec(cap_rtx, dict(cap_rtx["parameters"])))

    extensions: list[RtpHeaderExtensionParameters] = [
        {"uri": ext["uri"], "id": ext["preferredId"], "encrypt": ext["preferredEncrypt"],
         "parameters": {}}
        for ext in _router_extensions(caps)
        if ext["kind"] == kind and ext["direction"] in ("sendrecv", "sendonly")]

    encodings: list[RtpEncodingParameters] = []
    for encoding, entry in zip(params["encodings"], mapping["encodings"], strict=True):
        consumable = copy.deepcopy(encoding)
        consumable.pop("rid", None)
        consumable.pop("rtx", None)
        consumable.pop("codecPayloadType", None)
        consumable["ssrc"] = entry["mappedSsrc"]
        encodings.append(consumable)

    rtcp: RtcpParameters = ({"cname": params["rtcp"]["cname"], "reducedSize": True}
                            if "cname" in params["rtcp"] else {"reducedSize": True})
    return {"codecs": codecs, "headerExtensions": extensions, "encodings": encodings,
            "rtcp": rtcp}
