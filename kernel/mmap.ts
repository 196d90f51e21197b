// mmap(2) and munmap(2) (mm/mmap.c, mm/vma.c), errors in the order Linux
// checks them, and shared anonymous memory (a shmem file per mapping).
import { PAGE_SIZE } from '../hardware/types.js';
import { E } from './errno.js';
import { type FileOps, type Kernel, OpenFile, type Task } from './kernel.js';
import { allocFilePage, freeFilePages, handleMmFault, zapRange } from './memory.js';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_FIXED_NOREPLACE,
  MAP_POPULATE,
  MAP_PRIVATE,
  MAP_SHARED,
  MAP_SHARED_VALIDATE,
  MAP_TYPE,
  MMAP_BASE,
  MMAP_MIN_ADDR,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
  TASK_SIZE,
} from './uapi.js';
import {
  VM_ACCOUNT,
  VM_EXEC,
  VM_MAYEXEC,
  VM_MAYREAD,
  VM_MAYSHARE,
  VM_MAYWRITE,
  VM_NORESERVE,
  VM_READ,
  VM_SHARED,
  VM_WRITE,
  Vma,
} from './vma.js';

export const pageAlign = (n: number): number => Math.ceil(n / PAGE_SIZE) * PAGE_SIZE;
export const offsetInPage = (n: number): number => n % PAGE_SIZE;

/** calc_vm_prot_bits */
export const protToVm = (prot: number): number =>
  (prot & PROT_READ ? VM_READ : 0) | (prot & PROT_WRITE ? VM_WRITE : 0) | (prot & PROT_EXEC ? VM_EXEC : 0);

/** Shared anonymous memory: each mapping gets its own shmem file ("/dev/zero (deleted)"). */
const shmemOps: FileOps = {
  mmap: () => 0,
  fault(k, file, _vma, pgoff) {
    const have = file.pages.get(pgoff);
    if (have !== undefined) return have;
    return allocFilePage(k, file, pgoff, null);
  },
  release: (k, file) => freeFilePages(k, file),
};

/** get_unmapped_area: a free range of len bytes, the hint first, else top-down. */
function getUnmappedArea(task: Task, hint: number, len: number, fixed: boolean): number {
  if (len > TASK_SIZE - MMAP_MIN_ADDR) return -E.ENOMEM;
  const vmas = task.mm.vmas;
  if (fixed) {
    if (hint > TASK_SIZE - len) return -E.ENOMEM;
    if (offsetInPage(hint)) return -E.EINVAL;
    return hint;
  }
  if (hint !== 0 && hint <= TASK_SIZE - len && vmas.intersection(hint, hint + len) === null) return hint;
  // top-down: the highest gap below MMAP_BASE that fits
  const v = vmas.vmas;
  const i = vmas.findIndex(MMAP_BASE); // first VMA ending above MMAP_BASE
  let top = i < v.length && v[i].start < MMAP_BASE ? v[i].start : MMAP_BASE;
  for (let j = i - 1; ; j--) {
    const below = j >= 0 ? v[j].end : MMAP_MIN_ADDR;
    if (top - below >= len) return top - len;
    if (j < 0) break;
    top = v[j].start;
  }
  return -E.ENOMEM;
}

/**
 * do_mmap + mmap_region. Returns the address, or -errno. `file` is the open
 * file for fd (null for MAP_ANONYMOUS); `writable` its FMODE_WRITE.
 */
export function doMmap(
  k: Kernel,
  task: Task,
  addr: number,
  len: number,
  prot: number,
  flags: number,
  fd: number,
  offset: number,
): number {
  const mm = task.mm;
  // sys_mmap (x86): the offset must be page aligned
  if (offsetInPage(offset)) return -E.EINVAL;
  let file: OpenFile | null = null;
  if (!(flags & MAP_ANONYMOUS)) {
    file = task.files.get(fd) ?? null;
    if (file === null) return -E.EBADF;
  }
  if (!len) return -E.EINVAL;
  if (flags & MAP_FIXED_NOREPLACE) flags |= MAP_FIXED;
  if (!(flags & MAP_FIXED)) {
    addr = Math.floor(addr / PAGE_SIZE) * PAGE_SIZE; // round_hint_to_min
    if (addr !== 0 && addr < MMAP_MIN_ADDR) addr = MMAP_MIN_ADDR;
  }
  len = pageAlign(len);
  if (len > TASK_SIZE) return -E.ENOMEM;
  let pgoff = offset / PAGE_SIZE;
  if (mm.vmas.mapCount > mm.vmas.maxMapCount) return -E.ENOMEM;
  addr = getUnmappedArea(task, addr, len, (flags & MAP_FIXED) !== 0);
  if (addr < 0) return addr;
  if (flags & MAP_FIXED_NOREPLACE && mm.vmas.intersection(addr, addr + len) !== null) return -E.EEXIST;
  let vmFlags = protToVm(prot) | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC;
  const type = flags & MAP_TYPE;
  if (file !== null) {
    if (type === MAP_SHARED || type === MAP_SHARED_VALIDATE) {
      if (prot & PROT_WRITE && !file.writable) return -E.EACCES;
      vmFlags |= VM_SHARED | VM_MAYSHARE;
      if (!file.writable) vmFlags &= ~(VM_MAYWRITE | VM_SHARED);
    } else if (type !== MAP_PRIVATE) return -E.EINVAL;
  } else if (type === MAP_SHARED || type === MAP_SHARED_VALIDATE) {
    pgoff = 0;
    vmFlags |= VM_SHARED | VM_MAYSHARE;
  } else if (type === MAP_PRIVATE) {
    pgoff = addr / PAGE_SIZE;
  } else return -E.EINVAL;
  return mmapRegion(k, task, file, addr, len, vmFlags, pgoff, (flags & MAP_POPULATE) !== 0);
}

function mmapRegion(
  k: Kernel,
  task: Task,
  file: OpenFile | null,
  addr: number,
  len: number,
  vmFlags: number,
  pgoff: number,
  populate: boolean,
): number {
  const mm = task.mm;
  // accountable_mapping: private writable memory is charged (VM_ACCOUNT)
  if ((vmFlags & (VM_NORESERVE | VM_SHARED | VM_WRITE)) === VM_WRITE) vmFlags |= VM_ACCOUNT;
  let vma: Vma;
  if (file === null && vmFlags & VM_SHARED) {
    const shm = new OpenFile(k, '/dev/zero (deleted)', '00:01', k.newIno(), shmemOps);
    vma = new Vma(addr, addr + len, vmFlags, pgoff, shm);
  } else {
    file?.get();
    vma = new Vma(addr, addr + len, vmFlags, pgoff, file);
  }
  if (file !== null) {
    // f_op->mmap before anything is unmapped, so a refusal changes nothing
    const r = file.ops.mmap(k, file, vma, task);
    if (r < 0) {
      vma.release();
      return r;
    }
  }
  // MAP_FIXED over existing mappings: unmap them first
  const old = unmapRange(k, task, addr, addr + len);
  if (old < 0) {
    vma.release();
    return old;
  }
  mm.vmas.insert(vma);
  k.gauge('vma_count_max', mm.vmas.mapCount);
  if (populate) {
    const write = (vmFlags & VM_WRITE) !== 0;
    for (let va = addr; va < addr + len; va += PAGE_SIZE) {
      if (handleMmFault(k, task, va, write) < 0) break; // like mm_populate: best effort
    }
  }
  return addr;
}

/** Detach, zap and release every VMA part in [start, end). 0 or -ENOMEM. */
export function unmapRange(k: Kernel, task: Task, start: number, end: number): number {
  const detached = task.mm.vmas.detach(start, end);
  if (typeof detached === 'number') return detached;
  for (const v of detached) {
    zapRange(k, task.mm, v.start, v.end);
    v.release();
  }
  return 0;
}

/** munmap(2) */
export function doMunmap(k: Kernel, task: Task, start: number, len: number): number {
  if (offsetInPage(start) || start > TASK_SIZE || len > TASK_SIZE - start) return -E.EINVAL;
  len = pageAlign(len);
  if (len === 0) return -E.EINVAL;
  return unmapRange(k, task, start, start + len);
}
