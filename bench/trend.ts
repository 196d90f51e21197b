// `history`: each cell's trend over the last N commits of the history store,
// with its change points. The statistics are compare's: the Mann-Whitney U
// test between the pooled samples of consecutive commits, Holm-corrected
// across every (cell, consecutive pair) tested, flagged when significant and
// beyond the threshold; and, since they do not drift, any change of outcome,
// of a cell's exact counters (2-CPU cells': where both runs counted in
// lockstep, schema.ts countersExact), or of the modelled cost.
import type { HistoryRecord } from './history.js';
import { holm, mannWhitney, median } from './stats.js';
import { clean, fit, humanNs, shortInterface, shortWorkload, wrapWords } from './text.js';
import { countersExact, type SwapKind } from './schema.js';

export interface TrendOptions {
  /** keep the runs of the last N distinct git shas */
  readonly last: number;
  /** a significant change beyond this percentage (either way) is a change point */
  readonly thresholdPct: number;
  readonly alpha: number;
}

/** A modelled cost that moves by more than this fraction is a change point (rounding in the CSV is far below it). */
export const MODEL_TOLERANCE = 0.001;

/** A cell at one commit: all its runs there pooled. */
export interface ShaPoint {
  readonly sha: string;
  readonly runs: number;
  /** median of the pooled samples (runs not marked noisy, if any), else of the runs' medians; NaN when not timed */
  readonly median: number;
  /** every run of the cell at this sha was noisy: the median is shown, never tested */
  readonly noisyOnly: boolean;
  /** the latest run's record: its outcome, counters and model stand for the commit */
  readonly last: HistoryRecord;
  /** pooled samples of the runs not marked noisy: what the U test takes */
  readonly tested: readonly number[];
}

export type ChangeKind = 'time' | 'outcome' | 'counter' | 'model';
export interface ChangeReason {
  readonly kind: ChangeKind;
  readonly text: string;
}
/** Between two consecutive commits at which the cell ran. */
export interface ChangePoint {
  readonly from: string;
  readonly to: string;
  readonly reasons: ChangeReason[];
}

export interface CellTrend {
  readonly key: string;
  readonly label: string;
  /** oldest first */
  readonly points: ShaPoint[];
  readonly changes: ChangePoint[];
}

export interface HistoryTrend {
  /** the kept commits, oldest first: sha, date of its first run, runs, the host reference's median over them (NaN: not recorded) */
  readonly shas: { sha: string; date: string; runs: number; hostRefNs: number; hostRefImpl: string }[];
  readonly cells: CellTrend[];
  readonly changePoints: number;
  /** U tests made (the Holm family size) */
  readonly tests: number;
  readonly notes: string[];
  readonly opts: TrendOptions;
}

const pct = (x: number): string => (x >= 0 ? '+' : '') + x.toFixed(1) + '%';
const pval = (p: number): string => (p < 0.001 ? 'p<0.001' : `p=${p.toFixed(3)}`);
const outcomeOf = (r: HistoryRecord): string => r.outcome + (r.errno ? '/' + r.errno : '');
/** 12-hex shas as 7, a dirty tree marked '+': the report's short form */
export const shortSha = (sha: string): string => fit(clean(sha).replace(/-dirty$/, '').slice(0, 7) + (sha.endsWith('-dirty') ? '+' : ''), 8);

function label(key: string, multiHw: boolean, multiBackend: boolean): string {
  // CELL_KEY: crypto_backend, hardware, interface, kernel, swap, workload, threads
  const [backend, hardware, iface, kernel, swap, workload, threads] = key.split('|');
  const parts = [shortWorkload(workload, swap as SwapKind), shortInterface(iface), kernel === 'patched' ? 'p' : 'u', `t${threads}`];
  if (multiHw) parts.push(hardware);
  if (multiBackend) parts.push(backend);
  return clean(parts.join(' '));
}

function point(sha: string, recs: HistoryRecord[]): ShaPoint {
  const quiet = recs.filter((r) => !r.noisy);
  const src = quiet.length > 0 ? quiet : recs;
  const pooled = src.flatMap((r) => r.samples);
  const medians = src.map((r) => r.sim_ns_per_op_median).filter((x): x is number => x !== null);
  return {
    sha,
    runs: recs.length,
    median: pooled.length > 0 ? median(pooled) : median(medians),
    noisyOnly: quiet.length === 0,
    last: recs[recs.length - 1],
    tested: quiet.flatMap((r) => r.samples),
  };
}

/** The deterministic differences between two commits of one cell. */
function exactChanges(a: HistoryRecord, b: HistoryRecord, threads: number): ChangeReason[] {
  const out: ChangeReason[] = [];
  if (outcomeOf(a) !== outcomeOf(b)) out.push({ kind: 'outcome', text: `outcome ${outcomeOf(a)} -> ${outcomeOf(b)}` });
  // 2+ CPUs: exact where both runs counted in lockstep (free-running, they
  // depended on how the CPUs interleaved); another seed means other data
  if (countersExact(threads, a.settings.counting, b.settings.counting) && a.settings.seed === b.settings.seed)
    for (const [c, v] of Object.entries(b.counters)) {
      const was = a.counters[c];
      if (was !== undefined && was !== v) out.push({ kind: 'counter', text: `${c} ${was} -> ${v}` });
    }
  const ma = a.modelled_ns_per_op, mb = b.modelled_ns_per_op;
  if (ma !== null && mb !== null) {
    if (ma === 0 ? mb !== 0 : Math.abs(mb / ma - 1) > MODEL_TOLERANCE) out.push({ kind: 'model', text: `model ${ma === 0 ? humanNs(ma) + ' -> ' + humanNs(mb) : pct((mb / ma - 1) * 100)}` });
  } else if ((ma === null) !== (mb === null) && out.every((r) => r.kind !== 'outcome'))
    out.push({ kind: 'model', text: `model ${humanNs(ma ?? NaN)} -> ${humanNs(mb ?? NaN)}` });
  return out;
}

export function historyTrend(records: readonly HistoryRecord[], opts: TrendOptions): HistoryTrend {
  // stable: runs that started at the same time keep their file order
  const sorted = [...records].sort((x, y) => Date.parse(x.started_at) - Date.parse(y.started_at));
  // a commit takes its place in time from its first run; later reruns pool into it
  const order: string[] = [];
  for (const r of sorted) if (!order.includes(r.git_sha)) order.push(r.git_sha);
  const kept = new Set(order.slice(Math.max(0, order.length - opts.last)));
  const keep = sorted.filter((r) => kept.has(r.git_sha));
  const shaOrder = order.filter((s) => kept.has(s));
  const runsOf = (sha: string) => new Set(keep.filter((r) => r.git_sha === sha).map((r) => r.run_id)).size;
  // the host's speed at each commit: the median over its runs' host reference (one per run)
  // (and what it ran on: the last run's, said when the kept commits differ in it)
  const hostRefOf = (sha: string): { ns: number; impl: string } => {
    const perRun = new Map<string, number>();
    let impl = '';
    for (const r of keep)
      if (r.git_sha === sha && r.env.host_ref_ns !== undefined) {
        perRun.set(r.run_id, r.env.host_ref_ns);
        impl = r.env.host_ref_impl ?? '';
      }
    return { ns: perRun.size ? median([...perRun.values()]) : NaN, impl };
  };
  const shas = shaOrder.map((sha) => {
    const ref = hostRefOf(sha);
    return { sha, date: keep.find((r) => r.git_sha === sha)!.started_at.slice(0, 10), runs: runsOf(sha), hostRefNs: ref.ns, hostRefImpl: ref.impl };
  });

  const byCell = new Map<string, Map<string, HistoryRecord[]>>();
  for (const r of keep) {
    if (!byCell.has(r.key)) byCell.set(r.key, new Map());
    const cell = byCell.get(r.key)!;
    if (!cell.has(r.git_sha)) cell.set(r.git_sha, []);
    cell.get(r.git_sha)!.push(r);
  }
  const parts = (i: number) => new Set([...byCell.keys()].map((k) => k.split('|')[i])).size > 1;
  const multiBackend = parts(0), multiHw = parts(1);

  // every pair of consecutive commits of every cell; the timed ones form the Holm family
  const pairs: { cell: CellTrend; from: ShaPoint; to: ShaPoint; reasons: ChangeReason[]; p: number; changePct: number }[] = [];
  const cells: CellTrend[] = [...byCell].map(([key, bySha]) => {
    const points = shaOrder.filter((s) => bySha.has(s)).map((s) => point(s, bySha.get(s)!));
    const cell: CellTrend = { key, label: label(key, multiHw, multiBackend), points, changes: [] };
    const threads = Number(key.split('|').at(-1));
    for (let i = 1; i < points.length; i++) {
      const from = points[i - 1], to = points[i];
      const timed = from.tested.length > 0 && to.tested.length > 0;
      pairs.push({
        cell,
        from,
        to,
        reasons: exactChanges(from.last, to.last, threads),
        p: timed ? mannWhitney(from.tested, to.tested).p : NaN,
        changePct: timed ? (median(to.tested) / median(from.tested) - 1) * 100 : NaN,
      });
    }
    return cell;
  });
  const adjusted = holm(pairs.map((x) => x.p)); // NaN (not timed) stays NaN and is not counted
  pairs.forEach((x, i) => {
    if (adjusted[i] < opts.alpha && Math.abs(x.changePct) > opts.thresholdPct) x.reasons.unshift({ kind: 'time', text: `time ${pct(x.changePct)} ${pval(adjusted[i])}` });
    if (x.reasons.length > 0) x.cell.changes.push({ from: x.from.sha, to: x.to.sha, reasons: x.reasons });
  });

  const notes: string[] = [];
  const hosts = [...new Set(keep.map((r) => r.host))];
  if (hosts.length > 1) notes.push(`runs from ${hosts.length} hosts (${hosts.join(', ')}): times may not be comparable`);
  const seeds = [...new Set(keep.map((r) => r.settings.seed))];
  if (seeds.length > 1) notes.push(`seeds differ (${seeds.join(', ')}): counters compared only between runs of one seed`);
  return { shas, cells, changePoints: cells.reduce((n, c) => n + c.changes.length, 0), tests: pairs.filter((x) => !Number.isNaN(x.p)).length, notes, opts };
}

/** The trend as a 72-column plain-ASCII text: one block per cell, then a summary line. */
export function formatHistory(t: HistoryTrend): string {
  const W = 72;
  const out: string[] = [];
  out.push(`memcrypt-bench history: the last ${t.shas.length} commit${t.shas.length === 1 ? '' : 's'}, oldest first`);
  const refKinds = new Set(t.shas.filter((s) => Number.isFinite(s.hostRefNs)).map((s) => s.hostRefImpl));
  for (const s of t.shas) {
    const ref = Number.isFinite(s.hostRefNs) ? `  host ref ${humanNs(s.hostRefNs)}${refKinds.size > 1 ? ` ${fit(clean(s.hostRefImpl || '?'), 20)}` : ''}` : '';
    out.push(`  ${shortSha(s.sha).padEnd(8)}  ${clean(s.date)}  ${`${s.runs} run${s.runs === 1 ? '' : 's'}`.padEnd(7)}${ref}`.trimEnd());
  }
  out.push(
    ...wrapWords(
      `Change points: time = Mann-Whitney U between consecutive commits on their pooled samples, Holm-corrected over ${t.tests} tests, ` +
        `alpha ${t.opts.alpha}, beyond ${t.opts.thresholdPct}%; any change of outcome, of exact counters (of 2-CPU cells where both runs counted in lockstep), ` +
        `or of the modelled cost beyond ${MODEL_TOLERANCE * 100}%. '?': runs under load only (noisy), not tested.`,
      '',
      '  ',
      W,
    ),
  );
  for (const n of t.notes) out.push(...wrapWords(`Note: ${n}`, '', '  ', W));
  for (const c of t.cells) {
    out.push('', fit(c.label, W));
    // three commits a line: '  abc1234   1.23 us   def5678+  1.48 us?'
    const items = c.points.map((p) => `${shortSha(p.sha).padEnd(8)} ${humanNs(p.median).padStart(8)}${p.noisyOnly ? '?' : ' '}`);
    for (let i = 0; i < items.length; i += 3) out.push(('  ' + items.slice(i, i + 3).join('  ')).trimEnd());
    for (const ch of c.changes)
      out.push(...wrapWords(`! ${shortSha(ch.from)} -> ${shortSha(ch.to)}: ${ch.reasons.map((r) => r.text).join('; ')}`, '  ', '      ', W));
  }
  const kinds = (['time', 'outcome', 'counter', 'model'] as const)
    .map((k) => [k, t.cells.reduce((n, c) => n + c.changes.filter((ch) => ch.reasons.some((r) => r.kind === k)).length, 0)] as const)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k} ${n}`);
  const s = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'}`;
  out.push(
    '',
    ...wrapWords(`Result: ${s(t.cells.length, 'cell')}, ${s(t.shas.length, 'commit')}: ${s(t.changePoints, 'change point')}${kinds.length ? ` (${kinds.join(', ')})` : ''}.`, '', '  ', W),
  );
  return out.join('\n');
}
