// XTS-AES-128 through node:crypto ('aes-128-xts', i.e. OpenSSL, AES-NI where
// the CPU has it). node:crypto has no API that writes into a caller's buffer,
// so each data unit costs one cipher object and one output buffer made by
// node; this file allocates nothing of its own per call (the tweak buffer is
// reused). OpenSSL refuses keys whose two halves are equal ("xts duplicated
// keys"); importKey reports that up front, naming the argument.
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { checkOpensslKey, checkUnit, redact, type XtsBackend, type XtsKey } from './backend.js';

interface OpensslKey extends XtsKey {
  readonly raw: Buffer;
}

const TWO32 = 0x1_0000_0000;
const iv = Buffer.alloc(16);

function _setTweak(unit: number): Buffer {
  const lo = unit % TWO32;
  iv.writeUInt32LE(lo, 0);
  iv.writeUInt32LE((unit - lo) / TWO32, 4);
  // bytes 8..15 stay zero: units are below 2^53
  return iv;
}

export const opensslBackend: XtsBackend = {
  name: 'openssl',
  importKey(key: Uint8Array): XtsKey {
    checkOpensslKey(key);
    const k: OpensslKey = { backend: 'openssl', raw: Buffer.from(key) };
    return redact(k, '[openssl XtsKey]');
  },
  encrypt(key, src, srcOff, dst, dstOff, len, unit) {
    checkUnit(src, srcOff, dst, dstOff, len, unit);
    const c = createCipheriv('aes-128-xts', (key as OpensslKey).raw, _setTweak(unit));
    dst.u8.set(c.update(src.u8.subarray(srcOff, srcOff + len)), dstOff);
  },
  decrypt(key, src, srcOff, dst, dstOff, len, unit) {
    checkUnit(src, srcOff, dst, dstOff, len, unit);
    const c = createDecipheriv('aes-128-xts', (key as OpensslKey).raw, _setTweak(unit));
    dst.u8.set(c.update(src.u8.subarray(srcOff, srcOff + len)), dstOff);
  },
};
