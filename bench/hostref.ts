// The host's own spread, measured in every process that times cells: a fixed
// single-thread loop (integer arithmetic over a 64 KiB typed array, no
// allocation, no I/O, no other thread), timed in a short window before the
// process's cells and another after them. Nothing the simulator does runs
// in it, so how much its time moves between the processes of a run is the
// spread the host gives any timing there: no cell's spread between
// processes can be expected below it. Run against run, its median says
// whether the host itself got faster or slower (compare prints both).
//
// Why it is needed on the development VM (2 vCPUs, shared host): this very
// loop, 80 ms a process in 20 fresh processes a second apart on an
// otherwise idle guest, gave a median time with a CV of 7.0% between
// processes, and windows of 50 ms within one process drifted by 15-20%
// over seconds. The guest sees no steal and no load while that happens:
// the other tenants of the host are invisible from inside.

import { cvPct, median } from './stats.js';
import { humanNs } from './text.js';

/** Words of the loop's array: 64 KiB, within any L2. */
const WORDS = 1 << 14;
/** Sweeps of the array per pass (one pass is about 0.5 ms on the development VM). */
const SWEEPS = 4;
/** Each window: warm-up (the loop's own JIT tiers), then timing, ms. */
export const HOST_REF_WARMUP_MS = 10;
export const HOST_REF_MS = 30;

const words = new Uint32Array(WORDS);
/** The loop's last state, kept so that no compiler may drop the loop. */
let sink = 0;

/** One pass of the loop: ns. */
function pass(): number {
  const t = performance.now();
  let x = sink | 1;
  for (let s = 0; s < SWEEPS; s++)
    for (let i = 0; i < WORDS; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      words[i] ^= x;
    }
  sink = x ^ words[x & (WORDS - 1)];
  return (performance.now() - t) * 1e6;
}

/**
 * Time one window of the reference loop: the passes of `ms` after a warm-up
 * of `warmupMs`. Returns each pass's ns, in time order (at least one).
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
 * A run's host reference as one line ('6.31 us a pass, cv 7.0% between 9
 * processes'), or '' for a run that did not record it.
 */
export function hostRefSummary(perProcess: readonly number[] | undefined): string {
  if (!perProcess || perProcess.length === 0) return '';
  const n = perProcess.length;
  const spread = n > 1 ? `, cv ${cvPct(perProcess).toFixed(1)}% between ${n} processes` : ' (1 process)';
  return `${humanNs(median(perProcess))} a pass${spread}`;
}
