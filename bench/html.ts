// <run id>.html: one self-contained page of a run, to open offline, attach to
// a mail or publish as a CI artifact. It holds the run's metadata, the four
// figures as inline SVG, the text report and the results table. Nothing in it
// is fetched: no script, no stylesheet, font or image from elsewhere (the
// figures' SVG namespaces are names, not requests).
import { COST_NAMES } from '../hardware/costs.js';
import type { Figure } from './figures.js';
import { termColumn, type Row, type RunMeta } from './schema.js';

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** The SVG document as an inline element: no XML declaration or doctype. */
const inline = (svg: string): string => svg.replace(/^<\?xml[^>]*\?>\s*/, '').replace(/^<!DOCTYPE[^>]*>\s*/, '');

const STYLE = `
body { font-family: 'DejaVu Sans', 'Liberation Sans', Arial, sans-serif; margin: 1.5em auto; max-width: 1400px; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.8em; } td, th { border: 1px solid #ddd; padding: 2px 6px; text-align: right; }
th { background: #f4f4f4; } td.t, th.t { text-align: left; }
figure { margin: 1em 0; overflow-x: auto; } figcaption { font-size: 0.85em; color: #555; }
pre { font-size: 0.8em; background: #fafafa; border: 1px solid #eee; padding: 0.8em; overflow-x: auto; }
`;

const META_FIELDS: readonly (keyof RunMeta)[] = ['run_id', 'git_sha', 'started_at', 'host', 'kernel_release', 'cpu_model', 'nproc', 'node_version', 'crypto_backends', 'cost_source', 'seed', 'repeat', 'wall_seconds', 'command'];

function metaTable(meta: RunMeta): string {
  const rows = META_FIELDS.filter((k) => meta[k] !== undefined && meta[k] !== '').map(
    (k) => `<tr><th class="t">${esc(String(k))}</th><td class="t">${esc(String(meta[k]))}</td></tr>`,
  );
  return `<table class="meta">${rows.join('')}</table>`;
}

const RESULT_COLUMNS: readonly (keyof Row)[] = ['hardware', 'interface', 'kernel', 'swap', 'workload', 'threads', 'outcome', 'errno', 'leak_medium', 'modelled_ns_per_op', 'model_over_plain_ns_per_op', 'sim_ns_per_op_median', 'sim_cv_pct', 'stability'];

function resultsTable(rows: readonly Row[]): string {
  const cols = [...RESULT_COLUMNS, ...COST_NAMES.map(termColumn)] as (keyof Row)[];
  const cell = (r: Row, c: keyof Row): string => {
    const v = r[c];
    const text = typeof v === 'number' ? (Number.isFinite(v) ? String(Math.round(v * 1000) / 1000) : '') : String(v);
    return typeof v === 'number' ? `<td>${esc(text)}</td>` : `<td class="t">${esc(text)}</td>`;
  };
  const head = `<tr>${cols.map((c) => `<th class="t">${esc(String(c).replace(/^model_(.*)_ns_per_op$/, '$1'))}</th>`).join('')}</tr>`;
  return `<table class="results">${head}${rows.map((r) => `<tr>${cols.map((c) => cell(r, c)).join('')}</tr>`).join('')}</table>`;
}

/** A whole page: the skeleton every page shares (no script, a CSP that forbids fetching anything). */
function page(title: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>${esc(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${esc(title)}</h1>
${body}
</body>
</html>
`;
}

/** Figures as sections: a heading and the SVG inline. */
const figureSections = (figures: readonly { name: string; title: string; svg: string }[]): string =>
  figures
    .map((f) => `<h2 id="${esc(f.name)}">${esc(f.title)}</h2>\n<figure class="figure" data-figure="${esc(f.name)}">${inline(f.svg)}<figcaption>${esc(f.title)}</figcaption></figure>`)
    .join('\n');

/** The run's page. */
export function formatHtml(meta: RunMeta, rows: readonly Row[], figures: readonly Figure[], report: string): string {
  return page(
    `memcrypt-bench run ${meta.run_id}`,
    `${metaTable(meta)}\n${figureSections(figures)}\n<h2 id="report">Report</h2>\n<pre>${esc(report)}</pre>\n<h2 id="results">Results</h2>\n${resultsTable(rows)}`,
  );
}

/** Where the page and the PNGs of a result set go: beside its CSV. */
export const htmlPath = (csv: string): string => csv.replace(/\.csv$/, '') + '.html';
export const pngPath = (csv: string, figure: string): string => `${csv.replace(/\.csv$/, '')}.${figure}.png`;

/** A page of figures and a text report (compare, history), self-contained like a run's. */
export function formatFigurePage(title: string, facts: readonly [string, string][], figures: readonly { name: string; title: string; svg: string }[], text: string): string {
  const rows = facts.map(([k, v]) => `<tr><th class="t">${esc(k)}</th><td class="t">${esc(v)}</td></tr>`).join('');
  return page(title, `<table class="meta">${rows}</table>\n${figureSections(figures)}\n<h2 id="report">Report</h2>\n<pre>${esc(text)}</pre>`);
}
