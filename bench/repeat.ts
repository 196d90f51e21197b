// `run --repeat N`: every timed cell is timed in N fresh processes, each
// running the cells in its own shuffled order, so that drift (JIT, heap
// growth, a tenant that comes and goes) spreads over all cells instead of
// hitting the few that ran at the wrong time. Rounds within one process are
// not independent (autocorrelated: JIT tiers, GC phases), processes are: a
// cell's samples are its per-process medians, and compare tests those.
//
// Process 1 runs every cell (the counting round gives outcome and counters);
// processes 2..N run only the cells process 1 could time. Each child is this
// CLI's hidden `_cells` command with a job file; it writes its rows (CSV) and
// samples beside the job, and this process merges them.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CostTable } from '../hardware/costs.js';
import { formatCsv, formatSamples, parseCsv, parseSamples } from './csv.js';
import { InputError } from './io.js';
import type { RunArgs, RunIo } from './run.js';
import { overPlain, runMatrix, type CellPlan, type RunOptions, type RunResult } from './runner.js';
import { COUNTER_COLUMNS, cellKey, isPositiveNumbers, type CellSamples, type Row, type RunMeta } from './schema.js';
import { hasFlag, stabilityFlags } from './stability.js';
import { cvPct, median, mulberry32 } from './stats.js';

const CLI = fileURLToPath(new URL('./cli.js', import.meta.url));

/**
 * V8 flags of the `_cells` children, which time the cells. With
 * --no-concurrent-recompilation V8 optimises a hot function on the thread
 * that runs it, at once, instead of queueing it for a background compiler
 * thread. On 2 host CPUs that thread competes with the simulator's busy
 * threads (kernel thread and worker CPUs spin), so when a cell's kernel and
 * worker code got its optimised version depended on the scheduler: a single
 * cell in one process went 5.0-5.5 us a page for 10 windows of 50 ms and
 * then 3.1-4.3 as optimisations landed one by one (--trace-opt), more than
 * a second after its start. Measured on the 2-vCPU development VM, runs of
 * 9 processes alternated with and without the flag: the median of the
 * cells' spread between processes (CV) went 14.4 -> 9.1%, 21.4 -> 16.0%,
 * 22.9 -> 17.1% (24 cells of fault, migration and enosys-fallback) and
 * 27.3 -> 24.2%, 28.6 -> 22.9% (the default suite), lower for 1-CPU and
 * 2-CPU cells alike, and the cells' medians were no slower (geomean -5.6%
 * and -12.6% on the default suite, 0 regressions).
 */
export const TIMING_V8_FLAGS: readonly string[] = ['--no-concurrent-recompilation'];

/** A permutation of 0..n-1 from a seed (Fisher-Yates over mulberry32). */
export function shuffledOrder(n: number, seed: number): number[] {
  const rand = mulberry32(seed);
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

/** A planned cell's key, from names alone (ab's cells name their workload; the other build has its own object). */
export const namedCellKey = (c: Omit<CellPlan, 'workload' | 'timed'> & { workload: string }): string =>
  cellKey({ crypto_backend: c.backend, hardware: c.hardware, interface: c.design, kernel: c.kernel, swap: c.swap, workload: c.workload, threads: c.threads });

const planKey = (p: CellPlan): string => namedCellKey({ ...p, workload: p.workload.name });

/** A run's rows and samples put back in plan order (reports and CSVs read in plan order). */
export function inOrder(plan: readonly CellPlan[], r: RunResult): RunResult {
  const at = new Map(plan.map((p, i) => [planKey(p), i]));
  const idx = (key: string): number => at.get(key) ?? Number.MAX_SAFE_INTEGER;
  return {
    rows: [...r.rows].sort((a, b) => idx(cellKey(a)) - idx(cellKey(b))),
    samples: [...r.samples].sort((a, b) => idx(a.key) - idx(b.key)),
    hostRefNs: r.hostRefNs,
    ...(r.hostScaling ? { hostScaling: r.hostScaling } : {}),
  };
}

/** What a `_cells` child is asked to do. */
export interface CellsJob {
  readonly args: RunArgs;
  readonly order: number[];
  /** plan indices to run; null: all */
  readonly only: number[] | null;
  readonly seed: number;
  readonly timeMs: number;
  readonly minSamples: number;
  readonly warmupMs: number;
  readonly warmupCells: number;
  readonly costs: CostTable;
  readonly costSource: string;
  readonly meta: RunMeta;
  /** where to write the rows (CSV) and the samples */
  readonly csv: string;
  readonly samples: string;
  /** where the child writes what it says of itself (ProcInfo, JSON) */
  readonly proc: string;
  /** the parent's run directory: the cells' scratch files go there */
  readonly tmpdir: string;
  /** the parent's pid: a child whose parent is gone stops */
  readonly parent: number;
}

/** The `_cells` child: run the job's cells, write rows and samples. `plan` re-plans from the job's arguments. */
export async function runCellsJob(file: string, planOf: (a: RunArgs) => CellPlan[], progress?: RunOptions['progress']): Promise<void> {
  const job = JSON.parse(readFileSync(file, 'utf8')) as CellsJob;
  const cells = planOf(job.args);
  // SIGTERM from the parent (or SIGINT from the terminal): finish the cell,
  // write what is done. A parent that is gone (killed) ends the job too.
  let signal: string | null = null;
  const onSignal = (sig: NodeJS.Signals) => (signal = sig);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const res = await runMatrix(cells, job.meta, {
    seed: job.seed,
    timeMs: job.timeMs,
    minSamples: job.minSamples,
    warmupMs: job.warmupMs,
    warmupCells: job.warmupCells,
    tmpdir: job.tmpdir,
    stop: () => signal ?? (process.ppid !== job.parent ? 'parent gone' : null),
    costs: job.costs,
    costSource: job.costSource,
    order: job.order,
    ...(job.only ? { only: new Set(job.only) } : {}),
    ...(progress ? { progress } : {}),
  });
  if (process.ppid !== job.parent) process.exit(1); // no one to read it
  writeFileSync(job.samples, formatSamples(job.meta.run_id, res.samples), { mode: 0o600 });
  const info: ProcInfo = { host_ref_ns: res.hostRefNs, host_scaling: res.hostScaling ?? [], exec_argv: process.execArgv };
  writeFileSync(job.proc, JSON.stringify(info), { mode: 0o600 });
  writeFileSync(job.csv, formatCsv(res.rows), { mode: 0o600 });
}

/**
 * What a child that died said last: its stderr's last line that is not a
 * stack frame, the source line and caret above an uncaught error, or node's
 * closing version line (`Node.js v20.20.2`), so that an uncaught error gives
 * its own message.
 */
export function lastErrorLine(stderr: string): string | undefined {
  const lines = stderr.split('\n').filter((l) => l.trim() !== '' && !/^\s+at /.test(l) && !/^Node\.js v\d/.test(l) && !/^\s*\^+\s*$/.test(l));
  return lines.pop()?.trim();
}

/**
 * Run a timing child (this CLI's hidden `_cells` or `_ab` with a job file)
 * on TIMING_V8_FLAGS; resolves with its exit code, after passing it SIGTERM
 * when stop() says so.
 */
export function runChild(command: '_cells' | '_ab', jobFile: string, stop: () => string | null): Promise<{ status: number | null; signal: string | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...TIMING_V8_FLAGS, CLI, command, jobFile], { stdio: ['ignore', 'inherit', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      stderr += d;
      process.stderr.write(d);
    });
    let told = false;
    const poll = setInterval(() => {
      if (!told && stop() !== null) {
        told = true;
        child.kill('SIGTERM');
      }
    }, 100);
    child.on('error', (e) => {
      clearInterval(poll);
      reject(e);
    });
    child.on('close', (status, signal) => {
      clearInterval(poll);
      resolve({ status, signal, stderr });
    });
  });
}

/** What a `_cells` child says of itself: its host reference time ([] or [ns]), its host scaling ([] or [x]) and the flags it ran with. */
interface ProcInfo {
  host_ref_ns: number[];
  host_scaling: number[];
  exec_argv: string[];
}

function parseProcInfo(text: string, file: string): ProcInfo {
  let v: Partial<ProcInfo> | null;
  try {
    v = JSON.parse(text) as Partial<ProcInfo>;
  } catch {
    v = null;
  }
  const ref = v?.host_ref_ns, scaling = v?.host_scaling, argv = v?.exec_argv;
  if (!isPositiveNumbers(ref) || ref.length > 1 || !isPositiveNumbers(scaling) || scaling.length > 1 || !Array.isArray(argv) || !argv.every((x) => typeof x === 'string'))
    throw new InputError(file, 0, 'expected { host_ref_ns: [] or [ns], host_scaling: [] or [x], exec_argv: [flags] }');
  return { host_ref_ns: ref, host_scaling: scaling, exec_argv: argv };
}

/** Do two rows of one cell agree on everything its counting round must repeat exactly? */
const sameBehaviour = (a: Row, b: Row): boolean =>
  a.outcome === b.outcome && a.errno === b.errno && a.leak_medium === b.leak_medium && COUNTER_COLUMNS.every((c) => a[c] === b[c]);

/** Merge one cell's rows from the processes that ran it (the first ran it first, untimed ones included). */
export function mergeCell(rows: readonly Row[], samples: readonly CellSamples[]): { row: Row; samples: CellSamples } {
  const base = { ...rows[0] };
  const key = cellKey(base);
  const timed = rows.map((r, i) => ({ r, s: samples[i] })).filter((x) => x.r.sim_rounds > 0);
  if (timed.length === 0) return { row: base, samples: { key, samples: [] } };
  const noisyProc = timed.map((x) => hasFlag(x.r, 'noisy'));
  const clean = timed.filter((_, i) => !noisyProc[i]);
  // the medians compare tests: the clean processes', unless fewer than two ran clean
  const kept = clean.length >= 2 ? clean : timed;
  const medians = kept.map((x) => x.r.sim_ns_per_op_median);
  const batches = timed.flatMap((x) => x.s.batches ?? []);
  const flags = stabilityFlags(noisyProc.some(Boolean) && clean.length < 2, batches);
  // counters are exact (2+ CPUs count in lockstep, the processes are this
  // build): any difference between processes is a bug worth a flag
  if (rows.some((r) => !sameBehaviour(r, base))) flags.push('unstable-counters');
  base.sim_ns_per_op_median = median(medians);
  base.sim_ns_per_op_p99 = median(kept.map((x) => x.r.sim_ns_per_op_p99));
  base.sim_rme_pct = median(kept.map((x) => x.r.sim_rme_pct));
  base.sim_rounds = timed.reduce((a, x) => a + x.r.sim_rounds, 0);
  base.sim_processes = timed.length;
  base.sim_cv_pct = cvPct(timed.map((x) => x.r.sim_ns_per_op_median));
  const shares = timed.map((x) => x.r.other_cpu_pct).filter((v) => Number.isFinite(v));
  base.other_cpu_pct = shares.length ? Math.max(...shares) : NaN;
  base.stability = flags.join('+');
  return { row: base, samples: { key, samples: medians, batches } };
}

/** run --repeat N (N >= 2): N child processes, merged cell by cell into one result set. */
export async function runRepeated(a: RunArgs, cells: readonly CellPlan[], meta: RunMeta, o: RunOptions, io: RunIo): Promise<RunResult> {
  const dir = mkdtempSync(join(o.tmpdir, 'repeat-'));
  const perCell = new Map<string, { rows: Row[]; samples: CellSamples[] }>();
  const stop = o.stop ?? (() => null);
  let processes = 0;
  const hostRefNs: number[] = [];
  const hostScaling: number[] = [];
  const flags = new Set<string>();
  try {
    let only: number[] | null = null;
    for (let p = 1; p <= a.repeat; p++) {
      // stopped: keep the processes that finished (a stopped first one gives what it did)
      if (stop() !== null) break;
      const job: CellsJob = {
        args: { ...a, repeat: 1 },
        order: shuffledOrder(cells.length, meta.order_seed + p),
        only,
        seed: o.seed,
        timeMs: o.timeMs,
        minSamples: o.minSamples,
        warmupMs: o.warmupMs,
        warmupCells: o.warmupCells ?? 0,
        costs: o.costs,
        costSource: o.costSource,
        meta,
        csv: join(dir, `p${p}.csv`),
        samples: join(dir, `p${p}.samples.json`),
        proc: join(dir, `p${p}.proc.json`),
        tmpdir: o.tmpdir,
        parent: process.pid,
      };
      const jobFile = join(dir, `p${p}.job.json`);
      writeFileSync(jobFile, JSON.stringify(job), { mode: 0o600 });
      io.say(`process ${p} of ${a.repeat}: ${only === null ? cells.length : only.length} cells`);
      const r = await runChild('_cells', jobFile, stop);
      if (r.status !== 0) {
        const why = lastErrorLine(r.stderr) ?? `exit ${r.status ?? r.signal}`;
        throw new Error(`process ${p} of ${a.repeat} failed: ${why}`);
      }
      if (stop() !== null && p > 1) break; // a later process cut short: its cells would have one sample fewer
      processes = p;
      const rows = parseCsv(readFileSync(job.csv, 'utf8'), job.csv);
      const { cells: samples } = parseSamples(readFileSync(job.samples, 'utf8'), job.samples);
      const info = parseProcInfo(readFileSync(job.proc, 'utf8'), job.proc);
      hostRefNs.push(...info.host_ref_ns);
      hostScaling.push(...info.host_scaling);
      flags.add(info.exec_argv.join(' '));
      const byKey = new Map(samples.map((s) => [s.key, s]));
      for (const row of rows) {
        const key = cellKey(row);
        const s = byKey.get(key);
        if (s === undefined) throw new InputError(job.samples, 0, `process ${p}: no samples for ${key}`);
        const e = perCell.get(key) ?? { rows: [], samples: [] };
        e.rows.push(row);
        e.samples.push(s);
        perCell.set(key, e);
      }
      if (only === null) only = cells.map((c, i) => ({ c, i })).filter(({ c }) => (perCell.get(planKey(c))?.rows[0].sim_rounds ?? 0) > 0).map(({ i }) => i);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const rows: Row[] = [];
  const samples: CellSamples[] = [];
  for (const c of cells) {
    const e = perCell.get(planKey(c));
    if (e === undefined) continue;
    const m = mergeCell(e.rows, e.samples);
    rows.push(m.row);
    samples.push(m.samples);
  }
  overPlain(rows);
  return { rows, samples, processes, hostRefNs, hostScaling, timingFlags: [...flags].join(' | ') };
}
