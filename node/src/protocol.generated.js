// GENERATED FILE - DO NOT EDIT.
// Generated from channel/protocol.py by `python -m channel.gen_node`;
// `python -m channel.gen_node --check` fails when this file is stale.

/** Version of the channel protocol. */
export const PROTOCOL_VERSION = 1;

/** Largest frame payload in bytes; a longer frame is skipped. */
export const MAX_FRAME_BYTES = 4194304;

/** Bytes of the big-endian length that precedes each frame payload. */
export const FRAME_HEADER_BYTES = 4;

/** Request ids are uint32 in 1..MAX_REQUEST_ID. */
export const MAX_REQUEST_ID = 4294967295;

/** Methods by handler kind; the wire method is "<handler>.<method>". */
export const METHODS = Object.freeze({
  "worker": Object.freeze([
    "close",
    "dump",
    "getResourceUsage",
    "updateSettings",
    "createWebRtcServer",
    "closeWebRtcServer",
    "createRouter",
    "closeRouter",
  ]),
  "webRtcServer": Object.freeze([
    "dump",
    "close",
  ]),
  "router": Object.freeze([
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
  ]),
  "transport": Object.freeze([
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
  ]),
  "producer": Object.freeze([
    "dump",
    "getStats",
    "pause",
    "resume",
    "close",
    "enableTraceEvent",
  ]),
  "consumer": Object.freeze([
    "dump",
    "getStats",
    "pause",
    "resume",
    "close",
    "setPreferredLayers",
    "setPriority",
    "requestKeyFrame",
    "enableTraceEvent",
  ]),
  "dataProducer": Object.freeze([
    "dump",
    "getStats",
    "pause",
    "resume",
    "close",
  ]),
  "dataConsumer": Object.freeze([
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
  ]),
  "rtpObserver": Object.freeze([
    "pause",
    "resume",
    "addProducer",
    "removeProducer",
    "close",
  ]),
});

/** Every wire method string, e.g. "router.createWebRtcTransport" (sorted). */
export const ALL_METHODS = Object.freeze([
  "consumer.close",
  "consumer.dump",
  "consumer.enableTraceEvent",
  "consumer.getStats",
  "consumer.pause",
  "consumer.requestKeyFrame",
  "consumer.resume",
  "consumer.setPreferredLayers",
  "consumer.setPriority",
  "dataConsumer.addSubchannel",
  "dataConsumer.close",
  "dataConsumer.dump",
  "dataConsumer.getBufferedAmount",
  "dataConsumer.getStats",
  "dataConsumer.pause",
  "dataConsumer.removeSubchannel",
  "dataConsumer.resume",
  "dataConsumer.send",
  "dataConsumer.setBufferedAmountLowThreshold",
  "dataConsumer.setSubchannels",
  "dataProducer.close",
  "dataProducer.dump",
  "dataProducer.getStats",
  "dataProducer.pause",
  "dataProducer.resume",
  "producer.close",
  "producer.dump",
  "producer.enableTraceEvent",
  "producer.getStats",
  "producer.pause",
  "producer.resume",
  "router.canConsume",
  "router.close",
  "router.closeRtpObserver",
  "router.closeTransport",
  "router.createActiveSpeakerObserver",
  "router.createAudioLevelObserver",
  "router.createDirectTransport",
  "router.createPipeTransport",
  "router.createPlainTransport",
  "router.createWebRtcTransport",
  "router.dump",
  "rtpObserver.addProducer",
  "rtpObserver.close",
  "rtpObserver.pause",
  "rtpObserver.removeProducer",
  "rtpObserver.resume",
  "transport.close",
  "transport.closeConsumer",
  "transport.closeDataConsumer",
  "transport.closeDataProducer",
  "transport.closeProducer",
  "transport.connect",
  "transport.consume",
  "transport.consumeData",
  "transport.dump",
  "transport.enableTraceEvent",
  "transport.getStats",
  "transport.produce",
  "transport.produceData",
  "transport.restartIce",
  "transport.setMaxIncomingBitrate",
  "transport.setMaxOutgoingBitrate",
  "transport.setMinOutgoingBitrate",
  "webRtcServer.close",
  "webRtcServer.dump",
  "worker.close",
  "worker.closeRouter",
  "worker.closeWebRtcServer",
  "worker.createRouter",
  "worker.createWebRtcServer",
  "worker.dump",
  "worker.getResourceUsage",
  "worker.updateSettings",
]);

/** Notifications the controller sends to the worker (no id, no reply). */
export const CONTROLLER_EVENTS = Object.freeze([
  "producer.send",
  "dataProducer.send",
  "transport.sendRtcp",
]);

/** Notifications the worker sends, by the kind of entity that emits them. */
export const WORKER_EVENTS = Object.freeze({
  "worker": Object.freeze([
    "running",
  ]),
  "webRtcTransport": Object.freeze([
    "icestatechange",
    "iceselectedtuplechange",
    "dtlsstatechange",
    "sctpstatechange",
  ]),
  "plainTransport": Object.freeze([
    "tuple",
    "rtcptuple",
    "sctpstatechange",
  ]),
  "pipeTransport": Object.freeze([
    "tuple",
    "rtcptuple",
    "sctpstatechange",
  ]),
  "directTransport": Object.freeze([
    "rtcp",
  ]),
  "transport": Object.freeze([
    "trace",
  ]),
  "producer": Object.freeze([
    "score",
    "videoorientationchange",
    "trace",
  ]),
  "consumer": Object.freeze([
    "producerpause",
    "producerresume",
    "producerclose",
    "score",
    "layerschange",
    "trace",
    "rtp",
  ]),
  "dataConsumer": Object.freeze([
    "dataproducerpause",
    "dataproducerresume",
    "dataproducerclose",
    "bufferedamountlow",
    "sctpsendbufferfull",
    "message",
  ]),
  "activeSpeakerObserver": Object.freeze([
    "dominantspeaker",
  ]),
  "audioLevelObserver": Object.freeze([
    "volumes",
    "silence",
  ]),
});

/** Names a failed request is answered with. */
export const ERROR_NAMES = Object.freeze([
  "TypeError",
  "InvalidStateError",
  "UnsupportedError",
  "Error",
]);

/** Log levels from the most verbose; "none" turns logging off. */
export const LOG_LEVELS = Object.freeze([
  "debug",
  "warn",
  "error",
  "none",
]);

/** The letter a log message carries on the channel, per level. */
export const LOG_LEVEL_LETTERS = Object.freeze({
  "debug": "D",
  "warn": "W",
  "error": "E",
});

/** Log tags accepted by --logTag and updateSettings. */
export const LOG_TAGS = Object.freeze([
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
]);

/** Exit code of a clean shutdown. */
export const EXIT_OK = 0;

/** Exit code of a start-up failure other than bad settings. */
export const EXIT_STARTUP_FAILURE = 40;

/** Exit code for unknown or bad command-line options. */
export const EXIT_SETTINGS_ERROR = 42;

/** Default lowest RTC port. */
export const DEFAULT_RTC_MIN_PORT = 10000;

/** Default highest RTC port. */
export const DEFAULT_RTC_MAX_PORT = 59999;
