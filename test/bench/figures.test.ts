// The run's figures and its HTML page, from the committed baseline: every SVG
// is well-formed XML, the capability heatmap has one rect per matrix entry
// labelled with that entry's outcome and text, the cost bars add up to the
// modelled cost, and the page holds everything inline and fetches nothing.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { loadRun } from '../../bench/compare.js';
import { parseSamples, samplesPath } from '../../bench/csv.js';
import { FIGURE_NAMES, compareSpec, costSpec, historySpec, renderPng, renderSvg, runFigures, verdictOf, type Figure } from '../../bench/figures.js';
import { compareRuns } from '../../bench/compare.js';
import { historyRecords } from '../../bench/history.js';
import { historyTrend } from '../../bench/trend.js';
import { formatHtml } from '../../bench/html.js';
import { formatReport, matrixCells } from '../../bench/report.js';
import type { CellSamples, Row, RunMeta } from '../../bench/schema.js';

const BASELINE = fileURLToPath(new URL('../../../results/baseline.csv', import.meta.url));
let rows: Row[], meta: RunMeta, samples: CellSamples[], figures: Figure[];

before(async () => {
  const run = loadRun(BASELINE);
  rows = run.rows;
  meta = run.meta;
  samples = parseSamples(readFileSync(samplesPath(BASELINE), 'utf8'), samplesPath(BASELINE)).cells;
  figures = await runFigures(rows, samples);
});

/** Every element of a parsed SVG, depth first. */
function elements(node: unknown, name: string, out: Record<string, string>[] = []): Record<string, string>[] {
  if (Array.isArray(node)) for (const n of node) elements(n, name, out);
  else if (node !== null && typeof node === 'object')
    for (const [k, v] of Object.entries(node)) {
      if (k === name) for (const e of Array.isArray(v) ? v : [v]) out.push(e as Record<string, string>);
      if (!k.startsWith('@_')) elements(v, name, out);
    }
  return out;
}
const parse = (svg: string) => new XMLParser({ ignoreAttributes: false }).parse(svg) as unknown;

describe('figures', () => {
  it('renders the four figures, each a well-formed SVG document', () => {
    assert.deepEqual(
      figures.map((f) => f.name),
      [...FIGURE_NAMES],
    );
    for (const f of figures) {
      assert.equal(XMLValidator.validate(f.svg), true, f.name);
      assert.match(f.svg, /^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/, f.name);
    }
  });

  it('the capability heatmap: one rect per matrix entry, with its outcome and the matrix text as its label', () => {
    const svg = figures.find((f) => f.name === 'capability')!.svg;
    const labels = elements(parse(svg), 'path')
      .map((p) => p['@_aria-label'] ?? '')
      .filter((l) => l.includes('outcome: '));
    const cells = matrixCells(rows);
    assert.equal(labels.length, cells.length);
    // 114 cells on mktme show as 6 designs x 9 columns, plus 6 x 3 on sev and on tdx
    assert.equal(cells.length, 6 * 9 + 2 * 6 * 3);
    const want = cells.map((c) => `outcome: ${c.row.outcome}; cell: ${c.text}`).sort();
    assert.deepEqual(labels.map((l) => l.slice(l.indexOf('outcome: '))).sort(), want);
  });

  it('the cost bars add up to each cell\'s modelled cost, and the control is a reference rule per workload', () => {
    const spec = costSpec(rows) as unknown as { data: { values: { kind: string; workload: string; design?: string; ns: number }[] } };
    const sums = new Map<string, number>();
    for (const v of spec.data.values) if (v.kind === 'term') sums.set(`${v.workload} ${v.design}`, (sums.get(`${v.workload} ${v.design}`) ?? 0) + v.ns);
    const fault = rows.find((r) => r.hardware === 'mktme' && r.workload === 'fault' && r.interface === 'memfd-secret' && r.threads === 1)!;
    assert.ok(Math.abs(sums.get('fault memfd-sec')! - fault.modelled_ns_per_op) < 0.01);
    const rules = spec.data.values.filter((v) => v.kind === 'plain');
    assert.equal(new Set(rules.map((r) => r.workload)).size, rules.length, 'one rule per workload');
    assert.ok(rules.some((r) => r.workload === 'qemu @sev'));
  });

  it('PNG on request: a PNG file of the figure', () => {
    const png = renderPng(figures[0].svg);
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    assert.ok(png.length > 10_000);
  });
});

describe('the HTML page', () => {
  it('holds the metadata, the four figures inline, the text report as it is and the results table, and refers to nothing outside', () => {
    const report = formatReport(meta, rows);
    const html = formatHtml(meta, rows, figures, report);
    for (const f of FIGURE_NAMES) assert.match(html, new RegExp(`data-figure="${f}"><svg `));
    assert.ok(html.includes(meta.run_id));
    const pre = html.slice(html.indexOf('<pre>') + 5, html.indexOf('</pre>'));
    const unescaped = pre.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&amp;/g, '&');
    assert.equal(unescaped, report, 'the text report, unchanged');
    assert.equal((html.match(/<table class="results">/g) ?? []).length, 1);
    assert.equal((html.match(/<tr>/g) ?? []).length >= rows.length + 1, true);
    // nothing to fetch: no script, no external stylesheet, image, font or link
    assert.doesNotMatch(html, /<script|<link|<img|<iframe|@import|url\(/i);
    assert.doesNotMatch(html.replace(/xmlns(:\w+)?="[^"]*"/g, ''), /(src|href)="(https?:)?\/\//i);
    assert.match(html, /Content-Security-Policy" content="default-src 'none'/);
  });
});

describe('compare and history figures', () => {
  it('compare: one point per process and side for every cell timed in both, the verdict in the label', async () => {
    const run = loadRun(BASELINE);
    const r = compareRuns(run, run, { thresholdPct: 5, alpha: 0.05 });
    const cells = r.cells
      .filter((c) => Number.isFinite(c.baseMedian) && Number.isFinite(c.newMedian))
      .map((c) => ({ ...c, baseSamples: run.samples.get(c.key) ?? [], newSamples: run.samples.get(c.key) ?? [] }));
    const svg = await renderSvg(compareSpec(cells));
    assert.equal(XMLValidator.validate(svg), true);
    const points = elements(parse(svg), 'path').filter((p) => (p['@_aria-roledescription'] ?? '') === 'point');
    assert.equal(points.length, cells.reduce((a, c) => a + c.baseSamples.length + c.newSamples.length, 0));
    // a run against itself: nothing changed
    assert.ok(cells.every((c) => ['no change', 'noisy', 'insufficient samples'].includes(verdictOf(c))));
    assert.equal(verdictOf({ regression: true, significant: true, changePct: 12, noisy: false, insufficient: false }), 'REGRESSION');
    assert.equal(verdictOf({ regression: false, significant: true, changePct: -8, noisy: false, insufficient: false }), 'faster');
  });

  it('history: a line per cell over the commits, and a red rule at each change point', async () => {
    const run = loadRun(BASELINE);
    const samples = parseSamples(readFileSync(samplesPath(BASELINE), 'utf8'), samplesPath(BASELINE)).cells;
    const a = historyRecords(run.meta, run.rows, samples);
    // the same cells at a second commit, where one of them changed outcome
    const b = a.map((rec, i) => ({ ...rec, git_sha: 'feedfacefeed', run_id: 'later', started_at: '2026-11-27T00:00:00.000Z', ...(i === 0 ? { outcome: 'crashed' } : {}) }));
    const t = historyTrend([...a, ...b], { last: 10, thresholdPct: 5, alpha: 0.05 });
    assert.ok(t.changePoints >= 1);
    const svg = await renderSvg(historySpec(t.cells));
    assert.equal(XMLValidator.validate(svg), true);
    const rules = elements(parse(svg), 'line').length + elements(parse(svg), 'path').filter((p) => (p['@_aria-roledescription'] ?? '') === 'rule mark').length;
    assert.ok(rules >= 1, 'a change point is drawn');
  });
});
