// The history store and `history`: records read back as written, two runs
// appending at once never mix their lines, a damaged line costs that line
// only, and the trend flags the change points compare would, and no others.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { appendHistory, readHistory, type HistoryRecord } from '../../bench/history.js';
import { COUNTER_COLUMNS, cellKey, type CellSamples, type Row, type RunMeta } from '../../bench/schema.js';
import { formatHistory, historyTrend, type CellTrend } from '../../bench/trend.js';
import { mkMeta, mkRow, notRun } from './fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'memcrypt-history-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const CLI = fileURLToPath(new URL('../../bench/cli.js', import.meta.url));
const HISTORY_JS = new URL('../../bench/history.js', import.meta.url).href;
const FIXTURES_JS = new URL('./fixtures.js', import.meta.url).href;

/** n samples around ns, +-2% in a fixed pattern: distinct values, no ties. */
const around = (ns: number, n = 8, salt = 0): number[] => Array.from({ length: n }, (_, i) => ns * (1 + (((i * 7 + salt * 3) % 9) - 4) / 200 + i * 1e-6));

describe('the history store', () => {
  it('appends one record per cell and reads them back as written', () => {
    const file = join(dir, 'sub', 'dir', 'h.jsonl'); // the directory is made
    const meta = mkMeta({ run_id: 'r1', git_sha: 'abc1234abcd' });
    const rows = [mkRow(), mkRow({ threads: 2, sim_ns_per_op_median: 99.5 }), mkRow({ interface: 'dev-mktme', outcome: 'unsupported', errno: 'ENOSYS', ...notRun })];
    const noisy = mkRow({ workload: 'swap', swap: 'plain', stability: 'noisy' });
    rows.push(noisy);
    const samples: CellSamples[] = [{ key: cellKey(rows[0]), samples: [1, 2.5, 3] }, { key: cellKey(rows[1]), samples: [4] }];
    assert.equal(appendHistory(file, meta, rows, samples), 4);
    const { records, warnings } = readHistory(file);
    assert.deepEqual(warnings, []);
    assert.equal(records.length, 4);
    const [a, b, c, d] = records;
    assert.deepEqual(a, {
      v: 1,
      run_id: 'r1',
      git_sha: 'abc1234abcd',
      started_at: meta.started_at,
      host: meta.host,
      settings: { command: meta.command, seed: 42, crypto_backends: ['openssl'], cost_source: meta.cost_source, time_ms: 300, warmup_ms: 500, min_samples: 10, repeat: 1, order_seed: 42 },
      env: {
        nproc: meta.nproc,
        mem_bytes: meta.mem_bytes,
        kernel_release: meta.kernel_release,
        cpu_model: meta.cpu_model,
        node_version: meta.node_version,
        tinybench_version: meta.tinybench_version,
        load_avg_start: meta.load_avg_start,
        load_avg_end: meta.load_avg_end,
      },
      key: cellKey(rows[0]),
      outcome: 'encrypted',
      errno: '',
      modelled_ns_per_op: rows[0].modelled_ns_per_op,
      counters: Object.fromEntries(COUNTER_COLUMNS.map((col) => [col, rows[0][col]])),
      sim_ns_per_op_median: 1234.5,
      samples: [1, 2.5, 3],
      noisy: false,
    } satisfies HistoryRecord);
    assert.deepEqual([b.samples, b.sim_ns_per_op_median, b.key.endsWith('|2')], [[4], 99.5, true]);
    // NaN is written as null, a cell without samples has []
    assert.deepEqual([c.outcome, c.errno, c.modelled_ns_per_op, c.sim_ns_per_op_median, c.samples], ['unsupported', 'ENOSYS', null, null, []]);
    assert.equal(d.noisy, true);
    // settings a meta carries beyond RunMeta are copied; the command is not parsed
    appendHistory(file, { ...mkMeta(), repeat: 3, time_ms: 300 } as RunMeta, [mkRow()], []);
    const again = readHistory(file).records;
    assert.equal(again.length, 5);
    assert.deepEqual([again[4].settings.repeat, again[4].settings.time_ms, again[4].settings.warmup], [3, 300, undefined]);
    assert.equal(readFileSync(file, 'utf8').split('\n').length, 6); // one line each, and the final newline
  });

  it('a missing file has no records and no warnings', () => {
    assert.deepEqual(readHistory(join(dir, 'none.jsonl')), { records: [], warnings: [] });
  });

  it('two runs appending at once: every line parses and each append stays in one piece', async () => {
    const file = join(dir, 'concurrent.jsonl');
    const script = join(dir, 'append.mjs');
    // each child: 20 appends of 40 cells with 200 samples (~60 KB a write, far beyond a page)
    writeFileSync(
      script,
      `import { appendHistory } from ${JSON.stringify(HISTORY_JS)};
import { mkMeta, mkRow } from ${JSON.stringify(FIXTURES_JS)};
import { cellKey } from ${JSON.stringify(new URL('../../bench/schema.js', import.meta.url).href)};
const [file, tag] = process.argv.slice(2);
const rows = Array.from({ length: 40 }, (_, i) => mkRow({ threads: i + 1 }));
const samples = rows.map((r) => ({ key: cellKey(r), samples: Array.from({ length: 200 }, (_, j) => 1000 + j + 0.125) }));
for (let k = 0; k < 20; k++) appendHistory(file, mkMeta({ run_id: tag + '-' + k }), rows, samples);
`,
    );
    const child = (tag: string) =>
      new Promise<number | null>((res, rej) => {
        const p = spawn(process.execPath, [script, file, tag], { stdio: ['ignore', 'ignore', 'inherit'] });
        p.on('error', rej);
        p.on('exit', res);
      });
    assert.deepEqual(await Promise.all([child('a'), child('b')]), [0, 0]);
    const { records, warnings } = readHistory(file);
    assert.deepEqual(warnings, []);
    assert.equal(records.length, 2 * 20 * 40);
    // the 40 lines of one append are consecutive and complete
    for (let i = 0; i < records.length; i += 40) {
      const run = records[i].run_id;
      assert.deepEqual(records.slice(i, i + 40).map((r) => [r.run_id, Number(r.key.split('|').at(-1)), r.samples.length]), Array.from({ length: 40 }, (_, j) => [run, j + 1, 200]));
    }
    assert.equal(new Set(records.map((r) => r.run_id)).size, 40);
  });

  it('a torn last line and a line that is not a record are skipped with a warning naming the line; the rest is read', () => {
    const file = join(dir, 'damaged.jsonl');
    appendHistory(file, mkMeta({ run_id: 'r1' }), [mkRow(), mkRow({ threads: 2 })], []);
    appendFileSync(file, '{"v": 1, "run_id": "half"}\n'); // line 3: JSON, but not a record
    appendFileSync(file, '{"v": 2}\n'); // line 4: another version
    appendHistory(file, mkMeta({ run_id: 'r2' }), [mkRow()], []); // line 5
    const full = JSON.stringify(readHistory(file).records[0]);
    appendFileSync(file, full.slice(0, full.length >> 1)); // line 6: a run killed mid-write
    const { records, warnings } = readHistory(file);
    assert.deepEqual(records.map((r) => r.run_id), ['r1', 'r1', 'r2']);
    assert.equal(warnings.length, 3);
    assert.match(warnings[0], /damaged\.jsonl:3: git_sha: expected a string, skipped$/);
    assert.match(warnings[1], /damaged\.jsonl:4: record version 2 \(this memcrypt-bench reads 1\), skipped$/);
    assert.match(warnings[2], /damaged\.jsonl:6: not a JSON record, skipped \(a torn last line/);
    // the next run starts on a line of its own: only the torn line is lost
    appendHistory(file, mkMeta({ run_id: 'r3' }), [mkRow()], []);
    const after = readHistory(file);
    assert.deepEqual(after.records.map((r) => r.run_id), ['r1', 'r1', 'r2', 'r3']);
    assert.equal(after.warnings.length, 3);
    assert.match(after.warnings[2], /damaged\.jsonl:6: not a JSON record, skipped$/);
  });
});

// --- the trend -------------------------------------------------------------------

let files = 0;
/**
 * One run of a commit, read back from a store of its own. Cells: fault
 * enc-mprot t1, fault dev-mktme t1, fault memfd-sec t2, swap enc-mprot t1;
 * the model is fixed (500 ns) unless given, so a counter changes alone.
 */
function run(sha: string, n: number, over: { slow?: string[]; noisy?: string; unsupported?: boolean; syscalls?: number; model?: number; seed?: number; counting?: string } = {}): HistoryRecord[] {
  const meta = mkMeta({
    run_id: `${sha}-${n}`,
    git_sha: sha,
    started_at: new Date(Date.UTC(2025, 0, 1) + n * 3600_000).toISOString(),
    seed: over.seed ?? 42,
    ...(over.counting !== undefined ? { counting: over.counting } : {}),
  });
  const common = { syscalls: over.syscalls ?? 3, modelled_ns_per_op: over.model ?? 500 };
  const rows: Row[] = [
    mkRow({ interface: 'encrypt-mprotect', ...common }),
    mkRow({ interface: 'dev-mktme', ...common, ...(over.unsupported ? { outcome: 'unsupported', errno: 'ENOSYS', ...notRun } : {}) }),
    mkRow({ interface: 'memfd-secret', threads: 2, ...common }),
    mkRow({ workload: 'swap', swap: 'plain', ...common }),
  ];
  for (const r of rows) if (`${r.workload}/${r.interface}` === over.noisy) r.stability = 'noisy';
  const samples = rows.map((r, i) => ({ key: cellKey(r), samples: r.sim_rounds === 0 ? [] : around(over.slow?.includes(`${r.workload}/${r.interface}`) ? 1200 : 1000, 8, n + i) }));
  const file = join(dir, `trend-${++files}.jsonl`);
  appendHistory(file, meta, rows, samples);
  return readHistory(file).records;
}

// Four commits, two runs each: fault enc-mprot 20% slower from c3 on, syscalls 3 -> 4 at c2, dev-mktme unsupported at c4, and memfd 20%
// slower at c4 in noisy runs only.
const SLOW = ['fault/encrypt-mprotect'];
const records = [
  ...run('c1', 1),
  ...run('c1', 2),
  ...run('c2', 3, { syscalls: 4 }),
  ...run('c2', 4, { syscalls: 4 }),
  ...run('c3', 5, { slow: SLOW, syscalls: 4 }),
  ...run('c3', 6, { slow: SLOW, syscalls: 4 }),
  ...run('c4', 7, { slow: [...SLOW, 'fault/memfd-secret'], syscalls: 4, unsupported: true, noisy: 'fault/memfd-secret' }),
  ...run('c4', 8, { slow: [...SLOW, 'fault/memfd-secret'], syscalls: 4, unsupported: true, noisy: 'fault/memfd-secret' }),
];

const OPTS = { last: 10, thresholdPct: 5, alpha: 0.05 };
const cellOf = (t: { cells: CellTrend[] }, label: string): CellTrend => t.cells.find((c) => c.label === label)!;
const kinds = (c: CellTrend) => c.changes.map((ch) => [ch.from, ch.to, ch.reasons.map((r) => r.kind)]);

describe('history: the trend and its change points', () => {
  it('flags the slowdown in its cell only, and the outcome and counter changes; pools the runs of a commit', () => {
    const t = historyTrend(records, OPTS);
    assert.deepEqual(t.shas.map((s) => [s.sha, s.runs]), [['c1', 2], ['c2', 2], ['c3', 2], ['c4', 2]]);
    assert.equal(t.tests, 4 * 3 - 2); // dev-mktme at c4 not timed, memfd at c4 noisy only
    const enc = cellOf(t, 'fault enc-mprot p t1');
    assert.deepEqual(kinds(enc), [['c1', 'c2', ['counter']], ['c2', 'c3', ['time']]]);
    assert.deepEqual(enc.changes[0].reasons.map((r) => r.text), ['syscalls 3 -> 4']);
    assert.match(enc.changes[1].reasons[0].text, /^time \+\d\d\.\d% p[<=]0\.\d+$/);
    assert.equal(enc.points[2].tested.length, 16); // two runs of 8 samples, pooled
    assert.ok(Math.abs(enc.points[2].median / enc.points[1].median - 1.2) < 0.02);
    const dev = cellOf(t, 'fault dev-mktme p t1');
    assert.deepEqual(kinds(dev), [['c1', 'c2', ['counter']], ['c3', 'c4', ['outcome']]]);
    assert.deepEqual(dev.changes[1].reasons.map((r) => r.text), ['outcome encrypted -> unsupported/ENOSYS']);
    // 2-thread counters of runs that did not count in lockstep depended on the interleaving: not a change point
    assert.deepEqual(kinds(cellOf(t, 'fault memfd-sec p t2')), []);
    assert.deepEqual(kinds(cellOf(t, 'swap enc-mprot p t1')), [['c1', 'c2', ['counter']]]);
    assert.equal(t.changePoints, 5);
  });

  it('noisy runs are shown but never tested: a noisy +20% is no change point', () => {
    const memfd = cellOf(historyTrend(records, OPTS), 'fault memfd-sec p t2');
    assert.deepEqual([memfd.points[3].noisyOnly, memfd.points[3].tested.length], [true, 0]);
    assert.ok(memfd.points[3].median > 1150); // shown, from the noisy runs
    assert.deepEqual(memfd.changes, []);
    // one noisy run beside a quiet one: only the quiet one is pooled
    const mixed = [...run('n1', 30), ...run('n2', 31), ...run('n2', 32, { slow: ['fault/memfd-secret'], noisy: 'fault/memfd-secret' })];
    const p = cellOf(historyTrend(mixed, OPTS), 'fault memfd-sec p t2').points[1];
    assert.deepEqual([p.runs, p.tested.length, p.noisyOnly], [2, 8, false]);
    assert.ok(p.median < 1050);
  });

  it('--last keeps the last N commits; the model beyond 0.1% is a change point; two seeds do not compare counters', () => {
    const t = historyTrend(records, { ...OPTS, last: 2 });
    assert.deepEqual(t.shas.map((s) => s.sha), ['c3', 'c4']);
    assert.deepEqual(kinds(cellOf(t, 'fault enc-mprot p t1')), []);
    const m = historyTrend([...run('m1', 20), ...run('m2', 21, { model: 500.25 }), ...run('m3', 22, { model: 505, syscalls: 9, seed: 7 })], OPTS);
    assert.deepEqual(kinds(cellOf(m, 'swap enc-mprot p t1')), [['m2', 'm3', ['model']]]);
    assert.equal(cellOf(m, 'swap enc-mprot p t1').changes[0].reasons[0].text, 'model +0.9%');
    assert.match(m.notes.join('\n'), /seeds differ \(42, 7\)/);
  });

  it('2-thread counters are a change point between runs that both counted in lockstep', () => {
    const lock = { counting: 'lockstep' };
    const t = historyTrend([...run('k0', 40), ...run('k1', 41, { ...lock, syscalls: 4 }), ...run('k2', 42, { ...lock, syscalls: 5 })], OPTS);
    assert.deepEqual(kinds(cellOf(t, 'fault memfd-sec p t2')), [['k1', 'k2', ['counter']]]);
    assert.deepEqual(kinds(cellOf(t, 'fault enc-mprot p t1')), [['k0', 'k1', ['counter']], ['k1', 'k2', ['counter']]]);
    assert.equal(run('k3', 43, lock)[0].settings.counting, 'lockstep'); // kept in the store's records
  });

  it('prints plain ASCII within 72 columns: per-commit medians, the change points with their reasons, a summary', () => {
    const text = formatHistory(historyTrend(records, OPTS));
    for (const line of text.split('\n')) assert.ok(line.length <= 72 && /^[\x20-\x7e]*$/.test(line), line);
    assert.match(text, /^fault enc-mprot p t1\n {2}c1 +\S+ [nu]s +c2 +\S+ [nu]s +c3 +1\.[12]\d us\n {2}c4 +1\.[12]\d us\n/m);
    assert.match(text, /^ {2}! c2 -> c3: time \+\d\d\.\d% p[<=]0\.\d+$/m);
    assert.match(text, /^ {2}! c3 -> c4: outcome encrypted -> unsupported\/ENOSYS$/m);
    assert.match(text, /^fault memfd-sec p t2\n.*\n {2}c4 +1\.[12]\d us\?$/m); // noisy only
    assert.match(text.replace(/\n {2}/g, ' '), /\nResult: 4 cells, 4 commits: 5 change points \(time 1, outcome 1, counter 3\)\.$/);
  });
});

describe('memcrypt-bench history', () => {
  const cli = (args: string[]) => spawnSync(process.execPath, [CLI, 'history', ...args], { encoding: 'utf8', timeout: 30_000 });

  it('prints the trend of a store and exits 0; damaged lines are warnings on stderr', () => {
    const file = join(dir, 'cli.jsonl');
    const two = records.filter((r) => r.run_id === 'c1-1' || r.run_id === 'c3-5');
    writeFileSync(file, two.map((r) => JSON.stringify(r) + '\n').join('') + '{"v":1');
    const r = cli(['--file', file, '--last', '5', '--threshold', '10']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^memcrypt-bench history: the last 2 commits, oldest first\n {2}c1 +2025-01-01 +1 run\n {2}c3 +2025-01-01 +1 run\n/);
    assert.match(r.stdout.replace(/\n {2}/g, ' '), /\nResult: 4 cells, 2 commits: 3 change points \(time 1, counter 3\)\.\n$/);
    assert.match(r.stderr, /^memcrypt-bench: .*cli\.jsonl:9: not a JSON record, skipped/);
  });

  it('bad arguments: one line, exit 2', () => {
    for (const [args, re] of [
      [['--last', '0'], /^memcrypt-bench: --last: expected an integer in \[1, 10000\], got '0'$/],
      [['--alpha', '1.5'], /^memcrypt-bench: --alpha: expected a number in \(0, 1\)/],
    ] as const) {
      const r = cli([...args]);
      assert.equal(r.status, 2, r.stderr);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr.trim(), re);
    }
  });
});
