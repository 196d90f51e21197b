// madvise(2) (mm/madvise.c, Linux 6.18): the advice is checked first, then
// alignment and length in u64; the walk advises every mapped part of the
// range and answers ENOMEM if any part was unmapped. Every advice Linux 6.18
// accepts on x86-64 is here, with its per-VMA errno rules (the notes with the
// source lines are in test/kernel/linux-argchecks.md section 5). Designs under
// test add advice (MADV_ENCRYPT) with a hook; advice that no one registered
// and Linux does not know is EINVAL, as on a kernel without it.
import { PAGE_SIZE } from '../hardware/types.js';
import { E } from './errno.js';
import type { Kernel, Task } from './kernel.js';
import { handleMmFault, zapRange } from './memory.js';
import { addReg, offsetInPageReg, pageAddr, pageAlignReg, type RegArg, regInt, toReg } from './regs.js';
import {
  CAP_SYS_ADMIN,
  MADV_COLD,
  MADV_COLLAPSE,
  MADV_DODUMP,
  MADV_DOFORK,
  MADV_DONTDUMP,
  MADV_DONTFORK,
  MADV_DONTNEED,
  MADV_DONTNEED_LOCKED,
  MADV_FREE,
  MADV_GUARD_INSTALL,
  MADV_GUARD_REMOVE,
  MADV_HUGEPAGE,
  MADV_HWPOISON,
  MADV_KEEPONFORK,
  MADV_MERGEABLE,
  MADV_NOHUGEPAGE,
  MADV_NORMAL,
  MADV_PAGEOUT,
  MADV_POPULATE_READ,
  MADV_POPULATE_WRITE,
  MADV_RANDOM,
  MADV_REMOVE,
  MADV_SEQUENTIAL,
  MADV_SOFT_OFFLINE,
  MADV_UNMERGEABLE,
  MADV_WILLNEED,
  MADV_WIPEONFORK,
} from './uapi.js';
import {
  VM_DONTCOPY,
  VM_DONTDUMP,
  VM_DROPPABLE,
  VM_HUGEPAGE,
  VM_IO,
  VM_LOCKED,
  VM_MAYSHARE,
  VM_MAYWRITE,
  VM_MERGEABLE,
  VM_NOHUGEPAGE,
  VM_PFNMAP,
  VM_RAND_READ,
  VM_READ,
  VM_SEQ_READ,
  VM_SHARED,
  VM_SPECIAL,
  VM_WIPEONFORK,
  VM_WRITE,
  type Vma,
} from './vma.js';

/** madvise_behavior_valid on x86-64 with KSM, THP and MEMORY_FAILURE configured. */
const LINUX_ADVICE = new Set([0, 1, 2, 3, 4, ...Array.from({ length: 18 }, (_, i) => 8 + i), 100, 101, 102, 103]);

/** Advice for one VMA's part [start, end); 0 or -errno. `arg` is the call's extra argument. */
export type MadviseHook = (k: Kernel, task: Task, vma: Vma, start: number, end: number, arg: number) => number;

/** madvise_update_vma: no change, no split; otherwise split/merge like vma_modify_flags. */
function updateFlags(task: Task, vma: Vma, start: number, end: number, flags: number): number {
  if (flags === vma.flags) return 0;
  const vmas = task.mm.vmas;
  const r = vmas.modify(vmas.findIndex(start), start, end, (v) => (v.flags = flags));
  // ENOMEM -> EAGAIN for the VM-flag advices (madvise_vma_behavior's out:)
  return r === -E.ENOMEM ? -E.EAGAIN : r < 0 ? r : 0;
}

/** The VM-flag advices: the new flags, or -errno when the VMA may not take them. */
function newFlags(vma: Vma, advice: number): number | null {
  const f = vma.flags;
  switch (advice) {
    case MADV_NORMAL:
      return f & ~(VM_RAND_READ | VM_SEQ_READ);
    case MADV_RANDOM:
      return (f & ~VM_SEQ_READ) | VM_RAND_READ;
    case MADV_SEQUENTIAL:
      return (f & ~VM_RAND_READ) | VM_SEQ_READ;
    case MADV_DONTFORK:
      return f | VM_DONTCOPY;
    case MADV_DOFORK:
      return f & VM_IO ? -E.EINVAL : f & ~VM_DONTCOPY;
    case MADV_WIPEONFORK:
      // private anonymous memory only (shared anonymous has a shmem file)
      return vma.file !== null || f & VM_SHARED ? -E.EINVAL : f | VM_WIPEONFORK;
    case MADV_KEEPONFORK:
      return f & VM_DROPPABLE ? -E.EINVAL : f & ~VM_WIPEONFORK;
    case MADV_DONTDUMP:
      return f | VM_DONTDUMP;
    case MADV_DODUMP:
      return f & (VM_SPECIAL | VM_DROPPABLE) ? -E.EINVAL : f & ~VM_DONTDUMP;
    case MADV_MERGEABLE:
      // ksm_madvise: a VMA KSM cannot use is left alone, silently
      return f & (VM_SHARED | VM_MAYSHARE | VM_SPECIAL | VM_DROPPABLE) ? f : f | VM_MERGEABLE;
    case MADV_UNMERGEABLE:
      return f & ~VM_MERGEABLE;
    case MADV_HUGEPAGE:
      return (f & ~VM_NOHUGEPAGE) | VM_HUGEPAGE;
    case MADV_NOHUGEPAGE:
      return (f & ~VM_HUGEPAGE) | VM_NOHUGEPAGE;
    default:
      return null;
  }
}

const HPAGE = 2 * 1024 * 1024;

function madviseVma(k: Kernel, task: Task, vma: Vma, start: number, end: number, advice: number, arg: number): number {
  const flags = newFlags(vma, advice);
  if (flags !== null) return flags < 0 ? flags : updateFlags(task, vma, start, end, flags);
  const f = vma.flags;
  switch (advice) {
    case MADV_DONTNEED:
    case MADV_DONTNEED_LOCKED:
    case MADV_FREE:
      if (f & (VM_PFNMAP | (advice === MADV_DONTNEED_LOCKED ? 0 : VM_LOCKED))) return -E.EINVAL;
      if (advice === MADV_FREE && vma.file !== null) return -E.EINVAL; // anonymous VMAs only
      // (MADV_FREE's pages may be reclaimed at any time; the model does it now)
      zapRange(k, task.mm, start, end);
      return 0;
    case MADV_REMOVE:
      if (f & VM_LOCKED || vma.file === null) return -E.EINVAL;
      if ((f & (VM_SHARED | VM_MAYWRITE)) !== (VM_SHARED | VM_MAYWRITE)) return -E.EACCES;
      zapRange(k, task.mm, start, end);
      return 0;
    case MADV_WILLNEED:
      return 0; // readahead / swap readahead: nothing observable here
    case MADV_COLD:
    case MADV_PAGEOUT:
      return f & (VM_LOCKED | VM_PFNMAP) ? -E.EINVAL : 0;
    case MADV_COLLAPSE: {
      // thp_vma_allowable_order: the VMA must allow THP and hold one aligned 2 MiB block
      const first = Math.ceil(vma.start / HPAGE) * HPAGE;
      if (f & (VM_NOHUGEPAGE | VM_SPECIAL) || first + HPAGE > vma.end) return -E.EINVAL;
      const hstart = Math.ceil(start / HPAGE) * HPAGE;
      const hend = Math.floor(end / HPAGE) * HPAGE;
      if (hend < hstart) return -E.EINVAL; // (hend - hstart) >> 21 wraps in u64
      if (hend === hstart) return 0;
      // collapsing whole blocks into huge pages is not modelled (no THP)
      return -E.EINVAL;
    }
    case MADV_GUARD_INSTALL:
      if (f & (VM_SPECIAL | VM_LOCKED)) return -E.EINVAL;
      // anon_vma_prepare, for anonymous VMAs only: 6.18.2's madvise_guard_install
      // prepares one for any VMA, but the 6.18 stable kernel this was checked
      // against (6.18.44) merges guarded shared-memory VMAs as if it had none
      if (vma.file === null) task.mm.vmas.anonVmaPrepare(task.mm.vmas.findIndex(start));
      // the pages go, and a marker takes each one's place (SIGSEGV on access)
      zapRange(k, task.mm, start, end);
      for (let va = start; va < end; va += PAGE_SIZE) task.mm.guards.add(va);
      return 0;
    case MADV_GUARD_REMOVE:
      if (f & VM_SPECIAL) return -E.EINVAL;
      for (let va = start; va < end; va += PAGE_SIZE) task.mm.guards.delete(va);
      return 0;
    default:
      return k.madviseHooks.get(advice)!(k, task, vma, start, end, arg);
  }
}

export function madviseValid(k: Kernel, advice: number): boolean {
  return LINUX_ADVICE.has(advice) || k.madviseHooks.has(advice);
}

/** MADV_POPULATE_READ/WRITE (madvise_populate): its own walk, stopping at the first hole. */
function populate(k: Kernel, task: Task, start: number, end: number, write: boolean): number {
  const vmas = task.mm.vmas;
  while (start < end) {
    const vma = vmas.find(start);
    if (vma === null) return -E.ENOMEM;
    // check_vma_flags
    if (vma.flags & (VM_IO | VM_PFNMAP)) return -E.EINVAL;
    if (!(vma.flags & (write ? VM_WRITE : VM_READ))) return -E.EINVAL;
    const stop = Math.min(vma.end, end);
    for (; start < stop; start += PAGE_SIZE) {
      const r = handleMmFault(k, task, start, write);
      if (r < 0) return r === -E.ENOMEM ? r : -E.EFAULT;
    }
  }
  return 0;
}

/**
 * madvise(start, len_in, behavior): start and len_in are u64 registers,
 * behavior an int (its low 32 bits). `arg` is the fourth register that
 * MADV_ENCRYPT takes its key from.
 */
export function doMadvise(k: Kernel, task: Task, startA: RegArg, lenA: RegArg, adviceA: RegArg, arg = 0): number {
  const advice = regInt(toReg(adviceA));
  if (!madviseValid(k, advice)) return -E.EINVAL;
  const startR = toReg(startA), lenR = toReg(lenA);
  if (offsetInPageReg(startR)) return -E.EINVAL;
  const lenAligned = pageAlignReg(lenR);
  if (lenR !== 0n && lenAligned === 0n) return -E.EINVAL;
  const endR = addReg(startR, lenAligned);
  if (endR < startR) return -E.EINVAL;
  if (endR === startR) return 0;
  if (advice === MADV_HWPOISON || advice === MADV_SOFT_OFFLINE) {
    // madvise_inject_error: privileged only, checked before any lookup
    if (!task.caps.has(CAP_SYS_ADMIN)) return -E.EPERM;
  }
  let start = pageAddr(startR);
  const end = pageAddr(endR);
  if (advice === MADV_POPULATE_READ || advice === MADV_POPULATE_WRITE) return populate(k, task, start, end, advice === MADV_POPULATE_WRITE);
  if (advice === MADV_HWPOISON || advice === MADV_SOFT_OFFLINE) {
    // get_user_pages_fast of each page; memory_failure / soft_offline_page
    // themselves are not modelled: a poisoned page is only unmapped
    for (let va = start; va < end; va += PAGE_SIZE) {
      if (task.mm.vmas.find(va) === null) return -E.EFAULT;
      if (advice === MADV_HWPOISON) zapRange(k, task.mm, va, va + PAGE_SIZE);
    }
    return 0;
  }
  const vmas = task.mm.vmas;
  let unmapped = 0;
  let vma = vmas.vmas[vmas.findIndex(start)];
  for (;;) {
    if (vma === undefined) return -E.ENOMEM;
    if (start < vma.start) {
      unmapped = -E.ENOMEM;
      start = vma.start;
      if (start >= end) break;
    }
    const tmp = Math.min(vma.end, end);
    const r = madviseVma(k, task, vma, start, tmp, advice, arg);
    if (r < 0) return r;
    start = tmp;
    if (start >= end) break;
    vma = vmas.vmas[vmas.findIndex(start)];
  }
  k.gauge('vma_count_max', vmas.mapCount);
  return unmapped;
}
