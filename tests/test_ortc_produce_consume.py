"""Golden tests for producer mapping and consumer parameters (worker.ortc_produce/_consume).

The producers are what mediasoup-client sends from Chrome (browser payload types and header
extension ids); the router is made by generate_router_rtp_capabilities; consumer
capabilities are what a mediasoup-client Device reports for that router.
"""

from __future__ import annotations

import copy
import random
import re
from typing import Any

import pytest

from worker.errors import UnsupportedError, WorkerTypeError
from worker.ortc import generate_router_rtp_capabilities
from worker.ortc_consume import (
    can_consume,
    get_consumer_rtp_parameters,
    get_pipe_consumer_rtp_parameters,
)
from worker.ortc_produce import (
    RtpParameters,
    generate_ssrc,
    get_consumable_rtp_parameters,
    get_producer_rtp_parameters_mapping,
    parse_scalability_mode,
    validate_rtp_parameters,
)

MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
RID = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
TWCC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
ORIENTATION = "urn:3gpp:video-orientation"
TOFFSET = "urn:ietf:params:rtp-hdrext:toffset"
ABS_CAPTURE = "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time"
PLAYOUT = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay"


def fb(fb_type: str, parameter: str = "") -> dict[str, str]:
    return {"type": fb_type, "parameter": parameter}


NACK, PLI, FIR, REMB, TCC = fb("nack"), fb("nack", "pli"), fb("ccm", "fir"), fb("goog-remb"), \
    fb("transport-cc")
ROUTER_VIDEO_FB = [NACK, PLI, FIR, REMB, TCC]
CHROME_VIDEO_FB = [{"type": "goog-remb"}, {"type": "transport-cc"},
                   {"type": "ccm", "parameter": "fir"}, {"type": "nack"},
                   {"type": "nack", "parameter": "pli"}]
H264_PARAMS = {"level-asymmetry-allowed": 1, "packetization-mode": 1,
               "profile-level-id": "42e01f"}


def ext(uri: str, ext_id: int) -> dict[str, Any]:
    return {"uri": uri, "id": ext_id, "encrypt": False, "parameters": {}}


@pytest.fixture
def router_caps() -> dict[str, Any]:
    """opus 100, VP8 101 (RTX 102), H264 103 (RTX 104)."""
    return generate_router_rtp_capabilities([
        {"kind": "audio", "mimeType": "audio/opus", "clockRate": 48000, "channels": 2},
        {"kind": "video", "mimeType": "video/VP8", "clockRate": 90000},
        {"kind": "video", "mimeType": "video/H264", "clockRate": 90000,
         "parameters": dict(H264_PARAMS)},
    ])


def opus_producer() -> dict[str, Any]:
    return {
        "mid": "0",
        "codecs": [{"mimeType": "audio/opus", "payloadType": 111, "clockRate": 48000,
                    "channels": 2, "parameters": {"minptime": 10, "useinbandfec": 1},
                    "rtcpFeedback": [{"type": "transport-cc"}]}],
        "headerExtensions": [{"uri": AUDIO_LEVEL, "id": 1}, {"uri": ABS_SEND_TIME, "id": 2},
                             {"uri": TWCC, "id": 3}, {"uri": MID, "id": 4}],
        "encodings": [{"ssrc": 11111111, "dtx": False}],
        "rtcp": {"cname": "cname-a", "reducedSize": True},
    }


def vp8_producer() -> dict[str, Any]:
    return {
        "mid": "1",
        "codecs": [
            {"mimeType": "video/VP8", "payloadType": 96, "clockRate": 90000,
             "rtcpFeedback": CHROME_VIDEO_FB},
            {"mimeType": "video/rtx", "payloadType": 97, "clockRate": 90000,
             "parameters": {"apt": 96}, "rtcpFeedback": []},
        ],
        "headerExtensions": [{"uri": ABS_SEND_TIME, "id": 2}, {"uri": TWCC, "id": 3},
                             {"uri": MID, "id": 4}, {"uri": ORIENTATION, "id": 13},
                             {"uri": TOFFSET, "id": 14}],
        "encodings": [{"ssrc": 22222222, "rtx": {"ssrc": 22222223}, "scalabilityMode": "L1T3",
                       "maxBitrate": 900000}],
        "rtcp": {"cname": "cname-a"},
    }


def h264_producer() -> dict[str, Any]:
    return {
        "mid": "2",
        "codecs": [
            {"mimeType": "video/H264", "payloadType": 102, "clockRate": 90000,
             "parameters": dict(H264_PARAMS), "rtcpFeedback": CHROME_VIDEO_FB},
            {"mimeType": "video/rtx", "payloadType": 103, "clockRate": 90000,
             "parameters": {"apt": 102}},
        ],
        "headerExtensions": [{"uri": MID, "id": 4}, {"uri": RID, "id": 10}],
        "encodings": [{"ssrc": 33333333, "rtx": {"ssrc": 33333334}}],
        "rtcp": {"cname": "cname-a"},
    }


def device_caps(router_caps: dict[str, Any], *, codecs: list[str] | None = None,
                rtx: bool = True, exclude_uris: tuple[str, ...] = ()) -> dict[str, Any]:
    """A mediasoup-client Device's recv capabilities: the router's, cut down."""
    caps = copy.deepcopy(router_caps)
    kept = [c for c in caps["codecs"] if codecs is None or c["mimeType"] in codecs
            or (rtx and c["mimeType"] == "video/rtx")]
    if not rtx:
        kept = [c for c in kept if c["mimeType"] != "video/rtx"]
    caps["codecs"] = kept
    caps["headerExtensions"] = [
        e for e in caps["headerExtensions"]
        if e["direction"] in ("sendrecv", "sendonly") and e["uri"] not in exclude_uris]
    for e in caps["headerExtensions"]:
        e["direction"] = "sendrecv" if e["direction"] == "sendrecv" else "recvonly"
    return caps


def produce(raw: dict[str, Any], caps: dict[str, Any],
            seed: int = 1) -> tuple[RtpParameters, dict[str, Any], RtpParameters]:
    params = validate_rtp_parameters(raw)
    mapping = get_producer_rtp_parameters_mapping(params, caps, random.Random(seed))
    kind = "audio" if raw["codecs"][0]["mimeType"].startswith("audio") else "video"
    consumable = get_consumable_rtp_parameters(kind, params, caps, mapping)
    return params, dict(mapping), consumable


# -- validate_rtp_parameters -----------------------------------------------------------------


def test_validate_normalises_a_mediasoup_client_producer() -> None:
    raw = vp8_producer()
    frozen = copy.deepcopy(raw)
    params = validate_rtp_parameters(raw)
    assert raw == frozen  # never mutated
    assert params == {
        "mid": "1",
        "codecs": [
            {"mimeType": "video/VP8", "payloadType": 96, "clockRate": 90000,
             "parameters": {}, "rtcpFeedback": [REMB, TCC, FIR, NACK, PLI]},
            {"mimeType": "video/rtx", "payloadType": 97, "clockRate": 90000,
             "parameters": {"apt": 96}, "rtcpFeedback": []},
        ],
        "headerExtensions": [ext(ABS_SEND_TIME, 2), ext(TWCC, 3), ext(MID, 4),
                             ext(ORIENTATION, 13), ext(TOFFSET, 14)],
        "encodings": [{"ssrc": 22222222, "rtx": {"ssrc": 22222223}, "codecPayloadType": 96,
                       "dtx": False, "scalabilityMode": "L1T3", "maxBitrate": 900000}],
        "rtcp": {"cname": "cname-a", "reducedSize": True},
    }


def test_validate_defaults_and_dropped_fields() -> None:
    params = validate_rtp_parameters({
        "codecs": [{"mimeType": "audio/opus", "payloadType": 111, "clockRate": 48000,
                    "kind": "video", "preferredPayloadType": "junk"}],
        "encodings": [{"ssrc": 5, "active": True, "maxFramerate": 30}],
    })
    # channels defaults to 1; kind and preferredPayloadType are not RtpCodecParameters fields.
    assert params == {
        "codecs": [{"mimeType": "audio/opus", "payloadType": 111, "clockRate": 48000,
                    "channels": 1, "parameters": {}, "rtcpFeedback": []}],
        "headerExtensions": [],
        "encodings": [{"ssrc": 5, "codecPayloadType": 111, "dtx": False}],
        "rtcp": {"reducedSize": True},
    }
    assert "mid" not in params
    params = validate_rtp_parameters({**opus_producer(),
                                      "rtcp": {"cname": "", "reducedSize": False, "mux": True}})
    assert params["rtcp"] == {"reducedSize": False, "mux": True}


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda p: p.update(codecs=None), "missing params.codecs"),
    (lambda p: p.update(codecs=[]), "empty params.codecs"),
    (lambda p: p.update(mid=5), "params.mid is not a string"),
    (lambda p: p.update(mid=""), "empty params.mid"),
    (lambda p: p["codecs"][0].update(payloadType="96"), "invalid codec.payloadType"),
    (lambda p: p["codecs"][0].update(payloadType=128), "invalid codec.payloadType"),
    (lambda p: p["codecs"][0].pop("payloadType"), "missing codec.payloadType"),
    (lambda p: p["codecs"][0].update(clockRate="90000"), "missing codec.clockRate"),
    (lambda p: p["codecs"][0].update(mimeType="VP8"), "invalid codec.mimeType"),
    (lambda p: p["codecs"][1].update(payloadType=96), "duplicated codec.payloadType"),
    (lambda p: p["codecs"][1].update(parameters={}), "missing apt parameter in RTX codec"),
    (lambda p: p["codecs"][1].update(parameters={"apt": "96"}), "invalid codec apt parameter"),
    (lambda p: p["codecs"][1].update(parameters={"apt": 99}), "points to a non existing"),
    (lambda p: p["codecs"][1].update(parameters={"apt": 97}), "points to a RTX codec"),
    (lambda p: p["codecs"].pop(0), "no media codecs found"),
    (lambda p: p["codecs"].append({"mimeType": "audio/opus", "payloadType": 111,
                                   "clockRate": 48000, "channels": 2}), "mix audio and video"),
    (lambda p: p.update(headerExtensions={}), "params.headerExtensions is not an array"),
    (lambda p: p["headerExtensions"][0].update(id="2"), "missing ext.id"),
    (lambda p: p["headerExtensions"][0].update(id=0), "invalid ext.id"),
    (lambda p: p["headerExtensions"][0].update(uri=""), "missing ext.uri"),
    (lambda p: p["headerExtensions"][0].update(encrypt=1), "invalid ext.encrypt"),
    (lambda p: p["headerExtensions"][1].update(id=2), "duplicated ext.id [id:2]"),
    (lambda p: p.update(encodings="x"), "params.encodings is not an array"),
    (lambda p: p.update(encodings=[]), "empty params.encodings"),
    (lambda p: p.pop("encodings"), "empty params.encodings"),
    (lambda p: p.update(encodings=[5]), "encoding is not an object"),
    (lambda p: p["encodings"][0].update(ssrc="1"), "invalid encoding.ssrc"),
    (lambda p: p["encodings"][0].update(ssrc=2**32), "invalid encoding.ssrc"),
    (lambda p: p["encodings"][0].update(rid=3), "invalid encoding.rid"),
    (lambda p: p["encodings"][0].update(rtx=1), "invalid encoding.rtx"),
    (lambda p: p["encodings"][0].update(rtx={}), "missing encoding.rtx.ssrc"),
    (lambda p: p["encodings"][0].update(rtx={"ssrc": 22222222}), "duplicated encoding ssrc"),
    (lambda p: p["encodings"][0].update(dtx="no"), "invalid encoding.dtx"),
    (lambda p: p["encodings"][0].update(scalabilityMode="foo"),
     "invalid encoding.scalabilityMode"),
    (lambda p: p["encodings"][0].update(maxBitrate=-1), "invalid encoding.maxBitrate"),
    (lambda p: p["encodings"][0].update(codecPayloadType=97), "a RTX codec"),
    (lambda p: p["encodings"][0].update(codecPayloadType=50), "unknown encoding.codecPayloadType"),
    (lambda p: p.update(rtcp=[]), "params.rtcp is not an object"),
    (lambda p: p["rtcp"].update(cname=1), "invalid rtcp.cname"),
    (lambda p: p["rtcp"].update(reducedSize="yes"), "invalid rtcp.reducedSize"),
])
def test_validate_rejects(mutate: Any, message: str) -> None:
    raw = vp8_producer()
    mutate(raw)
    with pytest.raises(WorkerTypeError, match=re.escape(message)):
        validate_rtp_parameters(raw)


def test_validate_rejects_non_object() -> None:
    with pytest.raises(TypeError, match="params is not an object"):
        validate_rtp_parameters([])


def test_validate_ssrc_or_rid_rules() -> None:
    """mediasoup's Producer: several encodings need ssrc or rid; one needs them or a mid."""
    raw = vp8_producer()
    raw["encodings"] = [{"rid": "r0"}, {"rid": "r1"}, {"ssrc": 7}]
    assert [e.get("rid") for e in validate_rtp_parameters(raw)["encodings"]] == \
        ["r0", "r1", None]
    raw["encodings"] = [{"rid": "r0"}, {}]
    with pytest.raises(WorkerTypeError, match=r"missing encoding.ssrc or encoding.rid$"):
        validate_rtp_parameters(raw)
    raw["encodings"] = [{"rid": "r0"}, {"rid": "r0"}]
    with pytest.raises(WorkerTypeError, match=r"duplicated encoding.rid"):
        validate_rtp_parameters(raw)
    raw["encodings"] = [{"rid": "r0", "scalabilityMode": "L3T3"}, {"rid": "r1"}]
    with pytest.raises(WorkerTypeError, match="both simulcast and encodings with multiple SVC"):
        validate_rtp_parameters(raw)
    # One encoding without ssrc or rid: fine with a mid, refused without.
    raw["encodings"] = [{}]
    assert validate_rtp_parameters(raw)["encodings"] == [{"codecPayloadType": 96, "dtx": False}]
    del raw["mid"]
    with pytest.raises(WorkerTypeError, match=r"or params.mid"):
        validate_rtp_parameters(raw)


def test_parse_scalability_mode() -> None:
    assert parse_scalability_mode("L1T3") == (1, 3, False)
    assert parse_scalability_mode("L3T3_KEY") == (3, 3, True)
    assert parse_scalability_mode("S2T1h") == (2, 1, False)
    assert parse_scalability_mode("L0T1") is None
    assert parse_scalability_mode(None) is None


# -- get_producer_rtp_parameters_mapping -----------------------------------------------------


def test_mapping_opus(router_caps: dict[str, Any]) -> None:
    params = validate_rtp_parameters(opus_producer())
    mapping = get_producer_rtp_parameters_mapping(params, router_caps, random.Random(7))
    base = random.Random(7).randint(100_000_000, 999_999_999)
    assert mapping == {
        "codecs": [{"payloadType": 111, "mappedPayloadType": 100}],
        # audio transport-cc is recvonly in the router: still mapped for what producers send.
        "headerExtensions": [{"id": 1, "mappedId": 10}, {"id": 2, "mappedId": 4},
                             {"id": 3, "mappedId": 5}, {"id": 4, "mappedId": 1}],
        "encodings": [{"ssrc": 11111111, "mappedSsrc": base}],
    }


def test_mapping_vp8_with_rtx_and_h264(router_caps: dict[str, Any]) -> None:
    _, mapping, _ = produce(vp8_producer(), router_caps)
    assert mapping["codecs"] == [{"payloadType": 96, "mappedPayloadType": 101},
                                 {"payloadType": 97, "mappedPayloadType": 102}]
    assert mapping["headerExtensions"] == [
        {"id": 2, "mappedId": 4}, {"id": 3, "mappedId": 5}, {"id": 4, "mappedId": 1},
        {"id": 13, "mappedId": 11}, {"id": 14, "mappedId": 12}]
    [encoding] = mapping["encodings"]
    assert encoding["ssrc"] == 22222222 and encoding["scalabilityMode"] == "L1T3"
    assert 100_000_000 <= encoding["mappedSsrc"] <= 999_999_999

    _, mapping, _ = produce(h264_producer(), router_caps)
    assert mapping["codecs"] == [{"payloadType": 102, "mappedPayloadType": 103},
                                 {"payloadType": 103, "mappedPayloadType": 104}]
    assert mapping["headerExtensions"] == [{"id": 4, "mappedId": 1}, {"id": 10, "mappedId": 2}]


def test_mapping_simulcast_ssrcs_are_consecutive(router_caps: dict[str, Any]) -> None:
    raw = vp8_producer()
    raw["encodings"] = [{"rid": "r0", "scalabilityMode": "L1T3"}, {"rid": "r1"}, {"rid": "r2"}]
    params = validate_rtp_parameters(raw)
    mapping = get_producer_rtp_parameters_mapping(params, router_caps, random.Random(3))
    base = mapping["encodings"][0]["mappedSsrc"]
    assert mapping["encodings"] == [
        {"rid": "r0", "scalabilityMode": "L1T3", "mappedSsrc": base},
        {"rid": "r1", "mappedSsrc": base + 1}, {"rid": "r2", "mappedSsrc": base + 2}]


def test_mapping_unsupported(router_caps: dict[str, Any]) -> None:
    raw = vp8_producer()
    raw["codecs"][0]["mimeType"] = "video/VP9"
    params = validate_rtp_parameters(raw)
    with pytest.raises(UnsupportedError,
                       match=r"^unsupported codec \[mimeType:video/VP9, payloadType:96\]$"):
        get_producer_rtp_parameters_mapping(params, router_caps)
    # H264 with another packetization-mode or profile does not match the router's.
    for change in ({"packetization-mode": 0}, {"profile-level-id": "640032"}):
        raw = h264_producer()
        raw["codecs"][0]["parameters"].update(change)
        params = validate_rtp_parameters(raw)
        with pytest.raises(UnsupportedError, match="unsupported codec"):
            get_producer_rtp_parameters_mapping(params, router_caps)
    # An RTX codec for a media codec that has none in the router (audio).
    raw = opus_producer()
    raw["codecs"].append({"mimeType": "audio/rtx", "payloadType": 112, "clockRate": 48000,
                          "parameters": {"apt": 111}})
    params = validate_rtp_parameters(raw)
    with pytest.raises(UnsupportedError, match="no RTX codec for capability codec PT 100"):
        get_producer_rtp_parameters_mapping(params, router_caps)


def test_mapping_never_mutates(router_caps: dict[str, Any]) -> None:
    raw = h264_producer()
    raw["codecs"][0]["parameters"] = {"packetization-mode": 1, "profile-level-id": "42e034"}
    params = validate_rtp_parameters(raw)
    frozen_params, frozen_caps = copy.deepcopy(params), copy.deepcopy(router_caps)
    mapping = get_producer_rtp_parameters_mapping(params, router_caps)
    get_consumable_rtp_parameters("video", params, router_caps, mapping)
    assert params == frozen_params and router_caps == frozen_caps


# -- get_consumable_rtp_parameters -----------------------------------------------------------


def test_consumable_opus(router_caps: dict[str, Any]) -> None:
    _, mapping, consumable = produce(opus_producer(), router_caps)
    assert consumable == {
        "codecs": [{"mimeType": "audio/opus", "payloadType": 100, "clockRate": 48000,
                    "channels": 2, "parameters": {"minptime": 10, "useinbandfec": 1},
                    "rtcpFeedback": [NACK, TCC]}],
        # Only what the router sends for audio: not the recvonly transport-cc.
        "headerExtensions": [ext(MID, 1), ext(ABS_SEND_TIME, 4), ext(AUDIO_LEVEL, 10),
                             ext(ABS_CAPTURE, 13), ext(PLAYOUT, 14)],
        "encodings": [{"ssrc": mapping["encodings"][0]["mappedSsrc"], "dtx": False}],
        "rtcp": {"cname": "cname-a", "reducedSize": True},
    }


def test_consumable_vp8(router_caps: dict[str, Any]) -> None:
    _, mapping, consumable = produce(vp8_producer(), router_caps)
    assert consumable == {
        "codecs": [
            {"mimeType": "video/VP8", "payloadType": 101, "clockRate": 90000,
             "parameters": {}, "rtcpFeedback": ROUTER_VIDEO_FB},
            {"mimeType": "video/rtx", "payloadType": 102, "clockRate": 90000,
             "parameters": {"apt": 101}, "rtcpFeedback": []},
        ],
        "headerExtensions": [ext(MID, 1), ext(ABS_SEND_TIME, 4), ext(TWCC, 5),
                             ext(ORIENTATION, 11), ext(TOFFSET, 12), ext(ABS_CAPTURE, 13),
                             ext(PLAYOUT, 14)],
        "encodings": [{"ssrc": mapping["encodings"][0]["mappedSsrc"], "dtx": False,
                       "scalabilityMode": "L1T3", "maxBitrate": 900000}],
        "rtcp": {"cname": "cname-a", "reducedSize": True},
    }


def test_consumable_h264_takes_the_answered_level(router_caps: dict[str, Any]) -> None:
    _, _, consumable = produce(h264_producer(), router_caps)
    assert consumable["codecs"][0] == {
        "mimeType": "video/H264", "payloadType": 103, "clockRate": 90000,
        "parameters": H264_PARAMS, "rtcpFeedback": ROUTER_VIDEO_FB}
    assert consumable["codecs"][1]["parameters"] == {"apt": 103}
    # Level 5.2 without level asymmetry: the router answers with its own level 3.1, as
    # mediasoup does; the producer's own parameters keep what the endpoint sent.
    raw = h264_producer()
    raw["codecs"][0]["parameters"] = {"packetization-mode": 1, "profile-level-id": "42e034"}
    params, _, consumable = produce(raw, router_caps)
    assert consumable["codecs"][0]["parameters"] == {"packetization-mode": 1,
                                                     "profile-level-id": "42e01f"}
    assert params["codecs"][0]["parameters"]["profile-level-id"] == "42e034"


def test_consumable_kind_checked(router_caps: dict[str, Any]) -> None:
    params = validate_rtp_parameters(opus_producer())
    mapping = get_producer_rtp_parameters_mapping(params, router_caps)
    with pytest.raises(WorkerTypeError, match="kind does not match"):
        get_consumable_rtp_parameters("video", params, router_caps, mapping)
    with pytest.raises(WorkerTypeError, match="invalid kind"):
        get_consumable_rtp_parameters("data", params, router_caps, mapping)


# -- can_consume -----------------------------------------------------------------------------


def test_can_consume(router_caps: dict[str, Any]) -> None:
    _, _, vp8 = produce(vp8_producer(), router_caps)
    _, _, h264 = produce(h264_producer(), router_caps)
    _, _, opus = produce(opus_producer(), router_caps)
    everything = device_caps(router_caps)
    assert can_consume(vp8, everything) and can_consume(h264, everything)
    assert can_consume(opus, everything)

    no_vp8 = device_caps(router_caps, codecs=["audio/opus", "video/H264"])
    assert not can_consume(vp8, no_vp8)  # only the RTX codec would match
    assert can_consume(h264, no_vp8)
    assert not can_consume(opus, device_caps(router_caps, codecs=["video/VP8"]))
    assert not can_consume(vp8, {})

    for plid in ("42001f", "640032"):  # Baseline and High vs Constrained Baseline
        other_profile = device_caps(router_caps)
        for codec in other_profile["codecs"]:
            if codec["mimeType"] == "video/H264":
                codec["parameters"]["profile-level-id"] = plid
        assert not can_consume(h264, other_profile)
    lower_level = device_caps(router_caps)
    lower_level["codecs"][3]["parameters"]["profile-level-id"] = "42e00a"  # level 1
    assert can_consume(h264, lower_level)  # levels may differ


def test_can_consume_rejects_invalid_caps(router_caps: dict[str, Any]) -> None:
    _, _, vp8 = produce(vp8_producer(), router_caps)
    with pytest.raises(WorkerTypeError, match=r"caps.codecs is not an array"):
        can_consume(vp8, {"codecs": "VP8"})
    with pytest.raises(TypeError, match=r"missing codec.clockRate"):
        can_consume(vp8, {"codecs": [{"mimeType": "video/VP8"}]})


# -- get_consumer_rtp_parameters -------------------------------------------------------------


def test_consumer_vp8_with_rtx(router_caps: dict[str, Any]) -> None:
    _, _, consumable = produce(vp8_producer(), router_caps)
    frozen = copy.deepcopy(consumable)
    consumer = get_consumer_rtp_parameters(consumable, device_caps(router_caps),
                                           rng=random.Random(5))
    assert consumable == frozen
    ssrc = random.Random(5).randint(100_000_000, 999_999_999)
    assert consumer == {
        "codecs": [
            {"mimeType": "video/VP8", "payloadType": 101, "clockRate": 90000,
             "parameters": {}, "rtcpFeedback": [NACK, PLI, FIR, TCC]},
            {"mimeType": "video/rtx", "payloadType": 102, "clockRate": 90000,
             "parameters": {"apt": 101}, "rtcpFeedback": []},
        ],
        "headerExtensions": [ext(MID, 1), ext(ABS_SEND_TIME, 4), ext(TWCC, 5),
                             ext(ORIENTATION, 11), ext(TOFFSET, 12), ext(ABS_CAPTURE, 13),
                             ext(PLAYOUT, 14)],
        "encodings": [{"ssrc": ssrc, "rtx": {"ssrc": ssrc + 1}, "scalabilityMode": "L1T3",
                       "maxBitrate": 900000}],
        "rtcp": {"cname": "cname-a", "reducedSize": True, "mux": True},
    }
    assert "mid" not in consumer


def test_consumer_without_rtx_support(router_caps: dict[str, Any]) -> None:
    _, _, consumable = produce(vp8_producer(), router_caps)
    consumer = get_consumer_rtp_parameters(consumable, device_caps(router_caps, rtx=False))
    assert [c["mimeType"] for c in consumer["codecs"]] == ["video/VP8"]
    # The endpoint still NACKs; the worker just answers without RTX.
    assert consumer["codecs"][0]["rtcpFeedback"] == [NACK, PLI, FIR, TCC]
    assert list(consumer["encodings"][0]) == ["ssrc", "scalabilityMode", "maxBitrate"]


def test_consumer_enable_rtx_false(router_caps: dict[str, Any]) -> None:
    _, _, consumable = produce(vp8_producer(), router_caps)
    consumer = get_consumer_rtp_parameters(consumable, device_caps(router_caps),
                                           enable_rtx=False)
    assert [c["mimeType"] for c in consumer["codecs"]] == ["video/VP8"]
    assert consumer["codecs"][0]["rtcpFeedback"] == [PLI, FIR, TCC]  # no plain NACK
    assert "rtx" not in consumer["encodings"][0]
    _, _, opus = produce(opus_producer(), router_caps)
    consumer = get_consumer_rtp_parameters(opus, device_caps(router_caps), enable_rtx=False)
    assert consumer["codecs"][0]["rtcpFeedback"] == []  # no NACK, no transport-cc ext


def test_consumer_fewer_header_extensions(router_caps: dict[str, Any]) -> None:
    _, _, consumable = produce(vp8_producer(), router_caps)
    no_twcc = device_caps(router_caps, exclude_uris=(TWCC, ORIENTATION, ABS_CAPTURE))
    consumer = get_consumer_rtp_parameters(consumable, no_twcc)
    assert consumer["headerExtensions"] == [ext(MID, 1), ext(ABS_SEND_TIME, 4),
                                            ext(TOFFSET, 12), ext(PLAYOUT, 14)]
    assert consumer["codecs"][0]["rtcpFeedback"] == [NACK, PLI, FIR, REMB]

    no_bwe = device_caps(router_caps, exclude_uris=(TWCC, ABS_SEND_TIME))
    consumer = get_consumer_rtp_parameters(consumable, no_bwe)
    assert consumer["codecs"][0]["rtcpFeedback"] == [NACK, PLI, FIR]

    # Same URI on another id, for the other kind, or send-only: not sent to this endpoint.
    odd = device_caps(router_caps)
    for e in odd["headerExtensions"]:
        if e["kind"] == "video" and e["uri"] == TOFFSET:
            e["preferredId"] = 7
        if e["kind"] == "video" and e["uri"] == ORIENTATION:
            e["kind"] = "audio"
        if e["kind"] == "video" and e["uri"] == PLAYOUT:
            e["direction"] = "sendonly"
    consumer = get_consumer_rtp_parameters(consumable, odd)
    assert [e["uri"] for e in consumer["headerExtensions"]] == [MID, ABS_SEND_TIME, TWCC,
                                                                 ABS_CAPTURE]


def test_consumer_feedback_is_what_both_sides_support(router_caps: dict[str, Any]) -> None:
    _, _, consumable = produce(vp8_producer(), router_caps)
    caps = device_caps(router_caps)
    caps["codecs"][1]["rtcpFeedback"] = [{"type": "nack", "parameter": "rpsi"},
                                         {"type": "ccm", "parameter": "fir"},
                                         {"type": "transport-cc"}]
    consumer = get_consumer_rtp_parameters(consumable, caps)
    assert consumer["codecs"][0]["rtcpFeedback"] == [FIR, TCC]


def test_consumer_h264(router_caps: dict[str, Any]) -> None:
    _, _, consumable = produce(h264_producer(), router_caps)
    consumer = get_consumer_rtp_parameters(consumable, device_caps(router_caps))
    assert [(c["mimeType"], c["payloadType"]) for c in consumer["codecs"]] == [
        ("video/H264", 103), ("video/rtx", 104)]
    assert consumer["codecs"][0]["parameters"] == H264_PARAMS
    baseline = device_caps(router_caps)
    baseline["codecs"][3]["parameters"]["profile-level-id"] = "42001f"
    with pytest.raises(UnsupportedError, match="no compatible media codecs"):
        get_consumer_rtp_parameters(consumable, baseline)


def test_consumer_errors(router_caps: dict[str, Any]) -> None:
    _, _, vp8 = produce(vp8_producer(), router_caps)
    with pytest.raises(UnsupportedError, match=r"^no compatible media codecs$"):
        get_consumer_rtp_parameters(vp8, device_caps(router_caps, codecs=["audio/opus"]))
    with pytest.raises(WorkerTypeError, match="caps is not an object"):
        get_consumer_rtp_parameters(vp8, "caps")

    raw = vp8_producer()
    raw["encodings"] = [{"rid": "r0"}, {"rid": "r1"}]
    _, _, simulcast = produce(raw, router_caps)
    with pytest.raises(UnsupportedError, match=r"^simulcast is not implemented yet$"):
        get_consumer_rtp_parameters(simulcast, device_caps(router_caps))
    # A pipe consumer keeps every encoding, on consecutive SSRCs.
    piped = get_consumer_rtp_parameters(simulcast, device_caps(router_caps), pipe=True)
    ssrcs = [e["ssrc"] for e in piped["encodings"]]
    rtx_ssrcs = [e["rtx"]["ssrc"] for e in piped["encodings"]]
    assert ssrcs[1] == ssrcs[0] + 1 and rtx_ssrcs[1] == rtx_ssrcs[0] + 1


# -- get_pipe_consumer_rtp_parameters --------------------------------------------------------


def test_pipe_consumer(router_caps: dict[str, Any]) -> None:
    _, _, consumable = produce(vp8_producer(), router_caps)
    pipe = get_pipe_consumer_rtp_parameters(consumable, rng=random.Random(9))
    rng = random.Random(9)
    ssrc = rng.randint(100_000_000, 999_999_999)
    assert pipe == {
        "codecs": [{"mimeType": "video/VP8", "payloadType": 101, "clockRate": 90000,
                    "parameters": {}, "rtcpFeedback": [PLI, FIR]}],
        "headerExtensions": [ext(ORIENTATION, 11), ext(TOFFSET, 12), ext(ABS_CAPTURE, 13),
                             ext(PLAYOUT, 14)],
        "encodings": [{"ssrc": ssrc, "dtx": False, "scalabilityMode": "L1T3",
                       "maxBitrate": 900000}],
        "rtcp": {"cname": "cname-a", "reducedSize": True, "mux": True},
    }
    with_rtx = get_pipe_consumer_rtp_parameters(consumable, enable_rtx=True)
    assert [c["mimeType"] for c in with_rtx["codecs"]] == ["video/VP8", "video/rtx"]
    assert with_rtx["codecs"][0]["rtcpFeedback"] == [NACK, PLI, FIR]
    assert "rtx" in with_rtx["encodings"][0]
    _, _, opus = produce(opus_producer(), router_caps)
    audio = get_pipe_consumer_rtp_parameters(opus, enable_rtx=True)
    assert audio["codecs"][0]["rtcpFeedback"] == [NACK]
    assert "rtx" not in audio["encodings"][0]  # no RTX codec for audio


def test_generate_ssrc_range() -> None:
    rng = random.Random(0)
    values = [generate_ssrc(rng) for _ in range(1000)]
    assert all(100_000_000 <= v <= 999_999_999 for v in values)
    assert len(set(values)) > 990
