// `memcrypt-bench calibrate`: measure this host's costs with a small C probe
// (probe.c beside this file) and turn its figures into a cost table whose
// host-side entries are `measured`. The sourced defaults in hardware/costs.ts
// drift by 2x between days on the VM they come from; a calibration made on
// the machine a run uses replaces them, and says where each figure came from.
//
// Flow: compileProbe (cc into a temp dir) -> run it -> _raw (median, min,
// max of its repetitions) -> _costs (the mapping below) -> a Calibration
// document, written to results/calibration.json by the CLI. Errors are data:
// a missing compiler or a failing probe is { ok: false, why } with one line,
// so the caller can say so and go on with the defaults.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { availableParallelism, cpus, hostname, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { COST_MEANING, COST_NAMES, DEFAULT_COSTS, checkCostTable, type CostEntry, type CostName, type CostTable } from '../../hardware/costs.js';
import { InputError, writeFileAtomic } from '../io.js';

export const CALIBRATION_KIND = 'memcrypt-bench-calibration';
export const CALIBRATION_VERSION = 1;
export const CALIBRATION_FILE = 'results/calibration.json';

/** What probe.c measures, in the order it prints them. */
export const PROBE_NAMES = [
  'getppid', 'enosys', 'mprotect_split_merge', 'madvise_dontneed_64', 'anon_fault',
  'memfd_secret_fault', 'clflush_page', 'memcpy_page', 'pwrite_pread_page',
] as const;
export type ProbeName = (typeof PROBE_NAMES)[number];

/** One probe figure over its repetitions (each the mean of `iterations` operations). */
export interface RawStat {
  readonly median_ns: number;
  readonly min_ns: number;
  readonly max_ns: number;
  /** (max - min) / median * 100 */
  readonly spread_pct: number;
  readonly reps: number;
  readonly iterations: number;
  readonly what: string;
}
export type RawFigure = RawStat | { readonly unavailable: string };
export type RawTable = Readonly<Record<ProbeName, RawFigure>>;

export interface HostInfo {
  readonly hostname: string;
  readonly kernel_release: string;
  readonly cpu_model: string;
  readonly nproc: number;
  readonly mem_bytes: number;
  readonly node: string;
}

export interface Calibration {
  readonly kind: typeof CALIBRATION_KIND;
  readonly version: typeof CALIBRATION_VERSION;
  readonly created_at: string;
  readonly host: HostInfo;
  readonly reps: number;
  readonly raw: RawTable;
  readonly costs: CostTable;
}

export type CalibrationResult = { readonly ok: true; readonly calibration: Calibration } | { readonly ok: false; readonly why: string };
export type CompileResult = { readonly ok: true; readonly exe: string } | { readonly ok: false; readonly why: string };

/** Flags probe.c must compile warning-free with (STYLE.md: native code). */
export const PROBE_CFLAGS = ['-O2', '-Wall', '-Wextra', '-Werror', '-std=gnu11'] as const;

/** Up to 10000 in the probe; more than a few hundred is hours of nothing new. */
const MAX_REPS = 1000;

// dist/bench/calibrate/calibrate.js -> <root>/bench/calibrate/probe.c: the C
// source is not copied by tsc, so it is found in the source tree.
const _PROBE_SRC = fileURLToPath(new URL('../../../bench/calibrate/probe.c', import.meta.url));

/**
 * Compile probe.c into outDir with `opts.cc ?? $CC ?? 'cc'` (one executable,
 * no arguments in it). `why` is one line: the missing compiler, or the first
 * error line of the compiler's output.
 */
export function compileProbe(opts: { cc?: string; outDir: string }): CompileResult {
  const cc = opts.cc ?? (process.env['CC'] || 'cc');
  if (!existsSync(_PROBE_SRC)) return { ok: false, why: `probe source not found: ${_PROBE_SRC}` };
  const exe = join(opts.outDir, 'memcrypt-probe');
  try {
    mkdirSync(opts.outDir, { recursive: true });
    execFileSync(cc, [...PROBE_CFLAGS, '-o', exe, _PROBE_SRC], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
    return { ok: true, exe };
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: Buffer; status?: number | null };
    if (err.code === 'ENOENT')
      return { ok: false, why: `no C compiler: '${cc}' not found (set CC or install gcc); using the sourced defaults` };
    if (err.code === 'EACCES') return { ok: false, why: `C compiler '${cc}' cannot be run: EACCES (permission denied)` };
    if (err.code === 'ETIMEDOUT') return { ok: false, why: `C compiler '${cc}' did not finish within 120 s` };
    return { ok: false, why: `C compiler '${cc}' failed on probe.c: ${_firstError(String(err.stderr ?? err.message))}` };
  }
}

/** The compiler's first line that says "error", else its first non-empty line. */
function _firstError(out: string): string {
  const lines = out.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  return _oneLine(lines.find((l) => /error/i.test(l)) ?? lines[0] ?? 'no output');
}

const _oneLine = (s: string): string => s.replace(/[\r\n\t\v\f]+/g, ' ');

/**
 * Compile and run the probe in workdir (a temp dir: the binary and the probe's
 * I/O file go there, never into the source tree), and derive the cost table.
 */
export function runCalibration(opts: { reps: number; cc?: string; workdir: string }): CalibrationResult {
  const { reps, workdir } = opts;
  if (!Number.isInteger(reps) || reps < 1 || reps > MAX_REPS)
    return { ok: false, why: `reps: expected an integer from 1 to ${MAX_REPS}, got ${String(reps)}` };
  const built = compileProbe({ ...(opts.cc === undefined ? {} : { cc: opts.cc }), outDir: workdir });
  if (!built.ok) return built;
  let out: string;
  try {
    // ~25 ms x 9 figures per repetition, plus warm-up; the timeout only catches a hang
    out = execFileSync(built.exe, [String(reps), join(workdir, 'probe-io.tmp')], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000 + reps * 5_000,
      maxBuffer: 16 << 20,
    });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string; signal?: string | null };
    const detail = err.signal ? `killed by ${err.signal}` : _firstError(String(err.stderr || err.message));
    return { ok: false, why: `probe failed: ${detail}` };
  }
  const probe = _parseProbe(out, reps);
  if (typeof probe === 'string') return { ok: false, why: `probe output: ${probe}` };
  const created_at = new Date().toISOString();
  const host = hostInfo();
  const raw = _raw(probe);
  return {
    ok: true,
    calibration: {
      kind: CALIBRATION_KIND,
      version: CALIBRATION_VERSION,
      created_at,
      host,
      reps,
      raw,
      costs: deriveCosts(raw, `${host.hostname} ${created_at.slice(0, 10)}`),
    },
  };
}

/** The host a calibration is made on. */
export function hostInfo(): HostInfo {
  const cpu = cpus()[0];
  return {
    hostname: hostname(),
    kernel_release: release(),
    cpu_model: cpu?.model.trim() || 'unknown',
    nproc: availableParallelism(),
    mem_bytes: totalmem(),
    node: process.version,
  };
}

type _ProbeFigure = { samples: number[]; iterations: number; what: string } | { unavailable: string };

/** probe.c's JSON, checked; a string says what is wrong with it. */
function _parseProbe(text: string, reps: number): Record<ProbeName, _ProbeFigure> | string {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    return `not JSON (${(e as Error).message})`;
  }
  if (!_isObj(doc) || doc['probe'] !== 1) return 'expected {"probe":1,...}';
  if (doc['reps'] !== reps) return `reps: expected ${reps}, got ${String(doc['reps'])}`;
  const res = doc['results'];
  if (!_isObj(res)) return 'results: expected an object';
  const figs = {} as Record<ProbeName, _ProbeFigure>;
  for (const n of PROBE_NAMES) {
    const f = res[n];
    if (!_isObj(f)) return `${n}: missing`;
    if (typeof f['unavailable'] === 'string') {
      figs[n] = { unavailable: f['unavailable'] };
      continue;
    }
    const s = f['samples_ns'];
    if (!Array.isArray(s) || s.length !== reps || !s.every((x) => typeof x === 'number' && Number.isFinite(x) && x >= 0))
      return `${n}.samples_ns: expected ${reps} numbers >= 0`;
    const it = f['iterations'];
    if (typeof it !== 'number' || !Number.isInteger(it) || it < 1) return `${n}.iterations: expected an integer >= 1`;
    figs[n] = { samples: s as number[], iterations: it, what: typeof f['what'] === 'string' ? f['what'] : '' };
  }
  return figs;
}

/** Median, range and spread of each figure's repetitions. */
function _raw(figs: Record<ProbeName, _ProbeFigure>): RawTable {
  const raw = {} as Record<ProbeName, RawFigure>;
  for (const n of PROBE_NAMES) {
    const f = figs[n];
    if ('unavailable' in f) {
      raw[n] = { unavailable: f.unavailable };
      continue;
    }
    const s = [...f.samples].sort((a, b) => a - b);
    const mid = s.length >> 1;
    const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
    const min = s[0]!;
    const max = s[s.length - 1]!;
    raw[n] = {
      median_ns: median,
      min_ns: min,
      max_ns: max,
      spread_pct: median > 0 ? Math.round(((max - min) / median) * 100 * 100) / 100 : 0,
      reps: s.length,
      iterations: f.iterations,
      what: f.what,
    };
  }
  return raw;
}

/**
 * How each host-side cost follows from the probe's medians. `from` lists the
 * figures it needs (the first is the one it is "of"); if any is unavailable
 * the entry keeps its sourced default. The entries not here cannot be
 * measured from user space on an ordinary host (tlb_shootdown_cpu needs two
 * CPUs in one mm, pconfig and crypto_page MKTME hardware, ewb_eldu_page SGX).
 */
export const COST_FORMULAS: Readonly<
  Partial<Record<CostName, { readonly from: readonly ProbeName[]; readonly formula: string; readonly ns: (m: Readonly<Record<ProbeName, number>>) => number; readonly note?: string }>>
> = {
  syscall: { from: ['getppid'], formula: 'getppid', ns: (m) => m.getppid },
  enosys: { from: ['enosys'], formula: 'enosys', ns: (m) => m.enosys },
  fault: { from: ['anon_fault'], formula: 'anon_fault', ns: (m) => m.anon_fault },
  clflush_line: { from: ['clflush_page'], formula: 'clflush_page / 64', ns: (m) => m.clflush_page / 64 },
  page_copy: { from: ['memcpy_page'], formula: 'memcpy_page', ns: (m) => m.memcpy_page },
  swap_io_page: { from: ['pwrite_pread_page'], formula: 'pwrite_pread_page / 2', ns: (m) => m.pwrite_pread_page / 2, note: 'file I/O on this host (O_DIRECT where the filesystem has it), a stand-in for a swap device' },
  direct_map_remove: {
    from: ['memfd_secret_fault', 'anon_fault'],
    formula: 'max(0, memfd_secret_fault - anon_fault)',
    ns: (m) => Math.max(0, m.memfd_secret_fault - m.anon_fault),
  },
  vma_split: {
    from: ['mprotect_split_merge', 'getppid'],
    formula: 'max(0, mprotect_split_merge / 2 - getppid)',
    ns: (m) => Math.max(0, m.mprotect_split_merge / 2 - m.getppid),
  },
  zap_page: {
    from: ['madvise_dontneed_64', 'getppid'],
    formula: 'max(0, (madvise_dontneed_64 - getppid) / 64)',
    ns: (m) => Math.max(0, (m.madvise_dontneed_64 - m.getppid) / 64),
  },
};

/** DEFAULT_COSTS with every entry whose figures are all available replaced by the measured one. */
export function deriveCosts(raw: RawTable, where: string): CostTable {
  const med = {} as Record<ProbeName, number>;
  for (const n of PROBE_NAMES) {
    const f = raw[n];
    med[n] = 'unavailable' in f ? NaN : f.median_ns;
  }
  const out = { ...DEFAULT_COSTS } as Record<CostName, CostEntry>;
  for (const name of COST_NAMES) {
    const f = COST_FORMULAS[name];
    if (!f || f.from.some((p) => Number.isNaN(med[p]))) continue;
    // "getppid median of 5 on host 2026-11-25 (101-130 ns)"; a derived entry
    // names its formula first and gives the range of every figure in it
    const stats = f.from.map((p) => raw[p] as RawStat);
    const range = (r: RawStat): string => `${_num(r.min_ns)}-${_num(r.max_ns)} ns`;
    const head = f.from.length === 1 ? `${f.formula === f.from[0] ? '' : `${f.formula}, `}${f.from[0]} median` : `${f.formula}, medians`;
    const ranges = f.from.length === 1 ? range(stats[0]!) : f.from.map((p, i) => `${p} ${range(stats[i]!)}`).join(', ');
    out[name] = {
      ns: f.ns(med),
      provenance: 'measured',
      source: _oneLine(`${head} of ${stats[0]!.reps} on ${where} (${ranges})${f.note ? `; ${f.note}` : ''}`),
    };
  }
  return out;
}

const _num = (x: number): string => String(Number(x.toPrecision(3)));

/** The document as written to results/calibration.json. */
export function calibrationJson(c: Calibration): string {
  return `${JSON.stringify(c, null, 2)}\n`;
}

export function saveCalibration(path: string, c: Calibration): void {
  writeFileAtomic(path, calibrationJson(c));
}

// ---- loading -----------------------------------------------------------

const _TOP = ['kind', 'version', 'created_at', 'host', 'reps', 'raw', 'costs'] as const;
const _HOST_STR = ['hostname', 'kernel_release', 'cpu_model', 'node'] as const;
const _RAW_NUM = ['median_ns', 'min_ns', 'max_ns', 'spread_pct'] as const;

/** Cost entries newer than the first calibration files; none is measured here. */
const ADDED_WITH_GUESTS: readonly CostName[] = ['vm_exit', 'conversion', 'pin_page'];

/** Parse and check a calibration file; any problem is a one-line InputError. */
export function loadCalibration(text: string, file: string): Calibration {
  const bad = (msg: string): never => {
    throw new InputError(file, 0, msg);
  };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    return bad(`not JSON (${(e as Error).message})`);
  }
  if (!_isObj(doc)) return bad('expected a JSON object');
  if (doc['kind'] !== CALIBRATION_KIND) return bad(`kind: expected '${CALIBRATION_KIND}', got ${_show(doc['kind'])}`);
  if (doc['version'] !== CALIBRATION_VERSION) return bad(`version: expected ${CALIBRATION_VERSION}, got ${_show(doc['version'])}`);
  for (const k of Object.keys(doc)) if (!(_TOP as readonly string[]).includes(k)) bad(`unknown field '${k}'`);
  const at = doc['created_at'];
  if (typeof at !== 'string' || Number.isNaN(Date.parse(at))) bad('created_at: expected an ISO date string');
  const reps = doc['reps'];
  if (typeof reps !== 'number' || !Number.isInteger(reps) || reps < 1) bad('reps: expected an integer >= 1');

  const host = doc['host'];
  if (!_isObj(host)) return bad('host: expected an object');
  for (const k of _HOST_STR) if (typeof host[k] !== 'string') bad(`host.${k}: missing or not a string`);
  if (!_isCount(host['nproc'], 1)) bad('host.nproc: missing or not an integer >= 1');
  if (!_isCount(host['mem_bytes'], 0)) bad('host.mem_bytes: missing or not an integer >= 0');

  const raw = doc['raw'];
  if (!_isObj(raw)) return bad('raw: expected an object');
  for (const k of Object.keys(raw)) if (!(PROBE_NAMES as readonly string[]).includes(k)) bad(`raw.${k}: unknown probe figure`);
  for (const n of PROBE_NAMES) {
    const f = raw[n];
    if (!_isObj(f)) return bad(`raw.${n}: missing`);
    if ('unavailable' in f) {
      if (typeof f['unavailable'] !== 'string') bad(`raw.${n}.unavailable: expected a string`);
      continue;
    }
    for (const k of _RAW_NUM)
      if (typeof f[k] !== 'number' || !Number.isFinite(f[k]) || (f[k] as number) < 0) bad(`raw.${n}.${k}: expected a number >= 0`);
    if (!_isCount(f['reps'], 1)) bad(`raw.${n}.reps: expected an integer >= 1`);
    if (!_isCount(f['iterations'], 1)) bad(`raw.${n}.iterations: expected an integer >= 1`);
    if (typeof f['what'] !== 'string') bad(`raw.${n}.what: expected a string`);
    const { min_ns, median_ns, max_ns } = f as unknown as RawStat;
    if (!(min_ns <= median_ns && median_ns <= max_ns)) bad(`raw.${n}: expected min_ns <= median_ns <= max_ns`);
  }

  const costs = doc['costs'];
  if (!_isObj(costs)) return bad('costs: expected an object');
  for (const k of Object.keys(costs)) if (!(COST_NAMES as readonly string[]).includes(k)) bad(`costs.${k}: unknown cost name`);
  // A file from before these entries existed (schema 4's guest costs, which
  // calibration does not measure) gets their sourced defaults, as a new
  // calibration would; any other missing entry is a broken file.
  for (const n of ADDED_WITH_GUESTS) if (!(n in costs)) costs[n] = DEFAULT_COSTS[n];
  const why = checkCostTable(costs);
  if (why !== null) bad(`costs.${why}`);
  return doc as unknown as Calibration;
}

function _isObj(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

const _isCount = (x: unknown, min: number): boolean => typeof x === 'number' && Number.isInteger(x) && x >= min;

function _show(x: unknown): string {
  const s = JSON.stringify(x) ?? String(x);
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

// ---- formatting ----------------------------------------------------------

const WIDTH = 72;

/** ns with 3 significant digits in ns, us, ms or s: "4.69 ns", "2.55 us", "13.0 us". */
export function formatNs(ns: number): string {
  if (!Number.isFinite(ns)) return String(ns);
  if (ns === 0) return '0 ns';
  const v = Number(ns.toPrecision(3)); // round first: 999.6 ns is "1.00 us"
  const [unit, div] = v < 1e3 ? ['ns', 1] : v < 1e6 ? ['us', 1e3] : v < 1e9 ? ['ms', 1e6] : ['s', 1e9];
  const x = v / div;
  return `${x < 1000 ? x.toPrecision(3) : Math.round(x)} ${unit}`;
}

/**
 * The cost table as plain-ASCII lines (<= 72 chars): name, ns, provenance,
 * and, for a measured entry when raw is given, the spread (max - min) /
 * median of the probe figure it is of (the first of its formula's figures:
 * mprotect_split_merge for vma_split, not the small getppid it subtracts).
 */
export function formatCostTable(t: CostTable, raw?: RawTable): string[] {
  const lines = [`${'cost'.padEnd(17)}  ${'ns/event'.padStart(9)}  ${'provenance'.padEnd(10)}  ${raw ? 'spread of reps' : 'the cost of'}`];
  for (const name of COST_NAMES) {
    const e = t[name];
    let spread = raw ? '' : COST_MEANING[name];
    const f = COST_FORMULAS[name];
    if (e.provenance === 'measured' && raw && f) {
      const r = raw[f.from[0]!];
      if ('spread_pct' in r) spread = `${r.spread_pct.toFixed(1)}%`;
    }
    lines.push(_fit(`${name.padEnd(17)}  ${formatNs(e.ns).padStart(9)}  ${e.provenance.padEnd(10)}  ${spread}`.trimEnd()));
  }
  return lines;
}

/** The table, then the host it was measured on, and the figures the probe could not take. */
export function formatCalibration(c: Calibration): string {
  const h = c.host;
  const lines = formatCostTable(c.costs, c.raw);
  lines.push(
    _fit(`host: ${h.hostname}, Linux ${h.kernel_release}, node ${h.node}`),
    _fit(`cpu: ${h.cpu_model} x ${h.nproc}, ${(h.mem_bytes / 2 ** 30).toFixed(1)} GiB`),
    _fit(`calibrated ${c.created_at.slice(0, 19).replace('T', ' ')} UTC, ${c.reps} reps`),
  );
  for (const n of PROBE_NAMES) {
    const r = c.raw[n];
    if ('unavailable' in r) lines.push(_fit(`unavailable: ${n} (${r.unavailable})`));
  }
  return `${lines.join('\n')}\n`;
}

/** ASCII only, one line, at most WIDTH chars. */
function _fit(s: string): string {
  const a = _oneLine(s).replace(/[^\x20-\x7e]/g, '?');
  return a.length <= WIDTH ? a : `${a.slice(0, WIDTH - 3)}...`;
}
