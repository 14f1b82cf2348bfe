import { readFileSync } from 'node:fs';

import { EnhancedEventEmitter } from './EnhancedEventEmitter.js';
import { Logger } from './Logger.js';
import { Worker } from './Worker.js';

export { Consumer } from './Consumer.js';
export { DirectTransport } from './DirectTransport.js';
export { PipeTransport } from './PipeTransport.js';
export { PlainTransport } from './PlainTransport.js';
export { Producer } from './Producer.js';
export { DEFAULT_PIPE_LISTEN_INFO, Router } from './Router.js';
export { Transport } from './Transport.js';
export { WebRtcServer } from './WebRtcServer.js';
export { WebRtcTransport } from './WebRtcTransport.js';
export { Worker } from './Worker.js';
export { EnhancedEventEmitter } from './EnhancedEventEmitter.js';
export {
  InvalidStateError,
  RequestTimeoutError,
  UnsupportedError,
  errorFromWire,
} from './errors.js';
export * as protocol from './protocol.generated.js';

const logger = new Logger();

/** The version of this package. */
export const version = JSON.parse(
  readFileSync(new URL('../package.json', import.meta.url), 'utf8')
).version;

/** Observer events: "newworker" (Worker). */
export const observer = new EnhancedEventEmitter();

/**
 * Spawns `pythonPath -m worker` with the given settings and resolves with the Worker once it sent
 * its "running" notification. Rejects with TypeError when the worker refused the settings (exit
 * code 42), or with Error when it failed to start otherwise.
 *
 * @param {object} [options]
 * @param {string} [options.pythonPath='python3']
 * @param {string[]} [options.workerArgs] extra arguments appended to the worker's command line
 * @param {string} [options.cwd] working directory of the worker process
 * @param {object} [options.env] variables added to (overriding) process.env for the worker
 * @param {'debug'|'warn'|'error'|'none'} [options.logLevel='error']
 * @param {string[]} [options.logTags]
 * @param {number} [options.rtcMinPort]
 * @param {number} [options.rtcMaxPort]
 * @param {string} [options.dtlsCertificateFile]
 * @param {string} [options.dtlsPrivateKeyFile]
 * @param {object} [options.appData]
 * @returns {Promise<Worker>}
 */
export async function createWorker(options = {}) {
  logger.debug('createWorker()');
  const worker = new Worker(options);

  await new Promise((resolve, reject) => {
    const onSuccess = () => {
      worker.off('@failure', onFailure);
      resolve();
    };
    const onFailure = (error) => {
      worker.off('@success', onSuccess);
      reject(error);
    };
    worker.once('@success', onSuccess);
    worker.once('@failure', onFailure);
  });

  observer.safeEmit('newworker', worker);
  return worker;
}
