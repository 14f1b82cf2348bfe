import { Logger } from './Logger.js';
import { Transport } from './Transport.js';
import { isPlainObject } from './appData.js';

const logger = new Logger('DirectTransport');

/**
 * Media in and out through the channel, with no network. Create it with
 * router.createDirectTransport().
 *
 * Its producers take RTP packets from producer.send(buffer); its consumers emit each packet they
 * send as their "rtp" event (Buffer). RTCP goes in with sendRtcp(buffer) and comes out as the
 * "rtcp" event (Buffer: SR, RR, NACK, PLI or FIR). All of these are channel notifications: no
 * answers; what the worker cannot parse it drops and counts.
 */
export class DirectTransport extends Transport {
  #data;

  /** @internal Use router.createDirectTransport(). */
  constructor({ internal, data, channel, appData }) {
    super({ internal, channel, appData });
    const d = isPlainObject(data) ? data : {};
    this.#data = { maxMessageSize: d.maxMessageSize };
  }

  /** The largest message it takes or gives (maxMessageSize at creation). */
  get maxMessageSize() {
    return this.#data.maxMessageSize;
  }

  /** @internal */
  get direct() {
    return true;
  }

  /** A no-op, as mediasoup: a direct transport has nothing to connect to. */
  async connect() {
    this.assertOpen('connect()');
  }

  /** Gives the worker one (compound) RTCP packet, as if the endpoint had sent it. */
  sendRtcp(rtcpPacket) {
    if (!(rtcpPacket instanceof Uint8Array)) throw new TypeError('rtcpPacket must be a Buffer');
    this.assertOpen('sendRtcp()');
    this.channel.notify('transport.sendRtcp', this.id, rtcpPacket);
  }

  /** @internal */
  handleNotification(event, data) {
    switch (event) {
      case 'rtcp': {
        // A copy of the msgpack bin (a view of the channel's read buffer), as a Buffer.
        if (data instanceof Uint8Array) this.safeEmit('rtcp', Buffer.from(data));
        break;
      }
      default:
        logger.debug(`ignoring notification "${event}" [transportId:${this.id}]`);
    }
  }
}
