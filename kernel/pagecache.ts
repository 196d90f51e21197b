// A file's page cache (address_space->i_pages): page offset -> frame. In
// Linux an xarray, which a CPU's fault reads under RCU and inserts into
// itself (filemap_add_folio, shmem_add_to_page_cache, __filemap_get_folio
// with FGP_CREAT); no other thread does it for the CPU. Here the index lies
// in the shared table pool (pgtable.ts), so that a worker CPU can look up and
// insert the pages of a file it faults on without trapping (fastfault.ts):
//
//   dir   one table; word j < 1023 holds the table (leaf) for page offsets
//         [1024 j, 1024 j + 1024), 0 while there is none; word CLAIM the id
//         of the mm the file's pages are charged to (file.charged), 0 while
//         none is: a CPU that takes the file's first page claims it for its
//         mm by compare-and-exchange, as the kernel's first fault does
//   leaf  word i: the frame of page offset 1024 j + i, plus 1; 0 for none
//
// That covers INDEX_PAGES page offsets (almost 4 GiB of file). Offsets past
// it, and any whose leaf the pool had no table for, live in a Map that only
// the kernel thread reads; CPUs trap on those (a missing leaf says so).
//
// Locking contract:
// - Only the kernel makes tables, and only the kernel removes pages or frees
//   tables, and then only while no CPU can fault on the file: CPUs fault a
//   file's pages only through its mappings, and the kernel removes pages
//   either while it holds the write lock (fastfault.ts) of every mm that
//   maps the file (kvm.ts punchHole) or once nothing maps it (release).
// - Only a CPU of the mm the file is charged to (or of the first mm to take
//   a page of it: the claim) inserts pages; other mms' CPUs trap for a page
//   that is not there, and the kernel refuses them (memory.ts
//   allocFilePage), so a file's pages are charged to one mm, as before.
// - Kernel and CPUs insert a page by compare-and-exchange from 0, and the
//   loser of a race gives its frame back and maps the winner's. The kernel
//   races the CPUs only where it faults a file's page under the write lock
//   of another mm than theirs (KVM's guest faults on a VMM's guest_memfd,
//   under the guest's mm), as two CPUs race in shmem_add_to_page_cache.
// - A table pointer is written once (0 -> slot) before the kernel lets CPUs
//   in (publishVmas, under the write lock), and the tables go back to the
//   pool only at clear(), when nothing maps the file: CPUs read the pointers
//   with a plain load, as they read page-table pointers.
import type { PageTablePool } from './pgtable.js';

/** Words of an index table (a pool slot): a leaf's page offsets, a directory's leaves and claim. */
export const INDEX_ENTRIES = 1024;
const ENTRIES = INDEX_ENTRIES;
/** The directory's word that holds the claim. */
export const CLAIM = ENTRIES - 1;
/** Page offsets the shared index covers. */
export const INDEX_PAGES = CLAIM * ENTRIES;

export class PageCache {
  /** the directory table in the pool; 0 while there is none */
  dir = 0;
  /** pages the index does not hold (kernel only) */
  private readonly far = new Map<number, number>();
  /** the claim while there is no directory to hold it */
  private owner = 0;
  /** directory words that hold a leaf, in the order they were made (kernel only: scans visit these, not all 1023) */
  private readonly leaves: number[] = [];
  /** no page offset at or past this is in the index: CPUs insert only below the ends build was given (kernel only) */
  private span = 0;

  constructor(private readonly pool: PageTablePool) {}

  /** Word index in pool.words of pgoff's entry; -1 when it has no leaf (make: build the tables, if the pool has them). */
  private entry(pgoff: number, make: boolean): number {
    if (pgoff >= INDEX_PAGES) return -1;
    const w = this.pool.words;
    if (this.dir === 0) {
      if (!make) return -1;
      const d = this.pool.allocTable();
      if (d < 0) return -1;
      w[d * ENTRIES + CLAIM] = this.owner;
      this.dir = d;
    }
    const di = this.dir * ENTRIES + (pgoff >>> 10);
    let leaf = w[di];
    if (leaf === 0) {
      if (!make) return -1;
      leaf = this.pool.allocTable();
      if (leaf < 0) return -1;
      // pages the Map took while there was no leaf move into it
      const lo = pgoff - (pgoff % ENTRIES);
      for (const [p, pfn] of this.far)
        if (p >= lo && p < lo + ENTRIES) {
          w[leaf * ENTRIES + (p - lo)] = pfn + 1;
          this.far.delete(p);
          if (p >= this.span) this.span = p + 1;
        }
      Atomics.store(w, di, leaf);
      this.leaves.push(pgoff >>> 10);
    }
    return leaf * ENTRIES + (pgoff & (ENTRIES - 1));
  }

  /** Id of the mm the file's pages are charged to, 0 for none yet (a CPU's claim included). */
  claimant(): number {
    return this.dir !== 0 ? Atomics.load(this.pool.words, this.dir * ENTRIES + CLAIM) : this.owner;
  }

  /** Claim the file for mm `id` unless another has it; true when `id` has it now. Kernel side. */
  claim(id: number): boolean {
    if (this.dir === 0) {
      if (this.owner === 0) this.owner = id;
      return this.owner === id;
    }
    const seen = Atomics.compareExchange(this.pool.words, this.dir * ENTRIES + CLAIM, 0, id);
    this.owner = seen === 0 ? id : seen;
    return this.owner === id;
  }

  get(pgoff: number): number | undefined {
    const i = this.entry(pgoff, false);
    if (i >= 0) {
      const v = Atomics.load(this.pool.words, i);
      if (v !== 0) return v - 1;
    }
    return this.far.get(pgoff);
  }

  has(pgoff: number): boolean {
    return this.get(pgoff) !== undefined;
  }

  /**
   * Insert pfn at pgoff unless a page is there: returns the page at pgoff
   * now, pfn or the one a CPU put there first (the kernel faulting a file
   * for another mm than the CPUs', as KVM's guest faults do: kvm.ts).
   */
  insert(pgoff: number, pfn: number): number {
    const had = this.get(pgoff);
    if (had !== undefined) return had;
    const i = this.entry(pgoff, true);
    if (i < 0) {
      this.far.set(pgoff, pfn);
      return pfn;
    }
    if (pgoff >= this.span) this.span = pgoff + 1;
    const seen = Atomics.compareExchange(this.pool.words, i, 0, pfn + 1);
    return seen === 0 ? pfn : seen - 1;
  }

  /** Insert a page at an empty offset; a page already there is a kernel bug: it throws. */
  set(pgoff: number, pfn: number): this {
    const now = this.insert(pgoff, pfn);
    if (now !== pfn) throw new Error(`page cache: offset ${pgoff} already holds frame ${now}`);
    return this;
  }

  delete(pgoff: number): boolean {
    const i = this.entry(pgoff, false);
    if (i >= 0 && Atomics.exchange(this.pool.words, i, 0) !== 0) return true;
    return this.far.delete(pgoff);
  }

  /**
   * Build the index's tables for page offsets [lo, hi), at most `budget` new
   * ones, so that CPUs can fault those offsets (kernel only, while CPUs are
   * kept out; past INDEX_PAGES there are none). Returns the tables it made.
   */
  build(lo: number, hi: number, budget: number): number {
    let made = 0;
    const w = this.pool.words;
    const end = Math.min(hi, INDEX_PAGES);
    if (lo >= end) return 0;
    if (end > this.span) this.span = end; // (a leaf the budget leaves out traps: no CPU inserts there)
    for (let p = lo - (lo % ENTRIES); p < end && made < budget; p += ENTRIES) {
      if (this.dir !== 0 && w[this.dir * ENTRIES + (p >>> 10)] !== 0) continue;
      const had = this.dir;
      if (this.entry(p, true) < 0) break; // the pool is out of tables: those offsets trap
      made += had === 0 ? 2 : 1;
    }
    return made;
  }

  /** Pages in the cache (a scan: for the kernel's accounting, not a hot path). */
  get size(): number {
    let n = 0;
    this.forEach(() => n++);
    return n;
  }

  /**
   * fn(pgoff, frame) for every page: the indexed ones in offset order, then
   * the rest. fn may delete the page it is given.
   */
  forEach(fn: (pgoff: number, pfn: number) => void): void {
    const w = this.pool.words;
    // in offset order; plain loads: the kernel scans while no CPU can insert (locking contract)
    const js = this.leaves.length > 1 ? [...this.leaves].sort((a, b) => a - b) : this.leaves;
    for (const j of js) {
      const leaf = w[this.dir * ENTRIES + j];
      const n = Math.min(ENTRIES, this.span - j * ENTRIES);
      for (let i = 0; i < n; i++) {
        const v = w[leaf * ENTRIES + i];
        if (v !== 0) fn(j * ENTRIES + i, v - 1);
      }
    }
    for (const [p, pfn] of this.far) fn(p, pfn);
  }

  /** [pgoff, frame] of every page, in forEach's order. */
  entries(): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    this.forEach((p, pfn) => out.push([p, pfn]));
    return out;
  }

  /** The frame of every page, in forEach's order. */
  values(): number[] {
    const out: number[] = [];
    this.forEach((_pgoff, pfn) => out.push(pfn));
    return out;
  }

  /** Drop every page and give the index's tables back to the pool (the frames are the caller's). */
  clear(): void {
    this.far.clear();
    if (this.dir === 0) return;
    const w = this.pool.words;
    this.owner = w[this.dir * ENTRIES + CLAIM];
    for (const j of this.leaves) this.pool.freeTable(w[this.dir * ENTRIES + j]);
    this.leaves.length = 0;
    this.span = 0;
    this.pool.freeTable(this.dir);
    this.dir = 0;
  }
}
