// Is a timing trustworthy? What the machine did while a cell was timed, and
// what the cell's samples say about themselves.
//
// Load from other tenants is the dominant noise on a shared machine (a
// 1-worker fault cell goes from 21-35 us quiet to 67-81 us with others at
// 50-75% CPU: issue 12). So the share of the machine's CPU time that other
// processes used is measured per timed cell, from /proc/stat (all CPUs' busy
// time) minus this process's own CPU time (process.cpuUsage: every thread,
// the worker CPUs included). A cell timed under a significant share is timed
// again, a bounded number of times, and marked `noisy` if it never ran clean.
import { readFileSync } from 'node:fs';
import { bimodalityCoefficient, spearmanTrend } from './stats.js';

/** Other processes' share of the machine above which a timing is not trusted, %. */
export const NOISY_SHARE_PCT = 10;
/** Times a noisy cell is timed again before it is kept as `noisy`. */
export const NOISY_RETRIES = 2;
/** |Spearman rho| of the batch medians against time above which a cell drifts. */
export const DRIFT_RHO = 0.6;
/** Sarle's coefficient above which a sample is bimodal (5/9: a uniform distribution's). */
export const BIMODAL_BC = 5 / 9;

const USER_HZ = 100; // /proc/stat counts in USER_HZ ticks, 100 on every Linux ABI (sysconf(_SC_CLK_TCK))

interface CpuSnapshot {
  /** all CPUs: busy and total time, s */
  readonly busy: number;
  readonly total: number;
  /** this process's CPU time, s */
  readonly own: number;
}

function snapshot(): CpuSnapshot | null {
  let line: string;
  try {
    line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
  } catch {
    return null; // not Linux: no measurement
  }
  // cpu  user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user)
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (f.length < 8 || f.some((x) => !Number.isFinite(x))) return null;
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f;
  const busy = user + nice + system + irq + softirq + steal;
  const u = process.cpuUsage();
  return { busy: busy / USER_HZ, total: (busy + idle + iowait) / USER_HZ, own: (u.user + u.system) / 1e6 };
}

/** Measures other processes' share of the machine between start() and stop(). */
export class LoadMeter {
  private at: CpuSnapshot | null = null;

  start(): void {
    this.at = snapshot();
  }

  /** Others' share of all CPUs' time since start(), % (0-100); NaN where it cannot be measured. */
  stop(): number {
    const a = this.at;
    const b = snapshot();
    if (a === null || b === null || b.total <= a.total) return NaN;
    // the tick counts are coarse (10 ms per CPU): never below 0
    const others = Math.max(0, b.busy - a.busy - (b.own - a.own));
    return Math.min(100, (others / (b.total - a.total)) * 100);
  }
}

export const isNoisy = (otherPct: number): boolean => otherPct > NOISY_SHARE_PCT;

/** Does a row's `stability` column ('' or flags joined with '+') carry this flag? */
export const hasFlag = (r: { readonly stability: string }, flag: string): boolean => r.stability.split('+').includes(flag);

/**
 * A cell's stability flags from its per-process series: `noisy` if any
 * process never timed it clean; `drift` if the batch medians trend within
 * the processes (mean |rho| over processes with 5 or more batches);
 * `bimodal` if the batch medians, pooled, have two modes.
 */
export function stabilityFlags(noisy: boolean, batches: readonly (readonly number[])[]): string[] {
  const flags: string[] = [];
  if (noisy) flags.push('noisy');
  const rhos = batches.filter((b) => b.length >= 5).map((b) => Math.abs(spearmanTrend(b))).filter((r) => !Number.isNaN(r));
  if (rhos.length > 0 && rhos.reduce((a, b) => a + b, 0) / rhos.length > DRIFT_RHO) flags.push('drift');
  const pooled = batches.flat();
  if (pooled.length >= 10 && bimodalityCoefficient(pooled) > BIMODAL_BC) flags.push('bimodal');
  return flags;
}
