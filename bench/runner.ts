// The matrix runner: for every cell, start it (counting round: outcome and
// exact counters), then time further rounds with tinybench (warm-up, then a
// minimum time and a minimum number of samples) when the outcome leaves
// something to time. Results are data: a cell that cannot run is a row with
// its outcome, never an exception that ends the run.
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Bench } from 'tinybench';
import { COST_NAMES, type CostTable } from '../hardware/costs.js';
import { CONTROL_DESIGN } from '../interfaces/contract.js';
import type { Counter, LeakScan } from '../interfaces/conformance.js';
import { TIMEABLE, startCell, timedRound, type CellConfig } from '../workloads/cell.js';
import type { Workload } from '../workloads/workload.js';
import { modelCell, overNs } from './model.js';
import { hostReferenceWindow, hostScaling } from './hostref.js';
import { LoadMeter, NOISY_RETRIES, isNoisy, stabilityFlags } from './stability.js';
import { median } from './stats.js';
import { COUNTER_COLUMNS, SCHEMA_VERSION, cellKey, termColumn, type CellSamples, type Kernel, type Row, type RunMeta, type SwapKind } from './schema.js';

export interface CellPlan {
  readonly backend: string;
  readonly hardware: string;
  readonly design: string;
  readonly kernel: Kernel;
  readonly swap: SwapKind;
  readonly workload: Workload;
  readonly threads: number;
  /** false: counted and modelled only (--guest-hardware) */
  readonly timed?: false;
}

export interface RunOptions {
  readonly seed: number;
  /** minimum timing per cell, ms */
  readonly timeMs: number;
  /** minimum samples per cell */
  readonly minSamples: number;
  /** warm-up per timed cell, ms (WARMUP_MS by default on the command line) */
  readonly warmupMs: number;
  /**
   * The warm-up lap: before its cells, the process runs this many of the
   * first timed cells of its order once and discards them (default 0).
   */
  readonly warmupCells?: number;
  /** where scratch files (swap, DAX images) go */
  readonly tmpdir: string;
  /** the cost table the model uses, and where it came from (a row's cost_source) */
  readonly costs: CostTable;
  readonly costSource: string;
  /** called after each cell */
  readonly progress?: (done: number, total: number, row: Row) => void;
  /** the order to run plan's cells in (indices; default: plan order) */
  readonly order?: readonly number[];
  /** run only these cells of plan (indices; default: all) */
  readonly only?: ReadonlySet<number>;
  /** asked before each cell: a reason to stop here (a signal's name), or null to go on */
  readonly stop?: () => string | null;
}

export interface RunResult {
  readonly rows: Row[];
  readonly samples: CellSamples[];
  /** run --repeat: the processes whose cells are in it (fewer than asked when the run was stopped) */
  readonly processes?: number;
  /**
   * Per process that ran cells, the median ns of one pass of the host
   * reference over its two windows (hostref.ts); none when it ran none.
   */
  readonly hostRefNs: number[];
  /**
   * Per process that ran cells of 2 or more CPUs, how many times one
   * thread's work the host got through with as many threads as its most
   * CPUs (hostref.ts hostScaling); none otherwise.
   */
  readonly hostScaling?: number[];
  /** run --repeat: the node and V8 flags the children said they ran with (' | ' between different ones) */
  readonly timingFlags?: string;
}

/**
 * Defaults of `run`: fresh processes per timed cell, and per process the
 * warm-up and minimum timing of each cell, ms. Chosen for the default suite
 * (78 timed cells) to finish in under 3 minutes on 2 CPUs. 7 processes are
 * the fewest with which the exact U test on per-process medians can reach
 * p < 0.05 after Holm over the suite's cells (2 / C(14, 7) = 0.00058 vs
 * 0.05 / 78 = 0.00064), but only with the two sides completely apart: one
 * process of the new side caught in a slow spell of the host (a whole cell
 * about 1.8x slower, see the README) and a real change goes unseen. 9 leave
 * room for that: U <= 3 still gives p = 2 x 7 / C(18, 9) = 0.00029. The
 * shorter timing pays for them: within a process a cell's rounds vary by a
 * few % at most, between processes by far more, and the warm-up lap has
 * the shared code compiled before any cell is timed. Measured on this
 * 2-vCPU VM, same commit, one run each: 7 x (120 + 120 ms) took 165-170 s,
 * 9 x (80 + 80 ms) 151-154 s. Against a run where madvise-encrypt's
 * allocate made three extra page copies per page, 9 x 80 ms flagged fault
 * t1 (+12.3%, p_holm 0.003) and enosys-fallback t1 (+10.9%, 0.022); 7 x 120
 * ms flagged fault t1 (+13.9%, 0.045) and, with the exact test for ties,
 * enosys-fallback on the unpatched kernel (+16.9%, 0.045). Two runs of one
 * commit flagged nothing with either. Shorter still, 9 x (30 + 30 ms) took
 * 63-67 s a run, but two runs of one commit had swap dm-crypt
 * madvise-encrypt t2 flagged (+83.9%, p_holm 0.022). With six extra page
 * copies per page in madvise-encrypt's allocate (+18% a round, measured),
 * two runs a side crossed into four pairs flagged: fault t1; enosys-fallback
 * t1; nothing; and both of those plus three cells the change does not touch
 * (swap t2, memfd-secret fault t1, qemu dev-mktme t1). The warm-up is
 * shorter than it was with one process (500 ms): a slope left in it is the
 * same in every fresh process, so it does not read as a change between runs.
 */
export const REPEAT = 9;
export const WARMUP_MS = 80;
export const TIME_MS = 80;

/**
 * Cells of the warm-up lap each process runs first and throws away, one of
 * each workload first (warmupLap; the default suite has 8 workloads). The
 * first cells of a fresh process ran slower than the same cells later in it,
 * whatever they were: on the default suite (7 processes, shuffled orders, a
 * quiet machine), a process's median for a cell over the cell's median of
 * all processes was 1.32 at positions 0-4 of the process's order, 1.08 at
 * 5-9 and 0.98-1.00 from position 10 on (the shared kernel and workload code
 * is still being compiled and re-optimised while new designs and workloads
 * come along; a cell's own warm-up sees only its own paths). Since every
 * process starts with other cells, that start-up cost reached every cell's
 * spread between processes. Eight cells added 12 s to a default run of 7
 * processes at 120 + 120 ms a cell (1.7 s each); less at 80 + 80 ms.
 */
export const WARMUP_CELLS = 8;

/**
 * Samples kept per cell for compare: the medians of up to BATCHES runs of
 * consecutive rounds (batch means). Round times are autocorrelated (JIT
 * tier-ups, GC phases last many rounds), so thousands of single rounds would
 * make the U test far too sure of itself; batch medians are close to
 * independent. Measured on the default suite: two runs of the same commit
 * gave 11 false "regressions" at 5% with single rounds as samples.
 */
export const BATCHES = 20;

interface Timing {
  median: number;
  p99: number;
  rme: number;
  /** timed rounds */
  count: number;
  samples: number[];
}

/** Round numbers go on across attempts (a retried cell never repeats a round's seed). */
interface RoundCounter {
  n: number;
}

async function timeCell(run: (n: number) => Promise<number>, ops: number, o: RunOptions, rounds: RoundCounter = { n: 0 }): Promise<Timing> {
  const bench = new Bench({
    time: o.timeMs,
    iterations: o.minSamples,
    // The simulator's JS keeps getting faster for ~0.5 s of rounds (JIT): a
    // short warm-up left the timed samples on that slope and made two runs of
    // the same code differ by up to 2.6x in some cells.
    warmupTime: o.warmupMs,
    warmupIterations: 10,
    retainSamples: true,
    throws: true,
  });
  // tinybench keeps its samples sorted; the batches need them in time order
  const ordered: number[] = [];
  bench.add('cell', async () => {
    const t = performance.now();
    await run(++rounds.n);
    ordered.push(performance.now() - t);
  });
  await bench.run();
  const r = bench.tasks[0].result;
  if (r.state !== 'completed') throw new Error(r.state === 'errored' ? r.error.message : `timing ${r.state}`);
  const perOp = 1e6 / ops; // ms per round -> ns per op
  const timed = ordered.slice(ordered.length - r.latency.samplesCount); // warm-up rounds came first
  return {
    median: r.latency.p50 * perOp,
    p99: r.latency.p99 * perOp,
    rme: r.latency.rme,
    count: r.latency.samplesCount,
    samples: batchMedians(timed, BATCHES).map((x) => x * perOp),
  };
}

/** Medians of `batches` contiguous, nearly equal runs of xs (fewer when xs is short). */
export function batchMedians(xs: readonly number[], batches: number): number[] {
  const b = Math.min(batches, xs.length);
  const out: number[] = [];
  for (let i = 0; i < b; i++) out.push(median(xs.slice(Math.floor((i * xs.length) / b), Math.floor(((i + 1) * xs.length) / b))));
  return out;
}

/**
 * Time a started cell, again while other processes took a significant share
 * of the machine (up to NOISY_RETRIES more times). The cleanest attempt is
 * kept; `noisy` when none was clean.
 */
async function timeClean(run: (n: number) => Promise<number>, ops: number, o: RunOptions): Promise<Timing & { otherPct: number; noisy: boolean }> {
  let best: (Timing & { otherPct: number }) | null = null;
  const rounds: RoundCounter = { n: 0 };
  for (let attempt = 0; attempt <= NOISY_RETRIES; attempt++) {
    const meter = new LoadMeter();
    meter.start();
    const t = await timeCell(run, ops, o, rounds);
    const otherPct = meter.stop();
    // NaN (no /proc/stat) counts as clean: nothing says otherwise
    if (best === null || !(otherPct >= best.otherPct)) best = { ...t, otherPct };
    if (!isNoisy(otherPct)) break;
  }
  return { ...best!, noisy: isNoisy(best!.otherPct) };
}

/** The session config of a planned cell (run, phases; ab's cellConfig makes it for another build). */
export function plannedConfig(p: CellPlan, seed: number, workdir: string): CellConfig {
  return {
    design: p.design,
    hardware: p.hardware,
    kernel: p.kernel,
    workload: p.workload,
    threads: p.threads,
    seed,
    backend: p.backend,
    workdir,
    encryptedSwap: p.swap === 'encrypted',
  };
}

/** Run one planned cell: its row, and its samples for compare. */
async function runCell(p: CellPlan, meta: RunMeta, o: RunOptions): Promise<{ row: Row; samples: CellSamples }> {
  const workdir = mkdtempSync(join(o.tmpdir, 'memcrypt-cell-'));
  try {
    const start = await startCell(plannedConfig(p, o.seed, workdir));
    let t: Timing & { otherPct: number; noisy: boolean } = { median: NaN, p99: NaN, rme: NaN, count: 0, samples: [], otherPct: NaN, noisy: false };
    try {
      if (start.timeable && p.timed !== false) t = await timeClean((n) => timedRound(start, n), start.ops, o);
    } finally {
      await start.session.close();
    }
    const row = toRow(meta, p, start, t, o);
    row.other_cpu_pct = t.otherPct;
    row.stability = t.count > 0 ? stabilityFlags(t.noisy, [t.samples]).join('+') : '';
    // one process: its median is the one sample compare tests; the batch medians show drift
    const samples = t.count > 0 ? { key: cellKey(row), samples: [t.median], batches: [t.samples] } : { key: cellKey(row), samples: [] };
    return { row, samples };
  } finally {
    rmSync(workdir, { recursive: true, force: true });
  }
}

/**
 * The warm-up lap: n timed cells of the order (timed: the process's timed
 * cells in its order), the first cell of every workload before any second
 * one. A workload's own code (key-exhaustion's: spawn, exit and the VMA
 * tree of 71 processes a round) is compiled in the first cell of it that a
 * process runs, and a lap of the first n cells of the order covered 8
 * workloads only by chance. In 4 default runs (36 processes), the first
 * key-exhaustion cell of a process whose lap had none ran at 1.55x that
 * cell's median of all processes (mean 1.75x, over 1.5x in 13 of 25); the
 * later ones at 1.00x (over 1.5x in 8 of 191). The first cell of swap ran
 * at 1.15x (8 cases); of the other workloads, at 0.95-1.02x.
 */
export function warmupLap(plan: readonly CellPlan[], timed: readonly number[], n: number): number[] {
  const seen = new Set<string>();
  const first: number[] = [], rest: number[] = [];
  for (const i of timed) {
    const w = plan[i].workload.name;
    (seen.has(w) ? rest : first).push(i);
    seen.add(w);
  }
  return [...first, ...rest].slice(0, n);
}

/**
 * Run the planned cells (all, or o.only) in plan order or in o.order, after
 * the warm-up lap (o.warmupCells timed cells, one of each workload first:
 * warmupLap; run and discarded).
 * The host reference (hostref.ts) is timed after the lap and after the last
 * cell.
 */
export async function runMatrix(plan: readonly CellPlan[], meta: RunMeta, o: RunOptions): Promise<RunResult> {
  const rows: Row[] = [];
  const samples: CellSamples[] = [];
  const order = (o.order ?? plan.map((_, i) => i)).filter((i) => o.only === undefined || o.only.has(i));
  const lap = warmupLap(plan, order.filter((i) => plan[i].timed !== false), o.warmupCells ?? 0);
  for (const i of lap) {
    if (o.stop?.() != null) break;
    await runCell(plan[i], meta, o);
  }
  const ref = order.length > 0 && o.stop?.() == null ? hostReferenceWindow() : [];
  const threads = scalingThreads(plan, order);
  const scaling = threads > 1 && o.stop?.() == null ? [await hostScaling(threads)] : [];
  for (const [done, i] of order.entries()) {
    if (o.stop?.() != null) break;
    const r = await runCell(plan[i], meta, o);
    rows.push(r.row);
    samples.push(r.samples);
    o.progress?.(done + 1, order.length, r.row);
  }
  if (rows.length > 0) ref.push(...hostReferenceWindow());
  overPlain(rows);
  return { rows, samples, hostRefNs: rows.length > 0 ? [median(ref)] : [], hostScaling: rows.length > 0 ? scaling : [] };
}

/** The threads hostScaling runs for the cells of `order`: their most worker CPUs (1: none of 2 or more, nothing to measure). */
export function scalingThreads(plan: readonly CellPlan[], order: readonly number[]): number {
  let t = 1;
  for (const i of order) if (plan[i].timed !== false) t = Math.max(t, plan[i].threads);
  return t;
}

/** Where the cell's plain-mmap control is: the same cell but for the design. */
const controlKey = (r: Row): string => cellKey({ ...r, interface: CONTROL_DESIGN });

/** model_over_plain_ns_per_op of every row whose control cell ran (and was modelled). */
export function overPlain(rows: Row[]): void {
  const control = new Map(rows.filter((r) => r.interface === CONTROL_DESIGN).map((r) => [cellKey(r), r]));
  for (const r of rows) {
    const c = control.get(controlKey(r));
    r.model_over_plain_ns_per_op = c ? overNs(r.modelled_ns_per_op, c.modelled_ns_per_op) : NaN;
  }
}

function toRow(
  meta: RunMeta,
  p: CellPlan,
  s: { outcome: string; errno: string | null; leaks: LeakScan; counters: Readonly<Record<Counter, number>>; ops: number },
  t: Timing,
  o: RunOptions,
): Row {
  // A cell that did not run its scenario (unsupported, crashed) costs nothing
  // that could be compared: no modelled cost at all, rather than the cost of
  // the part that ran before it failed.
  const ran = TIMEABLE.has(s.outcome as never) || s.outcome === 'data-loss';
  const counters = {} as Record<(typeof COUNTER_COLUMNS)[number], number>;
  for (const c of COUNTER_COLUMNS) counters[c] = s.counters[c];
  const m = modelCell(o.costs, counters, ran ? s.ops : 0);
  const row = {
    schema_version: SCHEMA_VERSION,
    run_id: meta.run_id,
    git_sha: meta.git_sha,
    started_at: meta.started_at,
    host: meta.host,
    cpu_model: meta.cpu_model,
    node_version: meta.node_version,
    crypto_backend: p.backend,
    hardware: p.hardware,
    interface: p.design,
    kernel: p.kernel,
    swap: p.swap,
    workload: p.workload.name,
    threads: p.threads,
    outcome: s.outcome,
    errno: s.errno ?? '',
    leak_medium: s.leaks.media.join('+'),
    leak_bytes: s.leaks.bytes,
    modelled_ns_per_op: m.total,
    model_over_plain_ns_per_op: NaN, // overPlain(), once every cell ran
    cost_source: o.costSource,
    ops: s.ops,
    sim_ns_per_op_median: t.median,
    sim_ns_per_op_p99: t.p99,
    sim_rme_pct: t.rme,
    sim_rounds: t.count,
    sim_processes: t.count > 0 ? 1 : 0,
    sim_cv_pct: NaN,
    other_cpu_pct: NaN,
    stability: '',
    ...counters,
  } as Row;
  for (const c of COST_NAMES) row[termColumn(c)] = m.terms[c];
  return row;
}
