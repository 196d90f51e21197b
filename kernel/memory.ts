// Page-level operations on an address space (mm/memory.c): the anonymous and
// file fault paths, zapping a range, and the MKTME page hooks
// prep_encrypted_page / free_encrypted_page (MKTME RFC, arch/x86/mm/mktme.c).
import { PAGE_SIZE, asPfn } from '../hardware/types.js';
import { E } from './errno.js';
import type { Kernel, MmStruct, OpenFile, Task } from './kernel.js';
import type { MktmeKey } from './keys.js';
import { PG_ALLOCATED, PG_ANON, PG_FILE, PG_UNEVICTABLE } from './page_alloc.js';
import {
  PTE_DIRTY,
  PTE_MIGRATION,
  PTE_PINNED,
  PTE_PRESENT,
  PTE_SWAP,
  PTE_WRITE,
  mkPte,
  pageProt,
  ptePfn,
} from './pgtable.js';
import { pkeyDeniesData } from './pkeys.js';
import { reclaimPages, swapIn } from './swap.js';
import { flushTlbMm } from './tlb.js';
import { VM_EXEC, VM_LOCKED, VM_READ, VM_WRITE, type Vma } from './vma.js';

/**
 * prep_encrypted_page: the page was last used through KeyID 0 (or another
 * KeyID): flush those cache lines (caches are not coherent across aliases),
 * set the page's KeyID, take a key reference and clear the page through the
 * new KeyID, so the new owner reads zeros, not the old owner's data.
 */
export function prepEncryptedPage(k: Kernel, pfn: number, key: MktmeKey | null, zero = true): void {
  const keyid = key === null ? 0 : key.keyid;
  if (keyid !== 0) {
    k.engine.flush(asPfn(pfn));
    key!.getPage();
  }
  k.alloc.keyid[pfn] = keyid;
  if (zero) k.engine.zero(asPfn(pfn), keyid);
}

/**
 * free_encrypted_page: flush the keyed alias so no dirty keyed line is
 * written back over the next owner's data, reset the KeyID, drop the page's
 * key reference.
 */
export function freeEncryptedPage(k: Kernel, pfn: number): void {
  const keyid = k.alloc.keyid[pfn];
  if (keyid !== 0) {
    k.engine.flush(asPfn(pfn));
    k.alloc.keyid[pfn] = 0;
    k.keys.keyOf(keyid)?.putPage();
  }
}

/** Free a page that is no longer mapped (its mm's rss, or its file's charge, is the caller's to lower). */
function freePage(k: Kernel, pfn: number): void {
  freeEncryptedPage(k, pfn);
  k.alloc.release(pfn);
}

/** PTE flags a VMA's pages get when a fault maps them (pgtable.ts pageProt). */
export function vmaPteFlags(vma: Vma): number {
  return pageProt((vma.flags & VM_WRITE) !== 0);
}

/**
 * Zap [start, end) of mm (unmap_page_range + tlb_finish_mmu): clear every
 * PTE, shoot down the TLBs, then free anonymous frames and swap slots. File
 * pages stay in their file's page cache. Returns the pages zapped.
 */
export function zapRange(k: Kernel, mm: MmStruct, start: number, end: number): number {
  const w = k.pool.words;
  let freed = _freed;
  let nf = 0;
  let zapped = 0;
  for (let va = start; va < end; ) {
    // one leaf table at a time: its PTEs are consecutive words
    const next = Math.min(end, k.pool.nextSlot(mm.pgd, va));
    const i0 = k.pool.pteIndex(mm.pgd, va);
    if (i0 < 0) {
      va = next; // past the missing table
      continue;
    }
    for (let i = i0; va < next; va += PAGE_SIZE, i++) {
      const pte = Atomics.exchange(w, i, 0);
      if (pte === 0) continue;
      zapped++;
      if (pte & PTE_SWAP) {
        k.swap!.freeSlot(ptePfn(pte));
        continue;
      }
      const pfn = ptePfn(pte);
      if (k.alloc.flags[pfn] & PG_ANON && k.alloc.ownerMm[pfn] === mm.id) {
        if (nf === freed.length) freed = growFreed();
        freed[nf++] = pfn;
      }
    }
  }
  if (zapped === 0) return 0;
  mm.invalidate(start, end);
  flushTlbMm(k, mm);
  freeFrames(k, freed, nf);
  if (nf > 0) {
    // once for the range, as zap_pte_range adds up its rss changes and
    // applies them at the end (add_mm_rss_vec): per page, reading and
    // storing the shared word was a quarter of munmap's time
    mm.rss -= nf;
    dropFromLru(mm, start, end);
  }
  k.count('pages_zapped', zapped);
  return zapped;
}

/** Frames to free (zapRange, freeFilePages), grown, never shrunk: no allocation per call or page. */
let _freed: Int32Array = new Int32Array(64);

function growFreed(): Int32Array {
  const more = new Int32Array(_freed.length * 2);
  more.set(_freed);
  return (_freed = more);
}

/** Free the unmapped frames freed[0..nf): in freeByCpu's order where several worker CPUs took them. */
export function freeFrames(k: Kernel, freed: Int32Array, nf: number): void {
  const cpuOf = k.alloc.map.cpu;
  // the first worker CPU that took a frame to free, and whether another did too
  let cpu = 0;
  let several = false;
  for (let j = 0; j < nf && !several; j++) {
    const c = cpuOf[freed[j]];
    if (c > 0 && c !== cpu) {
      if (cpu > 0) several = true;
      cpu = c;
    }
  }
  if (several) freeByCpu(k, freed, nf);
  else for (let j = 0; j < nf; j++) freePage(k, freed[j]);
}

/**
 * The frames of file's pages with page offsets in [first, last), removed
 * from its page cache, in the shared buffer freeFrames takes (valid until
 * the next call). Returns how many.
 */
export function takeFilePages(file: OpenFile, first: number, last: number): { readonly frames: Int32Array; readonly n: number } {
  let n = 0;
  file.pages.forEach((pgoff, pfn) => {
    if (pgoff < first || pgoff >= last) return;
    file.pages.delete(pgoff);
    if (n === _freed.length) growFreed();
    _freed[n++] = pfn;
  });
  return { frames: _freed, n };
}

/**
 * Free frames that several worker CPUs took: the kernel's first, then the
 * last CPU's, ..., CPU 1's last, so that they lie on the free stack in the
 * order refillCpus (fastfault.ts) takes them, CPU 1's on top: each CPU gets
 * back the frames whose lines its host cache holds. This is for the
 * simulator's speed, not part of the model: no counter depends on which
 * free frame a list gets (in Linux the frames go to the per-CPU list of the
 * CPU that unmaps). Frames handed out in the order they were freed went to
 * the other CPU half the time, and its writes then fetched every line of
 * the frame from the first CPU's cache. Fault plain-mmap on the 2-vCPU
 * development VM, 16 blocks of six 40 ms windows at 2 CPUs, each against
 * the same cell at 1 CPU, while two threads of native AES ran at 1.8-2.2x
 * one: the two CPUs' summed work was 1.25x (0.98-1.79) the one CPU's, and
 * the time per op 0.86x; with frames handed back, 1.12x (0.92-1.38) and 0.76x.
 */
function freeByCpu(k: Kernel, freed: Int32Array, nf: number): void {
  const cpuOf = k.alloc.map.cpu;
  for (let j = 0; j < nf; j++) if (cpuOf[freed[j]] === 0) freePage(k, freed[j]);
  for (let c = k.alloc.map.nrCpus - 1; c > 0; c--) for (let j = 0; j < nf; j++) if (cpuOf[freed[j]] === c) freePage(k, freed[j]);
}

function dropFromLru(mm: MmStruct, start: number, end: number): void {
  let j = 0;
  for (let i = 0; i < mm.lru.length; i++) {
    const va = mm.lru[i];
    if (va >= start && va < end) {
      if (i < mm.clockHand) mm.clockHand--;
      continue;
    }
    mm.lru[j++] = va;
  }
  mm.lru.length = j;
  if (mm.clockHand >= j) mm.clockHand = 0;
}

/** Make room for one more resident page of mm under its memory limit; -ENOMEM when reclaim fails. */
function chargePage(k: Kernel, mm: MmStruct): number {
  const used = mm.rss + mm.filePages;
  if (used < mm.memLimit) return 0;
  const want = Math.min(32, used - mm.memLimit + 1); // SWAP_CLUSTER_MAX
  if (reclaimPages(k, mm, want) === 0) {
    k.count('oom');
    return -E.ENOMEM;
  }
  return 0;
}

/** Allocate and prepare a private anonymous page for vma at va. pfn or -errno. */
export function allocAnonPage(k: Kernel, mm: MmStruct, vma: Vma, va: number, zero = true): number {
  const r = chargePage(k, mm);
  if (r < 0) return r;
  const pfn = k.alloc.alloc(mm.node);
  if (pfn < 0) {
    k.count('oom');
    return -E.ENOMEM;
  }
  prepEncryptedPage(k, pfn, vma.key as MktmeKey | null, zero);
  k.alloc.flags[pfn] = PG_ALLOCATED | PG_ANON;
  // Where the kernel cannot read an encrypted page (SEV, TDX), it cannot swap
  // or move it either: KVM pins such memory (MODEL-FACTS.md, Kai Huang).
  const keyed = vma.keyid !== 0;
  const prof = k.machine.profile;
  if (vma.flags & VM_LOCKED || (keyed && prof.swap === 'pinned'))
    pinPage(k, pfn, keyed && prof.migrate !== 'reencrypt');
  k.alloc.ownerMm[pfn] = mm.id;
  k.alloc.ownerVa[pfn] = va;
  mm.rss++;
  mm.lru.push(va);
  return pfn;
}

/** Pin a frame and keep the pinned_pages high-water mark. */
export function pinPage(k: Kernel, pfn: number, unmovable: boolean): void {
  k.alloc.pin(pfn, unmovable);
  k.gauge('pinned_pages', k.alloc.nrPinned);
}

/** Allocate a page for a file's page cache (shmem, secretmem, driver). Not charged to an mm's LRU. */
export function allocFilePage(k: Kernel, file: OpenFile, pgoff: number, key: MktmeKey | null, charge: MmStruct | null = null): number {
  if (charge !== null) {
    // charged to the faulting process's memory limit (memcg), never reclaimable here
    if (file.charged !== null && file.charged !== charge) return -E.EINVAL;
    const r = chargePage(k, charge);
    if (r < 0) return r;
    if (!file.chargeTo(charge)) return -E.EINVAL; // a CPU of another mm took the file's first page
    charge.filePages++;
  }
  const pfn = k.alloc.alloc(charge?.node ?? 0);
  if (pfn < 0) {
    if (charge !== null) charge.filePages--;
    k.count('oom');
    return -E.ENOMEM;
  }
  prepEncryptedPage(k, pfn, key);
  k.alloc.flags[pfn] |= PG_FILE;
  const now = file.pages.insert(pgoff, pfn);
  if (now !== pfn) {
    // a worker CPU faulted the page in first (pagecache.ts): use its page
    if (charge !== null) charge.filePages--;
    freePage(k, pfn);
  }
  return now;
}

/** Free a file's page cache (last reference to the file dropped). */
export function freeFilePages(k: Kernel, file: OpenFile): void {
  let n = 0;
  file.pages.forEach((_pgoff, pfn) => {
    if (n === _freed.length) growFreed();
    _freed[n++] = pfn;
  });
  file.pages.clear();
  if (file.charged !== null) file.charged.filePages -= n;
  freeFrames(k, _freed, n);
}

/**
 * handle_mm_fault: resolve a fault at va (write or read) of task's mm. 0 when
 * the access can be retried, -EFAULT for SIGSEGV (no VMA or no permission),
 * -ENOMEM when the page cannot be had (OOM), -EBUSY never (migration waits
 * are the CPU's).
 */
export function handleMmFault(k: Kernel, task: Task, va: number, write: boolean): number {
  const mm = task.mm;
  k.count('faults');
  const vma = mm.vmas.find(va);
  // x86 has no write-only pages: any access right lets a read through, unless
  // the VMA's protection key denies data access (pkeys.ts: execute-only memory)
  if (
    vma === null ||
    (write ? !(vma.flags & VM_WRITE) : !(vma.flags & (VM_READ | VM_WRITE | VM_EXEC))) ||
    pkeyDeniesData(vma) ||
    (mm.guards.size > 0 && mm.guards.has(Math.floor(va / PAGE_SIZE) * PAGE_SIZE))
  ) {
    k.count('segv');
    return -E.EFAULT;
  }
  const page = Math.floor(va / PAGE_SIZE) * PAGE_SIZE;
  const i = k.pool.pteIndex(mm.pgd, page, true);
  if (i < 0) return -E.ENOMEM;
  const w = k.pool.words;
  const pte = Atomics.load(w, i);
  // Private anonymous memory with no key: a read fault maps what Linux maps
  // the shared zero page for (do_anonymous_page), read-only and with no
  // anon_vma; the first write then faults again, as the zero page's COW
  // does, and that gives the VMA its anon_vma (the model keeps the zeroed
  // frame rather than copying it).
  const privAnon = vma.file === null && vma.keyid === 0;
  if (pte & PTE_PRESENT) {
    // Present but not writable while the VMA is: a zero-page mapping, or a
    // PTE left stale by an mprotect upgrade; make it writable.
    if (write && !(pte & PTE_WRITE)) {
      if (vma.file === null) mm.vmas.anonVmaPrepare(mm.vmas.findIndex(page));
      Atomics.or(w, i, PTE_WRITE | PTE_DIRTY);
    }
    return 0;
  }
  if (pte & PTE_MIGRATION) return 0; // the CPU waits on the entry and retries
  if (pte & PTE_SWAP) return swapIn(k, mm, vma, page, i, pte);
  if (pte !== 0) {
    // protnone: the frame stayed while the VMA allowed no access; it does now
    const wbit = vma.flags & VM_WRITE ? PTE_WRITE : 0;
    Atomics.store(w, i, (pte & ~PTE_WRITE) | PTE_PRESENT | wbit);
    return 0;
  }
  let pfn: number;
  if (vma.file !== null) {
    const f = vma.file as OpenFile;
    pfn = f.ops.fault(k, f, vma, vma.pgoff + (page - vma.start) / PAGE_SIZE, task);
  } else {
    pfn = allocAnonPage(k, mm, vma, page);
    if (write || !privAnon) mm.vmas.anonVmaPrepare(mm.vmas.findIndex(page));
  }
  if (pfn < 0) return pfn;
  const pinned = k.alloc.flags[pfn] & PG_UNEVICTABLE ? PTE_PINNED : 0;
  const flags = privAnon && !write ? vmaPteFlags(vma) & ~PTE_WRITE : vmaPteFlags(vma);
  Atomics.store(w, i, mkPte(pfn, vma.keyid, flags | pinned | (write ? PTE_DIRTY : 0)));
  return 0;
}
