// mprotect(2) (mm/mprotect.c do_mprotect_pkey / mprotect_fixup), extended as
// the MKTME RFC extends it: an optional key to set on the range. A KeyID
// change zaps the range's pages ("Data is not preserved across KeyID changes,
// by design", A. Schofield), and VMAs with different KeyIDs never merge.
import { PAGE_SIZE } from '../hardware/types.js';
import { E } from './errno.js';
import type { Kernel, Task } from './kernel.js';
import type { MktmeKey } from './keys.js';
import { mayExpandVm, vmEnoughMemory, vmUnacctMemory } from './limits.js';
import { handleMmFault, zapRange } from './memory.js';
import { protToVm } from './mmap.js';
import { mprotectPkey, pkeyDeniesData } from './pkeys.js';
import { addReg, offsetInPageReg, pageAddr, pageAlignReg, type RegArg, toReg } from './regs.js';
import { PTE_DIRTY, PTE_MIGRATION, PTE_PRESENT, PTE_SWAP, PTE_WRITE } from './pgtable.js';
import { flushTlbMm } from './tlb.js';
import { PROT_EXEC, PROT_GROWSDOWN, PROT_GROWSUP, PROT_READ, PROT_SEM, PROT_WRITE } from './uapi.js';
import {
  VM_ACCESS_FLAGS,
  VM_ACCOUNT,
  VM_GROWSDOWN,
  VM_LOCKED,
  VM_NORESERVE,
  VM_SHARED,
  VM_WRITE,
  type Vma,
} from './vma.js';

/** Set a VMA's key (the reference moves from the old key to the new one). */
export function setVmaKey(vma: Vma, key: MktmeKey | null): void {
  key?.get();
  vma.key?.put();
  vma.key = key;
}

/**
 * change_protection: make the range's PTEs match the VMA's new flags. A
 * PROT_NONE page keeps its frame with PRESENT cleared (a protnone PTE).
 */
export function changeProtection(k: Kernel, task: Task, vma: Vma, start: number, end: number): void {
  const w = k.pool.words;
  // a key other than 0 denies loads and stores (pkeys.ts): no data access at all
  const access = (vma.flags & VM_ACCESS_FLAGS) !== 0 && !pkeyDeniesData(vma);
  const write = (vma.flags & VM_WRITE) !== 0;
  // A clean page of private anonymous memory stands for the zero page, which
  // change_protection never makes writable (can_change_pte_writable): its
  // first write faults and breaks COW (memory.ts).
  const zeroPages = vma.file === null && vma.keyid === 0;
  let changed = false;
  for (let va = start; va < end; va += PAGE_SIZE) {
    const i = k.pool.pteIndex(task.mm.pgd, va);
    if (i < 0) {
      va = k.pool.nextSlot(task.mm.pgd, va) - PAGE_SIZE; // past the missing table
      continue;
    }
    const pte = Atomics.load(w, i);
    if (pte === 0 || pte & (PTE_SWAP | PTE_MIGRATION)) continue;
    let npte = access ? pte | PTE_PRESENT : pte & ~PTE_PRESENT;
    npte = write && !(zeroPages && !(pte & PTE_DIRTY)) ? npte | PTE_WRITE : npte & ~PTE_WRITE;
    if (npte !== pte) {
      Atomics.store(w, i, npte);
      changed = true;
    }
  }
  if (!changed) return;
  task.mm.invalidate(start, end);
  flushTlbMm(k, task.mm);
}

/** mprotect_fixup for [start, end) inside vmas[i]; the index now covering it, or -errno. */
function mprotectFixup(
  k: Kernel,
  task: Task,
  i: number,
  start: number,
  end: number,
  newflags: number,
  newPkey: number,
  newKey: MktmeKey | null | undefined,
): number {
  const vmas = task.mm.vmas;
  const vma = vmas.vmas[i];
  const oldflags = vma.flags;
  const keyChange = newKey !== undefined && newKey !== vma.key;
  // the protection key is part of Linux's vm_flags: a new key alone is a change
  if (newflags === oldflags && newPkey === vma.pkey && !keyChange) return i;
  // Private memory turning writable is charged (and may pass RLIMIT_DATA);
  // read-only anonymous memory with no anon_vma yet is uncharged again.
  const nrpages = (end - start) / PAGE_SIZE;
  let charged = 0, uncharged = 0;
  if (newflags & VM_WRITE) {
    if (!mayExpandVm(task, newflags, nrpages) && mayExpandVm(task, oldflags, nrpages)) return -E.ENOMEM;
    if (!(oldflags & (VM_ACCOUNT | VM_WRITE | VM_SHARED | VM_NORESERVE))) {
      if (vmEnoughMemory(k, task, nrpages) < 0) return -E.ENOMEM;
      charged = nrpages;
      newflags |= VM_ACCOUNT;
    }
  } else if (oldflags & VM_ACCOUNT && vma.anonymous && !vma.anonVma) {
    newflags &= ~VM_ACCOUNT;
    uncharged = nrpages;
  }
  let target: Vma | null = null;
  const r = vmas.modify(i, start, end, (v) => {
    v.flags = newflags;
    v.pkey = newPkey;
    if (keyChange) setVmaKey(v, newKey);
    target = v;
  });
  if (r < 0) {
    vmUnacctMemory(k, charged);
    return r;
  }
  vmUnacctMemory(k, uncharged);
  if (keyChange) zapRange(k, task.mm, start, end);
  if (target !== null) changeProtection(k, task, target, start, end);
  // A private VM_LOCKED VMA becoming writable is populated with write faults
  // now, to break COW ahead of access (mprotect_fixup)
  if ((oldflags & (VM_WRITE | VM_SHARED | VM_LOCKED)) === VM_LOCKED && newflags & VM_WRITE)
    for (let va = start; va < end; va += PAGE_SIZE) if (handleMmFault(k, task, va, true) < 0) break;
  return r;
}

/**
 * do_mprotect_pkey, on the u64 registers (regs.ts). With `newKey` given
 * (encrypt_mprotect), the range also moves to that key (null: back to KeyID 0).
 */
export function doMprotect(k: Kernel, task: Task, startA: RegArg, lenA: RegArg, protA: RegArg, newKey?: MktmeKey | null): number {
  const startR = toReg(startA), lenR = toReg(lenA);
  let protR = toReg(protA);
  const GROWS = BigInt(PROT_GROWSDOWN | PROT_GROWSUP);
  const grows = Number(protR & GROWS);
  protR &= ~GROWS;
  if (grows === (PROT_GROWSDOWN | PROT_GROWSUP)) return -E.EINVAL;
  if (offsetInPageReg(startR)) return -E.EINVAL;
  if (lenR === 0n) return 0;
  const endR = addReg(startR, pageAlignReg(lenR));
  if (endR <= startR) return -E.ENOMEM; // PAGE_ALIGN wrapped, or start + len did
  // arch_validate_prot (generic): all 64 bits
  if (protR & ~BigInt(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM)) return -E.EINVAL;
  const prot = Number(protR);
  let start = pageAddr(startR);
  const end = pageAddr(endR);
  const vmas = task.mm.vmas;
  let i = vmas.findIndex(start);
  const first = vmas.vmas[i];
  if (first === undefined || first.start >= end) return -E.ENOMEM;
  if (grows & PROT_GROWSDOWN) {
    // the change reaches down to the start of a VM_GROWSDOWN VMA
    start = first.start;
    if (!(first.flags & VM_GROWSDOWN)) return -E.EINVAL;
  } else {
    if (first.start > start) return -E.ENOMEM;
    // PROT_GROWSUP would extend the change up to the VMA's end, but
    // VM_GROWSUP is 0 on x86: no VMA grows up
    if (grows & PROT_GROWSUP) return -E.EINVAL;
  }
  // arch_override_mprotect_pkey, which Linux asks per VMA: here it is the same for all (pkeys.ts)
  const newPkey = mprotectPkey(k, task.mm, prot);
  let nstart = start;
  let tmp = first.start;
  let error = 0;
  while (i < vmas.vmas.length && vmas.vmas[i].start < end) {
    const vma = vmas.vmas[i];
    if (vma.start !== tmp) {
      error = -E.ENOMEM; // a hole: what was changed before it stays changed
      break;
    }
    const newflags = protToVm(prot) | (vma.flags & ~VM_ACCESS_FLAGS);
    // VM_MAY* >> 4 lines up with VM_*: asking for what the mapping may not have
    if ((newflags & ~(newflags >> 4)) & VM_ACCESS_FLAGS) {
      error = -E.EACCES;
      break;
    }
    tmp = Math.min(vma.end, end);
    const r = mprotectFixup(k, task, i, nstart, tmp, newflags, newPkey, newKey);
    if (r < 0) {
      error = r;
      break;
    }
    i = r;
    tmp = vmas.vmas[i].end;
    nstart = tmp;
    i++;
  }
  k.gauge('vma_count_max', vmas.mapCount);
  if (!error && tmp < end) error = -E.ENOMEM;
  return error;
}
