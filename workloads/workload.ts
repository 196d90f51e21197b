// What a workload is, and how a round's report becomes a cell outcome.
import { NO_LEAK, observeFrames, scanLeaks, withLeaks, type LeakScan, type Outcome, type ProcCount } from '../interfaces/conformance.js';
import { E, errnoName, type ErrnoName } from '../kernel/errno.js';
import type { CpuReport } from './protocol.js';
import type { CellSession } from './session.js';

export interface RoundReport {
  /** operations this round did (what one "op" is depends on the workload) */
  readonly ops: number;
  /** pages that read back wrong */
  readonly errors: number;
  /** first -errno a CPU's load or store got (-EFAULT: SIGSEGV) */
  readonly fault: number;
  /** the -errno that explains the cell: the design's fallback cause, or the scenario's refusal */
  readonly errno: number;
  /** the scenario's kernel operation was refused (migration EBUSY, ...) */
  readonly refused: boolean;
  /** the helper fell back to plain memory */
  readonly fallback: boolean;
  /** the frames' state, when the round was asked to look */
  readonly observed: Outcome | null;
  /** where the region's plaintext was found outside its frames (counting round) */
  readonly leaks: LeakScan;
  readonly detail: string;
  /** processes the round ran and how many got encrypted memory (key-exhaustion) */
  readonly procs?: ProcCount;
}

export interface Workload {
  readonly name: WorkloadName;
  readonly description: string;
  /** what one op is, for the report */
  readonly op: string;
  /** kernels it runs on by default */
  readonly kernels: readonly ('patched' | 'unpatched')[];
  /** pages of memory it works on */
  readonly pages: number;
  /** needs a swap device */
  readonly swap: boolean;
  /** needs a Device-DAX region */
  readonly dax: boolean;
  /** the process's memory limit, in pages, for a cell of `threads` worker CPUs */
  memLimit(pages: number, threads: number): number;
  /** a VMM and its guest (or VMs' keys): also run on --guest-hardware, where the CPU has confidential VMs */
  readonly guest?: boolean;
  /** the most worker CPUs worth a cell (its work runs on the boot CPU); none: any */
  readonly maxThreads?: number;
  /** frames per NUMA node the machine needs beyond 2·pages + 64, given the profile's KeyIDs */
  frames?(nrKeyids: number): number;
  /** page-table slots the kernel needs beyond 256 (every process takes 32 for its top level) */
  pgtableSlots?(nrKeyids: number): number;
  /** once per cell, before the first round: 0 or -errno (the cell cannot run) */
  setup(s: CellSession): Promise<number>;
  /** one round; `counting` is the first, observed round */
  round(s: CellSession, n: number, counting: boolean): Promise<RoundReport>;
}

export const WORKLOAD_NAMES = ['fault', 'enosys-fallback', 'swap', 'migration', 'dax-stacking', 'qemu-guest', 'qemu-nvdimm', 'key-exhaustion'] as const;
export type WorkloadName = (typeof WORKLOAD_NAMES)[number];

/** The pattern seed of round n of a cell. */
export const roundSeed = (seed: number, n: number): number => (seed * 1_000_003 + n) >>> 0;

/** Sum the CPUs' reports. */
export function sumDone(done: readonly CpuReport[]): { errors: number; fault: number; accesses: number } {
  let errors = 0, fault = 0, accesses = 0;
  for (const d of done) {
    errors += d.errors;
    accesses += d.accesses;
    if (fault === 0) fault = d.fault;
  }
  return { errors, fault, accesses };
}

/** Look at the frames of the session's region (or addr) for the counting round. */
export function observe(s: CellSession, addr: number, seed: number, counting: boolean): Outcome | null {
  return counting && addr >= 0 ? observeFrames(s.k, s.task, addr, s.pages, seed) : null;
}

/** Scan swap, free RAM (and a DAX image) for the region's plaintext, in the counting round only. */
export function leaksOf(s: CellSession, seeds: readonly number[], counting: boolean, daxImage?: Uint8Array): LeakScan {
  return counting ? scanLeaks(s.k, seeds, s.pages, daxImage) : NO_LEAK;
}

export interface CellOutcome {
  readonly outcome: Outcome;
  readonly errno: ErrnoName | null;
  readonly leaks: LeakScan;
}

const name = (r: number): ErrnoName | null => (r < 0 ? errnoName(r) : null);

/** A cell's outcome from its counting round, most severe first. */
export function outcomeOf(r: RoundReport): CellOutcome {
  const leaks = r.leaks;
  if (r.fault === -E.EFAULT) return { outcome: 'crashed', errno: name(r.errno) ?? 'EFAULT', leaks };
  if (r.fault < 0) return { outcome: 'unsupported', errno: name(r.fault), leaks };
  if (r.errors > 0) return { outcome: 'data-loss', errno: name(r.errno), leaks };
  if (r.refused) return { outcome: 'unsupported', errno: name(r.errno), leaks };
  if (r.fallback) return { outcome: 'plaintext-fallback', errno: name(r.errno), leaks };
  return { outcome: withLeaks(r.observed ?? 'plaintext', leaks), errno: name(r.errno), leaks };
}

/** The outcome of a setup that failed. */
export function setupOutcome(r: number, unsupportedWithoutErrno = false): CellOutcome {
  return { outcome: 'unsupported', errno: unsupportedWithoutErrno ? null : name(r), leaks: NO_LEAK };
}
