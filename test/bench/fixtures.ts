// Row and RunMeta builders shared by the bench tests: every column has a
// plausible default, a test names only what it is about.
import { SCHEMA_VERSION, type Row, type RunMeta } from '../../bench/schema.js';


export function mkRow(over: Partial<Row> = {}): Row {
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
    workload: 'fault',
    threads: 1,
    outcome: 'encrypted',
    errno: '',
    ops: 1000,
    wall_ns_median: 1234.5,
    wall_ns_p99: 2000,
    wall_rme_pct: 1.25,
    samples: 64,
    modelled_ns_per_op: 980.333,
    syscalls: 3,
    enosys: 0,
    faults: 64,
    pages_encrypted: 64,
    pages_decrypted: 0,
    crypto_bytes: 262144,
    clflush_lines: 4096,
    tlb_shootdowns: 1,
    vma_count_max: 2,
    pinned_pages: 0,
    swap_out: 0,
    swap_in: 0,
    migrated: 0,
    migrate_failed: 0,
    plaintext_exposed_bytes: 0,
    integrity_errors: 0,
    ...over,
  };
}

export function mkMeta(over: Partial<RunMeta> = {}): RunMeta {
  return {
    run_id: 'run-1',
    started_at: '2025-11-25T11:00:00Z',
    command: 'memcrypt-bench run --hardware mktme --threads 1,2 --seed 42',
    seed: 42,
    host: 'testhost',
    cpu_model: 'Test CPU @ 3.0GHz',
    node_version: 'v20.20.2',
    git_sha: 'abc1234',
    ...over,
  };
}

/** An untimed cell (unsupported, crashed): samples 0, NaN times. */
export const untimed = { samples: 0, wall_ns_median: NaN, wall_ns_p99: NaN, wall_rme_pct: NaN, modelled_ns_per_op: NaN } as const;
