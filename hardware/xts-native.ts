// XTS-AES-128 through the native addon (xts-native.c beside this file, built
// into build/xts_native.node by the install step, scripts/build-native.mjs):
// OpenSSL's EVP from inside node, one reusable context per key and thread,
// encrypting in place on the caller's typed arrays, SharedArrayBuffer views
// included. No cipher object or output buffer per call, which is what caps
// node:crypto at about a tenth of `openssl speed` here. On CPUs with VAES and
// AVX-512 the addon runs its own four-blocks-per-instruction XTS instead of
// OpenSSL 3.0's one-block AES-NI path (`nativeImpl()` names the one in use);
// `nativeEvpBackend` keeps OpenSSL's for the tests that check one against the
// other. Where the addon did not
// build, `nativeStatus()` says why in one line and the registry falls back to
// the node:crypto backend.
import { createRequire } from 'node:module';
import { checkOpensslKey, checkUnit, redact, type XtsBackend, type XtsKey } from './backend.js';

interface Addon {
  /** the implementation keys get by default: 'vaes-avx512' or 'openssl-evp' */
  readonly impl: string;
  importKey(key: Uint8Array, impl?: 'evp'): object;
  crypt(h: object, src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number, len: number, unit: number, count: number, enc: boolean): void;
}

interface NativeKey extends XtsKey {
  readonly h: object;
}

/** dist/hardware/xts-native.js -> <root>/build/xts_native.node */
const ADDON = '../../build/xts_native.node';

let addon: Addon | null = null;
let why = '';
try {
  addon = createRequire(import.meta.url)(ADDON) as Addon;
} catch (e) {
  const err = e as NodeJS.ErrnoException;
  why = err.code === 'MODULE_NOT_FOUND' ? 'build/xts_native.node was not built (npm ci builds it with cc)' : `build/xts_native.node did not load: ${err.message.split('\n')[0]}`;
}

/** null when the native backend is there, else one line saying why not. */
export function nativeStatus(): string | null {
  return addon === null ? why : null;
}

/** The native backend's XTS implementation ('vaes-avx512', 'openssl-evp'), or null when the addon is not there. */
export function nativeImpl(): string | null {
  return addon === null ? null : addon.impl;
}

function _addon(): Addon {
  if (addon === null) throw new Error(`native backend: ${why}`);
  return addon;
}

function nativeOn(impl: 'evp' | undefined): XtsBackend {
  return {
    name: 'native',
    importKey(key: Uint8Array): XtsKey {
      checkOpensslKey(key);
      return redact<NativeKey>({ backend: 'native', h: _addon().importKey(key, impl) }, '[native XtsKey]');
    },
    encrypt(key, src, srcOff, dst, dstOff, len, unit) {
      checkUnit(src, srcOff, dst, dstOff, len, unit);
      (addon as Addon).crypt((key as NativeKey).h, src.u8, srcOff, dst.u8, dstOff, len, unit, 1, true);
    },
    decrypt(key, src, srcOff, dst, dstOff, len, unit) {
      checkUnit(src, srcOff, dst, dstOff, len, unit);
      (addon as Addon).crypt((key as NativeKey).h, src.u8, srcOff, dst.u8, dstOff, len, unit, 1, false);
    },
  };
}

/** The native backend, on the addon's best implementation for this CPU (nativeImpl()). */
export const nativeBackend: XtsBackend = nativeOn(undefined);

/** The native backend with every key on OpenSSL's EVP: the tests check the VAES path against it. */
export const nativeEvpBackend: XtsBackend = nativeOn('evp');
