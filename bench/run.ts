// `memcrypt-bench run`: plan the matrix, decide the cost table and check the
// output path before any cell runs, run it, then write the result set
// (<run id>.csv, .meta.json, .samples.json, .txt, .html with its figures, and an export if asked:
// bench/export.ts) and print the report.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { makeRunDir, sweepStaleRuns } from './tempdirs.js';
import { backendNote, nativeImpl } from '../hardware/xts.js';
import { CALIBRATION_FILE, hostInfo } from './calibrate/calibrate.js';
import { resolveCosts } from './costs.js';
import { formatCsv, formatMeta, formatSamples, metaPath, parseCsv, samplesPath } from './csv.js';
import { EXPORTS, exportPath, type ExportName } from './export.js';
import { HISTORY_FILE, appendHistory, checkHistoryPath } from './history.js';
import { InputError, writeFileAtomic } from './io.js';
import { runFigures, renderPng } from './figures.js';
import { formatHtml, htmlPath, pngPath } from './html.js';
import { formatReport, noCommitReason } from './report.js';
import { inOrder, runRepeated, shuffledOrder } from './repeat.js';
import { hostRefImpl } from './hostref.js';
import { runMatrix, scalingThreads, type CellPlan, type RunOptions } from './runner.js';
import { SCHEMA_VERSION, type Kernel, type Row, type RunMeta, type SwapKind } from './schema.js';
import { getWorkload } from '../workloads/registry.js';
import { COUNTING } from '../workloads/board.js';

export interface RunArgs {
  interface: string[];
  hardware: string[];
  /** profiles the guest workloads (Workload.guest) also run on, counted and modelled but not timed */
  guestHardware?: string[];
  workload: string[];
  threads: string[];
  kernel?: string[];
  swap: string[];
  backend: string[];
  seed: number;
  time: number;
  samples: number;
  warmup: number;
  /** cells of each process's warm-up lap, run first and discarded (none when absent; the command line's default is WARMUP_CELLS) */
  warmupCells?: number;
  costs?: string;
  out?: string;
  format: string;
  export?: ExportName;
  /** also write each figure as <run id>.<figure>.png */
  png?: boolean;
  /** the history store: a path, '' or undefined for history.jsonl beside the CSV, false (--no-history) for none */
  history?: string | false;
  /** fresh processes per timed cell (1: this process times every cell) */
  repeat: number;
  /** seed of the shuffled cell orders (default: random, recorded in the meta) */
  orderSeed?: number;
}

export function gitSha(root: string): string {
  try {
    const opts = { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] as ('ignore' | 'pipe')[] };
    const sha = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], opts).toString().trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], opts).toString().trim();
    return dirty ? `${sha}-dirty` : sha;
  } catch {
    return 'unknown';
  }
}

function tinybenchVersion(root: string): string {
  try {
    return String(JSON.parse(readFileSync(join(root, 'node_modules/tinybench/package.json'), 'utf8')).version);
  } catch {
    return 'unknown';
  }
}

/** The arguments that choose the cells (run and ab). */
export type MatrixArgs = Pick<RunArgs, 'interface' | 'hardware' | 'guestHardware' | 'workload' | 'threads' | 'kernel' | 'swap' | 'backend'>;

export function plan(a: MatrixArgs): CellPlan[] {
  const cells: CellPlan[] = [];
  const extra = (a.guestHardware ?? []).filter((h) => !a.hardware.includes(h));
  for (const backend of a.backend)
    for (const hardware of [...a.hardware, ...extra])
      for (const wname of a.workload) {
        const workload = getWorkload(wname);
        // --guest-hardware: the guest workloads' cells there give outcome,
        // counters and model; the simulator's speed is tracked on --hardware
        const timed = a.hardware.includes(hardware);
        if (!timed && !workload.guest) continue;
        const kernels = (a.kernel ?? workload.kernels) as Kernel[];
        const swaps = (workload.swap ? a.swap : ['none']) as SwapKind[];
        // a workload whose work runs on the boot CPU gets at most its maxThreads
        const threads = [...new Set(a.threads.map((t) => Math.min(Number(t), workload.maxThreads ?? Infinity)))];
        for (const design of a.interface)
          for (const kernel of kernels)
            for (const swap of swaps)
              for (const t of threads) cells.push({ backend, hardware, design, kernel, swap, workload, threads: t, ...(timed ? {} : { timed: false }) });
      }
  return cells;
}

function resolvedCommand(a: RunArgs): string {
  return [
    'node dist/bench/cli.js run',
    `--interface ${a.interface.join(',')}`,
    `--hardware ${a.hardware.join(',')}`,
    ...((a.guestHardware ?? []).length ? [`--guest-hardware ${(a.guestHardware ?? []).join(',')}`] : []),
    `--workload ${a.workload.join(',')}`,
    `--threads ${a.threads.join(',')}`,
    ...(a.kernel ? [`--kernel ${a.kernel.join(',')}`] : []),
    `--swap ${a.swap.join(',')}`,
    `--backend ${a.backend.join(',')}`,
    `--seed ${a.seed}`,
    `--time ${a.time}`,
    `--samples ${a.samples}`,
    `--warmup ${a.warmup}`,
    `--warmup-cells ${a.warmupCells ?? 0}`,
    `--repeat ${a.repeat}`,
    `--order-seed ${a.orderSeed}`,
    ...(a.costs ? [`--costs ${a.costs}`] : []),
  ].join(' ');
}

/** Where the CSV goes; refused (one line) before any work when it cannot be written there. */
export function checkOut(out: string, given: string | undefined): void {
  const what = given ?? out;
  if (!out.endsWith('.csv')) throw new InputError(what, 0, '--out: expected a file name ending in .csv');
  if (existsSync(out) && statSync(out).isDirectory()) throw new InputError(what, 0, '--out: is a directory');
  const dir = dirname(out);
  if (given !== undefined && !existsSync(dir)) throw new InputError(what, 0, `--out: directory ${dir} does not exist`);
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new InputError(what, 0, `--out: ${dir} is not a directory`);
  if (existsSync(dir)) {
    // a file made and removed now, not a permission bit: root passes those,
    // and a read-only mount or /proc does not show in them
    const probe = join(dir, `.memcrypt-probe-${process.pid}`);
    try {
      writeFileSync(probe, '', { mode: 0o600 });
      rmSync(probe);
    } catch (e) {
      throw new InputError(what, 0, `--out: cannot write in ${dir} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
}

export interface RunIo {
  readonly root: string;
  readonly say: (line: string) => void;
  /** a reason to stop before the next cell (a signal's name), or null */
  readonly stop?: () => string | null;
  readonly progress?: (done: number, total: number, r: Row) => void;
}

/**
 * The history store of a run. Beside the result set by default, so the
 * default run appends to results/history.jsonl while a run --out elsewhere
 * (a test's temp dir) leaves the checkout's history alone.
 */
export function historyPath(a: Pick<RunArgs, 'history'>, out: string): string | null {
  if (a.history === false) return null;
  return resolve(a.history ? a.history : join(dirname(out), HISTORY_FILE));
}

export interface RunResult {
  out: string;
  report: string;
  csv: string;
  rows: Row[];
  /** where the run's records were appended and how many; null with --no-history */
  history: { file: string; records: number } | null;
  /** '' or why the run stopped early (meta.stopped): a partial result set */
  stopped: string;
}

/** The result set of a run, written file by file (each atomically), then its history records appended. */
export async function runBench(a: RunArgs, io: RunIo): Promise<RunResult> {
  const cells = plan(a);
  a = { ...a, orderSeed: a.orderSeed ?? randomBytes(4).readUInt32LE(0) % 1_000_000_007 };
  const started = new Date();
  const runId = `${started.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-${randomBytes(3).toString('hex')}`;
  const out = resolve(a.out ?? join(io.root, 'results', `${runId}.csv`));
  checkOut(out, a.out);
  const historyFile = historyPath(a, out);
  if (historyFile !== null) checkHistoryPath(historyFile);
  const costs = resolveCosts(a.costs, join(io.root, CALIBRATION_FILE), CALIBRATION_FILE);
  if (costs.note) io.say(costs.note);
  if (a.backend.includes('openssl') && backendNote()) io.say(backendNote()!);
  const host = hostInfo();
  const command = resolvedCommand(a);
  const sha = gitSha(io.root);
  const meta: RunMeta = {
    schema_version: SCHEMA_VERSION,
    run_id: runId,
    started_at: started.toISOString(),
    command,
    // where no commit reproduces the run (uncommitted changes, no git checkout): the command alone
    reproduce: noCommitReason(sha) !== null ? command : `git checkout ${sha} && npm ci && npm run build && ${command}`,
    seed: a.seed,
    host: host.hostname,
    kernel_release: host.kernel_release,
    cpu_model: host.cpu_model,
    nproc: host.nproc,
    mem_bytes: host.mem_bytes,
    node_version: process.version,
    tinybench_version: tinybenchVersion(io.root),
    crypto_backends: a.backend,
    crypto_note: a.backend.includes('openssl') ? (backendNote() ?? '') : '',
    crypto_impl: a.backend.includes('native') ? (nativeImpl() ?? '') : '',
    git_sha: sha,
    load_avg_start: loadavg().map((x) => Math.round(x * 100) / 100),
    load_avg_end: [],
    cost_source: costs.source,
    costs: costs.costs,
    wall_seconds: 0,
    repeat: a.repeat,
    time_ms: a.time,
    warmup_ms: a.warmup,
    warmup_cells: a.warmupCells ?? 0,
    min_samples: a.samples,
    order_seed: a.orderSeed!,
    counting: COUNTING,
  };
  const t0 = performance.now();
  // scratch files (swap, DAX images) live in one run directory, gone when the
  // run is; a run killed outright leaves its own, which the next one removes
  const stale = sweepStaleRuns();
  if (stale.length > 0) io.say(`removed ${stale.length} temp director${stale.length === 1 ? 'y' : 'ies'} of runs that were killed (${stale.join(', ')})`);
  const runDir = makeRunDir();
  const opts: RunOptions = {
    seed: a.seed,
    timeMs: a.time,
    minSamples: a.samples,
    warmupMs: a.warmup,
    warmupCells: a.warmupCells ?? 0,
    tmpdir: runDir,
    costs: costs.costs,
    costSource: costs.source,
    ...(io.progress ? { progress: io.progress } : {}),
    ...(io.stop ? { stop: io.stop } : {}),
  };
  let res: Awaited<ReturnType<typeof runMatrix>>;
  try {
    res =
      a.repeat <= 1
        ? inOrder(cells, await runMatrix(cells, meta, { ...opts, order: shuffledOrder(cells.length, meta.order_seed) }))
        : await runRepeated(a, cells, meta, opts, io);
  } finally {
    rmSync(runDir, { recursive: true, force: true });
  }
  const why = io.stop?.() ?? null;
  const allProcesses = res.processes === undefined || res.processes >= a.repeat;
  meta.stopped =
    why === null || (res.rows.length === cells.length && allProcesses)
      ? ''
      : res.rows.length < cells.length
        ? `${why} after ${res.rows.length} of ${cells.length} cells`
        : `${why} after ${res.processes} of ${a.repeat} processes`;
  meta.host_ref_ns = res.hostRefNs.map((x) => Math.round(x));
  // as the processes that timed the cells said: --repeat 1 timed them in this one
  meta.timing_flags = res.timingFlags ?? process.execArgv.join(' ');
  meta.host_ref_impl = hostRefImpl();
  if (res.hostScaling?.length) {
    meta.host_scaling = res.hostScaling.map((x) => Math.round(x * 1000) / 1000);
    meta.host_scaling_threads = scalingThreads(cells, cells.map((_, i) => i));
  }
  meta.wall_seconds = Math.round((performance.now() - t0) / 100) / 10;
  meta.load_avg_end = loadavg().map((x) => Math.round(x * 100) / 100);
  // One rounding rule: the report is made from the rows as the CSV holds
  // them, so `report FILE.csv` prints the same report, digit for digit.
  const csv = formatCsv(res.rows);
  const rows = parseCsv(csv, out);
  const report = formatReport(meta, rows);
  const base = out.replace(/\.csv$/, '');
  meta.rows = rows.length;
  meta.csv_sha256 = createHash('sha256').update(csv).digest('hex');
  // meta and samples first: a CSV that is there always has its companions
  writeFileAtomic(metaPath(out), formatMeta(meta));
  writeFileAtomic(samplesPath(out), formatSamples(meta.run_id, res.samples));
  writeFileAtomic(out, csv);
  writeFileAtomic(`${base}.txt`, report);
  // the page and its figures come from the rows as written, like the report
  const figures = await runFigures(rows, res.samples);
  writeFileAtomic(htmlPath(out), formatHtml(meta, rows, figures, report));
  if (a.png) for (const f of figures) writeFileAtomic(pngPath(out, f.name), renderPng(f.svg));
  // last: an export is derived from the CSV, never the other way round
  if (a.export !== undefined) writeFileAtomic(exportPath(out, a.export), EXPORTS[a.export].format(rows));
  // last: the history holds runs whose result set was written. A store that
  // cannot be appended to costs a line on stderr, not the run's report.
  let history: RunResult['history'] = null;
  // a stopped run's partial set is not history
  if (historyFile !== null && !meta.stopped)
    try {
      history = { file: historyFile, records: appendHistory(historyFile, meta, rows, res.samples) };
    } catch (e) {
      io.say(`${historyFile}: cannot append the history: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  return { out, report, csv, rows, history, stopped: meta.stopped ?? '' };
}
