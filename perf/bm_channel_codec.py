"""Benchmark the channel codec: encoding and decoding typical frames (pyperf).

Usage::

    python -m perf.bm_channel_codec            # full run (about 3 minutes)
    python -m perf.bm_channel_codec --fast     # quick run
    python -m perf.bm_channel_codec --fast -o codec.json   # keep the results

Every pyperf option works (``--help``). Times are **per frame**:

- ``codec_encode_<msg>``: :func:`channel.codec.encode_frame` of one message (msgpack packing
  plus the 4-byte length header), as the worker sends a response or a notification.
- ``codec_decode1_<msg>``: one frame per :meth:`FrameDecoder.feed` call, then
  :func:`channel.codec.decode_payload` of its payload, as the worker reads a lone request.
- ``codec_decode64_<msg>``: 64 frames per ``feed`` (a controller's burst arriving in one
  read), each payload decoded; the time is divided by 64 with pyperf's ``inner_loops``.

The messages (seeded, so every run encodes the same bytes):

- ``worker_dump``: the request ``worker.dump`` (a 45-byte frame);
- ``create_webrtc_transport``: a ``router.createWebRtcTransport`` request (a 287-byte frame);
- ``small_response``: an accepted response with a small ``data`` (``connect``'s answer);
- ``large_response``: the response to ``worker.createRouter``, a router's ``rtpCapabilities``
  for opus, VP8, VP9 and two H264 profiles, made by
  :func:`worker.ortc.generate_router_rtp_capabilities` (a 3.7 KB frame);
- ``rtp_notification``: a consumer's ``rtp`` notification with a 1200-byte ``bin`` payload.
"""

from __future__ import annotations

import random
import sys
import uuid
from collections.abc import Callable
from time import perf_counter
from typing import Any, Final

import pyperf

from channel.codec import FrameDecoder, decode_payload, encode_frame
from worker.ortc import generate_router_rtp_capabilities

__all__ = ["BATCH_FRAMES", "MEDIA_CODECS", "SEED", "benchmark_names", "main", "messages"]

SEED: Final = 20240611
BATCH_FRAMES: Final = 64
RTP_PAYLOAD_BYTES: Final = 1200

# mediasoup-demo's router codecs: opus, VP8, VP9 profile 2, H264 main and baseline.
MEDIA_CODECS: Final[list[dict[str, Any]]] = [
    {"kind": "audio", "mimeType": "audio/opus", "clockRate": 48000, "channels": 2},
    {"kind": "video", "mimeType": "video/VP8", "clockRate": 90000,
     "parameters": {"x-google-start-bitrate": 1000}},
    {"kind": "video", "mimeType": "video/VP9", "clockRate": 90000,
     "parameters": {"profile-id": 2, "x-google-start-bitrate": 1000}},
    {"kind": "video", "mimeType": "video/H264", "clockRate": 90000,
     "parameters": {"packetization-mode": 1, "profile-level-id": "4d0032",
                    "level-asymmetry-allowed": 1, "x-google-start-bitrate": 1000}},
    {"kind": "video", "mimeType": "video/H264", "clockRate": 90000,
     "parameters": {"packetization-mode": 1, "profile-level-id": "42e01f",
                    "level-asymmetry-allowed": 1, "x-google-start-bitrate": 1000}},
]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def messages(seed: int = SEED) -> dict[str, dict[str, Any]]:
    """The benchmarked messages by name, built from ``seed`` (same seed, same bytes)."""
    rng = random.Random(seed)
    router_id, transport_id, consumer_id = _uuid(rng), _uuid(rng), _uuid(rng)
    return {
        "worker_dump": {"id": 1, "method": "worker.dump", "handlerId": "", "data": {}},
        "create_webrtc_transport": {
            "id": 2,
            "method": "router.createWebRtcTransport",
            "handlerId": router_id,
            "data": {
                "transportId": transport_id,
                "listenInfos": [{"protocol": "udp", "ip": "0.0.0.0",
                                 "announcedAddress": "203.0.113.17"}],
                "enableUdp": True,
                "enableTcp": False,
                "preferUdp": True,
                "initialAvailableOutgoingBitrate": 600000,
            },
        },
        "small_response": {"id": 3, "accepted": True, "data": {"dtlsLocalRole": "client"}},
        "large_response": {
            "id": 4,
            "accepted": True,
            "data": {"rtpCapabilities": generate_router_rtp_capabilities(MEDIA_CODECS)},
        },
        "rtp_notification": {
            "event": "rtp",
            "handlerId": consumer_id,
            "data": rng.randbytes(RTP_PAYLOAD_BYTES),
        },
    }


def benchmark_names() -> list[str]:
    """Every benchmark this script runs, in order."""
    return [f"codec_{kind}_{name}" for name in messages()
            for kind in ("encode", "decode1", f"decode{BATCH_FRAMES}")]


# -- timed functions (pyperf calls them with the number of loops) ---------------------------


def time_encode(loops: int, message: dict[str, Any]) -> float:
    encode = encode_frame
    t0 = perf_counter()
    for _ in range(loops):
        encode(message)
    return perf_counter() - t0


def time_decode(loops: int, data: bytes, frames: int) -> float:
    """Feed ``data`` (``frames`` whole frames) ``loops`` times, decoding every payload."""
    decoder = FrameDecoder()
    feed = decoder.feed
    decode = decode_payload
    t0 = perf_counter()
    for _ in range(loops):
        for item in feed(data):
            if isinstance(item, bytes):
                decode(item)
    elapsed = perf_counter() - t0
    if decoder.buffered:
        raise AssertionError(f"{decoder.buffered} bytes left over: the input is not whole frames")
    return elapsed


def _check(message: dict[str, Any], frame: bytes, frames: int) -> None:
    """The frame decodes back to the message: the benchmark measures a working codec."""
    payloads = FrameDecoder().feed(frame * frames)
    if len(payloads) != frames or any(
        not isinstance(p, bytes) or decode_payload(p) != message for p in payloads
    ):
        raise AssertionError("the codec does not round-trip the benchmark message")


def main() -> None:
    # Worker processes must be spawned the way this one was started: `-m perf.bm_...` keeps
    # the `perf` package importable, a script path keeps working when run as a script.
    program_args = ("-m", __spec__.name) if __spec__ is not None else (sys.argv[0],)
    runner = pyperf.Runner(program_args=program_args)
    runner.metadata["description"] = "Channel codec: per-frame encode and decode times"
    runner.metadata["codec_seed"] = str(SEED)

    for name, message in messages().items():
        frame = encode_frame(message)
        _check(message, frame, BATCH_FRAMES)
        meta = {"frame_bytes": str(len(frame))}
        timed: list[tuple[str, Callable[..., float], tuple[Any, ...], int]] = [
            (f"codec_encode_{name}", time_encode, (message,), 1),
            (f"codec_decode1_{name}", time_decode, (frame, 1), 1),
            (f"codec_decode{BATCH_FRAMES}_{name}", time_decode,
             (frame * BATCH_FRAMES, BATCH_FRAMES), BATCH_FRAMES),
        ]
        for bench_name, func, args, inner in timed:
            runner.bench_time_func(bench_name, func, *args, inner_loops=inner, metadata=meta)


if __name__ == "__main__":
    main()
