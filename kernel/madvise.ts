// madvise(2) (mm/madvise.c): advice checked first, then alignment and
// length; unmapped parts of the range give ENOMEM after the mapped parts
// were advised. Designs under test add advice (MADV_ENCRYPT) with a hook;
// advice that no one registered is EINVAL, as on a kernel without it.
import { E } from './errno.js';
import type { Kernel, Task } from './kernel.js';
import { zapRange } from './memory.js';
import { offsetInPage, pageAlign } from './mmap.js';
import { MADV_DONTNEED, MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL, MADV_WILLNEED } from './uapi.js';
import { VM_LOCKED, VM_PFNMAP, VM_RAND_READ, VM_SEQ_READ, type Vma } from './vma.js';

/** Advice for one VMA's part [start, end); 0 or -errno. `arg` is the call's extra argument. */
export type MadviseHook = (k: Kernel, task: Task, vma: Vma, start: number, end: number, arg: number) => number;

function updateFlags(task: Task, vma: Vma, start: number, end: number, flags: number): number {
  if (flags === vma.flags) return 0;
  const vmas = task.mm.vmas;
  const r = vmas.modify(vmas.findIndex(start), start, end, (v) => (v.flags = flags));
  return r < 0 ? r : 0;
}

function madviseVma(k: Kernel, task: Task, vma: Vma, start: number, end: number, advice: number, arg: number): number {
  switch (advice) {
    case MADV_DONTNEED:
      if (vma.flags & (VM_LOCKED | VM_PFNMAP)) return -E.EINVAL;
      zapRange(k, task.mm, start, end);
      return 0;
    case MADV_NORMAL:
      return updateFlags(task, vma, start, end, vma.flags & ~(VM_RAND_READ | VM_SEQ_READ));
    case MADV_RANDOM:
      return updateFlags(task, vma, start, end, (vma.flags & ~VM_SEQ_READ) | VM_RAND_READ);
    case MADV_SEQUENTIAL:
      return updateFlags(task, vma, start, end, (vma.flags & ~VM_RAND_READ) | VM_SEQ_READ);
    case MADV_WILLNEED:
      return 0; // readahead / swap readahead: nothing observable here
    default:
      return k.madviseHooks.get(advice)!(k, task, vma, start, end, arg);
  }
}

export function madviseValid(k: Kernel, advice: number): boolean {
  return (
    advice === MADV_NORMAL ||
    advice === MADV_RANDOM ||
    advice === MADV_SEQUENTIAL ||
    advice === MADV_WILLNEED ||
    advice === MADV_DONTNEED ||
    k.madviseHooks.has(advice)
  );
}

export function doMadvise(k: Kernel, task: Task, start: number, lenIn: number, advice: number, arg = 0): number {
  if (!madviseValid(k, advice)) return -E.EINVAL;
  if (offsetInPage(start)) return -E.EINVAL;
  if (lenIn < 0) return -E.EINVAL; // a "negative" size_t overflows PAGE_ALIGN
  const len = pageAlign(lenIn);
  if (lenIn && !len) return -E.EINVAL;
  const end = start + len;
  if (end < start) return -E.EINVAL;
  if (end === start) return 0;
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
