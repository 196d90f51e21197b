// The host reference loop (bench/hostref.ts) and where its figure goes: the
// run's meta, the report's head, compare's head and note, the history.
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { compareRuns, formatCompare, type LoadedRun } from '../../bench/compare.js';
import { formatMeta, parseMeta } from '../../bench/csv.js';
import { appendHistory, readHistory } from '../../bench/history.js';
import { hostRefSummary, hostReferenceWindow } from '../../bench/hostref.js';
import { formatReport } from '../../bench/report.js';
import { cellKey, type Row, type RunMeta } from '../../bench/schema.js';
import { formatHistory, historyTrend } from '../../bench/trend.js';
import { mkMeta, mkRow } from './fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'memcrypt-hostref-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('the host reference loop', () => {
  it('a window: the time of each pass after the warm-up, in ns, for at least the window', () => {
    const t = performance.now();
    const w = hostReferenceWindow(5, 2);
    assert.ok(performance.now() - t >= 7);
    assert.ok(w.length >= 1 && w.every((x) => Number.isFinite(x) && x > 0), String(w));
    // a window of 0 ms still times one pass
    assert.equal(hostReferenceWindow(0, 0).length, 1);
  });

  it('summary: the median a pass, and the spread between processes when there are several', () => {
    assert.equal(hostRefSummary(undefined), '');
    assert.equal(hostRefSummary([]), '');
    assert.equal(hostRefSummary([6310]), '6.31 us a pass (1 process)');
    // median 100 us; sd 10 us of mean 100 us
    assert.equal(hostRefSummary([90_000, 110_000, 100_000]), '100 us a pass, cv 10.0% between 3 processes');
  });
});

describe('the host reference in the result set', () => {
  const row: Row = mkRow({ run_id: 'r1' });
  const run = (file: string, ref: number[] | undefined, samples = [96, 97, 98, 99, 100, 101, 102, 103, 104]): LoadedRun => ({
    file,
    meta: mkMeta({ run_id: 'r1', ...(ref ? { host_ref_ns: ref } : {}) }),
    rows: [row],
    samples: new Map([[cellKey(row), samples]]),
  });

  it('the meta keeps it; a meta with a bad one is refused in one line', () => {
    const meta = mkMeta({ host_ref_ns: [114535, 134019] });
    assert.deepEqual(parseMeta(formatMeta(meta), 'm.json').host_ref_ns, [114535, 134019]);
    assert.equal(parseMeta(formatMeta(mkMeta()), 'm.json').host_ref_ns, undefined); // older runs
    for (const bad of [[0], [-1], ['1'], 5] as unknown[])
      assert.throws(() => parseMeta(formatMeta({ ...meta, host_ref_ns: bad as number[] }), 'm.json'), { message: 'm.json: host_ref_ns: expected an array of positive numbers' });
  });

  it("the report's head says it, and the harness section compares the cells' spread with it", () => {
    const text = formatReport(mkMeta({ host_ref_ns: [90_000, 110_000, 100_000] }), [mkRow({ sim_processes: 3, sim_cv_pct: 12 })]);
    assert.match(text, /\n {2}host ref 100 us a pass, cv 10\.0% between 3 processes \(a fixed\n {11}single-thread loop: the host's own spread\)\n/);
    assert.match(text.replace(/\n {2}/g, ' '), /\(host ref, above\) spread 10\.0% between them: no cell can be expected steadier on this host\./);
    const old = formatReport(mkMeta(), [mkRow()]);
    assert.doesNotMatch(old, /host ref/);
  });

  it('compare: both in its head; a shift of the host beyond the threshold is a note, either way', () => {
    const slower = compareRuns(run('b.csv', [100_000, 101_000, 99_000]), run('n.csv', [110_000, 109_000, 111_000]), { thresholdPct: 5, alpha: 0.05 });
    assert.deepEqual(slower.notes, [
      'the host reference loop, which runs none of the simulator, took 10.0% longer in new than in base: the host itself was slower, and changes of that size may be the host\'s',
    ]);
    const faster = compareRuns(run('b.csv', [100_000]), run('n.csv', [80_000]), { thresholdPct: 5, alpha: 0.05 });
    assert.match(faster.notes[0], /took 20\.0% less time in new than in base: the host itself was faster/);
    // within the threshold, or not recorded on one side: no note
    assert.deepEqual(compareRuns(run('b.csv', [100_000]), run('n.csv', [104_000]), { thresholdPct: 5, alpha: 0.05 }).notes, []);
    assert.deepEqual(compareRuns(run('b.csv', [100_000]), run('n.csv', [104_000]), { thresholdPct: 3, alpha: 0.05 }).notes.length, 1);
    assert.deepEqual(compareRuns(run('b.csv', undefined), run('n.csv', [200_000]), { thresholdPct: 5, alpha: 0.05 }).notes, []);
    const head = formatCompare(compareRuns(run('b.csv', undefined), run('n.csv', [90_000, 110_000, 100_000]), { thresholdPct: 5, alpha: 0.05 }));
    assert.match(head, /\nhost ref: base not recorded; new 100 us a pass, cv 10\.0% between 3\n {2}processes\n/);
    assert.doesNotMatch(formatCompare(compareRuns(run('b.csv', undefined), run('n.csv', undefined), { thresholdPct: 5, alpha: 0.05 })), /host ref/);
  });

  it("history: each record keeps the run's median; the trend prints it per commit, over that commit's runs", () => {
    const file = join(dir, 'h.jsonl');
    const at = (h: number) => new Date(Date.UTC(2025, 0, 1) + h * 3600_000).toISOString();
    const meta = (id: string, sha: string, h: number, ref?: number[]): RunMeta => mkMeta({ run_id: id, git_sha: sha, started_at: at(h), ...(ref ? { host_ref_ns: ref } : {}) });
    appendHistory(file, meta('a1', 'c1', 1, [100_000, 300_000, 200_000]), [row], [{ key: cellKey(row), samples: [100, 101] }]);
    appendHistory(file, meta('a2', 'c1', 2, [400_000]), [row], [{ key: cellKey(row), samples: [100, 101] }]);
    appendHistory(file, meta('b1', 'c2', 3), [row], [{ key: cellKey(row), samples: [100, 101] }]);
    const { records, warnings } = readHistory(file);
    assert.deepEqual(warnings, []);
    assert.deepEqual(records.map((r) => r.env.host_ref_ns), [200_000, 400_000, undefined]);
    const t = historyTrend(records, { last: 10, thresholdPct: 5, alpha: 0.05 });
    assert.deepEqual(t.shas.map((s) => s.hostRefNs), [300_000, NaN]);
    const text = formatHistory(t);
    assert.match(text, /\n {2}c1 {8}2025-01-01 {2}2 runs {3}host ref 300 us\n {2}c2 {8}2025-01-01 {2}1 run\n/);
  });

  it('history: a record whose host reference is not a positive number is skipped with a warning', () => {
    const file = join(dir, 'bad.jsonl');
    appendHistory(file, mkMeta({ run_id: 'r1', host_ref_ns: [5] }), [row], []);
    const damaged = JSON.parse(JSON.stringify(readHistory(file).records[0]));
    damaged.env.host_ref_ns = -5;
    appendHistory(file, mkMeta({ run_id: 'r2' }), [row], []);
    appendFileSync(file, JSON.stringify(damaged) + '\n');
    const { records, warnings } = readHistory(file);
    assert.deepEqual(records.map((r) => [r.run_id, r.env.host_ref_ns]), [['r1', 5], ['r2', undefined]]);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /bad\.jsonl:3: env\.host_ref_ns: expected a positive number, skipped$/);
  });
});
