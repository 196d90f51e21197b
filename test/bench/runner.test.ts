// The runner with a workload whose rounds take a known time: ns per op
// (not ms, not us), warm-up rounds kept out of the samples, the model per op,
// and a timed round that does not do what the counting round did is an error,
// not a sample.
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { describe, it } from 'node:test';
import { DEFAULT_COSTS } from '../../hardware/costs.js';
import { NO_LEAK } from '../../interfaces/conformance.js';
import { runMatrix, type CellPlan } from '../../bench/runner.js';
import type { RoundReport, Workload } from '../../workloads/workload.js';
import { fakeWorkload, mkMeta } from './fixtures.js';

const OPS = 4;
const spin = (ms: number) => {
  const end = performance.now() + ms;
  while (performance.now() < end);
};

/**
 * Rounds 1..10 (tinybench's warm-up iterations at least) take 40 ms, later ones 1 ms; `lie` makes timed rounds fall back.
 * The gap is wide so that a loaded machine (a timed round preempted for a few ms) cannot blur the two.
 */
function fake(lie = false): Workload & { calls: { n: number; counting: boolean }[] } {
  const calls: { n: number; counting: boolean }[] = [];
  return {
    calls,
    ...fakeWorkload('fault', 'a fake workload of known duration', async (s, n, counting): Promise<RoundReport> => {
      calls.push({ n, counting });
      if (!counting) spin(n <= 10 ? 40 : 1);
      s.k.count('faults', OPS); // the counting round's events: what one round does
      return {
        ops: OPS,
        errors: 0,
        fault: 0,
        errno: 0,
        refused: false,
        fallback: lie && !counting,
        observed: counting ? 'encrypted' : null,
        leaks: NO_LEAK,
        detail: '',
      };
    }),
  };
}

const plan = (w: Workload): CellPlan[] => [{ backend: 'openssl', hardware: 'mktme', design: 'plain-mmap', kernel: 'patched', swap: 'none', workload: w, threads: 1 }];
const opts = { seed: 1, timeMs: 40, minSamples: 8, warmupMs: 1, tmpdir: tmpdir(), costs: DEFAULT_COSTS, costSource: 'test' };

describe('runner', () => {
  it('times in ns per op, keeps warm-up rounds out of the samples, models per op', async () => {
    const w = fake();
    const { rows, samples } = await runMatrix(plan(w), mkMeta(), opts);
    const r = rows[0];
    // one counting round first, then only timed ones
    assert.deepEqual(w.calls[0], { n: 0, counting: true });
    assert.ok(w.calls.slice(1).every((c, i) => !c.counting && c.n === i + 1));
    assert.ok(r.sim_rounds >= 8 && r.sim_rounds <= w.calls.length - 1 - 10, `${r.sim_rounds} timed of ${w.calls.length - 1} rounds`);
    // a 1 ms round of 4 ops is 250 000 ns per op: the unit is ns (not 250, not 2.5e8)
    assert.ok(r.sim_ns_per_op_median >= 250_000 && r.sim_ns_per_op_median < 5_000_000, String(r.sim_ns_per_op_median));
    // no 40 ms warm-up round (1e7 ns per op) among the timed samples or their batch medians
    assert.ok(r.sim_ns_per_op_p99 < 7_500_000, `p99 ${r.sim_ns_per_op_p99}: warm-up rounds in the samples`);
    assert.ok(samples[0].samples.length > 0 && samples[0].samples.every((x) => x < 7_500_000), String(samples[0].samples));
    // the model: 4 faults over 4 ops, at the table's price of a fault
    assert.equal(r.faults, OPS);
    assert.equal(r.model_fault_ns_per_op, DEFAULT_COSTS.fault.ns);
    assert.equal(r.outcome, 'encrypted');
  });

  it('a timed round that does not do what the counting round did is an error, not a sample', async () => {
    await assert.rejects(runMatrix(plan(fake(true)), mkMeta(), opts), /round 1: fell back to plain memory .*unlike the counting round/);
  });
});
