// Exports of a result set for the trackers that chart it across commits:
// github-action-benchmark (`customSmallerIsBetter`) and Bencher (BMF JSON).
//
// The contract both keep: every cell of the result set appears, whatever
// became of it. A cell that turns `unsupported` or `crashed` loses its
// simulator time (it is not timed) and its modelled cost (it did not run its
// scenario), but it keeps its outcome code, so the series shows the change
// instead of ending. The deterministic series (outcome, modelled cost, exact
// counters) are exported beside the simulator time, each under its own name,
// never mixed with it: the simulator time is the harness's speed, the
// modelled cost is the argument.
//
// Both outputs are deterministic: cells sorted by name (code-unit order, not
// the locale's), entries and measures in a fixed order, numbers rounded as
// the CSV writes them. The same CSV gives the same bytes on any machine.
import { existsSync } from 'node:fs';
import type { Outcome } from '../interfaces/conformance.js';
import { COST_NAMES, type CostName } from '../hardware/costs.js';
import { checkResultSet, metaPath, parseCsv, parseMeta } from './csv.js';
import { InputError, readInput, writeFileAtomic } from './io.js';
import { TERM_SHORT, topTerms } from './model.js';
import { COUNTER_COLUMNS, termColumn, type CounterColumn, type Row } from './schema.js';

/**
 * The outcome vocabulary (interfaces/conformance.ts OUTCOMES, observed by
 * workloads/workload.ts outcomeOf) as stable integers for charts that only
 * take numbers. Codes are labels, not a scale: a chart shows that a cell
 * changed outcome, the code says to what. Never renumber; a new outcome gets
 * the next unused integer. `Record<Outcome, ...>` makes a new outcome that
 * is not given a code a compile error.
 */
export const OUTCOME_CODES: Readonly<Record<Outcome, number>> = {
  encrypted: 0,
  plaintext: 1,
  secret: 2,
  'plaintext-fallback': 3,
  unsupported: 4,
  crashed: 5,
  'data-loss': 6,
  leaked: 7,
};

/** 'encrypted=0, plaintext=1, ...': the legend, in code order, for the `extra` text and the README. */
export const OUTCOME_LEGEND = Object.entries(OUTCOME_CODES)
  .sort((a, b) => a[1] - b[1])
  .map(([o, c]) => `${o}=${c}`)
  .join(', ');

/** An outcome's code. Throws on a word outside the vocabulary: a file from another harness, not a cell to chart as 0. */
export function outcomeCode(outcome: string): number {
  if (!Object.hasOwn(OUTCOME_CODES, outcome)) throw new RangeError(`outcome '${outcome}' has no export code (known: ${OUTCOME_LEGEND})`);
  return OUTCOME_CODES[outcome as Outcome];
}

/** The cell as both trackers name it (the name github-action-benchmark has charted since the first export). */
export const cellName = (r: Row): string => `${r.workload}/${r.interface}/${r.kernel}/${r.swap}/t${r.threads} (${r.hardware}, ${r.crypto_backend})`;

/** Timed: the simulator time is there (sim_rounds > 0 as run.ts has always exported it). */
const _timed = (r: Row): boolean => r.sim_rounds > 0 && Number.isFinite(r.sim_ns_per_op_median);
/** Ran its scenario: the model columns are there (they are empty, NaN, for unsupported and crashed cells). */
const _modelled = (r: Row): boolean => Number.isFinite(r.modelled_ns_per_op);
/** The CSV's precision: 3 decimals, no -0. */
const _r3 = (x: number): number => Number(x.toFixed(3)) || 0;
const _cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Rows with their names, sorted by name: the export does not depend on the order cells ran in. */
function _sorted(rows: readonly Row[]): { name: string; r: Row }[] {
  return rows.map((r) => ({ name: cellName(r), r })).sort((a, b) => _cmp(a.name, b.name));
}

/** 'outcome unsupported/ENOSYS' or 'outcome leaked (swap, 16384 bytes)'. */
function _outcomeText(r: Row): string {
  const errno = r.errno ? `/${r.errno}` : '';
  const leak = r.leak_medium ? ` (${r.leak_medium}, ${r.leak_bytes} bytes)` : '';
  return `outcome ${r.outcome}${errno}${leak}`;
}

/** 'fault 71%, clflush 18%': the two largest terms, as the report shows them. */
function _topText(r: Row): string {
  const terms = {} as Record<CostName, number>;
  for (const c of COST_NAMES) terms[c] = r[termColumn(c)];
  return topTerms(terms, 2)
    .map((t) => `${TERM_SHORT[t.name]} ${Math.round(t.share * 100)}%`)
    .join(', ');
}

// --- github-action-benchmark -------------------------------------------------

/** One entry of github-action-benchmark's custom JSON; `range` and `extra` are shown in the chart's tooltip. */
export interface GabEntry {
  name: string;
  unit: string;
  value: number;
  range?: string;
  extra?: string;
}

/**
 * github-action-benchmark's `customSmallerIsBetter` JSON: up to three
 * entries per cell, in this order:
 *  - `<cell> sim`: the simulator's median ns/op (the harness's speed), timed cells only;
 *  - `<cell> model`: modelled_ns_per_op (the argument), cells that ran their scenario;
 *  - `<cell> outcome`: the outcome code (OUTCOME_CODES, unit 'code'), every cell.
 * Note that the action's alert is a ratio against the previous value: an
 * outcome change from code 0 always alerts, one between two non-zero codes
 * may not; gate on outcomes with `compare`, chart them here.
 */
export function exportGab(rows: readonly Row[]): string {
  const entries: GabEntry[] = [];
  for (const { name, r } of _sorted(rows)) {
    const outcome = _outcomeText(r);
    if (_timed(r))
      entries.push({
        name: `${name} sim`,
        unit: 'ns/op',
        value: Math.round(r.sim_ns_per_op_median * 10) / 10,
        ...(Number.isFinite(r.sim_rme_pct) ? { range: `+-${r.sim_rme_pct.toFixed(1)}%` } : {}),
        extra: `simulator time (the harness's speed, not the argument); ${outcome}; ${r.sim_rounds} rounds`,
      });
    if (_modelled(r)) {
      const over = Number.isFinite(r.model_over_plain_ns_per_op) ? `; ${_r3(r.model_over_plain_ns_per_op)} ns/op over plain-mmap` : '';
      const top = _topText(r);
      entries.push({
        name: `${name} model`,
        unit: 'ns/op',
        value: _r3(r.modelled_ns_per_op),
        extra: `modelled cost (exact counters x cost table: ${r.cost_source})${over}${top ? `; largest terms ${top}` : ''}; ${outcome}`,
      });
    }
    entries.push({
      name: `${name} outcome`,
      unit: 'code',
      value: outcomeCode(r.outcome),
      extra: `${outcome}; codes: ${OUTCOME_LEGEND}`,
    });
  }
  return JSON.stringify(entries, null, 2) + '\n';
}

// --- Bencher Metric Format ---------------------------------------------------

/** A BMF metric: `lower_value` and `upper_value` are optional and bracket `value`. */
export interface BmfMetric {
  value: number;
  lower_value?: number;
  upper_value?: number;
}
export type Bmf = Record<string, Record<string, BmfMetric>>;

/** A counter column as a Bencher measure slug: tlb_shootdowns -> tlb-shootdowns. */
export const counterSlug = (c: CounterColumn): string => c.replace(/_/g, '-');

/**
 * Bencher Metric Format (https://bencher.dev/docs/reference/bencher-metric-format):
 * { "<cell>": { "<measure slug>": { "value", "lower_value"?, "upper_value"? } } },
 * one benchmark per cell, measures in this order:
 *  - `latency` (Bencher's built-in measure, ns): the simulator's median ns/op,
 *    timed cells only, bounded by +-sim_rme_pct where the CSV has it;
 *  - `modelled-cost` (ns/op): modelled_ns_per_op, cells that ran their scenario;
 *  - `outcome-code`: OUTCOME_CODES, every cell;
 *  - `leak-bytes`: plaintext bytes found on another medium, every cell;
 *  - every counter of COUNTER_COLUMNS, slug in kebab case (`syscalls`,
 *    `tlb-shootdowns`, `plaintext-exposed-bytes`, `swap-out`, ...), every
 *    cell: the exact counts of the counting round (not per op). All of them,
 *    not a chosen few: they are what the model and the outcome follow from,
 *    and a counter left out is a behaviour change Bencher could not show.
 */
export function exportBmf(rows: readonly Row[]): string {
  const doc: Bmf = {};
  for (const { name, r } of _sorted(rows)) {
    const m: Record<string, BmfMetric> = {};
    if (_timed(r)) {
      const v = r.sim_ns_per_op_median;
      const e = Number.isFinite(r.sim_rme_pct) ? (v * r.sim_rme_pct) / 100 : NaN;
      // rounded after the bounds are taken: rounding is monotonic, so lower <= value <= upper still holds
      m.latency = Number.isFinite(e) ? { value: _r3(v), lower_value: _r3(Math.max(0, v - e)), upper_value: _r3(v + e) } : { value: _r3(v) };
    }
    if (_modelled(r)) m['modelled-cost'] = { value: _r3(r.modelled_ns_per_op) };
    m['outcome-code'] = { value: outcomeCode(r.outcome) };
    m['leak-bytes'] = { value: r.leak_bytes };
    for (const c of COUNTER_COLUMNS) m[counterSlug(c)] = { value: r[c] };
    doc[name] = m;
  }
  return JSON.stringify(doc, null, 2) + '\n';
}

// --- files -------------------------------------------------------------------

/** The export formats by their `--to`/`--export` name: what writes them and the suffix that replaces `.csv`. */
export const EXPORTS = {
  'github-action-benchmark': { suffix: '.github-action-benchmark.json', format: exportGab },
  bencher: { suffix: '.bmf.json', format: exportBmf },
} as const satisfies Record<string, { suffix: string; format: (rows: readonly Row[]) => string }>;
export type ExportName = keyof typeof EXPORTS;
export const EXPORT_NAMES = Object.keys(EXPORTS) as ExportName[];

/** Where an export of a results CSV goes by default: beside it, `.csv` replaced by the format's suffix. */
export const exportPath = (csv: string, to: ExportName): string => csv.replace(/\.csv$/, '') + EXPORTS[to].suffix;

/**
 * `export FILE.csv --to NAME [-o OUT]`: read a results CSV (a bad file is a
 * one-line InputError), write the export atomically, return its path. The
 * export is made before anything is written, so a failure leaves no file.
 */
export function exportFile(csv: string, to: ExportName, out: string = exportPath(csv, to)): string {
  const csvText = readInput(csv);
  const rows = parseCsv(csvText, csv);
  // with its meta file beside it, the CSV must be the one the run wrote
  const mfile = metaPath(csv);
  if (existsSync(mfile)) checkResultSet(csv, csvText, rows, parseMeta(readInput(mfile), mfile), mfile);
  let text: string;
  try {
    text = EXPORTS[to].format(rows);
  } catch (e) {
    // an outcome outside the vocabulary: name the file, in one line
    if (e instanceof RangeError) throw new InputError(csv, 0, e.message);
    throw e;
  }
  writeFileAtomic(out, text);
  return out;
}
