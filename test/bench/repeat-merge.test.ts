// run --repeat's merge of one cell's rows from its processes: counters are
// exact for every cell (2-CPU cells count in lockstep), so processes that
// disagree on them flag the cell, whatever its CPU count.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mergeCell } from '../../bench/repeat.js';
import { cellKey, type Row } from '../../bench/schema.js';
import { mkRow } from './fixtures.js';

const procs = (rows: Row[]) => mergeCell(rows, rows.map((r, i) => ({ key: cellKey(r), samples: [r.sim_ns_per_op_median], batches: [[100 + i, 101 + i, 100 + i]] })));

describe('repeat: merging a cell across processes', () => {
  for (const threads of [1, 2])
    it(`${threads} CPU${threads > 1 ? 's' : ''}: processes that disagree on a counter flag unstable-counters; agreeing ones do not`, () => {
      const a = mkRow({ workload: 'swap', swap: 'plain', threads, swap_out: 96, swap_in: 64, sim_ns_per_op_median: 100 });
      const same = procs([a, { ...a, sim_ns_per_op_median: 104 }, { ...a, sim_ns_per_op_median: 98 }]);
      assert.ok(!same.row.stability.includes('unstable-counters'), same.row.stability);
      assert.deepEqual(same.samples.samples, [100, 104, 98]);
      assert.equal(same.row.sim_ns_per_op_median, 100);
      const split = procs([a, { ...a, swap_out: 32, swap_in: 0 }, a]);
      assert.ok(split.row.stability.split('+').includes('unstable-counters'), split.row.stability);
      assert.equal(split.row.swap_out, 96, "the first process's counters are the cell's");
    });
});
