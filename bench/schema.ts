// The results schema: one CSV row per cell, header on the first line, columns
// exactly as DESIGN.md lists them, schema_version first. The argument (the
// modelled cost, itemised) comes before the simulator's own time. Run
// metadata lives in <run id>.meta.json beside the CSV. Bump SCHEMA_VERSION on
// any change to the columns or their meaning; readers refuse versions they do
// not know.
//
// Version history: 1 = `# key: value` comment lines before the header,
// wall_ns_* time columns, no itemised model. 2 = the itemised model, one
// process. 3 = this: timings are medians over --repeat fresh processes
// (sim_processes, sim_cv_pct), with the CPU share other processes took
// (other_cpu_pct) and stability flags; samples are per-process medians.
import { COST_NAMES, type CostName, type CostTable } from '../hardware/costs.js';
import { COUNTING } from '../workloads/board.js';

export const SCHEMA_VERSION = 4;

export const IDENTITY_COLUMNS = [
  'schema_version',
  'run_id',
  'git_sha',
  'started_at',
  'host',
  'cpu_model',
  'node_version',
  'crypto_backend',
  'hardware',
  'interface',
  'kernel',
  'swap',
  'workload',
  'threads',
] as const;

export const OUTCOME_COLUMNS = ['outcome', 'errno', 'leak_medium', 'leak_bytes'] as const;

/** One model term per cost-table entry: `model_<cost>_ns_per_op`. */
export type TermColumn = `model_${CostName}_ns_per_op`;
export const termColumn = (c: CostName): TermColumn => `model_${c}_ns_per_op`;
export const TERM_COLUMNS: readonly TermColumn[] = COST_NAMES.map(termColumn);

export const MODEL_COLUMNS = ['modelled_ns_per_op', ...TERM_COLUMNS, 'model_over_plain_ns_per_op', 'cost_source'] as const;
export const SIM_COLUMNS = [
  'ops',
  'sim_ns_per_op_median',
  'sim_ns_per_op_p99',
  'sim_rme_pct',
  'sim_rounds',
  /** fresh processes that timed the cell (--repeat) */
  'sim_processes',
  /** spread of the per-process medians: standard deviation / mean, % */
  'sim_cv_pct',
  /** the largest share of the machine's CPU time other processes used while the cell was timed, % */
  'other_cpu_pct',
  /** '' or flags joined with '+': noisy, drift, bimodal, unstable-counters (bench/stability.ts) */
  'stability',
] as const;
/** Sim columns that hold text. */
const SIM_TEXT: ReadonlySet<string> = new Set(['stability']);
export const COUNTER_COLUMNS = [
  'syscalls',
  'enosys',
  'faults',
  'pages_encrypted',
  'pages_decrypted',
  'crypto_bytes',
  'clflush_lines',
  'tlb_shootdowns',
  'key_programs',
  'direct_map_removed',
  'pages_zapped',
  'vma_splits',
  'vma_merges',
  'swap_sealed',
  'vma_count_max',
  'pinned_pages',
  'swap_out',
  'swap_in',
  'migrated',
  'migrate_failed',
  'plaintext_exposed_bytes',
  'integrity_errors',
  'stage2_faults',
  'vm_exits',
  'gup_failures',
  'conversions',
  'bounce_copies',
  'bounce_bytes',
  /** I/O data a confidential guest put in shared memory: plaintext by design, not a leak */
  'io_shared_bytes',
  /** key-exhaustion: processes that each wanted their own key, and how many got encrypted memory */
  'procs',
  'procs_encrypted',
] as const;

export const COLUMNS = [...IDENTITY_COLUMNS, ...OUTCOME_COLUMNS, ...MODEL_COLUMNS, ...SIM_COLUMNS, ...COUNTER_COLUMNS] as const;

export type Column = (typeof COLUMNS)[number];
export type CounterColumn = (typeof COUNTER_COLUMNS)[number];

/** Columns whose values are numbers (the rest are strings). */
export const NUMERIC_COLUMNS: ReadonlySet<Column> = new Set<Column>([
  'schema_version',
  'threads',
  'leak_bytes',
  ...MODEL_COLUMNS.filter((c) => c !== 'cost_source'),
  ...SIM_COLUMNS.filter((c) => !SIM_TEXT.has(c)),
  ...COUNTER_COLUMNS,
]);

/** Numeric columns that are empty for a cell that did not run its scenario or was not timed (read back as NaN). */
export const MAY_BE_EMPTY: ReadonlySet<Column> = new Set<Column>([
  'modelled_ns_per_op',
  ...TERM_COLUMNS,
  'model_over_plain_ns_per_op',
  'sim_ns_per_op_median',
  'sim_ns_per_op_p99',
  'sim_rme_pct',
  'sim_cv_pct',
  'other_cpu_pct',
]);

/** The columns that identify a cell across runs (for compare). */
export const CELL_KEY = ['crypto_backend', 'hardware', 'interface', 'kernel', 'swap', 'workload', 'threads'] as const satisfies readonly Column[];

export type Kernel = 'patched' | 'unpatched';
/** The swap device of a cell: none (the workload does not swap), plain, or encrypted (dm-crypt). */
export type SwapKind = 'none' | 'plain' | 'encrypted';
export const SWAP_KINDS: readonly SwapKind[] = ['none', 'plain', 'encrypted'];

/**
 * One cell's row. Model columns are per op, in ns, and NaN (empty) for a cell
 * that did not run its scenario (unsupported, crashed); sim columns are NaN
 * for a cell that was not timed (sim_rounds 0).
 */
export type Row = {
  schema_version: number;
  run_id: string;
  git_sha: string;
  started_at: string;
  host: string;
  cpu_model: string;
  node_version: string;
  crypto_backend: string;
  hardware: string;
  interface: string;
  kernel: Kernel;
  swap: SwapKind;
  workload: string;
  threads: number;
  outcome: string;
  errno: string;
  /** '' or media joined with '+': swap, dax, free-ram */
  leak_medium: string;
  leak_bytes: number;
  modelled_ns_per_op: number;
  model_over_plain_ns_per_op: number;
  cost_source: string;
  ops: number;
  sim_ns_per_op_median: number;
  sim_ns_per_op_p99: number;
  sim_rme_pct: number;
  sim_rounds: number;
  sim_processes: number;
  sim_cv_pct: number;
  other_cpu_pct: number;
  stability: string;
} & Record<TermColumn, number> &
  Record<CounterColumn, number>;

/** Run-level metadata: `<run id>.meta.json`. */
export interface RunMeta {
  schema_version: number;
  run_id: string;
  started_at: string;
  /** the run command, resolved: every option spelled out */
  command: string;
  /** checkout, install and run: what reproduces this run */
  reproduce: string;
  seed: number;
  host: string;
  kernel_release: string;
  cpu_model: string;
  nproc: number;
  mem_bytes: number;
  node_version: string;
  tinybench_version: string;
  crypto_backends: string[];
  /** '' or one line: why the native backend was not used (not built, did not load) */
  crypto_note: string;
  /** the native backend's XTS implementation ('vaes-avx512', 'openssl-evp'); absent before it had a choice, '' when native was not run */
  crypto_impl?: string;
  git_sha: string;
  /** 1, 5, 15 minute load averages when the run started and when it ended */
  load_avg_start: number[];
  load_avg_end: number[];
  cost_source: string;
  costs: CostTable;
  wall_seconds: number;
  /** timing settings: fresh processes per timed cell, ms of timing and warm-up, minimum rounds */
  repeat: number;
  time_ms: number;
  warmup_ms: number;
  /** cells of each process's warm-up lap, run first and discarded (absent in older runs: 0) */
  warmup_cells?: number;
  min_samples: number;
  /** node and V8 flags of the processes that timed the cells ('' none; absent in older runs) */
  timing_flags?: string;
  /** seed of the shuffled cell order of each process (process p uses order_seed + p) */
  order_seed: number;
  /**
   * '' for a run that ran every cell; else why and where it stopped early
   * ("SIGINT after 12 of 70 cells"): the result set holds the cells done.
   */
  stopped?: string;
  /**
   * Per process that timed cells, the median ns of one pass of the host
   * reference (bench/hostref.ts): its spread is the host's, its median
   * the host's speed. Absent in older runs.
   */
  host_ref_ns?: number[];
  /** what the host reference ran on: 'native vaes-avx512', 'native openssl-evp', 'openssl' (absent in older runs) */
  host_ref_impl?: string;
  /**
   * Per process that timed cells of 2 or more CPUs, how many times one
   * thread's work host_scaling_threads threads of the host reference got
   * through side by side (bench/hostref.ts hostScaling): the most that many
   * CPUs can gain over one on this host. Absent in older runs and runs of
   * 1-CPU cells only.
   */
  host_scaling?: number[];
  /** the threads host_scaling ran: the run's most worker CPUs */
  host_scaling_threads?: number;
  /**
   * 'lockstep': the counting round ran cells of 2 or more CPUs in lockstep, so
   * every cell's counters are exact (workloads/board.ts COUNTING). Absent in
   * older runs, whose 2-CPU counters depended on how the CPUs interleaved.
   */
  counting?: string;
  /** the CSV's record count and its SHA-256: a truncated or foreign CSV is refused (optional: older runs lack them) */
  rows?: number;
  csv_sha256?: string;
}

/**
 * Must a cell of `threads` CPUs count the same events in runs made the way
 * `countings` (RunMeta.counting of each) say? 1-CPU cells always must.
 */
export const countersExact = (threads: number, ...countings: (string | number | string[] | undefined)[]): boolean =>
  threads === 1 || countings.every((c) => c === COUNTING);

/** RunMeta.host_ref_ns and host_scaling as a meta file or a `run --repeat` child's report holds them: finite, positive numbers. */
export const isPositiveNumbers = (v: unknown): v is number[] => Array.isArray(v) && v.every((x: unknown) => Number.isFinite(x) && (x as number) > 0);

/** Per-cell timing samples (ns per op), kept for statistical comparison. */
export interface CellSamples {
  /** CELL_KEY values joined with '|' */
  key: string;
  /** one per fresh process: its median ns per op (what compare tests) */
  samples: number[];
  /** per process, the medians of consecutive batches of rounds in time order (drift, bimodality) */
  batches?: number[][];
}

export const cellKey = (r: Pick<Row, (typeof CELL_KEY)[number]>): string => CELL_KEY.map((c) => String(r[c])).join('|');
