// Producers and Consumers against the real worker process (`python -m worker` from the
// repository root). The interpreter is $MEDIAWORKER_PYTHON, or python3.
//
// Producers get RTP parameters as mediasoup-client builds them in Chrome (mid, one encoding with
// an SSRC, an RTCP CNAME); consumers use the router's RTP capabilities.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { delimiter } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import {
  Consumer,
  InvalidStateError,
  Producer,
  UnsupportedError,
  createWorker,
} from '../src/index.js';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PYTHON = process.env.MEDIAWORKER_PYTHON || 'python3';
const T = { timeout: 20000 };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const LISTEN_INFOS = [{ protocol: 'udp', ip: '127.0.0.1' }];
const MEDIA_CODECS = [
  { kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 },
  { kind: 'video', mimeType: 'video/VP8', clockRate: 90000 },
];

const MID_URI = 'urn:ietf:params:rtp-hdrext:sdes:mid';
const ABS_SEND_TIME_URI = 'http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time';
const TWCC_URI = 'http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01';
const AUDIO_LEVEL_URI = 'urn:ietf:params:rtp-hdrext:ssrc-audio-level';

function options(extra = {}) {
  const pythonPath = [REPO_ROOT, process.env.PYTHONPATH].filter(Boolean).join(delimiter);
  return { pythonPath: PYTHON, cwd: REPO_ROOT, env: { PYTHONPATH: pythonPath }, ...extra };
}

function ext(uri, id) {
  return { uri, id, encrypt: false, parameters: {} };
}

/** What mediasoup-client sends for a Chrome microphone track. */
function opusParameters({ ssrc = 11111111, mid = '0' } = {}) {
  return {
    mid,
    codecs: [
      {
        mimeType: 'audio/opus',
        payloadType: 111,
        clockRate: 48000,
        channels: 2,
        parameters: { minptime: 10, useinbandfec: 1 },
        rtcpFeedback: [{ type: 'transport-cc', parameter: '' }],
      },
    ],
    headerExtensions: [
      ext(MID_URI, 4),
      ext(ABS_SEND_TIME_URI, 2),
      ext(TWCC_URI, 3),
      ext(AUDIO_LEVEL_URI, 1),
    ],
    encodings: [{ ssrc, dtx: false }],
    rtcp: { cname: 'Zm9vYmFy', reducedSize: true },
  };
}

/** What mediasoup-client sends for a Chrome camera track without simulcast. */
function vp8Parameters({ ssrc = 22222222, mid = '1' } = {}) {
  return {
    mid,
    codecs: [
      {
        mimeType: 'video/VP8',
        payloadType: 96,
        clockRate: 90000,
        parameters: {},
        rtcpFeedback: [
          { type: 'goog-remb', parameter: '' },
          { type: 'transport-cc', parameter: '' },
          { type: 'ccm', parameter: 'fir' },
          { type: 'nack', parameter: '' },
          { type: 'nack', parameter: 'pli' },
        ],
      },
      {
        mimeType: 'video/rtx',
        payloadType: 97,
        clockRate: 90000,
        parameters: { apt: 96 },
        rtcpFeedback: [],
      },
    ],
    headerExtensions: [ext(MID_URI, 4), ext(ABS_SEND_TIME_URI, 2), ext(TWCC_URI, 3)],
    encodings: [{ ssrc, rtx: { ssrc: ssrc + 1 }, scalabilityMode: 'L1T3' }],
    rtcp: { cname: 'Zm9vYmFy', reducedSize: true },
  };
}

/** The router's capabilities without one codec (and the RTX codecs that pointed to it). */
function capsWithout(router, mimeType) {
  const caps = structuredClone(router.rtpCapabilities);
  const dropped = new Set(
    caps.codecs.filter((c) => c.mimeType === mimeType).map((c) => c.preferredPayloadType)
  );
  caps.codecs = caps.codecs.filter(
    (c) => c.mimeType !== mimeType && !dropped.has(c.parameters?.apt)
  );
  return caps;
}

function waitFor(emitter, event, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "${event}" within ${ms} ms`)), ms);
    emitter.once(event, (...args) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}

/** Records events of several emitters as "name event" strings. */
function recorder() {
  const calls = [];
  return {
    calls,
    listen(name, emitter, events) {
      for (const event of events) emitter.on(event, () => calls.push(`${name} ${event}`));
    },
  };
}

describe('producers and consumers', () => {
  let worker;
  let router;
  let send;
  let recv;
  let nextSsrc = 1000;

  // Each test gets fresh transports, so SSRCs and mids never collide across tests.
  async function freshTransports() {
    send = await router.createWebRtcTransport({ listenInfos: LISTEN_INFOS });
    recv = await router.createWebRtcTransport({ listenInfos: LISTEN_INFOS });
  }

  function audio(transport, extra = {}) {
    nextSsrc += 10;
    return transport.produce({
      kind: 'audio',
      rtpParameters: opusParameters({ ssrc: nextSsrc }),
      ...extra,
    });
  }

  function video(transport, extra = {}) {
    nextSsrc += 10;
    return transport.produce({
      kind: 'video',
      rtpParameters: vp8Parameters({ ssrc: nextSsrc }),
      ...extra,
    });
  }

  before(async () => {
    worker = await createWorker(options());
    router = await worker.createRouter({ mediaCodecs: MEDIA_CODECS });
  }, T);

  after(async () => {
    await worker?.close();
  }, T);

  test('produce() audio and video', T, async () => {
    await freshTransports();
    const newProducer = waitFor(send.observer, 'newproducer');
    const given = opusParameters();
    const producer = await send.produce({ kind: 'audio', rtpParameters: given, appData: { a: 1 } });
    assert.equal((await newProducer)[0], producer);
    assert.ok(producer instanceof Producer);
    assert.match(producer.id, UUID);
    assert.equal(producer.kind, 'audio');
    assert.equal(producer.type, 'simple');
    assert.equal(producer.paused, false);
    assert.equal(producer.closed, false);
    assert.deepEqual(producer.rtpParameters, given);
    assert.notEqual(producer.rtpParameters, given);
    assert.deepEqual(producer.score, []);
    assert.deepEqual(producer.appData, { a: 1 });

    const id = randomUUID();
    const cam = await send.produce({
      id,
      kind: 'video',
      rtpParameters: vp8Parameters(),
      paused: true,
      keyFrameRequestDelay: 500,
    });
    assert.equal(cam.id, id);
    assert.equal(cam.kind, 'video');
    assert.equal(cam.type, 'simple');
    assert.equal(cam.paused, true);

    const dump = await producer.dump();
    assert.equal(dump.id, producer.id);
    assert.equal(dump.kind, 'audio');
    assert.equal(dump.paused, false);
    assert.equal((await cam.dump()).paused, true);
    assert.deepEqual((await send.dump()).producerIds.sort(), [producer.id, cam.id].sort());
    assert.ok(Array.isArray(await producer.getStats()));
  });

  test('produce() bad arguments and the worker refusals', T, async () => {
    await freshTransports();
    const rtpParameters = opusParameters();
    for (const bad of [
      { kind: 'data', rtpParameters },
      { kind: 'audio', rtpParameters: 'x' },
      { kind: 'audio', rtpParameters, paused: 1 },
      { kind: 'audio', rtpParameters, keyFrameRequestDelay: -1 },
      { kind: 'audio', rtpParameters, id: '' },
      { kind: 'audio', rtpParameters, appData: 'x' },
    ]) {
      await assert.rejects(send.produce(bad), TypeError);
    }
    // The worker's TypeError: parameters it cannot read.
    await assert.rejects(
      send.produce({ kind: 'audio', rtpParameters: { ...rtpParameters, codecs: [] } }),
      TypeError
    );
    // The worker's UnsupportedError: a codec the router does not have, and simulcast.
    const h264 = vp8Parameters();
    h264.codecs = [
      {
        mimeType: 'video/H264',
        payloadType: 102,
        clockRate: 90000,
        parameters: { 'packetization-mode': 1, 'profile-level-id': '42e01f' },
      },
    ];
    h264.encodings = [{ ssrc: 33333333 }];
    await assert.rejects(send.produce({ kind: 'video', rtpParameters: h264 }), UnsupportedError);
    const simulcast = vp8Parameters();
    simulcast.encodings = [{ ssrc: 44444444 }, { ssrc: 44444445 }];
    await assert.rejects(
      send.produce({ kind: 'video', rtpParameters: simulcast }),
      UnsupportedError
    );
    assert.deepEqual((await send.dump()).producerIds, []);

    // A duplicate id is the worker's Error.
    const producer = await send.produce({ kind: 'audio', rtpParameters });
    await assert.rejects(
      send.produce({ id: producer.id, kind: 'video', rtpParameters: vp8Parameters() }),
      Error
    );
    assert.deepEqual((await send.dump()).producerIds, [producer.id]);
  });

  test('consume() audio and video', T, async () => {
    await freshTransports();
    const mic = await audio(send);
    const cam = await video(send, { paused: true });
    const caps = router.rtpCapabilities;

    const newConsumer = waitFor(recv.observer, 'newconsumer');
    const a = await recv.consume({ producerId: mic.id, rtpCapabilities: caps, appData: { c: 1 } });
    assert.equal((await newConsumer)[0], a);
    assert.ok(a instanceof Consumer);
    assert.match(a.id, UUID);
    assert.notEqual(a.id, mic.id);
    assert.equal(a.producerId, mic.id);
    assert.equal(a.kind, 'audio');
    assert.equal(a.type, 'simple');
    assert.equal(a.paused, false);
    assert.equal(a.producerPaused, false);
    assert.equal(a.priority, 1);
    for (const key of ['score', 'producerScore', 'producerScores']) assert.ok(key in a.score);
    assert.equal(a.preferredLayers, undefined);
    assert.equal(a.currentLayers, undefined);
    assert.deepEqual(a.appData, { c: 1 });
    assert.equal(a.rtpParameters.codecs[0].mimeType, 'audio/opus');
    assert.equal(typeof a.rtpParameters.mid, 'string');
    assert.equal(a.rtpParameters.encodings.length, 1);
    assert.equal(typeof a.rtpParameters.encodings[0].ssrc, 'number');
    assert.ok(a.rtpParameters.rtcp.cname);

    const v = await recv.consume({
      producerId: cam.id,
      rtpCapabilities: caps,
      paused: true,
      mid: 'video-1',
    });
    assert.equal(v.kind, 'video');
    assert.equal(v.paused, true);
    assert.equal(v.producerPaused, true);
    assert.equal(v.rtpParameters.mid, 'video-1');
    assert.equal(v.rtpParameters.codecs[0].mimeType, 'video/VP8');

    const dump = await a.dump();
    assert.equal(dump.id, a.id);
    assert.equal(dump.producerId, mic.id);
    assert.equal((await v.dump()).paused, true);
    assert.deepEqual((await recv.dump()).consumerIds.sort(), [a.id, v.id].sort());
    assert.ok(Array.isArray(await a.getStats()));
  });

  test('canConsume()', T, async () => {
    await freshTransports();
    const mic = await audio(send);
    const cam = await video(send);
    const caps = router.rtpCapabilities;
    assert.equal(await router.canConsume({ producerId: mic.id, rtpCapabilities: caps }), true);
    assert.equal(await router.canConsume({ producerId: cam.id, rtpCapabilities: caps }), true);
    const noOpus = capsWithout(router, 'audio/opus');
    assert.equal(await router.canConsume({ producerId: mic.id, rtpCapabilities: noOpus }), false);
    assert.equal(await router.canConsume({ producerId: cam.id, rtpCapabilities: noOpus }), true);
    assert.equal(
      await router.canConsume({ producerId: randomUUID(), rtpCapabilities: caps }),
      false
    );
    await assert.rejects(router.canConsume({ producerId: mic.id }), TypeError);
    await assert.rejects(router.canConsume({ rtpCapabilities: caps }), TypeError);
  });

  test('consume() errors', T, async () => {
    await freshTransports();
    const mic = await audio(send);
    const caps = router.rtpCapabilities;
    // An unknown producer: the worker's Error.
    await assert.rejects(
      recv.consume({ producerId: randomUUID(), rtpCapabilities: caps }),
      (error) => error.constructor === Error
    );
    // Capabilities that cannot consume it: the worker's UnsupportedError.
    await assert.rejects(
      recv.consume({ producerId: mic.id, rtpCapabilities: capsWithout(router, 'audio/opus') }),
      UnsupportedError
    );
    for (const bad of [
      { producerId: 5, rtpCapabilities: caps },
      { producerId: mic.id },
      { producerId: mic.id, rtpCapabilities: caps, paused: 'no' },
      { producerId: mic.id, rtpCapabilities: caps, mid: '' },
      { producerId: mic.id, rtpCapabilities: caps, enableRtx: 1 },
      { producerId: mic.id, rtpCapabilities: caps, ignoreDtx: null },
      { producerId: mic.id, rtpCapabilities: caps, appData: 3 },
    ]) {
      await assert.rejects(recv.consume(bad), TypeError);
    }
    assert.deepEqual((await recv.dump()).consumerIds, []);
  });

  test('producer pause()/resume() reach its consumers', T, async () => {
    await freshTransports();
    const producer = await audio(send);
    const consumer = await recv.consume({
      producerId: producer.id,
      rtpCapabilities: router.rtpCapabilities,
    });
    const events = recorder();
    events.listen('producer observer', producer.observer, ['pause', 'resume']);
    events.listen('consumer', consumer, ['producerpause', 'producerresume']);
    events.listen('consumer observer', consumer.observer, ['pause', 'resume']);

    const producerPause = waitFor(consumer, 'producerpause');
    await producer.pause();
    await producer.pause(); // no second observer event
    assert.equal(producer.paused, true);
    assert.equal((await producer.dump()).paused, true);
    await producerPause;
    assert.equal(consumer.producerPaused, true);
    assert.equal(consumer.paused, false);
    assert.deepEqual(events.calls, [
      'producer observer pause',
      'consumer producerpause',
      'consumer observer pause',
    ]);

    // Pausing the consumer while its producer is paused: no observer event; nor on the
    // producer's resume, since the consumer is still paused itself.
    await consumer.pause();
    assert.equal(consumer.paused, true);
    const producerResume = waitFor(consumer, 'producerresume');
    await producer.resume();
    await producerResume;
    assert.equal(consumer.producerPaused, false);
    assert.deepEqual(events.calls.slice(3), [
      'producer observer resume',
      'consumer producerresume',
    ]);

    await consumer.resume();
    assert.equal(consumer.paused, false);
    assert.deepEqual(events.calls.slice(5), ['consumer observer resume']);
    const dump = await consumer.dump();
    assert.equal(dump.paused, false);
    assert.equal(dump.producerPaused, false);
  });

  test('consumer pause()/resume(), priority, layers, key frame, trace', T, async () => {
    await freshTransports();
    const producer = await audio(send);
    const consumer = await recv.consume({
      producerId: producer.id,
      rtpCapabilities: router.rtpCapabilities,
    });
    const events = recorder();
    events.listen('observer', consumer.observer, ['pause', 'resume']);
    await consumer.pause();
    await consumer.pause();
    assert.equal(consumer.paused, true);
    assert.equal((await consumer.dump()).paused, true);
    await consumer.resume();
    assert.equal(consumer.paused, false);
    assert.deepEqual(events.calls, ['observer pause', 'observer resume']);

    await consumer.setPriority(3);
    assert.equal(consumer.priority, 3);
    await consumer.unsetPriority();
    assert.equal(consumer.priority, 1);
    await assert.rejects(consumer.setPriority(0), TypeError);
    const layers = await consumer.setPreferredLayers({ spatialLayer: 0, temporalLayer: 0 });
    assert.equal(layers, undefined);
    assert.equal(consumer.preferredLayers, undefined);
    await assert.rejects(consumer.setPreferredLayers({ spatialLayer: '0' }), TypeError);
    await consumer.requestKeyFrame();
    await consumer.enableTraceEvent(['rtp', 'keyframe']);
    await consumer.enableTraceEvent();
    await assert.rejects(consumer.enableTraceEvent('rtp'), TypeError);

    await producer.enableTraceEvent(['rtp', 'pli']);
    assert.deepEqual(new Set((await producer.dump()).traceEventTypes), new Set(['rtp', 'pli']));
    await assert.rejects(producer.enableTraceEvent([1]), TypeError);
    // As mediasoup, the worker ignores the types it does not know.
    await producer.enableTraceEvent(['nosuch', 'keyframe']);
    assert.deepEqual((await producer.dump()).traceEventTypes, ['keyframe']);
  });

  test('producer close() closes its consumers (producerclose)', T, async () => {
    await freshTransports();
    const producer = await audio(send);
    const consumer = await recv.consume({
      producerId: producer.id,
      rtpCapabilities: router.rtpCapabilities,
    });
    const events = recorder();
    events.listen('producer observer', producer.observer, ['close']);
    events.listen('consumer', consumer, ['producerclose', 'transportclose']);
    events.listen('consumer observer', consumer.observer, ['close']);

    const producerClose = waitFor(consumer, 'producerclose');
    await producer.close();
    assert.equal(producer.closed, true);
    await producerClose;
    assert.equal(consumer.closed, true);
    assert.deepEqual(events.calls, [
      'producer observer close',
      'consumer producerclose',
      'consumer observer close',
    ]);
    assert.deepEqual((await send.dump()).producerIds, []);
    assert.deepEqual((await recv.dump()).consumerIds, []);

    await producer.close(); // idempotent
    await consumer.close(); // a no-op: the worker closed it already
    assert.equal(events.calls.length, 3);
    await assert.rejects(producer.dump(), InvalidStateError);
    await assert.rejects(consumer.pause(), InvalidStateError);
  });

  test('consumer close()', T, async () => {
    await freshTransports();
    const producer = await audio(send);
    const consumer = await recv.consume({
      producerId: producer.id,
      rtpCapabilities: router.rtpCapabilities,
    });
    const closed = waitFor(consumer.observer, 'close');
    await consumer.close();
    await closed;
    assert.equal(consumer.closed, true);
    assert.deepEqual((await recv.dump()).consumerIds, []);
    assert.equal(producer.closed, false);
    assert.equal((await producer.dump()).id, producer.id);
    await assert.rejects(consumer.getStats(), InvalidStateError);
  });

  test('transport close() closes its producers and consumers', T, async () => {
    await freshTransports();
    const caps = router.rtpCapabilities;
    const producer = await audio(send);
    const other = await video(recv);
    const remote = await recv.consume({ producerId: producer.id, rtpCapabilities: caps });
    const local = await send.consume({ producerId: other.id, rtpCapabilities: caps });
    const events = recorder();
    for (const [name, entity] of Object.entries({ producer, other, remote, local })) {
      events.listen(name, entity, ['transportclose', 'producerclose']);
      events.listen(`${name} observer`, entity.observer, ['close']);
    }

    const remoteClosed = waitFor(remote, 'producerclose');
    await send.close();
    // Its own producer and consumer: transportclose, at once.
    assert.equal(producer.closed, true);
    assert.equal(local.closed, true);
    // The consumer of its producer on the other transport: producerclose from the worker.
    await remoteClosed;
    assert.equal(remote.closed, true);
    assert.equal(other.closed, false);
    assert.deepEqual(events.calls.sort(), [
      'local observer close',
      'local transportclose',
      'producer observer close',
      'producer transportclose',
      'remote observer close',
      'remote producerclose',
    ]);
    assert.deepEqual((await recv.dump()).consumerIds, []);
    await assert.rejects(audio(send), InvalidStateError);
  });

  test('router and worker close() close producers and consumers', T, async () => {
    const w = await createWorker(options());
    try {
      for (const closeWhat of ['router', 'worker']) {
        const r = await w.createRouter({ mediaCodecs: MEDIA_CODECS });
        const t = await r.createWebRtcTransport({ listenInfos: LISTEN_INFOS });
        const producer = await t.produce({ kind: 'audio', rtpParameters: opusParameters() });
        const consumer = await t.consume({
          producerId: producer.id,
          rtpCapabilities: r.rtpCapabilities,
        });
        const events = recorder();
        events.listen('producer', producer, ['transportclose']);
        events.listen('producer observer', producer.observer, ['close']);
        events.listen('consumer', consumer, ['transportclose', 'producerclose']);
        events.listen('consumer observer', consumer.observer, ['close']);
        await (closeWhat === 'router' ? r.close() : w.close());
        assert.equal(producer.closed, true);
        assert.equal(consumer.closed, true);
        assert.deepEqual(events.calls.sort(), [
          'consumer observer close',
          'consumer transportclose',
          'producer observer close',
          'producer transportclose',
        ]);
      }
    } finally {
      await w.close();
    }
  });
});
