// Messages between the kernel thread and the worker CPUs, for what is not a
// round (rounds go through the round board, board.ts). Every message has a
// declared type; memory itself is shared.
import type { CpuDescriptor } from '../kernel/trap.js';
import type { BoardDescriptor } from './board.js';

/** Run as CPU desc.cpu of a process (again, after a reboot), taking rounds from the board until parked. */
export interface AttachMsg {
  readonly type: 'attach';
  readonly desc: CpuDescriptor;
  readonly board: BoardDescriptor;
}

export interface ExitMsg {
  readonly type: 'exit';
}

export type ToCpu = AttachMsg | ExitMsg;

export interface ReadyMsg {
  readonly type: 'ready';
  readonly cpu: number;
}

/** The CPU hit an exception (a bug in the model, not an outcome). */
export interface FailMsg {
  readonly type: 'fail';
  readonly cpu: number;
  readonly message: string;
}

export type FromCpu = ReadyMsg | FailMsg;

/** A round's parameters. */
export interface RoundSpec {
  readonly round: number;
  readonly addr: number;
  /** pattern seed of this round */
  readonly seed: number;
  readonly passes: number;
  readonly verifyOnly: boolean;
  readonly writeOnly: boolean;
}

/** What one CPU reports for a round. */
export interface CpuReport {
  readonly cpu: number;
  /** pages that read back wrong */
  readonly errors: number;
  /** first -errno a load or store returned (-EFAULT: SIGSEGV), 0 if none */
  readonly fault: number;
  /** page accesses done */
  readonly accesses: number;
}
