// mmap(2) and munmap(2) (mm/mmap.c, mm/vma.c), errors in the order Linux
// checks them, and shared anonymous memory (a shmem file per mapping).
import { PAGE_SIZE } from '../hardware/types.js';
import { E } from './errno.js';
import { type FileOps, type Kernel, OpenFile, type Task } from './kernel.js';
import { canDoMlock, mayExpandVm, mlockFutureOk, vmEnoughMemory, vmUnacctMemory } from './limits.js';
import { allocFilePage, freeFilePages, handleMmFault, zapRange } from './memory.js';
import { mmapPkey } from './pkeys.js';
import { offsetInPageReg, PAGE_OFFSET_MASK, pageAlignReg, type RegArg, regUint, toReg, U64_MAX } from './regs.js';
import {
  CAP_SYS_RAWIO,
  LEGACY_MAP_MASK,
  MAP_ANONYMOUS,
  MAP_DROPPABLE,
  MAP_FIXED,
  MAP_FIXED_NOREPLACE,
  MAP_GROWSDOWN,
  MAP_HUGE_MASK,
  MAP_HUGE_SHIFT,
  MAP_HUGETLB,
  MAP_LOCKED,
  MAP_NONBLOCK,
  MAP_NORESERVE,
  MAP_POPULATE,
  MAP_PRIVATE,
  MAP_SHARED,
  MAP_SHARED_VALIDATE,
  MAP_STACK,
  MAP_SYNC,
  MAP_TYPE,
  MMAP_BASE,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
  TASK_SIZE,
} from './uapi.js';
import {
  VM_ACCOUNT,
  VM_DONTDUMP,
  VM_DROPPABLE,
  VM_EXEC,
  VM_GROWSDOWN,
  VM_LOCKED,
  VM_MAYEXEC,
  VM_MAYREAD,
  VM_MAYSHARE,
  VM_MAYWRITE,
  VM_NOHUGEPAGE,
  VM_NORESERVE,
  VM_READ,
  VM_SHARED,
  VM_SYNC,
  VM_WIPEONFORK,
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
  release: (k, file) => {
    vmUnacctMemory(k, file.acct);
    freeFilePages(k, file);
  },
};

/**
 * get_unmapped_area for a non-fixed mapping: the hint if the range is free,
 * else the highest free gap below MMAP_BASE (top-down), else the lowest one
 * above MMAP_LEGACY_BASE (bottom-up). len <= TASK_SIZE.
 */
function getUnmappedArea(k: Kernel, task: Task, hint: bigint, len: number): number {
  const vmas = task.mm.vmas;
  const floor = Math.max(k.mmapMinAddr, PAGE_SIZE);
  const v = vmas.vmas;
  // mmap_address_hint_valid: TASK_SIZE - len >= addr; and the range ends
  // below the next VMA's start gap
  if (hint !== 0n && hint <= BigInt(TASK_SIZE - len)) {
    const h = Number(hint);
    const next = v[vmas.findIndex(h)];
    if (next === undefined || h + len <= startGap(next)) return h;
  }
  // top-down: the highest gap below MMAP_BASE that fits, each gap ending at
  // the start gap of the VMA above it, even when that VMA starts at or above
  // MMAP_BASE (a VM_GROWSDOWN one's guard gap reaches below it)
  const i = vmas.findIndex(MMAP_BASE); // first VMA ending above MMAP_BASE
  let top = i < v.length ? Math.min(startGap(v[i]), MMAP_BASE) : MMAP_BASE;
  for (let j = i - 1; ; j--) {
    const below = Math.max(j >= 0 ? v[j].end : 0, floor);
    if (top - below >= len) return top - len;
    if (j < 0) break;
    top = startGap(v[j]);
  }
  // nothing fits: arch_get_unmapped_area_topdown falls back to bottom-up
  // (arch_get_unmapped_area), the lowest gap from mmap_legacy_base to TASK_SIZE
  let low = Math.max(MMAP_LEGACY_BASE, floor);
  for (let j = vmas.findIndex(low); ; j++) {
    const end = j < v.length ? startGap(v[j]) : TASK_SIZE;
    if (end - low >= len) return low;
    if (j === v.length) return -E.ENOMEM;
    low = Math.max(low, v[j].end);
  }
}

/** mmap_legacy_base without randomisation: __TASK_UNMAPPED_BASE(TASK_SIZE) = PAGE_ALIGN(TASK_SIZE / 3). */
export const MMAP_LEGACY_BASE = Math.ceil(Math.floor(TASK_SIZE / 3) / PAGE_SIZE) * PAGE_SIZE;

/** stack_guard_gap: 256 pages below a VM_GROWSDOWN VMA stay free (mm/mmap.c). */
export const STACK_GUARD_GAP = 256 * PAGE_SIZE;

/** vm_start_gap: where a VMA's claim on the address space starts. */
const startGap = (v: Vma): number => (v.flags & VM_GROWSDOWN ? Math.max(0, v.start - STACK_GUARD_GAP) : v.start);

/** hstate_sizelog: the huge page size MAP_HUGETLB names, or 0 for none the kernel has. */
function hugePageSize(k: Kernel, flags: number): number {
  const log = (flags >>> MAP_HUGE_SHIFT) & MAP_HUGE_MASK;
  if (log === 0 || log === 21) return 2 ** 21;
  if (log === 30 && k.config.gigantic === true) return 2 ** 30;
  return 0;
}

/**
 * sys_mmap -> ksys_mmap_pgoff -> do_mmap -> mmap_region (Linux 6.18,
 * x86-64), every argument a u64 register (regs.ts). Returns the address, or
 * -errno. The checks come in Linux's order; the notes with the source lines
 * are in test/kernel/linux-argchecks.md section 2.
 */
export function doMmap(k: Kernel, task: Task, addrA: RegArg, lenA: RegArg, protA: RegArg, flagsA: RegArg, fdA: RegArg, offA: RegArg): number {
  const mm = task.mm;
  let addrR = toReg(addrA), lenR = toReg(lenA);
  const protR = toReg(protA), flagsR = toReg(flagsA), fdR = toReg(fdA), offR = toReg(offA);
  // sys_mmap (arch/x86/kernel/sys_x86_64.c): the offset must be page aligned
  if (offsetInPageReg(offR)) return -E.EINVAL;
  let pgoff = Number(offR >> 12n); // < 2^52: exact
  // flags is an unsigned long: bits 32-63 only matter to MAP_SHARED_VALIDATE
  let flags = Number(flagsR & 0xffff_ffffn);
  const highFlags = flagsR >> 32n !== 0n;
  const prot = Number(protR & 7n); // calc_vm_prot_bits: mmap never validates prot
  let file: OpenFile | null = null;
  let huge = 0; // huge page size of a MAP_HUGETLB mapping
  if (!(flags & MAP_ANONYMOUS)) {
    // fget(unsigned int fd)
    file = task.files.get(regUint(fdR)) ?? null;
    if (file === null) return -E.EBADF;
    if (flags & MAP_HUGETLB) return -E.EINVAL; // not a hugetlbfs file
  } else if (flags & MAP_HUGETLB) {
    huge = hugePageSize(k, flags);
    if (huge === 0) return -E.EINVAL;
    // len = ALIGN(len, huge page size), in u64; from here on it is a hugetlbfs file
    lenR = BigInt.asUintN(64, lenR + BigInt(huge - 1)) & ~BigInt(huge - 1);
  }
  // do_mmap
  if (lenR === 0n) return -E.EINVAL;
  if (flags & MAP_FIXED_NOREPLACE) flags |= MAP_FIXED;
  const fixed = (flags & MAP_FIXED) !== 0;
  if (!fixed) {
    // round_hint_to_min
    addrR &= ~PAGE_OFFSET_MASK;
    if (addrR !== 0n && addrR < BigInt(k.mmapMinAddr)) addrR = pageAlignReg(BigInt(k.mmapMinAddr));
  }
  lenR = pageAlignReg(lenR);
  if (lenR === 0n) return -E.ENOMEM;
  if (mm.vmas.mapCount > mm.vmas.maxMapCount) return -E.ENOMEM;
  // exactly PROT_EXEC (all 64 bits of it): the execute-only protection key
  const pkey = mmapPkey(k, mm, protR);
  let vmFlags = protToVm(prot) | calcVmFlagBits(flags) | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC;
  // __get_unmapped_area
  if (lenR > BigInt(TASK_SIZE)) return -E.ENOMEM;
  const len = Number(lenR);
  let addr: number;
  if (fixed) {
    // get_area hands a fixed address back as it is, and __get_unmapped_area
    // then takes one in the last 4095 values of the address space for an
    // error (IS_ERR_VALUE): MAP_FIXED at -1 is EPERM, at -22 EINVAL
    if (addrR > U64_MAX - 4095n && huge === 0) return -Number(U64_MAX + 1n - addrR);
    // hugetlb_get_unmapped_area: a fixed address must be huge-page aligned
    if (huge !== 0 && addrR & BigInt(huge - 1)) return -E.EINVAL;
    if (addrR > BigInt(TASK_SIZE - len)) return -E.ENOMEM;
    addr = Number(addrR);
    if (offsetInPage(addr)) return -E.EINVAL;
    // security_mmap_addr -> cap_mmap_addr
    if (addr < k.mmapMinAddr && !task.caps.has(CAP_SYS_RAWIO)) return -E.EPERM;
  } else {
    addr = getUnmappedArea(k, task, addrR, len);
    if (addr < 0) return addr;
  }
  if (flags & MAP_FIXED_NOREPLACE && mm.vmas.intersection(addr, addr + len) !== null) return -E.EEXIST;
  if (flags & MAP_LOCKED && !canDoMlock(task)) return -E.EPERM;
  if (!mlockFutureOk(task, vmFlags, len)) return -E.EAGAIN;
  const type = flags & MAP_TYPE;
  if (file !== null || huge !== 0) {
    // a file mapping (anonymous MAP_HUGETLB is a hugetlbfs file by now)
    if (type === MAP_SHARED || type === MAP_SHARED_VALIDATE) {
      if (type === MAP_SHARED_VALIDATE && (highFlags || flags & ~LEGACY_MAP_MASK)) return -E.EOPNOTSUPP;
      if (file !== null && prot & PROT_WRITE && !file.writable) return -E.EACCES;
      vmFlags |= VM_SHARED | VM_MAYSHARE;
      if (file !== null && !file.writable) vmFlags &= ~(VM_MAYWRITE | VM_SHARED);
    } else if (type !== MAP_PRIVATE) return -E.EINVAL;
    // (MAP_SHARED falls through to MAP_PRIVATE's checks)
    if (vmFlags & VM_GROWSDOWN) return -E.EINVAL;
  } else if (type === MAP_SHARED) {
    if (vmFlags & VM_GROWSDOWN) return -E.EINVAL;
    pgoff = 0;
    vmFlags |= VM_SHARED | VM_MAYSHARE;
  } else if (type === MAP_PRIVATE || type === MAP_DROPPABLE) {
    if (type === MAP_DROPPABLE) {
      if (flags & MAP_LOCKED || vmFlags & VM_GROWSDOWN) return -E.EINVAL;
      vmFlags |= VM_DROPPABLE | VM_NORESERVE | VM_WIPEONFORK | VM_DONTDUMP;
    }
    pgoff = addr / PAGE_SIZE;
  } else return -E.EINVAL; // including MAP_SHARED_VALIDATE: no anonymous case for it
  if (flags & MAP_NORESERVE && k.overcommit.mode !== 2) vmFlags |= VM_NORESERVE;
  if (huge !== 0) {
    // hugetlbfs_file_mmap reserves the pages; this machine has no huge page
    // pool (vm.nr_hugepages = 0), so the reservation fails. The range was
    // already cleared for a MAP_FIXED mapping (__mmap_prepare zaps the old
    // PTEs before f_op->mmap), and the old mappings stay gone.
    // MAP_NORESERVE hugetlb mappings (no reservation) are not modelled.
    if (fixed) {
      const old = unmapRange(k, task, addr, addr + len);
      if (old < 0) return old;
    }
    return -E.ENOMEM;
  }
  const populate = (flags & (MAP_POPULATE | MAP_NONBLOCK)) === MAP_POPULATE || (vmFlags & VM_LOCKED) !== 0;
  return mmapRegion(k, task, file, addr, len, vmFlags, pkey, pgoff, populate);
}

/** calc_vm_flag_bits (include/linux/mman.h) */
function calcVmFlagBits(flags: number): number {
  return (
    (flags & MAP_GROWSDOWN ? VM_GROWSDOWN : 0) |
    (flags & MAP_LOCKED ? VM_LOCKED : 0) |
    (flags & MAP_SYNC ? VM_SYNC : 0) |
    (flags & MAP_STACK ? VM_NOHUGEPAGE : 0)
  );
}

function mmapRegion(
  k: Kernel,
  task: Task,
  file: OpenFile | null,
  addr: number,
  len: number,
  vmFlags: number,
  pkey: number,
  pgoff: number,
  populate: boolean,
): number {
  const mm = task.mm;
  // __mmap_prepare: the VMAs a MAP_FIXED mapping replaces are gathered first
  // (split at its edges: those splits stay if a check below fails); what it
  // replaces counts against neither the limits nor the charge
  const gathered = mm.vmas.splitEdges(addr, addr + len);
  if (gathered < 0) return gathered;
  const replaced = mm.vmas.overlap(addr, addr + len);
  if (!mayExpandVm(task, vmFlags, len / PAGE_SIZE - replaced.pages)) return -E.ENOMEM;
  // accountable_mapping: private writable memory is charged (VM_ACCOUNT)
  const accountable = (vmFlags & (VM_NORESERVE | VM_SHARED | VM_WRITE)) === VM_WRITE;
  if (accountable) {
    const charged = len / PAGE_SIZE - replaced.accounted;
    if (charged > 0 && vmEnoughMemory(k, task, charged) < 0) return -E.ENOMEM;
    vmFlags |= VM_ACCOUNT;
    // the replaced VM_ACCOUNT pages stay charged, now to the new mapping
    // (vms->nr_accounted = 0): unmapRange below gives them back, so take them again
    k.committedPages += replaced.accounted;
  }
  let vma: Vma;
  if (file === null && vmFlags & VM_SHARED) {
    const shm = new OpenFile(k, '/dev/zero (deleted)', '00:01', k.newIno(), shmemOps);
    vma = new Vma(addr, addr + len, vmFlags, pgoff, shm);
  } else {
    file?.get();
    vma = new Vma(addr, addr + len, vmFlags, pgoff, file);
  }
  vma.pkey = pkey;
  if (file !== null) {
    // f_op->mmap, after __mmap_prepare cleared the replaced mappings' PTEs
    // (vms_clean_up_area): a refusal leaves a hole where they were
    // (vms_abort_munmap_vmas). Only map.charged is given back: the replaced
    // VMAs' charge went to the new mapping (nr_accounted = 0) and stays.
    const r = file.ops.mmap(k, file, vma, task);
    if (r < 0) {
      if (accountable) vmUnacctMemory(k, len / PAGE_SIZE - replaced.accounted);
      unmapRange(k, task, addr, addr + len);
      vma.release();
      return r;
    }
  }
  // MAP_FIXED over existing mappings: unmap them first. This cannot fail:
  // splitEdges above made addr and addr + len VMA boundaries already.
  unmapRange(k, task, addr, addr + len);
  if (file === null && vmFlags & VM_SHARED && !(vmFlags & VM_NORESERVE)) {
    // shmem_zero_setup -> shmem_acct_size charges the whole size. It fails
    // after the old mappings are gone, and they stay gone.
    if (vmEnoughMemory(k, task, len / PAGE_SIZE) < 0) {
      vma.release();
      return -E.ENOMEM;
    }
    (vma.file as OpenFile).acct = len / PAGE_SIZE;
  }
  mm.vmas.insert(vma);
  k.gauge('vma_count_max', mm.vmas.mapCount);
  if (populate) {
    // populate_vma_page_range: write faults for private writable memory only
    const write = (vmFlags & (VM_WRITE | VM_SHARED)) === VM_WRITE;
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
  for (const v of detached) if (v.flags & VM_ACCOUNT) vmUnacctMemory(k, v.pages);
  const guards = task.mm.guards;
  if (guards.size > 0) for (const g of guards) if (g >= start && g < end) guards.delete(g);
  for (const v of detached) {
    zapRange(k, task.mm, v.start, v.end);
    v.release();
  }
  return 0;
}

/** munmap(2): do_vmi_munmap's checks on the u64 start and len, then the unmap. */
export function doMunmap(k: Kernel, task: Task, startA: RegArg, lenA: RegArg): number {
  const startR = toReg(startA), lenR = toReg(lenA);
  const TS = BigInt(TASK_SIZE);
  if (offsetInPageReg(startR) || startR > TS || lenR > TS - startR) return -E.EINVAL;
  const start = Number(startR);
  const len = pageAlign(Number(lenR));
  if (len === 0) return -E.EINVAL;
  return unmapRange(k, task, start, start + len);
}
