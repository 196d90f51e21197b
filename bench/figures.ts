// The run's figures as SVG, rendered in Node with no browser: a Vega-Lite
// spec per figure, compiled to Vega and rendered by a headless Vega view
// (renderer 'none', toSVG). Library choice (see README, "Figures"):
// vega-lite over hand-written SVG (axes, legends, facets and stacking would
// be ours to get right) and over Observable Plot (it needs a DOM, so jsdom in
// Node); the specs are data, so a test can check them and a reader can open
// them in the Vega editor. PNG on request goes through resvg (a Rust SVG
// renderer with prebuilt binaries), not a browser.
//
// Figures of a run:
// - capability: design x workload per hardware, colour by outcome, the
//   matrix cell's text (errno, leak medium, key-exhaustion share) in the cell;
// - cost: the modelled cost per op stacked by term, per design and workload,
//   with the plain-mmap control as a reference line;
// - scaling: simulator time per op against worker CPUs, the range of the
//   per-process medians as the interval;
// - samples: each timed cell's batch medians in time order, per process, so
//   drift and bimodality show; noisy cells are marked.
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import * as vl from 'vega-lite';
import { COST_NAMES } from '../hardware/costs.js';
import { TERM_SHORT } from './model.js';
import { matrixCells } from './report.js';
import { cellKey, termColumn, type CellSamples, type Row } from './schema.js';
import { hasFlag } from './stability.js';
import { shortInterface, shortWorkload } from './text.js';

export const FIGURE_NAMES = ['capability', 'cost', 'scaling', 'samples'] as const;
export type FigureName = (typeof FIGURE_NAMES)[number];

export interface Figure {
  readonly name: FigureName;
  readonly title: string;
  /** the Vega-Lite spec it was drawn from */
  readonly spec: vl.TopLevelSpec;
  readonly svg: string;
}

/** Colours of the outcomes: green protected, grey clear, yellow fallback, orange leaked, red broken. */
export const OUTCOME_COLORS: Readonly<Record<string, string>> = {
  encrypted: '#1a9850',
  secret: '#66bd63',
  leaked: '#f46d43',
  plaintext: '#bababa',
  'plaintext-fallback': '#fee08b',
  unsupported: '#e0e0e0',
  crashed: '#d73027',
  'data-loss': '#a50026',
};

const FONT = 'DejaVu Sans, Liberation Sans, Arial, sans-serif';
const CONFIG = { font: FONT, view: { stroke: '#ccc' }, axis: { labelFontSize: 10, titleFontSize: 11 }, legend: { labelFontSize: 10 } };

/** Render a Vega-Lite spec to a standalone SVG document. */
export async function renderSvg(spec: vl.TopLevelSpec): Promise<string> {
  // quiet: a run's stderr is for the run (vega-lite warns of facet scale unions it resolves itself)
  const quiet = vega.logger(vega.None);
  const view = new vega.View(vega.parse(vl.compile(spec, { logger: quiet }).spec), { renderer: 'none', logger: quiet });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

const col = (r: Row): string => shortWorkload(r.workload, r.swap) + (r.hardware === 'mktme' ? '' : ` @${r.hardware}`);

/** design x workload per hardware, one rect per matrix entry, titled with the cell's text. */
export function capabilitySpec(rows: readonly Row[]): vl.TopLevelSpec {
  const values = matrixCells(rows).map((c) => ({
    hardware: c.hardware,
    design: shortInterface(c.iface),
    workload: c.column,
    outcome: c.row.outcome,
    text: c.text,
    leak: c.row.outcome === 'leaked' ? c.row.leak_medium : '',
  }));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Capabilities: outcome per design and workload',
    data: { values },
    facet: { row: { field: 'hardware', type: 'nominal', title: null, header: { labelAngle: 0, labelAlign: 'left' } } },
    resolve: { scale: { x: 'independent' } },
    spec: {
      width: { step: 86 },
      height: { step: 24 },
      encoding: {
        x: { field: 'workload', type: 'nominal', sort: null, axis: { orient: 'top', labelAngle: 0, title: null } },
        y: { field: 'design', type: 'nominal', sort: null, title: null },
      },
      layer: [
        {
          mark: { type: 'rect', stroke: 'white', strokeWidth: 1 },
          encoding: {
            color: { field: 'outcome', type: 'nominal', scale: { domain: Object.keys(OUTCOME_COLORS), range: Object.values(OUTCOME_COLORS) }, legend: { title: 'outcome' } },
            tooltip: [{ field: 'text', title: 'cell' }],
          },
        },
        // a leak is marked with a dark border as well as its text
        { transform: [{ filter: "datum.leak !== ''" }], mark: { type: 'rect', filled: false, stroke: '#7f0000', strokeWidth: 2 } },
        { mark: { type: 'text', fontSize: 9 }, encoding: { text: { field: 'text' } } },
      ],
    },
    config: CONFIG,
  };
}

/** The modelled cost per op of each cell that ran its scenario (fewest threads), stacked by term; plain-mmap as a rule. */
export function costSpec(rows: readonly Row[]): vl.TopLevelSpec {
  const fewest = new Map<string, number>();
  for (const r of rows) fewest.set(col(r), Math.min(fewest.get(col(r)) ?? Infinity, r.threads));
  const sel = rows.filter((r) => Number.isFinite(r.modelled_ns_per_op) && r.threads === fewest.get(col(r)) && (r.workload !== 'enosys-fallback' || r.kernel === 'unpatched'));
  const values: Record<string, string | number>[] = [];
  for (const r of sel)
    for (const c of COST_NAMES) {
      const ns = r[termColumn(c)];
      if (ns > 0) values.push({ kind: 'term', workload: col(r), design: shortInterface(r.interface), term: TERM_SHORT[c], ns });
    }
  for (const r of sel) if (r.interface === 'plain-mmap') values.push({ kind: 'plain', workload: col(r), ns: r.modelled_ns_per_op });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Modelled cost per op, by term (rule: the plain-mmap control)',
    data: { values },
    facet: { field: 'workload', type: 'nominal', title: null, sort: null },
    columns: 3,
    resolve: { scale: { x: 'independent' } },
    spec: {
      width: 220,
      height: { step: 14 },
      layer: [
        {
          transform: [{ filter: "datum.kind === 'term'" }],
          mark: 'bar',
          encoding: {
            y: { field: 'design', type: 'nominal', title: null, sort: null },
            x: { field: 'ns', type: 'quantitative', aggregate: 'sum', title: 'ns per op' },
            color: { field: 'term', type: 'nominal', scale: { scheme: 'category20' }, legend: { title: 'term' } },
            tooltip: [{ field: 'design' }, { field: 'term' }, { field: 'ns', aggregate: 'sum', format: '.1f' }],
          },
        },
        {
          transform: [{ filter: "datum.kind === 'plain'" }],
          mark: { type: 'rule', color: 'black', strokeDash: [4, 3] },
          encoding: { x: { field: 'ns', type: 'quantitative' } },
        },
      ],
    },
    config: CONFIG,
  };
}

/** Simulator time per op against worker CPUs, per workload, the range of the per-process medians as the interval. */
export function scalingSpec(rows: readonly Row[], samples: readonly CellSamples[]): vl.TopLevelSpec {
  const byKey = new Map(samples.map((s) => [s.key, s.samples]));
  const values = rows
    .filter((r) => r.sim_rounds > 0)
    .map((r) => {
      const s = byKey.get(cellKey(r)) ?? [];
      return {
        workload: col(r) + (r.kernel === 'unpatched' ? ' (u)' : ''),
        design: shortInterface(r.interface),
        threads: r.threads,
        median: r.sim_ns_per_op_median,
        lo: s.length ? Math.min(...s) : r.sim_ns_per_op_median,
        hi: s.length ? Math.max(...s) : r.sim_ns_per_op_median,
      };
    });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Simulator time per op (the harness, not the argument) against worker CPUs',
    data: { values },
    facet: { field: 'workload', type: 'nominal', title: null, sort: null },
    columns: 4,
    resolve: { scale: { y: 'independent' } },
    spec: {
      width: 150,
      height: 110,
      encoding: {
        x: { field: 'threads', type: 'ordinal', title: 'worker CPUs' },
        color: { field: 'design', type: 'nominal', legend: { title: 'design' } },
      },
      layer: [
        { mark: { type: 'rule' }, encoding: { y: { field: 'lo', type: 'quantitative', title: 'ns per op' }, y2: { field: 'hi' } } },
        { mark: { type: 'line', point: true }, encoding: { y: { field: 'median', type: 'quantitative' }, tooltip: [{ field: 'design' }, { field: 'median', format: '.0f' }] } },
      ],
    },
    config: CONFIG,
  };
}

/** Each timed cell's batch medians in time order, one line per process; noisy cells say so in their title. */
export function samplesSpec(rows: readonly Row[], samples: readonly CellSamples[]): vl.TopLevelSpec {
  const byKey = new Map(samples.map((s) => [s.key, s]));
  const values: Record<string, string | number>[] = [];
  for (const r of rows) {
    if (r.sim_rounds === 0) continue;
    const s = byKey.get(cellKey(r));
    const name = `${shortInterface(r.interface)} ${col(r)}${r.kernel === 'unpatched' ? ' u' : ''} t${r.threads}${hasFlag(r, 'noisy') ? ' NOISY' : ''}`;
    (s?.batches ?? []).forEach((b, p) => b.forEach((ns, i) => values.push({ cell: name, process: p + 1, batch: i + 1, ns })));
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: "The simulator's samples over time: batch medians, one line per process",
    data: { values },
    facet: { field: 'cell', type: 'nominal', title: null, sort: null, header: { labelFontSize: 9 } },
    columns: 6,
    resolve: { scale: { y: 'independent' } },
    spec: {
      width: 110,
      height: 60,
      mark: { type: 'line', strokeWidth: 1 },
      encoding: {
        x: { field: 'batch', type: 'quantitative', title: null },
        y: { field: 'ns', type: 'quantitative', title: null, scale: { zero: false } },
        color: { field: 'process', type: 'nominal', legend: null },
      },
    },
    config: CONFIG,
  };
}

/** The four figures of a run, rendered. */
export async function runFigures(rows: readonly Row[], samples: readonly CellSamples[]): Promise<Figure[]> {
  const specs: [FigureName, string, vl.TopLevelSpec][] = [
    ['capability', 'Capability matrix', capabilitySpec(rows)],
    ['cost', 'Modelled cost per op', costSpec(rows)],
    ['scaling', 'Scaling', scalingSpec(rows, samples)],
    ['samples', 'Samples over time', samplesSpec(rows, samples)],
  ];
  const out: Figure[] = [];
  for (const [name, title, spec] of specs) out.push({ name, title, spec, svg: await renderSvg(spec) });
  return out;
}

/** A figure as PNG (for mail clients that do not show SVG), at twice its size. */
export function renderPng(svg: string): Buffer {
  return new Resvg(svg, { fitTo: { mode: 'zoom', value: 2 }, font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } }).render().asPng();
}

/** What compare concluded for a cell, in a word (the text report's verdict column). */
export function verdictOf(c: { regression: boolean; significant: boolean; changePct: number; noisy: boolean; insufficient: boolean }): string {
  if (c.noisy) return 'noisy';
  if (c.regression) return 'REGRESSION';
  if (c.significant) return c.changePct < 0 ? 'faster' : 'slower';
  return c.insufficient ? 'insufficient samples' : 'no change';
}

/**
 * compare: base against new per cell timed in both, each point one process's
 * median, the verdict in the cell's label.
 */
export function compareSpec(cells: readonly {
  label: string;
  changePct: number;
  regression: boolean;
  significant: boolean;
  noisy: boolean;
  insufficient: boolean;
  baseSamples: readonly number[];
  newSamples: readonly number[];
}[]): vl.TopLevelSpec {
  const values: Record<string, string | number>[] = [];
  for (const c of cells) {
    const cell = `${c.label}  [${verdictOf(c)}${Number.isFinite(c.changePct) ? ` ${c.changePct >= 0 ? '+' : ''}${c.changePct.toFixed(1)}%` : ''}]`;
    for (const ns of c.baseSamples) values.push({ cell, side: 'base', ns });
    for (const ns of c.newSamples) values.push({ cell, side: 'new', ns });
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Simulator time per op, base against new: one point per process, the verdict in brackets',
    data: { values },
    width: 420,
    height: { step: 16 },
    mark: { type: 'point', filled: true, size: 28, opacity: 0.75 },
    encoding: {
      y: { field: 'cell', type: 'nominal', sort: null, title: null, axis: { labelLimit: 420 } },
      x: { field: 'ns', type: 'quantitative', scale: { type: 'log' }, title: 'ns per op (log)' },
      color: { field: 'side', type: 'nominal', scale: { domain: ['base', 'new'], range: ['#4575b4', '#d73027'] }, legend: { title: null } },
      yOffset: { field: 'side', type: 'nominal' },
    },
    config: CONFIG,
  };
}

/** history: each cell's median per commit, oldest first, change points as red rules. */
export function historySpec(cells: readonly { label: string; points: readonly { sha: string; median: number }[]; changes: readonly { to: string }[] }[]): vl.TopLevelSpec {
  const values: Record<string, string | number | null>[] = [];
  for (const c of cells) {
    c.points.forEach((p, i) => values.push({ cell: c.label, kind: 'point', commit: i + 1, sha: p.sha.slice(0, 8), ns: Number.isFinite(p.median) ? p.median : null }));
    for (const ch of c.changes) {
      const i = c.points.findIndex((p) => p.sha === ch.to);
      if (i >= 0) values.push({ cell: c.label, kind: 'change', commit: i + 1, sha: ch.to.slice(0, 8), ns: null });
    }
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'History: median per commit, change points in red',
    data: { values },
    facet: { field: 'cell', type: 'nominal', title: null, sort: null, header: { labelFontSize: 9 } },
    columns: 5,
    resolve: { scale: { y: 'independent' } },
    spec: {
      width: 130,
      height: 70,
      layer: [
        {
          transform: [{ filter: "datum.kind === 'point' && datum.ns !== null" }],
          mark: { type: 'line', point: true },
          encoding: { x: { field: 'commit', type: 'quantitative', title: null, axis: { tickMinStep: 1 } }, y: { field: 'ns', type: 'quantitative', title: null, scale: { zero: false } }, tooltip: [{ field: 'sha' }, { field: 'ns', format: '.0f' }] },
        },
        { transform: [{ filter: "datum.kind === 'change'" }], mark: { type: 'rule', color: '#d73027', strokeWidth: 2 }, encoding: { x: { field: 'commit', type: 'quantitative' } } },
      ],
    },
    config: CONFIG,
  };
}
