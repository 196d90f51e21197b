// The host's own spread, measured in every process that times cells: a
// fixed piece of native work (AES-XTS of one 64 KiB data unit in place,
// with the native addon's XTS, or node:crypto's where the addon is not
// there; the same bytes, key and tweak every pass), timed in a short window
// before the process's cells and another after them. None of the simulator
// runs in it, and none of it is JIT-compiled JavaScript, so how much its time
// moves between the processes of a run is the spread the host gives any
// timing there: no cell's spread between processes can be expected below
// it. Run against run, its median says whether the host itself got faster
// or slower (compare prints both).
//
// Why native: a JavaScript loop measures V8 as much as the host. Measured on
// the development VM (2 vCPUs, shared host), fresh processes: a fixed
// integer loop over a 64 KiB array ran at two speeds, 23 or 29-30 us a sweep,
// depending on how V8 had compiled it in that process, and in 3 of 9
// processes of a run it was still unoptimised after its warm-up (5x
// slower); with --no-concurrent-recompilation never optimised at all. The
// native pass in 12 fresh processes: 5.2-6.3 us, one level.
//
// Why it is needed there: that loop, 80 ms a process in 20 fresh processes
// a second apart on an otherwise idle guest, gave a median time with a CV of
// 7.0% between processes, and windows of 50 ms within one process drifted
// by 15-20% over seconds. The guest sees no steal and no load while that
// happens: the other tenants of the host are invisible from inside.
//
// Why cells are not divided by it: this reference is timed on the process's
// main thread before and after its cells, and the host's speed changes
// within seconds, so a cell's time divided by it spread more, not less
// (median CV 16.0 -> 18.5%). A pass that does track a cell must run on the
// thread doing the cell's work, at the same time. Measured with a 32 KiB
// pass on the worker CPU at each round's start (not in the product): over
// 405 windows of 50 ms of fault madvise-encrypt t1 it correlated with the
// round's work at Pearson 0.94 while the host changed speed (0.14 for the
// same pass on the kernel thread), and between 9 processes it lowered the
// fault cells' median CV from 14.1 to 7.3% and from 11.2 to 9.3% (two runs).
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { dataBuf, type DataBuf, type XtsBackend, type XtsKey } from '../hardware/backend.js';
import { nativeBackend, nativeImpl } from '../hardware/xts-native.js';
import { opensslBackend } from '../hardware/xts-openssl.js';
import { cvPct, median } from './stats.js';
import { humanNs } from './text.js';

/** Bytes of one pass: one data unit, in place. */
const UNIT = 64 * 1024;
/** Each window: warm-up, then timing, ms. */
export const HOST_REF_WARMUP_MS = 10;
export const HOST_REF_MS = 30;

/** What the reference runs on this host: 'native vaes-avx512', 'native openssl-evp', or 'openssl' (node:crypto). */
export function hostRefImpl(): string {
  const impl = nativeImpl();
  return impl === null ? 'openssl' : `native ${impl}`;
}

let ref: { be: XtsBackend; key: XtsKey; buf: DataBuf } | null = null;

/** One pass: ns. */
function pass(): number {
  if (ref === null) {
    const be = nativeImpl() === null ? opensslBackend : nativeBackend;
    const key = new Uint8Array(32).map((_, i) => (i * 37 + 11) & 0xff); // two different halves, as OpenSSL wants
    ref = { be, key: be.importKey(key), buf: dataBuf(new Uint8Array(UNIT)) };
  }
  const { be, key, buf } = ref;
  const t = performance.now();
  be.encrypt(key, buf, 0, buf, 0, UNIT, 0x1000);
  return (performance.now() - t) * 1e6;
}

/**
 * Time one window of the reference: the passes of `ms` after a warm-up of
 * `warmupMs`. Returns each pass's ns, in time order (at least one).
 */
export function hostReferenceWindow(ms = HOST_REF_MS, warmupMs = HOST_REF_WARMUP_MS): number[] {
  const warm = performance.now() + warmupMs;
  do pass();
  while (performance.now() < warm);
  const out: number[] = [];
  const end = performance.now() + ms;
  do out.push(pass());
  while (performance.now() < end);
  return out;
}

/**
 * A run's host reference as one line ('5.66 us a pass (native vaes-avx512),
 * cv 5.5% between 9 processes'), or '' for a run that did not record it.
 */
export function hostRefSummary(perProcess: readonly number[] | undefined, impl: string | undefined): string {
  if (!perProcess || perProcess.length === 0) return '';
  const n = perProcess.length;
  const spread = n > 1 ? `, cv ${cvPct(perProcess).toFixed(1)}% between ${n} processes` : ', 1 process';
  return `${humanNs(median(perProcess))} a pass${impl ? ` (${impl})` : ''}${spread}`;
}

/**
 * The host's parallel capacity: `threads` threads (this one and threads - 1
 * workers) time the reference side by side for one window, between two
 * windows of this thread alone. Returns how many times one thread's work
 * they got through together: the sum over the threads of the lone
 * thread's time a pass over theirs. A host that gives each thread a CPU of
 * its own returns about `threads`; one whose CPUs are shared (other
 * tenants, SMT siblings, a hypervisor that runs two vCPUs on one core)
 * returns less, and no cell of that many CPUs can gain more over one CPU
 * than that. Measured on the development VM (2 vCPUs, shared host): two
 * `openssl speed -evp aes-128-xts` processes pinned to the two vCPUs, 8
 * times a second apart, ran at 1.18-2.29x one alone (median about 1.8x),
 * one of them often 20% slower than the other.
 */
export async function hostScaling(threads: number, ms = HOST_REF_MS, warmupMs = HOST_REF_WARMUP_MS): Promise<number> {
  if (!Number.isInteger(threads) || threads < 2) throw new RangeError(`threads: expected an integer >= 2, got ${threads}`);
  const before = median(hostReferenceWindow(ms, warmupMs));
  const go = new Int32Array(new SharedArrayBuffer(4));
  const workers = Array.from({ length: threads - 1 }, () => new Worker(new URL('./hostref-worker.js', import.meta.url), { workerData: { go: go.buffer, ms, warmupMs } }));
  try {
    // each warms up, says so, and waits for the word: then all start together
    await Promise.all(workers.map((w) => once(w, 'message')));
    const theirs = Promise.all(workers.map((w) => once(w, 'message')));
    Atomics.store(go, 0, 1);
    Atomics.notify(go, 0);
    const mine = median(hostReferenceWindow(ms, 0));
    const ns = [mine, ...(await theirs).map(([v]) => v as number)];
    const solo = (before + median(hostReferenceWindow(ms, 0))) / 2;
    return ns.reduce((sum, x) => sum + solo / x, 0);
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

/**
 * A run's host scaling as one line ('2 threads did 1.78x one thread's work
 * (1.21-1.93x between 9 processes)'), or '' for a run that did not record it.
 */
export function hostScalingSummary(perProcess: readonly number[] | undefined, threads: number | undefined): string {
  if (!perProcess || perProcess.length === 0 || threads === undefined) return '';
  const n = perProcess.length;
  const spread = n > 1 ? ` (${Math.min(...perProcess).toFixed(2)}-${Math.max(...perProcess).toFixed(2)}x between ${n} processes)` : '';
  return `${threads} threads did ${median(perProcess).toFixed(2)}x one thread's work${spread}`;
}
