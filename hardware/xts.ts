// Backend registry.
import { checkBackendName, type XtsBackend } from './backend.js';
import { nobleBackend } from './xts-noble.js';
import { opensslBackend } from './xts-openssl.js';

export * from './backend.js';

export function getBackend(name: string): XtsBackend {
  return checkBackendName(name) === 'noble' ? nobleBackend : opensslBackend;
}
