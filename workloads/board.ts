// The round board: shared words through which the kernel thread hands worker
// CPUs their rounds and reads their results, without a message (and an event
// loop turn on both sides) per round. Per CPU, Int32 words and Float64 slots
// addressed by the named constants below.
//
// Ordering: the kernel writes the parameters, then KIND, then bumps CMD with
// a seq-cst add; the CPU that sees the new CMD therefore sees the parameters.
// The CPU writes its outputs, then stores DONE = CMD (seq-cst), then rings the
// kernel's doorbell; a kernel that reads DONE == CMD sees the outputs.

export const INT_WORDS = 4;
export const R_CMD = 0; // command sequence number, bumped by the kernel
export const R_KIND = 1; // what the command is
export const R_DONE = 2; // last command the CPU finished
export const R_FAILED = 3; // 1: the last round threw (the CPU sent a 'fail' message and parked)

export const KIND_ROUND = 1;
export const KIND_PARK = 2; // leave the board loop, back to the message loop

export const F64_SLOTS = 12;
export const P_ROUND = 0;
export const P_ADDR = 1;
export const P_SEED = 2;
export const P_PASSES = 3;
export const P_FLAGS = 4; // FLAG_*
export const P_FIRST = 5; // first page index of this CPU's share
export const P_END = 6; // its share ends below this page index
export const P_PAGES = 7; // pages of the round (all CPUs' shares)
export const O_ERRORS = 8;
export const O_FAULT = 9;
export const O_ACCESSES = 10;
export const O_WORK = 11; // ms the CPU spent on its round, by its own clock

/**
 * Where share i of a round's pages begins when `cpus` CPUs split them into
 * contiguous shares whose sizes differ by at most one page (share `cpus`
 * begins at the end).
 */
export function shareStart(pages: number, cpus: number, i: number): number {
  return Math.floor((pages * i) / cpus);
}

export const FLAG_VERIFY_ONLY = 1;
export const FLAG_WRITE_ONLY = 2;
/** the CPUs make their accesses in turns (TURN_ABORT says how) */
export const FLAG_LOCKSTEP = 4;

/**
 * Lockstep (FLAG_LOCKSTEP): one shared word, after the per-CPU blocks, holds
 * whose access is next. The kernel sets it to -threads; each CPU adds 1 when
 * it comes online, so no access is made before every CPU runs the mm. Access
 * (pass, phase, page p) then has turn (pass * phases + phase) * pages + p:
 * the order in which one CPU would make them all. Exactly one CPU makes it,
 * the one whose first page is p % stride. A CPU waits for its turn, makes
 * the access and passes the turn on; after its last access it waits until
 * the word reaches the round's total, so every CPU stays online until the
 * last access is made. TURN_ABORT: a CPU stopped (a fault, a throw), and the
 * others stop too.
 */
export const TURN_ABORT = 0x7fffffff;

/**
 * How a cell's setup and counting round run 2 or more CPUs: in lockstep
 * (cell.ts, session.ts), so that every cell's counters are exact, as a 1-CPU
 * cell's are. Runs record it (bench/ RunMeta.counting); runs made before
 * counted 2-CPU cells free-running.
 */
export const COUNTING = 'lockstep';

export interface BoardDescriptor {
  readonly ints: SharedArrayBuffer;
  readonly f64: SharedArrayBuffer;
}

export class RoundBoard {
  readonly i32: Int32Array;
  readonly f64: Float64Array;
  constructor(readonly d: BoardDescriptor) {
    this.i32 = new Int32Array(d.ints);
    this.f64 = new Float64Array(d.f64);
    this.turn = this.i32.length - 1;
  }

  /** index of the lockstep turn word in i32 */
  readonly turn: number;

  static create(nrCpus: number): RoundBoard {
    return new RoundBoard({
      ints: new SharedArrayBuffer((nrCpus * INT_WORDS + 1) * 4),
      f64: new SharedArrayBuffer(nrCpus * F64_SLOTS * 8),
    });
  }

  i(cpu: number, word: number): number {
    return cpu * INT_WORDS + word;
  }

  f(cpu: number, slot: number): number {
    return cpu * F64_SLOTS + slot;
  }
}
