// The warm-up lap (runMatrix's warmupCells, run --warmup-cells): a process
// first runs timed cells of its order once and throws them away, the first
// cell of each workload before any second one, then runs its cells as before. Untimed (--guest-hardware) cells are not
// part of the lap; a stop during the lap leaves no row.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DEFAULT_COSTS } from '../../hardware/costs.js';
import { NO_LEAK } from '../../interfaces/conformance.js';
import { compareRuns, formatCompare, type LoadedRun } from '../../bench/compare.js';
import { formatMeta, parseMeta } from '../../bench/csv.js';
import { InputError } from '../../bench/io.js';
import { runMatrix, warmupLap, type CellPlan } from '../../bench/runner.js';
import { cellKey } from '../../bench/schema.js';
import type { RoundReport, Workload } from '../../workloads/workload.js';
import { fakeWorkload, mkMeta, mkRow } from './fixtures.js';

const CLI = fileURLToPath(new URL('../../bench/cli.js', import.meta.url));

/** Every cell's counting rounds, in the order they ran (the recorder's label). */
let log: string[] = [];

/** A workload that records its rounds (round number, counting or timed) and takes about 0.2 ms a round. */
function recorder(label: string, name: 'fault' | 'swap' = 'fault'): Workload & { rounds: { n: number; counting: boolean }[] } {
  const rounds: { n: number; counting: boolean }[] = [];
  return {
    rounds,
    ...fakeWorkload(name, 'records its rounds', async (s, n, counting): Promise<RoundReport> => {
      rounds.push({ n, counting });
      if (counting) log.push(label);
      const end = performance.now() + 0.2;
      while (performance.now() < end);
      s.k.count('faults', 1);
      return { ops: 1, errors: 0, fault: 0, errno: 0, refused: false, fallback: false, observed: counting ? 'encrypted' : null, leaks: NO_LEAK, detail: '' };
    }),
  };
}

const cell = (w: Workload, design: string, timed = true): CellPlan => ({
  backend: 'openssl',
  hardware: 'mktme',
  design,
  kernel: 'patched',
  swap: 'none',
  workload: w,
  threads: 1,
  ...(timed ? {} : { timed: false as const }),
});
const opts = { seed: 1, timeMs: 5, minSamples: 3, warmupMs: 1, tmpdir: tmpdir(), costs: DEFAULT_COSTS, costSource: 'test' };

describe('the warm-up lap', () => {
  it('runs the first timed cells of the order once more, first, and keeps only the second run', async () => {
    log = [];
    const untimed = recorder('untimed'), a = recorder('a'), b = recorder('b', 'swap');
    const plan = [cell(untimed, 'plain-mmap', false), cell(a, 'encrypt-mprotect'), cell(b, 'madvise-encrypt')];
    const progress: number[] = [];
    const lapped = await runMatrix(plan, mkMeta(), { ...opts, warmupCells: 1, progress: (done) => progress.push(done) });
    // the lap is a (the first timed cell of the order), before anything else; the untimed cell is never timed
    assert.deepEqual(log, ['a', 'untimed', 'a', 'b']);
    assert.equal(untimed.rounds.filter((r) => !r.counting).length, 0);
    // the lap timed a too: timed rounds between its two counting rounds
    const second = a.rounds.findIndex((r, i) => i > 0 && r.counting);
    assert.ok(second > 1 && a.rounds.slice(1, second).every((r) => !r.counting), 'the lap timed a before its second run');
    // the row kept is the second run's: its timed rounds are among those after its counting round
    assert.ok(lapped.rows[1].sim_rounds > 0 && lapped.rows[1].sim_rounds <= a.rounds.length - second - 1, `${lapped.rows[1].sim_rounds} of ${a.rounds.length - second - 1}`);
    assert.deepEqual(lapped.rows.map((r) => r.interface), ['plain-mmap', 'encrypt-mprotect', 'madvise-encrypt']);
    assert.deepEqual(progress, [1, 2, 3], 'progress counts the cells, not the lap');
    // the same cells without a lap: one run each, the same outcomes and exact counters
    log = [];
    const u0 = recorder('untimed'), a0 = recorder('a'), b0 = recorder('b', 'swap');
    const plain = await runMatrix([cell(u0, 'plain-mmap', false), cell(a0, 'encrypt-mprotect'), cell(b0, 'madvise-encrypt')], mkMeta(), { ...opts, warmupCells: 0 });
    assert.deepEqual(log, ['untimed', 'a', 'b']);
    assert.deepEqual(plain.rows.map((r) => [r.interface, r.outcome, r.faults]), lapped.rows.map((r) => [r.interface, r.outcome, r.faults]));
  });

  it('follows the order it is given, and takes no more cells than there are', async () => {
    log = [];
    const a = recorder('a'), b = recorder('b', 'swap');
    const r = await runMatrix([cell(a, 'encrypt-mprotect'), cell(b, 'madvise-encrypt')], mkMeta(), { ...opts, warmupCells: 5, order: [1, 0] });
    assert.deepEqual(log, ['b', 'a', 'b', 'a']);
    assert.deepEqual(r.rows.map((x) => x.interface), ['madvise-encrypt', 'encrypt-mprotect']);
  });

  it('takes the first cell of each workload in the order before a second cell of any', async () => {
    log = [];
    const a1 = recorder('a1'), a2 = recorder('a2'), b = recorder('b', 'swap');
    const plan = [cell(a1, 'encrypt-mprotect'), cell(a2, 'madvise-encrypt'), cell(b, 'dev-mktme')];
    await runMatrix(plan, mkMeta(), { ...opts, warmupCells: 2, order: [1, 0, 2] });
    // order a2, a1, b: the lap is a2 (fault's first) and b (swap's first), not a2 and a1
    assert.deepEqual(log, ['a2', 'b', 'a2', 'a1', 'b']);
  });

  it('warmupLap: every workload once in order of first appearance, then the rest in order, n in all', () => {
    const w = (name: string) => ({ workload: { name } }) as CellPlan;
    const plan = [w('fault'), w('fault'), w('swap'), w('key-exhaustion'), w('swap'), w('fault')];
    const timed = [5, 1, 4, 0, 3, 2];
    assert.deepEqual(warmupLap(plan, timed, 3), [5, 4, 3]);
    assert.deepEqual(warmupLap(plan, timed, 2), [5, 4]);
    assert.deepEqual(warmupLap(plan, timed, 5), [5, 4, 3, 1, 0]);
    assert.deepEqual(warmupLap(plan, timed, 100), [5, 4, 3, 1, 0, 2]);
    assert.deepEqual(warmupLap(plan, timed, 0), []);
    assert.deepEqual(warmupLap(plan, [], 8), []);
  });

  it('a stop asked during the lap ends the run with no row', async () => {
    log = [];
    const a = recorder('a'), b = recorder('b', 'swap');
    let asked = 0;
    const r = await runMatrix([cell(a, 'encrypt-mprotect'), cell(b, 'madvise-encrypt')], mkMeta(), { ...opts, warmupCells: 2, stop: () => (++asked > 1 ? 'SIGINT' : null) });
    assert.deepEqual(log, ['a'], 'the first lap cell ran, then the stop');
    assert.deepEqual(r.rows, []);
  });
});

describe('the warm-up lap in the meta file and on the command line', () => {
  it('the meta file keeps warmup_cells; an older one without it still reads; a bad one is refused in one line', () => {
    const file = 'r.meta.json';
    assert.equal(parseMeta(formatMeta(mkMeta({ warmup_cells: 8 })), file).warmup_cells, 8);
    assert.equal(parseMeta(formatMeta(mkMeta()), file).warmup_cells, undefined);
    for (const bad of [-1, 1.5, '8'])
      assert.throws(() => parseMeta(formatMeta(mkMeta({ warmup_cells: bad as number })), file), (e: Error) => e instanceof InputError && /warmup_cells: expected an integer >= 0/.test(e.message));
  });

  it('compare says when the two runs had different laps', () => {
    const row = mkRow({ run_id: 'r1' });
    const run = (file: string, lap: number | undefined): LoadedRun => ({ file, meta: mkMeta({ run_id: 'r1', seed: 1, ...(lap === undefined ? {} : { warmup_cells: lap }) }), rows: [row], samples: new Map([[cellKey(row), [1, 2, 3]]]) });
    const opts = { thresholdPct: 5, alpha: 0.05 };
    assert.match(formatCompare(compareRuns(run('b.csv', 0), run('n.csv', 8), opts)), /settings differ \(warmup_cells 0 vs 8\)/);
    assert.doesNotMatch(formatCompare(compareRuns(run('b.csv', 8), run('n.csv', 8), opts)), /settings differ/);
    // the header gives the new run's lap with its other settings; an older run's header has none
    assert.match(formatCompare(compareRuns(run('b.csv', 0), run('n.csv', 8), opts)), /^settings: repeat 1, warm-up lap 8 cells, warm-up 500 ms, time 300 ms,/m);
    assert.match(formatCompare(compareRuns(run('b.csv', 8), run('n.csv', undefined), opts)), /^settings: repeat 1, warm-up 500 ms, time 300 ms,/m);
  });

  it('run --warmup-cells takes an integer from 0 to 1000, and says what was wrong otherwise', () => {
    for (const bad of ['-1', 'x', '1001', '2.5']) {
      const r = spawnSync(process.execPath, [CLI, 'run', '-i', 'plain-mmap', '-w', 'fault', '--warmup-cells', bad, '--no-history', '-f', 'none', '--out', '/nonexistent/x.csv'], { encoding: 'utf8' });
      assert.equal(r.status, 2, r.stderr);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`--warmup-cells: expected an integer in \\[0, 1000\\], got '${bad.replace('.', '\\.')}'`));
    }
  });
});
