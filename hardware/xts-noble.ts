// XTS-AES-128 (IEEE 1619-2007) on the AES block primitives of @noble/ciphers:
// the pure-JS reference backend. Works on 32-bit little-endian words of the
// caller's buffer with the state in scalar locals, no copies and no allocation
// besides what the block primitive returns. Unlike OpenSSL it accepts keys
// whose two halves are equal (IEEE 1619 vectors 1-3 use them).
import { unsafe } from '@noble/ciphers/aes.js';
import { checkKey, checkUnit, redact, type XtsBackend, type XtsKey } from './backend.js';

if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) throw new Error('xts-noble: needs a little-endian host');

interface NobleKey extends XtsKey {
  readonly enc1: Uint32Array; // Key1 encryption schedule
  readonly dec1: Uint32Array; // Key1 decryption schedule
  readonly enc2: Uint32Array; // Key2 (tweak) encryption schedule
}

const TWO32 = 0x1_0000_0000;

function _crypt(k: NobleKey, w: Uint32Array, off: number, o: Uint32Array, oOff: number, len: number, unit: number, decrypt: boolean): void {
  // T = E_K2(unit), unit as a 128-bit little-endian integer.
  const lo = unit % TWO32;
  const hi = (unit - lo) / TWO32;
  let t = unsafe.encrypt(k.enc2, lo >>> 0, hi >>> 0, 0, 0);
  let t0 = t.s0, t1 = t.s1, t2 = t.s2, t3 = t.s3;
  const xk = decrypt ? k.dec1 : k.enc1;
  const blockFn = decrypt ? unsafe.decrypt : unsafe.encrypt;
  for (let i = off >>> 2, j = oOff >>> 2, end = (off + len) >>> 2; i < end; i += 4, j += 4) {
    const r = blockFn(xk, w[i] ^ t0, w[i + 1] ^ t1, w[i + 2] ^ t2, w[i + 3] ^ t3);
    o[j] = r.s0 ^ t0;
    o[j + 1] = r.s1 ^ t1;
    o[j + 2] = r.s2 ^ t2;
    o[j + 3] = r.s3 ^ t3;
    // T = T * alpha in GF(2^128): shift the 128-bit LE value left by one,
    // folding the carry out of bit 127 back as x^7 + x^2 + x + 1 (0x87).
    const carry = t3 >>> 31;
    t3 = (t3 << 1) | (t2 >>> 31);
    t2 = (t2 << 1) | (t1 >>> 31);
    t1 = (t1 << 1) | (t0 >>> 31);
    t0 = (t0 << 1) ^ (carry * 0x87);
  }
}

export const nobleBackend: XtsBackend = {
  name: 'noble',
  importKey(key: Uint8Array): XtsKey {
    checkKey(key);
    const k1 = Uint8Array.from(key.subarray(0, 16)); // a copy even for a Buffer (whose slice is a view)
    const k2 = Uint8Array.from(key.subarray(16, 32));
    const nk: NobleKey = {
      backend: 'noble',
      enc1: unsafe.expandKeyLE(k1),
      dec1: unsafe.expandKeyDecLE(k1),
      enc2: unsafe.expandKeyLE(k2),
    };
    k1.fill(0);
    k2.fill(0);
    return redact(nk, '[noble XtsKey]');
  },
  encrypt(key, src, srcOff, dst, dstOff, len, unit) {
    checkUnit(src, srcOff, dst, dstOff, len, unit);
    _crypt(key as NobleKey, src.u32, srcOff, dst.u32, dstOff, len, unit, false);
  },
  decrypt(key, src, srcOff, dst, dstOff, len, unit) {
    checkUnit(src, srcOff, dst, dstOff, len, unit);
    _crypt(key as NobleKey, src.u32, srcOff, dst.u32, dstOff, len, unit, true);
  },
};
