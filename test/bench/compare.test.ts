// Regression tracking: the statistics, compare's verdicts and exit codes,
// and its one-line errors for malformed or mismatched input.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { compareRuns, loadRun } from '../../bench/compare.js';
import { formatCsv, formatMeta, formatSamples } from '../../bench/csv.js';
import { COUNTER_COLUMNS, SCHEMA_VERSION, cellKey, type CellSamples, type Row } from '../../bench/schema.js';
import { mkMeta, mkRow } from './fixtures.js';
import { batchMedians } from '../../bench/runner.js';
import { geomean, holm, mannWhitney } from '../../bench/stats.js';
import { defaultBackend } from '../../hardware/xts.js';

const CLI = fileURLToPath(new URL('../../bench/cli.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'memcrypt-cmp-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120_000 });

const meta = mkMeta({ run_id: 'r1', seed: 1 });

function row(workload: string, design: string, threads: number, median: number): Row {
  const r = mkRow({ run_id: 'r1', interface: design, workload, threads, ops: 64, sim_ns_per_op_median: median, sim_rounds: 40 });
  for (const c of COUNTER_COLUMNS) r[c] = 10;
  return r;
}

/** A deterministic spread of samples around m. */
function spread(m: number, n = 40, seed = 1): number[] {
  let x = seed;
  return Array.from({ length: n }, () => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return m * (0.95 + (x / 2147483648) * 0.1);
  });
}

function write(name: string, rows: Row[], samples: CellSamples[]): string {
  const csv = join(dir, `${name}.csv`);
  writeFileSync(csv, formatCsv(rows));
  writeFileSync(join(dir, `${name}.meta.json`), formatMeta(meta));
  writeFileSync(join(dir, `${name}.samples.json`), formatSamples(meta.run_id, samples));
  return csv;
}

const CELLS: [string, string, number, number][] = [
  ['fault', 'encrypt-mprotect', 1, 90_000],
  ['fault', 'dev-mktme', 1, 80_000],
  ['swap', 'encrypt-mprotect', 1, 2_000_000],
  ['migration', 'madvise-encrypt', 2, 60_000],
];

function run(name: string, tweak: (r: Row, s: number[], i: number) => number[] = (_r, s) => s): string {
  const rows = CELLS.map(([w, d, t, m]) => row(w, d, t, m));
  const samples = rows.map((r, i) => ({ key: cellKey(r), samples: tweak(r, spread(CELLS[i][3], 40, i + 1), i) }));
  return write(name, rows, samples);
}

describe('statistics', () => {
  it('Mann-Whitney U: exact for small untied samples, normal approximation otherwise', () => {
    const { u, p } = mannWhitney([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]);
    assert.equal(u, 0);
    assert.ok(Math.abs(p - 2 / 252) < 1e-12); // 2 of C(10,5) orderings are this extreme
    assert.equal(mannWhitney([1, 2, 3], [1, 2, 3]).p, 1); // all tied: no evidence at all
    const big = mannWhitney(spread(100, 60, 1), spread(120, 60, 2));
    assert.ok(big.p < 1e-6);
    const same = mannWhitney(spread(100, 60, 1), spread(100, 60, 2));
    assert.ok(same.p > 0.05);
  });

  it('Holm adjusts step-down and keeps order; geomean; batch medians in time order', () => {
    const adj = holm([0.01, 0.04, 0.03, NaN]);
    assert.deepEqual(adj.slice(0, 3).map((x) => Math.round(x * 1e9) / 1e9), [0.03, 0.06, 0.06]);
    assert.ok(Number.isNaN(adj[3]));
    assert.ok(Math.abs(geomean([2, 8]) - 4) < 1e-12);
    // 100 rounds in 4 batches of 25: the median of each contiguous run
    assert.deepEqual(batchMedians(Array.from({ length: 100 }, (_, i) => i), 4), [12, 37, 62, 87]);
    assert.deepEqual(batchMedians([5, 1, 9], 20), [5, 1, 9]); // fewer rounds than batches
    assert.deepEqual(batchMedians([], 20), []);
  });
});

describe('memcrypt-bench compare', () => {
  it('self-compare: every cell ~, exit 0', () => {
    const a = run('self');
    const r = cli('compare', a, a);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.split('\n');
    for (const [w] of CELLS) assert.ok(lines.some((l) => l.startsWith(w === 'migration' ? 'migrate' : w) && l.trimEnd().endsWith('~')), r.stdout);
    assert.match(r.stdout, /Result: 0 significant regressions beyond 5%, 0 behaviour changes/);
    for (const l of lines) assert.ok([...l].length <= 72, l);
  });

  it('flags a synthetic 20% slowdown in one cell with a non-zero exit, others stay ~', () => {
    const base = run('base');
    const slow = run('slow', (_r, s, i) => (i === 1 ? s.map((x) => x * 1.2) : s));
    const r = cli('compare', base, slow, '--fail-on', 'regression');
    assert.equal(r.status, 1, r.stdout);
    const flagged = r.stdout.split('\n').filter((l) => l.includes('REGRESSION'));
    assert.equal(flagged.length, 1);
    assert.match(flagged[0], /^fault dev-mktme p t1 .*\+20\.\d%/);
    const res = compareRuns(loadRun(base), loadRun(slow), { thresholdPct: 5, alpha: 0.05 });
    assert.equal(res.regressions, 1);
    assert.ok(res.geomeanRatio > 1.04 && res.geomeanRatio < 1.06);
    // above the threshold: no regression, exit 0
    assert.equal(cli('compare', base, slow, '--threshold', '25', '--fail-on', 'regression').status, 0);
    // as CSV
    const csv = cli('compare', base, slow, '--format', 'csv', '--fail-on', 'regression');
    assert.match(csv.stdout, /^crypto_backend,hardware,interface,kernel,swap,workload,threads,in,/);
    assert.match(csv.stdout, /dev-mktme,patched,none,fault,1,both,.*,true,true,/);
  });

  it('reports a changed counter or outcome as a behaviour change', () => {
    const base = run('cbase');
    const rows = CELLS.map(([w, d, t, m]) => row(w, d, t, m));
    rows[0].faults = 11;
    rows[2].outcome = 'data-loss';
    rows[3].faults = 99; // a 2-thread cell: counters are not deterministic there, not compared
    const changed = write(
      'changed',
      rows,
      rows.map((r, i) => ({ key: cellKey(r), samples: spread(CELLS[i][3], 40, i + 1) })),
    );
    const r = cli('compare', base, changed);
    assert.equal(r.status, 1);
    assert.match(r.stdout, /fault enc-mprot p t1: faults 10 -> 11/);
    assert.match(r.stdout, /swap enc-mprot p t1: outcome encrypted -> data-loss/);
    assert.doesNotMatch(r.stdout, /faults 10 -> 99/);
    assert.match(r.stdout, /2 behaviour changes/);
    assert.equal(cli('compare', base, changed, '--fail-on', 'regression').status, 0);
  });

  it('refuses malformed or mismatched input with one line naming the file and line', () => {
    const good = run('good');
    const bad = join(dir, 'bad.csv');
    const text = readFileSync(good, 'utf8').split('\n');
    const at = text.findIndex((l) => l.startsWith(`${SCHEMA_VERSION},`));
    text[at + 1] = text[at + 1].replace(',encrypted,', ',encrypted,x,');
    writeFileSync(bad, text.join('\n'));
    copyFileSync(join(dir, 'good.samples.json'), join(dir, 'bad.samples.json'));
    copyFileSync(join(dir, 'good.meta.json'), join(dir, 'bad.meta.json'));
    const nosamples = join(dir, 'nosamples.csv');
    copyFileSync(good, nosamples);
    copyFileSync(join(dir, 'good.meta.json'), join(dir, 'nosamples.meta.json'));
    const nometa = join(dir, 'nometa.csv');
    copyFileSync(good, nometa);
    copyFileSync(join(dir, 'good.samples.json'), join(dir, 'nometa.samples.json'));
    const other = run('other');
    const mismatched = join(dir, 'mismatch.csv');
    const rows = CELLS.slice(0, 2).map(([w, d, t, m]) => row(w, d, t, m));
    writeFileSync(mismatched, formatCsv(rows));
    copyFileSync(join(dir, 'other.samples.json'), join(dir, 'mismatch.samples.json'));
    copyFileSync(join(dir, 'other.meta.json'), join(dir, 'mismatch.meta.json'));
    // another run's samples next to this CSV: refused, not silently compared
    const mixed = join(dir, 'mixed.csv');
    copyFileSync(good, mixed);
    copyFileSync(join(dir, 'good.meta.json'), join(dir, 'mixed.meta.json'));
    writeFileSync(join(dir, 'mixed.samples.json'), formatSamples('r2', CELLS.map(([w, d, t, m]) => ({ key: cellKey(row(w, d, t, m)), samples: [1] }))));
    // a schema 1 baseline (comment lines first): one line saying to re-record it
    const old = join(dir, 'old.csv');
    writeFileSync(old, '# memcrypt-bench results\n# run_id: x\nschema_version,run_id\n1,x\n');
    const cases: [string[], RegExp][] = [
      [[good, bad], new RegExp(`bad\\.csv:${at + 2}: `)],
      [[good, nosamples], /nosamples\.samples\.json: cannot read: ENOENT/],
      [[good, nometa], /nometa\.meta\.json: cannot read: ENOENT/],
      [[other, mismatched], /mismatch\.samples\.json: 4 cells, but .*mismatch\.csv has 2/],
      [[good, mixed], /mixed\.samples\.json: samples of run r2, but .*mixed\.meta\.json is of run r1: not one result set/],
      [[old, good], /old\.csv:1: comment lines before the header: a schema 1 file.*re-record it/],
      [[good, join(dir, 'absent.csv')], /absent\.csv: cannot read: ENOENT/],
    ];
    for (const [args, re] of cases) {
      const r = cli('compare', ...args);
      assert.equal(r.status, 2, r.stdout + r.stderr);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], re);
    }
  });
});

describe('run --baseline and --export', () => {
  it('compares against a baseline in one step and writes the github-action-benchmark JSON', () => {
    const small = ['--workload', 'fault', '--interface', 'encrypt-mprotect', '--threads', '1', '--time', '1', '--samples', '3', '--warmup', '1', '--repeat', '1', '--format', 'none', '--costs', 'defaults'];
    const basePath = join(dir, 'b0.csv');
    assert.equal(cli('run', ...small, '--out', basePath).status, 0);
    const out = join(dir, 'b1.csv');
    // a huge threshold: timing noise cannot gate; the counters must match exactly
    const r = cli('run', ...small, '--out', out, '--baseline', basePath, '--threshold', '100000', '--export', 'github-action-benchmark');
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /Result: 0 significant regressions beyond 100000%, 0 behaviour changes/);
    const gab = JSON.parse(readFileSync(join(dir, 'b1.github-action-benchmark.json'), 'utf8')) as { name: string; unit: string; value: number }[];
    // one timed cell that ran its scenario: its simulator time, modelled cost and outcome code
    const cell = `fault/encrypt-mprotect/patched/none/t1 (mktme, ${defaultBackend()})`;
    assert.deepEqual(gab.map((e) => [e.name, e.unit]), [[`${cell} sim`, 'ns/op'], [`${cell} model`, 'ns/op'], [`${cell} outcome`, 'code']]);
    assert.ok(gab[0].value > 0 && gab[1].value > 0);
    assert.equal(gab[2].value, 0); // encrypted
  });

  it('the committed baseline is readable and covers the default suite', () => {
    const root = fileURLToPath(new URL('../../../results/baseline.csv', import.meta.url));
    const b = loadRun(root);
    // on mktme: 6 designs x (fault + enosys on 2 kernels + swap plain and
    // encrypted + migration + dax + qemu-guest + qemu-nvdimm) x 2 thread
    // counts + 6 x key-exhaustion x 1 thread = 114; on --guest-hardware sev
    // and tdx: 6 x (qemu-guest + qemu-nvdimm) x 2 + 6 x key-exhaustion = 30 each
    const n = 6 * 9 * 2 + 6 + 2 * (6 * 2 * 2 + 6);
    assert.equal(b.rows.length, n);
    assert.ok(b.rows.every((r) => r.schema_version === SCHEMA_VERSION));
    assert.equal(new Set(b.rows.map(cellKey)).size, n);
  });
});
