// WebRtcServer and WebRtcTransport against the real worker process (`python -m worker` from the
// repository root). The interpreter is $MEDIAWORKER_PYTHON, or python3.

import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import net from 'node:net';
import { delimiter } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import {
  InvalidStateError,
  Transport,
  WebRtcServer,
  WebRtcTransport,
  createWorker,
} from '../src/index.js';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PYTHON = process.env.MEDIAWORKER_PYTHON || 'python3';
const T = { timeout: 20000 };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const LISTEN_INFOS = [
  { protocol: 'udp', ip: '127.0.0.1' },
  { protocol: 'tcp', ip: '127.0.0.1' },
];

function options(extra = {}) {
  const pythonPath = [REPO_ROOT, process.env.PYTHONPATH].filter(Boolean).join(delimiter);
  return { pythonPath: PYTHON, cwd: REPO_ROOT, env: { PYTHONPATH: pythonPath }, ...extra };
}

function waitFor(emitter, event, ms = 10000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "${event}" within ${ms} ms`)), ms);
    emitter.once(event, (...args) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}

// -- STUN (RFC 5389) over RFC 4571 framing ------------------------------------------------------

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(buf) {
  let crc = 0xffffffff;
  for (const byte of buf) crc = CRC_TABLE[(crc ^ byte) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function stunAttr(type, value) {
  const padded = Buffer.alloc(4 + Math.ceil(value.length / 4) * 4);
  padded.writeUInt16BE(type, 0);
  padded.writeUInt16BE(value.length, 2);
  value.copy(padded, 4);
  return padded;
}

/** A binding request with USERNAME, PRIORITY, ICE-CONTROLLING, USE-CANDIDATE, MI, FINGERPRINT. */
function bindingRequest({ username, password }) {
  const priority = Buffer.alloc(4);
  priority.writeUInt32BE(0x6e7f00ff, 0);
  const attrs = Buffer.concat([
    stunAttr(0x0006, Buffer.from(username, 'utf8')),
    stunAttr(0x0024, priority),
    stunAttr(0x802a, randomBytes(8)),
    stunAttr(0x0025, Buffer.alloc(0)),
  ]);
  const header = Buffer.alloc(20);
  header.writeUInt16BE(0x0001, 0);
  header.writeUInt32BE(0x2112a442, 4);
  randomBytes(12).copy(header, 8);

  // MESSAGE-INTEGRITY: HMAC over everything before it, the length counting the MI attribute.
  header.writeUInt16BE(attrs.length + 24, 2);
  const hmac = createHmac('sha1', password).update(Buffer.concat([header, attrs])).digest();
  const withMi = Buffer.concat([attrs, stunAttr(0x0008, hmac)]);

  // FINGERPRINT: CRC-32 of everything before it XOR 0x5354554e, the length counting it.
  header.writeUInt16BE(withMi.length + 8, 2);
  const fp = Buffer.alloc(4);
  fp.writeUInt32BE((crc32(Buffer.concat([header, withMi])) ^ 0x5354554e) >>> 0, 0);
  return Buffer.concat([header, withMi, stunAttr(0x8028, fp)]);
}

function frame4571(payload) {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(payload.length, 0);
  return Buffer.concat([len, payload]);
}

/** Connects to host:port and resolves with the socket and a promise of the first framed reply. */
function connectTcp(host, port, ms = 5000) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, localAddress: '127.0.0.1' });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`TCP connect to ${host}:${port} timed out`));
    }, ms);
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.once('connect', () => {
      clearTimeout(timer);
      let buffered = Buffer.alloc(0);
      const firstFrame = new Promise((res, rej) => {
        const t = setTimeout(() => rej(new Error('no framed reply within 5000 ms')), 5000);
        socket.on('data', (chunk) => {
          buffered = Buffer.concat([buffered, chunk]);
          if (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
            clearTimeout(t);
            res(buffered.subarray(2, 2 + buffered.readUInt16BE(0)));
          }
        });
      });
      firstFrame.catch(() => {});
      resolve({ socket, firstFrame });
    });
  });
}

const FINGERPRINT = {
  algorithm: 'sha-256',
  value: Array.from(randomBytes(32), (b) => b.toString(16).padStart(2, '0').toUpperCase()).join(':'),
};

describe('webrtc', () => {
  let worker;
  let router;
  let server;
  const sockets = [];

  before(async () => {
    worker = await createWorker(options());
    router = await worker.createRouter({ mediaCodecs: [] });
  }, T);

  after(async () => {
    for (const socket of sockets) socket.destroy();
    await worker?.close();
  }, T);

  test('createWebRtcServer returns a WebRtcServer and emits newwebrtcserver', T, async () => {
    const newServer = waitFor(worker.observer, 'newwebrtcserver');
    server = await worker.createWebRtcServer({ listenInfos: LISTEN_INFOS, appData: { s: 1 } });
    const [emitted] = await newServer;
    assert.equal(emitted, server);
    assert.ok(server instanceof WebRtcServer);
    assert.match(server.id, UUID);
    assert.equal(server.closed, false);
    assert.deepEqual(server.appData, { s: 1 });

    const dump = await server.dump();
    assert.equal(dump.id, server.id);
    assert.equal(dump.udpSockets.length, 1);
    assert.equal(dump.tcpServers.length, 1);
    assert.equal(dump.udpSockets[0].ip, '127.0.0.1');
    assert.deepEqual(dump.webRtcTransportIds, []);
    assert.ok((await worker.dump()).webRtcServerIds.includes(server.id));
  });

  test('bad arguments reject with TypeError', T, async () => {
    await assert.rejects(worker.createWebRtcServer({}), TypeError);
    await assert.rejects(worker.createWebRtcServer({ listenInfos: [] }), TypeError);
    await assert.rejects(
      worker.createWebRtcServer({ listenInfos: LISTEN_INFOS, appData: 'x' }),
      TypeError
    );
    // The worker's own TypeError for a field of the wrong type.
    await assert.rejects(
      worker.createWebRtcServer({ listenInfos: [{ protocol: 'udp', ip: 1234 }] }),
      TypeError
    );
    // Exactly one of listenInfos and webRtcServer.
    await assert.rejects(router.createWebRtcTransport({}), TypeError);
    await assert.rejects(
      router.createWebRtcTransport({ listenInfos: LISTEN_INFOS, webRtcServer: server }),
      TypeError
    );
    await assert.rejects(router.createWebRtcTransport({ webRtcServer: { id: 'x' } }), TypeError);
    await assert.rejects(
      router.createWebRtcTransport({ webRtcServer: server, enableUdp: 'yes' }),
      TypeError
    );
    // Both protocols disabled: the worker's TypeError.
    await assert.rejects(
      router.createWebRtcTransport({ webRtcServer: server, enableUdp: false, enableTcp: false }),
      TypeError
    );
    assert.deepEqual((await router.dump()).transportIds, []);
  });

  test('createWebRtcTransport through a server: getters match the dump', T, async () => {
    const newTransport = waitFor(router.observer, 'newtransport');
    const handled = waitFor(server.observer, 'webrtctransporthandled');
    const transport = await router.createWebRtcTransport({
      webRtcServer: server,
      preferTcp: true,
      appData: { t: 1 },
    });
    assert.equal((await newTransport)[0], transport);
    assert.equal((await handled)[0], transport);
    assert.ok(transport instanceof WebRtcTransport);
    assert.ok(transport instanceof Transport);
    assert.match(transport.id, UUID);
    assert.deepEqual(transport.appData, { t: 1 });
    assert.equal(transport.closed, false);

    const dump = await transport.dump();
    assert.equal(dump.id, transport.id);
    assert.equal(transport.iceRole, 'controlled');
    assert.deepEqual(transport.iceParameters, dump.iceParameters);
    assert.equal(transport.iceParameters.iceLite, true);
    assert.deepEqual(transport.iceCandidates, dump.iceCandidates);
    assert.equal(transport.iceCandidates.length, 2);
    assert.equal(transport.iceCandidates[0].protocol, 'tcp'); // preferTcp
    assert.equal(transport.iceState, dump.iceState);
    assert.equal(transport.iceState, 'new');
    assert.equal(transport.iceSelectedTuple, undefined);
    assert.deepEqual(transport.dtlsParameters, dump.dtlsParameters);
    assert.equal(transport.dtlsParameters.role, 'auto');
    assert.equal(transport.dtlsState, 'new');
    assert.equal(transport.dtlsRemoteCert, undefined);

    const serverDump = await server.dump();
    assert.deepEqual(serverDump.webRtcTransportIds, [transport.id]);
    assert.ok((await router.dump()).transportIds.includes(transport.id));

    // enableUdp: false leaves only the TCP candidate; undefined options are not sent.
    const sent = [];
    const channel = worker.channel;
    channel.request = function (method, handlerId, data) {
      sent.push({ method, handlerId, data });
      return Object.getPrototypeOf(channel).request.call(channel, method, handlerId, data);
    };
    let tcpOnly;
    try {
      tcpOnly = await router.createWebRtcTransport({ webRtcServer: server, enableUdp: false });
    } finally {
      delete channel.request;
    }
    assert.equal(sent.length, 1);
    assert.equal(sent[0].method, 'router.createWebRtcTransport');
    assert.equal(sent[0].handlerId, router.id);
    assert.deepEqual(sent[0].data, {
      transportId: tcpOnly.id,
      webRtcServerId: server.id,
      enableUdp: false,
    });
    assert.deepEqual(
      tcpOnly.iceCandidates.map((c) => c.protocol),
      ['tcp']
    );

    const unhandled = waitFor(server.observer, 'webrtctransportunhandled');
    const closed = waitFor(transport.observer, 'close');
    await transport.close();
    await closed;
    assert.equal((await unhandled)[0], transport);
    assert.equal(transport.closed, true);
    assert.equal(transport.iceState, 'closed');
    assert.equal(transport.dtlsState, 'closed');
    await assert.rejects(transport.dump(), InvalidStateError);
    await transport.close(); // idempotent
    assert.ok(!(await router.dump()).transportIds.includes(transport.id));
    assert.deepEqual((await server.dump()).webRtcTransportIds, [tcpOnly.id]);
    await tcpOnly.close();
  });

  test('ICE over TCP, connect(), restartIce(), getStats()', T, async () => {
    const transport = await router.createWebRtcTransport({ listenInfos: LISTEN_INFOS });
    assert.deepEqual(
      transport.iceCandidates.map((c) => c.protocol),
      ['udp', 'tcp']
    );
    const dump = await transport.dump();
    assert.deepEqual(transport.iceCandidates, dump.iceCandidates);
    assert.ok(dump.listenerCounters);

    const candidate = transport.iceCandidates.find((c) => c.protocol === 'tcp');
    assert.equal(candidate.tcpType, 'passive');
    assert.equal(candidate.ip, '127.0.0.1');

    const iceStateChange = waitFor(transport, 'icestatechange');
    const tupleChange = waitFor(transport, 'iceselectedtuplechange');
    const observerIceStateChange = waitFor(transport.observer, 'icestatechange');

    const { socket, firstFrame } = await connectTcp(candidate.ip, candidate.port);
    sockets.push(socket);
    const { usernameFragment, password } = transport.iceParameters;
    socket.write(frame4571(bindingRequest({ username: `${usernameFragment}:x`, password })));

    const response = await firstFrame;
    assert.equal(response.readUInt16BE(0), 0x0101); // binding success response

    const [tuple] = await tupleChange;
    assert.equal(tuple.protocol, 'tcp');
    assert.equal(tuple.localPort, candidate.port);
    assert.equal(tuple.remotePort, socket.localPort);
    const [iceState] = await iceStateChange;
    assert.equal(iceState, 'completed');
    assert.equal((await observerIceStateChange)[0], 'completed');
    assert.equal(transport.iceState, 'completed');
    assert.deepEqual(transport.iceSelectedTuple, tuple);
    const dump2 = await transport.dump();
    assert.equal(dump2.iceState, 'completed');
    assert.deepEqual(dump2.iceSelectedTuple, transport.iceSelectedTuple);

    // connect(): a remote "client" makes us the DTLS server.
    await assert.rejects(transport.connect({}), TypeError);
    await assert.rejects(
      transport.connect({ dtlsParameters: { role: 'bogus', fingerprints: [FINGERPRINT] } }),
      TypeError
    );
    await transport.connect({ dtlsParameters: { role: 'client', fingerprints: [FINGERPRINT] } });
    assert.equal(transport.dtlsParameters.role, 'server');
    assert.equal((await transport.dump()).dtlsParameters.role, 'server');
    await assert.rejects(
      transport.connect({ dtlsParameters: { role: 'client', fingerprints: [FINGERPRINT] } }),
      InvalidStateError
    );

    // restartIce(): new credentials, stored in iceParameters.
    const previous = transport.iceParameters;
    const iceParameters = await transport.restartIce();
    assert.notEqual(iceParameters.usernameFragment, previous.usernameFragment);
    assert.notEqual(iceParameters.password, previous.password);
    assert.deepEqual(transport.iceParameters, iceParameters);
    assert.deepEqual((await transport.dump()).iceParameters, iceParameters);

    // getStats(): the worker's answer, or its error passed through.
    try {
      const stats = await transport.getStats();
      assert.ok(stats !== undefined);
    } catch (error) {
      assert.match(error.message, /not implemented/);
    }

    const closed = waitFor(transport.observer, 'close');
    await transport.close();
    await closed;
    assert.equal(transport.iceSelectedTuple, undefined);
    assert.deepEqual((await router.dump()).transportIds, []);
  });

  test('closing a WebRtcServer closes its transports (listenserverclose)', T, async () => {
    const srv = await worker.createWebRtcServer({
      listenInfos: [{ protocol: 'udp', ip: '127.0.0.1' }],
    });
    const t1 = await router.createWebRtcTransport({ webRtcServer: srv });
    const t2 = await router.createWebRtcTransport({ webRtcServer: srv });
    const own = await router.createWebRtcTransport({ listenInfos: LISTEN_INFOS });

    const events = [
      waitFor(t1, 'listenserverclose'),
      waitFor(t2, 'listenserverclose'),
      waitFor(t1.observer, 'close'),
      waitFor(t2.observer, 'close'),
      waitFor(srv.observer, 'close'),
    ];
    await srv.close();
    await Promise.all(events);
    assert.equal(srv.closed, true);
    assert.equal(t1.closed, true);
    assert.equal(t2.closed, true);
    assert.equal(own.closed, false);
    await assert.rejects(srv.dump(), InvalidStateError);
    await assert.rejects(
      router.createWebRtcTransport({ webRtcServer: srv }),
      InvalidStateError
    );
    assert.ok(!(await worker.dump()).webRtcServerIds.includes(srv.id));
    assert.deepEqual((await router.dump()).transportIds, [own.id]);
    await own.close();
  });

  test('closing a router closes its transports (routerclose)', T, async () => {
    const r = await worker.createRouter();
    const t1 = await r.createWebRtcTransport({ webRtcServer: server });
    const t2 = await r.createWebRtcTransport({ listenInfos: LISTEN_INFOS });
    const unhandled = waitFor(server.observer, 'webrtctransportunhandled');
    const events = [
      waitFor(t1, 'routerclose'),
      waitFor(t2, 'routerclose'),
      waitFor(t1.observer, 'close'),
      waitFor(t2.observer, 'close'),
    ];
    await r.close();
    await Promise.all(events);
    assert.equal((await unhandled)[0], t1);
    assert.equal(t1.closed, true);
    assert.equal(t2.closed, true);
    await assert.rejects(t2.restartIce(), InvalidStateError);
    assert.deepEqual((await server.dump()).webRtcTransportIds, []);
  });

  test('closing the worker closes servers, routers and transports', T, async () => {
    const w = await createWorker(options());
    try {
      const srv = await w.createWebRtcServer({ listenInfos: LISTEN_INFOS });
      const r = await w.createRouter();
      const t1 = await r.createWebRtcTransport({ webRtcServer: srv });
      const t2 = await r.createWebRtcTransport({ listenInfos: LISTEN_INFOS });
      const events = [
        waitFor(srv, 'workerclose'),
        waitFor(srv.observer, 'close'),
        waitFor(r, 'workerclose'),
        waitFor(t1, 'routerclose'),
        waitFor(t2, 'routerclose'),
      ];
      await w.close();
      await Promise.all(events);
      for (const entity of [srv, r, t1, t2]) assert.equal(entity.closed, true);
      await assert.rejects(
        w.createWebRtcServer({ listenInfos: LISTEN_INFOS }),
        InvalidStateError
      );
    } finally {
      await w.close();
    }
  });
});
