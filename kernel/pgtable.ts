// Page tables in shared memory. One 32-bit word per page (a PTE):
//
//   bit 0  PRESENT     bit 3  MIGRATION (not present: a CPU must wait)
//   bit 1  WRITE       bit 4  SWAP (not present: bits 16-31 hold the slot)
//   bit 2  PINNED      bit 5  ACCESSED (set by the CPU)  bit 6 DIRTY
//   bits 7-15  KeyID (9 bits: up to 511 KeyIDs, enough for SEV's ASIDs)
//   bits 16-31 page frame number (or swap slot): at most 65536 frames (256 MiB)
//
// A three-level radix tree maps a 47-bit user address: 15 bits of top-level
// index, 10 bits of middle, 10 bits of leaf. Every table is a 1024-word slot in
// one shared pool (the top level takes 32 slots), so worker CPUs can walk them.
// Files' page cache indexes take their tables from the same pool (pagecache.ts).
// Locking contract: only the kernel (the boot CPU, main thread) writes table
// pointers and PTEs; CPUs read PTEs with Atomics.load and may only OR in the
// ACCESSED and DIRTY bits (Atomics.or). The kernel clears a PTE with
// Atomics.exchange so a concurrently set DIRTY bit is not lost. A table
// pointer is written once in the table's life (0 -> slot, with Atomics.store)
// and cleared only when the task exits (freeTables), and a CPU hears of a
// range only through an atomic the kernel writes after building its tables
// (the round's command, a trap's reply, the mm's lock word): pteIndex reads
// the pointers with plain loads: each Atomics.load is a call into V8 (a
// builtin, not inlined), about a dozen a first-touched page. With the same
// for a CPU's own IPI ack (cpu.ts), on the 2-vCPU development VM (ab, 14
// processes): fault plain-mmap t1 -4.9% (p_holm < 0.001), madvise-encrypt
// t1 -3.4% (0.006), the other fault and migration cells -0.9 to -3.9%.

export const PTE_PRESENT = 1 << 0;
export const PTE_WRITE = 1 << 1;
export const PTE_PINNED = 1 << 2;
export const PTE_MIGRATION = 1 << 3;
export const PTE_SWAP = 1 << 4;
export const PTE_ACCESSED = 1 << 5;
export const PTE_DIRTY = 1 << 6;
const KEYID_SHIFT = 7;
const KEYID_MASK = 0x1ff;
const PFN_SHIFT = 16;
export const PTE_MAX_PFN = 0xffff;
export const PTE_MAX_KEYID = KEYID_MASK;

export const mkPte = (pfn: number, keyid: number, flags: number): number =>
  ((pfn << PFN_SHIFT) | (keyid << KEYID_SHIFT) | flags) | 0;
export const ptePfn = (pte: number): number => pte >>> PFN_SHIFT;
export const pteKeyid = (pte: number): number => (pte >>> KEYID_SHIFT) & KEYID_MASK;
export const ptePresent = (pte: number): boolean => (pte & PTE_PRESENT) !== 0;

/**
 * The flags a fault maps a user page with (vma->vm_page_prot). ACCESSED is
 * among them: x86's user protections all carry _PAGE_ACCESSED (PAGE_SHARED,
 * PAGE_COPY, PAGE_READONLY in arch/x86/include/asm/pgtable_types.h), and
 * do_anonymous_page and do_swap_page build the PTE from vm_page_prot
 * (mm/memory.c). So a page that has just been faulted in survives reclaim's
 * first look at it until the faulting CPU has retried its access. Without
 * the bit, two CPUs swapping in under one memory limit evicted each other's
 * pages between the fault and the retry, thousands of times in a round.
 */
export const pageProt = (writable: boolean): number => PTE_PRESENT | PTE_ACCESSED | (writable ? PTE_WRITE : 0);

const ENTRIES = 1024;
const TOP_SLOTS = 32; // 32768 top-level entries
const TOP_SHIFT = 2 ** 20; // vpn / 2^20 -> top index

export interface PgtableDescriptor {
  readonly sab: SharedArrayBuffer;
  readonly slots: number;
}

/** The shared pool of table slots. Slot 0 is never handed out (0 = no table). */
export class PageTablePool {
  readonly words: Int32Array;
  readonly slots: number;
  private readonly sab: SharedArrayBuffer;
  private next = 1;
  private readonly free: number[] = [];
  /** top-level tables of exited tasks, zeroed (TOP_SLOTS slots each) */
  private readonly freePgds: number[] = [];
  /**
   * Per pgd, the top-level entries that hold a middle table (kernel only).
   * Freeing walks these, not all 32768 entries: the whole scan cost 55 us
   * per exit, most of a key-exhaustion process's life. Linux's
   * free_pgtables() likewise visits only the ranges its VMAs covered.
   */
  private readonly tops = new Map<number, number[]>();

  private constructor(sab: SharedArrayBuffer, slots: number) {
    this.sab = sab;
    this.slots = slots;
    this.words = new Int32Array(sab);
  }

  static create(slots: number): PageTablePool {
    if (!Number.isInteger(slots) || slots < TOP_SLOTS + 3)
      throw new RangeError(`slots: expected an integer >= ${TOP_SLOTS + 3}, got ${slots}`);
    return new PageTablePool(new SharedArrayBuffer(slots * ENTRIES * 4), slots);
  }

  static attach(d: PgtableDescriptor): PageTablePool {
    return new PageTablePool(d.sab, d.slots);
  }

  descriptor(): PgtableDescriptor {
    return { sab: this.sab, slots: this.slots };
  }

  /** Allocate n contiguous zeroed slots; -1 when the pool is exhausted. Kernel only. */
  private alloc(n: number): number {
    if (n === 1 && this.free.length > 0) {
      const s = this.free.pop()!;
      this.words.fill(0, s * ENTRIES, (s + 1) * ENTRIES);
      return s;
    }
    if (this.next + n > this.slots) return -1;
    const s = this.next;
    this.next += n;
    return s;
  }

  /**
   * One zeroed slot for a table that is not a page table (a file's page
   * cache index: pagecache.ts); -1 when the pool is exhausted. Kernel only.
   */
  allocTable(): number {
    return this.alloc(1);
  }

  /** Give back a slot of allocTable (zeroed again when next handed out). Kernel only. */
  freeTable(slot: number): void {
    if (!Number.isInteger(slot) || slot < 1 || slot >= this.slots) throw new RangeError(`slot: expected an integer in [1, ${this.slots - 1}], got ${slot}`);
    this.free.push(slot);
  }

  /** A new top-level table (pgd), an exited task's if there is one; -1 when out of table memory. */
  allocPgd(): number {
    return this.freePgds.pop() ?? this.alloc(TOP_SLOTS);
  }

  /** Free every table of pgd (after all its PTEs are cleared), pgd itself included: its top-level slots, zeroed, go to the next allocPgd. */
  freeTables(pgd: number): void {
    const w = this.words;
    // in the order the middle tables were made (any order frees the same slots)
    for (const i of this.tops.get(pgd) ?? []) {
      const mid = w[pgd * ENTRIES + i];
      for (let j = 0; j < ENTRIES; j++) {
        const leaf = w[mid * ENTRIES + j];
        if (leaf !== 0) this.free.push(leaf);
      }
      this.free.push(mid);
      w[pgd * ENTRIES + i] = 0;
    }
    this.tops.delete(pgd);
    this.freePgds.push(pgd);
  }

  /**
   * Index into `words` of the PTE for va, or -1 when a table on the way is
   * missing. With alloc, missing tables are made (kernel only); -2 when the
   * pool is exhausted.
   */
  pteIndex(pgd: number, va: number, alloc = false): number {
    const vpn = Math.floor(va / 4096);
    const w = this.words;
    const top = Math.floor(vpn / TOP_SHIFT);
    const ti = pgd * ENTRIES + top;
    let mid = w[ti]; // (plain: the header says why)
    if (mid === 0) {
      if (!alloc) return -1;
      mid = this.alloc(1);
      if (mid < 0) return -2;
      Atomics.store(w, ti, mid);
      const tops = this.tops.get(pgd);
      if (tops === undefined) this.tops.set(pgd, [top]);
      else tops.push(top);
    }
    const mi = mid * ENTRIES + ((vpn % TOP_SHIFT) >>> 10);
    let leaf = w[mi];
    if (leaf === 0) {
      if (!alloc) return -1;
      leaf = this.alloc(1);
      if (leaf < 0) return -2;
      Atomics.store(w, mi, leaf);
    }
    return leaf * ENTRIES + (vpn & (ENTRIES - 1));
  }

  /**
   * For a va with no PTE slot (pteIndex -1): the first address after it that
   * may have one, skipping a missing middle table's 4 GiB whole and a missing
   * leaf's 4 MiB, as the kernel's walkers skip empty levels
   * (pmd_none_or_clear_bad). Walks over sparse ranges cost O(tables).
   */
  nextSlot(pgd: number, va: number): number {
    const vpn = Math.floor(va / 4096);
    const top = Math.floor(vpn / TOP_SHIFT);
    if (this.words[pgd * ENTRIES + top] === 0) return (top + 1) * TOP_SHIFT * 4096; // (a table pointer: plain, as in pteIndex)
    return (Math.floor(vpn / ENTRIES) + 1) * ENTRIES * 4096;
  }

  /** The PTE for va (0 when no table). */
  get(pgd: number, va: number): number {
    const i = this.pteIndex(pgd, va);
    return i < 0 ? 0 : Atomics.load(this.words, i);
  }

  /** Slots in use, for accounting. */
  get used(): number {
    return this.next - 1 - this.free.length - this.freePgds.length * TOP_SLOTS;
  }
}
