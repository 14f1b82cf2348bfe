"""Consumer side of mediasoup's ``ortc``: who can consume a producer, and with what.

A producer's consumable parameters (:func:`worker.ortc_produce.get_consumable_rtp_parameters`)
meet an endpoint's ``rtpCapabilities`` here. :func:`can_consume` answers ``router.canConsume``;
:func:`get_consumer_rtp_parameters` builds the parameters a consumer sends with (``mid`` is
left to the transport, which assigns one as mediasoup's does); and
:func:`get_pipe_consumer_rtp_parameters` builds those of a consumer on a pipe transport.

mediasoup's rules, and where this module departs from them:

- Codecs are the consumable ones (the router's payload types) that the endpoint supports,
  matched strictly (:func:`worker.ortc.match_codecs`); an RTX codec stays only when RTX is
  enabled and the endpoint supports it with its media codec.
- A codec's RTCP feedback is the endpoint's feedback for that codec *that the router also
  offers* (mediasoup takes the endpoint's list as it is, which for mediasoup-client, whose
  capabilities are already cut down to the router's, is the same thing). Without RTX, plain
  ``nack`` goes. Then transport-cc is kept over REMB when the transport-wide-cc extension
  remains, REMB when abs-send-time remains, neither otherwise.
- A header extension stays when the endpoint lists the same URI with the same id, as in
  mediasoup: the consumer sends packets in the router's form, with the router's ids. Also
  required here: the endpoint's entry is for the same kind, and its direction lets it
  receive (``sendrecv`` or ``recvonly``, which is all mediasoup-client ever lists).
- One encoding, on a random SSRC (RTX on SSRC + 1), carrying the producer's
  ``scalabilityMode`` and highest ``maxBitrate``. Several consumable encodings (simulcast)
  are an ``UnsupportedError`` until simulcast consumers exist; a ``pipe`` consumer keeps
  them all, as in mediasoup.
- RTCP is ``{cname, reducedSize: true, mux: true}``.
- A pipe consumer gets ``encodings[].rtx`` only when an RTX codec remains (mediasoup adds it
  whenever ``enableRtx``, audio included).
"""

from __future__ import annotations

import copy
import random
from typing import Final

from worker.errors import UnsupportedError
from worker.ortc import is_rtx_codec, match_codecs, validate_rtp_capabilities
from worker.ortc_produce import (
    RtcpParameters,
    RtpEncodingParameters,
    RtpHeaderExtensionParameters,
    RtpParameters,
    generate_ssrc,
    rtp_parameters_kind,
)
from worker.supported_rtp_capabilities import (
    ABS_SEND_TIME_URI,
    MID_URI,
    TRANSPORT_WIDE_CC_URI,
    RtcpFeedback,
    RtpCapabilities,
    RtpCodecCapability,
    RtpCodecParameters,
)

__all__ = [
    "can_consume",
    "get_consumer_rtp_parameters",
    "get_pipe_consumer_rtp_parameters",
]

SIMULCAST_NOT_IMPLEMENTED: Final = "simulcast is not implemented yet"
# Extensions a pipe consumer does not forward: the MID is per transport, BWE is per hop.
_PIPE_DROPPED_EXTENSIONS: Final = frozenset({MID_URI, ABS_SEND_TIME_URI, TRANSPORT_WIDE_CC_URI})


def _find_remote_codec(codec: RtpCodecParameters,
                       caps: RtpCapabilities) -> RtpCodecCapability | None:
    for cap_codec in caps["codecs"]:
        if match_codecs(cap_codec, codec, strict=True):
            return cap_codec
    return None


def can_consume(consumable_params: RtpParameters, caps: object) -> bool:
    """Whether an endpoint with RTP capabilities ``caps`` can consume the producer.

    True when the first of the consumable codecs the endpoint supports is a media codec.
    Invalid ``caps`` are a ``WorkerTypeError``.
    """
    remote = validate_rtp_capabilities(caps)
    matching = [codec for codec in consumable_params["codecs"]
                if _find_remote_codec(codec, remote) is not None]
    return bool(matching) and not is_rtx_codec(matching[0])


def _reduce_feedback(offered: list[RtcpFeedback], remote: list[RtcpFeedback],
                     enable_rtx: bool) -> list[RtcpFeedback]:
    """The endpoint's feedback that the router offers too; without RTX, no plain NACK."""
    kept: list[RtcpFeedback] = []
    for fb in remote:
        if fb not in offered or fb in kept:
            continue
        if not enable_rtx and fb["type"] == "nack" and not fb["parameter"]:
            continue
        kept.append({"type": fb["type"], "parameter": fb["parameter"]})
    return kept


def _drop_useless_rtx(codecs: list[RtpCodecParameters]) -> bool:
    """Removes RTX codecs whose media codec is gone; whether any RTX codec remains."""
    media_pts = {codec["payloadType"] for codec in codecs if not is_rtx_codec(codec)}
    codecs[:] = [codec for codec in codecs
                 if not is_rtx_codec(codec) or codec["parameters"].get("apt") in media_pts]
    return any(is_rtx_codec(codec) for codec in codecs)


def _consumer_codecs(consumable: RtpParameters, remote: RtpCapabilities,
                     enable_rtx: bool) -> tuple[list[RtpCodecParameters], bool]:
    codecs: list[RtpCodecParameters] = []
    for codec in consumable["codecs"]:
        if not enable_rtx and is_rtx_codec(codec):
            continue
        remote_codec = _find_remote_codec(codec, remote)
        if remote_codec is None:
            continue
        chosen = copy.deepcopy(codec)
        chosen["rtcpFeedback"] = _reduce_feedback(codec["rtcpFeedback"],
                                                  remote_codec["rtcpFeedback"], enable_rtx)
        codecs.append(chosen)
    rtx_supported = _drop_useless_rtx(codecs)
    if not codecs or is_rtx_codec(codecs[0]):
        raise UnsupportedError("no compatible media codecs")
    return codecs, rtx_supported


def _consumer_extensions(consumable: RtpParameters,
                         remote: RtpCapabilities) -> list[RtpHeaderExtensionParameters]:
    kind = rtp_parameters_kind(consumable)
    accepted = {(ext["uri"], ext["preferredId"]) for ext in remote["headerExtensions"]
                if ext["kind"] == kind and ext["direction"] in ("sendrecv", "recvonly")}
    return [copy.deepcopy(ext) for ext in consumable["headerExtensions"]
            if (ext["uri"], ext["id"]) in accepted]


def _reduce_bwe_feedback(codecs: list[RtpCodecParameters],
                         extensions: list[RtpHeaderExtensionParameters]) -> None:
    """transport-cc if its extension remains, else REMB if abs-send-time does, else none."""
    uris = {ext["uri"] for ext in extensions}
    if TRANSPORT_WIDE_CC_URI in uris:
        dropped = {"goog-remb"}
    elif ABS_SEND_TIME_URI in uris:
        dropped = {"transport-cc"}
    else:
        dropped = {"goog-remb", "transport-cc"}
    for codec in codecs:
        codec["rtcpFeedback"] = [fb for fb in codec["rtcpFeedback"]
                                 if fb["type"] not in dropped]


def _consumer_rtcp(consumable: RtpParameters) -> RtcpParameters:
    rtcp: RtcpParameters = {"reducedSize": True, "mux": True}
    if "cname" in consumable["rtcp"]:
        rtcp = {"cname": consumable["rtcp"]["cname"], **rtcp}
    return rtcp


def _single_encoding(consumable: RtpParameters, rtx_supported: bool,
                     rng: random.Random | None) -> RtpEncodingParameters:
    if len(consumable["encodings"]) > 1:
        raise UnsupportedError(SIMULCAST_NOT_IMPLEMENTED)
    ssrc = generate_ssrc(rng)
    encoding: RtpEncodingParameters = {"ssrc": ssrc}
    if rtx_supported:
        encoding["rtx"] = {"ssrc": ssrc + 1}
    mode = next((e["scalabilityMode"] for e in consumable["encodings"]
                 if e.get("scalabilityMode")), None)
    if mode is not None:
        encoding["scalabilityMode"] = mode
    max_bitrate = max((e.get("maxBitrate", 0) for e in consumable["encodings"]), default=0)
    if max_bitrate:
        encoding["maxBitrate"] = max_bitrate
    return encoding


def _pipe_encodings(consumable: RtpParameters, rtx: bool,
                    rng: random.Random | None) -> list[RtpEncodingParameters]:
    """Every consumable encoding, on consecutive SSRCs from random bases."""
    base_ssrc = generate_ssrc(rng)
    base_rtx_ssrc = generate_ssrc(rng)
    encodings: list[RtpEncodingParameters] = []
    for index, consumable_encoding in enumerate(consumable["encodings"]):
        encoding = copy.deepcopy(consumable_encoding)
        encoding["ssrc"] = base_ssrc + index
        if rtx:
            encoding["rtx"] = {"ssrc": base_rtx_ssrc + index}
        else:
            encoding.pop("rtx", None)
        encodings.append(encoding)
    return encodings


def get_consumer_rtp_parameters(consumable_params: RtpParameters,
                                remote_rtp_capabilities: object, pipe: bool = False,
                                enable_rtx: bool = True,
                                rng: random.Random | None = None) -> RtpParameters:
    """The RTP parameters of a consumer for an endpoint with ``remote_rtp_capabilities``.

    ``UnsupportedError`` "no compatible media codecs" when the endpoint supports none, and
    "simulcast is not implemented yet" for a producer with several encodings (unless
    ``pipe``). Invalid capabilities are a ``WorkerTypeError``. SSRCs are drawn from ``rng``.
    """
    remote = validate_rtp_capabilities(remote_rtp_capabilities)
    codecs, rtx_supported = _consumer_codecs(consumable_params, remote, enable_rtx)
    extensions = _consumer_extensions(consumable_params, remote)
    _reduce_bwe_feedback(codecs, extensions)
    if pipe:
        encodings = _pipe_encodings(consumable_params, rtx_supported, rng)
    else:
        encodings = [_single_encoding(consumable_params, rtx_supported, rng)]
    return {"codecs": codecs, "headerExtensions": extensions, "encodings": encodings,
            "rtcp": _consumer_rtcp(consumable_params)}


def _pipe_feedback(codec: RtpCodecParameters, enable_rtx: bool) -> list[RtcpFeedback]:
    kept = {("nack", "pli"), ("ccm", "fir")}
    if enable_rtx:
        kept.add(("nack", ""))
    return [{"type": fb["type"], "parameter": fb["parameter"]} for fb in codec["rtcpFeedback"]
            if (fb["type"], fb["parameter"]) in kept]


def get_pipe_consumer_rtp_parameters(consumable_params: RtpParameters, enable_rtx: bool = False,
                                     rng: random.Random | None = None) -> RtpParameters:
    """The RTP parameters of a consumer on a pipe transport (to another router).

    All consumable codecs and encodings are kept; RTCP feedback is cut to PLI and FIR (and
    NACK with ``enable_rtx``); the MID and BWE extensions go; RTX codecs and SSRCs only with
    ``enable_rtx``.
    """
    codecs: list[RtpCodecParameters] = []
    for codec in consumable_params["codecs"]:
        if not enable_rtx and is_rtx_codec(codec):
            continue
        chosen = copy.deepcopy(codec)
        chosen["rtcpFeedback"] = _pipe_feedback(codec, enable_rtx)
        codecs.append(chosen)
    rtx = _drop_useless_rtx(codecs)
    extensions = [copy.deepcopy(ext) for ext in consumable_params["headerExtensions"]
                  if ext["uri"] not in _PIPE_DROPPED_EXTENSIONS]
    return {"codecs": codecs, "headerExtensions": extensions,
            "encodings": _pipe_encodings(consumable_params, rtx, rng),
            "rtcp": _consumer_rtcp(consumable_params)}
