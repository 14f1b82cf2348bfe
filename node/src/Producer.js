import { EnhancedEventEmitter } from './EnhancedEventEmitter.js';
import { InvalidStateError } from './errors.js';
import { Logger } from './Logger.js';
import { closeThroughParent, closedWithParent } from './closing.js';
import { checkAppData } from './appData.js';

const logger = new Logger('Producer');

/** Throws TypeError unless `types` is an array of strings (the worker checks the names). */
export function checkTraceTypes(types) {
  if (!Array.isArray(types) || types.some((type) => typeof type !== 'string')) {
    throw new TypeError('types must be an array of strings');
  }
  return types;
}

/**
 * Media an endpoint sends into the router through a transport (mediasoup v3's Producer).
 * Create it with transport.produce(). On a DirectTransport, send() injects its RTP packets.
 *
 * Events: "transportclose" when its transport closed (or its router or worker), "score"
 * (score list), "videoorientationchange" (orientation), "trace" (trace event).
 * Observer events: "close", "pause", "resume", "score", "videoorientationchange", "trace".
 * Internal events: "@close" (closed by close(), so its transport forgets it), "@closed" (closed
 * for any reason).
 */
export class Producer extends EnhancedEventEmitter {
  #internal;
  #data;
  #channel;
  #closed = false;
  #appData;
  #paused;
  #score = [];
  #observer = new EnhancedEventEmitter();

  /** @internal Use transport.produce(). */
  constructor({ internal, data, channel, appData, paused }) {
    super();
    this.#internal = internal;
    this.#data = data;
    this.#channel = channel;
    this.#appData = appData ?? {};
    this.#paused = paused;

    this.#channel.on(this.id, (event, eventData) => {
      if (this.#closed) return;
      this.#handleNotification(event, eventData);
    });
  }

  /** The producer id (a UUID unless one was given to produce()). */
  get id() {
    return this.#internal.producerId;
  }

  /** Whether the producer is closed. */
  get closed() {
    return this.#closed;
  }

  /** "audio" or "video". */
  get kind() {
    return this.#data.kind;
  }

  /** The RTP parameters the endpoint sent (a copy of those given to produce()). */
  get rtpParameters() {
    return this.#data.rtpParameters;
  }

  /** "simple", "simulcast" or "svc" (the worker's answer). */
  get type() {
    return this.#data.type;
  }

  get paused() {
    return this.#paused;
  }

  /** The last score list the worker sent: [{ encodingIdx, ssrc, rid, score }]. */
  get score() {
    return this.#score;
  }

  get appData() {
    return this.#appData;
  }

  set appData(appData) {
    this.#appData = checkAppData(appData);
  }

  /** Observer events: "close", "pause", "resume", "score", "videoorientationchange", "trace". */
  get observer() {
    return this.#observer;
  }

  /**
   * Closes the producer. Its state changes at once; the promise settles once the worker answered
   * transport.closeProducer. Idempotent.
   */
  async close() {
    if (this.#closed) return;
    logger.debug(`close() [producerId:${this.id}]`);
    this.#markClosed();

    await closeThroughParent(this, this.#observer, this.#channel, 'transport.closeProducer',
      this.#internal.transportId, { producerId: this.id });
  }

  /** @internal Called by the transport when it closes (or its router or worker closes). */
  transportClosed() {
    if (this.#closed) return;
    logger.debug(`transportClosed() [producerId:${this.id}]`);
    this.#markClosed();
    closedWithParent(this, this.#observer, 'transportclose');
  }

  /** The producer's dump. */
  async dump() {
    this.#assertOpen('dump()');
    return this.#channel.request('producer.dump', this.id);
  }

  /** The producer's stats: an inbound-rtp entry per stream. */
  async getStats() {
    this.#assertOpen('getStats()');
    return this.#channel.request('producer.getStats', this.id);
  }

  /** Pauses the producer; observer "pause" if it was not paused. */
  async pause() {
    this.#assertOpen('pause()');
    const wasPaused = this.#paused;
    await this.#channel.request('producer.pause', this.id);
    this.#paused = true;
    if (!wasPaused) this.#observer.safeEmit('pause');
  }

  /** Resumes the producer; observer "resume" if it was paused. */
  async resume() {
    this.#assertOpen('resume()');
    const wasPaused = this.#paused;
    await this.#channel.request('producer.resume', this.id);
    this.#paused = false;
    if (wasPaused) this.#observer.safeEmit('resume');
  }

  /**
   * Injects one RTP packet (a producer.send notification: no answer; the worker drops and counts
   * a packet it cannot parse). Only for producers on a DirectTransport: others throw
   * InvalidStateError, as a closed producer does.
   */
  send(rtpPacket) {
    if (!(rtpPacket instanceof Uint8Array)) throw new TypeError('rtpPacket must be a Buffer');
    this.#assertOpen('send()');
    if (!this.#data.direct) {
      throw new InvalidStateError('producer.send() needs a Producer on a DirectTransport');
    }
    this.#channel.notify('producer.send', this.id, rtpPacket);
  }

  /** Enables "trace" events of the given types (rtp, keyframe, nack, pli, fir, sr). */
  async enableTraceEvent(types = []) {
    this.#assertOpen('enableTraceEvent()');
    checkTraceTypes(types);
    await this.#channel.request('producer.enableTraceEvent', this.id, { types });
  }

  #handleNotification(event, data) {
    switch (event) {
      case 'score': {
        this.#score = Array.isArray(data) ? data : [];
        this.safeEmit('score', this.#score);
        this.#observer.safeEmit('score', this.#score);
        break;
      }
      case 'videoorientationchange':
      case 'trace': {
        this.safeEmit(event, data);
        this.#observer.safeEmit(event, data);
        break;
      }
      default:
        logger.debug(`ignoring notification "${event}" [producerId:${this.id}]`);
    }
  }

  #assertOpen(what) {
    if (this.#closed) throw new InvalidStateError(`Producer closed, cannot ${what}`);
  }

  #markClosed() {
    this.#closed = true;
    this.#channel.removeAllListeners(this.id);
  }
}
