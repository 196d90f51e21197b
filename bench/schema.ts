// The results schema: one CSV row per cell, columns exactly as DESIGN.md
// lists them, schema_version first. Bump SCHEMA_VERSION on any change to the
// columns or their meaning; readers refuse versions they do not know.

export const SCHEMA_VERSION = 1;

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
  'workload',
  'threads',
] as const;

export const OUTCOME_COLUMNS = ['outcome', 'errno'] as const;
export const TIME_COLUMNS = ['ops', 'wall_ns_median', 'wall_ns_p99', 'wall_rme_pct', 'samples'] as const;
export const MODEL_COLUMNS = ['modelled_ns_per_op'] as const;
export const COUNTER_COLUMNS = [
  'syscalls',
  'enosys',
  'faults',
  'pages_encrypted',
  'pages_decrypted',
  'crypto_bytes',
  'clflush_lines',
  'tlb_shootdowns',
  'vma_count_max',
  'pinned_pages',
  'swap_out',
  'swap_in',
  'migrated',
  'migrate_failed',
  'plaintext_exposed_bytes',
  'integrity_errors',
] as const;

export const COLUMNS = [
  ...IDENTITY_COLUMNS,
  ...OUTCOME_COLUMNS,
  ...TIME_COLUMNS,
  ...MODEL_COLUMNS,
  ...COUNTER_COLUMNS,
] as const;

export type Column = (typeof COLUMNS)[number];
export type CounterColumn = (typeof COUNTER_COLUMNS)[number];

/** Columns whose values are numbers (the rest are strings). */
export const NUMERIC_COLUMNS: ReadonlySet<Column> = new Set<Column>([
  'schema_version',
  'threads',
  ...TIME_COLUMNS,
  ...MODEL_COLUMNS,
  ...COUNTER_COLUMNS,
]);

/** The columns that identify a cell across runs (for compare). */
export const CELL_KEY: readonly Column[] = ['crypto_backend', 'hardware', 'interface', 'kernel', 'workload', 'threads'];

/**
 * One cell's row. Time columns are per op, in ns; a cell that was not timed
 * (unsupported, crashed) has samples 0 and NaN times, written as empty fields.
 */
export interface Row {
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
  kernel: 'patched' | 'unpatched';
  workload: string;
  threads: number;
  outcome: string;
  errno: string;
  ops: number;
  wall_ns_median: number;
  wall_ns_p99: number;
  wall_rme_pct: number;
  samples: number;
  modelled_ns_per_op: number;
  syscalls: number;
  enosys: number;
  faults: number;
  pages_encrypted: number;
  pages_decrypted: number;
  crypto_bytes: number;
  clflush_lines: number;
  tlb_shootdowns: number;
  vma_count_max: number;
  pinned_pages: number;
  swap_out: number;
  swap_in: number;
  migrated: number;
  migrate_failed: number;
  plaintext_exposed_bytes: number;
  integrity_errors: number;
}

/** Run-level metadata, written as `# key: value` lines before the header. */
export interface RunMeta {
  run_id: string;
  started_at: string;
  command: string;
  seed: number;
  host: string;
  cpu_model: string;
  node_version: string;
  git_sha: string;
  [key: string]: string | number;
}

/** Per-cell timing samples (ns per op), kept for statistical comparison. */
export interface CellSamples {
  /** CELL_KEY values joined with '|' */
  key: string;
  samples: number[];
}

export const cellKey = (r: Pick<Row, 'crypto_backend' | 'hardware' | 'interface' | 'kernel' | 'workload' | 'threads'>): string =>
  CELL_KEY.map((c) => String(r[c as keyof typeof r])).join('|');
