// Row and RunMeta builders shared by the bench tests: every column has a
// plausible default, a test names only what it is about.
import assert from 'node:assert/strict';
import { COST_NAMES, DEFAULT_COSTS } from '../../hardware/costs.js';
import { InputError } from '../../bench/io.js';
import { modelCell } from '../../bench/model.js';
import { COUNTER_COLUMNS, SCHEMA_VERSION, termColumn, type CounterColumn, type Row, type RunMeta } from '../../bench/schema.js';
import type { Workload } from '../../workloads/workload.js';

const COUNTERS: Record<CounterColumn, number> = {
  syscalls: 3,
  enosys: 0,
  faults: 64,
  pages_encrypted: 64,
  pages_decrypted: 0,
  crypto_bytes: 262144,
  clflush_lines: 4096,
  tlb_shootdowns: 1,
  key_programs: 1,
  direct_map_removed: 0,
  pages_zapped: 64,
  vma_splits: 0,
  vma_merges: 0,
  swap_sealed: 0,
  vma_count_max: 2,
  pinned_pages: 0,
  swap_out: 0,
  swap_in: 0,
  migrated: 0,
  migrate_failed: 0,
  plaintext_exposed_bytes: 0,
  integrity_errors: 0,
  stage2_faults: 0,
  vm_exits: 0,
  gup_failures: 0,
  conversions: 0,
  bounce_copies: 0,
  bounce_bytes: 0,
  io_shared_bytes: 0,
  procs: 0,
  procs_encrypted: 0,
};

/** A row; its model columns follow from its counters and the default costs unless given. */
export function mkRow(over: Partial<Row> = {}): Row {
  const counters = { ...COUNTERS };
  for (const c of COUNTER_COLUMNS) if (over[c] !== undefined) counters[c] = over[c]!;
  const ops = over.ops ?? 64;
  const m = modelCell(DEFAULT_COSTS, counters, ops);
  const terms = Object.fromEntries(COST_NAMES.map((c) => [termColumn(c), m.terms[c]]));
  return {
    schema_version: SCHEMA_VERSION,
    run_id: 'run-1',
    git_sha: 'abc1234',
    started_at: '2025-11-25T11:00:00Z',
    host: 'testhost',
    cpu_model: 'Test CPU @ 3.0GHz',
    node_version: 'v20.20.2',
    crypto_backend: 'openssl',
    hardware: 'mktme',
    interface: 'encrypt-mprotect',
    kernel: 'patched',
    swap: 'none',
    workload: 'fault',
    threads: 1,
    outcome: 'encrypted',
    errno: '',
    leak_medium: '',
    leak_bytes: 0,
    modelled_ns_per_op: m.total,
    ...terms,
    model_over_plain_ns_per_op: 123.5,
    cost_source: 'sourced defaults',
    ops,
    sim_ns_per_op_median: 1234.5,
    sim_ns_per_op_p99: 2000,
    sim_rme_pct: 1.25,
    sim_rounds: 64,
    sim_processes: 1,
    sim_cv_pct: NaN,
    other_cpu_pct: 0,
    stability: '',
    ...counters,
    ...over,
  } as Row;
}

export function mkMeta(over: Partial<RunMeta> = {}): RunMeta {
  return {
    schema_version: SCHEMA_VERSION,
    run_id: 'run-1',
    started_at: '2025-11-25T11:00:00Z',
    command: 'node dist/bench/cli.js run --hardware mktme --threads 1,2 --seed 42',
    reproduce: 'git checkout abc1234 && npm ci && npm run build && node dist/bench/cli.js run --hardware mktme --threads 1,2 --seed 42',
    seed: 42,
    host: 'testhost',
    kernel_release: '6.18.44',
    cpu_model: 'Test CPU @ 3.0GHz',
    nproc: 2,
    mem_bytes: 24 * 2 ** 30,
    node_version: 'v20.20.2',
    tinybench_version: '6.2.5',
    crypto_backends: ['openssl'],
    crypto_note: '',
    crypto_impl: '',
    git_sha: 'abc1234',
    load_avg_start: [0.5, 0.4, 0.3],
    load_avg_end: [0.7, 0.5, 0.3],
    cost_source: 'sourced defaults',
    costs: DEFAULT_COSTS,
    wall_seconds: 12.5,
    repeat: 1,
    time_ms: 300,
    warmup_ms: 500,
    min_samples: 10,
    order_seed: 42,
    ...over,
  };
}

/** A cell that was not timed but ran its scenario (samples 0, NaN times). */
export const untimed = { sim_rounds: 0, sim_ns_per_op_median: NaN, sim_ns_per_op_p99: NaN, sim_rme_pct: NaN, sim_processes: 0, other_cpu_pct: NaN } as const;

/** A cell that did not run its scenario (unsupported, crashed): no model, no times. */
export const notRun = {
  ...untimed,
  modelled_ns_per_op: NaN,
  model_over_plain_ns_per_op: NaN,
  ...Object.fromEntries(COST_NAMES.map((c) => [termColumn(c), NaN])),
} as Partial<Row>;

/** fn must throw an InputError whose message is exactly `message` and whose line is `line`. */
export function refuses(fn: () => unknown, line: number, message: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof InputError, `expected an InputError, got ${String(e)}`);
    assert.equal(e.message, message);
    assert.equal(e.line, line);
    return true;
  });
}

/** A one-page workload that does nothing but `round`: the fakes the runner tests time. */
export function fakeWorkload(name: Workload['name'], description: string, round: Workload['round']): Workload {
  return { name, description, op: 'page', kernels: ['patched'], pages: 1, swap: false, dax: false, memLimit: () => Infinity, setup: async () => 0, round };
}
