// PlainTransport, PipeTransport, DirectTransport and router.pipeToRouter() against the real
// worker process (`python -m worker` from the repository root). The interpreter is
// $MEDIAWORKER_PYTHON, or python3.
//
// Media is scripted: RTP packets are built here and go in through producer.send() (direct
// transports) or a UDP socket on 127.0.0.1 (plain transports); what comes out is read from a
// consumer's "rtp" event and parsed here.

import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { delimiter } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import {
  DirectTransport,
  InvalidStateError,
  PipeTransport,
  PlainTransport,
  createWorker,
} from '../src/index.js';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PYTHON = process.env.MEDIAWORKER_PYTHON || 'python3';
const T = { timeout: 30000 };

const LISTEN_INFO = { protocol: 'udp', ip: '127.0.0.1' };
const MEDIA_CODECS = [
  { kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 },
  { kind: 'video', mimeType: 'video/VP8', clockRate: 90000 },
];
const SUITE = 'AES_CM_128_HMAC_SHA1_80';
const KEY_30 = Buffer.from(Array.from({ length: 30 }, (_, i) => i)).toString('base64');
const OPUS_PT = 100;
const VP8_PT = 101;
// A VP8 payload descriptor and a key frame's first bytes, then filler.
const VP8_PAYLOAD = Buffer.concat([
  Buffer.from([0x10, 0x00, 0x9d, 0x01, 0x2a]),
  Buffer.from(Array.from({ length: 64 }, (_, i) => i)),
]);

function options(extra = {}) {
  const pythonPath = [REPO_ROOT, process.env.PYTHONPATH].filter(Boolean).join(delimiter);
  return { pythonPath: PYTHON, cwd: REPO_ROOT, env: { PYTHONPATH: pythonPath }, ...extra };
}

function opusParameters(ssrc = 0x1111) {
  return {
    codecs: [{ mimeType: 'audio/opus', payloadType: OPUS_PT, clockRate: 48000, channels: 2 }],
    encodings: [{ ssrc }],
    rtcp: { cname: 'script' },
  };
}

function vp8Parameters(ssrc = 0x2222) {
  return {
    codecs: [
      {
        mimeType: 'video/VP8',
        payloadType: VP8_PT,
        clockRate: 90000,
        rtcpFeedback: [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }],
      },
    ],
    encodings: [{ ssrc }],
    rtcp: { cname: 'script' },
  };
}

/** A minimal RTP packet: version 2, no CSRC, no extension, no padding. */
function rtpPacket(pt, seq, ts, ssrc, payload, marker = false) {
  const header = Buffer.alloc(12);
  header[0] = 0x80;
  header[1] = (marker ? 0x80 : 0) | pt;
  header.writeUInt16BE(seq & 0xffff, 2);
  header.writeUInt32BE(ts >>> 0, 4);
  header.writeUInt32BE(ssrc >>> 0, 8);
  return Buffer.concat([header, payload]);
}

/** The fields of an RTP packet, its payload after CSRCs and the header extension. */
function parseRtp(data) {
  assert.ok(data.length >= 12 && data[0] >> 6 === 2);
  let offset = 12 + 4 * (data[0] & 0x0f);
  if (data[0] & 0x10) offset += 4 + 4 * data.readUInt16BE(offset + 2);
  const end = data.length - (data[0] & 0x20 ? data[data.length - 1] : 0);
  return {
    pt: data[1] & 0x7f,
    seq: data.readUInt16BE(2),
    ssrc: data.readUInt32BE(8),
    payload: data.subarray(offset, end),
  };
}

async function until(predicate, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function openPipeTransports(transports) {
  return transports.filter((t) => t instanceof PipeTransport && !t.closed);
}

describe('plain, pipe and direct transports', () => {
  let worker1;
  let worker2;
  let router;

  before(async () => {
    [worker1, worker2] = await Promise.all([createWorker(options()), createWorker(options())]);
    router = await worker1.createRouter({ mediaCodecs: MEDIA_CODECS });
  }, T);

  after(async () => {
    await Promise.all([worker1?.close(), worker2?.close()]);
  }, T);

  test('createPlainTransport() and connect()', T, async () => {
    const transport = await router.createPlainTransport({
      listenInfo: LISTEN_INFO,
      appData: { a: 1 },
    });
    assert.ok(transport instanceof PlainTransport);
    assert.deepEqual(transport.appData, { a: 1 });
    assert.equal(transport.rtcpMux, true);
    assert.equal(transport.comedia, false);
    assert.equal(transport.srtpParameters, undefined);
    assert.equal(transport.tuple.localIp, '127.0.0.1');
    assert.equal(transport.tuple.protocol, 'udp');
    assert.deepEqual((await transport.dump()).tuple, transport.tuple);
    assert.equal((await transport.getStats())[0].type, 'plain-rtp-transport');

    await assert.rejects(router.createPlainTransport({}), TypeError);
    await assert.rejects(
      router.createPlainTransport({ listenInfo: LISTEN_INFO, comedia: 1 }),
      TypeError
    );
    await assert.rejects(
      router.createPlainTransport({ listenInfo: LISTEN_INFO, enableSctp: true }),
      /not implemented/
    );

    await assert.rejects(transport.connect({ ip: '127.0.0.1', port: 0 }), TypeError);
    await assert.rejects(transport.connect({ ip: '127.0.0.1' }), TypeError); // the worker's
    await assert.rejects(
      transport.connect({ ip: '127.0.0.1', port: 5000, rtcpPort: 5001 }),
      TypeError
    );
    await transport.connect({ ip: '127.0.0.1', port: 5000 });
    assert.equal(transport.tuple.remotePort, 5000);
    await assert.rejects(transport.connect({ ip: '127.0.0.1', port: 5000 }), InvalidStateError);

    const srtp = await router.createPlainTransport({ listenInfo: LISTEN_INFO, enableSrtp: true });
    assert.equal(srtp.srtpParameters.cryptoSuite, SUITE);
    await assert.rejects(srtp.connect({ ip: '127.0.0.1', port: 5000 }), TypeError);
    await srtp.connect({
      ip: '127.0.0.1',
      port: 5000,
      srtpParameters: { cryptoSuite: SUITE, keyBase64: KEY_30 },
    });

    await transport.close();
    await srtp.close();
    assert.equal(transport.closed, true);
  });

  test('comedia learns the tuple from the first packet', T, async () => {
    const plain = await router.createPlainTransport({ listenInfo: LISTEN_INFO, comedia: true });
    const producer = await plain.produce({ kind: 'audio', rtpParameters: opusParameters(0xab) });
    const direct = await router.createDirectTransport();
    const consumer = await direct.consume({
      producerId: producer.id,
      rtpCapabilities: router.rtpCapabilities,
    });
    const received = [];
    consumer.on('rtp', (packet) => received.push(packet));
    const tuples = [];
    plain.on('tuple', (tuple) => tuples.push(tuple));

    const socket = dgram.createSocket('udp4');
    await new Promise((resolve) => socket.bind(0, '127.0.0.1', resolve));
    try {
      const payload = Buffer.from('opus frame 0123456789');
      socket.send(rtpPacket(OPUS_PT, 7, 960, 0xab, payload), plain.tuple.localPort, '127.0.0.1');
      await until(() => tuples.length === 1 && received.length === 1);
      assert.equal(tuples[0].remotePort, socket.address().port);
      assert.deepEqual(plain.tuple, tuples[0]);
      assert.ok(Buffer.isBuffer(received[0]));
      const rtp = parseRtp(received[0]);
      assert.deepEqual(rtp.payload, payload);
      assert.equal(rtp.ssrc, consumer.rtpParameters.encodings[0].ssrc);
    } finally {
      socket.close();
      await plain.close();
      await direct.close();
    }
  });

  test('DirectTransport round trip, sendRtcp() and the rtcp event', T, async () => {
    const sender = await router.createDirectTransport({ maxMessageSize: 4096 });
    const receiver = await router.createDirectTransport();
    assert.ok(sender instanceof DirectTransport);
    assert.equal(sender.maxMessageSize, 4096);
    assert.equal((await sender.dump()).direct, true);
    await assert.rejects(router.createDirectTransport({ maxMessageSize: 0 }), TypeError);
    await sender.connect();

    const producer = await sender.produce({ kind: 'video', rtpParameters: vp8Parameters(0x2222) });
    const consumer = await receiver.consume({
      producerId: producer.id,
      rtpCapabilities: router.rtpCapabilities,
    });
    const received = [];
    consumer.on('rtp', (packet) => received.push(packet));
    const payloads = Array.from({ length: 5 }, (_, i) =>
      Buffer.concat([VP8_PAYLOAD, Buffer.alloc(i, i)])
    );
    for (const [i, payload] of payloads.entries()) {
      producer.send(rtpPacket(VP8_PT, 10 + i, 90 * i, 0x2222, payload, true));
    }
    await until(() => received.length === payloads.length);
    const packets = received.map(parseRtp);
    assert.deepEqual(packets.map((p) => p.payload), payloads);
    for (const p of packets) {
      assert.equal(p.ssrc, consumer.rtpParameters.encodings[0].ssrc);
      assert.equal(p.pt, consumer.rtpParameters.codecs[0].payloadType);
    }

    const rtcp = [];
    sender.on('rtcp', (packet) => rtcp.push(packet));
    await consumer.requestKeyFrame();
    await until(() => rtcp.some((packet) => packet[1] === 206 && (packet[0] & 0x1f) === 1));
    assert.ok(rtcp.every((packet) => Buffer.isBuffer(packet)));
    receiver.sendRtcp(Buffer.from([0x80, 201, 0, 1, 0, 0, 0x55, 0x55]));
    assert.equal((await receiver.dump()).id, receiver.id);

    assert.throws(() => producer.send('nope'), TypeError);
    assert.throws(() => sender.sendRtcp('nope'), TypeError);
    const plain = await router.createPlainTransport({ listenInfo: LISTEN_INFO, comedia: true });
    const plainProducer = await plain.produce({ kind: 'audio', rtpParameters: opusParameters(9) });
    assert.throws(
      () => plainProducer.send(rtpPacket(OPUS_PT, 1, 1, 9, Buffer.from('x'))),
      InvalidStateError
    );
    await plain.close();
    await sender.close();
    assert.throws(
      () => producer.send(rtpPacket(VP8_PT, 1, 1, 0x2222, VP8_PAYLOAD)),
      InvalidStateError
    );
    assert.throws(() => sender.sendRtcp(Buffer.alloc(8)), InvalidStateError);
    await receiver.close();
  });

  test('createPipeTransport(), connect() and a pipe consumer', T, async () => {
    const pipe = await router.createPipeTransport({ listenInfo: LISTEN_INFO, enableRtx: true });
    assert.ok(pipe instanceof PipeTransport);
    assert.equal(pipe.rtx, true);
    assert.equal((await pipe.getStats())[0].type, 'pipe-transport');
    await assert.rejects(pipe.connect({ port: 5000 }), TypeError);
    await pipe.connect({ ip: '127.0.0.1', port: 5000 });
    assert.equal(pipe.tuple.remotePort, 5000);
    await assert.rejects(pipe.connect({ ip: '127.0.0.1', port: 5000 }), InvalidStateError);

    const direct = await router.createDirectTransport();
    const producer = await direct.produce({ kind: 'video', rtpParameters: vp8Parameters() });
    const consumer = await pipe.consume({ producerId: producer.id });
    assert.equal(consumer.type, 'pipe');
    assert.equal(consumer.rtpParameters.mid, undefined);
    assert.deepEqual(
      consumer.rtpParameters.codecs.map((c) => c.mimeType),
      ['video/VP8', 'video/rtx']
    );
    await pipe.close();
    await direct.close();
  });

  test('pipeToRouter() between two routers of one worker gives the pipe producer a new id', T,
    async () => {
      const router1 = await worker1.createRouter({ mediaCodecs: MEDIA_CODECS });
      const router2 = await worker1.createRouter({ mediaCodecs: MEDIA_CODECS });
      const inject = await router1.createDirectTransport();
      const read = await router2.createDirectTransport();
      const video = await inject.produce({ kind: 'video', rtpParameters: vp8Parameters(0x4444) });
      await assert.rejects(
        router1.pipeToRouter({ producerId: video.id, router: router2, keepId: true }),
        TypeError
      );
      const { pipeProducer } = await router1.pipeToRouter({ producerId: video.id, router: router2 });
      assert.notEqual(pipeProducer.id, video.id);
      const consumer = await read.consume({
        producerId: pipeProducer.id,
        rtpCapabilities: router2.rtpCapabilities,
      });
      const received = [];
      consumer.on('rtp', (packet) => received.push(packet));
      for (let i = 0; i < 5; i++) {
        video.send(rtpPacket(VP8_PT, 200 + i, 3000 * i, 0x4444, VP8_PAYLOAD, true));
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      await until(() => received.length >= 5);
      await router1.close();
      await router2.close();
    });

  test('pipeToRouter() across two workers', T, async () => {
    const router1 = await worker1.createRouter({ mediaCodecs: MEDIA_CODECS });
    const router2 = await worker2.createRouter({ mediaCodecs: MEDIA_CODECS });
    const created1 = [];
    const created2 = [];
    router1.observer.on('newtransport', (t) => created1.push(t));
    router2.observer.on('newtransport', (t) => created2.push(t));
    const inject = await router1.createDirectTransport();
    const read = await router2.createDirectTransport();

    await assert.rejects(router1.pipeToRouter({ producerId: 'nope', router: router2 }), TypeError);
    await assert.rejects(router1.pipeToRouter({ producerId: 'x', router: router1 }), TypeError);

    const video = await inject.produce({ kind: 'video', rtpParameters: vp8Parameters(0x3333) });
    // A listenInfo the worker refuses: nothing stays, and the next call starts afresh.
    await assert.rejects(
      router1.pipeToRouter({
        producerId: video.id,
        router: router2,
        listenInfo: { protocol: 'tcp', ip: '127.0.0.1' },
      }),
      TypeError
    );
    assert.equal(openPipeTransports(created1).length, 0);
    const { pipeConsumer, pipeProducer } = await router1.pipeToRouter({
      producerId: video.id,
      router: router2,
      enableSrtp: true,
    });
    assert.equal(pipeConsumer.type, 'pipe');
    assert.equal(pipeProducer.id, video.id);
    const [local] = openPipeTransports(created1);
    const [remote] = openPipeTransports(created2);
    assert.ok(local.srtpParameters && remote.srtpParameters);
    assert.equal(local.tuple.remotePort, remote.tuple.localPort);

    const consumer = await read.consume({
      producerId: video.id,
      rtpCapabilities: router2.rtpCapabilities,
    });
    const received = [];
    consumer.on('rtp', (packet) => received.push(packet));
    const payloads = Array.from({ length: 10 }, (_, i) =>
      Buffer.concat([VP8_PAYLOAD, Buffer.alloc(i + 1, i)])
    );
    for (const [i, payload] of payloads.entries()) {
      video.send(rtpPacket(VP8_PT, 100 + i, 3000 * i, 0x3333, payload, true));
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await until(() => received.length >= payloads.length);
    assert.deepEqual(received.map((p) => parseRtp(p).payload), payloads);

    // Pause, resume and close follow the producer.
    await video.pause();
    await until(() => pipeProducer.paused && consumer.producerPaused);
    await video.resume();
    await until(() => !pipeProducer.paused && !consumer.producerPaused);

    // A second producer reuses the pair, and so does the other direction.
    const audio = await inject.produce({ kind: 'audio', rtpParameters: opusParameters(0x44) });
    const second = await router1.pipeToRouter({ producerId: audio.id, router: router2 });
    assert.equal(openPipeTransports(created1).length, 1);
    assert.equal(openPipeTransports(created2).length, 1);
    assert.equal(second.pipeProducer.id, audio.id);
    const back = await read.produce({ kind: 'audio', rtpParameters: opusParameters(0x55) });
    const backResult = await router2.pipeToRouter({ producerId: back.id, router: router1 });
    assert.equal(backResult.pipeProducer.kind, 'audio');
    assert.equal(openPipeTransports(created1).length, 1);

    const producerClosed = new Promise((resolve) => consumer.once('producerclose', resolve));
    await video.close();
    await producerClosed;
    await until(() => pipeProducer.closed && pipeConsumer.closed);

    // The pipe producer closing closes the pipe consumer; one pipe transport closing closes the
    // other, and the next call makes a new pair.
    await second.pipeProducer.close();
    await until(() => second.pipeConsumer.closed);
    await local.close();
    await until(() => remote.closed);
    await router1.pipeToRouter({ producerId: audio.id, router: router2 });
    const [fresh] = openPipeTransports(created1);
    assert.notEqual(fresh.id, local.id);

    await router1.close();
    await until(() => openPipeTransports(created2).length === 0);
    await router2.close();
  });
});
