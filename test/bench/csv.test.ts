import assert from 'node:assert/strict';
import fs, { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it, mock } from 'node:test';
import { formatCsv, formatMeta, formatSamples, parseCsv, parseMeta, parseSamples } from '../../bench/csv.js';
import { InputError, readInput, writeFileAtomic } from '../../bench/io.js';
import { COLUMNS, cellKey, type Row } from '../../bench/schema.js';
import { mkMeta, mkRow, notRun, untimed } from './fixtures.js';

/** Rows over several cells with varied values (3 decimals at most, as written). */
function variedRows(): Row[] {
  const rows: Row[] = [];
  let i = 0;
  for (const iface of ['encrypt-mprotect', 'dev-mktme', 'madvise-encrypt', 'memfd-secret'])
    for (const workload of ['fault', 'swap', 'enosys-fallback'])
      for (const kernel of ['patched', 'unpatched'] as const)
        for (const threads of [1, 2]) {
          i++;
          const timed = i % 5 !== 0;
          rows.push(
            mkRow({
              interface: iface,
              workload,
              kernel,
              swap: workload === 'swap' ? (i % 2 ? 'plain' : 'encrypted') : 'none',
              threads,
              outcome: timed ? 'encrypted' : 'unsupported',
              errno: timed ? '' : 'EBUSY',
              ...(timed ? { sim_ns_per_op_median: 1000 + i * 0.125, sim_ns_per_op_p99: 2e9 + i, sim_rme_pct: i / 8, model_over_plain_ns_per_op: i / 1000 } : notRun),
              faults: i * 64,
              crypto_bytes: i * 2 ** 32,
            }),
          );
        }
  return rows;
}

const FILE = 'results/x.csv';

/** parse must throw an InputError for FILE at `line` whose message matches re. */
function throwsAt(text: string, line: number, re: RegExp): void {
  assert.throws(
    () => parseCsv(text, FILE),
    (e: unknown) => {
      assert.ok(e instanceof InputError, `expected an InputError, got ${String(e)}`);
      assert.equal(e.file, FILE);
      assert.equal(e.line, line, e.message);
      assert.ok(e.message.startsWith(line ? `${FILE}:${line}: ` : `${FILE}: `), e.message);
      assert.match(e.message, re);
      assert.ok(!e.message.includes('\n'), 'one line');
      return true;
    },
  );
}

/** A valid two-row file, its lines, and the 1-based line of the header. */
function sample(): { lines: string[]; header: number } {
  const text = formatCsv([mkRow(), mkRow({ interface: 'dev-mktme' })]);
  const lines = text.split('\n');
  return { lines, header: lines.findIndex((l) => l.startsWith('schema_version,')) + 1 };
}

/** The sample with column `col` of data row `n` (1-based) set to `value` (unquoted rows only). */
function withField(n: number, col: string, value: string): { text: string; line: number } {
  const { lines, header } = sample();
  const f = lines[header - 1 + n].split(',');
  f[COLUMNS.indexOf(col as (typeof COLUMNS)[number])] = value;
  lines[header - 1 + n] = f.join(',');
  return { text: lines.join('\n'), line: header + n };
}

describe('formatCsv / parseCsv', () => {
  it('round-trips rows, NaN model and times included', () => {
    const rows = [...variedRows(), mkRow({ interface: 'x', ...notRun }), mkRow({ interface: 'y', ...untimed })];
    const text = formatCsv(rows);
    const back = parseCsv(text, FILE);
    assert.deepEqual(back, rows); // deepStrictEqual: NaN equals NaN
    assert.ok(Number.isNaN(back.at(-2)!.modelled_ns_per_op));
    assert.ok(Number.isNaN(back.at(-1)!.sim_ns_per_op_median));
  });

  it('round-trips quoted strings: commas, quotes, newlines', () => {
    const rows = [mkRow({ host: 'a,"b"\nc', cpu_model: '"', errno: '' }), mkRow({ interface: 'dev-mktme', run_id: 'x\ry' })];
    assert.deepEqual(parseCsv(formatCsv(rows), FILE), rows);
  });

  it('the header is line 1, exactly COLUMNS, no comment lines; the model comes before the simulator time', () => {
    const text = formatCsv([mkRow()]);
    const lines = text.split('\n');
    assert.equal(lines[0], COLUMNS.join(','));
    assert.equal(lines.filter((l) => l.startsWith('#')).length, 0);
    assert.equal(text.endsWith('\n'), true);
    assert.ok(COLUMNS.indexOf('modelled_ns_per_op') < COLUMNS.indexOf('sim_ns_per_op_median'));
    assert.ok(COLUMNS.indexOf('model_over_plain_ns_per_op') < COLUMNS.indexOf('sim_ns_per_op_median'));
    for (const c of COLUMNS) if (c.startsWith('model_') && c !== 'model_over_plain_ns_per_op') assert.match(c, /^model_[a-z_]+_ns_per_op$/);
  });

  it('formats numbers: empty for non-finite, integers as is, at most 3 decimals', () => {
    const r = mkRow({ sim_ns_per_op_median: 12.5, sim_ns_per_op_p99: 1 / 3, sim_rme_pct: Infinity, modelled_ns_per_op: NaN, ops: 1e6, faults: 0 });
    const rec = formatCsv([r]).trimEnd().split('\n').at(-1)!.split(',');
    const at = (c: string) => rec[COLUMNS.indexOf(c as (typeof COLUMNS)[number])];
    assert.equal(at('sim_ns_per_op_median'), '12.5');
    assert.equal(at('sim_ns_per_op_p99'), '0.333');
    assert.equal(at('sim_rme_pct'), '');
    assert.equal(at('modelled_ns_per_op'), '');
    assert.equal(at('ops'), '1000000');
    assert.equal(at('faults'), '0');
    assert.equal(formatCsv([mkRow({ sim_ns_per_op_median: -0.0001 })]).includes(',-0,'), false);
  });

  it('reads CRLF files and files without a trailing newline', () => {
    const rows = [mkRow({ host: 'two\nlines' }), mkRow({ interface: 'dev-mktme' })];
    const text = formatCsv(rows);
    assert.deepEqual(parseCsv(text.replace(/\n/g, '\r\n'), FILE), rows);
    assert.deepEqual(parseCsv(text.trimEnd(), FILE), rows);
    assert.deepEqual(parseCsv(text + '\n\n', FILE), rows);
  });

  it('refuses a record with the wrong field count', () => {
    const { lines, header } = sample();
    lines[header + 1] = lines[header + 1].replace(/,[^,]*$/, '');
    throwsAt(lines.join('\n'), header + 2, new RegExp(`expected ${COLUMNS.length} fields, found ${COLUMNS.length - 1}`));
  });

  it('refuses a non-numeric counter and an empty one', () => {
    const a = withField(2, 'faults', 'lots');
    throwsAt(a.text, a.line, /faults: expected a number, got 'lots'/);
    const b = withField(1, 'clflush_lines', '');
    throwsAt(b.text, b.line, /clflush_lines: expected a number, got ''/);
    const c = withField(1, 'ops', 'Infinity');
    throwsAt(c.text, c.line, /ops: expected a number/);
    const d = withField(1, 'threads', '0x10');
    throwsAt(d.text, d.line, /threads: expected a number/);
  });

  it('accepts empty time columns as NaN', () => {
    const { text } = withField(1, 'sim_ns_per_op_p99', '');
    assert.ok(Number.isNaN(parseCsv(text, FILE)[0].sim_ns_per_op_p99));
  });

  it('refuses an unknown kernel or swap value', () => {
    const { text, line } = withField(2, 'kernel', 'vanilla');
    throwsAt(text, line, /kernel: expected 'patched' or 'unpatched', got 'vanilla'/);
    const b = withField(1, 'swap', 'zram');
    throwsAt(b.text, b.line, /swap: expected one of none, plain, encrypted, got 'zram'/);
  });

  it('refuses a header with a missing or unexpected column', () => {
    const { lines, header } = sample();
    const h = lines[header - 1];
    const missing = [...lines];
    missing[header - 1] = h.replace(',sim_ns_per_op_p99', '');
    throwsAt(missing.join('\n'), header, /header does not match schema 4: missing sim_ns_per_op_p99/);
    const renamed = [...lines];
    renamed[header - 1] = h.replace(',faults,', ',fault_count,');
    throwsAt(renamed.join('\n'), header, /missing faults; unexpected 'fault_count'/);
    const swapped = [...lines];
    swapped[header - 1] = h.replace('host,cpu_model', 'cpu_model,host');
    throwsAt(swapped.join('\n'), header, /columns out of order/);
  });

  it('refuses an old schema version, with advice', () => {
    const { text, line } = withField(1, 'schema_version', '0');
    throwsAt(text, line, /^results\/x\.csv:\d+: schema_version 0 is not supported \(this memcrypt-bench reads schema 4\); re-record it with 'node dist\/bench\/cli\.js run --out FILE\.csv'$/);
    // the version just before: files recorded before the guest-memory counters (results/baseline.csv among them)
    const three = withField(1, 'schema_version', '3');
    throwsAt(three.text, three.line, /^results\/x\.csv:\d+: schema_version 3 is not supported \(this memcrypt-bench reads schema 4\); re-record it with/);
  });

  it('refuses a schema 1 file (comment lines before the header) in one line, saying what to do', () => {
    throwsAt('# memcrypt-bench results\n# run_id: x\nschema_version,run_id\n1,x\n', 1, /comment lines before the header: a schema 1 file.*re-record it/);
  });

  it('refuses an old schema version even when its header differs', () => {
    const { lines, header } = sample();
    lines[header - 1] = lines[header - 1].replace(',sim_ns_per_op_p99', ',old_col');
    lines[header] = lines[header].replace(/^4,/, '0,');
    throwsAt(lines.join('\n'), header + 1, /schema_version 0 is not supported/);
  });

  it('refuses a schema 3 file, whose header lacks the guest-memory columns, for its version, not its header', () => {
    const NEW_IN_4 = new Set<string>([
      'model_vm_exit_ns_per_op', 'model_conversion_ns_per_op', 'model_pin_page_ns_per_op',
      'stage2_faults', 'vm_exits', 'gup_failures', 'conversions', 'bounce_copies', 'bounce_bytes', 'io_shared_bytes', 'procs', 'procs_encrypted',
    ]);
    const keep = COLUMNS.map((c) => !NEW_IN_4.has(c));
    const cut = (l: string) => l.split(',').filter((_, i) => keep[i]).join(',');
    const { lines, header } = sample();
    const old = [cut(lines[header - 1]), cut(lines[header]).replace(/^4,/, '3,')];
    assert.equal(old[0].split(',').length, COLUMNS.length - NEW_IN_4.size); // every new column was there to cut
    throwsAt(old.join('\n'), header + 1, /schema_version 3 is not supported \(this memcrypt-bench reads schema 4\); re-record it/);
  });

  it('refuses a newer schema version', () => {
    const { text, line } = withField(2, 'schema_version', '5');
    throwsAt(text, line, /schema_version 5 is not supported .*written by a newer memcrypt-bench/);
  });

  it('refuses a duplicated cell, naming both lines', () => {
    const { lines, header } = sample();
    lines.splice(header + 2, 0, lines[header]);
    throwsAt(lines.join('\n'), header + 3, new RegExp(`duplicate cell ${cellKey(mkRow()).replace(/\|/g, '\\|')} \\(also on line ${header + 1}\\)`));
  });

  it('counts the lines inside quoted fields', () => {
    const text = formatCsv([mkRow({ host: 'a\nb\nc' }), mkRow({ interface: 'dev-mktme' })]);
    const lines = text.split('\n');
    const header = lines.findIndex((l) => l.startsWith('schema_version,')) + 1;
    // row 1 takes 3 physical lines, so row 2 is on header + 4
    const bad = text.replace(',dev-mktme,patched,', ',dev-mktme,vanilla,');
    throwsAt(bad, header + 4, /kernel/);
    throwsAt(bad.replace(/\n/g, '\r\n'), header + 4, /kernel/);
  });

  it('refuses broken quoting', () => {
    const { lines, header } = sample();
    const open = [...lines];
    open[header] = open[header].replace(',testhost,', ',"testhost,');
    throwsAt(open.join('\n'), header + 2, /not a valid CSV: Quote Not Closed/);
    const stray = [...lines];
    stray[header + 1] = stray[header + 1].replace(',testhost,', ',test"host,');
    throwsAt(stray.join('\n'), header + 2, /not a valid CSV: Invalid Opening Quote/);
    const after = [...lines];
    after[header + 1] = after[header + 1].replace(',testhost,', ',"test"host,');
    throwsAt(after.join('\n'), header + 2, /not a valid CSV: Invalid Closing Quote/);
  });

  it('refuses an empty file', () => {
    throwsAt('', 0, /empty file/);
    throwsAt('\r\n  \n', 0, /empty file/);
  });

  it('reads a header with no rows', () => {
    assert.deepEqual(parseCsv(formatCsv([]), FILE), []);
  });

  it('refuses values of the wrong type when writing', () => {
    const r = { ...mkRow(), faults: undefined } as unknown as Row;
    assert.throws(() => formatCsv([r]), /rows\[0\]\.faults: expected a number/);
  });
});

describe('formatMeta / parseMeta', () => {
  it('round-trips the run metadata, cost table included', () => {
    const meta = mkMeta();
    assert.deepEqual(parseMeta(formatMeta(meta), 'm.json'), meta);
  });

  it('refuses missing fields and a broken cost table, in one line', () => {
    const bad = (over: Record<string, unknown>, re: RegExp) =>
      assert.throws(
        () => parseMeta(JSON.stringify({ ...mkMeta(), ...over }), 'm.json'),
        (e: unknown) => e instanceof InputError && !e.message.includes('\n') && re.test(e.message),
      );
    bad({ git_sha: 7 }, /^m\.json: git_sha: expected a string$/);
    bad({ nproc: 'two' }, /nproc: expected a number/);
    bad({ load_avg_end: 'high' }, /load_avg_end: expected an array of numbers/);
    bad({ costs: { ...mkMeta().costs, fault: { ns: -1, provenance: 'measured', source: 'x' } } }, /costs\.fault\.ns: expected a number >= 0/);
    bad({ schema_version: 1 }, /schema_version 1 is not supported/);
  });
});

describe('formatSamples / parseSamples', () => {
  const cells = [
    { key: cellKey(mkRow()), samples: [1.5, 2, 3e6] },
    { key: cellKey(mkRow({ threads: 2 })), samples: [] },
  ];

  it('round-trips', () => {
    const text = formatSamples('run-1', cells);
    assert.deepEqual(parseSamples(text, 's.json'), { runId: 'run-1', cells });
    assert.deepEqual(JSON.parse(text), { schema_version: 4, run_id: 'run-1', cells });
    assert.deepEqual(parseSamples(formatSamples('run-1', []), 's.json').cells, []);
  });

  it('refuses non-finite samples when writing', () => {
    assert.throws(() => formatSamples('run-1', [{ key: 'k', samples: [1, NaN] }]), /samples\[1\] is NaN/);
  });

  const refuses = (text: string, line: number, re: RegExp) =>
    assert.throws(
      () => parseSamples(text, 's.json'),
      (e: unknown) => e instanceof InputError && e.line === line && e.message.startsWith(line ? `s.json:${line}: ` : 's.json: ') && re.test(e.message),
    );

  it('refuses bad files', () => {
    refuses('', 0, /empty file/);
    refuses('{\n  "schema_version": 4\n  "run_id": "x"\n}', 3, /not valid JSON/); // the missing ',' is noticed at "run_id"
    refuses('[]', 0, /expected a JSON object/);
    refuses('{"run_id": "x", "cells": []}', 0, /schema_version is missing/);
    refuses('{"schema_version": 1, "run_id": "x", "cells": []}', 0, /schema_version 1 is not supported.*re-record it/);
    refuses('{"schema_version": 9, "run_id": "x", "cells": []}', 0, /newer memcrypt-bench/);
    refuses('{"schema_version": 4, "run_id": "x"}', 0, /cells: expected an array/);
    refuses('{"schema_version": 4, "run_id": "x", "cells": [{"key": "k"}]}', 0, /cells\[0\]: expected/);
    refuses('{"schema_version": 4, "run_id": "x", "cells": [{"key": "k", "samples": [1, "2"]}]}', 0, /cells\[0\] \(k\): samples\[1\]: expected a finite number, got "2"/);
    refuses('{"schema_version": 4, "run_id": "x", "cells": [{"key": "k", "samples": []}, {"key": "k", "samples": []}]}', 0, /cells\[1\]: duplicate key k/);
  });
});

describe('writeFileAtomic / readInput', () => {
  const root = mkdtempSync(join(tmpdir(), 'memcrypt-io-'));
  after(() => rmSync(root, { recursive: true, force: true }));

  it('creates the directory, replaces the content, leaves no temp file', () => {
    const dir = join(root, 'a', 'b');
    const p = join(dir, 'out.csv');
    writeFileAtomic(p, 'one\n');
    assert.equal(readFileSync(p, 'utf8'), 'one\n');
    writeFileAtomic(p, 'two ✓\n');
    assert.equal(readFileSync(p, 'utf8'), 'two ✓\n');
    assert.deepEqual(readdirSync(dir), ['out.csv']);
  });

  it('leaves the target alone when it cannot be replaced (target is a directory)', () => {
    const dir = join(root, 'c');
    const p = join(dir, 'out.csv');
    mkdirSync(p, { recursive: true });
    writeFileSync(join(p, 'keep'), 'x');
    assert.throws(() => writeFileAtomic(p, 'new'), (e: NodeJS.ErrnoException) => e.code === 'EISDIR' || e.code === 'ENOTEMPTY' || e.code === 'EEXIST');
    assert.equal(readFileSync(join(p, 'keep'), 'utf8'), 'x');
    assert.deepEqual(readdirSync(dir), ['out.csv']);
  });

  it('leaves the target alone when the parent cannot be created', () => {
    const f = join(root, 'file');
    writeFileSync(f, 'x');
    assert.throws(() => writeFileAtomic(join(f, 'out.csv'), 'new'), (e: NodeJS.ErrnoException) => e.code === 'ENOTDIR' || e.code === 'EEXIST');
    assert.equal(readFileSync(f, 'utf8'), 'x');
  });

  // The data write failing half way (disk full) or the fsync failing (I/O
  // error): node:fs is mocked and the ESM bindings io.ts imported resynced.
  for (const [fn, code] of [
    ['writeSync', 'ENOSPC'],
    ['fsyncSync', 'EIO'],
  ] as const) {
    it(`keeps the old content when ${fn} fails (${code})`, () => {
      const dir = join(root, fn);
      const p = join(dir, 'out.csv');
      writeFileAtomic(p, 'old\n');
      const real = fs.writeSync;
      let calls = 0;
      mock.method(fs, fn, (...args: unknown[]) => {
        // writeSync: the first chunk lands, then the disk is full
        if (fn === 'writeSync' && calls++ === 0) return (real as (...a: unknown[]) => number)(args[0], args[1], args[2], 3);
        throw Object.assign(new Error(`${code}: ${fn}`), { code });
      });
      syncBuiltinESMExports();
      try {
        assert.throws(() => writeFileAtomic(p, 'new content\n'), { code });
      } finally {
        mock.restoreAll();
        syncBuiltinESMExports();
      }
      assert.equal(readFileSync(p, 'utf8'), 'old\n');
      assert.deepEqual(readdirSync(dir), ['out.csv']);
    });
  }

  it('readInput: one-line InputErrors for missing files and directories', () => {
    const missing = join(root, 'nope.csv');
    assert.throws(() => readInput(missing), (e: unknown) => e instanceof InputError && e.line === 0 && e.message === `${missing}: cannot read: ENOENT (no such file or directory)`);
    assert.throws(() => readInput(root), (e: unknown) => e instanceof InputError && e.message.startsWith(`${root}: cannot read: EISDIR`));
    const p = join(root, 'ok.txt');
    writeFileSync(p, 'hi');
    assert.equal(readInput(p), 'hi');
    assert.equal(existsSync(p), true);
  });

  it('InputError: file:line: message, on one line', () => {
    const e = new InputError('f.csv', 3, 'bad\nthing');
    assert.equal(e.message, 'f.csv:3: bad thing');
    assert.equal(new InputError('f.csv', 0, 'x').message, 'f.csv: x');
    assert.equal(e.name, 'InputError');
    assert.ok(e instanceof Error);
  });
});
