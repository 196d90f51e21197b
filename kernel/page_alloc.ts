// The frame allocator and struct page. Kernel-only state (boot CPU), so plain
// typed arrays: one entry per physical frame, no objects per page.
import type { PhysicalMemory } from '../hardware/memory.js';

export const PG_ALLOCATED = 1 << 0;
export const PG_ANON = 1 << 1; // private anonymous page, on its mm's LRU
export const PG_UNEVICTABLE = 1 << 2; // pinned or mlocked: never reclaimed
export const PG_UNMOVABLE = 1 << 3; // driver-owned or pinned: migration gets EBUSY
export const PG_DAX = 1 << 4; // device memory: not from the allocator
export const PG_SECRET = 1 << 5; // removed from the kernel direct map (secretmem)
export const PG_FILE = 1 << 6; // belongs to a file's page cache (shmem, secretmem, driver)

export class PageAllocator {
  readonly memory: PhysicalMemory;
  /** struct page: flags, KeyID (page_keyid), owner mm id, owner virtual address (rmap) */
  readonly flags: Uint32Array;
  readonly keyid: Uint16Array;
  readonly ownerMm: Int32Array;
  readonly ownerVa: Float64Array;
  /** Frames currently pinned (unevictable). */
  nrPinned = 0;
  private readonly free: Int32Array[];
  private readonly nrFree: Int32Array;

  constructor(memory: PhysicalMemory) {
    this.memory = memory;
    const n = memory.nrFrames;
    this.flags = new Uint32Array(n);
    this.keyid = new Uint16Array(n);
    this.ownerMm = new Int32Array(n).fill(-1);
    this.ownerVa = new Float64Array(n);
    this.free = memory.nodes.map((node) => {
      // Stack of free frames, lowest pfn on top so allocation order is deterministic.
      const s = new Int32Array(node.nrFrames);
      for (let i = 0; i < node.nrFrames; i++) s[i] = node.startPfn + node.nrFrames - 1 - i;
      return s;
    });
    this.nrFree = Int32Array.from(memory.nodes.map((node) => node.nrFrames));
    for (let p = memory.daxStart; p < memory.nrFrames; p++) this.flags[p] = PG_DAX;
  }

  get nrNodes(): number {
    return this.free.length;
  }

  freeFrames(node = -1): number {
    if (node >= 0) return this.nrFree[node];
    let s = 0;
    for (let i = 0; i < this.nrFree.length; i++) s += this.nrFree[i];
    return s;
  }

  /** A free frame, from `node` first then the others (like a zonelist); -1 when none. */
  alloc(node = 0, strict = false): number {
    const nn = this.free.length;
    for (let i = 0; i < nn; i++) {
      const n = (node + i) % nn;
      if (this.nrFree[n] > 0) {
        const pfn = this.free[n][--this.nrFree[n]];
        this.flags[pfn] = PG_ALLOCATED;
        this.keyid[pfn] = 0;
        this.ownerMm[pfn] = -1;
        return pfn;
      }
      if (strict) return -1;
    }
    return -1;
  }

  /** Give a frame back. Throws on a double free: that is a kernel bug, not an errno. */
  release(pfn: number): void {
    if (!(this.flags[pfn] & PG_ALLOCATED) || this.flags[pfn] & PG_DAX)
      throw new Error(`page_alloc: freeing frame ${pfn} which is not allocated`);
    const n = this.memory.nodeOf(pfn as never);
    if (this.flags[pfn] & PG_UNEVICTABLE) this.nrPinned--;
    this.flags[pfn] = 0;
    this.keyid[pfn] = 0;
    this.ownerMm[pfn] = -1;
    this.free[n][this.nrFree[n]++] = pfn;
  }

  /** Mark an allocated frame unevictable (and unmovable when asked): pin_user_pages-like. */
  pin(pfn: number, unmovable: boolean): void {
    if (!(this.flags[pfn] & PG_UNEVICTABLE)) this.nrPinned++;
    this.flags[pfn] |= PG_UNEVICTABLE | (unmovable ? PG_UNMOVABLE : 0);
  }

  /** Call fn with every free frame (what a later allocation may hand out as it is). */
  forEachFree(fn: (pfn: number) => void): void {
    for (let n = 0; n < this.free.length; n++) {
      const s = this.free[n];
      for (let i = 0; i < this.nrFree[n]; i++) fn(s[i]);
    }
  }

  isAllocated(pfn: number): boolean {
    return (this.flags[pfn] & PG_ALLOCATED) !== 0;
  }
}
