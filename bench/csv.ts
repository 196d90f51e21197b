// Results files: the CSV (one row per cell, schema.ts) with the run metadata
// as `# key: value` comment lines on top, and the companion JSON file of raw
// timing samples that compare needs for its statistical test.
//
// Writing uses csv-stringify. Reading is a small strict RFC 4180 parser of our
// own (no parser dependency): these files are compared against baselines
// months later, so anything that does not match the schema exactly is refused
// with the file and the physical line, rather than guessed at.
import { stringify } from 'csv-stringify/sync';
import { InputError } from './io.js';
import { COLUMNS, NUMERIC_COLUMNS, SCHEMA_VERSION, cellKey, type CellSamples, type Column, type Row, type RunMeta } from './schema.js';

const TITLE = '# memcrypt-bench results';

/** Time columns of a cell that was not timed (unsupported, crashed) are empty, read back as NaN. */
const MAY_BE_EMPTY: ReadonlySet<Column> = new Set<Column>(['wall_ns_median', 'wall_ns_p99', 'wall_rme_pct', 'modelled_ns_per_op']);

const KERNELS: ReadonlySet<string> = new Set(['patched', 'unpatched']);

// --- writing -----------------------------------------------------------------

/**
 * A number as a CSV field: empty for NaN/±Infinity, integers as they are,
 * others rounded to 3 decimals without trailing zeros (12.5, 0.333). More
 * digits would be noise: times are medians with a margin of error of percents.
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

/** The results CSV: title, `# key: value` metadata lines, header, one record per row. */
export function formatCsv(meta: RunMeta, rows: readonly Row[]): string {
  const head = [TITLE];
  for (const [k, v] of Object.entries(meta)) {
    // A key holding ':' or a newline could not be read back as the same key.
    if (/[:\r\n]/.test(k) || k.trim() === '') throw new RangeError(`formatCsv: meta key '${k}' cannot be written as '# key: value'`);
    head.push(`# ${k}: ${String(v).replace(/\r\n|[\r\n]/g, ' ')}`);
  }
  const records: string[][] = [[...COLUMNS]];
  rows.forEach((r, i) => records.push(COLUMNS.map((c) => _field(r, c, i))));
  return head.join('\n') + '\n' + stringify(records);
}

// --- reading -----------------------------------------------------------------

/** One CSV record and where it is: physical line of the record and of each field. */
interface _Record {
  readonly line: number;
  readonly fields: string[];
  readonly fieldLines: number[];
}

/**
 * RFC 4180 records from text[pos..], whose first character is on physical
 * line `line`. text has LF line ends only (the caller folds CRLF, which keeps
 * line numbers). Quoted fields may hold commas, doubled quotes and newlines;
 * the line counter follows the newlines inside them so later errors point at
 * the right line. Blank lines are skipped (a trailing newline is not a record).
 */
function _records(text: string, pos: number, line: number, file: string): _Record[] {
  const out: _Record[] = [];
  const n = text.length;
  while (pos < n) {
    const blank = text[pos] === '\n';
    const rec: _Record = { line, fields: [], fieldLines: [] };
    for (;;) {
      rec.fieldLines.push(line);
      let val: string;
      if (text[pos] === '"') {
        const open = line;
        val = '';
        pos++;
        for (;;) {
          if (pos >= n) throw new InputError(file, open, `field ${rec.fields.length + 1}: quoted field is never closed`);
          const c = text[pos];
          if (c === '"') {
            if (text[pos + 1] !== '"') break;
            val += '"';
            pos += 2;
            continue;
          }
          if (c === '\n') line++;
          val += c;
          pos++;
        }
        pos++; // the closing quote
        if (pos < n && text[pos] !== ',' && text[pos] !== '\n')
          throw new InputError(file, line, `field ${rec.fields.length + 1}: unexpected '${text[pos]}' after a closing quote`);
      } else {
        let end = pos;
        while (end < n && text[end] !== ',' && text[end] !== '\n') end++;
        val = text.slice(pos, end);
        if (val.includes('"'))
          throw new InputError(file, line, `field ${rec.fields.length + 1}: '"' in an unquoted field (quote the whole field and double the quote)`);
        pos = end;
      }
      rec.fields.push(val);
      if (pos >= n) break;
      pos++;
      if (text[pos - 1] === '\n') {
        line++;
        break;
      }
    }
    if (!blank) out.push(rec);
  }
  return out;
}

const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;
const SV = COLUMNS.indexOf('schema_version');
const _isCurrent = (raw: string): boolean => NUMBER.test(raw) && Number(raw) === SCHEMA_VERSION;

function _schemaError(file: string, line: number, raw: string): InputError {
  const v = NUMBER.test(raw) ? Number(raw) : NaN;
  const why =
    !Number.isFinite(v)
      ? `schema_version '${raw}' is not a number`
      : v > SCHEMA_VERSION
        ? `schema_version ${raw} is not supported (this memcrypt-bench reads schema ${SCHEMA_VERSION}); it was written by a newer memcrypt-bench, upgrade to read it`
        : `schema_version ${raw} is not supported (this memcrypt-bench reads schema ${SCHEMA_VERSION}); re-run the benchmark to regenerate it`;
  return new InputError(file, line, why);
}


/** A numeric field: finite decimal only (no '', hex, 'Infinity', which Number() would take). */
function _parseNum(raw: string, col: Column, file: string, line: number): number {
  if (raw === '' && MAY_BE_EMPTY.has(col)) return NaN;
  const v = NUMBER.test(raw) ? Number(raw) : NaN;
  if (!Number.isFinite(v)) throw new InputError(file, line, `${col}: expected a number, got '${raw}'`);
  return v;
}

/** The header must be COLUMNS exactly; otherwise say what is missing, extra or out of place. */
function _checkHeader(header: _Record, next: _Record | undefined, file: string): void {
  const got = header.fields;
  if (got.length === COLUMNS.length && got.every((c, i) => c === COLUMNS[i])) return;
  // A file from another schema version has another header: say that, not which columns differ.
  const sv = got.indexOf('schema_version');
  if (sv >= 0 && next && next.fields.length > sv && !_isCurrent(next.fields[sv]))
    throw _schemaError(file, next.fieldLines[sv], next.fields[sv]);
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

function _row(rec: _Record, file: string): Row {
  if (rec.fields.length !== COLUMNS.length)
    throw new InputError(file, rec.line, `expected ${COLUMNS.length} fields, found ${rec.fields.length}`);
  // Version first: in a file of another schema the other fields may mean something else.
  if (!_isCurrent(rec.fields[SV])) throw _schemaError(file, rec.fieldLines[SV], rec.fields[SV]);
  const row: Record<string, string | number> = {};
  COLUMNS.forEach((col, i) => {
    const raw = rec.fields[i];
    row[col] = NUMERIC_COLUMNS.has(col) ? _parseNum(raw, col, file, rec.fieldLines[i]) : raw;
  });
  const k = COLUMNS.indexOf('kernel');
  if (!KERNELS.has(rec.fields[k]))
    throw new InputError(file, rec.fieldLines[k], `kernel: expected 'patched' or 'unpatched', got '${rec.fields[k]}'`);
  return row as unknown as Row;
}

/**
 * Read a results CSV written by formatCsv. `file` names it in errors, which
 * carry 1-based physical line numbers (comment lines and newlines inside
 * quoted fields count).
 */
export function parseCsv(text: string, file: string): { meta: Record<string, string>; rows: Row[] } {
  // Fold CRLF (a file that went through a Windows editor or git autocrlf):
  // one line end either way, so line numbers do not move. Drop a BOM.
  text = text.replace(/^\uFEFF/, '').replace(/\r\n/g, '\n');
  if (text.trim() === '') throw new InputError(file, 0, 'empty file (expected a memcrypt-bench results CSV)');

  // `# key: value` lines and blank lines before the header.
  const meta: Record<string, string> = {};
  let pos = 0;
  let line = 1;
  while (pos < text.length) {
    const eol = text.indexOf('\n', pos);
    const end = eol < 0 ? text.length : eol;
    const s = text.slice(pos, end);
    if (!s.startsWith('#') && s.trim() !== '') break;
    const m = /^#\s*([^\s:][^:]*?)\s*:\s?(.*)$/.exec(s);
    if (m) meta[m[1]] = m[2]; // other comments (the title) carry no metadata
    pos = end + 1;
    line++;
  }
  if (pos >= text.length) throw new InputError(file, 0, `no header line after ${line - 1} comment lines`);

  const [header, ...records] = _records(text, pos, line, file);
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
  return { meta, rows };
}

// --- samples -----------------------------------------------------------------

/**
 * The samples companion file, one cell per line so diffs stay readable:
 * { "schema_version": 1, "run_id": ..., "cells": [{ "key": ..., "samples": [...] }] }
 */
export function formatSamples(meta: RunMeta, cells: readonly CellSamples[]): string {
  const lines = cells.map((c, i) => {
    // JSON would write NaN as null, which parseSamples refuses: fail here, where the bug is.
    const bad = c.samples.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new RangeError(`formatSamples: cells[${i}] (${c.key}): samples[${bad}] is ${c.samples[bad]}`);
    return `    { "key": ${JSON.stringify(c.key)}, "samples": [${c.samples.join(', ')}] }`;
  });
  return (
    `{\n  "schema_version": ${SCHEMA_VERSION},\n  "run_id": ${JSON.stringify(meta.run_id)},\n  "cells": [` +
    (lines.length ? `\n${lines.join(',\n')}\n  ]` : ']') +
    '\n}\n'
  );
}

/** Line of a JSON.parse error, from the position or line V8 puts in the message; 0 if none. */
function _jsonErrorLine(text: string, msg: string): number {
  const l = /\(line (\d+) column \d+\)/.exec(msg);
  if (l) return Number(l[1]);
  const p = /at position (\d+)/.exec(msg);
  if (p) return text.slice(0, Number(p[1])).split('\n').length;
  return 0;
}

const _isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Read a samples file written by formatSamples. */
export function parseSamples(text: string, file: string): CellSamples[] {
  if (text.trim() === '') throw new InputError(file, 0, 'empty file (expected a memcrypt-bench samples JSON file)');
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    const msg = (e as Error).message;
    throw new InputError(file, _jsonErrorLine(text, msg), `not valid JSON: ${msg}`);
  }
  if (!_isObject(doc)) throw new InputError(file, 0, 'expected a JSON object with schema_version, run_id and cells');
  if (doc.schema_version === undefined) throw new InputError(file, 0, 'schema_version is missing');
  if (doc.schema_version !== SCHEMA_VERSION) throw _schemaError(file, 0, JSON.stringify(doc.schema_version));
  if (typeof doc.run_id !== 'string') throw new InputError(file, 0, 'run_id: expected a string');
  if (!Array.isArray(doc.cells)) throw new InputError(file, 0, 'cells: expected an array');
  const seen = new Set<string>();
  return doc.cells.map((c: unknown, i: number): CellSamples => {
    if (!_isObject(c) || typeof c.key !== 'string' || !Array.isArray(c.samples))
      throw new InputError(file, 0, `cells[${i}]: expected { "key": string, "samples": [numbers] }`);
    if (seen.has(c.key)) throw new InputError(file, 0, `cells[${i}]: duplicate key ${c.key}`);
    seen.add(c.key);
    const bad = c.samples.findIndex((v: unknown) => typeof v !== 'number' || !Number.isFinite(v));
    if (bad >= 0) throw new InputError(file, 0, `cells[${i}] (${c.key}): samples[${bad}]: expected a finite number, got ${JSON.stringify(c.samples[bad])}`);
    return { key: c.key, samples: c.samples as number[] };
  });
}
