// The tracker exports: nothing vanishes (every cell keeps an outcome code,
// an untimed cell keeps its modelled cost), the codes never move, the BMF
// shape Bencher takes, byte-identical output whatever the row order, and the
// `export` command on a CSV written by formatCsv.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { formatCsv, parseCsv } from '../../bench/csv.js';
import { EXPORTS, OUTCOME_CODES, cellName, exportBmf, exportFile, exportGab, exportPath, outcomeCode, type Bmf, type GabEntry } from '../../bench/export.js';
import { InputError } from '../../bench/io.js';
import { COUNTER_COLUMNS, type Row } from '../../bench/schema.js';
import { OUTCOMES } from '../../interfaces/conformance.js';
import { mkRow } from './fixtures.js';

const CLI = fileURLToPath(new URL('../../bench/cli.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'memcrypt-export-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const UNTIMED = { sim_ns_per_op_median: NaN, sim_ns_per_op_p99: NaN, sim_rme_pct: NaN, sim_rounds: 0 };
const UNMODELLED = { modelled_ns_per_op: NaN, model_over_plain_ns_per_op: NaN };

/** A small result set as a run writes it (through the CSV, so NaN is what an empty field reads back as). */
const ROWS: Row[] = parseCsv(
  formatCsv([
    mkRow({ interface: 'encrypt-mprotect' }),
    mkRow({ interface: 'plain-mmap', outcome: 'plaintext' }),
    // the case the export exists for: a cell that became unsupported, neither timed nor modelled
    mkRow({ interface: 'dev-mktme', outcome: 'unsupported', errno: 'ENOSYS', ...UNTIMED, ...UNMODELLED }),
    // ran its scenario (modelled) but was not timed
    mkRow({ interface: 'madvise-encrypt', outcome: 'data-loss', errno: 'EIO', ...UNTIMED }),
    mkRow({ interface: 'memfd-secret', workload: 'swap', swap: 'plain', outcome: 'leaked', leak_medium: 'swap', leak_bytes: 16384, swap_out: 8, threads: 2 }),
  ]),
  'rows.csv',
);
const byInterface = (i: string): Row => ROWS.find((r) => r.interface === i)!;

describe('exportGab: github-action-benchmark customSmallerIsBetter', () => {
  const gab = JSON.parse(exportGab(ROWS)) as GabEntry[];
  const names = new Set(gab.map((e) => e.name));

  it('gives every cell an outcome entry with its code, and errno in extra', () => {
    for (const r of ROWS) {
      const e = gab.find((x) => x.name === `${cellName(r)} outcome`);
      assert.ok(e, cellName(r));
      assert.equal(e.unit, 'code');
      assert.equal(e.value, OUTCOME_CODES[r.outcome as keyof typeof OUTCOME_CODES]);
      assert.match(e.extra!, new RegExp(`^outcome ${r.outcome}${r.errno ? '/' + r.errno : ''}[ ;]`));
    }
    assert.equal(gab.filter((e) => e.name.endsWith(' outcome')).length, ROWS.length);
  });

  it('keeps an unsupported cell (outcome only) and an untimed modelled cell (model and outcome)', () => {
    const u = cellName(byInterface('dev-mktme'));
    assert.deepEqual(gab.filter((e) => e.name.startsWith(u)).map((e) => e.name), [`${u} outcome`]);
    const d = byInterface('madvise-encrypt');
    assert.deepEqual(gab.filter((e) => e.name.startsWith(cellName(d))).map((e) => e.name), [`${cellName(d)} model`, `${cellName(d)} outcome`]);
    assert.equal(gab.find((e) => e.name === `${cellName(d)} model`)!.value, d.modelled_ns_per_op);
  });

  it('a timed cell has sim (value, range as today), model and outcome, in that order', () => {
    const r = byInterface('encrypt-mprotect');
    const mine = gab.filter((e) => e.name.startsWith(cellName(r)));
    assert.deepEqual(mine.map((e) => [e.name.slice(cellName(r).length), e.unit]), [[' sim', 'ns/op'], [' model', 'ns/op'], [' outcome', 'code']]);
    assert.equal(mine[0].value, 1234.5);
    assert.equal(mine[0].range, '+-1.3%');
    assert.match(mine[1].extra!, /cost table: sourced defaults\); 123\.5 ns\/op over plain-mmap; largest terms \w+ \d+%, \w+ \d+%; outcome encrypted$/);
    assert.ok(names.size === gab.length, 'names are unique');
    assert.ok(gab.every((e) => Number.isFinite(e.value)));
  });

  it('leaks are named in extra', () => {
    assert.match(gab.find((e) => e.name === `${cellName(byInterface('memfd-secret'))} outcome`)!.extra!, /^outcome leaked \(swap, 16384 bytes\)/);
  });
});

describe('outcome codes', () => {
  it('are stable: the published table, one distinct code per outcome of the vocabulary', () => {
    // changing this table breaks every chart already recorded: add, never renumber
    assert.deepEqual(OUTCOME_CODES, { encrypted: 0, plaintext: 1, secret: 2, 'plaintext-fallback': 3, unsupported: 4, crashed: 5, 'data-loss': 6, leaked: 7 });
    assert.deepEqual(Object.keys(OUTCOME_CODES).sort(), [...OUTCOMES].sort());
    assert.equal(new Set(Object.values(OUTCOME_CODES)).size, OUTCOMES.length);
  });

  it('refuse a word outside the vocabulary rather than chart it as a code', () => {
    assert.throws(() => outcomeCode('toString'), RangeError);
    assert.throws(() => exportBmf([mkRow({ outcome: 'melted' })]), /outcome 'melted' has no export code/);
  });
});

describe('exportBmf: Bencher Metric Format', () => {
  const bmf = JSON.parse(exportBmf(ROWS)) as Bmf;

  it('has one benchmark per cell, every metric numeric, lower <= value <= upper', () => {
    assert.deepEqual(Object.keys(bmf).sort(), ROWS.map(cellName).sort());
    for (const [name, measures] of Object.entries(bmf))
      for (const [slug, m] of Object.entries(measures)) {
        assert.match(slug, /^[a-z][a-z0-9-]{0,63}$/, `${name} ${slug}`);
        for (const k of Object.keys(m)) assert.ok(['value', 'lower_value', 'upper_value'].includes(k), `${name} ${slug}.${k}`);
        for (const v of Object.values(m)) assert.ok(typeof v === 'number' && Number.isFinite(v), `${name} ${slug}`);
        assert.ok((m.lower_value ?? m.value) <= m.value && m.value <= (m.upper_value ?? m.value), `${name} ${slug}`);
      }
  });

  it('measures: latency if timed, modelled-cost if modelled, outcome-code, leak-bytes and every counter always', () => {
    for (const r of ROWS) {
      const m = bmf[cellName(r)];
      const timed = r.sim_rounds > 0;
      const modelled = Number.isFinite(r.modelled_ns_per_op);
      assert.deepEqual(Object.keys(m), [
        ...(timed ? ['latency'] : []),
        ...(modelled ? ['modelled-cost'] : []),
        'outcome-code',
        'leak-bytes',
        ...COUNTER_COLUMNS.map((c) => c.replace(/_/g, '-')),
      ]);
      assert.equal(m['outcome-code'].value, outcomeCode(r.outcome));
      for (const c of COUNTER_COLUMNS) assert.equal(m[c.replace(/_/g, '-')].value, r[c]);
      if (modelled) assert.equal(m['modelled-cost'].value, r.modelled_ns_per_op);
    }
    const t = bmf[cellName(byInterface('encrypt-mprotect'))].latency;
    // 1234.5 +- 1.25 %
    assert.deepEqual(t, { value: 1234.5, lower_value: 1219.069, upper_value: 1249.931 });
    assert.equal(bmf[cellName(byInterface('memfd-secret'))]['leak-bytes'].value, 16384);
    assert.equal(bmf[cellName(byInterface('memfd-secret'))]['swap-out'].value, 8);
  });

  it('both exports are byte-identical whatever the order of the rows, and end in a newline', () => {
    const rev = [...ROWS].reverse();
    for (const f of [exportBmf, exportGab]) {
      assert.equal(f(rev), f(ROWS));
      assert.ok(f(ROWS).endsWith('}\n') || f(ROWS).endsWith(']\n'));
    }
  });
});

describe('memcrypt-bench export FILE.csv --to ...', () => {
  const csv = join(dir, 'r1.csv');
  writeFileSync(csv, formatCsv(ROWS));
  const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, 'export', ...args], { encoding: 'utf8', timeout: 30_000 });

  it('writes beside the CSV by default and prints the path', () => {
    const r = cli(csv, '--to', 'bencher');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${join(dir, 'r1.bmf.json')}\n`);
    assert.equal(readFileSync(join(dir, 'r1.bmf.json'), 'utf8'), exportBmf(ROWS));
  });

  it('-o names the output (in process: the same function the command calls)', () => {
    const out = join(dir, 'sub', 'gab.json');
    assert.equal(exportFile(csv, 'github-action-benchmark', out), out);
    assert.equal(readFileSync(out, 'utf8'), exportGab(ROWS));
    assert.equal(exportPath(csv, 'github-action-benchmark'), join(dir, 'r1.github-action-benchmark.json'));
    assert.deepEqual(Object.keys(EXPORTS), ['github-action-benchmark', 'bencher']);
  });

  it('a bad file is an InputError that names it, and writes nothing', () => {
    const bad = join(dir, 'bad.csv');
    writeFileSync(bad, formatCsv([mkRow({ outcome: 'melted' })]));
    assert.throws(() => exportFile(bad, 'bencher'), (e: unknown) => e instanceof InputError && /^.*bad\.csv: outcome 'melted'/.test(e.message));
    assert.throws(() => exportFile(join(dir, 'nope.csv'), 'bencher'), (e: unknown) => e instanceof InputError && /nope\.csv: cannot read: ENOENT/.test(e.message));
  });

  it('a missing file and a bad --to: exit 2, one line', () => {
    for (const [args, re] of [
      [[join(dir, 'nope.csv'), '--to', 'bencher'], /nope\.csv: cannot read: ENOENT/],
      [[csv, '--to', 'codspeed'], /--to|Invalid values/],
    ] as const) {
      const r = cli(...args);
      assert.equal(r.status, 2, r.stdout + r.stderr);
      assert.equal(r.stdout, '');
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], /^memcrypt-bench: /);
      assert.match(lines[0], re);
    }
  });
});
