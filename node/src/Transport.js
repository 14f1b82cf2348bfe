import { randomUUID } from 'node:crypto';

import { Consumer } from './Consumer.js';
import { EnhancedEventEmitter } from './EnhancedEventEmitter.js';
import { InvalidStateError } from './errors.js';
import { Logger } from './Logger.js';
import { closeThroughParent, closedWithParent } from './closing.js';
import { Producer } from './Producer.js';
import { checkAppData, isPlainObject } from './appData.js';

const logger = new Logger('Transport');

/**
 * Base class of the transports of a router (mediasoup v3's Transport): WebRtcTransport,
 * PlainTransport, PipeTransport and DirectTransport.
 *
 * Events: "routerclose" when its router closed, "listenserverclose" when its WebRtcServer closed.
 * Observer events: "close", "newproducer" (Producer), "newconsumer" (Consumer).
 * Internal events: "@close" (closed by close(), so its router forgets it), "@listenserverclose"
 * (closed because its WebRtcServer closed), "@closed" (closed for any reason).
 *
 * It owns the producers and consumers created on it: however it closes, they close with it and
 * emit "transportclose".
 */
export class Transport extends EnhancedEventEmitter {
  #internal;
  #channel;
  #closed = false;
  #appData;
  #observer = new EnhancedEventEmitter();
  #producers = new Map();
  #consumers = new Map();

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

  /** Observer events: "close", "newproducer", "newconsumer" (and the subclass's own). */
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

    await closeThroughParent(this, this.#observer, this.#channel, 'router.closeTransport',
      this.#internal.routerId, { transportId: this.id });
  }

  /** @internal Called by the router when it closes (or its worker closes). */
  routerClosed() {
    if (this.#closed) return;
    logger.debug(`routerClosed() [transportId:${this.id}]`);
    this.#markClosed();
    closedWithParent(this, this.#observer, 'routerclose');
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

  /**
   * Receives media the endpoint sends with `rtpParameters` (as mediasoup-client built them).
   * Resolves with the Producer; the worker's refusals reject (e.g. UnsupportedError for a codec
   * the router does not have).
   */
  async produce({
    id,
    kind,
    rtpParameters,
    paused = false,
    keyFrameRequestDelay = 0,
    appData,
  } = {}) {
    this.assertOpen('produce()');
    if (id !== undefined && (typeof id !== 'string' || id.length === 0)) {
      throw new TypeError('if given, id must be a non-empty string');
    }
    if (kind !== 'audio' && kind !== 'video') throw new TypeError(`invalid kind "${kind}"`);
    if (!isPlainObject(rtpParameters)) throw new TypeError('missing rtpParameters (an object)');
    if (typeof paused !== 'boolean') throw new TypeError('if given, paused must be a boolean');
    if (!Number.isInteger(keyFrameRequestDelay) || keyFrameRequestDelay < 0) {
      throw new TypeError('if given, keyFrameRequestDelay must be a non-negative integer');
    }
    checkAppData(appData);

    const producerId = id ?? randomUUID();
    const params = structuredClone(rtpParameters);
    const response = await this.#channel.request('transport.produce', this.id, {
      producerId,
      kind,
      rtpParameters: params,
      paused,
      keyFrameRequestDelay,
    });

    const producer = new Producer({
      internal: { transportId: this.id, producerId },
      data: { kind, rtpParameters: params, type: response?.type ?? 'simple', direct: this.direct },
      channel: this.#channel,
      appData: appData ?? {},
      paused,
    });
    if (this.#closed) {
      producer.transportClosed();
      throw new InvalidStateError('Transport closed while producing');
    }
    this.#producers.set(producerId, producer);
    producer.on('@closed', () => this.#producers.delete(producerId));
    this.#observer.safeEmit('newproducer', producer);
    return producer;
  }

  /**
   * Sends a producer's media to the endpoint whose `rtpCapabilities` are given. The consumer's
   * rtpParameters (the worker's answer) go unchanged to the endpoint's client library.
   * Capabilities that cannot consume reject with UnsupportedError, an unknown producer with
   * Error (the worker's answers).
   */
  async consume({
    producerId,
    rtpCapabilities,
    paused = false,
    mid,
    preferredLayers,
    enableRtx,
    ignoreDtx = false,
    appData,
  } = {}) {
    this.assertOpen('consume()');
    if (typeof producerId !== 'string' || producerId.length === 0) {
      throw new TypeError('missing producerId');
    }
    if (!isPlainObject(rtpCapabilities)) throw new TypeError('missing rtpCapabilities (an object)');
    if (typeof paused !== 'boolean') throw new TypeError('if given, paused must be a boolean');
    if (mid !== undefined && (typeof mid !== 'string' || mid.length === 0)) {
      throw new TypeError('if given, mid must be a non-empty string');
    }
    if (preferredLayers !== undefined && !isPlainObject(preferredLayers)) {
      throw new TypeError('if given, preferredLayers must be an object');
    }
    if (enableRtx !== undefined && typeof enableRtx !== 'boolean') {
      throw new TypeError('if given, enableRtx must be a boolean');
    }
    if (typeof ignoreDtx !== 'boolean') {
      throw new TypeError('if given, ignoreDtx must be a boolean');
    }
    checkAppData(appData);

    const options = { rtpCapabilities, paused, ignoreDtx };
    if (mid !== undefined) options.mid = mid;
    if (preferredLayers !== undefined) options.preferredLayers = preferredLayers;
    if (enableRtx !== undefined) options.enableRtx = enableRtx;
    return this.consumeWith(producerId, options, appData);
  }

  /**
   * @internal Sends transport.consume with `options` (checked by the caller) and keeps the new
   * consumer.
   */
  async consumeWith(producerId, options, appData) {
    const consumerId = randomUUID();
    const response = await this.#channel.request('transport.consume', this.id, {
      consumerId,
      producerId,
      ...options,
    });

    const consumer = new Consumer({
      internal: { transportId: this.id, consumerId, producerId },
      data: response,
      channel: this.#channel,
      appData: appData ?? {},
    });
    if (this.#closed) {
      consumer.transportClosed();
      throw new InvalidStateError('Transport closed while consuming');
    }
    this.#consumers.set(consumerId, consumer);
    consumer.on('@closed', () => this.#consumers.delete(consumerId));
    this.#observer.safeEmit('newconsumer', consumer);
    return consumer;
  }

  /** @internal The open producer with this id, if it is on this transport. */
  producerById(producerId) {
    return this.#producers.get(producerId);
  }

  /** @internal Whether its producers take RTP through producer.send() (DirectTransport). */
  get direct() {
    return false;
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

    // Its producers and consumers close with it (the worker closes them with the transport).
    const producers = [...this.#producers.values()];
    const consumers = [...this.#consumers.values()];
    this.#producers.clear();
    this.#consumers.clear();
    for (const producer of producers) producer.transportClosed();
    for (const consumer of consumers) consumer.transportClosed();
  }
}
