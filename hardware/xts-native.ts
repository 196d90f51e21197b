// XTS-AES-128 through the native addon (xts-native.c beside this file, built
// into build/xts_native.node by the install step, scripts/build-native.mjs):
// OpenSSL's EVP from inside node, one reusable context per key and thread,
// encrypting in place on the caller's typed arrays, SharedArrayBuffer views
// included. No cipher object or output buffer per call, which is what caps
// node:crypto at about a tenth of `openssl speed` here. Where the addon did not
// build, `nativeStatus()` says why in one line and the registry falls back to
// the node:crypto backend.
import { createRequire } from 'node:module';
import { checkOpensslKey, checkUnit, redact, type XtsBackend, type XtsKey } from './backend.js';

interface Addon {
  importKey(key: Uint8Array): object;
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

function _addon(): Addon {
  if (addon === null) throw new Error(`native backend: ${why}`);
  return addon;
}

export const nativeBackend: XtsBackend = {
  name: 'native',
  importKey(key: Uint8Array): XtsKey {
    checkOpensslKey(key);
    return redact<NativeKey>({ backend: 'native', h: _addon().importKey(key) }, '[native XtsKey]');
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
