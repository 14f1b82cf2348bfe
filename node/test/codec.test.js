// Unit tests of the channel codec and of the Channel over in-memory streams (no worker process).

import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, mock, test } from 'node:test';

import { encode } from '@msgpack/msgpack';

import {
  Channel,
  FrameDecoder,
  OversizeFrame,
  decodePayload,
  encodeFrame,
  nextRequestId,
} from '../src/Channel.js';
import { InvalidStateError, RequestTimeoutError, UnsupportedError } from '../src/errors.js';
import { MAX_FRAME_BYTES, MAX_REQUEST_ID } from '../src/protocol.generated.js';

const T = { timeout: 10000 };

function rawFrame(payload) {
  const header = Buffer.alloc(4);
  header.writeUInt32BE(payload.length, 0);
  return Buffer.concat([header, Buffer.from(payload)]);
}

function decodeAll(decoder, chunks) {
  const out = [];
  for (const chunk of chunks) {
    for (const item of decoder.push(chunk)) {
      out.push(item instanceof OversizeFrame ? item : decodePayload(item));
    }
  }
  return out;
}

describe('frame codec', () => {
  const messages = [
    { event: 'running', handlerId: '123', data: { pid: 123, version: '0.1.0' } },
    { id: 1, accepted: true, data: { routerIds: ['a', 'b'] } },
    { log: 'E', text: 'héllo ✓' },
    { id: 2, accepted: false, error: 'TypeError', reason: 'bad' },
    { event: 'rtp', handlerId: 'c', data: Buffer.from([1, 2, 3, 255]) },
  ];
  const stream = Buffer.concat(messages.map((m) => encodeFrame(m)));

  test('encodeFrame writes a big-endian length then msgpack', T, () => {
    const frame = encodeFrame({ a: 1 });
    assert.equal(frame.readUInt32BE(0), frame.length - 4);
    assert.deepEqual(decodePayload(frame.subarray(4)), { a: 1 });
    assert.deepEqual(Buffer.from(frame.subarray(4)), Buffer.from(encode({ a: 1 })));
  });

  test('encodeFrame leaves out undefined values', T, () => {
    assert.deepEqual(decodePayload(encodeFrame({ a: 1, b: undefined }).subarray(4)), { a: 1 });
  });

  test('several frames in one chunk', T, () => {
    assert.deepEqual(decodeAll(new FrameDecoder(), [stream]), messages);
  });

  test('every split of the stream, byte by byte and at each offset', T, () => {
    const bytes = [];
    for (let i = 0; i < stream.length; i++) bytes.push(stream.subarray(i, i + 1));
    assert.deepEqual(decodeAll(new FrameDecoder(), bytes), messages);

    for (let cut = 0; cut <= stream.length; cut++) {
      const decoder = new FrameDecoder();
      const got = decodeAll(decoder, [stream.subarray(0, cut), stream.subarray(cut)]);
      assert.deepEqual(got, messages, `cut at ${cut}`);
      assert.equal(decoder.buffered, 0);
    }
  });

  test('split within the 4-byte header and within the payload', T, () => {
    const frame = encodeFrame({ hello: 'world' });
    const decoder = new FrameDecoder();
    assert.deepEqual(decoder.push(frame.subarray(0, 2)), []);
    assert.equal(decoder.buffered, 2);
    assert.deepEqual(decoder.push(frame.subarray(2, 7)), []);
    const [payload] = decoder.push(Buffer.concat([frame.subarray(7), frame]));
    assert.deepEqual(decodePayload(payload), { hello: 'world' });
  });

  test('payloads stay valid after later pushes', T, () => {
    const decoder = new FrameDecoder();
    const frame = encodeFrame({ n: 1 });
    decoder.push(frame.subarray(0, 6));
    const [first] = decoder.push(frame.subarray(6));
    decoder.push(encodeFrame({ n: 2 }).subarray(0, 6));
    assert.deepEqual(decodePayload(first), { n: 1 });
  });

  test('an oversize frame is skipped without buffering it, the next one is decoded', T, () => {
    const max = 64;
    const decoder = new FrameDecoder(max);
    const big = rawFrame(Buffer.alloc(1000, 0xc1));
    const after = encodeFrame({ after: true });
    const got = [];
    // Feed in pieces: nothing of the oversize payload is ever buffered.
    const all = Buffer.concat([encodeFrame({ before: true }), big, after]);
    let sawSkipping = false;
    for (let i = 0; i < all.length; i += 37) {
      got.push(...decodeAll(decoder, [all.subarray(i, i + 37)]));
      if (decoder.skipping > 0) {
        sawSkipping = true;
        assert.equal(decoder.buffered, 0);
      }
    }
    assert.ok(sawSkipping);
    assert.equal(got.length, 3);
    assert.deepEqual(got[0], { before: true });
    assert.ok(got[1] instanceof OversizeFrame);
    assert.equal(got[1].length, 1000);
    assert.deepEqual(got[2], { after: true });
    assert.equal(decoder.skipping, 0);
  });

  test('the default limit is 4 MiB', T, () => {
    const decoder = new FrameDecoder();
    const header = Buffer.alloc(4);
    header.writeUInt32BE(MAX_FRAME_BYTES + 1, 0);
    const [item] = decoder.push(header);
    assert.ok(item instanceof OversizeFrame);
    assert.equal(decoder.skipping, MAX_FRAME_BYTES + 1);
    assert.equal(decoder.buffered, 0);

    // A frame of exactly the limit is accepted, even when it arrives in pieces.
    const ok = new FrameDecoder();
    header.writeUInt32BE(MAX_FRAME_BYTES, 0);
    assert.deepEqual(ok.push(header), []);
    assert.equal(ok.skipping, 0);
    const piece = Buffer.alloc(MAX_FRAME_BYTES / 4, 7);
    for (let i = 0; i < 3; i++) assert.deepEqual(ok.push(piece), []);
    const [payload] = ok.push(piece);
    assert.equal(payload.length, MAX_FRAME_BYTES);
    assert.equal(ok.buffered, 0);
  });

  test('encodeFrame refuses a message over the limit', T, () => {
    assert.throws(() => encodeFrame({ blob: new Uint8Array(100) }, 50), RangeError);
  });
});

// A Channel over two PassThrough streams; `peer` reads the channel's requests and writes frames.
function channelPair() {
  const toWorker = new PassThrough();
  const fromWorker = new PassThrough();
  const channel = new Channel({ producerSocket: toWorker, consumerSocket: fromWorker, pid: 1 });
  const decoder = new FrameDecoder();
  const requests = [];
  const waiters = [];
  toWorker.on('data', (chunk) => {
    for (const payload of decoder.push(chunk)) {
      requests.push(decodePayload(payload));
      while (waiters.length) waiters.shift()();
    }
  });
  const nextRequest = async (index) => {
    while (requests.length <= index) await new Promise((resolve) => waiters.push(resolve));
    return requests[index];
  };
  const send = (...msgs) => fromWorker.write(Buffer.concat(msgs.map((m) => encodeFrame(m))));
  return { channel, nextRequest, send, requests, fromWorker };
}

describe('Channel', () => {
  test('requests carry uint32 ids > 0 and resolve with the response data', T, async () => {
    const { channel, nextRequest, send } = channelPair();
    const p = channel.request('worker.dump');
    const req = await nextRequest(0);
    assert.equal(req.id, 1);
    assert.equal(req.method, 'worker.dump');
    assert.equal(req.handlerId, '');
    assert.ok(!('data' in req));
    send({ id: req.id, accepted: true, data: { pid: 1 } });
    assert.deepEqual(await p, { pid: 1 });
    channel.close();
  });

  test('wire errors map to JS errors with the reason as message', T, async () => {
    const { channel, nextRequest, send } = channelPair();
    const names = ['TypeError', 'InvalidStateError', 'UnsupportedError', 'Error', 'Weird'];
    const classes = [TypeError, InvalidStateError, UnsupportedError, Error, Error];
    const promises = names.map(() => channel.request('router.dump', 'r1'));
    for (let i = 0; i < names.length; i++) {
      const req = await nextRequest(i);
      send({ id: req.id, accepted: false, error: names[i], reason: `reason ${i}` });
    }
    for (let i = 0; i < names.length; i++) {
      await assert.rejects(promises[i], (error) => {
        assert.equal(error.constructor, classes[i]);
        assert.equal(error.message, `reason ${i}`);
        return true;
      });
    }
    channel.close();
  });

  test('unknown methods are refused before sending', T, async () => {
    const { channel } = channelPair();
    await assert.rejects(channel.request('worker.nope'), TypeError);
    channel.close();
  });

  test('closing rejects pending requests with InvalidStateError naming the method', T, async () => {
    const { channel, nextRequest } = channelPair();
    const p = channel.request('worker.getResourceUsage');
    await nextRequest(0);
    channel.close();
    await assert.rejects(p, (error) => {
      assert.ok(error instanceof InvalidStateError);
      assert.match(error.message, /worker\.getResourceUsage/);
      return true;
    });
    await assert.rejects(channel.request('worker.dump'), InvalidStateError);
  });

  test('a notification after a response reaches listeners added by the awaiting code', T,
    async () => {
      const { channel, nextRequest, send } = channelPair();
      const p = (async () => {
        await channel.request('router.createDirectTransport', 'r1', { transportId: 't1' });
        // Registered only once the response resolved the request.
        return new Promise((resolve) => {
          channel.on('t1', (event, data) => resolve({ event, data }));
        });
      })();
      const req = await nextRequest(0);
      // Response and notification in one chunk.
      send(
        { id: req.id, accepted: true, data: {} },
        { event: 'rtcp', handlerId: 't1', data: new Uint8Array([9]) }
      );
      const got = await p;
      assert.equal(got.event, 'rtcp');
      assert.deepEqual(Array.from(got.data), [9]);
      channel.close();
    });

  test('notifications keep their wire order', T, async () => {
    const { channel, nextRequest, send } = channelPair();
    const seen = [];
    channel.on('x', (event) => seen.push(event));
    const p1 = channel.request('worker.dump');
    const p2 = channel.request('worker.dump');
    const r1 = await nextRequest(0);
    const r2 = await nextRequest(1);
    send(
      { event: 'a', handlerId: 'x' },
      { id: r1.id, accepted: true, data: 1 },
      { event: 'b', handlerId: 'x' },
      { id: r2.id, accepted: true, data: 2 },
      { event: 'c', handlerId: 'x' },
      { log: 'D', text: 'a log' }
    );
    p1.then(() => seen.push('r1'));
    p2.then(() => seen.push('r2'));
    await p2;
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(seen, ['a', 'r1', 'b', 'r2', 'c']);
    channel.close();
  });

  test('garbage and oversize frames are dropped, the channel goes on', T, async () => {
    const { channel, nextRequest, send, fromWorker } = channelPair();
    const p = channel.request('worker.dump');
    const req = await nextRequest(0);
    send([1, 2, 3], 'not a map', { neither: 'response nor notification' });
    fromWorker.write(rawFrame(Buffer.from([0xc1, 0xc1]))); // not msgpack
    // An oversize frame, announced and streamed in pieces.
    const header = Buffer.alloc(4);
    header.writeUInt32BE(MAX_FRAME_BYTES + 10, 0);
    fromWorker.write(header);
    const filler = Buffer.alloc(1024 * 1024, 0x92);
    for (let i = 0; i < 4; i++) fromWorker.write(filler);
    const response = encodeFrame({ id: req.id, accepted: true, data: 'ok' });
    fromWorker.write(Buffer.concat([Buffer.alloc(10, 0x92), response]));
    assert.equal(await p, 'ok');
    channel.close();
  });

  test('request ids wrap from 2^32-1 to 1, skipping ids still pending', T, async () => {
    assert.equal(nextRequestId(0), 1);
    assert.equal(nextRequestId(41), 42);
    assert.equal(nextRequestId(MAX_REQUEST_ID - 1), MAX_REQUEST_ID);
    assert.equal(nextRequestId(MAX_REQUEST_ID), 1);
    const pending = new Map([[1, {}], [2, {}], [4, {}]]);
    assert.equal(nextRequestId(MAX_REQUEST_ID, pending), 3);

    const { channel, nextRequest, send } = channelPair();
    const first = channel.request('worker.dump'); // id 1, left pending
    const ids = [(await nextRequest(0)).id];
    for (let i = 0; i < 3; i++) {
      const p = channel.request('worker.dump');
      const req = await nextRequest(1 + i);
      ids.push(req.id);
      send({ id: req.id, accepted: true, data: null });
      await p;
    }
    assert.deepEqual(ids, [1, 2, 3, 4]);
    channel.close();
    await assert.rejects(first, InvalidStateError);
  });

  test('a request times out after 15 s + 100 ms per pending request', T, async (t) => {
    if (typeof mock.timers?.enable !== 'function' || typeof mock.timers?.tick !== 'function') {
      t.skip('mock timers not available in this Node version');
      return;
    }
    try {
      t.mock.timers.enable({ apis: ['setTimeout'] });
    } catch {
      t.skip('mock timers take another form in this Node version');
      return;
    }
    const { channel, nextRequest } = channelPair();
    const outcomes = [];
    const track = (name, p) =>
      p.then(
        () => outcomes.push(`${name}:resolved`),
        (error) => outcomes.push({ name, error })
      );
    const p1 = track('p1', channel.request('worker.dump')); // 15000 ms
    const p2 = track('p2', channel.request('router.dump', 'r')); // 15100 ms
    await nextRequest(1);
    const flush = () => new Promise((resolve) => setImmediate(resolve));

    t.mock.timers.tick(14999);
    await flush();
    assert.equal(outcomes.length, 0);
    t.mock.timers.tick(1);
    await p1;
    assert.equal(outcomes.length, 1);
    assert.ok(outcomes[0].error instanceof RequestTimeoutError);
    assert.match(outcomes[0].error.message, /"worker\.dump"/);
    assert.match(outcomes[0].error.message, /15000 ms/);

    t.mock.timers.tick(99);
    await flush();
    assert.equal(outcomes.length, 1);
    t.mock.timers.tick(1);
    await p2;
    assert.ok(outcomes[1].error instanceof RequestTimeoutError);
    assert.match(outcomes[1].error.message, /"router\.dump"/);
    assert.equal(channel.pendingCount, 0);
    channel.close();
  });
});
