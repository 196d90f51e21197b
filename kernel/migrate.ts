// Page migration between NUMA nodes (mm/migrate.c, move_pages(2)).
//
// Per call: replace the PTE of every page that can move with a migration
// entry (CPUs that meet it wait), shoot down the TLBs once for the batch, then
// per page copy it through its KeyID alias (decrypt at the old physical
// address, encrypt at the new one: the tweak is the address, so a raw copy
// would be garbage), install the new PTE, wake the waiters, free the old
// frame. tlb_shootdowns counts IPIs per move_pages call, not per page. MKTME pages stay movable this way (the MKTME
// RFC allocates the destination with the source's KeyID). Pages the kernel
// cannot read or that are pinned answer -EBUSY.
import { asPfn } from '../hardware/types.js';
import { E } from './errno.js';
import type { Kernel, Task } from './kernel.js';
import { PG_ALLOCATED, PG_ANON, PG_INACCESSIBLE, PG_UNMOVABLE } from './page_alloc.js';
import { PTE_MIGRATION, PTE_PRESENT, mkPte, ptePfn, pteKeyid } from './pgtable.js';
import { flushTlbMm } from './tlb.js';

/** Why a page of this kind cannot move (-errno), or 0. */
function movable(k: Kernel, pfn: number, keyid: number): number {
  const f = k.alloc.flags[pfn];
  if (f & PG_INACCESSIBLE) return -E.EINVAL; // guest_memfd: kvm_gmem_migrate_folio
  if (f & PG_UNMOVABLE || !(f & PG_ANON)) return -E.EBUSY;
  if (keyid !== 0 && k.machine.profile.migrate !== 'reencrypt') return -E.EBUSY; // only firmware could
  return 0;
}

/**
 * move_pages(pid, count, pages, nodes, status, MPOL_MF_MOVE): status[i] gets
 * the node the page is on afterwards or -errno. Returns 0, or -errno for the
 * call as a whole (a bad node).
 */
export function movePages(k: Kernel, task: Task, pages: readonly number[], nodes: readonly number[], status: number[]): number {
  if (pages.length !== nodes.length) return -E.EINVAL;
  for (const n of nodes) if (!Number.isInteger(n) || n < 0 || n >= k.alloc.nrNodes) return -E.ENODEV;
  const mm = task.mm;
  const w = k.pool.words;
  // 1. every page that can move: a destination frame and a migration entry
  //    (CPUs that meet it wait)
  const moving = _moving;
  moving.length = 0;
  for (let j = 0; j < pages.length; j++) {
    const va = Math.floor(pages[j] / 4096) * 4096;
    const vma = mm.vmas.find(va);
    const i = vma === null ? -1 : k.pool.pteIndex(mm.pgd, va);
    const pte = i < 0 ? 0 : Atomics.load(w, i);
    if (!(pte & PTE_PRESENT)) {
      status[j] = -E.ENOENT;
      continue;
    }
    const pfn = ptePfn(pte);
    const from = k.machine.memory.nodeOf(asPfn(pfn));
    if (from === nodes[j]) {
      status[j] = from;
      continue;
    }
    const r = movable(k, pfn, pteKeyid(pte));
    if (r < 0) {
      status[j] = r;
      k.count('migrate_failed');
      continue;
    }
    const dst = k.alloc.alloc(nodes[j], true);
    if (dst < 0) {
      status[j] = -E.ENOMEM;
      k.count('migrate_failed');
      continue;
    }
    Atomics.store(w, i, (pte & ~PTE_PRESENT) | PTE_MIGRATION);
    mm.invalidate(va, va + 4096);
    moving.push(j, i, pte, dst);
  }
  if (moving.length === 0) return 0;
  // 2. one shootdown for the whole call, as Linux batches the flushes of a
  //    migrate_pages() batch (try_to_migrate -> flush_tlb_batched_pending):
  //    after it, no CPU may still use an old translation
  flushTlbMm(k, mm);
  for (let m = 0; m < moving.length; m += 4) {
    const j = moving[m], i = moving[m + 1], pte = moving[m + 2], dst = moving[m + 3];
    const pfn = ptePfn(pte);
    const keyid = pteKeyid(pte);
    // 3. copy through the KeyID alias; the page's key reference moves with it
    k.engine.copy(asPfn(pfn), keyid, asPfn(dst), keyid);
    k.alloc.flags[dst] = k.alloc.flags[pfn];
    k.alloc.keyid[dst] = keyid;
    k.alloc.ownerMm[dst] = k.alloc.ownerMm[pfn];
    k.alloc.ownerVa[dst] = k.alloc.ownerVa[pfn];
    // 4. the new PTE; CPUs waiting on the migration entry see it. It is as
    //    young and as dirty as the old one: try_to_migrate_one records both
    //    in the migration entry (make_migration_entry_young/_dirty, which
    //    x86-64's swap entries have room for) and remove_migration_pte
    //    applies them (pte_mkold unless the entry was young; mm/migrate.c)
    Atomics.store(w, i, mkPte(dst, keyid, (pte & 0x7f & ~PTE_MIGRATION) | PTE_PRESENT));
    Atomics.notify(w, i);
    // 5. the old frame: flush its keyed lines, back to the allocator
    if (keyid !== 0) k.engine.flush(asPfn(pfn));
    k.alloc.keyid[pfn] = 0;
    // the page's state (LRU, pinning) moved to dst: free the old frame as a bare one
    k.alloc.flags[pfn] = PG_ALLOCATED;
    k.alloc.release(pfn);
    status[j] = nodes[j];
    k.count('migrated');
  }
  return 0;
}

/** movePages' batch, [status index, PTE index, old PTE, destination frame] per page: no allocation per call. */
const _moving: number[] = [];
