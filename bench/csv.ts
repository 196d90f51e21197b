// Results files, written so that any CSV reader takes them as they are: the
// CSV has its header on line 1 and no comment lines (Python's csv.DictReader,
// pandas and sqlite3 .import read it without options); the run's metadata
// goes to <run id>.meta.json and the timing samples to <run id>.samples.json.
//
// csv-stringify writes, its sister csv-parse reads. Reading is strict: these
// files are compared against baselines months later, so anything that does
// not match the schema exactly is refused with the file and the line.
import { createHash } from 'node:crypto';
import { parse } from 'csv-parse/sync';
import { stringify } from 'csv-stringify/sync';
import { checkCostTable } from '../hardware/costs.js';
import { InputError } from './io.js';
import { COLUMNS, COUNTER_COLUMNS, MAY_BE_EMPTY, NUMERIC_COLUMNS, SCHEMA_VERSION, SWAP_KINDS, cellKey, isPositiveNumbers, type CellSamples, type Column, type Row, type RunMeta } from './schema.js';

const KERNELS: ReadonlySet<string> = new Set(['patched', 'unpatched']);

// --- writing -----------------------------------------------------------------

/**
 * A number as a CSV field: empty for NaN/±Infinity, integers as they are,
 * others rounded to 3 decimals without trailing zeros (12.5, 0.333).
 */
function _num(v: number): string {
  if (!Number.isFinite(v)) return '';
  if (Number.isInteger(v)) return String(v);
  return String(Number(v.toFixed(3)) || 0); // `|| 0`: -0.0001 must not print as "-0"
}

function _field(row: Row, col: Column, i: number): string {
  const v: unknown = row[col];
  if (NUMERIC_COLUMNS.has(col)) {
    if (typeof v !== 'number') throw new TypeError(`formatCsv: rows[${i}].${col}: expected a number, got ${typeof v}`);
    return _num(v);
  }
  if (typeof v !== 'string') throw new TypeError(`formatCsv: rows[${i}].${col}: expected a string, got ${typeof v}`);
  return v;
}

/** The results CSV: the header, then one record per row. */
export function formatCsv(rows: readonly Row[]): string {
  const records: string[][] = [[...COLUMNS]];
  rows.forEach((r, i) => records.push(COLUMNS.map((c) => _field(r, c, i))));
  return stringify(records);
}

// --- reading -----------------------------------------------------------------

const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;
const SV = COLUMNS.indexOf('schema_version');
const _isCurrent = (raw: string): boolean => NUMBER.test(raw) && Number(raw) === SCHEMA_VERSION;

const RERECORD = "re-record it with 'node dist/bench/cli.js run --out FILE.csv'";

function _schemaError(file: string, line: number, raw: string): InputError {
  const v = NUMBER.test(raw) ? Number(raw) : NaN;
  const why = !Number.isFinite(v)
    ? `schema_version '${raw}' is not a number`
    : v > SCHEMA_VERSION
      ? `schema_version ${raw} is not supported (this memcrypt-bench reads schema ${SCHEMA_VERSION}); it was written by a newer memcrypt-bench, upgrade to read it`
      : `schema_version ${raw} is not supported (this memcrypt-bench reads schema ${SCHEMA_VERSION}); ${RERECORD}`;
  return new InputError(file, line, why);
}

/** A numeric field: finite decimal only (no '', hex, 'Infinity', which Number() would take). */
function _parseNum(raw: string, col: Column, file: string, line: number): number {
  if (raw === '' && MAY_BE_EMPTY.has(col)) return NaN;
  const v = NUMBER.test(raw) ? Number(raw) : NaN;
  if (!Number.isFinite(v)) throw new InputError(file, line, `${col}: expected a number, got '${raw}'`);
  return v;
}

interface _Record {
  readonly line: number;
  readonly fields: string[];
}

/** The header must be COLUMNS exactly; otherwise say what is missing, extra or out of place. */
function _checkHeader(header: _Record, next: _Record | undefined, file: string): void {
  const got = header.fields;
  if (got.length === COLUMNS.length && got.every((c, i) => c === COLUMNS[i])) return;
  // A file from another schema version has another header: say that, not which columns differ.
  const sv = got.indexOf('schema_version');
  if (sv >= 0 && next && next.fields.length > sv && !_isCurrent(next.fields[sv])) throw _schemaError(file, next.line, next.fields[sv]);
  const want = new Set<string>(COLUMNS);
  const have = new Set(got);
  const missing = COLUMNS.filter((c) => !have.has(c));
  const unexpected = got.filter((c) => !want.has(c));
  const parts: string[] = [];
  if (missing.length) parts.push(`missing ${missing.join(', ')}`);
  if (unexpected.length) parts.push(`unexpected ${unexpected.map((c) => `'${c}'`).join(', ')}`);
  if (!parts.length) {
    const dup = got.find((c, i) => got.indexOf(c) !== i);
    parts.push(dup ? `column ${dup} appears twice` : `columns out of order (expected ${COLUMNS.join(',')})`);
  }
  throw new InputError(file, header.line, `header does not match schema ${SCHEMA_VERSION}: ${parts.join('; ')}`);
}

const wholeFrom = (min: number) => (v: number): string | null => (Number.isInteger(v) && v >= min ? null : `expected an integer >= ${min}`);
/**
 * What each numeric column may hold, where it is not "a number >= 0":
 * counters and counts are whole, a cell has a CPU, and the cost over the
 * plain control may be below zero (a design cheaper than plain memory).
 */
const RANGE: Partial<Record<Column, (v: number) => string | null>> = {
  threads: wholeFrom(1),
  leak_bytes: wholeFrom(0),
  ops: wholeFrom(0),
  sim_rounds: wholeFrom(0),
  sim_processes: wholeFrom(0),
  model_over_plain_ns_per_op: () => null,
  ...Object.fromEntries(COUNTER_COLUMNS.map((c) => [c, wholeFrom(0)])),
};

function _row(rec: _Record, file: string): Row {
  if (rec.fields.length !== COLUMNS.length) throw new InputError(file, rec.line, `expected ${COLUMNS.length} fields, found ${rec.fields.length}`);
  // Version first: in a file of another schema the other fields may mean something else.
  if (!_isCurrent(rec.fields[SV])) throw _schemaError(file, rec.line, rec.fields[SV]);
  const row: Record<string, string | number> = {};
  COLUMNS.forEach((col, i) => {
    const raw = rec.fields[i];
    row[col] = NUMERIC_COLUMNS.has(col) ? _parseNum(raw, col, file, rec.line) : raw;
  });
  for (const col of NUMERIC_COLUMNS) {
    const v = row[col] as number;
    if (Number.isNaN(v)) continue; // an empty field where one may be
    const check = RANGE[col];
    const bad = check !== undefined ? check(v) : v < 0 ? 'expected a number >= 0' : null;
    if (bad !== null) throw new InputError(file, rec.line, `${col}: ${bad}, got '${rec.fields[COLUMNS.indexOf(col)]}'`);
  }
  if (!KERNELS.has(row.kernel as string)) throw new InputError(file, rec.line, `kernel: expected 'patched' or 'unpatched', got '${row.kernel}'`);
  if (!SWAP_KINDS.includes(row.swap as never)) throw new InputError(file, rec.line, `swap: expected one of ${SWAP_KINDS.join(', ')}, got '${row.swap}'`);
  return row as unknown as Row;
}

/** csv-parse's records with the physical line each starts on (1-based). */
function _records(text: string, file: string): _Record[] {
  let parsed: { record: string[]; info: { bytes: number } }[];
  try {
    parsed = parse(text, { info: true, skip_empty_lines: true, relax_column_count: true, bom: true }) as unknown as typeof parsed;
  } catch (e) {
    const err = e as Error & { lines?: number };
    throw new InputError(file, err.lines ?? 0, `not a valid CSV: ${err.message.replace(/ on line \d+$/, '')}`);
  }
  // Lines are counted by LF only, as editors and sed count them: csv-parse's
  // own info.lines also counts a lone CR inside a quoted field. info.bytes is
  // the UTF-8 offset just past the record (and its line feed, if any).
  const bytes = Buffer.from(text, 'utf8');
  let prevEnd = 0;
  let pos = 0;
  let line = 1;
  return parsed.map(({ record, info }) => {
    for (const end = info.bytes - 1; pos < end; pos++) if (bytes[pos] === 10) line++;
    // `line` is the line the record ends on; a quoted newline makes a record span lines
    const nl = record.reduce((a, f) => a + (f.match(/\n/g)?.length ?? 0), 0);
    const rec = { line: Math.max(prevEnd + 1, line - nl), fields: record };
    prevEnd = line;
    return rec;
  });
}

/** Read a results CSV written by formatCsv. `file` names it in errors, which carry 1-based physical line numbers. */
export function parseCsv(text: string, file: string): Row[] {
  text = text.replace(/\r\n/g, '\n');
  if (text.trim() === '') throw new InputError(file, 0, 'empty file (expected a memcrypt-bench results CSV)');
  if (/^\uFEFF?#/.test(text))
    throw new InputError(file, 1, `comment lines before the header: a schema 1 file, which this memcrypt-bench (schema ${SCHEMA_VERSION}) does not read; ${RERECORD}`);
  const [header, ...records] = _records(text, file);
  _checkHeader(header, records[0], file);
  const rows: Row[] = [];
  const seen = new Map<string, number>();
  for (const rec of records) {
    const row = _row(rec, file);
    const key = cellKey(row);
    const first = seen.get(key);
    if (first !== undefined) throw new InputError(file, rec.line, `duplicate cell ${key} (also on line ${first})`);
    seen.set(key, rec.line);
    rows.push(row);
  }
  return rows;
}

/**
 * Are a CSV (its text and rows) and a meta file one result set? The same
 * run_id in every row, and where the meta names them, the CSV's record count
 * and digest (a CSV cut at a row boundary still parses; its count does not
 * match). One line naming the file otherwise.
 */
export function checkResultSet(file: string, text: string, rows: readonly Row[], meta: RunMeta, mfile: string): void {
  const other = rows.find((r) => r.run_id !== meta.run_id);
  if (other) throw new InputError(file, 0, `run ${other.run_id} in the CSV, but ${mfile} is of run ${meta.run_id}: not one result set`);
  if (meta.rows !== undefined && rows.length !== meta.rows)
    throw new InputError(file, 0, `${rows.length} rows, but ${mfile} says the run wrote ${meta.rows}: the CSV is cut short or not this run's`);
  if (meta.csv_sha256 !== undefined && createHash('sha256').update(text).digest('hex') !== meta.csv_sha256)
    throw new InputError(file, 0, `the CSV is not the one ${mfile} was written with (its SHA-256 differs): edited, or not this run's`);
}

// --- metadata ----------------------------------------------------------------

/** The meta file that goes with a results CSV. */
export const metaPath = (csv: string): string => csv.replace(/\.csv$/, '') + '.meta.json';
/** The samples file that goes with a results CSV. */
export const samplesPath = (csv: string): string => csv.replace(/\.csv$/, '') + '.samples.json';

export function formatMeta(meta: RunMeta): string {
  return JSON.stringify(meta, null, 2) + '\n';
}

const _isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Line of a JSON.parse error, from the position or line V8 puts in the message; 0 if none. */
function _jsonErrorLine(text: string, msg: string): number {
  const l = /\(line (\d+) column \d+\)/.exec(msg);
  if (l) return Number(l[1]);
  const p = /at position (\d+)/.exec(msg);
  if (p) return text.slice(0, Number(p[1])).split('\n').length;
  return 0;
}

function _json(text: string, file: string, what: string): Record<string, unknown> {
  if (text.trim() === '') throw new InputError(file, 0, `empty file (expected a memcrypt-bench ${what})`);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    const msg = (e as Error).message;
    throw new InputError(file, _jsonErrorLine(text, msg), `not valid JSON: ${msg}`);
  }
  if (!_isObject(doc)) throw new InputError(file, 0, `expected a JSON object (a memcrypt-bench ${what})`);
  if (doc.schema_version === undefined) throw new InputError(file, 0, 'schema_version is missing');
  if (doc.schema_version !== SCHEMA_VERSION) throw _schemaError(file, 0, JSON.stringify(doc.schema_version));
  if (typeof doc.run_id !== 'string') throw new InputError(file, 0, 'run_id: expected a string');
  return doc;
}

const META_STRINGS = ['started_at', 'command', 'reproduce', 'host', 'kernel_release', 'cpu_model', 'node_version', 'tinybench_version', 'git_sha', 'cost_source', 'crypto_note'] as const;
const META_NUMBERS = ['seed', 'nproc', 'mem_bytes', 'wall_seconds', 'repeat', 'time_ms', 'warmup_ms', 'min_samples', 'order_seed'] as const;

/** Read a meta file written by formatMeta. */
export function parseMeta(text: string, file: string): RunMeta {
  const doc = _json(text, file, 'meta file');
  for (const k of META_STRINGS) if (typeof doc[k] !== 'string') throw new InputError(file, 0, `${k}: expected a string`);
  for (const k of META_NUMBERS) if (typeof doc[k] !== 'number' || !Number.isFinite(doc[k])) throw new InputError(file, 0, `${k}: expected a number`);
  for (const k of ['load_avg_start', 'load_avg_end'] as const)
    if (!Array.isArray(doc[k]) || !(doc[k] as unknown[]).every((x) => typeof x === 'number')) throw new InputError(file, 0, `${k}: expected an array of numbers`);
  if (!Array.isArray(doc.crypto_backends) || !doc.crypto_backends.every((x) => typeof x === 'string'))
    throw new InputError(file, 0, 'crypto_backends: expected an array of strings');
  if (doc.warmup_cells !== undefined && !(Number.isInteger(doc.warmup_cells) && (doc.warmup_cells as number) >= 0)) throw new InputError(file, 0, 'warmup_cells: expected an integer >= 0');
  if (doc.crypto_impl !== undefined && typeof doc.crypto_impl !== 'string') throw new InputError(file, 0, 'crypto_impl: expected a string');
  if (doc.counting !== undefined && typeof doc.counting !== 'string') throw new InputError(file, 0, 'counting: expected a string');
  if (doc.timing_flags !== undefined && typeof doc.timing_flags !== 'string') throw new InputError(file, 0, 'timing_flags: expected a string');
  if (doc.host_ref_ns !== undefined && !isPositiveNumbers(doc.host_ref_ns)) throw new InputError(file, 0, 'host_ref_ns: expected an array of positive numbers');
  if (doc.host_ref_impl !== undefined && typeof doc.host_ref_impl !== 'string') throw new InputError(file, 0, 'host_ref_impl: expected a string');
  if (doc.host_scaling !== undefined && !isPositiveNumbers(doc.host_scaling)) throw new InputError(file, 0, 'host_scaling: expected an array of positive numbers');
  if (doc.host_scaling_threads !== undefined && !(Number.isInteger(doc.host_scaling_threads) && (doc.host_scaling_threads as number) >= 2))
    throw new InputError(file, 0, 'host_scaling_threads: expected an integer >= 2');
  if ((doc.host_scaling === undefined) !== (doc.host_scaling_threads === undefined)) throw new InputError(file, 0, 'host_scaling and host_scaling_threads: expected both or neither');
  if (doc.stopped !== undefined && typeof doc.stopped !== 'string') throw new InputError(file, 0, 'stopped: expected a string');
  if (doc.rows !== undefined && !(Number.isInteger(doc.rows) && (doc.rows as number) >= 0)) throw new InputError(file, 0, 'rows: expected an integer >= 0');
  if (doc.csv_sha256 !== undefined && !(typeof doc.csv_sha256 === 'string' && /^[0-9a-f]{64}$/.test(doc.csv_sha256))) throw new InputError(file, 0, 'csv_sha256: expected 64 hex digits');
  if (!_isObject(doc.costs)) throw new InputError(file, 0, 'costs: expected the cost table object');
  const bad = checkCostTable(doc.costs);
  if (bad) throw new InputError(file, 0, `costs.${bad}`);
  return doc as unknown as RunMeta;
}

// --- samples -----------------------------------------------------------------

/**
 * The samples companion file, one cell per line so diffs stay readable:
 * { "schema_version": 3, "run_id": ..., "cells": [{ "key": ..., "samples": [...], "batches": [[...], ...] }] }
 */
export function formatSamples(runId: string, cells: readonly CellSamples[]): string {
  const lines = cells.map((c, i) => {
    // JSON would write NaN as null, which parseSamples refuses: fail here, where the bug is.
    const bad = c.samples.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new RangeError(`formatSamples: cells[${i}] (${c.key}): samples[${bad}] is ${c.samples[bad]}`);
    const bb = (c.batches ?? []).findIndex((b) => b.some((v) => !Number.isFinite(v)));
    if (bb >= 0) throw new RangeError(`formatSamples: cells[${i}] (${c.key}): batches[${bb}] holds a non-finite number`);
    const batches = c.batches ? `, "batches": [${c.batches.map((b) => `[${b.join(', ')}]`).join(', ')}]` : '';
    return `    { "key": ${JSON.stringify(c.key)}, "samples": [${c.samples.join(', ')}]${batches} }`;
  });
  return (
    `{\n  "schema_version": ${SCHEMA_VERSION},\n  "run_id": ${JSON.stringify(runId)},\n  "cells": [` +
    (lines.length ? `\n${lines.join(',\n')}\n  ]` : ']') +
    '\n}\n'
  );
}

/** Read a samples file written by formatSamples. */
export function parseSamples(text: string, file: string): { runId: string; cells: CellSamples[] } {
  const doc = _json(text, file, 'samples file');
  if (!Array.isArray(doc.cells)) throw new InputError(file, 0, 'cells: expected an array');
  const seen = new Set<string>();
  const cells = doc.cells.map((c: unknown, i: number): CellSamples => {
    if (!_isObject(c) || typeof c.key !== 'string' || !Array.isArray(c.samples))
      throw new InputError(file, 0, `cells[${i}]: expected { "key": string, "samples": [numbers] }`);
    if (seen.has(c.key)) throw new InputError(file, 0, `cells[${i}]: duplicate key ${c.key}`);
    seen.add(c.key);
    const bad = c.samples.findIndex((v: unknown) => typeof v !== 'number' || !Number.isFinite(v));
    if (bad >= 0) throw new InputError(file, 0, `cells[${i}] (${c.key}): samples[${bad}]: expected a finite number, got ${JSON.stringify(c.samples[bad])}`);
    if (c.batches === undefined) return { key: c.key, samples: c.samples as number[] };
    const ok = Array.isArray(c.batches) && c.batches.every((b) => Array.isArray(b) && b.every((v) => typeof v === 'number' && Number.isFinite(v)));
    if (!ok) throw new InputError(file, 0, `cells[${i}] (${c.key}): batches: expected arrays of finite numbers`);
    return { key: c.key, samples: c.samples as number[], batches: c.batches as number[][] };
  });
  return { runId: doc.run_id as string, cells };
}
