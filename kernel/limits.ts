// Resource limits and the commit charge: RLIMIT_AS, RLIMIT_DATA and
// RLIMIT_MEMLOCK (mm/mmap.c may_expand_vm, mlock_future_ok; mm/mlock.c
// can_do_mlock) and overcommit (mm/util.c __vm_enough_memory), Linux 6.18.
import type { Kernel, Task } from './kernel.js';
import { E } from './errno.js';
import { CAP_IPC_LOCK, CAP_SYS_ADMIN } from './uapi.js';
import { isDataMapping, VM_LOCKED } from './vma.js';

const PAGE_SHIFT = 12;

/** A task's limits in bytes; Infinity is RLIM_INFINITY. */
export interface Rlimits {
  readonly as: number;
  readonly data: number;
  readonly memlock: number;
}

/**
 * Linux's defaults for a process started by init: no address-space or data
 * limit, and MLOCK_LIMIT (8 MiB since 5.16, include/uapi/linux/resource.h).
 */
export const DEFAULT_RLIMITS: Rlimits = { as: Infinity, data: Infinity, memlock: 8 << 20 };

/** The machine's overcommit settings (/proc/sys/vm/overcommit_*, and its RAM and swap in pages). */
export interface Overcommit {
  /** 0 heuristic (the default), 1 always, 2 never */
  readonly mode: 0 | 1 | 2;
  readonly totalRamPages: number;
  readonly swapPages: number;
  /** vm.overcommit_ratio (percent of RAM, mode 2) */
  readonly ratio: number;
  /** vm.overcommit_kbytes: when non-zero, replaces the ratio (mode 2) */
  readonly kbytes: number;
  /** vm.admin_reserve_kbytes and vm.user_reserve_kbytes (mode 2) */
  readonly adminReserveKb: number;
  readonly userReserveKb: number;
}

/**
 * Overcommit settings of a machine with this much RAM and swap, as Linux boots
 * them: mode 0, ratio 50, and the reserves of init_admin_reserve and
 * init_user_reserve (3% of free memory, capped at 8 MiB and 128 MiB).
 */
export function defaultOvercommit(totalRamPages: number, swapPages: number): Overcommit {
  const freeKb = totalRamPages * 4;
  return {
    mode: 0,
    totalRamPages,
    swapPages,
    ratio: 50,
    kbytes: 0,
    adminReserveKb: Math.min(Math.floor(freeKb / 32), 1 << 13),
    userReserveKb: Math.min(Math.floor(freeKb / 32), 1 << 17),
  };
}

const pagesOf = (bytes: number): number => (bytes === Infinity ? Infinity : Math.floor(bytes / 2 ** PAGE_SHIFT));

/** can_do_mlock: CAP_IPC_LOCK, or a non-zero RLIMIT_MEMLOCK. */
export function canDoMlock(task: Task): boolean {
  return task.caps.has(CAP_IPC_LOCK) || task.rlimits.memlock !== 0;
}

/** mlock_future_ok: may len more bytes with vmFlags be locked? */
export function mlockFutureOk(task: Task, vmFlags: number, len: number): boolean {
  if (!(vmFlags & VM_LOCKED) || task.caps.has(CAP_IPC_LOCK)) return true;
  return len / 4096 + task.mm.vmas.lockedPages <= pagesOf(task.rlimits.memlock);
}

/** may_expand_vm: may npages more pages with vmFlags be mapped (RLIMIT_AS, RLIMIT_DATA)? */
export function mayExpandVm(task: Task, vmFlags: number, npages: number): boolean {
  const vmas = task.mm.vmas;
  if (vmas.totalPages + npages > pagesOf(task.rlimits.as)) return false;
  // (the Valgrind exception for RLIMIT_DATA = 0 needs the hard limit, which is infinite here)
  if (isDataMapping(vmFlags) && vmas.dataPages + npages > pagesOf(task.rlimits.data)) return task.rlimits.data === 0;
  return true;
}

/**
 * security_vm_enough_memory_mm -> __vm_enough_memory: charge pages to the
 * commit total, or -ENOMEM (and no charge) when the overcommit policy says no.
 */
export function vmEnoughMemory(k: Kernel, task: Task, pages: number): number {
  const oc = k.overcommit;
  k.committedPages += pages;
  if (oc.mode === 1) return 0;
  if (oc.mode === 0) {
    if (pages <= oc.totalRamPages + oc.swapPages) return 0;
  } else {
    let allowed = (oc.kbytes !== 0 ? oc.kbytes >> 2 : Math.floor((oc.totalRamPages * oc.ratio) / 100)) + oc.swapPages;
    if (!task.caps.has(CAP_SYS_ADMIN)) allowed -= oc.adminReserveKb >> 2;
    allowed -= Math.min(Math.floor(task.mm.vmas.totalPages / 32), oc.userReserveKb >> 2);
    if (k.committedPages < allowed) return 0;
  }
  k.committedPages -= pages;
  return -E.ENOMEM;
}

/** vm_unacct_memory */
export function vmUnacctMemory(k: Kernel, pages: number): void {
  k.committedPages -= pages;
}
