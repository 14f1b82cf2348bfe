import { EnhancedEventEmitter } from './EnhancedEventEmitter.js';
import { InvalidStateError } from './errors.js';
import { Logger } from './Logger.js';
import { checkAppData } from './appData.js';

const logger = new Logger('Transport');

/**
 * Base class of the transports of a router (mediasoup v3's Transport).
 *
 * Events: "routerclose" when its router closed, "listenserverclose" when its WebRtcServer closed.
 * Observer events: "close".
 * Internal events: "@close" (closed by close(), so its router forgets it), "@listenserverclose"
 * (closed because its WebRtcServer closed), "@closed" (closed for any reason).
 */
export class Transport extends EnhancedEventEmitter {
  #internal;
  #channel;
  #closed = false;
  #appData;
  #observer = new EnhancedEventEmitter();

  /** @internal */
  constructor({ internal, channel, appData }) {
    super();
    this.#internal = internal;
    this.#channel = channel;
    this.#appData = appData ?? {};

    this.#channel.on(this.id, (event, data) => {
      if (this.#closed) return;
      this.handleNotification(event, data);
    });
  }

  /** The transport id (a UUID chosen by the controller). */
  get id() {
    return this.#internal.transportId;
  }

  /** Whether the transport is closed. */
  get closed() {
    return this.#closed;
  }

  get appData() {
    return this.#appData;
  }

  set appData(appData) {
    this.#appData = checkAppData(appData);
  }

  /** Observer events: "close" (and the subclass's own). */
  get observer() {
    return this.#observer;
  }

  /** @internal */
  get channel() {
    return this.#channel;
  }

  /** @internal */
  get internal() {
    return this.#internal;
  }

  /**
   * Closes the transport. Its state changes at once; the promise settles once the worker answered
   * router.closeTransport. Idempotent.
   */
  async close() {
    if (this.#closed) return;
    logger.debug(`close() [transportId:${this.id}]`);
    this.#markClosed();

    const request = this.#channel
      .request('router.closeTransport', this.#internal.routerId, { transportId: this.id })
      .catch((error) => {
        logger.debug(`router.closeTransport failed [transportId:${this.id}]: ${error.message}`);
      });

    this.safeEmit('@close');
    this.safeEmit('@closed');
    this.#observer.safeEmit('close');
    await request;
  }

  /** @internal Called by the router when it closes (or its worker closes). */
  routerClosed() {
    if (this.#closed) return;
    logger.debug(`routerClosed() [transportId:${this.id}]`);
    this.#markClosed();
    this.safeEmit('@closed');
    this.safeEmit('routerclose');
    this.#observer.safeEmit('close');
  }

  /** @internal Called by the WebRtcServer when it closes (the worker closed the transport). */
  listenServerClosed() {
    if (this.#closed) return;
    logger.debug(`listenServerClosed() [transportId:${this.id}]`);
    this.#markClosed();
    this.safeEmit('@listenserverclose');
    this.safeEmit('@closed');
    this.safeEmit('listenserverclose');
    this.#observer.safeEmit('close');
  }

  /** The transport's dump. */
  async dump() {
    this.assertOpen('dump()');
    return this.#channel.request('transport.dump', this.id);
  }

  /** The transport's stats (the worker's error is passed through, e.g. not implemented). */
  async getStats() {
    this.assertOpen('getStats()');
    return this.#channel.request('transport.getStats', this.id);
  }

  /** @internal Overridden by subclasses: a notification for this transport. */
  handleNotification(event, data) {
    logger.debug(`ignoring notification "${event}" [transportId:${this.id}]`);
  }

  /** @internal Overridden by subclasses: reset state when closed. */
  onClosed() {}

  /** @internal */
  assertOpen(what) {
    if (this.#closed) throw new InvalidStateError(`Transport closed, cannot ${what}`);
  }

  #markClosed() {
    this.#closed = true;
    this.#channel.removeAllListeners(this.id);
    this.onClosed();
  }
}
