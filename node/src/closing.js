// How a child entity (Transport, Producer, Consumer) closes, in one place: by its own close(),
// which asks its parent on the worker, or along with its parent (no request). The caller has
// checked and marked itself closed first.
import { Logger } from './Logger.js';

const logger = new Logger('closing');

/**
 * Emits "@close", "@closed" and the observer's "close" at once, and resolves once the worker
 * answered `method` (a failure is logged: the entity is closed here either way).
 */
export async function closeThroughParent(entity, observer, channel, method, parentId, data) {
  const request = channel.request(method, parentId, data).catch((error) => {
    logger.debug(`${method} failed [id:${entity.id}]: ${error.message}`);
  });
  entity.safeEmit('@close');
  entity.safeEmit('@closed');
  observer.safeEmit('close');
  await request;
}

/** Emits "@closed", `event` (e.g. "transportclose") and the observer's "close". */
export function closedWithParent(entity, observer, event) {
  entity.safeEmit('@closed');
  entity.safeEmit(event);
  observer.safeEmit('close');
}
