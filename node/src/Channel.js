/**
 * The channel to the worker process: frames of a 4-byte big-endian length followed by one msgpack
 * map (PROTOCOL.md section 2), requests with responses, and notifications in both directions.
 */

import { Decoder, Encoder } from '@msgpack/msgpack';

import { EnhancedEventEmitter } from './EnhancedEventEmitter.js';
import { InvalidStateError, RequestTimeoutError, errorFromWire } from './errors.js';
import { Logger } from './Logger.js';
import {
  ALL_METHODS,
  CONTROLLER_EVENTS,
  FRAME_HEADER_BYTES,
  MAX_FRAME_BYTES,
  MAX_REQUEST_ID,
} from './protocol.generated.js';

const logger = new Logger('Channel');
const workerLogger = new Logger('worker');

const KNOWN_METHODS = new Set(ALL_METHODS);
const KNOWN_CONTROLLER_EVENTS = new Set(CONTROLLER_EVENTS);

/** Base request timeout, plus REQUEST_TIMEOUT_PER_PENDING_MS per request already pending. */
export const REQUEST_TIMEOUT_BASE_MS = 15000;
export const REQUEST_TIMEOUT_PER_PENDING_MS = 100;

/** A frame whose header announced more than the limit; its payload is skipped, not buffered. */
export class OversizeFrame {
  constructor(length) {
    this.length = length;
  }
}

/**
 * Sans-IO frame decoder. push(chunk) returns, in order, the payload (a Buffer) of each frame the
 * chunk completes and an OversizeFrame for each frame announced larger than the limit.
 *
 * The chunk is read with a moving offset: whole frames inside it are returned as views of the
 * chunk (no copy); only the frame that the chunk leaves unfinished is copied, into a buffer of
 * exactly that frame's size, which later chunks fill. Oversize payloads are counted down and
 * dropped as they arrive, never buffered. Returned payloads stay valid after later pushes.
 */
export class FrameDecoder {
  #maxFrameBytes;
  // Header bytes of a frame whose 4-byte length was split across chunks.
  #header = Buffer.alloc(FRAME_HEADER_BYTES);
  #headerFill = 0;
  // Payload of the frame being completed across chunks.
  #frame = null;
  #frameFill = 0;
  // Bytes of an oversize frame still to drop.
  #skip = 0;

  constructor(maxFrameBytes = MAX_FRAME_BYTES) {
    this.#maxFrameBytes = maxFrameBytes;
  }

  /** Bytes held for a frame not yet complete. */
  get buffered() {
    return this.#headerFill + this.#frameFill;
  }

  /** Bytes of an oversize frame still to be skipped. */
  get skipping() {
    return this.#skip;
  }

  push(chunk) {
    const out = [];
    const end = chunk.length;
    let offset = 0;

    while (offset < end) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, end - offset);
        this.#skip -= n;
        offset += n;
        continue;
      }

      if (this.#frame !== null) {
        const n = Math.min(this.#frame.length - this.#frameFill, end - offset);
        chunk.copy(this.#frame, this.#frameFill, offset, offset + n);
        this.#frameFill += n;
        offset += n;
        if (this.#frameFill === this.#frame.length) {
          out.push(this.#frame);
          this.#frame = null;
          this.#frameFill = 0;
        }
        continue;
      }

      let length;
      if (this.#headerFill === 0 && end - offset >= FRAME_HEADER_BYTES) {
        length = chunk.readUInt32BE(offset);
        offset += FRAME_HEADER_BYTES;
      } else {
        const n = Math.min(FRAME_HEADER_BYTES - this.#headerFill, end - offset);
        chunk.copy(this.#header, this.#headerFill, offset, offset + n);
        this.#headerFill += n;
        offset += n;
        if (this.#headerFill < FRAME_HEADER_BYTES) break;
        length = this.#header.readUInt32BE(0);
        this.#headerFill = 0;
      }

      if (length > this.#maxFrameBytes) {
        out.push(new OversizeFrame(length));
        this.#skip = length;
        continue;
      }

      if (end - offset >= length) {
        out.push(chunk.subarray(offset, offset + length));
        offset += length;
        continue;
      }

      // The chunk ends inside this frame: keep what it has, later chunks fill the rest.
      this.#frame = Buffer.allocUnsafe(length);
      this.#frameFill = 0;
    }

    return out;
  }
}

/** The request id after `current`: 1..MAX_REQUEST_ID, wrapping, skipping ids in `pending`. */
export function nextRequestId(current, pending = new Map()) {
  let id = current;
  do {
    id = id >= MAX_REQUEST_ID ? 1 : id + 1;
  } while (pending.has(id));
  return id;
}

const encoder = new Encoder({ ignoreUndefined: true });
const decoder = new Decoder();

/** One frame holding `message` as msgpack; throws RangeError above the frame limit. */
export function encodeFrame(message, maxFrameBytes = MAX_FRAME_BYTES) {
  const payload = encoder.encodeSharedRef(message);
  if (payload.length > maxFrameBytes) {
    throw new RangeError(
      `message of ${payload.length} bytes exceeds the ${maxFrameBytes}-byte frame limit`
    );
  }
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  frame.writeUInt32BE(payload.length, 0);
  frame.set(payload, FRAME_HEADER_BYTES);
  return frame;
}

/** The msgpack object in a frame payload; throws if it is not exactly one object. */
export function decodePayload(payload) {
  return decoder.decode(payload);
}

/**
 * Requests and notifications over the worker's stdin (producerSocket) and stdout
 * (consumerSocket).
 *
 * Notifications are emitted on the channel with the handlerId as event name and (event, data)
 * as arguments: `channel.on(handlerId, (event, data) => ...)`. Messages are dispatched in wire
 * order, and after a response is delivered the following messages wait for a later turn of the
 * event loop, so the code awaiting that response (e.g. registering listeners on a newly created
 * entity) runs before any notification sent after it.
 */
export class Channel extends EnhancedEventEmitter {
  #producerSocket;
  #consumerSocket;
  #pid;
  #closed = false;
  #decoder = new FrameDecoder();
  #nextId = 0;
  // id -> { id, method, resolve, reject, timer }
  #sents = new Map();
  // Messages waiting for dispatch, in wire order.
  #queue = [];
  #queueHead = 0;
  #dispatchScheduled = false;
  #dispatching = false;
  #onData;
  #onSocketError;

  constructor({ producerSocket, consumerSocket, pid }) {
    super();
    this.#producerSocket = producerSocket;
    this.#consumerSocket = consumerSocket;
    this.#pid = pid;

    this.#onData = (chunk) => this.#handleChunk(chunk);
    this.#onSocketError = (error) => {
      // EPIPE etc. when the worker is gone; the Worker handles the process exit.
      logger.debug(`socket error [pid:${this.#pid}]:`, error.message);
    };
    this.#consumerSocket.on('data', this.#onData);
    this.#consumerSocket.on('error', this.#onSocketError);
    this.#producerSocket.on('error', this.#onSocketError);
  }

  get closed() {
    return this.#closed;
  }

  /** Number of requests waiting for a response. */
  get pendingCount() {
    return this.#sents.size;
  }

  /**
   * Closes the channel: every pending request is rejected with InvalidStateError and no more
   * messages are delivered. Does not end the worker's stdin (the Worker does that).
   */
  close() {
    if (this.#closed) return;
    this.#closed = true;

    this.#consumerSocket.off('data', this.#onData);

    for (const sent of this.#sents.values()) {
      clearTimeout(sent.timer);
      sent.reject(
        new InvalidStateError(`Channel closed, request "${sent.method}" (id ${sent.id}) aborted`)
      );
    }
    this.#sents.clear();
    this.#queue = [];
    this.#queueHead = 0;
  }

  /**
   * Sends a request and resolves with the response's data, or rejects with the error the worker
   * answered (TypeError, InvalidStateError, UnsupportedError, Error), a RequestTimeoutError, or
   * an InvalidStateError when the channel is (or gets) closed.
   */
  async request(method, handlerId = '', data = undefined) {
    if (!KNOWN_METHODS.has(method)) {
      throw new TypeError(`unknown method "${method}"`);
    }
    if (this.#closed) {
      throw new InvalidStateError(`Channel closed, cannot send request "${method}"`);
    }

    const id = nextRequestId(this.#nextId, this.#sents);
    this.#nextId = id;

    const message = { id, method, handlerId: handlerId ?? '' };
    if (data !== undefined) message.data = data;

    // Throws (and so rejects) if the message is too large or cannot be encoded.
    const frame = encodeFrame(message);
    const timeoutMs =
      REQUEST_TIMEOUT_BASE_MS + REQUEST_TIMEOUT_PER_PENDING_MS * this.#sents.size;

    logger.debug(`request() [method:${method}, id:${id}]`);

    return new Promise((resolve, reject) => {
      const sent = {
        id,
        method,
        resolve: (value) => {
          if (!this.#sents.delete(id)) return;
          clearTimeout(sent.timer);
          resolve(value);
        },
        reject: (error) => {
          this.#sents.delete(id);
          clearTimeout(sent.timer);
          reject(error);
        },
        timer: setTimeout(() => {
          if (!this.#sents.has(id)) return;
          sent.reject(
            new RequestTimeoutError(
              `request "${method}" (id ${id}) timed out after ${timeoutMs} ms without a response`
            )
          );
        }, timeoutMs),
      };
      this.#sents.set(id, sent);
      this.#write(frame);
    });
  }

  /** Sends a controller notification (PROTOCOL.md: producer.send, dataProducer.send...). */
  notify(event, handlerId, data = undefined) {
    if (!KNOWN_CONTROLLER_EVENTS.has(event)) {
      throw new TypeError(`unknown controller event "${event}"`);
    }
    if (this.#closed) {
      throw new InvalidStateError(`Channel closed, cannot send notification "${event}"`);
    }
    const message = { event, handlerId };
    if (data !== undefined) message.data = data;
    this.#write(encodeFrame(message));
  }

  #write(frame) {
    try {
      this.#producerSocket.write(frame);
    } catch (error) {
      logger.error(`write failed [pid:${this.#pid}]:`, error);
    }
  }

  #handleChunk(chunk) {
    if (this.#closed) return;

    let items;
    try {
      items = this.#decoder.push(chunk);
    } catch (error) {
      logger.error('frame decoding failed:', error);
      return;
    }

    for (const item of items) {
      if (item instanceof OversizeFrame) {
        logger.error(
          `skipping a frame of ${item.length} bytes (over the ${MAX_FRAME_BYTES}-byte limit)`
        );
        continue;
      }
      let message;
      try {
        message = decodePayload(item);
      } catch (error) {
        logger.error(`dropping a frame that is not msgpack: ${error.message}`);
        continue;
      }
      if (message === null || typeof message !== 'object' || Array.isArray(message)) {
        logger.error('dropping a frame that is not a msgpack map');
        continue;
      }
      this.#queue.push(message);
    }

    if (!this.#dispatchScheduled && !this.#dispatching) this.#dispatch();
  }

  #dispatch() {
    this.#dispatchScheduled = false;
    this.#dispatching = true;
    try {
      while (this.#queueHead < this.#queue.length) {
        if (this.#closed) return;
        const message = this.#queue[this.#queueHead++];
        const wasResponse = this.#processMessage(message);
        // Let the code awaiting this response run before what follows it on the wire.
        if (wasResponse && this.#queueHead < this.#queue.length) {
          this.#dispatchScheduled = true;
          setImmediate(() => this.#dispatch());
          return;
        }
      }
      this.#queue = [];
      this.#queueHead = 0;
    } finally {
      this.#dispatching = false;
    }
  }

  /** Handles one decoded message; returns true if it was a response. */
  #processMessage(msg) {
    if (msg.id !== undefined) {
      const sent = this.#sents.get(msg.id);
      if (!sent) {
        logger.error(`received a response without a pending request [id:${msg.id}]`);
        return true;
      }
      if (msg.accepted === true) {
        logger.debug(`request succeeded [method:${sent.method}, id:${sent.id}]`);
        sent.resolve(msg.data);
      } else if (msg.accepted === false) {
        logger.debug(
          `request failed [method:${sent.method}, id:${sent.id}]: ${msg.error}: ${msg.reason}`
        );
        sent.reject(errorFromWire(msg.error, msg.reason));
      } else {
        sent.reject(
          new Error(`malformed response to "${sent.method}" (id ${sent.id}): no boolean accepted`)
        );
      }
      return true;
    }

    if (typeof msg.event === 'string') {
      const handlerId = typeof msg.handlerId === 'string' ? msg.handlerId : '';
      this.safeEmit(handlerId, msg.event, msg.data);
      return false;
    }

    if (typeof msg.log === 'string') {
      const text = typeof msg.text === 'string' ? msg.text : String(msg.text);
      switch (msg.log) {
        case 'D':
          workerLogger.debug(`[pid:${this.#pid}] ${text}`);
          break;
        case 'W':
          workerLogger.warn(`[pid:${this.#pid}] ${text}`);
          break;
        default:
          workerLogger.error(`[pid:${this.#pid}] ${text}`);
          break;
      }
      return false;
    }

    logger.error('received a message that is neither a response, a notification nor a log');
    return false;
  }
}
