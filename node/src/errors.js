/**
 * Error classes of the controller, and the mapping from the worker's error names
 * (PROTOCOL.md section 3: TypeError, InvalidStateError, UnsupportedError, Error).
 */

/** An operation on something in the wrong state (closed worker/router, second connect...). */
export class InvalidStateError extends Error {
  constructor(message) {
    super(message);
    this.name = 'InvalidStateError';
  }
}

/** Something the worker cannot do (e.g. capabilities that cannot consume). */
export class UnsupportedError extends Error {
  constructor(message) {
    super(message);
    this.name = 'UnsupportedError';
  }
}

/** The worker did not answer a request in time. */
export class RequestTimeoutError extends Error {
  constructor(message) {
    super(message);
    this.name = 'RequestTimeoutError';
  }
}

/** The JS error for a rejected response `{accepted: false, error: name, reason}`. */
export function errorFromWire(name, reason) {
  const message = typeof reason === 'string' ? reason : String(reason ?? '');
  switch (name) {
    case 'TypeError':
      return new TypeError(message);
    case 'InvalidStateError':
      return new InvalidStateError(message);
    case 'UnsupportedError':
      return new UnsupportedError(message);
    default:
      return new Error(message);
  }
}
