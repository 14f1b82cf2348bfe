import { EnhancedEventEmitter } from './EnhancedEventEmitter.js';
import { InvalidStateError } from './errors.js';
import { Logger } from './Logger.js';
import { closeThroughParent, closedWithParent } from './closing.js';
import { checkTraceTypes } from './Producer.js';
import { checkAppData, isPlainObject } from './appData.js';

const logger = new Logger('Consumer');

/**
 * A producer's media sent to an endpoint through a transport (mediasoup v3's Consumer).
 * Create it with transport.consume(); its state starts from the worker's answer.
 *
 * Events: "transportclose" when its transport closed (or its router or worker),
 * "producerclose" when its producer closed (the worker closed the consumer already),
 * "producerpause", "producerresume", "score" (score), "layerschange" (layers or null), "trace"
 * (trace event), "rtp" (Buffer, direct transports).
 * Observer events: "close", "pause", "resume", "score", "layerschange", "trace".
 * Internal events: "@close" (closed by close(), so its transport forgets it), "@closed" (closed
 * for any reason).
 */
export class Consumer extends EnhancedEventEmitter {
  #internal;
  #data;
  #channel;
  #closed = false;
  #appData;
  #paused;
  #producerPaused;
  #priority = 1;
  #score;
  #preferredLayers;
  #currentLayers;
  #observer = new EnhancedEventEmitter();

  /** @internal Use transport.consume(). `data` is the worker's transport.consume answer. */
  constructor({ internal, data, channel, appData }) {
    super();
    const d = isPlainObject(data) ? data : {};
    this.#internal = internal;
    this.#data = { kind: d.kind, rtpParameters: d.rtpParameters, type: d.type ?? 'simple' };
    this.#channel = channel;
    this.#appData = appData ?? {};
    this.#paused = Boolean(d.paused);
    this.#producerPaused = Boolean(d.producerPaused);
    this.#score = isPlainObject(d.score)
      ? d.score
      : { score: 10, producerScore: 10, producerScores: [] };
    this.#preferredLayers = isPlainObject(d.preferredLayers) ? d.preferredLayers : undefined;

    this.#channel.on(this.id, (event, eventData) => {
      if (this.#closed) return;
      this.#handleNotification(event, eventData);
    });
  }

  /** The consumer id (a UUID chosen by the controller). */
  get id() {
    return this.#internal.consumerId;
  }

  get producerId() {
    return this.#internal.producerId;
  }

  /** Whether the consumer is closed. */
  get closed() {
    return this.#closed;
  }

  /** "audio" or "video". */
  get kind() {
    return this.#data.kind;
  }

  /** The consumer's RTP parameters as the worker computed them, for the endpoint. */
  get rtpParameters() {
    return this.#data.rtpParameters;
  }

  /** "simple", "simulcast", "svc" or "pipe". */
  get type() {
    return this.#data.type;
  }

  /** Paused by pause() (the producer's own pause is producerPaused). */
  get paused() {
    return this.#paused;
  }

  get producerPaused() {
    return this.#producerPaused;
  }

  get priority() {
    return this.#priority;
  }

  /** { score, producerScore, producerScores }, as the worker last sent it. */
  get score() {
    return this.#score;
  }

  /** { spatialLayer, temporalLayer }; undefined for simple consumers. */
  get preferredLayers() {
    return this.#preferredLayers;
  }

  /** The layers being sent, from "layerschange"; undefined for simple consumers. */
  get currentLayers() {
    return this.#currentLayers;
  }

  get appData() {
    return this.#appData;
  }

  set appData(appData) {
    this.#appData = checkAppData(appData);
  }

  /** Observer events: "close", "pause", "resume", "score", "layerschange", "trace". */
  get observer() {
    return this.#observer;
  }

  /**
   * Closes the consumer. Its state changes at once; the promise settles once the worker answered
   * transport.closeConsumer. Idempotent.
   */
  async close() {
    if (this.#closed) return;
    logger.debug(`close() [consumerId:${this.id}]`);
    this.#markClosed();

    await closeThroughParent(this, this.#observer, this.#channel, 'transport.closeConsumer',
      this.#internal.transportId, { consumerId: this.id });
  }

  /** @internal Called by the transport when it closes (or its router or worker closes). */
  transportClosed() {
    if (this.#closed) return;
    logger.debug(`transportClosed() [consumerId:${this.id}]`);
    this.#markClosed();
    closedWithParent(this, this.#observer, 'transportclose');
  }

  /** The consumer's dump. */
  async dump() {
    this.#assertOpen('dump()');
    return this.#channel.request('consumer.dump', this.id);
  }

  /** The consumer's stats: its outbound-rtp entry, then its producer's inbound-rtp. */
  async getStats() {
    this.#assertOpen('getStats()');
    return this.#channel.request('consumer.getStats', this.id);
  }

  /** Pauses the consumer; observer "pause" unless it or its producer was paused already. */
  async pause() {
    this.#assertOpen('pause()');
    const wasPaused = this.#paused;
    await this.#channel.request('consumer.pause', this.id);
    this.#paused = true;
    if (!wasPaused && !this.#producerPaused) this.#observer.safeEmit('pause');
  }

  /** Resumes the consumer; observer "resume" if it was paused and its producer is not. */
  async resume() {
    this.#assertOpen('resume()');
    const wasPaused = this.#paused;
    await this.#channel.request('consumer.resume', this.id);
    this.#paused = false;
    if (wasPaused && !this.#producerPaused) this.#observer.safeEmit('resume');
  }

  /**
   * Sets the preferred layers; resolves with (and stores) the worker's effective layers,
   * undefined for simple consumers.
   */
  async setPreferredLayers({ spatialLayer, temporalLayer } = {}) {
    this.#assertOpen('setPreferredLayers()');
    if (!Number.isInteger(spatialLayer)) throw new TypeError('missing spatialLayer');
    if (temporalLayer !== undefined && !Number.isInteger(temporalLayer)) {
      throw new TypeError('if given, temporalLayer must be an integer');
    }
    const data = { spatialLayer };
    if (temporalLayer !== undefined) data.temporalLayer = temporalLayer;
    const response = await this.#channel.request('consumer.setPreferredLayers', this.id, data);
    this.#preferredLayers = isPlainObject(response) ? response : undefined;
    return this.#preferredLayers;
  }

  /** Sets the priority (an integer >= 1) and stores the one the worker answers. */
  async setPriority(priority) {
    this.#assertOpen('setPriority()');
    if (!Number.isInteger(priority) || priority < 1) {
      throw new TypeError('priority must be a positive integer');
    }
    const response = await this.#channel.request('consumer.setPriority', this.id, { priority });
    this.#priority = Number.isInteger(response?.priority) ? response.priority : priority;
  }

  /** Back to the default priority, 1. */
  async unsetPriority() {
    await this.setPriority(1);
  }

  /** Asks the producer's endpoint for a key frame. */
  async requestKeyFrame() {
    this.#assertOpen('requestKeyFrame()');
    await this.#channel.request('consumer.requestKeyFrame', this.id);
  }

  /** Enables "trace" events of the given types (rtp, keyframe, nack, pli, fir). */
  async enableTraceEvent(types = []) {
    this.#assertOpen('enableTraceEvent()');
    checkTraceTypes(types);
    await this.#channel.request('consumer.enableTraceEvent', this.id, { types });
  }

  #handleNotification(event, data) {
    switch (event) {
      case 'producerclose': {
        // The worker closed the consumer already: nothing is sent back.
        this.#markClosed();
        closedWithParent(this, this.#observer, 'producerclose');
        break;
      }
      case 'producerpause': {
        if (this.#producerPaused) break;
        this.#producerPaused = true;
        this.safeEmit('producerpause');
        if (!this.#paused) this.#observer.safeEmit('pause');
        break;
      }
      case 'producerresume': {
        if (!this.#producerPaused) break;
        this.#producerPaused = false;
        this.safeEmit('producerresume');
        if (!this.#paused) this.#observer.safeEmit('resume');
        break;
      }
      case 'score': {
        this.#score = isPlainObject(data) ? data : {};
        this.safeEmit('score', this.#score);
        this.#observer.safeEmit('score', this.#score);
        break;
      }
      case 'layerschange': {
        this.#currentLayers = isPlainObject(data) ? data : undefined;
        this.safeEmit('layerschange', this.#currentLayers);
        this.#observer.safeEmit('layerschange', this.#currentLayers);
        break;
      }
      case 'trace': {
        this.safeEmit('trace', data);
        this.#observer.safeEmit('trace', data);
        break;
      }
      case 'rtp': {
        // msgpack bin arrives as a Uint8Array view of the channel's read buffer: a copy, as a
        // Buffer, is what listeners get.
        if (data instanceof Uint8Array) this.safeEmit('rtp', Buffer.from(data));
        break;
      }
      default:
        logger.debug(`ignoring notification "${event}" [consumerId:${this.id}]`);
    }
  }

  #assertOpen(what) {
    if (this.#closed) throw new InvalidStateError(`Consumer closed, cannot ${what}`);
  }

  #markClosed() {
    this.#closed = true;
    this.#channel.removeAllListeners(this.id);
  }
}
