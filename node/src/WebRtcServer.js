import { EnhancedEventEmitter } from './EnhancedEventEmitter.js';
import { InvalidStateError } from './errors.js';
import { Logger } from './Logger.js';
import { checkAppData } from './appData.js';

const logger = new Logger('WebRtcServer');

/**
 * A WebRTC server: shared UDP sockets and TCP servers for WebRtcTransports.
 * Create it with worker.createWebRtcServer().
 *
 * Events: "workerclose". Observer events: "close", "webrtctransporthandled" (WebRtcTransport),
 * "webrtctransportunhandled" (WebRtcTransport). Internal event: "@close".
 */
export class WebRtcServer extends EnhancedEventEmitter {
  #internal;
  #channel;
  #closed = false;
  #appData;
  #observer = new EnhancedEventEmitter();
  #webRtcTransports = new Map();

  /** @internal Use worker.createWebRtcServer(). */
  constructor({ internal, channel, appData }) {
    super();
    this.#internal = internal;
    this.#channel = channel;
    this.#appData = appData ?? {};
  }

  /** The server id (a UUID chosen by the controller). */
  get id() {
    return this.#internal.webRtcServerId;
  }

  get closed() {
    return this.#closed;
  }

  get appData() {
    return this.#appData;
  }

  set appData(appData) {
    this.#appData = checkAppData(appData);
  }

  /** Observer events: "close", "webrtctransporthandled", "webrtctransportunhandled". */
  get observer() {
    return this.#observer;
  }

  /** @internal The transports using this server. */
  get webRtcTransportsForTesting() {
    return this.#webRtcTransports;
  }

  /**
   * Closes the server; the worker closes its transports, which emit "listenserverclose" here.
   * The promise settles once the worker answered worker.closeWebRtcServer. Idempotent.
   */
  async close() {
    if (this.#closed) return;
    logger.debug(`close() [webRtcServerId:${this.id}]`);
    this.#closed = true;

    const request = this.#channel
      .request('worker.closeWebRtcServer', '', { webRtcServerId: this.id })
      .catch((error) => {
        logger.debug(`worker.closeWebRtcServer failed [webRtcServerId:${this.id}]: ${error.message}`);
      });

    // Each emits "@closed", which removes it and emits observer "webrtctransportunhandled".
    for (const transport of [...this.#webRtcTransports.values()]) {
      transport.listenServerClosed();
    }
    this.#webRtcTransports.clear();

    this.safeEmit('@close');
    this.#observer.safeEmit('close');
    await request;
  }

  /** @internal Called by the worker when it closes or dies. */
  workerClosed() {
    if (this.#closed) return;
    logger.debug(`workerClosed() [webRtcServerId:${this.id}]`);
    this.#closed = true;
    // The transports are closed by their routers ("routerclose").
    this.#webRtcTransports.clear();
    this.safeEmit('workerclose');
    this.#observer.safeEmit('close');
  }

  /** The server's dump. */
  async dump() {
    if (this.#closed) throw new InvalidStateError('WebRtcServer closed, cannot dump()');
    return this.#channel.request('webRtcServer.dump', this.id);
  }

  /** @internal Called by the router for a transport created through this server. */
  handleWebRtcTransport(transport) {
    this.#webRtcTransports.set(transport.id, transport);
    this.#observer.safeEmit('webrtctransporthandled', transport);
    transport.on('@closed', () => {
      if (this.#webRtcTransports.delete(transport.id)) {
        this.#observer.safeEmit('webrtctransportunhandled', transport);
      }
    });
  }
}
