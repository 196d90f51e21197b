// Behaviour the mutation run of dist/bench/csv.js showed untested (see
// test/mutation-review/csv-stats.md): number spellings of other CSV writers,
// the header diagnostics, line numbers, a BOM, and the refusals of the meta
// and samples files, each with its exact one-line message.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatCsv, formatMeta, formatSamples, metaPath, parseCsv, parseMeta, parseSamples, samplesPath } from '../../bench/csv.js';
import { InputError } from '../../bench/io.js';
import { COLUMNS, type Column, type Row } from '../../bench/schema.js';
import { mkMeta, mkRow, refuses } from './fixtures.js';

const FILE = 'r.csv';


const HEADER = COLUMNS.join(',');
/** Two valid data lines (unquoted fields only), the first with mkRow's defaults. */
const [ROW1, ROW2] = formatCsv([mkRow(), mkRow({ interface: 'dev-mktme' })]).trimEnd().split('\n').slice(1);

/** ROW1 with column `col` set to `value`. */
function rowWith(col: Column, value: string): string {
  const f = ROW1.split(',');
  f[COLUMNS.indexOf(col)] = value;
  return f.join(',');
}

describe('parseCsv reads numbers as other CSV writers spell them', () => {
  it('signs, a leading dot, exponents with and without a sign', () => {
    const cases: [Column, string, number][] = [
      ['model_over_plain_ns_per_op', '-1.5', -1.5],
      ['sim_rme_pct', '+2', 2],
      ['sim_ns_per_op_median', '.25', 0.25],
      ['ops', '1.5e3', 1500],
      ['sim_ns_per_op_p99', '2.5E-10', 2.5e-10],
      ['crypto_bytes', '1e+21', 1e21],
    ];
    for (const [col, raw, want] of cases) {
      const [row] = parseCsv(`${HEADER}\n${rowWith(col, raw)}\n`, FILE);
      assert.equal(row[col], want, `${col} = ${raw}`);
    }
  });

  it('refuses values outside a column\'s range, naming the column and echoing the field', () => {
    const cases: [Column, string, RegExp][] = [
      ['sim_ns_per_op_median', '-3', /sim_ns_per_op_median: expected a number >= 0, got '-3'$/],
      ['faults', '2.5', /faults: expected an integer >= 0, got '2\.5'$/],
      ['faults', '-1', /faults: expected an integer >= 0, got '-1'$/],
      ['threads', '0', /threads: expected an integer >= 1, got '0'$/],
      ['ops', '1.5', /ops: expected an integer >= 0, got '1\.5'$/],
    ];
    for (const [col, raw, re] of cases) assert.throws(() => parseCsv(`${HEADER}\n${rowWith(col, raw)}\n`, FILE), (e: unknown) => e instanceof Error && re.test(e.message), `${col} = ${raw}`);
  });

  it('round-trips a counter of 1e21, which formatCsv writes as 1e+21', () => {
    const rows = [mkRow({ crypto_bytes: 1e21 })];
    const text = formatCsv(rows);
    assert.ok(text.includes(',1e+21,'));
    assert.deepEqual(parseCsv(text, FILE), rows);
  });
});

describe('parseCsv: the header', () => {
  it('refuses an extra trailing column and a missing last column, even without rows', () => {
    refuses(() => parseCsv(`${HEADER},extra\n`, FILE), 1, `${FILE}:1: header does not match schema 4: unexpected 'extra'`);
    refuses(() => parseCsv(`${HEADER.replace(/,procs_encrypted$/, '')}\n`, FILE), 1, `${FILE}:1: header does not match schema 4: missing procs_encrypted`);
    // integrity_errors was the last column of schema 3: a file cut there is still refused
    refuses(() => parseCsv(`${HEADER.replace(/,integrity_errors,.*$/, ',integrity_errors')}\n`, FILE), 1, `${FILE}:1: header does not match schema 4: missing stage2_faults, vm_exits, gup_failures, conversions, bounce_copies, bounce_bytes, io_shared_bytes, procs, procs_encrypted`);
  });

  it('names every missing and every unexpected column, and nothing else', () => {
    const header = HEADER.replace(',host,', ',hostname,').replace(',faults,', ',fault_count,');
    refuses(
      () => parseCsv(`${header}\n${ROW1}\n`, FILE),
      1,
      `${FILE}:1: header does not match schema 4: missing host, faults; unexpected 'hostname', 'fault_count'`,
    );
  });

  it('names a column that appears twice', () => {
    refuses(() => parseCsv(`${HEADER},host\n`, FILE), 1, `${FILE}:1: header does not match schema 4: column host appears twice`);
  });

  it('columns out of order: gives the expected header', () => {
    const header = HEADER.replace('host,cpu_model', 'cpu_model,host');
    refuses(() => parseCsv(`${header}\n`, FILE), 1, `${FILE}:1: header does not match schema 4: columns out of order (expected ${HEADER})`);
  });

  it('a header without schema_version: names the columns, rows or not (no version to judge)', () => {
    const header = HEADER.replace(/^schema_version,/, 'version,');
    const msg = `${FILE}:1: header does not match schema 4: missing schema_version; unexpected 'version'`;
    refuses(() => parseCsv(`${header}\n${ROW1}\n`, FILE), 1, msg);
    refuses(() => parseCsv(`${header}\n`, FILE), 1, msg);
  });

  it('a header with schema_version but a column missing, and no rows: refused for the header', () => {
    refuses(() => parseCsv(`${HEADER.replace(',sim_ns_per_op_p99', '')}\n`, FILE), 1, `${FILE}:1: header does not match schema 4: missing sim_ns_per_op_p99`);
  });

  it('a first row too short to hold the version column: refused for the header, not for a version', () => {
    // schema_version is the 3rd column here; the row has 2 fields
    const missing = COLUMNS.filter((c) => !['run_id', 'host', 'schema_version'].includes(c)).join(', ');
    refuses(() => parseCsv('run_id,host,schema_version\nx,y\n', FILE), 1, `${FILE}:1: header does not match schema 4: missing ${missing}`);
    refuses(() => parseCsv('run_id,host,schema_version\nx\n', FILE), 1, `${FILE}:1: header does not match schema 4: missing ${missing}`);
  });
});

describe('parseCsv: versions, quoting, lines', () => {
  it('a schema_version that is not a number says so', () => {
    refuses(() => parseCsv(`${HEADER}\n${rowWith('schema_version', 'three')}\n`, FILE), 2, `${FILE}:2: schema_version 'three' is not a number`);
  });

  it('reads a file that starts with a byte order mark (as Excel writes CSV)', () => {
    const rows = [mkRow(), mkRow({ interface: 'dev-mktme' })];
    assert.deepEqual(parseCsv(`\uFEFF${formatCsv(rows)}`, FILE), rows);
  });

  it("a '#' inside a field is data, not a schema 1 comment line", () => {
    const rows = [mkRow({ host: 'rack #3' }), mkRow({ interface: 'dev-mktme', cpu_model: '#1 CPU' })];
    assert.deepEqual(parseCsv(formatCsv(rows), FILE), rows);
  });

  it('a broken quote: the message quotes the value as it is, even one that reads like a line number', () => {
    const text = `${HEADER}\n${ROW1.replace(',testhost,', ',host on line 7"x,')}\n`;
    assert.throws(
      () => parseCsv(text, FILE),
      (e: unknown) => e instanceof InputError && e.line === 2 && e.message.endsWith('value is "host on line 7"'),
    );
  });

  it('an error in a record that spans lines is reported at the line the record starts on', () => {
    const text = formatCsv([mkRow({ host: 'two\nlines', kernel: 'vanilla' as Row['kernel'] }), mkRow({ interface: 'dev-mktme' })]);
    refuses(() => parseCsv(text, FILE), 2, `${FILE}:2: kernel: expected 'patched' or 'unpatched', got 'vanilla'`);
  });

  it('after blank lines, an error is reported at its own line', () => {
    const text = `${HEADER}\n${ROW1}\n\n\n${ROW2.replace(',patched,', ',vanilla,')}\n`;
    refuses(() => parseCsv(text, FILE), 5, `${FILE}:5: kernel: expected 'patched' or 'unpatched', got 'vanilla'`);
  });
});

describe('formatCsv', () => {
  it('refuses a non-string in a text column, naming the row and the column', () => {
    const bad = { ...mkRow({ interface: 'dev-mktme' }), host: 5 } as unknown as Row;
    assert.throws(() => formatCsv([mkRow(), bad]), (e: unknown) => e instanceof TypeError && e.message === 'formatCsv: rows[1].host: expected a string, got number');
  });
});

describe('metaPath / samplesPath', () => {
  it('replace only a final .csv', () => {
    assert.equal(metaPath('runs.csvs/a.csv'), 'runs.csvs/a.meta.json');
    assert.equal(samplesPath('runs.csvs/a.csv'), 'runs.csvs/a.samples.json');
    assert.equal(metaPath('a.csv.old'), 'a.csv.old.meta.json');
    assert.equal(samplesPath('a.csv.old'), 'a.csv.old.samples.json');
  });
});

describe('formatMeta / parseMeta', () => {
  const M = 'm.json';
  /** The meta file with `key` set to the JSON text `value`. */
  const metaWith = (key: string, value: string): string => JSON.stringify({ ...mkMeta(), [key]: '@' }).replace('"@"', value);

  it('formatMeta: the JSON and one final newline', () => {
    const text = formatMeta(mkMeta());
    assert.ok(text.endsWith('}\n') && !text.endsWith('\n\n'));
    assert.deepEqual(JSON.parse(text), mkMeta());
  });

  it('refuses what is not a JSON object, and a blank file, naming what it expected', () => {
    for (const text of ['5', 'null', '"meta"', '[]']) refuses(() => parseMeta(text, M), 0, `${M}: expected a JSON object (a memcrypt-bench meta file)`);
    refuses(() => parseMeta('\n  \n', M), 0, `${M}: empty file (expected a memcrypt-bench meta file)`);
  });

  it('refuses a run_id that is not a string', () => {
    refuses(() => parseMeta(metaWith('run_id', '5'), M), 0, `${M}: run_id: expected a string`);
  });

  it('refuses a number written as 1e999 (JSON.parse makes it Infinity)', () => {
    refuses(() => parseMeta(metaWith('seed', '1e999'), M), 0, `${M}: seed: expected a number`);
  });

  it('refuses a load average or a backend list with one element of the wrong type, or not a list', () => {
    refuses(() => parseMeta(metaWith('load_avg_start', '[0.5, "high", 0.3]'), M), 0, `${M}: load_avg_start: expected an array of numbers`);
    refuses(() => parseMeta(metaWith('load_avg_end', '["high"]'), M), 0, `${M}: load_avg_end: expected an array of numbers`);
    for (const v of ['"openssl"', '["openssl", 7]', '[7]'])
      refuses(() => parseMeta(metaWith('crypto_backends', v), M), 0, `${M}: crypto_backends: expected an array of strings`);
  });

  it('refuses a cost table that is not an object', () => {
    for (const v of ['null', '[]', '"default"']) refuses(() => parseMeta(metaWith('costs', v), M), 0, `${M}: costs: expected the cost table object`);
  });
});

describe('formatSamples / parseSamples with batches', () => {
  const S = 's.json';
  const cells = [
    { key: 'a', samples: [1.5, 2], batches: [[1, 2.5], [3], []] },
    { key: 'b', samples: [4] },
    { key: 'c', samples: [], batches: [] },
  ];

  it('round-trip the batches of each process', () => {
    const text = formatSamples('run-1', cells);
    assert.deepEqual(JSON.parse(text), { schema_version: 4, run_id: 'run-1', cells });
    assert.deepEqual(parseSamples(text, S), { runId: 'run-1', cells });
  });

  it('formatSamples refuses a non-finite value in the first place of the samples or in a batch, naming where', () => {
    const bad = (c: { key: string; samples: number[]; batches?: number[][] }, msg: string) =>
      assert.throws(() => formatSamples('run-1', [{ key: 'ok', samples: [1] }, c]), (e: unknown) => e instanceof RangeError && e.message === msg);
    bad({ key: 'k', samples: [NaN, 1] }, 'formatSamples: cells[1] (k): samples[0] is NaN');
    bad({ key: 'k', samples: [1], batches: [[1, 2], [3, Infinity]] }, 'formatSamples: cells[1] (k): batches[1] holds a non-finite number');
    bad({ key: 'k', samples: [1], batches: [[NaN]] }, 'formatSamples: cells[1] (k): batches[0] holds a non-finite number');
  });

  /** A samples file with one cell whose "batches" (JSON text) is given. */
  const withBatches = (b: string) => `{"schema_version": 4, "run_id": "x", "cells": [{"key": "k", "samples": [1], "batches": ${b}}]}`;

  it('parseSamples refuses batches that are not arrays of finite numbers', () => {
    for (const b of ['"x"', '[[1], "x"]', '[[1, "x"]]', '[["x"]]', '[[1, 1e999]]', '[[1], [2, null]]'])
      refuses(() => parseSamples(withBatches(b), S), 0, `${S}: cells[0] (k): batches: expected arrays of finite numbers`);
  });

  it('parseSamples refuses a document that is not an object, a blank or cut-off file, a bad run_id', () => {
    for (const text of ['5', 'null', '"cells"']) refuses(() => parseSamples(text, S), 0, `${S}: expected a JSON object (a memcrypt-bench samples file)`);
    refuses(() => parseSamples(' \n\t\n', S), 0, `${S}: empty file (expected a memcrypt-bench samples file)`);
    // no position in V8's message: line 0
    refuses(() => parseSamples('{"schema_version": 4, "run_id": "x", "cells": [', S), 0, `${S}: not valid JSON: Unexpected end of JSON input`);
    refuses(() => parseSamples('{"schema_version": 4, "run_id": 5, "cells": []}', S), 0, `${S}: run_id: expected a string`);
  });

  it('parseSamples refuses a cell that is not an object or has a non-string key', () => {
    const msg = `${S}: cells[1]: expected { "key": string, "samples": [numbers] }`;
    for (const c of ['null', '{"key": 5, "samples": []}', '7'])
      refuses(() => parseSamples(`{"schema_version": 4, "run_id": "x", "cells": [{"key": "a", "samples": []}, ${c}]}`, S), 0, msg);
  });

  it('parseSamples refuses a non-finite or non-number sample in the first place', () => {
    const cell = (s: string) => `{"schema_version": 4, "run_id": "x", "cells": [{"key": "k", "samples": ${s}}]}`;
    refuses(() => parseSamples(cell('[1e999, 1]'), S), 0, `${S}: cells[0] (k): samples[0]: expected a finite number, got null`);
    refuses(() => parseSamples(cell('["x", 1]'), S), 0, `${S}: cells[0] (k): samples[0]: expected a finite number, got "x"`);
  });
});

describe('parseCsv: line numbers count line feeds only', () => {
  it('a lone CR inside a quoted field does not shift the line of that record or of any later one', () => {
    // a text field holding "x\ry" is quoted by formatCsv; the kernel field of
    // the next record is bad, so the error names that record's line
    const text = formatCsv([mkRow({ run_id: 'x\ry' }), mkRow({ kernel: 'vanilla' as never })]);
    assert.equal(text.split('\n')[2].includes('vanilla'), true, 'the bad record is on line 3 by line feeds');
    refuses(() => parseCsv(text, 'f.csv'), 3, "f.csv:3: kernel: expected 'patched' or 'unpatched', got 'vanilla'");
    refuses(() => parseCsv(formatCsv([mkRow({ run_id: 'x\ry', kernel: 'vanilla' as never })]), 'f.csv'), 2, "f.csv:2: kernel: expected 'patched' or 'unpatched', got 'vanilla'");
  });

  it('non-ASCII text before a record does not shift its line either (csv-parse counts UTF-8 bytes)', () => {
    const text = formatCsv([mkRow({ cpu_model: 'Xeon® ünïcödé 🙂' }), mkRow({ threads: 2 }), mkRow({ kernel: 'vanilla' as never, threads: 4 })]);
    refuses(() => parseCsv(text, 'f.csv'), 4, "f.csv:4: kernel: expected 'patched' or 'unpatched', got 'vanilla'");
  });
});
