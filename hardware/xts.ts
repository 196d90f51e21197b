// Backend registry. The native backend is the default where its addon was
// built (npm ci builds it); elsewhere node:crypto's openssl backend is, and
// backendNote() says why in one line.
import { checkBackendName, type BackendName, type XtsBackend } from './backend.js';
import { nativeBackend, nativeStatus } from './xts-native.js';

export { nativeImpl } from './xts-native.js';
import { nobleBackend } from './xts-noble.js';
import { opensslBackend } from './xts-openssl.js';

export * from './backend.js';

const BACKENDS: Readonly<Record<BackendName, XtsBackend>> = { native: nativeBackend, openssl: opensslBackend, noble: nobleBackend };

export function getBackend(name: string): XtsBackend {
  const n = checkBackendName(name);
  if (n === 'native' && nativeStatus() !== null) throw new RangeError(`backend: native is not available: ${nativeStatus()}`);
  return BACKENDS[n];
}

/** The backends that can run here. */
export function availableBackends(): BackendName[] {
  return nativeStatus() === null ? ['native', 'openssl', 'noble'] : ['openssl', 'noble'];
}

/** The default backend: native when its addon loads, else openssl. */
export function defaultBackend(): BackendName {
  return nativeStatus() === null ? 'native' : 'openssl';
}

/** null, or one line on why the default is not the native backend. */
export function backendNote(): string | null {
  const s = nativeStatus();
  return s === null ? null : `native crypto backend unavailable (${s}); using node:crypto (openssl)`;
}
