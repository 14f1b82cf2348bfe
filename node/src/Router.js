import { EnhancedEventEmitter } from './EnhancedEventEmitter.js';
import { InvalidStateError } from './errors.js';
import { Logger } from './Logger.js';

const logger = new Logger('Router');

/**
 * A router in a worker. Create it with worker.createRouter().
 *
 * Events: "workerclose" when its worker closed (or died). Observer events: "close".
 * Internal event: "@close" when it closes itself, so its worker forgets it.
 *
 * Later work adds the router's children (transports, RTP observers) here: each kept in a map by
 * id, created with a `router.create*` request carrying a controller-chosen UUID, subscribed to
 * its own notifications with `channel.on(id, (event, data) => ...)`, and told `routerClosed()`
 * when this router closes.
 */
export class Router extends EnhancedEventEmitter {
  #internal;
  #data;
  #channel;
  #closed = false;
  #appData;
  #observer = new EnhancedEventEmitter();

  /** @internal Use worker.createRouter(). */
  constructor({ internal, data, channel, appData }) {
    super();
    this.#internal = internal;
    this.#data = data;
    this.#channel = channel;
    this.#appData = appData ?? {};
  }

  /** The router id (a UUID chosen by the controller). */
  get id() {
    return this.#internal.routerId;
  }

  /** Whether the router is closed. */
  get closed() {
    return this.#closed;
  }

  /** The RTP capabilities the worker computed from the router's media codecs. */
  get rtpCapabilities() {
    return this.#data.rtpCapabilities;
  }

  get appData() {
    return this.#appData;
  }

  set appData(appData) {
    if (appData !== undefined && (appData === null || typeof appData !== 'object')) {
      throw new TypeError('if given, appData must be an object');
    }
    this.#appData = appData ?? {};
  }

  /** Observer events: "close". */
  get observer() {
    return this.#observer;
  }

  /**
   * Closes the router. Its state changes at once ("closed" is true, observer "close" fires);
   * the returned promise settles when the worker answered worker.closeRouter, so a later
   * worker.dump() no longer lists it. Idempotent.
   */
  async close() {
    if (this.#closed) return;
    logger.debug(`close() [routerId:${this.id}]`);
    this.#closed = true;

    const request = this.#channel
      .request('worker.closeRouter', '', { routerId: this.id })
      .catch((error) => {
        logger.debug(`worker.closeRouter failed [routerId:${this.id}]: ${error.message}`);
      });

    this.safeEmit('@close');
    this.#observer.safeEmit('close');
    await request;
  }

  /** @internal Called by the worker when it closes or dies. */
  workerClosed() {
    if (this.#closed) return;
    logger.debug(`workerClosed() [routerId:${this.id}]`);
    this.#closed = true;
    this.safeEmit('workerclose');
    this.#observer.safeEmit('close');
  }

  /** The router's dump. */
  async dump() {
    this.#assertOpen('dump()');
    return this.#channel.request('router.dump', this.id);
  }

  #assertOpen(what) {
    if (this.#closed) throw new InvalidStateError(`Router closed, cannot ${what}`);
  }
}
