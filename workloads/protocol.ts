// Messages between the kernel thread and the worker CPUs. Every message has a
// declared type; memory itself is shared (SharedArrayBuffer), messages only
// say what to do and report what happened.
import type { CpuDescriptor } from '../kernel/trap.js';

/** Run as CPU desc.cpu of a process (again, after a reboot). */
export interface AttachMsg {
  readonly type: 'attach';
  readonly desc: CpuDescriptor;
}

/**
 * One round of user work on this CPU's pages: `passes` times, write every
 * page's pattern (unless verifyOnly), then read every page back and compare.
 */
export interface RoundMsg {
  readonly type: 'round';
  readonly round: number;
  readonly addr: number;
  /** page indices of the region that this CPU owns */
  readonly pages: readonly number[];
  /** pattern seed of this round */
  readonly seed: number;
  readonly passes: number;
  readonly verifyOnly: boolean;
  readonly writeOnly: boolean;
}

export interface ExitMsg {
  readonly type: 'exit';
}

export type ToCpu = AttachMsg | RoundMsg | ExitMsg;

export interface ReadyMsg {
  readonly type: 'ready';
  readonly cpu: number;
}

export interface DoneMsg {
  readonly type: 'done';
  readonly cpu: number;
  readonly round: number;
  /** pages whose contents read back wrong */
  readonly errors: number;
  /** first -errno a load or store returned (-EFAULT: SIGSEGV), 0 if none */
  readonly fault: number;
  /** page accesses done */
  readonly accesses: number;
}

export interface FailMsg {
  readonly type: 'fail';
  readonly cpu: number;
  readonly message: string;
}

export type FromCpu = ReadyMsg | DoneMsg | FailMsg;
