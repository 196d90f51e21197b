// The command line as a user meets it: results files, the report, the
// one-line errors, and repeatable counters across two runs.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseCsv, parseSamples } from '../../bench/csv.js';
import { COUNTER_COLUMNS, cellKey } from '../../bench/schema.js';

const CLI = fileURLToPath(new URL('../../bench/cli.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'memcrypt-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120_000 });
const SMALL = ['--workload', 'fault,enosys-fallback,migration', '--threads', '1', '--time', '1', '--samples', '2', '--warmup', '1'];

describe('memcrypt-bench run', () => {
  it('writes CSV, samples and report; the report fits 72 columns', () => {
    const out = join(dir, 'a.csv');
    const r = cli('run', ...SMALL, '--out', out);
    assert.equal(r.status, 0, r.stderr);
    const { meta, rows } = parseCsv(readFileSync(out, 'utf8'), out);
    assert.equal(rows.length, 4 * (1 + 2 + 1)); // enosys-fallback runs on both kernels
    assert.match(meta.command, /run --interface encrypt-mprotect,dev-mktme,madvise-encrypt,memfd-secret/);
    assert.equal(meta.seed, '1');
    for (const row of rows) assert.notEqual(row.outcome, 'data-loss');
    const timed = rows.filter((row) => row.samples > 0);
    assert.ok(timed.length > 0 && timed.every((row) => row.wall_ns_median > 0 && row.samples >= 2));
    const samples = parseSamples(readFileSync(join(dir, 'a.samples.json'), 'utf8'), 'a.samples.json');
    assert.deepEqual(
      samples.map((s) => s.key),
      rows.map(cellKey),
    );
    const report = readFileSync(join(dir, 'a.txt'), 'utf8');
    assert.equal(r.stdout, report);
    for (const line of report.split('\n')) assert.ok([...line].length <= 72, `too wide: ${line}`);
    assert.match(report, /Capabilities on mktme hardware/);
    assert.match(report, /Reproduce:/);
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.includes('.tmp')),
      [],
    );
    const again = cli('report', out);
    assert.equal(again.status, 0, again.stderr);
    assert.equal(again.stdout, report);
  });

  it('counts the same events in single-thread cells on a second run with the same seed', () => {
    const a = join(dir, 'd1.csv');
    const b = join(dir, 'd2.csv');
    for (const out of [a, b]) assert.equal(cli('run', ...SMALL, '--seed', '5', '--format', 'none', '--out', out).status, 0);
    const ra = parseCsv(readFileSync(a, 'utf8'), a).rows;
    const rb = parseCsv(readFileSync(b, 'utf8'), b).rows;
    assert.equal(ra.length, rb.length);
    for (let i = 0; i < ra.length; i++) {
      assert.equal(cellKey(rb[i]), cellKey(ra[i]));
      assert.equal(rb[i].outcome, ra[i].outcome);
      for (const c of COUNTER_COLUMNS) assert.equal(rb[i][c], ra[i][c], `${cellKey(ra[i])} ${c}`);
      assert.equal(rb[i].modelled_ns_per_op, ra[i].modelled_ns_per_op);
    }
  });

  it('answers bad arguments and bad files with one line and a non-zero exit', () => {
    const cases: [string[], RegExp][] = [
      [['run', '--interface', 'sys-encrypt'], /--interface: interface: unknown design 'sys-encrypt'/],
      [['run', '--hardware', 'mktme2'], /--hardware: hardware: unknown profile 'mktme2'/],
      [['run', '--threads', '1,x'], /--threads: --threads: expected an integer/],
      [['run', '--time', '-5'], /--time: expected an integer/],
      [['run', '--format', 'xml'], /Invalid values/],
      [['frobnicate'], /Unknown argument: frobnicate/],
      [['report', join(dir, 'missing.csv')], /missing\.csv: cannot read: ENOENT/],
    ];
    const bad = join(dir, 'bad.csv');
    writeFileSync(bad, '# memcrypt-bench results\nschema_version,run_id\n1,x\n');
    cases.push([['report', bad], /bad\.csv:2: /]);
    for (const [args, re] of cases) {
      const r = cli(...args);
      assert.notEqual(r.status, 0, args.join(' '));
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(lines[0], re);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
    }
    assert.equal(existsSync(join(dir, 'x.csv')), false);
  });
});
