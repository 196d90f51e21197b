// Plain-text building blocks for reports that go into a mail to a kernel
// mailing list: every line fits 72 columns and is plain ASCII (no 'µ', '±' or
// '…', which some mail paths mangle), names are shortened with '~', tables
// pick their column widths from the data and give way (looser spacing first,
// then text columns) rather than overflow.
import type { SwapKind } from './schema.js';

/** Maximum line length of a report. */
export const REPORT_WIDTH = 72;
const W = REPORT_WIDTH;

const SHORT_INTERFACE: Readonly<Record<string, string>> = {
  'plain-mmap': 'plain-mmap',
  'encrypt-mprotect': 'enc-mprot',
  'dev-mktme': 'dev-mktme',
  'madvise-encrypt': 'madv-enc',
  'memfd-secret': 'memfd-sec',
  'guest-memfd': 'guest-mfd',
};
const SHORT_WORKLOAD: Readonly<Record<string, string>> = {
  fault: 'fault',
  'enosys-fallback': 'enosys',
  swap: 'swap',
  migration: 'migrate',
  'dax-stacking': 'dax',
  'qemu-guest': 'qemu',
  'qemu-nvdimm': 'nvdimm',
  'key-exhaustion': 'keys',
};
const SHORT_OUTCOME: Readonly<Record<string, string>> = {
  encrypted: 'enc',
  secret: 'secret',
  leaked: 'leak',
  plaintext: 'clear',
  'plaintext-fallback': 'plain',
  unsupported: 'unsup',
  crashed: 'CRASH', // capitals: the cells a reviewer must not miss
  'data-loss': 'LOSS',
};


/** Length in code points: what a terminal shows for the names we print. */
export const len = (s: string): number => [...s].length;

/** Control characters (newlines, tabs) in a name would break the layout. */
export const clean = (s: string): string => ascii(s.replace(/[\u0000-\u001f\u007f]/g, ' '));

/** s cut to at most w code points, with '~' when it was cut. */
export function fit(s: string, w: number): string {
  const cps = [...s];
  if (cps.length <= w) return s;
  return w <= 0 ? '' : cps.slice(0, w - 1).join('') + '~';
}

/** Anything outside printable ASCII as '?': the report is plain ASCII whatever the names. */
export const ascii = (s: string): string => s.replace(/[^\x20-\x7e]/g, '?');

const _padEnd = (s: string, w: number): string => s + ' '.repeat(Math.max(0, w - len(s)));
const _padStart = (s: string, w: number): string => ' '.repeat(Math.max(0, w - len(s))) + s;

/** Greedy word wrap; the first line starts with `first`, the next ones with `rest`. */
export function wrapWords(text: string, first = '', rest = first, width = W): string[] {
  const out: string[] = [];
  let line = first;
  let empty = true;
  for (const word of clean(text).split(' ').filter(Boolean)) {
    const add = empty ? word : ' ' + word;
    if (!empty && len(line) + len(add) > width) {
      out.push(line);
      line = rest;
      empty = true;
    }
    line += empty ? fit(word, width - len(line)) : add;
    empty = false;
  }
  out.push(line);
  return out;
}

/** Items ordered: those in `known` first in that order, then the rest alphabetically. */
export function ordered(items: Iterable<string>, known: readonly string[]): string[] {
  const set = new Set(items);
  const rest = [...set].filter((x) => !known.includes(x)).sort();
  return [...known.filter((x) => set.has(x)), ...rest];
}

export const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

// --- number formats ------------------------------------------------------------

const _NS_UNITS: readonly [string, number][] = [
  ['ns', 1],
  ['us', 1e3],
  ['ms', 1e6],
  ['s', 1e9],
];

/** Nanoseconds with 3 significant digits in ns/us/ms/s ('1.23 us'); '-' for NaN or negative. */
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

/** Relative margin of error: '+-1.2%', '+-42%', and '+->99%' for samples too noisy to read. */
export function rme(pct: number): string {
  if (!Number.isFinite(pct)) return '';
  return '+-' + (pct < 10 ? pct.toFixed(1) : pct < 99.5 ? pct.toFixed(0) : '>99') + '%';
}

/** A signed difference in ns: '+1.23 us', '-80 ns', '0'. */
export function signedNs(ns: number): string {
  if (!Number.isFinite(ns)) return '-';
  if (ns === 0) return '0';
  return (ns > 0 ? '+' : '-') + humanNs(Math.abs(ns));
}

/** 'enc', 'plain', 'unsup', 'CRASH', ...; unknown outcomes as they are, cut to 6. */
export function shortOutcome(outcome: string): string {
  return SHORT_OUTCOME[outcome] ?? (fit(clean(outcome), 6) || '?');
}

export const shortInterface = (name: string): string => SHORT_INTERFACE[name] ?? fit(clean(name), 9);
/** A workload's short name; a swap workload over dm-crypt is 'swap-dmc'. */
export const shortWorkload = (name: string, swap: SwapKind = 'none'): string =>
  (SHORT_WORKLOAD[name] ?? clean(name)) + (swap === 'encrypted' ? '-dmc' : '');


// --- tables --------------------------------------------------------------------

export type Align = 'l' | 'r';

/**
 * Columns sized to their content, two spaces apart. If that is wider than the
 * report, without the indent; if still too wide, one space apart, plus what room is left where a left-aligned column
 * meets a right-aligned one (where a single space reads worst); if still too
 * wide, the widest of the `shrink` columns lose characters ('…') until it
 * fits: text gives way, numbers never.
 */
export function table(head: readonly string[], body: readonly string[][], align: readonly Align[], shrink: readonly number[], indent = '  '): string[] {
  const all = [head, ...body];
  const widths = head.map((_, c) => Math.max(...all.map((r) => len(r[c]))));
  const total = (sep: number) => len(indent) + widths.reduce((a, b) => a + b, 0) + sep * (widths.length - 1);
  if (total(2) > W && total(2) - len(indent) <= W) indent = '';
  const sep = total(2) <= W ? 2 : 1;
  if (total(sep) > W) indent = ''; // before any text gives way
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

