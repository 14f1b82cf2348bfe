import { Logger } from './Logger.js';
import { Transport } from './Transport.js';
import { isPlainObject } from './appData.js';

const logger = new Logger('PlainTransport');

/** Throws TypeError unless `port` is an integer in 1..65535. */
export function checkPort(port, name) {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new TypeError(`${name} must be an integer in 1..65535`);
  }
  return port;
}

/**
 * Plain RTP and RTCP over UDP, optionally SRTP, towards an endpoint without ICE or DTLS
 * (GStreamer, FFmpeg...). Create it with router.createPlainTransport().
 *
 * Its getters start from the worker's dump and are kept current from connect()'s answer and the
 * worker's notifications. Events (also on the observer): "tuple" (tuple, learned with comedia),
 * "rtcptuple" (rtcpTuple, learned with comedia when RTCP is not muxed), "sctpstatechange"
 * (sctpState); plus the Transport events.
 */
export class PlainTransport extends Transport {
  #data;

  /** @internal Use router.createPlainTransport(). */
  constructor({ internal, data, channel, appData }) {
    super({ internal, channel, appData });
    const d = isPlainObject(data) ? data : {};
    this.#data = {
      rtcpMux: d.rtcpMux ?? true,
      comedia: d.comedia ?? false,
      tuple: d.tuple,
      rtcpTuple: d.rtcpTuple,
      srtpParameters: d.srtpParameters,
      sctpParameters: d.sctpParameters,
      sctpState: d.sctpState,
    };
  }

  /** { localAddress, localIp, localPort, protocol, remoteIp?, remotePort? }. */
  get tuple() {
    return this.#data.tuple;
  }

  /** The RTCP socket's tuple when RTCP is not muxed, else undefined. */
  get rtcpTuple() {
    return this.#data.rtcpTuple;
  }

  get rtcpMux() {
    return this.#data.rtcpMux;
  }

  /** Whether the remote tuple is learned from the first packet received. */
  get comedia() {
    return this.#data.comedia;
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
   * Gives the endpoint's address (not with comedia), its RTCP port (only when RTCP is not muxed)
   * and its SRTP parameters (only, and always, with SRTP); stores the answer's tuples and SRTP
   * parameters. The worker rejects missing or extra arguments with TypeError and a second call
   * with InvalidStateError.
   */
  async connect({ ip, port, rtcpPort, srtpParameters } = {}) {
    this.assertOpen('connect()');
    const data = {};
    if (ip !== undefined) {
      if (typeof ip !== 'string' || ip.length === 0) {
        throw new TypeError('if given, ip must be a non-empty string');
      }
      data.ip = ip;
    }
    if (port !== undefined) data.port = checkPort(port, 'port');
    if (rtcpPort !== undefined) data.rtcpPort = checkPort(rtcpPort, 'rtcpPort');
    if (srtpParameters !== undefined) {
      if (!isPlainObject(srtpParameters)) {
        throw new TypeError('if given, srtpParameters must be an object');
      }
      data.srtpParameters = srtpParameters;
    }
    const response = await this.channel.request('transport.connect', this.id, data);
    const r = isPlainObject(response) ? response : {};
    if (isPlainObject(r.tuple)) this.#data.tuple = r.tuple;
    if (isPlainObject(r.rtcpTuple)) this.#data.rtcpTuple = r.rtcpTuple;
    if (isPlainObject(r.srtpParameters)) this.#data.srtpParameters = r.srtpParameters;
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
      case 'rtcptuple': {
        this.#data.rtcpTuple = d.rtcpTuple;
        this.safeEmit('rtcptuple', d.rtcpTuple);
        this.observer.safeEmit('rtcptuple', d.rtcpTuple);
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
