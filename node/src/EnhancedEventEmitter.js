import { EventEmitter } from 'node:events';

import { Logger } from './Logger.js';

const logger = new Logger('EnhancedEventEmitter');

/**
 * An EventEmitter whose safeEmit() never throws: an exception in a listener is logged and the
 * other listeners still run.
 */
export class EnhancedEventEmitter extends EventEmitter {
  constructor() {
    super();
    this.setMaxListeners(Infinity);
  }

  /**
   * Emits `event` to each listener in turn, catching (and logging) what a listener throws.
   * Returns true if the event had listeners.
   */
  safeEmit(event, ...args) {
    const listeners = this.rawListeners(event);
    if (listeners.length === 0) return false;
    for (const listener of listeners) {
      try {
        // rawListeners() returns once() wrappers, which remove themselves when called.
        listener.apply(this, args);
      } catch (error) {
        logger.error(`safeEmit() | event listener threw an error [event:${String(event)}]:`, error);
      }
    }
    return true;
  }

  /** Emits `event` with a callback and errback appended and resolves/rejects with them. */
  async safeEmitAsPromise(event, ...args) {
    return new Promise((resolve, reject) => {
      this.safeEmit(event, ...args, resolve, reject);
    });
  }
}
