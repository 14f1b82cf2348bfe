import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';

import { Channel } from './Channel.js';
import { EnhancedEventEmitter } from './EnhancedEventEmitter.js';
import { InvalidStateError } from './errors.js';
import { Logger } from './Logger.js';
import { EXIT_SETTINGS_ERROR, LOG_LEVELS } from './protocol.generated.js';
import { Router } from './Router.js';
import { WebRtcServer } from './WebRtcServer.js';
import { checkAppData, isPlainObject } from './appData.js';

const logger = new Logger('Worker');
const stderrLogger = new Logger('worker:stderr');

/** How long close() waits for the process to exit on its own before SIGKILL. */
export const CLOSE_GRACE_MS = 5000;

// Last stderr lines kept to explain a start-up failure.
const STARTUP_STDERR_LINES = 20;


function checkPort(name, value) {
  if (value === undefined) return;
  if (!Number.isInteger(value)) throw new TypeError(`${name} must be an integer`);
}

function buildArgs({
  logLevel,
  logTags,
  rtcMinPort,
  rtcMaxPort,
  dtlsCertificateFile,
  dtlsPrivateKeyFile,
  workerArgs,
}) {
  const args = ['-m', 'worker'];
  if (logLevel !== undefined) args.push(`--logLevel=${logLevel}`);
  for (const tag of logTags ?? []) args.push(`--logTag=${tag}`);
  if (rtcMinPort !== undefined) args.push(`--rtcMinPort=${rtcMinPort}`);
  if (rtcMaxPort !== undefined) args.push(`--rtcMaxPort=${rtcMaxPort}`);
  if (dtlsCertificateFile !== undefined) args.push(`--dtlsCertificateFile=${dtlsCertificateFile}`);
  if (dtlsPrivateKeyFile !== undefined) args.push(`--dtlsPrivateKeyFile=${dtlsPrivateKeyFile}`);
  args.push(...(workerArgs ?? []));
  return args;
}

/**
 * A worker process. Create it with createWorker(), which resolves once the worker sent its
 * "running" notification.
 *
 * Events: "died" (Error) when the process exits unexpectedly after running.
 * Observer events: "close", "newrouter" (Router), "newwebrtcserver" (WebRtcServer).
 */
export class Worker extends EnhancedEventEmitter {
  #child;
  #pid;
  #channel;
  #closed = false;
  #died = false;
  #running = false;
  #appData;
  #observer = new EnhancedEventEmitter();
  #routers = new Map();
  #webRtcServers = new Map();
  #workerVersion;
  #exit = null; // { code, signal } once the process has exited
  #exitPromise;
  #closePromise = null;
  #startupStderr = [];

  /**
   * Spawns the process. Use createWorker() instead; it waits for "running". Internal events:
   * "@success" and "@failure" (Error) settle start-up.
   */
  constructor({
    pythonPath = 'python3',
    workerArgs = [],
    cwd,
    env,
    logLevel = 'error',
    logTags = [],
    rtcMinPort,
    rtcMaxPort,
    dtlsCertificateFile,
    dtlsPrivateKeyFile,
    appData,
  } = {}) {
    super();

    if (typeof pythonPath !== 'string' || pythonPath === '') {
      throw new TypeError('pythonPath must be a non-empty string');
    }
    if (!Array.isArray(workerArgs) || workerArgs.some((a) => typeof a !== 'string')) {
      throw new TypeError('workerArgs must be an array of strings');
    }
    if (typeof logLevel !== 'string') throw new TypeError('logLevel must be a string');
    if (!Array.isArray(logTags) || logTags.some((t) => typeof t !== 'string')) {
      throw new TypeError('logTags must be an array of strings');
    }
    checkPort('rtcMinPort', rtcMinPort);
    checkPort('rtcMaxPort', rtcMaxPort);
    if (env !== undefined && !isPlainObject(env)) throw new TypeError('env must be an object');
    this.#appData = checkAppData(appData);

    const args = buildArgs({
      logLevel,
      logTags,
      rtcMinPort,
      rtcMaxPort,
      dtlsCertificateFile,
      dtlsPrivateKeyFile,
      workerArgs,
    });
    logger.debug(`spawning worker process: ${pythonPath} ${args.join(' ')}`);

    this.#child = spawn(pythonPath, args, {
      cwd,
      env: { ...process.env, ...(env ?? {}) },
      detached: false,
      stdio: ['pipe', 'pipe', 'pipe'],
      windowsHide: true,
    });
    this.#pid = this.#child.pid;

    this.#channel = new Channel({
      producerSocket: this.#child.stdin,
      consumerSocket: this.#child.stdout,
      pid: this.#pid,
    });

    let settled = false;
    const settle = (error) => {
      if (settled) return;
      settled = true;
      if (error) this.safeEmit('@failure', error);
      else this.safeEmit('@success');
    };

    let resolveExit;
    this.#exitPromise = new Promise((resolve) => {
      resolveExit = resolve;
    });

    // Wait for "running" (handlerId is the pid as a string).
    if (this.#pid !== undefined) {
      const onRunning = (event, data) => {
        if (event !== 'running') return;
        this.#channel.off(String(this.#pid), onRunning);
        this.#running = true;
        this.#workerVersion = isPlainObject(data) ? data.version : undefined;
        this.#startupStderr = [];
        logger.debug(`worker process running [pid:${this.#pid}, version:${this.#workerVersion}]`);
        settle();
      };
      this.#channel.on(String(this.#pid), onRunning);
    }

    const stderr = createInterface({ input: this.#child.stderr, crlfDelay: Infinity });
    stderr.on('line', (line) => {
      stderrLogger.debug(`[pid:${this.#pid}] ${line}`);
      if (!this.#running) {
        this.#startupStderr.push(line);
        if (this.#startupStderr.length > STARTUP_STDERR_LINES) this.#startupStderr.shift();
      }
    });
    stderr.on('error', () => {});

    this.#child.on('error', (error) => {
      logger.error(`worker process error [pid:${this.#pid}]:`, error);
      if (!this.#running) {
        this.#closed = true;
        this.#channel.close();
        settle(new Error(`could not spawn the worker process (${pythonPath}): ${error.message}`));
        if (this.#pid === undefined) {
          // Never started, so no "close" will report an exit.
          this.#exit = { code: null, signal: null };
          resolveExit(this.#exit);
        }
      }
    });

    // "close" comes after the process exited and its stdio closed, so every frame the worker
    // wrote (e.g. the worker.close response) has been read by then.
    this.#child.once('close', (code, signal) => {
      this.#exit = { code, signal };
      logger.debug(`worker process closed [pid:${this.#pid}, code:${code}, signal:${signal}]`);
      resolveExit(this.#exit);

      if (!this.#running) {
        this.#closed = true;
        this.#channel.close();
        const reason = this.#startupStderr.join('\n').trim();
        if (code === EXIT_SETTINGS_ERROR) {
          settle(
            new TypeError(
              `wrong settings: worker process exited with code ${code}` +
                (reason ? `: ${reason}` : '') +
                ` [pid:${this.#pid}]`
            )
          );
        } else {
          settle(
            new Error(
              `worker process failed before running [pid:${this.#pid}, code:${code}, ` +
                `signal:${signal}]` +
                (reason ? `: ${reason}` : '')
            )
          );
        }
        return;
      }

      if (this.#closed) return; // close() asked for this exit.

      this.#died = true;
      const error = new Error(
        `worker process died unexpectedly [pid:${this.#pid}, code:${code}, signal:${signal}]`
      );
      logger.error(error.message);
      this.#closed = true;
      this.#channel.close();
      this.#closeEntities();
      this.safeEmit('died', error);
      this.#observer.safeEmit('close');
    });
  }

  /** The worker process id. */
  get pid() {
    return this.#pid;
  }

  /** Whether the worker is closed (by close() or because it died). */
  get closed() {
    return this.#closed;
  }

  /** Whether the worker process exited unexpectedly. */
  get died() {
    return this.#died;
  }

  /** Whether the worker process has exited. */
  get subprocessClosed() {
    return this.#exit !== null;
  }

  /** The worker's version, as its "running" notification reported it. */
  get workerVersion() {
    return this.#workerVersion;
  }

  get appData() {
    return this.#appData;
  }

  set appData(appData) {
    this.#appData = checkAppData(appData);
  }

  /** Observer events: "close", "newrouter" (Router), "newwebrtcserver" (WebRtcServer). */
  get observer() {
    return this.#observer;
  }

  /** The channel, for the entities of this worker. @internal */
  get channel() {
    return this.#channel;
  }

  /**
   * Closes the worker: sends worker.close, waits for the process to exit and kills it after a
   * grace period. Resolves with the process's { code, signal }. Idempotent: later calls return
   * the same promise.
   */
  close() {
    if (this.#closePromise) return this.#closePromise;
    if (this.#closed && this.#exit) {
      this.#closePromise = Promise.resolve(this.#exit);
      return this.#closePromise;
    }
    logger.debug(`close() [pid:${this.#pid}]`);

    const wasOpen = !this.#closed;
    let closeRequest = Promise.resolve();
    if (wasOpen) {
      // Send before the channel is closed; the response may never come (e.g. a dead worker).
      closeRequest = this.#channel.request('worker.close').catch((error) => {
        logger.debug(`worker.close request failed: ${error.message}`);
      });
      this.#closed = true;
      this.#closeEntities();
      this.#observer.safeEmit('close');
    }

    this.#closePromise = (async () => {
      const exited = (ms) =>
        Promise.race([
          this.#exitPromise.then(() => true),
          new Promise((resolve) => setTimeout(() => resolve(false), ms).unref()),
        ]);

      await Promise.race([closeRequest, this.#exitPromise]);
      // EOF on stdin also asks the worker to shut down.
      try {
        this.#child.stdin.end();
      } catch {
        // Already closed.
      }
      if (!(await exited(CLOSE_GRACE_MS))) {
        logger.warn(`worker did not exit in ${CLOSE_GRACE_MS} ms, killing it [pid:${this.#pid}]`);
        try {
          this.#child.kill('SIGKILL');
        } catch {
          // Already gone.
        }
      }
      const exit = await this.#exitPromise;
      this.#channel.close();
      return exit;
    })();
    return this.#closePromise;
  }

  /** The worker's dump (PROTOCOL.md section 7). */
  async dump() {
    this.#assertOpen('dump()');
    return this.#channel.request('worker.dump');
  }

  /** The worker process's resource usage (ru_utime, ru_stime, ru_maxrss, ...). */
  async getResourceUsage() {
    this.#assertOpen('getResourceUsage()');
    return this.#channel.request('worker.getResourceUsage');
  }

  /** Changes the log level and/or tags; a bad value rejects with TypeError. */
  async updateSettings({ logLevel, logTags } = {}) {
    this.#assertOpen('updateSettings()');
    if (logLevel !== undefined && typeof logLevel !== 'string') {
      throw new TypeError(`logLevel must be one of ${LOG_LEVELS.join(', ')}`);
    }
    if (logTags !== undefined && !Array.isArray(logTags)) {
      throw new TypeError('logTags must be an array');
    }
    const data = {};
    if (logLevel !== undefined) data.logLevel = logLevel;
    if (logTags !== undefined) data.logTags = logTags;
    await this.#channel.request('worker.updateSettings', '', data);
  }

  /** Creates a router with the given media codecs. */
  async createRouter({ mediaCodecs, appData } = {}) {
    this.#assertOpen('createRouter()');
    if (mediaCodecs !== undefined && !Array.isArray(mediaCodecs)) {
      throw new TypeError('if given, mediaCodecs must be an array');
    }
    const routerAppData = checkAppData(appData);
    const routerId = randomUUID();
    const data = { routerId };
    if (mediaCodecs !== undefined) data.mediaCodecs = mediaCodecs;

    const response = await this.#channel.request('worker.createRouter', '', data);
    const rtpCapabilities = isPlainObject(response) ? response.rtpCapabilities : undefined;

    const router = new Router({
      internal: { routerId },
      data: { rtpCapabilities },
      channel: this.#channel,
      appData: routerAppData,
    });

    if (this.#closed) {
      // The worker closed while the router was being created.
      router.workerClosed();
      throw new InvalidStateError('Worker closed while creating the router');
    }

    this.#routers.set(router.id, router);
    router.on('@close', () => this.#routers.delete(router.id));
    this.#observer.safeEmit('newrouter', router);
    return router;
  }

  /** Creates a WebRtcServer listening on the given listenInfos (1 to 8 TransportListenInfo). */
  async createWebRtcServer({ listenInfos, appData } = {}) {
    this.#assertOpen('createWebRtcServer()');
    if (!Array.isArray(listenInfos) || listenInfos.length === 0) {
      throw new TypeError('listenInfos must be a non-empty array');
    }
    if (listenInfos.some((info) => !isPlainObject(info))) {
      throw new TypeError('each entry of listenInfos must be an object');
    }
    const serverAppData = checkAppData(appData);
    const webRtcServerId = randomUUID();

    await this.#channel.request('worker.createWebRtcServer', '', { webRtcServerId, listenInfos });

    const webRtcServer = new WebRtcServer({
      internal: { webRtcServerId },
      channel: this.#channel,
      appData: serverAppData,
    });

    if (this.#closed) {
      webRtcServer.workerClosed();
      throw new InvalidStateError('Worker closed while creating the WebRtcServer');
    }

    this.#webRtcServers.set(webRtcServerId, webRtcServer);
    webRtcServer.on('@close', () => this.#webRtcServers.delete(webRtcServerId));
    this.#observer.safeEmit('newwebrtcserver', webRtcServer);
    return webRtcServer;
  }

  #assertOpen(what) {
    if (this.#closed) {
      throw new InvalidStateError(`Worker closed${this.#died ? ' (died)' : ''}, cannot ${what}`);
    }
  }

  #closeEntities() {
    for (const router of [...this.#routers.values()]) router.workerClosed();
    this.#routers.clear();
    for (const webRtcServer of [...this.#webRtcServers.values()]) webRtcServer.workerClosed();
    this.#webRtcServers.clear();
  }
}
