// One interface for the two AES-XTS-128 implementations. A data unit is
// encrypted in place inside a buffer; its tweak is the data-unit number (for
// memory frames: the frame's physical address) as a 128-bit little-endian
// integer, as in IEEE 1619-2007 section 5.1.

/** A buffer with the two views the backends work on, made once, not per call. */
export interface DataBuf {
  readonly u8: Uint8Array;
  /** Same bytes as u8, as little-endian 32-bit words (u8.byteOffset must be 4-aligned). */
  readonly u32: Uint32Array;
}

export function dataBuf(u8: Uint8Array): DataBuf {
  if (u8.byteOffset % 4 !== 0 || u8.byteLength % 4 !== 0)
    throw new RangeError('buf: byteOffset and length must be multiples of 4');
  return { u8, u32: new Uint32Array(u8.buffer, u8.byteOffset, u8.byteLength >>> 2) };
}

/** An imported key: opaque to callers, never printed. */
export interface XtsKey {
  readonly backend: BackendName;
}

const INSPECT = Symbol.for('nodejs.util.inspect.custom');

/**
 * Hide key material from util.inspect, console.log and JSON.stringify: an
 * object that holds a key prints as its label only.
 */
export function redact<T extends object>(obj: T, label: string): T {
  Object.defineProperty(obj, INSPECT, { value: () => label, enumerable: false });
  Object.defineProperty(obj, 'toJSON', { value: () => label, enumerable: false });
  return obj;
}

export interface XtsBackend {
  readonly name: BackendName;
  /** Import a 32-byte XTS-AES-128 key (Key1 || Key2). Throws naming the argument on bad input. */
  importKey(key: Uint8Array): XtsKey;
  /**
   * Replace key's key material with `key` in place, the same checks as
   * importKey (a refused key leaves it as it was), for a holder that reuses
   * one key object per slot (engine.ts, a KeyID that PCONFIG reprograms).
   * Backends without it get a fresh importKey instead.
   */
  rekey?(key: XtsKey, bytes: Uint8Array): void;
  /**
   * Encrypt src.u8[srcOff, srcOff+len) into dst.u8[dstOff, ...): one data unit
   * of len bytes (a positive multiple of 16; offsets multiples of 16). src and
   * dst may be the same buffer at the same offset (in place).
   */
  encrypt(key: XtsKey, src: DataBuf, srcOff: number, dst: DataBuf, dstOff: number, len: number, unit: number): void;
  decrypt(key: XtsKey, src: DataBuf, srcOff: number, dst: DataBuf, dstOff: number, len: number, unit: number): void;
}

/** native: the N-API addon (OpenSSL EVP in place); openssl: node:crypto; noble: pure JS, the reference. */
export const BACKEND_NAMES = ['native', 'openssl', 'noble'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

export function checkBackendName(name: string): BackendName {
  if (!(BACKEND_NAMES as readonly string[]).includes(name))
    throw new RangeError(`backend: unknown crypto backend '${name}' (expected one of: ${BACKEND_NAMES.join(', ')})`);
  return name as BackendName;
}

/** Input checks shared by both backends: once at the entry, not in the block loop. */
export function checkKey(key: Uint8Array): void {
  if (!(key instanceof Uint8Array)) throw new TypeError('key: expected a Uint8Array');
  if (key.length !== 32)
    throw new RangeError(`key: XTS-AES-128 needs 32 bytes (Key1 || Key2), got ${key.length}`);
}

/** checkKey, and OpenSSL's own rule: XTS keys whose two halves are equal are refused ("xts duplicated keys"). */
export function checkOpensslKey(key: Uint8Array): void {
  checkKey(key);
  let same = true;
  for (let i = 0; i < 16; i++) if (key[i] !== key[i + 16]) same = false;
  if (same) throw new RangeError('key: the two XTS key halves are equal; OpenSSL refuses such keys (use the noble backend for them)');
}

export function checkUnit(src: DataBuf, srcOff: number, dst: DataBuf, dstOff: number, len: number, unit: number): void {
  if (!Number.isInteger(len) || len < 16 || len % 16 !== 0)
    throw new RangeError(`len: expected a positive multiple of 16, got ${len}`);
  _checkOff('srcOff', src, srcOff, len);
  _checkOff('dstOff', dst, dstOff, len);
  if (!Number.isSafeInteger(unit) || unit < 0) throw new RangeError(`unit: expected a non-negative safe integer, got ${unit}`);
}

function _checkOff(name: string, buf: DataBuf, off: number, len: number): void {
  if (!Number.isInteger(off) || off < 0 || off % 16 !== 0)
    throw new RangeError(`${name}: expected a non-negative multiple of 16, got ${off}`);
  if (off + len > buf.u8.length) throw new RangeError(`${name}: ${off}+${len} runs past the buffer (${buf.u8.length} bytes)`);
}
