// phases: a timed round taken apart. The parts from the kernel's sums, the
// table (72 columns, the 1-CPU row as the reference of the others), and the
// command on real cells.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatPhases, groupByCell, measureGroup, medianParts, roundParts } from '../../bench/phases.js';
import { plan } from '../../bench/run.js';

const CLI = fileURLToPath(new URL('../../bench/cli.js', import.meta.url));

describe('phases', () => {
  it('splits a round into the kernel\'s own part, the slowest CPU\'s work and the wait beyond it', () => {
    const before = { waitMs: 10, slowestMs: 6, workMs: 11 };
    const after = { waitMs: 10.25, slowestMs: 6.125, workMs: 11.25 };
    assert.deepEqual(roundParts(0.5, before, after), { round: 0.5, kernel: 0.25, slowest: 0.125, all: 0.25, extra: 0.125 });
  });

  it('takes each part\'s own median', () => {
    const r = (round: number, kernel: number) => ({ round, kernel, slowest: round - kernel, all: 2 * (round - kernel), extra: 0 });
    assert.deepEqual(medianParts([r(3, 1), r(1, 0), r(2, 2)]), { round: 2, kernel: 1, slowest: 1, all: 2, extra: 0 });
  });

  it('groups a plan by cell, CPU counts in order, and prints each against its 1-CPU row in 72 columns', () => {
    const cells = plan({ interface: ['plain-mmap', 'madvise-encrypt'], hardware: ['mktme'], workload: ['fault'], threads: ['2', '1'], swap: ['plain'], backend: ['openssl'] });
    const groups = groupByCell(cells);
    assert.deepEqual(
      groups.map((g) => [g.name, g.cells.map((c) => c.threads)]),
      [
        ['fault plain-mmap (patched, mktme, openssl)', [1, 2]],
        ['fault madvise-encrypt (patched, mktme, openssl)', [1, 2]],
      ],
    );
    const text = formatPhases([
      {
        name: groups[0].name,
        rows: [
          { threads: 1, rounds: 100, ops: 64, round: 0.3, kernel: 0.05, slowest: 0.24, all: 0.24, extra: 0.01 },
          { threads: 2, rounds: 150, ops: 64, round: 0.2, kernel: 0.05, slowest: 0.13, all: 0.25, extra: 0.02 },
          { threads: 4, why: 'not timed (unsupported)' },
        ],
      },
      { name: groups[1].name, rows: [{ threads: 2, rounds: 9, ops: 64, round: 0.2, kernel: 0.05, slowest: 0.13, all: 0.25, extra: 0.02 }] },
    ]);
    for (const l of text.split('\n')) assert.ok(l.length <= 72, `over 72 columns: ${l}`);
    const rows = text.split('\n').filter((l) => /^ +[0-9]+ /.test(l));
    assert.equal(rows.length, 4, text);
    assert.match(rows[0], /^ +1 +100 .* 1\.00 +0\.97$/); // (0.05 + 0.24) / 0.3
    assert.match(rows[1], /^ +2 +150 .* 0\.67 +0\.57$/); // 0.2 / 0.3; (0.05 + 0.24 / 2) / 0.3
    assert.match(rows[2], /^ +4 not timed \(unsupported\)$/);
    assert.match(rows[3], /^ +2 +9 .* - +-$/); // no 1-CPU row to compare with
    assert.match(text, /300 us +50\.0 us +240 us +240 us +10\.0 us/);
  });

  it('with the host\'s scaling at a CPU count, each row of that count gets the bound at it', () => {
    const rows = [
      { threads: 1, rounds: 100, ops: 64, round: 0.3, kernel: 0.05, slowest: 0.24, all: 0.24, extra: 0.01 },
      { threads: 2, rounds: 150, ops: 64, round: 0.2, kernel: 0.05, slowest: 0.13, all: 0.25, extra: 0.02 },
      { threads: 3, rounds: 150, ops: 64, round: 0.2, kernel: 0.05, slowest: 0.13, all: 0.25, extra: 0.02 },
    ];
    const text = formatPhases([{ name: 'c', rows }], new Map([[2, 1.5], [1, 1]]));
    for (const l of text.split('\n')) assert.ok(l.length <= 72, `over 72 columns: ${l}`);
    const lines = text.split('\n');
    const at = lines.findIndex((l) => /^ +2 +150 /.test(l));
    // (0.05 + 0.24 / 1.5) / 0.3
    assert.equal(lines[at + 1], "       the host did 1.50x one thread's work with 2: bound 0.70 at that");
    assert.match(lines[at + 2], /^ +3 +150 /, 'no scaling measured for 3: no line');
    assert.equal(lines.filter((l) => /the host did/.test(l)).length, 1, 'none for the 1-CPU row either');
    // no 1-CPU row: nothing to bound
    assert.doesNotMatch(formatPhases([{ name: 'c', rows: [rows[1]] }], new Map([[2, 1.5]])), /the host did/);
  });

  it('times a cell\'s CPU counts in turns: every count its rounds, each against the 1-CPU turn beside it; a count that cannot be timed says why', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'memcrypt-phases-test-'));
    try {
      const o = { seed: 1, timeMs: 30, warmupMs: 0, tmpdir: dir, windowMs: 5 };
      const [g] = groupByCell(plan({ interface: ['plain-mmap'], hardware: ['mktme'], workload: ['fault'], threads: ['1', '2'], swap: ['plain'], backend: ['openssl'] }));
      const rows = await measureGroup(g.cells, o);
      assert.deepEqual(rows.map((r) => r.threads), [1, 2]);
      for (const r of rows) {
        assert.ok('rounds' in r && r.rounds >= 2 && r.ops === 64 && r.round > 0, JSON.stringify(r));
        assert.ok(r.vs1 !== undefined && r.vs1 > 0, JSON.stringify(r));
      }
      assert.equal('rounds' in rows[0] && rows[0].vs1, 1, 'the 1-CPU row against itself');
      // no 1-CPU cell: nothing to pair with
      const [two] = await measureGroup([g.cells[1]], o);
      assert.ok('rounds' in two && two.vs1 === undefined, JSON.stringify(two));
      // a design the hardware cannot run is not timed; the others are
      const [k] = groupByCell(plan({ interface: ['memfd-secret'], hardware: ['mktme'], workload: ['qemu-nvdimm'], threads: ['1'], swap: ['plain'], backend: ['openssl'] }));
      const skipped = await measureGroup(k.cells, o);
      assert.ok(skipped.every((r) => 'why' in r && /^not timed \(/.test(r.why)), JSON.stringify(skipped));
      assert.deepEqual(readdirSync(dir), [], 'its scratch folders are gone');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('times real cells at 1 and 2 CPUs from the command line, and refuses a bad argument with one line', () => {
    const r = spawnSync(process.execPath, [CLI, 'phases', '-w', 'fault', '-i', 'plain-mmap', '-t', '1,2', '--time', '30', '--warmup', '0', '--backend', 'openssl'], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr);
    const rows = r.stdout.split('\n').filter((l) => /^ +[12] +[0-9]+ /.test(l));
    assert.equal(rows.length, 2, r.stdout);
    assert.match(rows[0], / 1\.00 +[0-9.]+$/);
    assert.match(rows[1], / [0-9]+\.[0-9]{2} +[0-9.]+$/);
    const bad = spawnSync(process.execPath, [CLI, 'phases', '-w', 'fault', '--time', '0'], { encoding: 'utf8' });
    assert.equal(bad.status, 2);
    assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
    assert.match(bad.stderr, /time/);
  });
});
