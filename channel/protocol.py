"""The declarative protocol tables: handlers, methods, events, error names, log levels and tags.

This module is the single source of truth shared by the worker and the controllers. The Node
controller reads ``node/src/protocol.generated.js``, which ``python -m channel.gen_node`` writes
from this module (a test checks it is current).
"""

from __future__ import annotations

from typing import Final

PROTOCOL_VERSION: Final = 1

# Frames: 4-byte big-endian length, then one msgpack map of at most this many bytes.
MAX_FRAME_BYTES: Final = 4 * 1024 * 1024
FRAME_HEADER_BYTES: Final = 4

# Request ids are uint32 greater than zero.
MAX_REQUEST_ID: Final = 2**32 - 1

# Methods by handler kind; the method string on the wire is "<handler>.<method>".
METHODS: Final[dict[str, tuple[str, ...]]] = {
    "worker": (
        "close",
        "dump",
        "getResourceUsage",
        "updateSettings",
        "createWebRtcServer",
        "closeWebRtcServer",
        "createRouter",
        "closeRouter",
    ),
    "webRtcServer": ("dump", "close"),
    "router": (
        "dump",
        "close",
        "createWebRtcTransport",
        "createPlainTransport",
        "createPipeTransport",
        "createDirectTransport",
        "closeTransport",
        "createActiveSpeakerObserver",
        "createAudioLevelObserver",
        "closeRtpObserver",
        "canConsume",
    ),
    "transport": (
        "dump",
        "getStats",
        "close",
        "connect",
        "restartIce",
        "setMaxIncomingBitrate",
        "setMaxOutgoingBitrate",
        "setMinOutgoingBitrate",
        "produce",
        "consume",
        "produceData",
        "consumeData",
        "enableTraceEvent",
        "closeProducer",
        "closeConsumer",
        "closeDataProducer",
        "closeDataConsumer",
    ),
    "producer": ("dump", "getStats", "pause", "resume", "close", "enableTraceEvent"),
    "consumer": (
        "dump",
        "getStats",
        "pause",
        "resume",
        "close",
        "setPreferredLayers",
        "setPriority",
        "requestKeyFrame",
        "enableTraceEvent",
    ),
    "dataProducer": ("dump", "getStats", "pause", "resume", "close"),
    "dataConsumer": (
        "dump",
        "getStats",
        "pause",
        "resume",
        "close",
        "getBufferedAmount",
        "setBufferedAmountLowThreshold",
        "send",
        "setSubchannels",
        "addSubchannel",
        "removeSubchannel",
    ),
    "rtpObserver": ("pause", "resume", "addProducer", "removeProducer", "close"),
}

# Every method string the worker knows, e.g. "router.createWebRtcTransport".
ALL_METHODS: Final[frozenset[str]] = frozenset(
    f"{handler}.{method}" for handler, methods in METHODS.items() for method in methods
)

# Notifications the controller sends to the worker (no id, no reply).
CONTROLLER_EVENTS: Final[tuple[str, ...]] = (
    "producer.send",
    "dataProducer.send",
    "transport.sendRtcp",
)

# Notifications the worker sends, by the kind of entity that emits them.
WORKER_EVENTS: Final[dict[str, tuple[str, ...]]] = {
    "worker": ("running",),
    "webRtcTransport": (
        "icestatechange",
        "iceselectedtuplechange",
        "dtlsstatechange",
        "sctpstatechange",
    ),
    "plainTransport": ("tuple", "rtcptuple", "sctpstatechange"),
    "pipeTransport": ("tuple", "rtcptuple", "sctpstatechange"),
    "directTransport": ("rtcp",),
    "transport": ("trace",),
    "producer": ("score", "videoorientationchange", "trace"),
    "consumer": (
        "producerpause",
        "producerresume",
        "producerclose",
        "score",
        "layerschange",
        "trace",
        "rtp",
    ),
    "dataConsumer": (
        "dataproducerpause",
        "dataproducerresume",
        "dataproducerclose",
        "bufferedamountlow",
        "sctpsendbufferfull",
        "message",
    ),
    "activeSpeakerObserver": ("dominantspeaker",),
    "audioLevelObserver": ("volumes", "silence"),
}

# Names a failed request is answered with.
ERROR_NAMES: Final[tuple[str, ...]] = (
    "TypeError",
    "InvalidStateError",
    "UnsupportedError",
    "Error",
)

# Log levels, from the most verbose; "none" turns logging off.
LOG_LEVELS: Final[tuple[str, ...]] = ("debug", "warn", "error", "none")

# The letter a log message carries on the channel, per level.
LOG_LEVEL_LETTERS: Final[dict[str, str]] = {"debug": "D", "warn": "W", "error": "E"}

LOG_TAGS: Final[tuple[str, ...]] = (
    "info",
    "ice",
    "dtls",
    "rtp",
    "srtp",
    "rtcp",
    "rtx",
    "bwe",
    "score",
    "simulcast",
    "svc",
    "sctp",
    "message",
)

# Process exit codes.
EXIT_OK: Final = 0
EXIT_STARTUP_FAILURE: Final = 40
EXIT_SETTINGS_ERROR: Final = 42

# Default RTC port range (mediasoup's).
DEFAULT_RTC_MIN_PORT: Final = 10000
DEFAULT_RTC_MAX_PORT: Final = 59999


def handler_of(method: str) -> str:
    """The handler kind a method string belongs to ("router" for "router.dump")."""
    return method.partition(".")[0]
