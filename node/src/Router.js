import { randomUUID } from 'node:crypto';

import { EnhancedEventEmitter } from './EnhancedEventEmitter.js';
import { InvalidStateError, RequestTimeoutError } from './errors.js';
import { Logger } from './Logger.js';
import { WebRtcServer } from './WebRtcServer.js';
import { WebRtcTransport } from './WebRtcTransport.js';
import { checkAppData, isPlainObject } from './appData.js';

const logger = new Logger('Router');

/**
 * A router in a worker. Create it with worker.createRouter().
 *
 * Events: "workerclose" when its worker closed (or died). Observer events: "close",
 * "newtransport" (Transport). Its transports close with it ("routerclose"), and their producers
 * and consumers with them ("transportclose").
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
  #transports = new Map();

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
    this.#appData = checkAppData(appData);
  }

  /** Observer events: "close", "newtransport" (Transport). */
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

    this.#closeTransports();
    this.safeEmit('@close');
    this.#observer.safeEmit('close');
    await request;
  }

  /** @internal Called by the worker when it closes or dies. */
  workerClosed() {
    if (this.#closed) return;
    logger.debug(`workerClosed() [routerId:${this.id}]`);
    this.#closed = true;
    this.#closeTransports();
    this.safeEmit('workerclose');
    this.#observer.safeEmit('close');
  }

  /** The router's dump. */
  async dump() {
    this.#assertOpen('dump()');
    return this.#channel.request('router.dump', this.id);
  }

  /**
   * Whether an endpoint with `rtpCapabilities` can consume the producer (the worker does the
   * capability negotiation, so unlike mediasoup this returns a promise). As mediasoup, an unknown
   * producer or capabilities the worker refuses give false (logged); a closed router rejects with
   * InvalidStateError.
   */
  async canConsume({ producerId, rtpCapabilities } = {}) {
    this.#assertOpen('canConsume()');
    if (typeof producerId !== 'string' || producerId.length === 0) {
      throw new TypeError('missing producerId');
    }
    if (!isPlainObject(rtpCapabilities)) throw new TypeError('missing rtpCapabilities (an object)');
    let response;
    try {
      response = await this.#channel.request('router.canConsume', this.id, {
        producerId,
        rtpCapabilities,
      });
    } catch (error) {
      if (error instanceof InvalidStateError || error instanceof RequestTimeoutError) throw error;
      logger.error(`canConsume() failed [routerId:${this.id}]: ${error.message}`);
      return false;
    }
    if (typeof response !== 'boolean') {
      throw new Error(`worker answered router.canConsume with ${typeof response}, not a boolean`);
    }
    return response;
  }

  /**
   * Creates a WebRtcTransport, either on its own sockets (listenInfos) or on a WebRtcServer's
   * (webRtcServer): exactly one of the two.
   */
  async createWebRtcTransport({
    listenInfos,
    webRtcServer,
    enableUdp,
    enableTcp,
    preferUdp,
    preferTcp,
    iceConsentTimeout,
    initialAvailableOutgoingBitrate,
    appData,
  } = {}) {
    this.#assertOpen('createWebRtcTransport()');
    if ((listenInfos === undefined) === (webRtcServer === undefined)) {
      throw new TypeError('exactly one of listenInfos and webRtcServer must be given');
    }
    if (listenInfos !== undefined) {
      if (!Array.isArray(listenInfos) || listenInfos.length === 0) {
        throw new TypeError('listenInfos must be a non-empty array');
      }
      if (listenInfos.some((info) => info === null || typeof info !== 'object' || Array.isArray(info))) {
        throw new TypeError('each entry of listenInfos must be an object');
      }
    }
    if (webRtcServer !== undefined) {
      if (!(webRtcServer instanceof WebRtcServer)) {
        throw new TypeError('webRtcServer must be a WebRtcServer');
      }
      if (webRtcServer.closed) {
        throw new InvalidStateError('webRtcServer is closed');
      }
    }
    for (const [name, value] of Object.entries({ enableUdp, enableTcp, preferUdp, preferTcp })) {
      if (value !== undefined && typeof value !== 'boolean') {
        throw new TypeError(`if given, ${name} must be a boolean`);
      }
    }
    for (const [name, value] of Object.entries({ iceConsentTimeout, initialAvailableOutgoingBitrate })) {
      if (value !== undefined && (typeof value !== 'number' || !Number.isFinite(value) || value < 0)) {
        throw new TypeError(`if given, ${name} must be a non-negative number`);
      }
    }
    checkAppData(appData);

    const transportId = randomUUID();
    const data = { transportId };
    const options = {
      listenInfos,
      webRtcServerId: webRtcServer?.id,
      enableUdp,
      enableTcp,
      preferUdp,
      preferTcp,
      iceConsentTimeout,
      initialAvailableOutgoingBitrate,
    };
    for (const [key, value] of Object.entries(options)) {
      if (value !== undefined) data[key] = value;
    }

    const response = await this.#channel.request('router.createWebRtcTransport', this.id, data);

    const transport = new WebRtcTransport({
      internal: { routerId: this.id, transportId, webRtcServerId: webRtcServer?.id },
      data: response,
      channel: this.#channel,
      appData: appData ?? {},
    });

    if (this.#closed) {
      transport.routerClosed();
      throw new InvalidStateError('Router closed while creating the transport');
    }
    if (webRtcServer?.closed) {
      transport.listenServerClosed();
      throw new InvalidStateError('WebRtcServer closed while creating the transport');
    }

    this.#transports.set(transportId, transport);
    transport.on('@closed', () => this.#transports.delete(transportId));
    if (webRtcServer !== undefined) webRtcServer.handleWebRtcTransport(transport);

    this.#observer.safeEmit('newtransport', transport);
    return transport;
  }

  #closeTransports() {
    for (const transport of [...this.#transports.values()]) transport.routerClosed();
    this.#transports.clear();
  }

  #assertOpen(what) {
    if (this.#closed) throw new InvalidStateError(`Router closed, cannot ${what}`);
  }
}
