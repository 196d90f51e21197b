// The plain-text report, made to be pasted into a mail to a kernel mailing
// list: every line fits 72 columns (the mail-client convention kernel
// reviewers expect), so nothing gets re-wrapped into mush. Long names are
// shortened with '…', tables pick their column widths from the data and give
// way (looser spacing first, then text columns) rather than overflow, and the
// reproduce command is wrapped the way a shell reads it back.
import type { Row, RunMeta } from './schema.js';

/** Maximum line length of the report. */
export const REPORT_WIDTH = 72;
const W = REPORT_WIDTH;

// Axis orders: the designs in the order DESIGN.md discusses them, then
// anything new alphabetically (the same for workloads and hardware profiles).
const INTERFACES = ['encrypt-mprotect', 'dev-mktme', 'madvise-encrypt', 'memfd-secret'];
const WORKLOADS = ['fault', 'enosys-fallback', 'swap', 'migration', 'dax-stacking'];
const HARDWARE = ['mktme', 'sev', 'sgx', 'tdx', 'none'];

const SHORT_INTERFACE: Readonly<Record<string, string>> = {
  'encrypt-mprotect': 'enc-mprot',
  'dev-mktme': 'dev-mktme',
  'madvise-encrypt': 'madv-enc',
  'memfd-secret': 'memfd-sec',
};
const SHORT_WORKLOAD: Readonly<Record<string, string>> = {
  fault: 'fault',
  'enosys-fallback': 'enosys',
  swap: 'swap',
  migration: 'migrate',
  'dax-stacking': 'dax',
};
const SHORT_OUTCOME: Readonly<Record<string, string>> = {
  encrypted: 'enc',
  secret: 'secret',
  'plaintext-fallback': 'plain',
  unsupported: 'unsup',
  crashed: 'CRASH', // capitals: the cells a reviewer must not miss
  'data-loss': 'LOSS',
};

/** Counters shown per workload: the ones that explain its result. `bytes` ones in K/M/G. */
interface _Counter {
  readonly col: keyof Row;
  readonly head: string;
  readonly bytes?: boolean;
}
const COUNTERS: Readonly<Record<string, readonly _Counter[]>> = {
  fault: [
    { col: 'faults', head: 'faults' },
    { col: 'clflush_lines', head: 'clflsh' },
    { col: 'pages_encrypted', head: 'pg_enc' },
  ],
  'enosys-fallback': [
    { col: 'enosys', head: 'enosys' },
    { col: 'syscalls', head: 'sysc' },
    { col: 'faults', head: 'faults' },
  ],
  swap: [
    { col: 'swap_out', head: 'sw_out' },
    { col: 'swap_in', head: 'sw_in' },
    { col: 'plaintext_exposed_bytes', head: 'expose', bytes: true },
  ],
  migration: [
    { col: 'migrated', head: 'migr' },
    { col: 'migrate_failed', head: 'mfail' },
    { col: 'tlb_shootdowns', head: 'tlb_sd' },
  ],
  'dax-stacking': [
    { col: 'pages_encrypted', head: 'pg_enc' },
    { col: 'plaintext_exposed_bytes', head: 'expose', bytes: true },
    { col: 'integrity_errors', head: 'integ' },
  ],
};
const DEFAULT_COUNTERS: readonly _Counter[] = [
  { col: 'syscalls', head: 'sysc' },
  { col: 'faults', head: 'faults' },
];

// --- text helpers --------------------------------------------------------------

/** Length in code points: what a terminal shows for the names we print. */
const _len = (s: string): number => [...s].length;

/** Control characters (newlines, tabs) in a name would break the layout. */
const _clean = (s: string): string => s.replace(/[\u0000-\u001f\u007f]/g, ' ');

/** s cut to at most w code points, with '…' when it was cut. */
export function fit(s: string, w: number): string {
  const cps = [...s];
  if (cps.length <= w) return s;
  return w <= 0 ? '' : cps.slice(0, w - 1).join('') + '…';
}

const _padEnd = (s: string, w: number): string => s + ' '.repeat(Math.max(0, w - _len(s)));
const _padStart = (s: string, w: number): string => ' '.repeat(Math.max(0, w - _len(s))) + s;

/** Greedy word wrap; the first line starts with `first`, the next ones with `rest`. */
export function wrapWords(text: string, first = '', rest = first, width = W): string[] {
  const out: string[] = [];
  let line = first;
  let empty = true;
  for (const word of _clean(text).split(' ').filter(Boolean)) {
    const add = empty ? word : ' ' + word;
    if (!empty && _len(line) + _len(add) > width) {
      out.push(line);
      line = rest;
      empty = true;
    }
    line += empty ? fit(word, width - _len(line)) : add;
    empty = false;
  }
  out.push(line);
  return out;
}

/** Items ordered: those in `known` first in that order, then the rest alphabetically. */
function _ordered(items: Iterable<string>, known: readonly string[]): string[] {
  const set = new Set(items);
  const rest = [...set].filter((x) => !known.includes(x)).sort();
  return [...known.filter((x) => set.has(x)), ...rest];
}

const _cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

// --- number formats ------------------------------------------------------------

const _NS_UNITS: readonly [string, number][] = [
  ['ns', 1],
  ['µs', 1e3],
  ['ms', 1e6],
  ['s', 1e9],
];

/** Nanoseconds with 3 significant digits in ns/µs/ms/s ('1.23 µs'); '-' for NaN or negative. */
export function humanNs(ns: number): string {
  if (!Number.isFinite(ns) || ns < 0) return '-';
  if (ns === 0) return '0 ns';
  if (ns < 1) return `${ns.toFixed(2)} ns`;
  for (let i = 0; ; i++) {
    const [unit, scale] = _NS_UNITS[i];
    const v = ns / scale;
    const last = i === _NS_UNITS.length - 1;
    // toPrecision(3) of 999.7 is '1.00e+3': that belongs to the next unit
    const s = v >= 999.5 && last ? String(Math.round(v)) : v.toPrecision(3);
    if (Number(s) < 1000 || last) return `${s} ${unit}`;
  }
}

/** 3 significant digits, no trailing zeros, no exponent, for 1 <= v < 10000. */
const _sig = (v: number): string => (v >= 100 ? String(Math.round(v)) : String(Number(v.toPrecision(3))));

/** Bytes in binary units, as ls -h does: '512', '48K', '1.5M'; '-' for NaN or negative. */
export function humanBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '-';
  if (n < 1024) return String(Math.round(n));
  const units = ['K', 'M', 'G', 'T', 'P', 'E'];
  let i = 0;
  while (i < units.length - 1 && n >= 1024 ** (i + 2)) i++;
  return _sig(n / 1024 ** (i + 1)) + units[i];
}

/**
 * A counter: exact up to 6 digits (regressions are about exact counts, and
 * the CSV has them all), then 3 significant digits with K/M/G/T (1000s).
 */
export function humanCount(n: number): string {
  if (!Number.isFinite(n)) return '-';
  if (n < 0) return '-' + humanCount(-n);
  if (n < 1e6) return Number.isInteger(n) ? String(n) : String(Number(n.toPrecision(3)));
  const units = ['K', 'M', 'G', 'T', 'P', 'E'];
  let i = 0;
  while (i < units.length - 1 && n >= 1000 ** (i + 2)) i++;
  return _sig(n / 1000 ** (i + 1)) + units[i];
}

/** Relative margin of error: '±1.2%', '±42%', and '±>99%' for samples too noisy to read. */
function _rme(pct: number): string {
  if (!Number.isFinite(pct)) return '';
  return ' ±' + (pct < 10 ? pct.toFixed(1) : pct < 99.5 ? pct.toFixed(0) : '>99') + '%';
}

/** 'enc', 'plain', 'unsup', 'CRASH', ...; unknown outcomes as they are, cut to 6. */
export function shortOutcome(outcome: string): string {
  return SHORT_OUTCOME[outcome] ?? (fit(_clean(outcome), 6) || '?');
}

export const shortInterface = (name: string): string => SHORT_INTERFACE[name] ?? fit(_clean(name), 9);
export const shortWorkload = (name: string): string => SHORT_WORKLOAD[name] ?? _clean(name);

/** A matrix cell: outcome, and the errno that decided it ('unsup/EBUSY'). */
const _cell = (r: Row): string => shortOutcome(r.outcome) + (r.errno ? '/' + _clean(r.errno) : '');

// --- tables --------------------------------------------------------------------

type _Align = 'l' | 'r';

/**
 * Columns sized to their content, two spaces apart. If that is wider than the
 * report, without the indent; if still too wide, one space apart, plus what room is left where a left-aligned column
 * meets a right-aligned one (where a single space reads worst); if still too
 * wide, the widest of the `shrink` columns lose characters ('…') until it
 * fits: text gives way, numbers never.
 */
function _table(head: readonly string[], body: readonly string[][], align: readonly _Align[], shrink: readonly number[], indent = '  '): string[] {
  const all = [head, ...body];
  const widths = head.map((_, c) => Math.max(...all.map((r) => _len(r[c]))));
  const total = (sep: number) => _len(indent) + widths.reduce((a, b) => a + b, 0) + sep * (widths.length - 1);
  if (total(2) > W && total(2) - _len(indent) <= W) indent = '';
  const sep = total(2) <= W ? 2 : 1;
  while (total(sep) > W) {
    const c = shrink.reduce((best, i) => (widths[i] > widths[best] ? i : best), shrink[0]);
    if (c === undefined || widths[c] <= 1) break; // cannot happen with the columns we print
    widths[c]--;
  }
  const gaps = widths.slice(1).map(() => sep);
  let slack = W - total(sep);
  for (let c = 1; c < widths.length && slack > 0; c++)
    if (sep === 1 && align[c - 1] === 'l' && align[c] === 'r') {
      gaps[c - 1]++;
      slack--;
    }
  const cell = (v: string, c: number) => (align[c] === 'r' ? _padStart : _padEnd)(fit(v, widths[c]), widths[c]);
  return all.map((r) => (indent + r.map((v, c) => (c ? ' '.repeat(gaps[c - 1]) : '') + cell(v, c)).join('')).trimEnd());
}

// --- sections ------------------------------------------------------------------

function _machine(meta: RunMeta, rows: readonly Row[]): string[] {
  const backends = _ordered(rows.map((r) => r.crypto_backend), []);
  const crypto = backends.length ? backends.join(', ') : String(meta.crypto_backend ?? '-');
  const fields: [string, unknown][] = [
    ['host', meta.host],
    ['cpu', meta.cpu_model],
    ['node', meta.node_version],
    ['crypto', crypto],
    ['git', meta.git_sha],
    ['started', meta.started_at],
    ['seed', meta.seed],
    ['run id', meta.run_id],
  ];
  return [
    'memcrypt-bench report',
    ...fields.map(([k, v]) => {
      const head = `  ${k.padEnd(8)} `;
      return head + fit(_clean(String(v ?? '-')), W - head.length);
    }),
  ];
}

/** The row shown in a matrix cell; `other` when only the non-preferred kernel has one. */
function _pick(cands: readonly Row[], workload: string): { row: Row; other: boolean } | undefined {
  const want = workload === 'enosys-fallback' ? 'unpatched' : 'patched';
  const best = (k: string) =>
    cands.filter((r) => r.kernel === k).sort((a, b) => a.threads - b.threads || _cmp(a.crypto_backend, b.crypto_backend))[0];
  const r = best(want);
  if (r) return { row: r, other: false };
  const o = best(want === 'patched' ? 'unpatched' : 'patched');
  return o && { row: o, other: true };
}

function _matrices(rows: readonly Row[], hws: readonly string[], ifaces: readonly string[], wls: readonly string[]): string[] {
  const byCell = new Map<string, Row[]>();
  for (const r of rows) {
    const k = `${r.hardware}\0${r.interface}\0${r.workload}`;
    byCell.set(k, [...(byCell.get(k) ?? []), r]);
  }
  const out: string[] = [];
  let starred = false;
  for (const hw of hws) {
    out.push('', fit(`Capabilities on ${_clean(hw)} hardware`, W));
    const labels = ifaces.map(shortInterface);
    const cols = wls.map((wl) =>
      ifaces.map((iface) => {
        const p = _pick(byCell.get(`${hw}\0${iface}\0${wl}`) ?? [], wl);
        if (!p) return '-';
        starred ||= p.other;
        return _cell(p.row) + (p.other ? '*' : '');
      }),
    );
    const heads = wls.map(shortWorkload);
    // Too many workloads for one 72-column block (even one space apart):
    // continue in further blocks, each repeating the interface column, rather
    // than shrinking every cell.
    const labelW = Math.max(...labels.map(_len));
    const widthOf = (c: number) => Math.min(Math.max(_len(heads[c]), ...cols[c].map(_len)), W - 2 - labelW - 1);
    let c = 0;
    while (c < wls.length) {
      const group: number[] = [];
      let used = 2 + labelW;
      while (c < wls.length && (group.length === 0 || used + 1 + widthOf(c) <= W)) {
        used += 1 + widthOf(c);
        group.push(c++);
      }
      const head = ['', ...group.map((g) => heads[g])];
      const body = labels.map((l, i) => [l, ...group.map((g) => cols[g][i])]);
      const align: _Align[] = head.map(() => 'l');
      out.push(...(c > group.length ? [''] : []), ..._table(head, body, align, [0, ...group.map((_, i) => i + 1)]));
    }
  }
  const legend =
    'enc=encrypted, secret=plaintext the kernel cannot reach ' +
    '(memfd_secret), plain=plaintext fallback, unsup=unsupported, ' +
    'CRASH=crashed, LOSS=data loss; /Exxx=errno; -=not run. ' +
    'Smallest thread count; enosys column on the unpatched kernel, ' +
    'the others on the patched one' +
    (starred ? ' (* = only the other kernel was run).' : '.');
  out.push('', ...wrapWords(legend, 'Legend: ', '  '));
  return out;
}

function _timeCell(r: Row): string {
  if (r.samples === 0 || !Number.isFinite(r.wall_ns_median)) return '-';
  return humanNs(r.wall_ns_median) + _rme(r.wall_rme_pct);
}

function _workloadTables(rows: readonly Row[], hws: readonly string[], ifaces: readonly string[], wls: readonly string[]): string[] {
  const backends = _ordered(rows.map((r) => r.crypto_backend), []);
  const multiHw = hws.length > 1;
  const out: string[] = [
    '',
    ...wrapWords(
      'Per workload: k = kernel (p patched, u unpatched), thr = threads; ' +
        'time/op = median wall time per op ± relative margin of error; ' +
        'model = modelled time per op from the cost table.',
    ),
  ];
  for (const wl of wls) {
    const counters = COUNTERS[wl] ?? DEFAULT_COUNTERS;
    // Several crypto backends: one table each, so a line stays one cell.
    for (const be of backends) {
      const sel = rows
        .filter((r) => r.workload === wl && r.crypto_backend === be)
        .sort(
          (a, b) =>
            hws.indexOf(a.hardware) - hws.indexOf(b.hardware) ||
            ifaces.indexOf(a.interface) - ifaces.indexOf(b.interface) ||
            _cmp(a.kernel, b.kernel) ||
            a.threads - b.threads,
        );
      if (!sel.length) continue;
      const title = `${_clean(wl)}${backends.length > 1 ? ` on ${_clean(be)}` : ''} (counters: ${counters.map((c) => c.col).join(', ')})`;
      out.push('', ...wrapWords(title, '', '  '));
      const head = ['interface', 'k', 'thr', ...(multiHw ? ['hw'] : []), 'outcome', 'time/op', 'model', ...counters.map((c) => c.head)];
      const body = sel.map((r) => [
        shortInterface(r.interface),
        r.kernel === 'patched' ? 'p' : r.kernel === 'unpatched' ? 'u' : '?',
        humanCount(r.threads),
        ...(multiHw ? [fit(_clean(r.hardware), 6)] : []),
        _cell(r),
        _timeCell(r),
        humanNs(r.modelled_ns_per_op),
        ...counters.map((c) => (c.bytes ? humanBytes : humanCount)(r[c.col] as number)),
      ]);
      const align: _Align[] = head.map((_, i) => (i === 0 || i === 1 || (multiHw && i === 3) || i === (multiHw ? 4 : 3) ? 'l' : 'r'));
      const shrink = [0, ...(multiHw ? [3, 4] : [3])];
      out.push(..._table(head, body, align, shrink));
    }
  }
  return out;
}

/** Shell words of a command line, quotes kept, so it is only ever wrapped between words. */
function _shellWords(cmd: string): string[] {
  const words: string[] = [];
  let cur = '';
  let quote = '';
  let inWord = false;
  for (let i = 0; i < cmd.length; i++) {
    const c = cmd[i];
    if (quote) {
      cur += c;
      if (c === quote) quote = '';
      else if (c === '\\' && quote === '"' && i + 1 < cmd.length) cur += cmd[++i];
      continue;
    }
    if (c === ' ') {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
      continue;
    }
    inWord = true;
    cur += c;
    if (c === '\\' && i + 1 < cmd.length) cur += cmd[++i];
    else if (c === '"' || c === "'") quote = c;
  }
  if (inWord) words.push(cur);
  return words;
}

/**
 * 'Reproduce:' and the command, wrapped between words with ` \` so it can be
 * pasted back into a shell. A word longer than a line is split with a bare
 * `\` and continued at column 0, which a shell joins back (except inside
 * single quotes, where no line can be split without changing the word).
 */
function _reproduce(command: string): string[] {
  const out = ['Reproduce:'];
  const words = _shellWords(_clean(command));
  let line = '  ';
  let empty = true;
  words.forEach((w, i) => {
    const room = i === words.length - 1 ? 0 : 2; // ' \' if more follows
    if (!empty && _len(line) + 1 + _len(w) + room > W) {
      out.push(line + ' \\');
      line = '    ';
      empty = true;
    }
    let rest = [...w];
    while (_len(line) + (empty ? 0 : 1) + rest.length + room > W) {
      let n = W - _len(line) - (empty ? 0 : 1) - 1;
      if (rest[n - 1] === '\\') n--; // never split an escape from what it escapes
      out.push(line + (empty ? '' : ' ') + rest.slice(0, n).join('') + '\\');
      rest = rest.slice(n);
      line = '';
      empty = true;
    }
    line += (empty ? '' : ' ') + rest.join('');
    empty = false;
  });
  if (!empty) out.push(line);
  if (!words.length) out.push('  (command not recorded)');
  return out;
}

/** The report of a run: machine, capability matrices, per-workload tables, how to reproduce. */
export function formatReport(meta: RunMeta, rows: readonly Row[]): string {
  const hws = _ordered(rows.map((r) => r.hardware), HARDWARE);
  const ifaces = _ordered(rows.map((r) => r.interface), INTERFACES);
  const wls = _ordered(rows.map((r) => r.workload), WORKLOADS);
  const lines = _machine(meta, rows);
  if (rows.length) lines.push(..._matrices(rows, hws, ifaces, wls), ..._workloadTables(rows, hws, ifaces, wls));
  else lines.push('', 'No cells in this run.');
  lines.push('', ..._reproduce(String(meta.command ?? '')));
  return lines.join('\n') + '\n';
}
