// The host reference (bench/hostref.ts) and where its figure goes: the
// run's meta, the report's head, compare's head and notes, the history.
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { compareRuns, formatCompare, type LoadedRun } from '../../bench/compare.js';
import { formatMeta, parseMeta } from '../../bench/csv.js';
import { appendHistory, readHistory } from '../../bench/history.js';
import { hostRefImpl, hostRefSummary, hostReferenceWindow, hostScaling, hostScalingSummary } from '../../bench/hostref.js';
import { scalingThreads } from '../../bench/runner.js';
import { plan } from '../../bench/run.js';
import { nativeImpl } from '../../hardware/xts-native.js';
import { formatReport } from '../../bench/report.js';
import { cellKey, type Row, type RunMeta } from '../../bench/schema.js';
import { formatHistory, historyTrend } from '../../bench/trend.js';
import { mkMeta, mkRow } from './fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'memcrypt-hostref-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('the host reference', () => {
  it('a window: the time of each pass after the warm-up, in ns, for at least the window', () => {
    const t = performance.now();
    const w = hostReferenceWindow(5, 2);
    assert.ok(performance.now() - t >= 7);
    assert.ok(w.length >= 1 && w.every((x) => Number.isFinite(x) && x > 0), String(w));
    // a window of 0 ms still times one pass
    assert.equal(hostReferenceWindow(0, 0).length, 1);
  });

  it('runs on the native addon where it is there, else on node:crypto, and says which', () => {
    const impl = nativeImpl();
    assert.equal(hostRefImpl(), impl === null ? 'openssl' : `native ${impl}`);
  });

  it('summary: the median a pass, what it ran on, and the spread between processes when there are several', () => {
    assert.equal(hostRefSummary(undefined, 'native vaes-avx512'), '');
    assert.equal(hostRefSummary([], 'openssl'), '');
    assert.equal(hostRefSummary([6310], 'openssl'), '6.31 us a pass (openssl), 1 process');
    // median 100 us; sd 10 us of mean 100 us
    assert.equal(hostRefSummary([90_000, 110_000, 100_000], undefined), '100 us a pass, cv 10.0% between 3 processes');
  });
});

describe('the host reference in the result set', () => {
  const row: Row = mkRow({ run_id: 'r1' });
  const run = (file: string, ref: number[] | undefined, impl = 'native vaes-avx512', samples = [96, 97, 98, 99, 100, 101, 102, 103, 104]): LoadedRun => ({
    file,
    meta: mkMeta({ run_id: 'r1', ...(ref ? { host_ref_ns: ref, host_ref_impl: impl } : {}) }),
    rows: [row],
    samples: new Map([[cellKey(row), samples]]),
  });

  it('the meta keeps it; a meta with a bad one is refused in one line', () => {
    const meta = mkMeta({ host_ref_ns: [114535, 134019], host_ref_impl: 'openssl' });
    assert.deepEqual(parseMeta(formatMeta(meta), 'm.json').host_ref_ns, [114535, 134019]);
    assert.equal(parseMeta(formatMeta(meta), 'm.json').host_ref_impl, 'openssl');
    assert.throws(() => parseMeta(formatMeta({ ...meta, timing_flags: ['--x'] as unknown as string }), 'm.json'), { message: 'm.json: timing_flags: expected a string' });
    assert.throws(() => parseMeta(formatMeta({ ...meta, host_ref_impl: 5 as unknown as string }), 'm.json'), { message: 'm.json: host_ref_impl: expected a string' });
    assert.equal(parseMeta(formatMeta(mkMeta()), 'm.json').host_ref_ns, undefined); // older runs
    for (const bad of [[0], [-1], ['1'], [5, -1], [5, null], 5] as unknown[])
      assert.throws(() => parseMeta(formatMeta({ ...meta, host_ref_ns: bad as number[] }), 'm.json'), { message: 'm.json: host_ref_ns: expected an array of positive numbers' });
  });

  it("the report's head says it, and the harness section compares the cells' spread with it", () => {
    const text = formatReport(mkMeta({ host_ref_ns: [90_000, 110_000, 100_000], host_ref_impl: 'native vaes-avx512' }), [mkRow({ sim_processes: 3, sim_cv_pct: 12 })]);
    assert.match(
      text,
      /\n {2}host ref 100 us a pass \(native vaes-avx512\), cv 10\.0% between 3\n {11}processes: fixed native work, none of the simulator, its\n {11}spread the host's own\n/,
    );
    assert.match(text.replace(/\n {2}/g, ' '), /Fixed native work timed in the same processes \(host ref, above\) spread 10\.0% between them: no cell can be expected steadier on this host\./);
    const old = formatReport(mkMeta(), [mkRow()]);
    assert.doesNotMatch(old, /host ref/);
  });

  it('compare: both in its head; a shift of the host beyond the threshold is a note, either way', () => {
    const slower = compareRuns(run('b.csv', [100_000, 101_000, 99_000]), run('n.csv', [110_000, 109_000, 111_000]), { thresholdPct: 5, alpha: 0.05 });
    assert.deepEqual(slower.notes, [
      'the host reference, which runs none of the simulator, took 10.0% longer in new than in base: the host itself was slower, and changes of that size may be the host\'s',
    ]);
    // on different code the two are not compared
    assert.deepEqual(compareRuns(run('b.csv', [100_000]), run('n.csv', [200_000], 'openssl'), { thresholdPct: 5, alpha: 0.05 }).notes, [
      "the host references ran on different code (native vaes-avx512 vs openssl): the host's speed is not compared",
    ]);
    // the flags of the timing processes are a setting: a difference is said
    const flagged = run('n.csv', [100_000]);
    flagged.meta.timing_flags = '--no-concurrent-recompilation';
    assert.match(compareRuns(run('b.csv', [100_000]), flagged, { thresholdPct: 5, alpha: 0.05 }).notes.join('\n'), /settings differ \(timing_flags not recorded vs --no-concurrent-recompilation\)/);
    assert.match(formatCompare(compareRuns(run('b.csv', [100_000]), flagged, { thresholdPct: 5, alpha: 0.05 })), /rounds, flags\n  --no-concurrent-recompilation, backend openssl/);
    const faster = compareRuns(run('b.csv', [100_000]), run('n.csv', [80_000]), { thresholdPct: 5, alpha: 0.05 });
    assert.match(faster.notes[0], /took 20\.0% less time in new than in base: the host itself was faster/);
    // within the threshold, or not recorded on one side: no note
    assert.deepEqual(compareRuns(run('b.csv', [100_000]), run('n.csv', [104_000]), { thresholdPct: 5, alpha: 0.05 }).notes, []);
    assert.deepEqual(compareRuns(run('b.csv', [100_000]), run('n.csv', [104_000]), { thresholdPct: 3, alpha: 0.05 }).notes.length, 1);
    assert.deepEqual(compareRuns(run('b.csv', undefined), run('n.csv', [200_000]), { thresholdPct: 5, alpha: 0.05 }).notes, []);
    assert.deepEqual(compareRuns(run('b.csv', [100_000]), run('n.csv', undefined), { thresholdPct: 5, alpha: 0.05 }).notes, []);
    // beyond the threshold, not at it (25% exactly, in binary too)
    assert.deepEqual(compareRuns(run('b.csv', [100_000]), run('n.csv', [125_000]), { thresholdPct: 25, alpha: 0.05 }).notes, []);
    assert.equal(compareRuns(run('b.csv', [100_000]), run('n.csv', [125_001]), { thresholdPct: 25, alpha: 0.05 }).notes.length, 1);
    const head = formatCompare(compareRuns(run('b.csv', undefined), run('n.csv', [90_000, 110_000, 100_000]), { thresholdPct: 5, alpha: 0.05 }));
    assert.match(head, /\nhost ref: base not recorded; new 100 us a pass \(native vaes-avx512\), cv\n {2}10\.0% between 3 processes\n/);
    assert.doesNotMatch(formatCompare(compareRuns(run('b.csv', undefined), run('n.csv', undefined), { thresholdPct: 5, alpha: 0.05 })), /host ref/);
  });

  it("history: each record keeps the run's median; the trend prints it per commit, over that commit's runs", () => {
    const file = join(dir, 'h.jsonl');
    const at = (h: number) => new Date(Date.UTC(2025, 0, 1) + h * 3600_000).toISOString();
    const meta = (id: string, sha: string, h: number, ref?: number[], impl = 'openssl'): RunMeta =>
      mkMeta({ run_id: id, git_sha: sha, started_at: at(h), ...(ref ? { host_ref_ns: ref, host_ref_impl: impl } : {}) });
    appendHistory(file, meta('a1', 'c1', 1, [100_000, 300_000, 200_000]), [row], [{ key: cellKey(row), samples: [100, 101] }]);
    appendHistory(file, meta('a2', 'c1', 2, [400_000]), [row], [{ key: cellKey(row), samples: [100, 101] }]);
    appendHistory(file, meta('b1', 'c2', 3), [row], [{ key: cellKey(row), samples: [100, 101] }]);
    const { records, warnings } = readHistory(file);
    assert.deepEqual(warnings, []);
    assert.deepEqual(records.map((r) => [r.env.host_ref_ns, r.env.host_ref_impl]), [[200_000, 'openssl'], [400_000, 'openssl'], [undefined, undefined]]);
    const t = historyTrend(records, { last: 10, thresholdPct: 5, alpha: 0.05 });
    assert.deepEqual(t.shas.map((s) => s.hostRefNs), [300_000, NaN]);
    assert.match(formatHistory(t), /\n {2}c1 {8}2025-01-01 {2}2 runs {3}host ref 300 us\n {2}c2 {8}2025-01-01 {2}1 run\n/);
    // a later commit whose reference ran on other code: each commit's says what it ran on
    appendHistory(file, meta('c1', 'c3', 4, [5_000], 'native vaes-avx512'), [row], [{ key: cellKey(row), samples: [100, 101] }]);
    assert.match(
      formatHistory(historyTrend(readHistory(file).records, { last: 10, thresholdPct: 5, alpha: 0.05 })),
      /\n {2}c1 {8}2025-01-01 {2}2 runs {3}host ref 300 us openssl\n {2}c2 {8}2025-01-01 {2}1 run\n {2}c3 {8}2025-01-01 {2}1 run {4}host ref 5\.00 us native vaes-avx512\n/,
    );
  });

  it('history: a record whose host reference is not a positive number is skipped with a warning', () => {
    const file = join(dir, 'bad.jsonl');
    appendHistory(file, mkMeta({ run_id: 'r1', host_ref_ns: [5], host_ref_impl: 'openssl' }), [row], []);
    const good = JSON.stringify(readHistory(file).records[0]);
    appendHistory(file, mkMeta({ run_id: 'r2' }), [row], []);
    const damaged = (f: (env: Record<string, unknown>) => void) => {
      const d = JSON.parse(good);
      f(d.env);
      appendFileSync(file, JSON.stringify(d) + '\n');
    };
    damaged((e) => (e.host_ref_ns = -5));
    damaged((e) => (e.host_ref_impl = 7));
    const { records, warnings } = readHistory(file);
    assert.deepEqual(records.map((r) => [r.run_id, r.env.host_ref_ns]), [['r1', 5], ['r2', undefined]]);
    assert.equal(warnings.length, 2);
    assert.match(warnings[0], /bad\.jsonl:3: env\.host_ref_ns: expected a positive number, skipped$/);
    assert.match(warnings[1], /bad\.jsonl:4: env\.host_ref_impl: expected a string, skipped$/);
  });
});

describe('the host scaling', () => {
  it('threads of the reference side by side: how many times one thread\'s work they did, a positive number; fewer than 2 threads is refused', async () => {
    const x = await hostScaling(2, 5, 1);
    assert.ok(Number.isFinite(x) && x > 0, String(x));
    await assert.rejects(hostScaling(1), { name: 'RangeError', message: 'threads: expected an integer >= 2, got 1' });
    await assert.rejects(hostScaling(2.5), { name: 'RangeError' });
  });

  it('summary: the median, and the range between processes when there are several', () => {
    assert.equal(hostScalingSummary(undefined, 2), '');
    assert.equal(hostScalingSummary([], 2), '');
    assert.equal(hostScalingSummary([1.9], undefined), '');
    assert.equal(hostScalingSummary([1.9], 2), "2 threads did 1.90x one thread's work");
    assert.equal(hostScalingSummary([1.2, 1.95, 1.8], 2), "2 threads did 1.80x one thread's work (1.20-1.95x between 3 processes)");
  });

  it('runs for the most worker CPUs of the timed cells in the order; none of 2 or more: 1, nothing to measure', () => {
    const cells = plan({ interface: ['plain-mmap'], hardware: ['mktme'], workload: ['fault', 'key-exhaustion'], threads: ['1', '2'], swap: ['plain'], backend: ['openssl'] });
    const all = cells.map((_, i) => i);
    assert.equal(scalingThreads(cells, all), 2);
    assert.equal(scalingThreads(cells, all.filter((i) => cells[i].threads === 1)), 1);
    assert.equal(scalingThreads(cells, []), 1);
    // an untimed cell (guest hardware) does not count
    assert.equal(scalingThreads([{ ...cells[0], threads: 4, timed: false }, cells[0]], [0, 1]), 1);
  });
});

describe('the host scaling in the result set', () => {
  const row: Row = mkRow({ run_id: 'r1' });
  const run = (file: string, scaling: number[] | undefined, threads = 2): LoadedRun => ({
    file,
    meta: mkMeta({ run_id: 'r1', ...(scaling ? { host_scaling: scaling, host_scaling_threads: threads } : {}) }),
    rows: [row],
    samples: new Map([[cellKey(row), [96, 97, 98, 99, 100, 101, 102, 103, 104]]]),
  });

  it('the meta keeps it with its thread count; a bad one, or one without the other, is refused in one line', () => {
    const meta = mkMeta({ host_scaling: [1.91, 1.5], host_scaling_threads: 2 });
    const back = parseMeta(formatMeta(meta), 'm.json');
    assert.deepEqual([back.host_scaling, back.host_scaling_threads], [[1.91, 1.5], 2]);
    assert.equal(parseMeta(formatMeta(mkMeta()), 'm.json').host_scaling, undefined); // older runs, 1-CPU runs
    for (const bad of [[0], [-1], ['2'], 2] as unknown[])
      assert.throws(() => parseMeta(formatMeta({ ...meta, host_scaling: bad as number[] }), 'm.json'), { message: 'm.json: host_scaling: expected an array of positive numbers' });
    for (const bad of [1, 2.5, '2'] as unknown[])
      assert.throws(() => parseMeta(formatMeta({ ...meta, host_scaling_threads: bad as number }), 'm.json'), { message: 'm.json: host_scaling_threads: expected an integer >= 2' });
    for (const m of [mkMeta({ host_scaling: [1.9] }), mkMeta({ host_scaling_threads: 2 })])
      assert.throws(() => parseMeta(formatMeta(m), 'm.json'), { message: 'm.json: host_scaling and host_scaling_threads: expected both or neither' });
  });

  it("the report's head says it, and the harness section gives the time per op a cell of that many CPUs can reach at best", () => {
    const text = formatReport(mkMeta({ host_ref_ns: [100_000, 100_000], host_ref_impl: 'openssl', host_scaling: [1.6, 2.0, 1.25], host_scaling_threads: 2 }), [mkRow({ sim_processes: 3, sim_cv_pct: 12 })]);
    assert.match(text, /\n {2}scaling  the host ref side by side: 2 threads did 1\.60x one thread's\n {11}work \(1\.25-2\.00x between 3 processes\), the most 2 CPUs can\n {11}gain over one here\n/);
    assert.match(text.replace(/\n {2}/g, ' '), /2 threads of it side by side did 1\.60x one thread's work \(scaling, above\): a cell of 2 CPUs can take no less than 0\.63 of its 1-CPU time per op here\./);
    assert.doesNotMatch(formatReport(mkMeta(), [mkRow()]), /scaling {2}|side by side/);
  });

  it('compare: both in its head; a shift beyond the threshold, or another thread count, is a note', () => {
    const o = { thresholdPct: 5, alpha: 0.05 };
    assert.deepEqual(compareRuns(run('b.csv', [2.0, 1.9, 1.95]), run('n.csv', [1.5, 1.4, 1.45]), o).notes, [
      'the host ran 2 threads of its reference at 1.45x one in new against 1.95x in base: cells of 2 or more CPUs may have moved with it',
    ]);
    assert.match(compareRuns(run('b.csv', [1.5]), run('n.csv', [1.9]), o).notes[0], /at 1\.90x one in new against 1\.50x in base/);
    assert.deepEqual(compareRuns(run('b.csv', [2.0]), run('n.csv', [3.0], 4), o).notes, ['the host scaling ran 2 threads in base and 4 in new: not compared']);
    // within the threshold, or not recorded on one side: no note
    assert.deepEqual(compareRuns(run('b.csv', [2.0]), run('n.csv', [1.91]), o).notes, []);
    assert.deepEqual(compareRuns(run('b.csv', [2.0]), run('n.csv', [1.89]), o).notes.length, 1);
    assert.deepEqual(compareRuns(run('b.csv', undefined), run('n.csv', [1.0]), o).notes, []);
    assert.deepEqual(compareRuns(run('b.csv', [1.0]), run('n.csv', undefined), o).notes, []);
    // beyond the threshold, not at it (25% exactly, in binary too)
    assert.deepEqual(compareRuns(run('b.csv', [2]), run('n.csv', [2.5]), { thresholdPct: 25, alpha: 0.05 }).notes, []);
    assert.equal(compareRuns(run('b.csv', [2]), run('n.csv', [2.5001]), { thresholdPct: 25, alpha: 0.05 }).notes.length, 1);
    const head = formatCompare(compareRuns(run('b.csv', undefined), run('n.csv', [1.8, 1.6, 1.7]), o));
    assert.match(head, /\nhost scaling: base not recorded; new 2 threads did 1\.70x one thread's\n {2}work \(1\.60-1\.80x between 3 processes\)\n/);
    assert.doesNotMatch(formatCompare(compareRuns(run('b.csv', undefined), run('n.csv', undefined), o)), /host scaling/);
  });

  it("history: each record keeps the run's median and thread count; a bad one is skipped with a warning", () => {
    const file = join(dir, 'scaling.jsonl');
    appendHistory(file, mkMeta({ run_id: 'r1', host_scaling: [1.2, 1.8, 1.6], host_scaling_threads: 2 }), [row], []);
    appendHistory(file, mkMeta({ run_id: 'r2' }), [row], []);
    const good = JSON.stringify(readHistory(file).records[0]);
    for (const f of [(e: Record<string, unknown>) => (e.host_scaling = 0), (e: Record<string, unknown>) => (e.host_scaling_threads = 1)]) {
      const d = JSON.parse(good);
      f(d.env);
      appendFileSync(file, JSON.stringify(d) + '\n');
    }
    const { records, warnings } = readHistory(file);
    assert.deepEqual(records.map((r) => [r.run_id, r.env.host_scaling, r.env.host_scaling_threads]), [['r1', 1.6, 2], ['r2', undefined, undefined]]);
    assert.equal(warnings.length, 2);
    assert.match(warnings[0], /scaling\.jsonl:3: env\.host_scaling: expected a positive number, skipped$/);
    assert.match(warnings[1], /scaling\.jsonl:4: env\.host_scaling_threads: expected an integer >= 2, skipped$/);
  });
});
