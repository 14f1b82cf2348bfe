/**
 * A tiny logger writing to process.stderr, enabled only when the DEBUG environment variable
 * contains "mediaworker" (e.g. DEBUG=mediaworker or DEBUG=mediaworker*). Worker logs received
 * over the channel and the worker's stderr lines go here too.
 */

const APP_NAME = 'mediaworker';

function isEnabled() {
  const debug = process.env.DEBUG;

  return typeof debug === 'string' && debug.includes(APP_NAME);
}

function format(args) {
  return args
    .map((arg) => {
      if (arg instanceof Error) return arg.stack ?? String(arg);
      if (typeof arg === 'string') return arg;
      try {
        return JSON.stringify(arg);
      } catch {
        return String(arg);
      }
    })
    .join(' ');
}

export class Logger {
  #prefix;

  constructor(prefix) {
    this.#prefix = prefix ? `${APP_NAME}:${prefix}` : APP_NAME;
  }

  get enabled() {
    return isEnabled();
  }

  debug(...args) {
    this.#write('DEBUG', args);
  }

  warn(...args) {
    this.#write('WARN', args);
  }

  error(...args) {
    this.#write('ERROR', args);
  }

  #write(level, args) {
    if (!isEnabled()) return;
    try {
      const line = `${new Date().toISOString()} ${this.#prefix}:${level} ${format(args)}\n`;
      process.stderr.write(line);
    } catch {
      // Never let logging break the controller.
    }
  }
}
