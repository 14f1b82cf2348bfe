import { randomUUID } from 'node:crypto';

import { DirectTransport } from './DirectTransport.js';
import { EnhancedEventEmitter } from './EnhancedEventEmitter.js';
import { InvalidStateError, RequestTimeoutError } from './errors.js';
import { Logger } from './Logger.js';
import { PipeTransport } from './PipeTransport.js';
import { PlainTransport } from './PlainTransport.js';
import { WebRtcServer } from './WebRtcServer.js';
import { WebRtcTransport } from './WebRtcTransport.js';
import { checkAppData, isPlainObject } from './appData.js';

const logger = new Logger('Router');

/** Where pipeToRouter()'s transports listen unless told otherwise: both routers in one host. */
export const DEFAULT_PIPE_LISTEN_INFO = Object.freeze({ protocol: 'udp', ip: '127.0.0.1' });

function checkBoolean(value, name) {
  if (typeof value !== 'boolean') throw new TypeError(`if given, ${name} must be a boolean`);
  return value;
}

function checkListenInfo(listenInfo, name = 'listenInfo') {
  if (!isPlainObject(listenInfo)) throw new TypeError(`missing ${name} (an object)`);
  return listenInfo;
}

/** The address the other side reaches a pipe transport at: its announced address, else its IP. */
function tupleAddress(transport) {
  const address = transport.tuple?.localAddress ?? transport.tuple?.localIp;
  if (typeof address !== 'string' || address.length === 0) {
    throw new Error(`PipeTransport ${transport.id} has no local address in its tuple`);
  }
  return address;
}

/**
 * A router in a worker. Create it with worker.createRouter().
 *
 * Events: "workerclose" when its worker closed (or died). Observer events: "close",
 * "newtransport" (Transport). Its transports (WebRtc, Plain, Pipe, Direct) close with it
 * ("routerclose"), and their producers and consumers with them ("transportclose").
 * Internal event: "@close" when it closes itself, so its worker forgets it.
 *
 * pipeToRouter() makes one of its producers available in a router of another worker: one
 * connected PipeTransport pair per pair of routers, created on first use and forgotten when
 * either side closes.
 */
export class Router extends EnhancedEventEmitter {
  #internal;
  #data;
  #channel;
  #closed = false;
  #appData;
  #observer = new EnhancedEventEmitter();
  #transports = new Map();
  // Promises of { [routerId]: PipeTransport } for both routers, by the other router's id.
  #pipePairs = new Map();

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

    this.#keepTransport(transport);
    if (webRtcServer !== undefined) webRtcServer.handleWebRtcTransport(transport);

    this.#observer.safeEmit('newtransport', transport);
    return transport;
  }

  /**
   * Creates a PlainTransport: plain RTP (optionally SRTP) on one UDP socket, or two when rtcpMux
   * is false (the RTCP one on rtcpListenInfo, by default listenInfo with another port). With
   * comedia the remote address is learned from the first packet received.
   */
  async createPlainTransport({
    listenInfo,
    rtcpListenInfo,
    rtcpMux = true,
    comedia = false,
    enableSrtp = false,
    srtpCryptoSuite,
    enableSctp = false,
    appData,
  } = {}) {
    this.#assertOpen('createPlainTransport()');
    const data = {
      listenInfo: checkListenInfo(listenInfo),
      rtcpMux: checkBoolean(rtcpMux, 'rtcpMux'),
      comedia: checkBoolean(comedia, 'comedia'),
      enableSrtp: checkBoolean(enableSrtp, 'enableSrtp'),
      enableSctp: checkBoolean(enableSctp, 'enableSctp'),
    };
    if (rtcpListenInfo !== undefined) {
      data.rtcpListenInfo = checkListenInfo(rtcpListenInfo, 'rtcpListenInfo');
    }
    if (srtpCryptoSuite !== undefined) {
      if (typeof srtpCryptoSuite !== 'string' || srtpCryptoSuite.length === 0) {
        throw new TypeError('if given, srtpCryptoSuite must be a non-empty string');
      }
      data.srtpCryptoSuite = srtpCryptoSuite;
    }
    checkAppData(appData);
    return this.#createTransport('router.createPlainTransport', PlainTransport, data, appData);
  }

  /**
   * Creates a PipeTransport towards another router's (see pipeToRouter(), which makes and
   * connects such pairs). With enableRtx its pipe consumers carry RTX; with enableSrtp the pipe is
   * SRTP, each side connecting with the other's srtpParameters.
   */
  async createPipeTransport({
    listenInfo,
    enableRtx = false,
    enableSrtp = false,
    enableSctp = false,
    appData,
  } = {}) {
    this.#assertOpen('createPipeTransport()');
    const data = {
      listenInfo: checkListenInfo(listenInfo),
      enableRtx: checkBoolean(enableRtx, 'enableRtx'),
      enableSrtp: checkBoolean(enableSrtp, 'enableSrtp'),
      enableSctp: checkBoolean(enableSctp, 'enableSctp'),
    };
    checkAppData(appData);
    return this.#createTransport('router.createPipeTransport', PipeTransport, data, appData);
  }

  /**
   * Creates a DirectTransport: media through the channel (producer.send(), the consumers' "rtp"
   * event, sendRtcp() and the "rtcp" event), no network.
   */
  async createDirectTransport({ maxMessageSize = 262144, appData } = {}) {
    this.#assertOpen('createDirectTransport()');
    if (!Number.isInteger(maxMessageSize) || maxMessageSize <= 0) {
      throw new TypeError('if given, maxMessageSize must be a positive integer');
    }
    checkAppData(appData);
    return this.#createTransport(
      'router.createDirectTransport',
      DirectTransport,
      { maxMessageSize },
      appData
    );
  }

  /**
   * Makes the producer `producerId` of this router available in `router`, where consumers can
   * then consume it by `pipeProducer.id`. Resolves with { pipeConsumer, pipeProducer }.
   * `keepId`: the pipe producer has the producer's id (the default when `router` is on another
   * worker) or a new one (the default, and the only choice, when both routers are on the same
   * worker, whose ids are unique across its routers; mediasoup's keepId).
   *
   * The first call for a pair of routers creates a PipeTransport on each with listenInfo
   * (default DEFAULT_PIPE_LISTEN_INFO; across hosts, give the address the other side can reach,
   * e.g. an announcedAddress), enableRtx and enableSrtp, and connects each to the other's tuple
   * (and SRTP parameters); later calls, in either direction, reuse that pair and ignore these
   * three options. When either transport closes, the other is closed and the pair forgotten.
   *
   * The producer is consumed on this router's pipe transport and produced, with the same id, on
   * the other's; then the producer's pause and resume reach the pipe producer, its close (or
   * this side's) closes the pipe producer, and the pipe producer's close closes the pipe
   * consumer. Rejects with TypeError for bad options or a producer this router does not have,
   * with InvalidStateError for a closed router; the worker's refusals pass through.
   */
  async pipeToRouter({
    producerId,
    router,
    listenInfo = DEFAULT_PIPE_LISTEN_INFO,
    enableRtx = false,
    enableSrtp = false,
    keepId = undefined,
  } = {}) {
    this.#assertOpen('pipeToRouter()');
    if (typeof producerId !== 'string' || producerId.length === 0) {
      throw new TypeError('missing producerId');
    }
    if (!(router instanceof Router)) throw new TypeError('router must be a Router');
    if (router === this) throw new TypeError('cannot pipe a producer to its own Router');
    const sameWorker = router.#channel === this.#channel;
    const keep = keepId === undefined ? !sameWorker : keepId;
    checkBoolean(keep, 'keepId');
    if (keep && sameWorker) {
      throw new TypeError('keepId: true needs routers on different workers (ids are unique within a worker)');
    }
    checkListenInfo(listenInfo);
    checkBoolean(enableRtx, 'enableRtx');
    checkBoolean(enableSrtp, 'enableSrtp');
    if (router.closed) throw new InvalidStateError('destination Router closed');
    const producer = this.#producerById(producerId);
    if (producer === undefined) {
      throw new TypeError(`Producer ${producerId} not found in Router ${this.id}`);
    }

    const [local, remote] = await this.#pipePair(router, { listenInfo, enableRtx, enableSrtp });
    let pipeConsumer;
    let pipeProducer;
    try {
      pipeConsumer = await local.consume({ producerId });
      pipeProducer = await remote.produce({
        id: keep ? producerId : undefined,
        kind: pipeConsumer.kind,
        rtpParameters: pipeConsumer.rtpParameters,
        paused: pipeConsumer.producerPaused,
        appData: producer.appData,
      });
      if (pipeConsumer.closed || producer.closed) {
        throw new InvalidStateError('the Producer closed while it was being piped');
      }
      // The producer may have been paused or resumed while the pipe producer was made.
      if (pipeConsumer.producerPaused && !pipeProducer.paused) await pipeProducer.pause();
      else if (!pipeConsumer.producerPaused && pipeProducer.paused) await pipeProducer.resume();
    } catch (error) {
      await pipeConsumer?.close();
      await pipeProducer?.close();
      throw error;
    }

    const follow = (paused) => {
      if (pipeProducer.closed) return;
      (paused ? pipeProducer.pause() : pipeProducer.resume()).catch((error) => {
        logger.warn(`pipe Producer ${pipeProducer.id}: pause/resume failed: ${error.message}`);
      });
    };
    pipeConsumer.on('producerpause', () => follow(true));
    pipeConsumer.on('producerresume', () => follow(false));
    // However the pipe consumer closes (producerclose, transportclose, close()), and back.
    pipeConsumer.observer.once('close', () => pipeProducer.close());
    pipeProducer.observer.once('close', () => pipeConsumer.close());

    return { pipeConsumer, pipeProducer };
  }

  #producerById(producerId) {
    for (const transport of this.#transports.values()) {
      const producer = transport.producerById(producerId);
      if (producer !== undefined) return producer;
    }
    return undefined;
  }

  /** [this router's, router's] connected pipe transports, created on first use. */
  async #pipePair(router, options) {
    let pending = this.#pipePairs.get(router.id);
    if (pending === undefined) {
      const forget = () => {
        if (this.#pipePairs.get(router.id) === pending) this.#pipePairs.delete(router.id);
        if (router.#pipePairs.get(this.id) === pending) router.#pipePairs.delete(this.id);
      };
      pending = this.#createPipePair(router, options, forget);
      this.#pipePairs.set(router.id, pending);
      router.#pipePairs.set(this.id, pending);
      pending.catch(forget);
    }
    const pair = await pending;
    return [pair[this.id], pair[router.id]];
  }

  async #createPipePair(router, options, forget) {
    const local = await this.createPipeTransport(options);
    let remote;
    try {
      remote = await router.createPipeTransport(options);
      await local.connect({
        ip: tupleAddress(remote),
        port: remote.tuple?.localPort,
        srtpParameters: remote.srtpParameters,
      });
      await remote.connect({
        ip: tupleAddress(local),
        port: local.tuple?.localPort,
        srtpParameters: local.srtpParameters,
      });
    } catch (error) {
      await local.close();
      await remote?.close();
      throw error;
    }
    local.observer.once('close', () => {
      forget();
      remote.close();
    });
    remote.observer.once('close', () => {
      forget();
      local.close();
    });
    return { [this.id]: local, [router.id]: remote };
  }

  async #createTransport(method, TransportClass, options, appData) {
    const transportId = randomUUID();
    const response = await this.#channel.request(method, this.id, { transportId, ...options });
    const transport = new TransportClass({
      internal: { routerId: this.id, transportId },
      data: response,
      channel: this.#channel,
      appData: appData ?? {},
    });
    if (this.#closed) {
      transport.routerClosed();
      throw new InvalidStateError('Router closed while creating the transport');
    }
    this.#keepTransport(transport);
    this.#observer.safeEmit('newtransport', transport);
    return transport;
  }

  #keepTransport(transport) {
    this.#transports.set(transport.id, transport);
    transport.on('@closed', () => this.#transports.delete(transport.id));
  }

  #closeTransports() {
    for (const transport of [...this.#transports.values()]) transport.routerClosed();
    this.#transports.clear();
  }

  #assertOpen(what) {
    if (this.#closed) throw new InvalidStateError(`Router closed, cannot ${what}`);
  }
}
