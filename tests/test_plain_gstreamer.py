"""PlainTransport against GStreamer: real ``gst-launch-1.0`` endpoints send VP8 and Opus into the
worker and decode what it forwards, with plain RTP and with SRTP.

Layout (everything on 127.0.0.1): one comedia PlainTransport per incoming stream (video, audio),
RTCP muxed, fed by one ``gst-launch-1.0`` sender whose payloaders use known payload types and
SSRCs (the producers' ``rtpParameters`` say the same); one PlainTransport per outgoing stream,
connected to the port a ``gst-launch-1.0`` receiver listens on, with a consumer whose
``rtpParameters`` (the router's payload type, the worker's SSRC) make the receiver's caps. The
receiver depacketizes and decodes; its decoded video frames and Opus frames are counted (see
:mod:`tests.gst_tools`). GStreamer sends no RTCP here, so key frames come from the encoder (one a
second), not from the worker's key-frame requests.

The loopback test runs the same pipelines GStreamer to GStreamer, without the worker: when it
fails, the fault is in the pipelines, not in the worker.

Skipped when ``gst-launch-1.0`` or one of the elements is not installed (``.ci/run`` installs
them).
"""

from __future__ import annotations

import asyncio
import base64
import os
from typing import Any, Final

import pytest

from controller import Router, create_worker
from tests.controller_support import async_test
from tests.gst_tools import (
    SRTP_KEY_LEN,
    GstLaunch,
    free_udp_port,
    gstreamer_missing,
    opus_receiver,
    opus_sender,
    vp8_receiver,
    vp8_sender,
)

_MISSING: Final = gstreamer_missing()
pytestmark = pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")

MEDIA_CODECS: Final[list[dict[str, Any]]] = [
    {"kind": "audio", "mimeType": "audio/opus", "clockRate": 48000, "channels": 2},
    {"kind": "video", "mimeType": "video/VP8", "clockRate": 90000},
]
LISTEN_INFO: Final = {"protocol": "udp", "ip": "127.0.0.1"}
SUITE: Final = "AES_CM_128_HMAC_SHA1_80"

# What the GStreamer sender's payloaders are told to use.
VIDEO_PT: Final = 96
VIDEO_SSRC: Final = 0x1234_5678
AUDIO_PT: Final = 111
AUDIO_SSRC: Final = 0x0BAD_CAFE

MIN_FRAMES: Final = 50  # decoded video frames and decoded Opus frames, each
MEDIA_TIMEOUT_S: Final = 25.0
RTCP_TIMEOUT_S: Final = 5.0


def _video_parameters() -> dict[str, Any]:
    return {
        "codecs": [
            {
                "mimeType": "video/VP8",
                "payloadType": VIDEO_PT,
                "clockRate": 90000,
                "rtcpFeedback": [
                    {"type": "nack"},
                    {"type": "nack", "parameter": "pli"},
                    {"type": "ccm", "parameter": "fir"},
                ],
            }
        ],
        "encodings": [{"ssrc": VIDEO_SSRC}],
        "rtcp": {"cname": "gstreamer", "reducedSize": True},
    }


def _audio_parameters() -> dict[str, Any]:
    return {
        "codecs": [
            {
                "mimeType": "audio/opus",
                "payloadType": AUDIO_PT,
                "clockRate": 48000,
                "channels": 2,
                "parameters": {"sprop-stereo": 1},
            }
        ],
        "encodings": [{"ssrc": AUDIO_SSRC}],
        "rtcp": {"cname": "gstreamer", "reducedSize": True},
    }


def _receiver_capabilities(router: Router) -> dict[str, Any]:
    """What the GStreamer receiver takes: the router's opus and VP8 with their payload types, no
    RTCP feedback (the receiver sends no RTCP) and no header extensions."""
    codecs = [
        {**codec, "rtcpFeedback": []}
        for codec in router.rtp_capabilities["codecs"]
        if codec["mimeType"].lower() in ("audio/opus", "video/vp8")
    ]
    assert len(codecs) == 2, router.rtp_capabilities
    return {"codecs": codecs, "headerExtensions": []}


def _srtp(key: bytes) -> dict[str, str]:
    return {"cryptoSuite": SUITE, "keyBase64": base64.b64encode(key).decode()}


def _in_use(dump: dict[str, Any]) -> dict[str, int]:
    return {name: pool["inUse"] for name, pool in dump["bufferPools"].items() if pool["inUse"]}


# -- the pipelines alone -----------------------------------------------------------------------


@pytest.mark.parametrize("srtp", [False, True], ids=["rtp", "srtp"])
@async_test
async def test_gstreamer_loopback_decodes(srtp: bool) -> None:
    key = os.urandom(SRTP_KEY_LEN) if srtp else None
    video_port, audio_port = free_udp_port(), free_udp_port()
    receiver = GstLaunch(
        vp8_receiver(video_port, payload_type=VIDEO_PT, ssrc=VIDEO_SSRC, srtp_key=key),
        opus_receiver(audio_port, payload_type=AUDIO_PT, ssrc=AUDIO_SSRC, srtp_key=key),
    )
    sender = GstLaunch(
        vp8_sender("127.0.0.1", video_port, payload_type=VIDEO_PT, ssrc=VIDEO_SSRC, srtp_key=key),
        opus_sender("127.0.0.1", audio_port, payload_type=AUDIO_PT, ssrc=AUDIO_SSRC, srtp_key=key),
    )
    async with receiver, sender:
        done = await receiver.wait_for({"vsink": MIN_FRAMES, "asink": MIN_FRAMES}, MEDIA_TIMEOUT_S)
        assert done, f"{receiver.describe()}\n--- sender ---\n{sender.describe()}"


# -- through the worker ------------------------------------------------------------------------


async def _forward_through_worker(srtp: bool) -> None:
    sender_key = os.urandom(SRTP_KEY_LEN)  # GStreamer's key for what it sends
    receiver_key = os.urandom(SRTP_KEY_LEN)  # for RTCP from the receiver (it sends none)
    async with await create_worker(log_level="warn") as worker:
        router = await worker.create_router(media_codecs=MEDIA_CODECS)
        capabilities = _receiver_capabilities(router)
        streams: dict[str, dict[str, Any]] = {}
        tuples: list[dict[str, Any]] = []
        for kind, parameters in (("video", _video_parameters()), ("audio", _audio_parameters())):
            send = await router.create_plain_transport(
                listen_info=LISTEN_INFO, rtcp_mux=True, comedia=True, enable_srtp=srtp
            )
            assert send.comedia and send.rtcp_mux
            send.on("tuple", tuples.append)
            if srtp:
                assert send.srtp_parameters is not None
                assert send.srtp_parameters["cryptoSuite"] == SUITE
                await send.connect(srtp_parameters=_srtp(sender_key))
            producer = await send.produce(kind=kind, rtp_parameters=parameters)

            recv = await router.create_plain_transport(
                listen_info=LISTEN_INFO, rtcp_mux=True, comedia=False, enable_srtp=srtp
            )
            port = free_udp_port()
            await recv.connect(
                ip="127.0.0.1",
                port=port,
                srtp_parameters=_srtp(receiver_key) if srtp else None,
            )
            assert recv.tuple["remotePort"] == port, recv.tuple
            consumer = await recv.consume(producer_id=producer.id, rtp_capabilities=capabilities)
            worker_key: bytes | None = None
            if srtp:
                assert recv.srtp_parameters is not None
                worker_key = base64.b64decode(recv.srtp_parameters["keyBase64"])
                assert len(worker_key) == SRTP_KEY_LEN
            streams[kind] = {
                "send": send,
                "recv": recv,
                "producer": producer,
                "consumer": consumer,
                "port": port,
                "pt": consumer.rtp_parameters["codecs"][0]["payloadType"],
                "ssrc": consumer.rtp_parameters["encodings"][0]["ssrc"],
                "key": worker_key,
            }

        video, audio = streams["video"], streams["audio"]
        gst_key = sender_key if srtp else None
        receiver = GstLaunch(
            vp8_receiver(
                video["port"], payload_type=video["pt"], ssrc=video["ssrc"], srtp_key=video["key"]
            ),
            opus_receiver(
                audio["port"], payload_type=audio["pt"], ssrc=audio["ssrc"], srtp_key=audio["key"]
            ),
        )
        sender = GstLaunch(
            vp8_sender(
                video["send"].tuple["localIp"],
                video["send"].tuple["localPort"],
                payload_type=VIDEO_PT,
                ssrc=VIDEO_SSRC,
                srtp_key=gst_key,
            ),
            opus_sender(
                audio["send"].tuple["localIp"],
                audio["send"].tuple["localPort"],
                payload_type=AUDIO_PT,
                ssrc=AUDIO_SSRC,
                srtp_key=gst_key,
            ),
        )
        async with receiver, sender:
            done = await receiver.wait_for(
                {"vsink": MIN_FRAMES, "asink": MIN_FRAMES}, MEDIA_TIMEOUT_S
            )
            stats = {kind: await s["send"].get_stats() for kind, s in streams.items()}
            out_stats = {kind: await s["consumer"].get_stats() for kind, s in streams.items()}
            assert done, (
                f"{receiver.describe()}\n--- sender ---\n{sender.describe()}\n"
                f"--- ingress stats ---\n{stats}\n--- consumer stats ---\n{out_stats}"
            )
            if srtp:  # the consumer's sender reports, SRTCP the receiver can decrypt
                rtcp_done = await receiver.wait_for({"vsink_rtcp": 1}, RTCP_TIMEOUT_S)
                assert rtcp_done, receiver.describe()

        # comedia learned each sender's address from its first packet.
        assert len(tuples) == 2, tuples
        for kind, s in streams.items():
            assert s["send"].tuple.get("remoteIp") == "127.0.0.1", s["send"].tuple
            (entry,) = stats[kind]
            assert entry["type"] == "plain-rtp-transport"
            assert entry["rtpPacketsReceived"] > 0, entry
            assert entry["bytesReceived"] > 0, entry
            outbound = out_stats[kind][0]
            assert outbound["type"] == "outbound-rtp", outbound
            assert outbound["packetCount"] > 0, outbound

        for s in streams.values():
            await s["send"].close()
            await s["recv"].close()
            assert s["producer"].closed and s["consumer"].closed
        await asyncio.sleep(0.2)  # late datagrams already queued
        router_dump = await router.dump()
        assert router_dump["transportIds"] == [], router_dump
        dump = await worker.dump()
        assert not _in_use(dump), f"buffer slots still lent: {_in_use(dump)}"


@async_test
async def test_gstreamer_through_plain_transports() -> None:
    await _forward_through_worker(srtp=False)


@async_test
async def test_gstreamer_through_plain_transports_srtp() -> None:
    await _forward_through_worker(srtp=True)
