import { Logger } from './Logger.js';
import { checkPort } from './PlainTransport.js';
import { Transport } from './Transport.js';
import { checkAppData, isPlainObject } from './appData.js';

const logger = new Logger('PipeTransport');

/**
 * Plain RTP between two routers, in one host or across hosts. Create it with
 * router.createPipeTransport(), or in connected pairs with router.pipeToRouter().
 *
 * A consumer on it is a pipe consumer: it forwards every stream of its producer as received, with
 * the producer's consumable parameters, so consume() takes no rtpCapabilities. Events (also on
 * the observer): "tuple" (tuple), "sctpstatechange" (sctpState); plus the Transport events.
 */
export class PipeTransport extends Transport {
  #data;

  /** @internal Use router.createPipeTransport(). */
  constructor({ internal, data, channel, appData }) {
    super({ internal, channel, appData });
    const d = isPlainObject(data) ? data : {};
    this.#data = {
      tuple: d.tuple,
      rtx: Boolean(d.rtx),
      srtpParameters: d.srtpParameters,
      sctpParameters: d.sctpParameters,
      sctpState: d.sctpState,
    };
  }

  /** { localAddress, localIp, localPort, protocol, remoteIp?, remotePort? }. */
  get tuple() {
    return this.#data.tuple;
  }

  /** Whether its pipe consumers carry RTX (enableRtx). */
  get rtx() {
    return this.#data.rtx;
  }

  /** The worker's own { cryptoSuite, keyBase64 } with SRTP, else undefined. */
  get srtpParameters() {
    return this.#data.srtpParameters;
  }

  get sctpParameters() {
    return this.#data.sctpParameters;
  }

  get sctpState() {
    return this.#data.sctpState;
  }

  /**
   * Connects to the other pipe transport's address, with its SRTP parameters (only, and always,
   * when SRTP is enabled). Stores the answer's tuple; a second call rejects with
   * InvalidStateError.
   */
  async connect({ ip, port, srtpParameters } = {}) {
    this.assertOpen('connect()');
    if (typeof ip !== 'string' || ip.length === 0) throw new TypeError('missing ip');
    const data = { ip, port: checkPort(port, 'port') };
    if (srtpParameters !== undefined) {
      if (!isPlainObject(srtpParameters)) {
        throw new TypeError('if given, srtpParameters must be an object');
      }
      data.srtpParameters = srtpParameters;
    }
    const response = await this.channel.request('transport.connect', this.id, data);
    if (isPlainObject(response) && isPlainObject(response.tuple)) this.#data.tuple = response.tuple;
  }

  /**
   * A pipe consumer (type "pipe") of the producer: its rtpParameters are what the other
   * router's pipe transport produces with.
   */
  async consume({ producerId, appData } = {}) {
    this.assertOpen('consume()');
    if (typeof producerId !== 'string' || producerId.length === 0) {
      throw new TypeError('missing producerId');
    }
    checkAppData(appData);
    return this.consumeWith(producerId, {}, appData);
  }

  /** @internal */
  onClosed() {
    if (this.#data.sctpState) this.#data.sctpState = 'closed';
  }

  /** @internal */
  handleNotification(event, data) {
    const d = isPlainObject(data) ? data : {};
    switch (event) {
      case 'tuple': {
        this.#data.tuple = d.tuple;
        this.safeEmit('tuple', d.tuple);
        this.observer.safeEmit('tuple', d.tuple);
        break;
      }
      case 'sctpstatechange': {
        this.#data.sctpState = d.sctpState;
        this.safeEmit('sctpstatechange', d.sctpState);
        this.observer.safeEmit('sctpstatechange', d.sctpState);
        break;
      }
      default:
        logger.debug(`ignoring notification "${event}" [transportId:${this.id}]`);
    }
  }
}
