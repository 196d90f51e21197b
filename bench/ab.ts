// `ab --vs DIR`: this build against another build of memcrypt-bench, timed
// side by side in the same processes. Two runs minutes apart differ by more
// than the change a CI gate looks for: on the 2-vCPU development VM one cell's
// time switched between two levels 1.6x apart every few hundred ms inside one
// process (fault plain-mmap t1: 2.2-2.5 and 3.7-4.1 us a page, pinned to one
// CPU or not, no steal time in /proc/stat), so a process's median depends on
// the share of its time spent at each level. Runs of the same build minutes
// apart differed by up to 15% in one cell. Batches of the two builds,
// alternated every ~20 ms, see the same level: in a prototype on the same VM
// the base/new ratio of one process's batch pairs stayed within 0.98-1.01 for
// a build against a copy of itself (6 processes) while the same processes'
// medians moved 4.6-5.5 us.
//
// Each `_ab` child process loads both builds (their own dist/, workers and
// native addon: separate modules, separately JIT-compiled), starts each cell
// in both, compares their counting rounds (outcome, errno, every counter the
// two builds share), warms both up, then times pairs of batches, the pair's
// order drawn at random. A process's figure for a cell is the median of its
// pairs' ratios (new / base, per op). Processes are the independent units:
// the exact signed-rank test of their log ratios, Holm over the cells, gives
// the verdict, with the same threshold as compare.
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { stringify } from 'csv-stringify/sync';
import { InputError } from './io.js';
import { lastErrorLine, namedCellKey, runChild, shuffledOrder } from './repeat.js';
import type { CellConfig } from '../workloads/session.js';
import type { CellPlan } from './runner.js';
import type { SwapKind } from './schema.js';
import { holm, median, minSignedRankP, mulberry32, signedRank } from './stats.js';
import { clean, fit, shortInterface, shortWorkload, wrapWords } from './text.js';

/** A batch: at least this many ms of rounds of one side, and at least MIN_BATCH_ROUNDS rounds (its median drops the first round, which wakes the side's CPUs). */
export const BATCH_MS = 20;
export const MIN_BATCH_ROUNDS = 5;
/** Pairs of batches per cell and process, at least. */
export const MIN_PAIRS = 5;
export const AB_TIME_MS = 600;
export const AB_WARMUP_MS = 200;

/** What the child needs of a cell: names only, each build resolves them. */
export interface AbCellSpec {
  readonly backend: string;
  readonly hardware: string;
  readonly design: string;
  readonly kernel: 'patched' | 'unpatched';
  readonly swap: 'none' | 'plain' | 'encrypted';
  readonly workload: string;
  readonly threads: number;
}

export const specOf = (p: CellPlan): AbCellSpec => ({
  backend: p.backend,
  hardware: p.hardware,
  design: p.design,
  kernel: p.kernel,
  swap: p.swap,
  workload: p.workload.name,
  threads: p.threads,
});

export interface AbJob {
  /** checkouts: this build (new) and the other one (base) */
  readonly now: string;
  readonly base: string;
  readonly cells: AbCellSpec[];
  readonly order: number[];
  readonly seed: number;
  readonly timeMs: number;
  readonly warmupMs: number;
  /** seed of the pairs' order */
  readonly pairSeed: number;
  readonly tmpdir: string;
  readonly out: string;
  readonly parent: number;
}

/** One side's counting round. */
export interface AbSide {
  readonly outcome: string;
  readonly errno: string;
  readonly counters: Record<string, number>;
  readonly ops: number;
  readonly timeable: boolean;
  /** it could not start the cell (say, a design the build does not have) */
  readonly error?: string;
}

/** One cell in one process. */
export interface AbCellResult {
  readonly key: string;
  readonly base: AbSide;
  readonly now: AbSide;
  /** ns per op: medians of the sides' batch medians (NaN: not timed) */
  readonly baseNs: number;
  readonly nowNs: number;
  /** median over the pairs of (new / base) per op */
  readonly ratio: number;
  readonly pairs: number;
}

// The parts of a build ab uses. Kept this small so builds of older commits
// (any with dist/workloads/cell.js and registry.js) can be the base.
interface BuildApi {
  startCell(cfg: Omit<CellConfig, 'workload'> & { workload: unknown }): Promise<{
    outcome: string;
    errno: string;
    counters: Record<string, number>;
    ops: number;
    timeable: boolean;
    fallback: boolean;
    session: { close(): Promise<void> };
  }>;
  timedRound(c: unknown, n: number): Promise<number>;
  getWorkload(name: string): unknown;
}

/** Load a checkout's build; a one-line InputError when it is not one. */
export async function loadBuild(dir: string, what: string): Promise<BuildApi> {
  const cellJs = join(dir, 'dist/workloads/cell.js');
  const regJs = join(dir, 'dist/workloads/registry.js');
  for (const f of [cellJs, regJs]) if (!existsSync(f)) throw new InputError(what, 0, `not a built memcrypt-bench checkout: no ${f} (run npm ci there)`);
  let cell: Record<string, unknown>, reg: Record<string, unknown>;
  try {
    cell = (await import(pathToFileURL(cellJs).href)) as Record<string, unknown>;
    reg = (await import(pathToFileURL(regJs).href)) as Record<string, unknown>;
  } catch (e) {
    throw new InputError(what, 0, `cannot load its build: ${(e as Error).message.split('\n')[0]}`);
  }
  if (typeof cell.startCell !== 'function' || typeof cell.timedRound !== 'function' || typeof reg.getWorkload !== 'function')
    throw new InputError(what, 0, 'its build has no startCell/timedRound/getWorkload: too old or not memcrypt-bench');
  return { startCell: cell.startCell as BuildApi['startCell'], timedRound: cell.timedRound as BuildApi['timedRound'], getWorkload: reg.getWorkload as BuildApi['getWorkload'] };
}

/** Where a checkout's native addon is (hardware/xts-native.ts loads it from there). */
const addonOf = (root: string): string => join(root, 'build/xts_native.node');

/**
 * The two checkouts must be two: the same directory would share its
 * modules and compiled code. Nor may they share one addon file (a build/
 * linked to the other's): require() loads a file once a thread, and the
 * second build's setRegs would take the first's argument registers from it
 * (its crypt calls then read the other build's arguments).
 */
export function checkPair(now: string, base: string, what: string): void {
  if (!existsSync(base)) throw new InputError(what, 0, 'no such directory');
  if (realpathSync(now) === realpathSync(base)) throw new InputError(what, 0, 'is this checkout; give another one (git worktree add DIR COMMIT, then npm ci there)');
  if (existsSync(addonOf(now)) && existsSync(addonOf(base)) && realpathSync(addonOf(now)) === realpathSync(addonOf(base)))
    throw new InputError(what, 0, `its ${addonOf(base)} is this checkout's (a link): give it its own build (npm ci there)`);
}

type Started = Awaited<ReturnType<BuildApi['startCell']>>;

/**
 * The CellConfig a build's startCell takes for a cell, as run makes it
 * (runner.ts plannedConfig), with that build's own workload object. Typed as this
 * build's CellConfig, so a field renamed there fails to compile here.
 */
export function cellConfig(c: AbCellSpec, workload: unknown, seed: number, workdir: string): Omit<CellConfig, 'workload'> & { workload: unknown } {
  return {
    design: c.design,
    hardware: c.hardware,
    kernel: c.kernel,
    workload,
    threads: c.threads,
    seed,
    backend: c.backend,
    workdir,
    encryptedSwap: c.swap === 'encrypted',
  };
}

async function start(api: BuildApi, c: AbCellSpec, seed: number, workdir: string): Promise<{ side: AbSide; started: Started | null }> {
  try {
    const s = await api.startCell(cellConfig(c, api.getWorkload(c.workload), seed, workdir));
    return { side: { outcome: s.outcome, errno: s.errno, counters: { ...s.counters }, ops: s.ops, timeable: s.timeable }, started: s };
  } catch (e) {
    const error = (e as Error).message.split('\n')[0];
    return { side: { outcome: 'error', errno: '', counters: {}, ops: 0, timeable: false, error }, started: null };
  }
}

/** Do the two counting rounds agree on outcome, errno and every counter both builds have? The names of what differs. */
export function behaviourDiff(base: AbSide, now: AbSide): string[] {
  const out: string[] = [];
  if (base.outcome !== now.outcome) out.push(`outcome ${base.outcome} -> ${now.outcome}`);
  if (base.errno !== now.errno) out.push(`errno ${base.errno || '-'} -> ${now.errno || '-'}`);
  if (base.ops !== now.ops) out.push(`ops ${base.ops} -> ${now.ops}`);
  for (const k of Object.keys(now.counters).sort())
    if (k in base.counters && base.counters[k] !== now.counters[k]) out.push(`${k} ${base.counters[k]} -> ${now.counters[k]}`);
  return out;
}

/** A timed round of one side (0 base, 1 new) failed. */
class SideError extends Error {
  constructor(
    readonly side: number,
    message: string,
  ) {
    super(message);
  }
}

/** Time one cell's two started sides in pairs of batches. */
async function timePairs(
  sides: readonly { api: BuildApi; s: Started }[],
  job: AbJob,
  rand: () => number,
): Promise<{ ns: [number, number]; ratio: number; pairs: number }> {
  const n = [0, 0];
  const round = async (i: number): Promise<number> => {
    const t = performance.now();
    try {
      await sides[i].api.timedRound(sides[i].s, ++n[i]);
    } catch (e) {
      throw new SideError(i, (e as Error).message.split('\n')[0]);
    }
    return performance.now() - t;
  };
  // warm-up: the sides take turns, four windows each
  const warm: number[] = [];
  for (let w = 0; w < 8; w++) {
    const end = performance.now() + job.warmupMs / 8;
    do warm.push(await round(w % 2));
    while (performance.now() < end);
  }
  const k = Math.max(MIN_BATCH_ROUNDS, Math.ceil(BATCH_MS / Math.max(1e-3, median(warm))));
  const batch = async (i: number): Promise<number> => {
    const ts: number[] = [];
    for (let r = 0; r < k; r++) ts.push(await round(i));
    return median(ts) / sides[i].s.ops;
  };
  const per: [number[], number[]] = [[], []];
  const ratios: number[] = [];
  const end = performance.now() + job.timeMs;
  while (ratios.length < MIN_PAIRS || performance.now() < end) {
    const first = rand() < 0.5 ? 0 : 1;
    const x: [number, number] = [0, 0];
    x[first] = await batch(first);
    x[1 - first] = await batch(1 - first);
    per[0].push(x[0]);
    per[1].push(x[1]);
    ratios.push(x[1] / x[0]);
  }
  return { ns: [median(per[0]) * 1e6, median(per[1]) * 1e6], ratio: median(ratios), pairs: ratios.length };
}

/** The `_ab` child: both builds, every cell of the job in its order; writes AbCellResult[] (JSON) to job.out. */
export async function runAbJob(file: string, progress: (done: number, total: number, key: string) => void): Promise<void> {
  const job = JSON.parse(readFileSync(file, 'utf8')) as AbJob;
  const apis = [await loadBuild(job.base, job.base), await loadBuild(job.now, job.now)];
  const rand = mulberry32(job.pairSeed);
  let stopped = false;
  const onSignal = (): void => {
    stopped = true;
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const results: AbCellResult[] = [];
  for (const [done, i] of job.order.entries()) {
    if (stopped || process.ppid !== job.parent) process.exit(1); // a partial process is not a sample
    const c = job.cells[i];
    const started: { side: AbSide; started: Started | null; dir: string }[] = [];
    try {
      // the sides start one after the other, in a random order
      for (const j of rand() < 0.5 ? [0, 1] : [1, 0]) {
        const dir = mkdtempSync(join(job.tmpdir, 'memcrypt-ab-cell-'));
        started[j] = { ...(await start(apis[j], c, job.seed, dir)), dir };
      }
      const [b, nw] = started;
      let t = { ns: [NaN, NaN] as [number, number], ratio: NaN, pairs: 0 };
      if (b.started && nw.started && b.side.timeable && nw.side.timeable && b.side.outcome === nw.side.outcome && b.started.fallback === nw.started.fallback)
        try {
          t = await timePairs([{ api: apis[0], s: b.started }, { api: apis[1], s: nw.started }], job, rand);
        } catch (e) {
          // a timed round that did not do what the counting round did: the cell's finding, not the run's end
          if (!(e instanceof SideError)) throw e;
          started[e.side].side = { ...started[e.side].side, error: `a timed round: ${e.message}` };
        }
      results.push({ key: namedCellKey(c), base: b.side, now: nw.side, baseNs: t.ns[0], nowNs: t.ns[1], ratio: t.ratio, pairs: t.pairs });
    } finally {
      for (const s of started) {
        if (s === undefined) continue;
        await s.started?.session.close();
        rmSync(s.dir, { recursive: true, force: true });
      }
    }
    progress(done + 1, job.order.length, namedCellKey(c));
  }
  writeFileSync(job.out, JSON.stringify(results), { mode: 0o600 });
}

/** One cell over all processes. */
export interface AbCell {
  readonly key: string;
  /** the counting round's outcome: the new build's, or 'base -> new' where they differ */
  readonly outcome: string;
  /** what differs in the counting rounds (empty: the same behaviour) */
  readonly behaviour: string[];
  /** a side that could not run it, and why */
  readonly error?: string;
  readonly baseNs: number;
  readonly nowNs: number;
  /** per-process ratios new / base */
  readonly ratios: number[];
  /** median ratio - 1, % */
  readonly changePct: number;
  readonly p: number;
  readonly pHolm: number;
  readonly verdict: 'REGRESSION' | 'faster' | '~' | 'insufficient processes' | 'not timed';
}

export interface AbResult {
  readonly cells: AbCell[];
  readonly processes: number;
  readonly regressions: number;
  readonly behaviourChanges: number;
  readonly thresholdPct: number;
  readonly alpha: number;
  /** cells the verdict is Holm-adjusted over */
  readonly tested: number;
}

/** Verdicts from the processes' results (each AbCellResult[] one process's). */
export function abVerdicts(procs: readonly AbCellResult[][], thresholdPct: number, alpha: number, order: readonly string[] = []): AbResult {
  const keys: string[] = [];
  const by = new Map<string, AbCellResult[]>();
  for (const p of procs)
    for (const r of p) {
      if (!by.has(r.key)) keys.push(r.key);
      by.set(r.key, [...(by.get(r.key) ?? []), r]);
    }
  // in the given order (the plan's), then any others as they came
  const at = new Map(order.map((k, i) => [k, i]));
  keys.sort((x, y) => (at.get(x) ?? Infinity) - (at.get(y) ?? Infinity));
  const pre = keys.map((key) => {
    const rs = by.get(key)!;
    const first = rs[0];
    const behaviour = behaviourDiff(first.base, first.now);
    const error = first.base.error !== undefined ? `base: ${first.base.error}` : first.now.error !== undefined ? `new: ${first.now.error}` : undefined;
    const timed = rs.filter((r) => r.pairs > 0 && r.ratio > 0);
    const ratios = timed.map((r) => r.ratio);
    const p = ratios.length ? signedRank(ratios.map(Math.log)).p : NaN;
    const outcome = first.base.outcome === first.now.outcome ? first.now.outcome : `${first.base.outcome} -> ${first.now.outcome}`;
    return { key, outcome, behaviour, error, timed, ratios, p };
  });
  const adj = holm(pre.map((c) => c.p));
  const tested = pre.filter((c) => !Number.isNaN(c.p)).length;
  const cells: AbCell[] = pre.map((c, i) => {
    const m = median(c.ratios);
    const changePct = (m - 1) * 100;
    let verdict: AbCell['verdict'] = 'not timed';
    if (c.ratios.length > 0) {
      // the best p the test can give these processes, Holm's first step
      if (minSignedRankP(c.ratios.length) * tested >= alpha) verdict = 'insufficient processes';
      else if (adj[i] < alpha && changePct > thresholdPct) verdict = 'REGRESSION';
      else if (adj[i] < alpha && changePct < -thresholdPct) verdict = 'faster';
      else verdict = '~';
    }
    return {
      key: c.key,
      outcome: c.outcome,
      behaviour: c.behaviour,
      ...(c.error !== undefined ? { error: c.error } : {}),
      baseNs: median(c.timed.map((r) => r.baseNs)),
      nowNs: median(c.timed.map((r) => r.nowNs)),
      ratios: c.ratios,
      changePct,
      p: c.p,
      pHolm: adj[i],
      verdict,
    };
  });
  return {
    cells,
    processes: procs.length,
    regressions: cells.filter((c) => c.verdict === 'REGRESSION').length,
    behaviourChanges: cells.filter((c) => c.behaviour.length > 0 || c.error !== undefined).length,
    thresholdPct,
    alpha,
    tested,
  };
}

/**
 * Processes by default: enough that a change still reaches alpha after Holm
 * over `cells` cells when one process goes the other way, the one at rank
 * ceil(n/4) of the n by size (the test can then miss neither a change a
 * process lost in a slow spell nor one in whose process a build's code came
 * out faster by chance). At least 6. Measured on the development VM: a
 * slowdown of 10-11% in two cells (five 4 KiB copies per page in
 * madvise-encrypt's allocate), 16 cells, 10 processes (all alike needed):
 * flagged in both cells of one run, in one of the other, where 3 of the
 * 10 processes of fault t1 showed no slowdown (ratios 0.96-1.00).
 */
export function defaultProcesses(cells: number, alpha: number): number {
  const m = Math.max(1, cells);
  let n = 6;
  const pOneAgainst = (k: number): number => {
    const r = Math.ceil(k / 4);
    return signedRank(Array.from({ length: k }, (_, i) => (i + 1 === r ? -(i + 1) : i + 1))).p;
  };
  while (pOneAgainst(n) * m >= alpha && n < 40) n++;
  return n;
}

export interface AbRunOptions {
  readonly now: string;
  readonly base: string;
  readonly cells: readonly AbCellSpec[];
  /** processes; null: defaultProcesses over the cells the first process could time */
  readonly processes: number | null;
  readonly seed: number;
  readonly orderSeed: number;
  readonly timeMs: number;
  readonly warmupMs: number;
  readonly thresholdPct: number;
  readonly alpha: number;
  readonly tmpdir: string;
  readonly say: (line: string) => void;
  readonly stop: () => string | null;
}

/**
 * The processes, one after another: the first runs every cell, the rest only
 * the cells the first could time in both builds. Null when stopped before
 * two processes finished.
 */
export async function runAb(o: AbRunOptions): Promise<AbResult | null> {
  const dir = mkdtempSync(join(o.tmpdir, 'ab-'));
  const procs: AbCellResult[][] = [];
  try {
    let cells = [...o.cells];
    let total = o.processes ?? Infinity;
    for (let p = 1; p <= total; p++) {
      if (o.stop() !== null) break;
      const job: AbJob = {
        now: o.now,
        base: o.base,
        cells,
        order: shuffledOrder(cells.length, o.orderSeed + p),
        seed: o.seed,
        timeMs: o.timeMs,
        warmupMs: o.warmupMs,
        pairSeed: (o.orderSeed * 7919 + p) >>> 0,
        tmpdir: o.tmpdir,
        out: join(dir, `p${p}.json`),
        parent: process.pid,
      };
      const jobFile = join(dir, `p${p}.job.json`);
      writeFileSync(jobFile, JSON.stringify(job), { mode: 0o600 });
      o.say(`process ${p}${Number.isFinite(total) ? ` of ${total}` : ''}: ${cells.length} cells`);
      const c = await runChild('_ab', jobFile, o.stop);
      if (c.status !== 0) {
        if (o.stop() !== null) break; // stopped: the processes that finished give the verdict
        throw new Error(`ab process ${p} failed: ${lastErrorLine(c.stderr) ?? `exit ${c.status ?? c.signal}`}`);
      }
      const r = JSON.parse(readFileSync(job.out, 'utf8')) as AbCellResult[];
      procs.push(r);
      if (p === 1) {
        const timed = new Set(r.filter((x) => x.pairs > 0).map((x) => x.key));
        cells = cells.filter((c) => timed.has(namedCellKey(c)));
        if (o.processes === null) total = defaultProcesses(cells.length, o.alpha);
        if (cells.length === 0) break;
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  if (procs.length < 2 && !(procs.length === 1 && procs[0].every((r) => r.pairs === 0))) return null;
  return abVerdicts(procs, o.thresholdPct, o.alpha, o.cells.map(namedCellKey));
}

/** A cell's name in reports: workload, design, kernel and swap where not the usual, CPUs. */
export function cellName(key: string): string {
  const [backend, hardware, design, kernel, swap, workload, threads] = key.split('|');
  return [workload, design, kernel === 'unpatched' ? 'unpatched' : '', swap === 'none' ? '' : `${swap}-swap`, hardware === 'mktme' ? '' : hardware, backend === 'native' ? '' : backend, `t${threads}`]
    .filter(Boolean)
    .join(' ');
}

/** A cell's name in the table's 28 columns, with the report's short names: 'enosys madv-enc unpat t2', 'swap-dmc dev-mktme t1'. */
export function shortCellName(key: string): string {
  const [backend, hardware, design, kernel, swap, workload, threads] = key.split('|');
  const name = [shortWorkload(workload, swap as SwapKind), shortInterface(design), kernel === 'unpatched' ? 'unpat' : '', hardware === 'mktme' ? '' : hardware, backend === 'native' ? '' : backend, `t${threads}`];
  return fit(clean(name.filter(Boolean).join(' ')), 28);
}

const us = (ns: number): string => (Number.isFinite(ns) ? (ns / 1000).toFixed(ns < 10_000 ? 2 : ns < 100_000 ? 1 : 0) : '-');
const pct = (x: number): string => (Number.isFinite(x) ? `${x >= 0 ? '+' : ''}${x.toFixed(1)}%` : '-');

/** The text report, 72 columns (the widest line: 28 + 32 + 'REGRESSION'): a header (both builds, settings), one line per cell, what differs in behaviour. */
export function formatAb(r: AbResult, head: readonly [string, string][]): string {
  const lines = wrapWords('memcrypt-bench ab: new against base, batches of both timed in turn in the same processes');
  for (const [k, v] of head) lines.push(...wrapWords(v, `${(k + ':').padEnd(10)}`, ' '.repeat(10)));
  lines.push(
    ...wrapWords(
      `signed-rank test of ${r.processes} processes' log ratios (new / base), Holm over ${r.tested} cell${r.tested === 1 ? '' : 's'}, alpha ${r.alpha}; REGRESSION: a significant change beyond +${r.thresholdPct}%`,
      'verdict:  ',
      ' '.repeat(10),
    ),
    '',
    `${'cell'.padEnd(28)} ${'base us'.padStart(7)} ${'new us'.padStart(7)} ${'change'.padStart(7)} ${'p'.padStart(6)}  verdict`,
  );
  for (const c of r.cells) {
    const p = Number.isFinite(c.pHolm) ? (c.pHolm < 0.001 ? '<.001' : c.pHolm.toFixed(3)) : '-';
    const verdict = c.verdict === 'insufficient processes' ? 'too few' : c.verdict;
    lines.push(`${shortCellName(c.key).padEnd(28)} ${us(c.baseNs).padStart(7)} ${us(c.nowNs).padStart(7)} ${pct(c.changePct).padStart(7)} ${p.padStart(6)}  ${verdict}`);
  }
  const changed = r.cells.filter((c) => c.behaviour.length > 0 || c.error !== undefined);
  if (changed.length) {
    lines.push('', 'behaviour changes (the counting rounds differ):');
    for (const c of changed) {
      lines.push(...wrapWords(`${cellName(c.key)}:`, '  ', '    '));
      for (const d of c.error !== undefined ? [c.error] : c.behaviour) lines.push(...wrapWords(d, '    ', '      '));
    }
  }
  lines.push(
    '',
    ...wrapWords(
      `${r.regressions} REGRESSION, ${r.behaviourChanges} behaviour change${r.behaviourChanges === 1 ? '' : 's'}. p: Holm-adjusted; us: per op, medians of the processes (both builds share the machine in turn, so they run slower than in run: the ratio is the figure)${r.cells.some((c) => c.verdict === 'insufficient processes') ? "; too few: these processes cannot reach alpha after Holm (raise --repeat)" : ''}`,
    ),
  );
  return lines.join('\n');
}

export const AB_COLUMNS = ['cell', 'outcome', 'base_ns_per_op', 'new_ns_per_op', 'change_pct', 'ratios', 'p', 'p_holm', 'verdict', 'behaviour'] as const;

/** The verdicts as CSV, one row per cell (the per-process ratios joined by spaces). */
export function formatAbCsv(r: AbResult): string {
  const num = (x: number, d: number): string => (Number.isFinite(x) ? x.toFixed(d) : '');
  const rows = r.cells.map((c) => [
    c.key,
    c.outcome,
    num(c.baseNs, 3),
    num(c.nowNs, 3),
    num(c.changePct, 2),
    c.ratios.map((x) => x.toFixed(4)).join(' '),
    num(c.p, 6),
    num(c.pHolm, 6),
    c.verdict,
    [...(c.error !== undefined ? [c.error] : []), ...c.behaviour].join('; '),
  ]);
  return stringify([[...AB_COLUMNS], ...rows]);
}
