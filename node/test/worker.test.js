// Tests against the real worker process (`python -m worker` from the repository root).
// The interpreter is $MEDIAWORKER_PYTHON, or python3.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { delimiter } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import {
  InvalidStateError,
  Router,
  Worker,
  createWorker,
  observer as moduleObserver,
  version,
} from '../src/index.js';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PYTHON = process.env.MEDIAWORKER_PYTHON || 'python3';
const T = { timeout: 20000 };

const MEDIA_CODECS = [
  { kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 },
  {
    kind: 'video',
    mimeType: 'video/VP8',
    clockRate: 90000,
    parameters: { 'x-google-start-bitrate': 1000 },
  },
];

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function options(extra = {}) {
  const pythonPath = [REPO_ROOT, process.env.PYTHONPATH].filter(Boolean).join(delimiter);
  return {
    pythonPath: PYTHON,
    cwd: REPO_ROOT,
    env: { PYTHONPATH: pythonPath },
    ...extra,
  };
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

describe('worker', () => {
  let worker;

  before(async () => {
    worker = await createWorker(options({ appData: { foo: 'bar' } }));
  }, T);

  after(async () => {
    await worker?.close();
  }, T);

  test('createWorker resolves with a running Worker', T, async () => {
    assert.ok(worker instanceof Worker);
    assert.equal(typeof worker.pid, 'number');
    assert.ok(worker.pid > 0);
    assert.equal(worker.closed, false);
    assert.equal(worker.died, false);
    assert.deepEqual(worker.appData, { foo: 'bar' });
    assert.equal(typeof version, 'string');
  });

  test('createRouter returns a Router with rtpCapabilities for opus and VP8', T, async () => {
    const newRouter = waitFor(worker.observer, 'newrouter');
    const router = await worker.createRouter({ mediaCodecs: MEDIA_CODECS, appData: { n: 1 } });
    const [emitted] = await newRouter;

    assert.ok(router instanceof Router);
    assert.equal(emitted, router);
    assert.match(router.id, UUID);
    assert.equal(router.closed, false);
    assert.deepEqual(router.appData, { n: 1 });

    const { codecs } = router.rtpCapabilities;
    assert.ok(Array.isArray(codecs), 'rtpCapabilities.codecs is an array');
    const opus = codecs.find((c) => c.mimeType.toLowerCase() === 'audio/opus');
    assert.ok(opus, 'opus in rtpCapabilities');
    assert.equal(opus.kind, 'audio');
    assert.equal(opus.clockRate, 48000);
    assert.equal(opus.channels, 2);
    assert.equal(typeof opus.preferredPayloadType, 'number');
    const vp8 = codecs.find((c) => c.mimeType.toLowerCase() === 'video/vp8');
    assert.ok(vp8, 'VP8 in rtpCapabilities');
    assert.equal(vp8.kind, 'video');
    assert.equal(vp8.clockRate, 90000);
    const rtx = codecs.find(
      (c) =>
        c.mimeType.toLowerCase() === 'video/rtx' &&
        c.parameters?.apt === vp8.preferredPayloadType
    );
    assert.ok(rtx, 'an RTX codec for VP8');
    assert.ok(Array.isArray(router.rtpCapabilities.headerExtensions));

    await router.close();
  });

  test('worker.dump lists the router until it is closed', T, async () => {
    const router = await worker.createRouter({ mediaCodecs: MEDIA_CODECS });
    const dump = await worker.dump();
    assert.equal(dump.pid, worker.pid);
    assert.ok(dump.routerIds.includes(router.id));
    assert.ok(Array.isArray(dump.webRtcServerIds));
    assert.equal(typeof dump.channel, 'object');
    assert.equal(typeof dump.bufferPools, 'object');

    const routerDump = await router.dump();
    assert.equal(typeof routerDump, 'object');
    assert.equal(routerDump.id, router.id);
    assert.deepEqual(routerDump.transportIds, []);

    const closed = waitFor(router.observer, 'close');
    const closing = router.close();
    assert.equal(router.closed, true);
    await closed;
    await closing;
    await router.close(); // idempotent

    const after = await worker.dump();
    assert.ok(!after.routerIds.includes(router.id));
    await assert.rejects(router.dump(), InvalidStateError);
  });

  test('updateSettings accepts good settings and rejects a bad logLevel with TypeError', T,
    async () => {
      await worker.updateSettings({ logLevel: 'debug', logTags: ['info', 'ice'] });
      await worker.updateSettings({ logLevel: 'error' });
      await assert.rejects(worker.updateSettings({ logLevel: 'bogus' }), TypeError);
      // Still usable afterwards.
      assert.equal((await worker.dump()).pid, worker.pid);
    });

  test('getResourceUsage reports ru_utime', T, async () => {
    const usage = await worker.getResourceUsage();
    assert.equal(typeof usage.ru_utime, 'number');
    assert.ok(usage.ru_utime >= 0);
  });
});

describe('createWorker failures', () => {
  test('a bad logLevel rejects with TypeError (exit code 42)', T, async () => {
    await assert.rejects(createWorker(options({ logLevel: 'bogus' })), (error) => {
      assert.ok(error instanceof TypeError, `${error}`);
      assert.match(error.message, /wrong settings/);
      assert.match(error.message, /42/);
      return true;
    });
  });

  test('a bad logTag rejects with TypeError (exit code 42)', T, async () => {
    await assert.rejects(createWorker(options({ logTags: ['bogus'] })), TypeError);
  });

  test('a program that exits early rejects with Error naming the code', T, async () => {
    // node refuses `-m` and exits with a non-42 code.
    await assert.rejects(createWorker(options({ pythonPath: process.execPath })), (error) => {
      assert.equal(error.constructor, Error);
      assert.match(error.message, /code:\d+/);
      return true;
    });
  });

  test('a missing interpreter rejects with Error', T, async () => {
    await assert.rejects(
      createWorker(options({ pythonPath: '/nonexistent/python-for-mediaworker' })),
      Error
    );
  });

  test('bad option types throw TypeError before spawning', T, async () => {
    await assert.rejects(createWorker(options({ logTags: 'info' })), TypeError);
    await assert.rejects(createWorker(options({ appData: 'x' })), TypeError);
  });
});

describe('worker lifecycle', () => {
  test('SIGKILL: "died" fires, pending and later requests reject with InvalidStateError', T,
    async () => {
      const worker = await createWorker(options());
      const router = await worker.createRouter({ mediaCodecs: MEDIA_CODECS });
      const workerClose = waitFor(router, 'workerclose');
      const routerObserverClose = waitFor(router.observer, 'close');
      const observerClose = waitFor(worker.observer, 'close');
      const died = waitFor(worker, 'died');

      // Stop the process first so the request surely stays pending.
      process.kill(worker.pid, 'SIGSTOP');
      const pending = worker.dump();
      process.kill(worker.pid, 'SIGKILL');

      const [error] = await died;
      assert.ok(error instanceof Error);
      assert.match(error.message, /SIGKILL/);
      assert.match(error.message, new RegExp(`pid:${worker.pid}`));
      await assert.rejects(pending, InvalidStateError);
      await assert.rejects(worker.dump(), InvalidStateError);
      await assert.rejects(worker.createRouter({ mediaCodecs: MEDIA_CODECS }), InvalidStateError);
      await workerClose;
      await routerObserverClose;
      await observerClose;
      assert.equal(worker.died, true);
      assert.equal(worker.closed, true);
      assert.equal(router.closed, true);

      const exit = await worker.close(); // still fine after death
      assert.equal(exit.signal, 'SIGKILL');
    });

  test('close() exits the process with code 0 and closes the routers', T, async () => {
    const newWorker = waitFor(moduleObserver, 'newworker');
    const worker = await createWorker(options({ logLevel: 'debug', logTags: ['info'] }));
    assert.equal((await newWorker)[0], worker);
    const router = await worker.createRouter({ mediaCodecs: MEDIA_CODECS });
    const workerClose = waitFor(router, 'workerclose');
    const observerClose = waitFor(worker.observer, 'close');
    let diedFired = false;
    worker.on('died', () => {
      diedFired = true;
    });

    const closing = worker.close();
    assert.equal(worker.close(), closing, 'close() is idempotent');
    assert.equal(worker.closed, true);
    await observerClose;
    await workerClose;
    assert.equal(router.closed, true);

    const started = Date.now();
    const exit = await closing;
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.ok(Date.now() - started < 4000, 'exited within the grace period');
    assert.equal(worker.subprocessClosed, true);
    assert.equal(worker.died, false);
    assert.equal(diedFired, false);
    await assert.rejects(worker.dump(), InvalidStateError);
    assert.deepEqual(await worker.close(), exit);
  });

  test('SIGTERM after running is reported as "died"', T, async () => {
    const worker = await createWorker(options());
    const died = waitFor(worker, 'died');
    process.kill(worker.pid, 'SIGTERM');
    const [error] = await died;
    // The worker shuts down cleanly on SIGTERM (exit code 0), which is still unexpected here.
    assert.match(error.message, /code:(0|null)/);
    assert.equal(worker.died, true);
  });
});

describe('logging', () => {
  // Runs a small controller in a child node process and returns its stderr.
  function runController(debug) {
    const indexUrl = new URL('../src/index.js', import.meta.url).href;
    const workerOptions = options({ logLevel: 'debug', logTags: ['info'] });
    const script = `
      import { createWorker } from ${JSON.stringify(indexUrl)};
      const worker = await createWorker(${JSON.stringify(workerOptions)});
      const router = await worker.createRouter({ mediaCodecs: ${JSON.stringify(MEDIA_CODECS)} });
      await router.close();
      await worker.close();
    `;
    return new Promise((resolve, reject) => {
      const env = { ...process.env };
      if (debug) env.DEBUG = debug;
      else delete env.DEBUG;
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      let stdout = '';
      child.stderr.on('data', (d) => { stderr += d; });
      child.stdout.on('data', (d) => { stdout += d; });
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stderr, stdout }));
    });
  }

  test('with DEBUG=mediaworker, worker logs and stderr go to the debug logger', T, async () => {
    const { code, stderr, stdout } = await runController('mediaworker');
    assert.equal(code, 0, stderr);
    assert.equal(stdout, '');
    assert.match(stderr, /mediaworker:worker:DEBUG \[pid:\d+\] /, 'channel log frames');
    assert.match(stderr, /mediaworker:Channel:DEBUG request\(\) \[method:worker\.createRouter/);
  });

  test('without DEBUG the controller writes nothing', T, async () => {
    const { code, stderr, stdout } = await runController('');
    assert.equal(code, 0, stderr);
    assert.equal(stdout, '');
    assert.equal(stderr, '');
  });
});
