"""The codecs and RTP header extensions this worker can route, and the shapes that describe them.

The table follows mediasoup v3's ``supportedRtpCapabilities`` as of the 3.14 to 3.2x releases
(opus with NACK, AV1 and the dependency descriptor added, frame-marking gone, playout-delay
added), written already normalised: every codec has ``parameters`` and ``rtcpFeedback``, every
feedback entry has a ``parameter`` (``""`` when it has none), audio codecs have ``channels``
(1 when mediasoup leaves it out) and video codecs never have it. Key names are mediasoup's
camelCase ones, so the dictionaries pass unchanged between a client library and the worker.

Nothing here is ever handed out directly: :mod:`worker.ortc` copies what it uses, so a caller
that mutates a router's capabilities cannot change what the next router is built from.
"""

from __future__ import annotations

from typing import Final, Literal, NotRequired, TypedDict

__all__ = [
    "ABS_CAPTURE_TIME_URI",
    "ABS_SEND_TIME_URI",
    "AUDIO_LEVEL_URI",
    "DEPENDENCY_DESCRIPTOR_URI",
    "MID_URI",
    "PLAYOUT_DELAY_URI",
    "REPAIRED_RTP_STREAM_ID_URI",
    "RTP_STREAM_ID_URI",
    "SUPPORTED_CODECS",
    "SUPPORTED_HEADER_EXTENSIONS",
    "TOFFSET_URI",
    "TRANSPORT_WIDE_CC_URI",
    "VIDEO_ORIENTATION_URI",
    "CodecParameters",
    "Direction",
    "MediaKind",
    "RtcpFeedback",
    "RtpCapabilities",
    "RtpCodecCapability",
    "RtpCodecParameters",
    "RtpHeaderExtension",
]

MediaKind = Literal["audio", "video"]
Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]

# Codec parameter values are strings or numbers, as in an SDP ``a=fmtp`` line.
CodecParameters = dict[str, str | int | float]


class RtcpFeedback(TypedDict):
    """One ``a=rtcp-fb`` entry: ``{type: "nack", parameter: "pli"}``."""

    type: str
    parameter: str


class RtpCodecCapability(TypedDict):
    """A codec in RTP capabilities (a router's, or an endpoint's given to ``consume``)."""

    kind: MediaKind
    mimeType: str
    preferredPayloadType: NotRequired[int]
    clockRate: int
    channels: NotRequired[int]
    parameters: CodecParameters
    rtcpFeedback: list[RtcpFeedback]


class RtpCodecParameters(TypedDict):
    """A codec in RTP parameters (what a producer sends or a consumer receives)."""

    mimeType: str
    payloadType: int
    clockRate: int
    channels: NotRequired[int]
    parameters: CodecParameters
    rtcpFeedback: list[RtcpFeedback]


class RtpHeaderExtension(TypedDict):
    """A header extension in RTP capabilities."""

    kind: MediaKind
    uri: str
    preferredId: int
    preferredEncrypt: bool
    direction: Direction


class RtpCapabilities(TypedDict):
    """What a router (or an endpoint) can receive: ``{codecs, headerExtensions}``."""

    codecs: list[RtpCodecCapability]
    headerExtensions: list[RtpHeaderExtension]


MID_URI: Final = "urn:ietf:params:rtp-hdrext:sdes:mid"
RTP_STREAM_ID_URI: Final = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
REPAIRED_RTP_STREAM_ID_URI: Final = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
ABS_SEND_TIME_URI: Final = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
TRANSPORT_WIDE_CC_URI: Final = (
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
)
DEPENDENCY_DESCRIPTOR_URI: Final = (
    "https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension"
)
AUDIO_LEVEL_URI: Final = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
VIDEO_ORIENTATION_URI: Final = "urn:3gpp:video-orientation"
TOFFSET_URI: Final = "urn:ietf:params:rtp-hdrext:toffset"
ABS_CAPTURE_TIME_URI: Final = "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time"
PLAYOUT_DELAY_URI: Final = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay"


def _fb(fb_type: str, parameter: str = "") -> RtcpFeedback:
    return {"type": fb_type, "parameter": parameter}


def _audio_feedback(*, nack: bool) -> list[RtcpFeedback]:
    """Audio codecs: transport-cc for BWE, plus NACK where the codec is retransmittable."""
    return [_fb("nack"), _fb("transport-cc")] if nack else [_fb("transport-cc")]


def _video_feedback() -> list[RtcpFeedback]:
    """Every video codec: NACK, PLI, FIR, and both BWE feedbacks (REMB and transport-cc)."""
    return [_fb("nack"), _fb("nack", "pli"), _fb("ccm", "fir"), _fb("goog-remb"),
            _fb("transport-cc")]


def _audio(mime_type: str, clock_rate: int, *, channels: int = 1,
           parameters: CodecParameters | None = None, rtcp_feedback: list[RtcpFeedback],
           payload_type: int | None = None) -> RtpCodecCapability:
    codec: RtpCodecCapability = {
        "kind": "audio",
        "mimeType": mime_type,
        "clockRate": clock_rate,
        "channels": channels,
        "parameters": dict(parameters or {}),
        "rtcpFeedback": rtcp_feedback,
    }
    if payload_type is not None:
        codec["preferredPayloadType"] = payload_type
    return codec


def _video(mime_type: str, parameters: CodecParameters | None = None) -> RtpCodecCapability:
    return {
        "kind": "video",
        "mimeType": mime_type,
        "clockRate": 90000,
        "parameters": dict(parameters or {}),
        "rtcpFeedback": _video_feedback(),
    }


def _ext(kind: MediaKind, uri: str, preferred_id: int,
         direction: Direction = "sendrecv") -> RtpHeaderExtension:
    return {"kind": kind, "uri": uri, "preferredId": preferred_id, "preferredEncrypt": False,
            "direction": direction}


# Matched in this order: the first entry that matches a router's media codec is the one used.
SUPPORTED_CODECS: Final[tuple[RtpCodecCapability, ...]] = (
    _audio("audio/opus", 48000, channels=2, rtcp_feedback=_audio_feedback(nack=True)),
    # Multichannel opus (Chrome's "multiopus"): quad, 5.1 and 7.1.
    _audio("audio/multiopus", 48000, channels=4,
           parameters={"channel_mapping": "0,1,2,3", "num_streams": 2, "coupled_streams": 2},
           rtcp_feedback=_audio_feedback(nack=True)),
    _audio("audio/multiopus", 48000, channels=6,
           parameters={"channel_mapping": "0,4,1,2,3,5", "num_streams": 4,
                       "coupled_streams": 2},
           rtcp_feedback=_audio_feedback(nack=True)),
    _audio("audio/multiopus", 48000, channels=8,
           parameters={"channel_mapping": "0,6,1,2,3,4,5,7", "num_streams": 5,
                       "coupled_streams": 3},
           rtcp_feedback=_audio_feedback(nack=True)),
    # Static payload types (RFC 3551) are kept unless the router asks for another one.
    _audio("audio/PCMU", 8000, payload_type=0, rtcp_feedback=_audio_feedback(nack=False)),
    _audio("audio/PCMA", 8000, payload_type=8, rtcp_feedback=_audio_feedback(nack=False)),
    _audio("audio/ISAC", 32000, rtcp_feedback=_audio_feedback(nack=False)),
    _audio("audio/ISAC", 16000, rtcp_feedback=_audio_feedback(nack=False)),
    _audio("audio/G722", 8000, payload_type=9, rtcp_feedback=_audio_feedback(nack=False)),
    _audio("audio/iLBC", 8000, rtcp_feedback=_audio_feedback(nack=False)),
    _audio("audio/SILK", 24000, rtcp_feedback=_audio_feedback(nack=False)),
    _audio("audio/SILK", 16000, rtcp_feedback=_audio_feedback(nack=False)),
    _audio("audio/SILK", 12000, rtcp_feedback=_audio_feedback(nack=False)),
    _audio("audio/SILK", 8000, rtcp_feedback=_audio_feedback(nack=False)),
    # Comfort noise and DTMF carry no media worth feedback.
    _audio("audio/CN", 32000, payload_type=13, rtcp_feedback=[]),
    _audio("audio/CN", 16000, payload_type=13, rtcp_feedback=[]),
    _audio("audio/CN", 8000, payload_type=13, rtcp_feedback=[]),
    _audio("audio/telephone-event", 48000, rtcp_feedback=[]),
    _audio("audio/telephone-event", 32000, rtcp_feedback=[]),
    _audio("audio/telephone-event", 16000, rtcp_feedback=[]),
    _audio("audio/telephone-event", 8000, rtcp_feedback=[]),
    _video("video/VP8"),
    _video("video/VP9"),
    # One H264 entry for every packetization-mode and profile: those are checked only when an
    # endpoint's codec is matched against the router's (strict matching in worker.ortc).
    _video("video/H264", {"level-asymmetry-allowed": 1}),
    _video("video/H264-SVC", {"level-asymmetry-allowed": 1}),
    _video("video/H265", {"level-asymmetry-allowed": 1}),
    _video("video/AV1"),
)

# Every router offers all of these, whatever its codecs. "recvonly" ones are only used on
# what producers send (rid and rrid identify simulcast streams; audio transport-cc because the
# worker sends no transport-wide sequence numbers on audio).
SUPPORTED_HEADER_EXTENSIONS: Final[tuple[RtpHeaderExtension, ...]] = (
    _ext("audio", MID_URI, 1),
    _ext("video", MID_URI, 1),
    _ext("video", RTP_STREAM_ID_URI, 2, "recvonly"),
    _ext("video", REPAIRED_RTP_STREAM_ID_URI, 3, "recvonly"),
    _ext("audio", ABS_SEND_TIME_URI, 4),
    _ext("video", ABS_SEND_TIME_URI, 4),
    _ext("audio", TRANSPORT_WIDE_CC_URI, 5, "recvonly"),
    _ext("video", TRANSPORT_WIDE_CC_URI, 5),
    _ext("video", DEPENDENCY_DESCRIPTOR_URI, 8, "recvonly"),
    _ext("audio", AUDIO_LEVEL_URI, 10),
    _ext("video", VIDEO_ORIENTATION_URI, 11),
    _ext("video", TOFFSET_URI, 12),
    _ext("audio", ABS_CAPTURE_TIME_URI, 13),
    _ext("video", ABS_CAPTURE_TIME_URI, 13),
    _ext("audio", PLAYOUT_DELAY_URI, 14),
    _ext("video", PLAYOUT_DELAY_URI, 14),
)
