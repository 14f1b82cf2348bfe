/** appData checks shared by every entity (mediasoup's rule: a plain object, or nothing). */

export function isPlainObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Returns appData, or {} when it is undefined; throws TypeError for anything else. */
export function checkAppData(appData) {
  if (appData !== undefined && !isPlainObject(appData)) {
    throw new TypeError('if given, appData must be an object');
  }
  return appData ?? {};
}
