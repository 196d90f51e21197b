// Reclaim and swap (mm/vmscan.c, mm/swap_state.c, mm/memory.c do_swap_page),
// per address space: when an mm is at its memory limit, a clock hand over its
// resident anonymous pages gives accessed pages a second chance and swaps the
// others out.
//
// Swap-out of an encrypted page needs the kernel to read it: through the keyed
// alias where the hardware lets it (MKTME: the plaintext reaches swap unless
// swap is encrypted), as a sealed blob where the hardware exports one (SGX
// EWB), and not at all where it cannot (SEV, TDX): such pages are pinned.
// Swap-in allocates a new frame and encrypts the data for its new physical
// address (the tweak), through the page's KeyID.
import { PAGE_SIZE, asPfn } from '../hardware/types.js';
import { E } from './errno.js';
import type { Kernel, MmStruct } from './kernel.js';
import { allocAnonPage, freeEncryptedPage, vmaPteFlags } from './memory.js';
import { PG_ANON, PG_UNEVICTABLE } from './page_alloc.js';
import { PTE_ACCESSED, PTE_MIGRATION, PTE_SWAP, mkPte, ptePfn, pteKeyid } from './pgtable.js';
import { flushTlbMm } from './tlb.js';
import type { Vma } from './vma.js';

const page = new Uint8Array(PAGE_SIZE);

/** Can this kernel swap out a page with this KeyID at all? */
export function swappable(k: Kernel, keyid: number): boolean {
  if (k.swap === null) return false;
  const p = k.machine.profile;
  return keyid === 0 || p.swap === 'reencrypt' || p.swap === 'ewb-eldu';
}

/** Reclaim up to `want` pages of mm. Returns the number reclaimed. */
export function reclaimPages(k: Kernel, mm: MmStruct, want: number): number {
  const w = k.pool.words;
  let done = 0;
  // Two full turns of the clock at most: the first may only clear accessed bits.
  for (let scanned = 0, limit = 2 * mm.lru.length; done < want && scanned < limit && mm.lru.length > 0; scanned++) {
    if (mm.clockHand >= mm.lru.length) mm.clockHand = 0;
    const va = mm.lru[mm.clockHand];
    const i = k.pool.pteIndex(mm.pgd, va);
    const pte = i < 0 ? 0 : Atomics.load(w, i);
    // A PROT_NONE page keeps its frame with PRESENT clear (a protnone PTE):
    // still resident, still swappable. Only an empty, swap or migration
    // entry means the page has left this slot of the LRU.
    if (pte === 0 || pte & (PTE_SWAP | PTE_MIGRATION)) {
      mm.lru.splice(mm.clockHand, 1); // no longer resident
      continue;
    }
    if (pte & PTE_ACCESSED) {
      Atomics.and(w, i, ~PTE_ACCESSED); // second chance
      mm.clockHand++;
      continue;
    }
    const pfn = ptePfn(pte);
    if (!(k.alloc.flags[pfn] & PG_ANON) || k.alloc.flags[pfn] & PG_UNEVICTABLE || !swappable(k, pteKeyid(pte))) {
      mm.clockHand++;
      continue;
    }
    if (swapOut(k, mm, i, pte) < 0) break; // swap full
    mm.lru.splice(mm.clockHand, 1);
    done++;
  }
  return done;
}

/** Unmap one page, shoot down TLBs, write it to swap and free the frame. */
function swapOut(k: Kernel, mm: MmStruct, i: number, pte: number): number {
  const swap = k.swap!;
  const slot = swap.allocSlot();
  if (slot < 0) return -E.ENOSPC;
  const pfn = ptePfn(pte);
  const keyid = pteKeyid(pte);
  Atomics.store(k.pool.words, i, mkPte(slot, keyid, PTE_SWAP));
  const va = k.alloc.ownerVa[pfn];
  mm.invalidate(va, va + PAGE_SIZE);
  flushTlbMm(k, mm);
  const sealed = keyid !== 0 && k.machine.profile.swap === 'ewb-eldu';
  // Read through the page's own alias: the kernel sees plaintext (MKTME).
  k.engine.read(asPfn(pfn), keyid, page);
  k.count('plaintext_exposed_bytes', swap.writePage(slot, page, sealed));
  if (sealed) k.count('swap_sealed'); // EWB
  page.fill(0);
  freeEncryptedPage(k, pfn);
  k.alloc.release(pfn);
  mm.rss--;
  k.count('swap_out');
  return 0;
}

/** do_swap_page: bring page va (PTE index i holding swap entry pte) back. */
export function swapIn(k: Kernel, mm: MmStruct, vma: Vma, va: number, i: number, pte: number): number {
  const slot = ptePfn(pte);
  const keyid = pteKeyid(pte);
  const pfn = allocAnonPage(k, mm, vma, va, false);
  if (pfn < 0) return pfn;
  const sealed = keyid !== 0 && k.machine.profile.swap === 'ewb-eldu';
  k.swap!.readPage(slot, page, sealed);
  if (sealed) k.count('swap_sealed'); // ELDU
  k.engine.write(asPfn(pfn), keyid, page); // encrypted for the new address
  page.fill(0);
  k.swap!.freeSlot(slot);
  Atomics.store(k.pool.words, i, mkPte(pfn, keyid, vmaPteFlags(vma))); // mk_pte(page, vma->vm_page_prot)
  k.count('swap_in');
  return 0;
}
