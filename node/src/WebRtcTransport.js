import { Logger } from './Logger.js';
import { Transport } from './Transport.js';
import { isPlainObject } from './appData.js';

const logger = new Logger('WebRtcTransport');


/**
 * A WebRTC transport (ICE-lite + DTLS). Create it with router.createWebRtcTransport().
 *
 * Events (also on the observer): "icestatechange" (iceState), "iceselectedtuplechange"
 * (iceSelectedTuple), "dtlsstatechange" (dtlsState), "sctpstatechange" (sctpState); plus the
 * Transport events "routerclose" and "listenserverclose". Observer events: "close".
 */
export class WebRtcTransport extends Transport {
  #data;

  /** @internal Use router.createWebRtcTransport(). */
  constructor({ internal, data, channel, appData }) {
    super({ internal, channel, appData });
    const d = isPlainObject(data) ? data : {};
    this.#data = {
      iceRole: d.iceRole,
      iceParameters: d.iceParameters,
      iceCandidates: d.iceCandidates,
      iceState: d.iceState,
      iceSelectedTuple: d.iceSelectedTuple,
      dtlsParameters: d.dtlsParameters,
      dtlsState: d.dtlsState,
      dtlsRemoteCert: undefined,
      sctpParameters: d.sctpParameters,
      sctpState: d.sctpState,
    };
  }

  get iceRole() {
    return this.#data.iceRole;
  }

  get iceParameters() {
    return this.#data.iceParameters;
  }

  get iceCandidates() {
    return this.#data.iceCandidates;
  }

  get iceState() {
    return this.#data.iceState;
  }

  get iceSelectedTuple() {
    return this.#data.iceSelectedTuple;
  }

  get dtlsParameters() {
    return this.#data.dtlsParameters;
  }

  get dtlsState() {
    return this.#data.dtlsState;
  }

  /** The peer's certificate (PEM) once DTLS is connected. */
  get dtlsRemoteCert() {
    return this.#data.dtlsRemoteCert;
  }

  get sctpParameters() {
    return this.#data.sctpParameters;
  }

  get sctpState() {
    return this.#data.sctpState;
  }

  /**
   * Gives the remote DTLS parameters ({role?, fingerprints}). The local role the worker chose is
   * stored in dtlsParameters.role. A second call rejects with InvalidStateError.
   */
  async connect({ dtlsParameters } = {}) {
    this.assertOpen('connect()');
    if (!isPlainObject(dtlsParameters)) {
      throw new TypeError('missing dtlsParameters (an object)');
    }
    const response = await this.channel.request('transport.connect', this.id, { dtlsParameters });
    const role = isPlainObject(response) ? response.dtlsLocalRole : undefined;
    if (role !== undefined) {
      this.#data.dtlsParameters = { ...(this.#data.dtlsParameters ?? {}), role };
    }
  }

  /** Restarts ICE; resolves with (and stores) the new iceParameters. */
  async restartIce() {
    this.assertOpen('restartIce()');
    const response = await this.channel.request('transport.restartIce', this.id);
    const iceParameters = isPlainObject(response) ? response.iceParameters : undefined;
    this.#data.iceParameters = iceParameters;
    return iceParameters;
  }

  /** @internal */
  onClosed() {
    this.#data.iceState = 'closed';
    this.#data.iceSelectedTuple = undefined;
    this.#data.dtlsState = 'closed';
    if (this.#data.sctpState) this.#data.sctpState = 'closed';
  }

  /** @internal */
  handleNotification(event, data) {
    const d = isPlainObject(data) ? data : {};
    switch (event) {
      case 'icestatechange': {
        this.#data.iceState = d.iceState;
        this.safeEmit('icestatechange', d.iceState);
        this.observer.safeEmit('icestatechange', d.iceState);
        break;
      }
      case 'iceselectedtuplechange': {
        this.#data.iceSelectedTuple = d.iceSelectedTuple;
        this.safeEmit('iceselectedtuplechange', d.iceSelectedTuple);
        this.observer.safeEmit('iceselectedtuplechange', d.iceSelectedTuple);
        break;
      }
      case 'dtlsstatechange': {
        this.#data.dtlsState = d.dtlsState;
        if (d.dtlsState === 'connected') this.#data.dtlsRemoteCert = d.dtlsRemoteCert;
        this.safeEmit('dtlsstatechange', d.dtlsState);
        this.observer.safeEmit('dtlsstatechange', d.dtlsState);
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
