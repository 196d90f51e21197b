// Regression tracking: compare two runs cell by cell. Counters are
// deterministic (those of cells of 2+ CPUs since their counting round runs
// in lockstep: RunMeta.counting), so any difference there (or in a cell's
// outcome) is a behaviour change. Time is compared with a
// Mann-Whitney U test on the timing samples, Holm-corrected across all
// compared cells; a significant slowdown beyond the threshold is a regression.
import { stringify } from 'csv-stringify/sync';
import { checkResultSet, metaPath, parseCsv, parseMeta, parseSamples, samplesPath } from './csv.js';
import { InputError, readInput } from './io.js';
import { fit, humanNs, shortInterface, shortWorkload, wrapWords } from './text.js';
import { CELL_KEY, COUNTER_COLUMNS, cellKey, countersExact, type Row, type RunMeta } from './schema.js';
import { hasFlag } from './stability.js';
import { hostRefSummary, hostScalingSummary } from './hostref.js';
import { geomean, holm, mannWhitney, median, minExactP, uShiftForPower } from './stats.js';

export interface LoadedRun {
  readonly file: string;
  readonly meta: RunMeta;
  readonly rows: Row[];
  /** cell key -> timing samples (ns per op) */
  readonly samples: Map<string, number[]>;
}

/** Read a results CSV with its meta and samples files; all three must be of the same run. */
export function loadRun(file: string): LoadedRun {
  const text = readInput(file);
  const rows = parseCsv(text, file);
  const mfile = metaPath(file);
  const meta = parseMeta(readInput(mfile), mfile);
  const sfile = samplesPath(file);
  const { runId, cells } = parseSamples(readInput(sfile), sfile);
  checkResultSet(file, text, rows, meta, mfile);
  if (runId !== meta.run_id) throw new InputError(sfile, 0, `samples of run ${runId}, but ${mfile} is of run ${meta.run_id}: not one result set`);
  const samples = new Map(cells.map((c) => [c.key, c.samples]));
  for (const r of rows) {
    const s = samples.get(cellKey(r));
    if (s === undefined) throw new InputError(sfile, 0, `no samples for cell ${cellKey(r)} of ${file}: not the samples of this run`);
    if (r.sim_rounds > 0 && s.length === 0) throw new InputError(sfile, 0, `cell ${cellKey(r)} has ${r.sim_rounds} timed rounds in ${file} but no samples here`);
  }
  if (cells.length !== rows.length) throw new InputError(sfile, 0, `${cells.length} cells, but ${file} has ${rows.length}: not the samples of this run`);
  return { file, meta, rows, samples };
}

export interface CounterChange {
  readonly column: string;
  readonly base: number | string;
  readonly now: number | string;
}

export interface CellComparison {
  readonly key: string;
  readonly label: string;
  readonly base: Row | null;
  readonly now: Row | null;
  readonly baseMedian: number;
  readonly newMedian: number;
  /** (new / base - 1) * 100 */
  readonly changePct: number;
  readonly p: number;
  /**
   * Which side the U test saw lower: -1 the new samples (faster), 1 the
   * base's, 0 neither. It names a significant change whose two medians are
   * equal (possible with few samples), where changePct has no sign.
   */
  readonly lower: -1 | 0 | 1;
  pHolm: number;
  significant: boolean;
  regression: boolean;
  /** either run marked the cell noisy: shown, not tested */
  readonly noisy: boolean;
  /** The smallest change this cell's samples could show, % (see mde); Infinity when n is too small. */
  mdePct: number;
  /** not significant, and a change of the threshold's size could not have been seen either */
  insufficient: boolean;
  /** outcome or exact counters that differ (counters: where both runs count the cell exactly, countersExact) */
  readonly changes: CounterChange[];
}

export interface CompareOptions {
  /** a significant slowdown above this percentage is a regression */
  readonly thresholdPct: number;
  readonly alpha: number;
}

export interface CompareResult {
  readonly base: LoadedRun;
  readonly now: LoadedRun;
  readonly cells: CellComparison[];
  /** geometric mean of new/base medians over cells timed in both */
  readonly geomeanRatio: number;
  readonly regressions: number;
  readonly behaviourChanges: number;
  readonly timedCells: number;
  /** cells in one run only: not run in the other (not a behaviour change) */
  readonly notRun: number;
  readonly notes: string[];
  readonly opts: CompareOptions;
}

function label(r: Row, multiHw: boolean, multiBackend: boolean): string {
  const parts = [shortWorkload(r.workload, r.swap), shortInterface(r.interface), r.kernel === 'patched' ? 'p' : 'u', `t${r.threads}`];
  if (multiHw) parts.push(r.hardware);
  if (multiBackend) parts.push(r.crypto_backend);
  return parts.join(' ');
}

/** Settings that change what a time means: a mismatch is said, since it can make or hide a change. */
const SETTINGS: readonly (keyof RunMeta)[] = ['counting', 'repeat', 'time_ms', 'warmup_ms', 'warmup_cells', 'min_samples', 'timing_flags', 'node_version', 'tinybench_version', 'crypto_backends', 'crypto_impl', 'cost_source', 'nproc', 'cpu_model', 'kernel_release'];

/** A setting's value as the note says it: absent (an older run) is 'not recorded', '' is 'none'. */
const shown = (v: unknown): string => (v === undefined ? 'not recorded' : v === '' ? 'none' : String(v));

function settingsNotes(b: RunMeta, n: RunMeta): string[] {
  const diff = SETTINGS.filter((k) => JSON.stringify(b[k]) !== JSON.stringify(n[k])).map((k) => `${k} ${shown(b[k])} vs ${shown(n[k])}`);
  return diff.length ? [`settings differ (${diff.join('; ')}): times may not be comparable`] : [];
}

/**
 * The smallest change a cell's samples could show, % of the base median: the
 * shift the U test finds half the time (50% power) at alpha divided over the
 * compared cells (Holm's worst case), for normal data with the pooled
 * standard deviation s of the two sides: s times the U test's own shift for
 * that power at these sample sizes (stats.ts uShiftForPower). Infinity when
 * even complete separation cannot reach alpha at these sample sizes (the
 * exact test's floor, minExactP), which is the case of one process per side.
 */
function mde(bs: readonly number[], ns: readonly number[], family: number, alpha: number): number {
  const n1 = bs.length, n2 = ns.length;
  if (n1 === 0 || n2 === 0 || minExactP(n1, n2) * family >= alpha) return Infinity;
  const ss = (xs: readonly number[]) => {
    const m = xs.reduce((a, b) => a + b, 0) / xs.length;
    return xs.reduce((a, x) => a + (x - m) ** 2, 0);
  };
  const s = Math.sqrt((ss(bs) + ss(ns)) / Math.max(1, n1 + n2 - 2));
  // (finite here: complete separation reaches alpha, so a large enough shift is always seen)
  return ((uShiftForPower(n1, n2, alpha / family) * s) / median(bs)) * 100;
}

/**
 * The host's own speed, base against new (bench/hostref.ts): a shift of the
 * reference's median larger than the threshold is said, since every cell's
 * time moves with the host.
 */
function hostRefNotes(b: RunMeta, n: RunMeta, thresholdPct: number): string[] {
  const bs = b.host_ref_ns ?? [], ns = n.host_ref_ns ?? [];
  if (bs.length === 0 || ns.length === 0) return [];
  if (b.host_ref_impl !== n.host_ref_impl) return [`the host references ran on different code (${shown(b.host_ref_impl)} vs ${shown(n.host_ref_impl)}): the host's speed is not compared`];
  const shift = (median(ns) / median(bs) - 1) * 100;
  if (!(Math.abs(shift) > thresholdPct)) return [];
  return [
    `the host reference, which runs none of the simulator, took ${Math.abs(shift).toFixed(1)}% ${shift > 0 ? 'longer' : 'less time'} in new than in base: the host itself was ${shift > 0 ? 'slower' : 'faster'}, and changes of that size may be the host's`,
  ];
}

/**
 * The host's parallel capacity, base against new (bench/hostref.ts
 * hostScaling): cells of 2 or more CPUs gain over one CPU only as much as
 * the host lets threads run side by side, so a shift beyond the threshold
 * is said.
 */
function hostScalingNotes(b: RunMeta, n: RunMeta, thresholdPct: number): string[] {
  const bs = b.host_scaling ?? [], ns = n.host_scaling ?? [];
  if (bs.length === 0 || ns.length === 0) return [];
  if (b.host_scaling_threads !== n.host_scaling_threads)
    return [`the host scaling ran ${b.host_scaling_threads} threads in base and ${n.host_scaling_threads} in new: not compared`];
  const bm = median(bs), nm = median(ns);
  if (!(Math.abs((nm / bm - 1) * 100) > thresholdPct)) return [];
  return [
    `the host ran ${n.host_scaling_threads} threads of its reference at ${nm.toFixed(2)}x one in new against ${bm.toFixed(2)}x in base: cells of 2 or more CPUs may have moved with it`,
  ];
}

export function compareRuns(base: LoadedRun, now: LoadedRun, opts: CompareOptions): CompareResult {
  const notes: string[] = settingsNotes(base.meta, now.meta);
  const sameSeed = base.meta.seed === now.meta.seed;
  if (!sameSeed) notes.push(`seeds differ (${base.meta.seed} vs ${now.meta.seed}): counters not compared`);
  const bmap = new Map(base.rows.map((r) => [cellKey(r), r]));
  const nmap = new Map(now.rows.map((r) => [cellKey(r), r]));
  const all = [...base.rows, ...now.rows];
  const multiHw = new Set(all.map((r) => r.hardware)).size > 1;
  const multiBackend = new Set(all.map((r) => r.crypto_backend)).size > 1;
  const keys = [...new Set([...bmap.keys(), ...nmap.keys()])];
  if (!keys.some((k) => bmap.has(k) && nmap.has(k)))
    throw new InputError(now.file, 0, `no cell in common with ${base.file}`);
  const cells: CellComparison[] = keys.map((key) => {
    const b = bmap.get(key) ?? null;
    const n = nmap.get(key) ?? null;
    const bs = base.samples.get(key) ?? [];
    const ns = now.samples.get(key) ?? [];
    const changes: CounterChange[] = [];
    if (b && n) {
      if (b.outcome !== n.outcome || b.errno !== n.errno)
        changes.push({ column: 'outcome', base: `${b.outcome}${b.errno ? '/' + b.errno : ''}`, now: `${n.outcome}${n.errno ? '/' + n.errno : ''}` });
      if (sameSeed && countersExact(b.threads, base.meta.counting, now.meta.counting))
        for (const c of COUNTER_COLUMNS) if (b[c] !== n[c]) changes.push({ column: c, base: b[c], now: n[c] });
    }
    const baseMedian = median(bs);
    const newMedian = median(ns);
    const timed = bs.length > 0 && ns.length > 0;
    const noisy = [b, n].some((r) => r !== null && hasFlag(r, 'noisy'));
    const u = timed && !noisy ? mannWhitney(bs, ns) : { u: NaN, p: NaN };
    // u counts the (base, new) pairs with the base's sample larger (ties a half)
    const mid = (bs.length * ns.length) / 2;
    return {
      key,
      label: label((n ?? b)!, multiHw, multiBackend),
      base: b,
      now: n,
      baseMedian,
      newMedian,
      changePct: timed ? (newMedian / baseMedian - 1) * 100 : NaN,
      p: u.p,
      lower: u.u > mid ? -1 : u.u < mid ? 1 : 0,
      pHolm: NaN,
      significant: false,
      regression: false,
      noisy: timed && noisy,
      mdePct: NaN,
      insufficient: false,
      changes,
    };
  });
  const adjusted = holm(cells.map((c) => c.p));
  const family = cells.filter((c) => !Number.isNaN(c.p)).length;
  cells.forEach((c, i) => {
    c.pHolm = adjusted[i];
    c.significant = adjusted[i] < opts.alpha;
    c.regression = c.significant && c.changePct > opts.thresholdPct;
    if (Number.isNaN(c.p)) return;
    c.mdePct = mde(base.samples.get(c.key)!, now.samples.get(c.key)!, family, opts.alpha);
    c.insufficient = !c.significant && c.mdePct > opts.thresholdPct;
  });
  const timedCells = cells.filter((c) => !Number.isNaN(c.p));
  notes.push(...hostRefNotes(base.meta, now.meta, opts.thresholdPct));
  notes.push(...hostScalingNotes(base.meta, now.meta, opts.thresholdPct));
  if (base.meta.host !== now.meta.host) notes.push(`hosts differ (${base.meta.host} vs ${now.meta.host}): times may not be comparable`);
  return {
    base,
    now,
    cells,
    geomeanRatio: geomean(timedCells.map((c) => c.newMedian / c.baseMedian)),
    regressions: cells.filter((c) => c.regression).length,
    behaviourChanges: cells.filter((c) => c.changes.length > 0).length,
    timedCells: timedCells.length,
    notRun: cells.filter((c) => !c.base || !c.now).length,
    notes,
    opts,
  };
}

const pct = (x: number): string => (x >= 0 ? '+' : '') + x.toFixed(1) + '%';
const pval = (p: number): string => (p < 0.001 ? 'p<0.001' : `p=${p.toFixed(3)}`);

/** The comparison as a 72-column text. */
export function formatCompare(r: CompareResult): string {
  const W = 72;
  const out: string[] = [];
  // an LKP-style head: what ran where, with which settings
  const m = r.now.meta;
  out.push(...wrapWords(`memcrypt-bench compare ${r.base.meta.git_sha}...${m.git_sha}`, '', '  ', W));
  out.push(...wrapWords(`base: ${r.base.meta.git_sha} ${r.base.meta.started_at} ${r.base.file}`, '', '  ', W));
  out.push(...wrapWords(`new: ${m.git_sha} ${m.started_at} ${r.now.file}`, '', '  ', W));
  out.push(...wrapWords(`machine: ${m.host}, ${m.cpu_model}, ${m.nproc} CPUs, ${(m.mem_bytes / 2 ** 30).toFixed(0)} GiB, Linux ${m.kernel_release}, node ${m.node_version}`, '', '  ', W));
  out.push(
    ...wrapWords(
      `settings: repeat ${m.repeat}, ${m.warmup_cells === undefined ? '' : `warm-up lap ${m.warmup_cells} cells, `}warm-up ${m.warmup_ms} ms, time ${m.time_ms} ms, >= ${m.min_samples} rounds, ${m.timing_flags ? `flags ${m.timing_flags}, ` : ''}backend ${m.crypto_backends.join(',')}${m.crypto_impl ? ` (${m.crypto_impl})` : ''}, costs ${m.cost_source}`,
      '',
      '  ',
      W,
    ),
  );
  const refs = [r.base.meta, m].map((x) => hostRefSummary(x.host_ref_ns, x.host_ref_impl) || 'not recorded');
  if (r.base.meta.host_ref_ns || m.host_ref_ns) out.push(...wrapWords(`host ref: base ${refs[0]}; new ${refs[1]}`, '', '  ', W));
  const scal = [r.base.meta, m].map((x) => hostScalingSummary(x.host_scaling, x.host_scaling_threads) || 'not recorded');
  if (r.base.meta.host_scaling || m.host_scaling) out.push(...wrapWords(`host scaling: base ${scal[0]}; new ${scal[1]}`, '', '  ', W));
  out.push(
    ...wrapWords(
      `Time: Mann-Whitney U per cell on per-process medians, Holm-corrected over ${r.timedCells} cells, alpha ${r.opts.alpha}; ` +
        `~ = no significant change; regression = significant and slower by more than ${r.opts.thresholdPct}%; ` +
        `insufficient = not significant, and too few or too spread samples to see a ${r.opts.thresholdPct}% change (mde: smallest detectable).`,
      '',
      '  ',
      W,
    ),
  );
  for (const n of r.notes) out.push(...wrapWords(`Note: ${n}`, '', '  ', W));
  out.push('');
  const head = `${'cell'.padEnd(26)}${'base'.padStart(8)}${'new'.padStart(8)}${'change'.padStart(8)}  ${'p (Holm)'}`;
  out.push(head);
  for (const c of r.cells) {
    if (!c.base || !c.now) continue;
    if (c.noisy) {
      out.push(fit(`${fit(c.label, 25).padEnd(26)}${humanNs(c.baseMedian).padStart(8)}${humanNs(c.newMedian).padStart(8)}${'?'.padStart(8)}  noisy: not tested`, W));
      continue;
    }
    if (Number.isNaN(c.p)) continue;
    const change = c.significant ? pct(c.changePct) : c.insufficient ? '?' : '~';
    const tail = c.significant ? `  ${pval(c.pHolm)}${c.regression ? ' REGRESSION' : ''}` : c.insufficient ? '  insufficient samples' : '';
    out.push(fit(`${fit(c.label, 25).padEnd(26)}${humanNs(c.baseMedian).padStart(8)}${humanNs(c.newMedian).padStart(8)}${change.padStart(8)}${tail}`, W));
  }
  const g = r.geomeanRatio;
  out.push(`${'geomean'.padEnd(42)}${(Number.isNaN(g) ? '-' : pct((g - 1) * 100)).padStart(8)}`);
  const behaviour = r.cells.filter((c) => c.changes.length > 0);
  if (behaviour.length > 0) {
    out.push('', `Behaviour changes (outcomes; exact counters${countersExact(2, r.base.meta.counting, r.now.meta.counting) ? '' : ' of 1-thread cells'}):`);
    for (const c of behaviour) {
      const what = c.changes.map((x) => `${x.column} ${x.base} -> ${x.now}`).join('; ');
      out.push(...wrapWords(`${c.label}: ${what}`, '  ', '    ', W));
    }
  }
  const only = (side: 'base' | 'now') => r.cells.filter((c) => (side === 'base' ? c.base && !c.now : c.now && !c.base)).map((c) => c.label);
  for (const [side, name] of [['base', r.now.file], ['now', r.base.file]] as const) {
    const cells = only(side);
    if (cells.length > 0) out.push('', ...wrapWords(`Not run in ${name}: ${cells.join(', ')}`, '', '  ', W));
  }
  const insufficient = r.cells.filter((c) => c.insufficient).length;
  const noisy = r.cells.filter((c) => c.noisy).length;
  if (insufficient > 0) {
    const mdes = r.cells.filter((c) => c.insufficient).map((c) => c.mdePct);
    const finite = mdes.filter((x) => Number.isFinite(x));
    const why = finite.length < mdes.length ? `${mdes.length - finite.length} have too few samples for the U test to reach alpha after Holm` : '';
    const spread = finite.length ? `${finite.length} are too spread (smallest detectable change ${[...new Set([Math.min(...finite), Math.max(...finite)].map((x) => x.toFixed(0)))].join('-')}%)` : '';
    out.push(
      '',
      ...wrapWords(
        `Warning: ${insufficient} of ${r.timedCells} timed cells cannot show a ${r.opts.thresholdPct}% change: ${[why, spread].filter(Boolean).join('; ')}. Run both sides with more --repeat.`,
        '',
        '  ',
        W,
      ),
    );
  }
  if (noisy > 0) out.push('', ...wrapWords(`Warning: ${noisy} cells were timed while other processes loaded the machine (noisy): left out of the test.`, '', '  ', W));
  out.push(
    '',
    ...wrapWords(
      `Result: ${r.regressions} significant regression${r.regressions === 1 ? '' : 's'} beyond ${r.opts.thresholdPct}%, ` +
        `${r.behaviourChanges} behaviour change${r.behaviourChanges === 1 ? '' : 's'}` +
        (r.notRun > 0 ? `, ${r.notRun} cell${r.notRun === 1 ? '' : 's'} not run on one side.` : '.'),
      '',
      '  ',
      W,
    ),
  );
  return out.join('\n');
}

/** The cell's identity (CELL_KEY), then the comparison. */
export const COMPARE_COLUMNS = [
  ...CELL_KEY,
  'in',
  'base_median_ns',
  'new_median_ns',
  'change_pct',
  'p_value',
  'p_holm',
  'significant',
  'regression',
  'mde_pct',
  'verdict',
  'behaviour_changes',
];

/** One word per cell: regression, faster, slower (within the threshold), same, insufficient, noisy, not-run, untimed. */
function verdict(c: CellComparison): string {
  if (!c.base || !c.now) return 'not-run';
  if (c.noisy) return 'noisy';
  if (Number.isNaN(c.p)) return 'untimed';
  if (c.regression) return 'regression';
  if (c.significant) return c.changePct < 0 || (c.changePct === 0 && c.lower < 0) ? 'faster' : 'slower';
  return c.insufficient ? 'insufficient' : 'same';
}

const num = (x: number): string => (Number.isFinite(x) ? String(Math.round(x * 1000) / 1000) : '');

/** The comparison as CSV, one row per cell. */
export function formatCompareCsv(r: CompareResult): string {
  const records = r.cells.map((c) => {
    const row = (c.now ?? c.base)!;
    return [
      ...CELL_KEY.map((col) => String(row[col])),
      c.base && c.now ? 'both' : c.base ? 'base' : 'new',
      num(c.baseMedian),
      num(c.newMedian),
      num(c.changePct),
      num(c.p),
      num(c.pHolm),
      String(c.significant),
      String(c.regression),
      num(c.mdePct),
      verdict(c),
      c.changes.map((x) => `${x.column}:${x.base}->${x.now}`).join(' '),
    ];
  });
  return stringify([[...COMPARE_COLUMNS], ...records]);
}
