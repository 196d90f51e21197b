// The history store: every run appends one JSON line per cell to
// results/history.jsonl (beside its result set), with the git sha, date,
// settings and environment, so `history` can follow each cell across commits
// without keeping every result set around.
//
// JSON lines and no database: appends need no package and no lock (see
// appendHistory), and a line damaged by a killed run costs that line only,
// which readHistory skips with a warning. A store of a few thousand runs is a
// few tens of MB, read in well under a second.
import { closeSync, existsSync, fstatSync, fsyncSync, mkdirSync, openSync, readSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { InputError, readInput } from './io.js';
import { CELL_KEY, COUNTER_COLUMNS, cellKey, type CellSamples, type Row, type RunMeta } from './schema.js';
import { hasFlag } from './stability.js';
import { median } from './stats.js';

/** The version of a history record; readHistory skips any other (with a warning). */
export const HISTORY_VERSION = 1;
/** The store's file name, beside the result set (results/ by default). */
export const HISTORY_FILE = 'history.jsonl';

/**
 * Settings a later record may carry: RunMeta has none of these today, but a
 * run that records them in its meta gets them copied (never parsed from the
 * command, whose spelling may change).
 */
const OPTIONAL_SETTINGS = ['time', 'time_ms', 'warmup', 'warmup_ms', 'warmup_cells', 'samples', 'min_samples', 'repeat', 'order_seed', 'timing_flags', 'counting'] as const;

export interface HistorySettings {
  command: string;
  seed: number;
  crypto_backends: string[];
  cost_source: string;
  /** OPTIONAL_SETTINGS that the run's meta had (numbers or strings) */
  [extra: string]: string | number | string[];
}

export interface HistoryEnv {
  nproc: number;
  mem_bytes: number;
  kernel_release: string;
  cpu_model: string;
  node_version: string;
  tinybench_version: string;
  load_avg_start: number[];
  load_avg_end: number[];
  /** median ns of one pass of the host reference over the run's processes, and what it ran on (bench/hostref.ts); absent in older records */
  host_ref_ns?: number;
  host_ref_impl?: string;
  /** median of the run's host scaling and the threads it ran (RunMeta.host_scaling); absent in older records */
  host_scaling?: number;
  host_scaling_threads?: number;
}

/** One cell of one run. Numbers that were NaN (not run, not timed) are null. */
export interface HistoryRecord {
  v: typeof HISTORY_VERSION;
  run_id: string;
  git_sha: string;
  /** ISO date of the run's start; runs are ordered by it */
  started_at: string;
  host: string;
  settings: HistorySettings;
  env: HistoryEnv;
  /** cellKey(row): CELL_KEY values joined with '|', threads last */
  key: string;
  outcome: string;
  errno: string;
  modelled_ns_per_op: number | null;
  /** COUNTER_COLUMNS when written; a record read back may lack counters added to the schema after it */
  counters: Record<string, number>;
  sim_ns_per_op_median: number | null;
  /** the cell's timing samples, ns per op ([] for a cell not timed) */
  samples: number[];
  /** the run marked the cell as timed under load from other processes */
  noisy: boolean;
}

const _nul = (x: number): number | null => (Number.isFinite(x) ? x : null);

/** Was the cell timed while other processes loaded the machine (its stability flags, bench/stability.ts)? */
const _noisy = (r: Row): boolean => hasFlag(r, 'noisy');

/** The records of a run, in row order: what appendHistory writes. */
export function historyRecords(meta: RunMeta, rows: readonly Row[], samples: readonly CellSamples[]): HistoryRecord[] {
  const byKey = new Map(samples.map((c) => [c.key, c.samples]));
  const settings: HistorySettings = { command: meta.command, seed: meta.seed, crypto_backends: [...meta.crypto_backends], cost_source: meta.cost_source };
  const m = meta as unknown as Record<string, unknown>;
  for (const k of OPTIONAL_SETTINGS) if (typeof m[k] === 'number' || typeof m[k] === 'string') settings[k] = m[k] as number | string;
  const env: HistoryEnv = {
    nproc: meta.nproc,
    mem_bytes: meta.mem_bytes,
    kernel_release: meta.kernel_release,
    cpu_model: meta.cpu_model,
    node_version: meta.node_version,
    tinybench_version: meta.tinybench_version,
    load_avg_start: [...meta.load_avg_start],
    load_avg_end: [...meta.load_avg_end],
    ...(meta.host_ref_ns?.length ? { host_ref_ns: median(meta.host_ref_ns), ...(meta.host_ref_impl !== undefined ? { host_ref_impl: meta.host_ref_impl } : {}) } : {}),
    ...(meta.host_scaling?.length && meta.host_scaling_threads !== undefined
      ? { host_scaling: median(meta.host_scaling), host_scaling_threads: meta.host_scaling_threads }
      : {}),
  };
  return rows.map((r) => {
    const key = cellKey(r);
    return {
      v: HISTORY_VERSION,
      run_id: meta.run_id,
      git_sha: meta.git_sha,
      started_at: meta.started_at,
      host: meta.host,
      settings,
      env,
      key,
      outcome: r.outcome,
      errno: r.errno,
      modelled_ns_per_op: _nul(r.modelled_ns_per_op),
      counters: Object.fromEntries(COUNTER_COLUMNS.map((c) => [c, r[c]])),
      sim_ns_per_op_median: _nul(r.sim_ns_per_op_median),
      samples: (byKey.get(key) ?? []).filter(Number.isFinite),
      noisy: _noisy(r),
    };
  });
}

/** Refused (one line) before any cell runs when the store cannot be a file there. */
export function checkHistoryPath(file: string): void {
  if (existsSync(file) && statSync(file).isDirectory()) throw new InputError(file, 0, '--history: is a directory');
  const dir = dirname(file);
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new InputError(file, 0, `--history: ${dir} is not a directory`);
}

/**
 * Append one line per cell to file (created 0644 with its directory if
 * missing); returns the number of records written.
 *
 * Two runs may append at once, so all of a run's lines go out in ONE write on
 * an O_APPEND fd: the kernel moves the offset to the end and writes under the
 * inode lock, so on a local Linux filesystem the lines of two runs never
 * interleave (POSIX promises this for pipes only; NFS does not honour
 * O_APPEND). A short write (disk full) is finished with further writes, which
 * are no longer atomic: readHistory then skips what got damaged.
 */
export function appendHistory(file: string, meta: RunMeta, rows: readonly Row[], samples: readonly CellSamples[]): number {
  const records = historyRecords(meta, rows, samples);
  if (records.length === 0) return 0;
  mkdirSync(dirname(file), { recursive: true });
  const fd = openSync(file, 'a+', 0o644); // O_APPEND; '+' to read the last byte
  try {
    // A run killed mid-write leaves a line without its '\n': start on a new
    // line so that only the killed run's line is lost, not our first one.
    const size = fstatSync(fd).size;
    const last = Buffer.alloc(1);
    const torn = size > 0 && readSync(fd, last, 0, 1, size - 1) === 1 && last[0] !== 0x0a;
    const buf = Buffer.from((torn ? '\n' : '') + records.map((r) => JSON.stringify(r) + '\n').join(''), 'utf8');
    for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return records.length;
}

// --- reading -------------------------------------------------------------------

const _isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const _isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const _isNumOrNull = (v: unknown): boolean => v === null || _isNum(v);
const _isNums = (v: unknown): v is number[] => Array.isArray(v) && v.every(_isNum);
const _isStrs = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');

const STRINGS = ['run_id', 'git_sha', 'host', 'key', 'outcome', 'errno'] as const;
const ENV_NUMBERS = ['nproc', 'mem_bytes'] as const;
const ENV_STRINGS = ['kernel_release', 'cpu_model', 'node_version', 'tinybench_version'] as const;

/** Why d is not a version-1 record, or null when it is one the trend code can trust. */
function _whyNot(d: unknown): string | null {
  if (!_isObject(d)) return 'not a JSON object';
  if (d.v !== HISTORY_VERSION) return `record version ${JSON.stringify(d.v)} (this memcrypt-bench reads ${HISTORY_VERSION})`;
  for (const f of STRINGS) if (typeof d[f] !== 'string') return `${f}: expected a string`;
  if (typeof d.started_at !== 'string' || Number.isNaN(Date.parse(d.started_at))) return 'started_at: expected an ISO date';
  const key = (d.key as string).split('|');
  const threads = Number(key[key.length - 1]);
  if (key.length !== CELL_KEY.length || !Number.isInteger(threads) || threads < 1) return `key: expected ${CELL_KEY.join('|')}`;
  const s = d.settings;
  if (!_isObject(s) || typeof s.command !== 'string' || !_isNum(s.seed) || !_isStrs(s.crypto_backends) || typeof s.cost_source !== 'string')
    return 'settings: expected { command, seed, crypto_backends, cost_source }';
  if (!Object.values(s).every((x) => typeof x === 'string' || _isNum(x) || _isStrs(x))) return 'settings: expected strings and numbers';
  const e = d.env;
  if (!_isObject(e) || !ENV_NUMBERS.every((f) => _isNum(e[f])) || !ENV_STRINGS.every((f) => typeof e[f] === 'string') || !_isNums(e.load_avg_start) || !_isNums(e.load_avg_end))
    return 'env: expected nproc, mem_bytes, kernel_release, cpu_model, node_version, tinybench_version, load averages';
  if (e.host_ref_ns !== undefined && !(_isNum(e.host_ref_ns) && e.host_ref_ns > 0)) return 'env.host_ref_ns: expected a positive number';
  if (e.host_ref_impl !== undefined && typeof e.host_ref_impl !== 'string') return 'env.host_ref_impl: expected a string';
  if (e.host_scaling !== undefined && !(_isNum(e.host_scaling) && e.host_scaling > 0)) return 'env.host_scaling: expected a positive number';
  if (e.host_scaling_threads !== undefined && !(Number.isInteger(e.host_scaling_threads) && (e.host_scaling_threads as number) >= 2))
    return 'env.host_scaling_threads: expected an integer >= 2';
  if (!_isNumOrNull(d.modelled_ns_per_op)) return 'modelled_ns_per_op: expected a number or null';
  if (!_isNumOrNull(d.sim_ns_per_op_median)) return 'sim_ns_per_op_median: expected a number or null';
  if (!_isObject(d.counters) || !Object.values(d.counters).every(_isNum)) return 'counters: expected an object of numbers';
  if (!_isNums(d.samples)) return 'samples: expected an array of numbers';
  if (typeof d.noisy !== 'boolean') return 'noisy: expected true or false';
  return null;
}

/**
 * The records of a store, in file order. A missing file has none. A line
 * that is not a version-1 record (not JSON, a torn last line from a killed
 * run, a record of another version) is skipped with a warning naming the
 * file and line: one bad line never costs the rest of the history. Blank
 * lines are skipped silently (appendHistory leaves one after a torn line).
 */
export function readHistory(file: string): { records: HistoryRecord[]; warnings: string[] } {
  const records: HistoryRecord[] = [];
  const warnings: string[] = [];
  if (!existsSync(file)) return { records, warnings };
  const lines = readInput(file).split('\n');
  lines.forEach((text, i) => {
    if (text.trim() === '') return;
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      const torn = i === lines.length - 1 ? ' (a torn last line: a run killed while writing?)' : '';
      warnings.push(`${file}:${i + 1}: not a JSON record, skipped${torn}`);
      return;
    }
    const why = _whyNot(doc);
    if (why === null) records.push(doc as HistoryRecord);
    else warnings.push(`${file}:${i + 1}: ${why}, skipped`);
  });
  return { records, warnings };
}
