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
import { checkOpensslKey, checkUnit, redact, type DataBuf, type XtsBackend, type XtsKey } from './backend.js';

interface Addon {
  /** the implementation keys get by default: 'vaes-avx512' or 'openssl-evp' */
  readonly impl: string;
  importKey(key: Uint8Array, impl?: 'evp'): object;
  /** a handle's key replaced in place, on the path it was imported for */
  rekey(h: object, key: Uint8Array): void;
  /** this thread's call registers: crypt reads its numbers from them */
  setRegs(regs: Float64Array): void;
  /** count data units of len bytes from src[srcOff] to dst[dstOff], unit numbers unit, unit + len, ...: the numbers in the registers */
  crypt(h: object, src: Uint8Array, dst: Uint8Array): void;
  /** sched_yield(2) (kernel/backoff.ts) */
  yieldCpu(): void;
  /** this thread's ns on a host CPU and ns runnable but waiting for one, into out[0] and out[1]; false where the host does not say */
  schedstat(out: Float64Array): boolean;
  /** the host CPU this thread runs on now (sched_getcpu), -1 where the host does not say */
  hostCpu(): number;
  /** move this thread to another host CPU it may run on, then let it run anywhere again: the CPU it landed on, -1 where it could not move */
  moveOff(): number;
  /** len bytes from src[srcOff] to dst[dstOff] (memmove): the numbers in the registers */
  copy(src: Uint8Array, dst: Uint8Array): void;
  /** an id for a Uint8Array on a SharedArrayBuffer, held until unbind; -1 when the thread's table is full */
  bind(u8: Uint8Array): number;
  /** let a bound buffer go; an id that names nothing is ignored */
  unbind(id: number): void;
  /** let every buffer this thread bound go */
  unbindAll(): void;
  /** how many buffers this thread has bound now */
  boundCount(): number;
  /** crypt, src and dst the bound buffers whose ids are in the registers: false (nothing done) when an id names nothing any more */
  cryptBound(h: object): boolean;
  /** copy, src and dst the bound buffers whose ids are in the registers: false as cryptBound */
  copyBound(): boolean;
  /** memcmp of the registers' ranges of two bound buffers: -1, 0 or 1; null when an id names nothing any more */
  compareBound(): number | null;
}

/** The call registers' slots (xts-native.c): srcOff, dstOff, len, unit, count, enc, and the bound buffers' ids. */
const R_SOFF = 0, R_DOFF = 1, R_LEN = 2, R_UNIT = 3, R_COUNT = 4, R_ENC = 5, R_SRC = 6, R_DST = 7;

interface NativeKey extends XtsKey {
  readonly h: object;
}

/** dist/hardware/xts-native.js -> <root>/build/xts_native.node */
const ADDON = '../../build/xts_native.node';

let addon: Addon | null = null;
let why = '';
// on an ArrayBuffer of its own, so that its memory never moves (a small typed array may live in V8's heap)
const regs = new Float64Array(new ArrayBuffer(8 * 8));
regs[R_COUNT] = 1;
try {
  const a = createRequire(import.meta.url)(ADDON) as Addon;
  // an addon built from an older checkout lacks the newest functions, hostCpu and moveOff (and before them bind and the rest up to boundCount, copy, schedstat, rekey, yieldCpu, setRegs)
  if (typeof a.moveOff !== 'function') throw new Error('it was built from an older checkout (npm ci rebuilds it)');
  a.setRegs(regs);
  addon = a;
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

/**
 * sched_yield(2), for spin-waits that share the host's CPUs with the threads
 * they wait for (kernel/backoff.ts); null when the addon is not there.
 */
export function hostYield(): (() => void) | null {
  return addon === null ? null : addon.yieldCpu;
}

/**
 * The calling thread's time on a host CPU and its time runnable but waiting
 * for one, ns, into out[0] and out[1], and the times it was put on a CPU
 * into out[2] where out has room (Linux's per-thread schedstat; false
 * where the host does not keep it), for the spin-waits' view of the host's
 * load (kernel/backoff.ts); null when the addon is not there.
 */
export function hostSchedstat(): ((out: Float64Array) => boolean) | null {
  return addon === null ? null : addon.schedstat;
}

/**
 * The host CPU the calling thread runs on now, and a move of the calling
 * thread to another host CPU that leaves it free to run anywhere again (the
 * CPU it landed on, -1 where it could not), for the worker CPUs' threads
 * that the host's scheduler keeps on one host CPU (kernel/smp.ts
 * spreadOut); null when the addon is not there.
 */
export function hostPlacement(): { readonly cpu: () => number; readonly moveOff: () => number } | null {
  return addon === null ? null : { cpu: addon.hostCpu, moveOff: addon.moveOff };
}

/**
 * A DataBuf's binding in this thread's addon (xts-native.c bind): its id, or
 * -1 where it has none (not on a SharedArrayBuffer, or the table was full).
 * An id let go since (releaseBound, at a cell's close) makes the addon's
 * bound call do nothing and say so: the call then takes the unbound path,
 * and the DataBuf binds again on its next one.
 * A symbol of this module instance, so a DataBuf posted to another thread
 * (structured clone copies string keys only) never brings this thread's id.
 * Measured with ab against the build that asked N-API for both typed arrays
 * every call (14 processes on the 2-vCPU VM, per op): fault plain-mmap
 * -11.3% at 1 CPU and -6.4% at 2, migration plain-mmap -11.0% and
 * madvise-encrypt -6.3% at 1 CPU, fault madvise-encrypt -3.7% at 1 CPU (all
 * p_holm <= 0.003); swap, which spends its time elsewhere, within 1.4%.
 */
const BOUND = Symbol('xts-native binding');
type Bindable = DataBuf & { [BOUND]?: number };
/** A bound DataBuf, once collected, lets its buffer go. */
const unbinder = new FinalizationRegistry<number>((id) => addon?.unbind(id));

/**
 * Let go of every buffer this thread bound (its memory's, its pages'), for
 * the cell that closes: nothing else lets a worker thread's go in time
 * (xts-native.c unbindAll). Buffers still in use bind again on their next
 * call. Nothing to do where the addon is not there.
 */
export function releaseBound(): void {
  addon?.unbindAll();
}

/** How many buffers this thread has bound now (0 where the addon is not there): a cell's close leaves none. */
export function boundCount(): number {
  return addon === null ? 0 : addon.boundCount();
}

/** Both bound: their ids into the registers (R_SRC, R_DST), and true; false when either takes the unbound path. */
function boundPair(a: Bindable, b: Bindable): boolean {
  const ia = boundId(a), ib = boundId(b);
  if (ia < 0 || ib < 0) return false;
  regs[R_SRC] = ia;
  regs[R_DST] = ib;
  return true;
}

/**
 * The two DataBufs of a bound call that did nothing (boundPair's, one of
 * whose ids the addon no longer knows): both let go, the one it knows too,
 * so that its slot is not left behind, and bound again on their next call.
 */
function forget(a: Bindable, b: Bindable): void {
  (addon as Addon).unbind(regs[R_SRC]);
  (addon as Addon).unbind(regs[R_DST]);
  a[BOUND] = undefined;
  b[BOUND] = undefined;
}

/** buf's id in the addon's table, binding it on first use (-1: it takes the unbound path). */
function boundId(buf: Bindable): number {
  let id = buf[BOUND];
  if (id === undefined) {
    id = buf.u8.buffer instanceof SharedArrayBuffer ? (addon as Addon).bind(buf.u8) : -1;
    if (id >= 0) unbinder.register(buf, id);
    buf[BOUND] = id;
  }
  return id;
}

function copy(src: DataBuf, srcOff: number, dst: DataBuf, dstOff: number, len: number): void {
  regs[R_SOFF] = srcOff;
  regs[R_DOFF] = dstOff;
  regs[R_LEN] = len;
  if (boundPair(src, dst)) {
    if ((addon as Addon).copyBound()) return;
    forget(src, dst);
  }
  (addon as Addon).copy(src.u8, dst.u8);
}

function compare(a: DataBuf, aOff: number, b: DataBuf, bOff: number, len: number): number {
  if (boundPair(a, b)) {
    regs[R_SOFF] = aOff;
    regs[R_DOFF] = bOff;
    regs[R_LEN] = len;
    const r = (addon as Addon).compareBound();
    if (r !== null) return r;
    forget(a, b);
  }
  // (Buffer.compare's own checks: a RangeError out of bounds, as the addon's)
  return Buffer.prototype.compare.call(a.u8, b.u8, bOff, bOff + len, aOff, aOff + len);
}

/**
 * Compare len bytes of a.u8 at aOff with len bytes of b.u8 at bOff: -1, 0 or
 * 1, as Buffer.compare; null when the addon is not there. A CPU checks each
 * page it reads back against its pattern with it (workloads/cpu-worker.ts):
 * on bound buffers it is a memcmp behind one N-API call. Out of bounds is a
 * RangeError. Measured with ab against the build that used Buffer.compare
 * there (14 processes, per op): fault plain-mmap -4.4% and -4.6% at 1 and 2
 * CPUs, madvise-encrypt -3.4% at 1 CPU, migration plain-mmap -9.0% at 1 CPU
 * (p_holm 0.004-0.012, < 0.001 for madvise-encrypt).
 */
export function hostCompare(): ((a: DataBuf, aOff: number, b: DataBuf, bOff: number, len: number) => number) | null {
  return addon === null ? null : compare;
}

/**
 * len bytes from src.u8[srcOff] to dst.u8[dstOff] (memmove), without a view
 * of either range (hardware/engine.ts); null when the addon is not there.
 * The addon checks the ranges: out of bounds is a RangeError.
 */
export function hostCopy(): ((src: DataBuf, srcOff: number, dst: DataBuf, dstOff: number, len: number) => void) | null {
  return addon === null ? null : copy;
}

function _addon(): Addon {
  if (addon === null) throw new Error(`native backend: ${why}`);
  return addon;
}

function crypt(h: object, src: DataBuf, srcOff: number, dst: DataBuf, dstOff: number, len: number, unit: number, enc: 0 | 1): void {
  regs[R_SOFF] = srcOff;
  regs[R_DOFF] = dstOff;
  regs[R_LEN] = len;
  regs[R_UNIT] = unit;
  regs[R_ENC] = enc;
  if (boundPair(src, dst)) {
    if ((addon as Addon).cryptBound(h)) return;
    forget(src, dst);
  }
  (addon as Addon).crypt(h, src.u8, dst.u8);
}

function nativeOn(impl: 'evp' | undefined): XtsBackend {
  return {
    name: 'native',
    importKey(key: Uint8Array): XtsKey {
      checkOpensslKey(key);
      return redact<NativeKey>({ backend: 'native', h: _addon().importKey(key, impl) }, '[native XtsKey]');
    },
    rekey(key: XtsKey, bytes: Uint8Array): void {
      checkOpensslKey(bytes);
      _addon().rekey((key as NativeKey).h, bytes);
    },
    encrypt(key, src, srcOff, dst, dstOff, len, unit) {
      checkUnit(src, srcOff, dst, dstOff, len, unit);
      crypt((key as NativeKey).h, src, srcOff, dst, dstOff, len, unit, 1);
    },
    decrypt(key, src, srcOff, dst, dstOff, len, unit) {
      checkUnit(src, srcOff, dst, dstOff, len, unit);
      crypt((key as NativeKey).h, src, srcOff, dst, dstOff, len, unit, 0);
    },
  };
}

/** The native backend, on the addon's best implementation for this CPU (nativeImpl()). */
export const nativeBackend: XtsBackend = nativeOn(undefined);

/** The native backend with every key on OpenSSL's EVP: the tests check the VAES path against it. */
export const nativeEvpBackend: XtsBackend = nativeOn('evp');
