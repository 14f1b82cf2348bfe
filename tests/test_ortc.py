"""Golden tests for RTP capability negotiation (worker.ortc) and the H.264 profile rules."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from worker.errors import UnsupportedError, WorkerError, WorkerTypeError
from worker.h264_profile import (
    H264ProfileError,
    Level,
    Profile,
    ProfileLevelId,
    generate_profile_level_id_for_answer,
    is_level_asymmetry_allowed,
    is_same_profile,
    is_same_profile_and_level,
    parse_profile_level_id,
    parse_sdp_profile_level_id,
    profile_level_id_to_string,
)
from worker.ortc import (
    DYNAMIC_PAYLOAD_TYPES,
    generate_router_rtp_capabilities,
    is_rtx_codec,
    match_codecs,
    validate_rtp_capabilities,
    validate_rtp_codec_capability,
    validate_rtp_header_extension,
)
from worker.supported_rtp_capabilities import SUPPORTED_CODECS, RtpCodecCapability

AUDIO_FB = [{"type": "nack", "parameter": ""}, {"type": "transport-cc", "parameter": ""}]
VIDEO_FB = [
    {"type": "nack", "parameter": ""},
    {"type": "nack", "parameter": "pli"},
    {"type": "ccm", "parameter": "fir"},
    {"type": "goog-remb", "parameter": ""},
    {"type": "transport-cc", "parameter": ""},
]

EXPECTED_HEADER_EXTENSIONS = [
    ("audio", "urn:ietf:params:rtp-hdrext:sdes:mid", 1, "sendrecv"),
    ("video", "urn:ietf:params:rtp-hdrext:sdes:mid", 1, "sendrecv"),
    ("video", "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id", 2, "recvonly"),
    ("video", "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id", 3, "recvonly"),
    ("audio", "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time", 4, "sendrecv"),
    ("video", "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time", 4, "sendrecv"),
    ("audio", "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01", 5,
     "recvonly"),
    ("video", "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01", 5,
     "sendrecv"),
    ("video",
     "https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension",
     8, "recvonly"),
    ("audio", "urn:ietf:params:rtp-hdrext:ssrc-audio-level", 10, "sendrecv"),
    ("video", "urn:3gpp:video-orientation", 11, "sendrecv"),
    ("video", "urn:ietf:params:rtp-hdrext:toffset", 12, "sendrecv"),
    ("audio", "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time", 13, "sendrecv"),
    ("video", "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time", 13, "sendrecv"),
    ("audio", "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay", 14, "sendrecv"),
    ("video", "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay", 14, "sendrecv"),
]

OPUS: dict[str, Any] = {"kind": "audio", "mimeType": "audio/opus", "clockRate": 48000,
                        "channels": 2}
VP8: dict[str, Any] = {"kind": "video", "mimeType": "video/VP8", "clockRate": 90000}


def rtx(payload_type: int, apt: int) -> dict[str, Any]:
    return {"kind": "video", "mimeType": "video/rtx", "preferredPayloadType": payload_type,
            "clockRate": 90000, "parameters": {"apt": apt}, "rtcpFeedback": []}


def pts(caps: dict[str, Any]) -> list[tuple[str, int]]:
    return [(c["mimeType"], c["preferredPayloadType"]) for c in caps["codecs"]]


# -- generate_router_rtp_capabilities: golden outputs ---------------------------------------


def test_mediasoup_ortc_golden() -> None:
    """mediasoup's own test-ortc case: forced VP8 PT, merged parameters, ignored feedback."""
    caps = generate_router_rtp_capabilities([
        {**OPUS, "parameters": {"useinbandfec": 1, "foo": "bar"}},
        {**VP8, "preferredPayloadType": 125},
        {"kind": "video", "mimeType": "video/H264", "clockRate": 90000,
         "parameters": {"level-asymmetry-allowed": 1, "profile-level-id": "42e01f",
                        "foo": "bar"},
         "rtcpFeedback": []},
    ])
    assert caps["codecs"] == [
        {"kind": "audio", "mimeType": "audio/opus", "preferredPayloadType": 100,
         "clockRate": 48000, "channels": 2, "parameters": {"useinbandfec": 1, "foo": "bar"},
         "rtcpFeedback": AUDIO_FB},
        {"kind": "video", "mimeType": "video/VP8", "preferredPayloadType": 125,
         "clockRate": 90000, "parameters": {}, "rtcpFeedback": VIDEO_FB},
        rtx(101, 125),
        {"kind": "video", "mimeType": "video/H264", "preferredPayloadType": 102,
         "clockRate": 90000,
         "parameters": {"level-asymmetry-allowed": 1, "profile-level-id": "42e01f",
                        "foo": "bar"},
         "rtcpFeedback": VIDEO_FB},
        rtx(103, 102),
    ]
    assert "channels" not in caps["codecs"][1]


def test_router_codecs_with_vp9_and_multiopus() -> None:
    """mediasoup's test-Router codecs plus VP9 and 5.1 multiopus."""
    media_codecs = [
        {**OPUS, "parameters": {"useinbandfec": 1, "foo": "bar"}},
        VP8,
        {"kind": "video", "mimeType": "video/H264", "clockRate": 90000,
         "parameters": {"level-asymmetry-allowed": 1, "packetization-mode": 1,
                        "profile-level-id": "4d0032"},
         "rtcpFeedback": []},
        {"kind": "video", "mimeType": "video/VP9", "clockRate": 90000,
         "parameters": {"profile-id": 2}},
        {"kind": "audio", "mimeType": "audio/multiopus", "clockRate": 48000, "channels": 6,
         "parameters": {"useinbandfec": 1, "channel_mapping": "0,4,1,2,3,5", "num_streams": 4,
                        "coupled_streams": 2}},
    ]
    frozen = copy.deepcopy(media_codecs)
    caps = generate_router_rtp_capabilities(media_codecs)
    assert media_codecs == frozen  # the request's data is never modified

    assert pts(caps) == [
        ("audio/opus", 100), ("video/VP8", 101), ("video/rtx", 102), ("video/H264", 103),
        ("video/rtx", 104), ("video/VP9", 105), ("video/rtx", 106), ("audio/multiopus", 107),
    ]
    codecs = caps["codecs"]
    assert [c["parameters"] for c in codecs if c["mimeType"] == "video/rtx"] == [
        {"apt": 101}, {"apt": 103}, {"apt": 105}]
    assert codecs[3]["parameters"] == {"level-asymmetry-allowed": 1, "packetization-mode": 1,
                                       "profile-level-id": "4d0032"}
    assert codecs[5]["parameters"] == {"profile-id": 2}
    assert codecs[7] == {
        "kind": "audio", "mimeType": "audio/multiopus", "preferredPayloadType": 107,
        "clockRate": 48000, "channels": 6,
        "parameters": {"channel_mapping": "0,4,1,2,3,5", "num_streams": 4,
                       "coupled_streams": 2, "useinbandfec": 1},
        "rtcpFeedback": AUDIO_FB,
    }
    assert all(c["rtcpFeedback"] == VIDEO_FB for c in codecs if c["mimeType"] in
               ("video/VP8", "video/H264", "video/VP9"))
    assert all(c["rtcpFeedback"] == [] for c in codecs if c["mimeType"] == "video/rtx")


def test_header_extensions_are_all_supported_ones() -> None:
    for media_codecs in ([], [OPUS], [VP8]):
        caps = generate_router_rtp_capabilities(media_codecs)
        assert caps["headerExtensions"] == [
            {"kind": kind, "uri": uri, "preferredId": ext_id, "preferredEncrypt": False,
             "direction": direction}
            for kind, uri, ext_id, direction in EXPECTED_HEADER_EXTENSIONS
        ]


def test_audio_only_static_and_dynamic_payload_types() -> None:
    caps = generate_router_rtp_capabilities([
        {"mimeType": "audio/PCMU", "clockRate": 8000},
        {"mimeType": "audio/PCMA", "clockRate": 8000},
        {"mimeType": "audio/G722", "clockRate": 8000},
        {"mimeType": "audio/CN", "clockRate": 8000},
        {"mimeType": "audio/telephone-event", "clockRate": 8000},
        OPUS,
    ])
    assert pts(caps) == [("audio/PCMU", 0), ("audio/PCMA", 8), ("audio/G722", 9),
                         ("audio/CN", 13), ("audio/telephone-event", 100), ("audio/opus", 101)]
    pcmu, _, _, cn, dtmf, _ = caps["codecs"]
    assert pcmu == {"kind": "audio", "mimeType": "audio/PCMU", "preferredPayloadType": 0,
                    "clockRate": 8000, "channels": 1, "parameters": {},
                    "rtcpFeedback": [{"type": "transport-cc", "parameter": ""}]}
    assert cn["rtcpFeedback"] == [] and dtmf["rtcpFeedback"] == []
    assert not any(is_rtx_codec(c) for c in caps["codecs"])


def test_preferred_payload_type_is_taken_out_of_the_pool() -> None:
    caps = generate_router_rtp_capabilities([
        {**VP8, "preferredPayloadType": 100}, OPUS, {"mimeType": "audio/PCMU",
                                                      "clockRate": 8000,
                                                      "preferredPayloadType": 96}])
    assert pts(caps) == [("video/VP8", 100), ("video/rtx", 101), ("audio/opus", 102),
                         ("audio/PCMU", 96)]


def test_dynamic_pool_wraps_from_127_to_96() -> None:
    assert (*range(100, 128), 96, 97, 98, 99) == DYNAMIC_PAYLOAD_TYPES
    caps = generate_router_rtp_capabilities([VP8] * 15)
    assert [pt for _, pt in pts(caps)] == [*range(100, 128), 96, 97]
    assert caps["codecs"][-1]["parameters"] == {"apt": 96}


def test_case_insensitive_mime_type_and_derived_kind() -> None:
    caps = generate_router_rtp_capabilities([
        {"mimeType": "VIDEO/vp8", "clockRate": 90000},
        {"mimeType": "video/av1", "clockRate": 90000},
        {"mimeType": "video/h265", "clockRate": 90000},
        {"mimeType": "AUDIO/OPUS", "clockRate": 48000, "channels": 2},
    ])
    assert pts(caps) == [("video/VP8", 100), ("video/rtx", 101), ("video/AV1", 102),
                         ("video/rtx", 103), ("video/H265", 104), ("video/rtx", 105),
                         ("audio/opus", 106)]
    assert caps["codecs"][4]["parameters"] == {"level-asymmetry-allowed": 1}
    assert [c["kind"] for c in caps["codecs"]] == ["video"] * 6 + ["audio"]


def test_no_media_codecs() -> None:
    empty: list[object] = []
    for media_codecs in (None, empty):
        caps = generate_router_rtp_capabilities(media_codecs)
        assert caps["codecs"] == []
        assert len(caps["headerExtensions"]) == len(EXPECTED_HEADER_EXTENSIONS)


def test_results_do_not_share_state() -> None:
    first = generate_router_rtp_capabilities([VP8])
    first["codecs"][0]["rtcpFeedback"].clear()
    first["headerExtensions"][0]["preferredId"] = 99
    second = generate_router_rtp_capabilities([VP8])
    assert second["codecs"][0]["rtcpFeedback"] == VIDEO_FB
    assert second["headerExtensions"][0]["preferredId"] == 1


# -- generate_router_rtp_capabilities: errors -----------------------------------------------


@pytest.mark.parametrize(("media_codecs", "reason"), [
    ({"codecs": []}, "mediaCodecs must be an array"),
    ("audio/opus", "mediaCodecs must be an array"),
    (["audio/opus"], "codec is not an object"),
    ([{"kind": "audio", "clockRate": 48000}], "missing codec.mimeType"),
    ([{"mimeType": 5, "clockRate": 48000}], "missing codec.mimeType"),
    ([{"mimeType": "opus", "clockRate": 48000}], "invalid codec.mimeType"),
    ([{"mimeType": "text/opus", "clockRate": 48000}], "invalid codec.mimeType"),
    ([{"kind": "video", "mimeType": "audio/opus", "clockRate": 48000, "channels": 2}],
     "invalid codec.kind"),
    ([{"mimeType": "audio/opus", "channels": 2}], "missing codec.clockRate"),
    ([{"mimeType": "audio/opus", "clockRate": "48000", "channels": 2}],
     "missing codec.clockRate"),
    ([{**OPUS, "channels": "2"}], "invalid codec.channels"),
    ([{**OPUS, "channels": 2.0}], "invalid codec.channels"),
    ([{**OPUS, "preferredPayloadType": "100"}], "invalid codec.preferredPayloadType"),
    ([{**OPUS, "preferredPayloadType": 128}], "invalid codec.preferredPayloadType"),
    ([{**OPUS, "parameters": "useinbandfec=1"}], "invalid codec.parameters"),
    ([{**OPUS, "parameters": {"useinbandfec": None}}],
     "invalid codec parameter [key:useinbandfec, value:None]"),
    ([{**OPUS, "parameters": {"stereo": True}}],
     "invalid codec parameter [key:stereo, value:True]"),
    ([{**OPUS, "rtcpFeedback": {"type": "nack"}}], "invalid codec.rtcpFeedback"),
    ([{**OPUS, "rtcpFeedback": [{"parameter": "pli"}]}], "missing fb.type"),
    ([{"mimeType": "video/rtx", "clockRate": 90000, "parameters": {"apt": "100"}}],
     "invalid codec apt parameter"),
    ([{**VP8, "preferredPayloadType": 100}, {**OPUS, "preferredPayloadType": 100}],
     "duplicated codec.preferredPayloadType [preferredPayloadType:100]"),
    ([VP8, {**OPUS, "preferredPayloadType": 101}],  # 101 went to VP8's RTX
     "duplicated codec.preferredPayloadType [preferredPayloadType:101]"),
    ([{"mimeType": "audio/CN", "clockRate": 8000}, {"mimeType": "audio/CN", "clockRate": 16000}],
     "duplicated codec.preferredPayloadType [preferredPayloadType:13]"),
])
def test_type_errors(media_codecs: object, reason: str) -> None:
    with pytest.raises(WorkerTypeError) as info:
        generate_router_rtp_capabilities(media_codecs)
    assert str(info.value) == reason
    assert info.value.wire_name == "TypeError"
    assert isinstance(info.value, TypeError)


@pytest.mark.parametrize(("media_codec", "reason"), [
    ({"kind": "audio", "mimeType": "audio/chicken", "clockRate": 8000, "channels": 4},
     "media codec not supported [mimeType:audio/chicken]"),
    ({**OPUS, "channels": 1}, "media codec not supported [mimeType:audio/opus]"),
    ({**OPUS, "clockRate": 44100}, "media codec not supported [mimeType:audio/opus]"),
    ({"mimeType": "audio/multiopus", "clockRate": 48000, "channels": 6,
      "parameters": {"num_streams": 2, "coupled_streams": 2}},
     "media codec not supported [mimeType:audio/multiopus]"),
    ({"mimeType": "video/rtx", "clockRate": 90000, "parameters": {"apt": 100}},
     "media codec not supported [mimeType:video/rtx]"),
    ({"mimeType": "video/H264", "clockRate": 90000,
      "parameters": {"packetization-mode": 1, "profile-level-id": "6e0032"}},
     "media codec not supported [mimeType:video/H264, profile-level-id:6e0032]"),
    ({"mimeType": "video/H264", "clockRate": 90000, "parameters": {"profile-level-id": "xyz"}},
     "media codec not supported [mimeType:video/H264, profile-level-id:xyz]"),
])
def test_unsupported_codecs(media_codec: dict[str, Any], reason: str) -> None:
    with pytest.raises(UnsupportedError) as info:
        generate_router_rtp_capabilities([media_codec])
    assert str(info.value) == reason
    assert info.value.wire_name == "UnsupportedError"


def test_too_many_codecs_exhausts_dynamic_payload_types() -> None:
    with pytest.raises(WorkerError) as info:
        generate_router_rtp_capabilities([OPUS] * 100)
    assert type(info.value) is WorkerError
    assert str(info.value) == "cannot allocate more dynamic codec payload types"
    assert info.value.wire_name == "Error"
    # 32 dynamic payload types: exactly 32 opus fit, the 33rd does not.
    assert len(generate_router_rtp_capabilities([OPUS] * 32)["codecs"]) == 32
    with pytest.raises(WorkerError, match="cannot allocate"):
        generate_router_rtp_capabilities([OPUS] * 33)
    # A video codec needs a second payload type for its RTX.
    with pytest.raises(WorkerError, match="cannot allocate"):
        generate_router_rtp_capabilities([OPUS] * 31 + [VP8])


# -- Validation ----------------------------------------------------------------------------


def test_validate_codec_capability_defaults() -> None:
    given = {"mimeType": "audio/opus", "clockRate": 48000, "channels": None,
             "rtcpFeedback": [{"type": "nack"}, {"type": "nack", "parameter": None}]}
    frozen = copy.deepcopy(given)
    assert validate_rtp_codec_capability(given) == {
        "kind": "audio", "mimeType": "audio/opus", "clockRate": 48000, "channels": 1,
        "parameters": {},
        "rtcpFeedback": [{"type": "nack", "parameter": ""}, {"type": "nack", "parameter": ""}],
    }
    assert given == frozen
    video = validate_rtp_codec_capability({"mimeType": "video/VP8", "clockRate": 90000,
                                           "channels": 2, "preferredPayloadType": 0})
    assert "channels" not in video
    assert video["preferredPayloadType"] == 0


def test_validate_header_extension() -> None:
    assert validate_rtp_header_extension(
        {"kind": "video", "uri": "urn:3gpp:video-orientation", "preferredId": 11}) == {
        "kind": "video", "uri": "urn:3gpp:video-orientation", "preferredId": 11,
        "preferredEncrypt": False, "direction": "sendrecv"}
    for ext, reason in [
        ("mid", "ext is not an object"),
        ({"kind": "data", "uri": "x", "preferredId": 1}, "invalid ext.kind"),
        ({"kind": "audio", "preferredId": 1}, "missing ext.uri"),
        ({"kind": "audio", "uri": "x"}, "missing ext.preferredId"),
        ({"kind": "audio", "uri": "x", "preferredId": 0}, "invalid ext.preferredId"),
        ({"kind": "audio", "uri": "x", "preferredId": 1, "preferredEncrypt": 1},
         "invalid ext.preferredEncrypt"),
        ({"kind": "audio", "uri": "x", "preferredId": 1, "direction": "both"},
         "invalid ext.direction"),
    ]:
        with pytest.raises(WorkerTypeError) as info:
            validate_rtp_header_extension(ext)
        assert str(info.value) == reason


def test_validate_rtp_capabilities() -> None:
    assert validate_rtp_capabilities({}) == {"codecs": [], "headerExtensions": []}
    caps = validate_rtp_capabilities({
        "codecs": [{"kind": "video", "mimeType": "video/rtx", "preferredPayloadType": 102,
                    "clockRate": 90000, "parameters": {"apt": 101}}],
        "headerExtensions": [{"kind": "audio", "uri": "urn:ietf:params:rtp-hdrext:sdes:mid",
                              "preferredId": 1, "direction": "recvonly"}],
    })
    assert caps["codecs"][0]["parameters"] == {"apt": 101}
    assert caps["codecs"][0]["rtcpFeedback"] == []
    assert caps["headerExtensions"][0]["direction"] == "recvonly"
    cases: list[tuple[object, str]] = [
        (None, "caps is not an object"),
        ({"codecs": {}}, "caps.codecs is not an array"),
        ({"headerExtensions": "x"}, "caps.headerExtensions is not an array"),
        ({"codecs": [{"clockRate": 1}]}, "missing codec.mimeType"),
    ]
    for bad, reason in cases:
        with pytest.raises(WorkerTypeError) as info:
            validate_rtp_capabilities(bad)
        assert str(info.value) == reason


def test_supported_codecs_are_already_normalised() -> None:
    for codec in SUPPORTED_CODECS:
        assert validate_rtp_codec_capability(dict(codec)) == codec


# -- match_codecs ---------------------------------------------------------------------------


def h264(parameters: dict[str, str | int] | None = None) -> RtpCodecCapability:
    return validate_rtp_codec_capability(
        {"mimeType": "video/H264", "clockRate": 90000, "parameters": parameters or {}})


def test_match_codecs_basic_fields() -> None:
    opus = validate_rtp_codec_capability(OPUS)
    assert match_codecs(opus, validate_rtp_codec_capability({**OPUS, "mimeType": "audio/OPUS"}))
    assert not match_codecs(opus, validate_rtp_codec_capability({**OPUS, "channels": 1}))
    assert not match_codecs(opus, validate_rtp_codec_capability({**OPUS, "clockRate": 16000}))
    assert not match_codecs(opus, validate_rtp_codec_capability(VP8))


def test_match_codecs_h264_rules() -> None:
    router = h264({"packetization-mode": 1, "profile-level-id": "4d0032",
                     "level-asymmetry-allowed": 1})
    # Loose matching ignores packetization-mode and profile.
    assert match_codecs(h264(), router)
    assert not match_codecs(h264(), router, strict=True)  # packetization-mode 0 vs 1
    assert match_codecs(h264({"packetization-mode": "1", "profile-level-id": "4d001f"}),
                        router, strict=True)
    assert not match_codecs(h264({"packetization-mode": 1, "profile-level-id": "42e01f"}),
                            router, strict=True)
    assert not match_codecs(h264({"packetization-mode": 1, "profile-level-id": "zzzzzz"}),
                            router, strict=True)


def test_match_codecs_h264_modify_sets_answer_profile() -> None:
    router = h264({"packetization-mode": 1, "profile-level-id": "42e01f"})
    offer = h264({"packetization-mode": 1, "profile-level-id": "42e034"})
    # No level asymmetry: the answer's level is the lower one (3.1 < 5.2).
    assert match_codecs(offer, router, strict=True, modify=True)
    assert offer["parameters"]["profile-level-id"] == "42e01f"
    # Neither side gives a profile-level-id: the answer has none either.
    bare = h264({"packetization-mode": 1})
    assert match_codecs(bare, h264({"packetization-mode": 1}), strict=True, modify=True)
    assert "profile-level-id" not in bare["parameters"]


def test_match_codecs_vp9_profile_and_multiopus_streams() -> None:
    vp9 = validate_rtp_codec_capability({"mimeType": "video/VP9", "clockRate": 90000})
    vp9_p2 = validate_rtp_codec_capability(
        {"mimeType": "video/VP9", "clockRate": 90000, "parameters": {"profile-id": 2}})
    vp9_p0 = validate_rtp_codec_capability(
        {"mimeType": "video/VP9", "clockRate": 90000, "parameters": {"profile-id": "0"}})
    assert match_codecs(vp9, vp9_p2)
    assert not match_codecs(vp9, vp9_p2, strict=True)
    assert match_codecs(vp9, vp9_p0, strict=True)

    def multiopus(streams: int, coupled: int) -> RtpCodecCapability:
        return validate_rtp_codec_capability(
            {"mimeType": "audio/multiopus", "clockRate": 48000, "channels": 6,
             "parameters": {"num_streams": streams, "coupled_streams": coupled}})

    assert match_codecs(multiopus(4, 2), multiopus(4, 2))
    assert not match_codecs(multiopus(4, 2), multiopus(2, 2))
    assert not match_codecs(multiopus(4, 2), multiopus(4, 1))


# -- h264_profile ---------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "profile", "level"), [
    ("42e01f", Profile.CONSTRAINED_BASELINE, Level.L3_1),
    ("42001f", Profile.BASELINE, Level.L3_1),
    ("4d001f", Profile.MAIN, Level.L3_1),
    ("4d0032", Profile.MAIN, Level.L5),
    ("4d801f", Profile.CONSTRAINED_BASELINE, Level.L3_1),
    ("58c01f", Profile.CONSTRAINED_BASELINE, Level.L3_1),
    ("58801f", Profile.BASELINE, Level.L3_1),
    ("640032", Profile.HIGH, Level.L5),
    ("64001f", Profile.HIGH, Level.L3_1),
    ("640c1f", Profile.CONSTRAINED_HIGH, Level.L3_1),
    ("f4001f", Profile.PREDICTIVE_HIGH_444, Level.L3_1),
    ("42f00b", Profile.CONSTRAINED_BASELINE, Level.L1_B),
    ("42100b", Profile.BASELINE, Level.L1_B),
    ("42e00b", Profile.CONSTRAINED_BASELINE, Level.L1_1),
    ("42E01F", Profile.CONSTRAINED_BASELINE, Level.L3_1),
    ("640c3e", Profile.CONSTRAINED_HIGH, Level.L6_2),
])
def test_parse_profile_level_id(text: str, profile: Profile, level: Level) -> None:
    assert parse_profile_level_id(text) == ProfileLevelId(profile, level)


@pytest.mark.parametrize("text", [
    "", "42e01", "42e01ff", "xyzxyz", "000000", "42e0ff", "42e009", "6e0032", "64100b",
    "4d201f", "42e81f", " 42e01", "0x42e0", "+42e01", "42_e01",
])
def test_parse_invalid_profile_level_id(text: str) -> None:
    assert parse_profile_level_id(text) is None


def test_profile_level_id_to_string() -> None:
    assert profile_level_id_to_string(
        ProfileLevelId(Profile.CONSTRAINED_BASELINE, Level.L3_1)) == "42e01f"
    assert profile_level_id_to_string(ProfileLevelId(Profile.MAIN, Level.L1_B)) == "4d100b"
    assert profile_level_id_to_string(ProfileLevelId(Profile.HIGH, Level.L5_2)) == "640034"
    assert profile_level_id_to_string(ProfileLevelId(Profile.HIGH, Level.L1_B)) is None


def test_parse_sdp_profile_level_id_defaults_and_numbers() -> None:
    default = ProfileLevelId(Profile.CONSTRAINED_BASELINE, Level.L3_1)
    assert parse_sdp_profile_level_id({}) == default
    assert parse_sdp_profile_level_id({"profile-level-id": ""}) == default
    assert parse_sdp_profile_level_id({"profile-level-id": 640032}) == ProfileLevelId(
        Profile.HIGH, Level.L5)
    assert parse_sdp_profile_level_id({"profile-level-id": 1.5}) is None


def test_is_same_profile() -> None:
    assert is_same_profile({}, {"profile-level-id": "42e01f"})
    assert is_same_profile({"profile-level-id": "42e01f"}, {"profile-level-id": "42e034"})
    assert is_same_profile({"profile-level-id": "4d001f"}, {"profile-level-id": "4d801f"}) is False
    assert not is_same_profile({"profile-level-id": "42e01f"}, {"profile-level-id": "42001f"})
    assert not is_same_profile({"profile-level-id": "bad"}, {"profile-level-id": "bad"})
    assert is_same_profile_and_level({}, {"profile-level-id": "42e01f"})
    assert not is_same_profile_and_level({"profile-level-id": "42e01f"},
                                         {"profile-level-id": "42e034"})


def test_level_asymmetry_allowed() -> None:
    assert is_level_asymmetry_allowed({"level-asymmetry-allowed": 1})
    assert is_level_asymmetry_allowed({"level-asymmetry-allowed": "1"})
    assert not is_level_asymmetry_allowed({"level-asymmetry-allowed": 0})
    assert not is_level_asymmetry_allowed({"level-asymmetry-allowed": True})
    assert not is_level_asymmetry_allowed({})


def test_generate_profile_level_id_for_answer() -> None:
    asym = {"level-asymmetry-allowed": 1}
    assert generate_profile_level_id_for_answer({}, {}) is None
    assert generate_profile_level_id_for_answer(asym, {"profile-level-id": "42e01f"}) == "42e01f"
    # Level asymmetry on both sides: the answerer's own level, even above the offer's.
    assert generate_profile_level_id_for_answer(
        {"profile-level-id": "42e01f", **asym}, {"profile-level-id": "42e015", **asym}
    ) == "42e01f"
    # Otherwise the lower level.
    assert generate_profile_level_id_for_answer(
        {"profile-level-id": "42e01f", **asym}, {"profile-level-id": "42e015"}) == "42e015"
    assert generate_profile_level_id_for_answer(
        {"profile-level-id": "640c15"}, {"profile-level-id": "640c1f"}) == "640c15"
    # Level 1b sits between 1 and 1.1.
    assert generate_profile_level_id_for_answer(
        {"profile-level-id": "42f00b"}, {"profile-level-id": "42e00a"}) == "42e00a"
    assert generate_profile_level_id_for_answer(
        {"profile-level-id": "42f00b"}, {"profile-level-id": "42e00b"}) == "42f00b"
    with pytest.raises(H264ProfileError, match="profile mismatch"):
        generate_profile_level_id_for_answer({"profile-level-id": "42e01f"},
                                             {"profile-level-id": "640032"})
    with pytest.raises(H264ProfileError, match="invalid remote"):
        generate_profile_level_id_for_answer({"profile-level-id": "42e01f"},
                                             {"profile-level-id": "42e0ff"})
    with pytest.raises(H264ProfileError, match="invalid local"):
        generate_profile_level_id_for_answer({"profile-level-id": "zz"}, {})
