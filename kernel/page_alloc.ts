// The frame allocator and struct page (mm/page_alloc.c). One entry per
// physical frame in typed arrays, no objects per page. struct page lives in
// shared memory because a worker CPU that handles its own anonymous fault
// (fastfault.ts) fills in the struct page of the frame it took.
//
// Per-CPU page lists (struct per_cpu_pages): each CPU has a small list of free
// frames of one node, refilled by the kernel in batches, so the fault path on
// that CPU allocates without entering the kernel. As in Linux since 6.0 the
// list has its own lock (pcp->lock, here a word per CPU): the CPU takes it to
// pop a frame, the kernel to refill or drain the list. Neither holds it across
// anything that waits, so a spin is enough. Frames on a per-CPU list are free:
// they count in freeFrames(), forEachFree() visits them, and an allocation
// that finds its node empty drains the lists of that node first
// (drain_all_pages), so per-CPU lists never turn into a spurious OOM or move
// a page to another node.
import type { PhysicalMemory } from '../hardware/memory.js';

export const PG_ALLOCATED = 1 << 0;
export const PG_ANON = 1 << 1; // private anonymous page, on its mm's LRU
export const PG_UNEVICTABLE = 1 << 2; // pinned or mlocked: never reclaimed
export const PG_UNMOVABLE = 1 << 3; // driver-owned or pinned: migration gets EBUSY
export const PG_DAX = 1 << 4; // device memory: not from the allocator
export const PG_SECRET = 1 << 5; // removed from the kernel direct map (secretmem)
export const PG_FILE = 1 << 6; // belongs to a file's page cache (shmem, secretmem, driver)
export const PG_INACCESSIBLE = 1 << 7; // guest_memfd (AS_INACCESSIBLE): unevictable, migration gets EINVAL

/** Frames a per-CPU list holds at most, and takes per refill (pcp->high, pcp->batch). */
export const PCP_HIGH = 128;
export const PCP_BATCH = 64;
// per-CPU list layout, Int32 words: lock, count, node, then PCP_HIGH frames
const PCP_LOCK = 0;
const PCP_COUNT = 1;
const PCP_NODE = 2;
const PCP_HDR = 3;
const PCP_WORDS = PCP_HDR + PCP_HIGH;

export interface PageAllocDescriptor {
  readonly sab: SharedArrayBuffer;
  readonly nrFrames: number;
  readonly nrCpus: number;
}

/** The shared part of the allocator: struct page and the per-CPU lists. Both sides attach it. */
export class MemMap {
  readonly flags: Uint32Array;
  readonly keyid: Uint16Array;
  readonly ownerMm: Int32Array;
  readonly ownerVa: Float64Array;
  readonly pcp: Int32Array;
  /**
   * Per frame, the CPU that took it last: a worker CPU from its per-CPU
   * list (pcpAlloc), else 0 (the kernel's alloc). Not part of the model:
   * zapRange reads it to hand each CPU back the frames its host cache
   * holds (memory.ts).
   */
  readonly cpu: Uint8Array;
  readonly nrCpus: number;
  private readonly d: PageAllocDescriptor;

  private constructor(d: PageAllocDescriptor) {
    const n = d.nrFrames;
    this.d = d;
    this.nrCpus = d.nrCpus;
    // Float64 first for alignment: ownerVa | ownerMm | flags | pcp | keyid | cpu
    let off = 0;
    this.ownerVa = new Float64Array(d.sab, off, n);
    off += n * 8;
    this.ownerMm = new Int32Array(d.sab, off, n);
    off += n * 4;
    this.flags = new Uint32Array(d.sab, off, n);
    off += n * 4;
    this.pcp = new Int32Array(d.sab, off, d.nrCpus * PCP_WORDS);
    off += d.nrCpus * PCP_WORDS * 4;
    this.keyid = new Uint16Array(d.sab, off, n);
    off += n * 2;
    this.cpu = new Uint8Array(d.sab, off, n);
  }

  static create(nrFrames: number, nrCpus: number): MemMap {
    if (nrCpus > 256) throw new RangeError(`nrCpus: at most 256 (a frame's CPU is a byte), got ${nrCpus}`);
    const bytes = nrFrames * (8 + 4 + 4 + 2 + 1) + nrCpus * PCP_WORDS * 4;
    return new MemMap({ sab: new SharedArrayBuffer(bytes), nrFrames, nrCpus });
  }

  static attach(d: PageAllocDescriptor): MemMap {
    return new MemMap(d);
  }

  descriptor(): PageAllocDescriptor {
    return this.d;
  }

  /** Take cpu's list lock (spin: holders never wait on anything). */
  lockPcp(cpu: number): void {
    const i = cpu * PCP_WORDS + PCP_LOCK;
    while (Atomics.compareExchange(this.pcp, i, 0, 1) !== 0);
  }

  unlockPcp(cpu: number): void {
    Atomics.store(this.pcp, cpu * PCP_WORDS + PCP_LOCK, 0);
  }

  /** Frames on cpu's list (read under its lock, or for a report). */
  pcpCount(cpu: number): number {
    return this.pcp[cpu * PCP_WORDS + PCP_COUNT];
  }

  /** Frames on cpu's list that are of `node`: all of them or none (a list holds one node's frames). */
  pcpCountOf(cpu: number, node: number): number {
    return this.pcp[cpu * PCP_WORDS + PCP_NODE] === node ? this.pcpCount(cpu) : 0;
  }

  /**
   * The CPU's side: pop a free frame of `node` from its own list and mark it
   * allocated; -1 when the list is empty or holds another node's frames.
   */
  pcpAlloc(cpu: number, node: number): number {
    const base = cpu * PCP_WORDS;
    const p = this.pcp;
    this.lockPcp(cpu);
    const n = p[base + PCP_COUNT];
    let pfn = -1;
    if (n > 0 && p[base + PCP_NODE] === node) {
      pfn = p[base + PCP_HDR + n - 1];
      p[base + PCP_COUNT] = n - 1;
    }
    this.unlockPcp(cpu);
    if (pfn >= 0) {
      this.flags[pfn] = PG_ALLOCATED;
      this.keyid[pfn] = 0;
      this.ownerMm[pfn] = -1;
      this.cpu[pfn] = cpu;
    }
    return pfn;
  }

  /** Give back a frame just taken by pcpAlloc (a lost race to install the PTE). */
  pcpUndo(cpu: number, pfn: number): void {
    const base = cpu * PCP_WORDS;
    this.flags[pfn] = 0;
    this.keyid[pfn] = 0;
    this.ownerMm[pfn] = -1;
    this.lockPcp(cpu);
    this.pcp[base + PCP_HDR + this.pcp[base + PCP_COUNT]++] = pfn;
    this.unlockPcp(cpu);
  }
}

export class PageAllocator {
  readonly memory: PhysicalMemory;
  readonly map: MemMap;
  /** struct page: flags, KeyID (page_keyid), owner mm id, owner virtual address (rmap) */
  readonly flags: Uint32Array;
  readonly keyid: Uint16Array;
  readonly ownerMm: Int32Array;
  readonly ownerVa: Float64Array;
  /** Frames currently pinned (unevictable). */
  nrPinned = 0;
  /**
   * Long-term pins (pin_user_pages with FOLL_LONGTERM, kernel thread only):
   * per frame the pin count and the unevictable/unmovable bits it had before
   * its first pin, which the last unpin restores.
   */
  private readonly longterm = new Map<number, { n: number; had: number }>();
  private readonly free: Int32Array[];
  private readonly nrFree: Int32Array;

  constructor(memory: PhysicalMemory, nrCpus = 1) {
    this.memory = memory;
    const n = memory.nrFrames;
    this.map = MemMap.create(n, nrCpus);
    this.flags = this.map.flags;
    this.keyid = this.map.keyid;
    this.ownerMm = this.map.ownerMm.fill(-1);
    this.ownerVa = this.map.ownerVa;
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

  /** Free frames of a node (or of all), those on per-CPU lists included. */
  freeFrames(node = -1): number {
    let s = 0;
    for (let i = 0; i < this.nrFree.length; i++) if (node < 0 || node === i) s += this.nrFree[i];
    const p = this.map.pcp;
    for (let c = 0; c < this.map.nrCpus; c++) {
      const b = c * PCP_WORDS;
      if (node < 0 || p[b + PCP_NODE] === node) s += p[b + PCP_COUNT];
    }
    return s;
  }

  /** A free frame, from `node` first then the others (like a zonelist); -1 when none. */
  alloc(node = 0, strict = false): number {
    const nn = this.free.length;
    for (let i = 0; i < nn; i++) {
      const n = (node + i) % nn;
      if (this.nrFree[n] === 0) this.drainPcps(n);
      if (this.nrFree[n] > 0) {
        const pfn = this.free[n][--this.nrFree[n]];
        this.flags[pfn] = PG_ALLOCATED;
        this.keyid[pfn] = 0;
        this.ownerMm[pfn] = -1;
        this.map.cpu[pfn] = 0;
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
    if (this.flags[pfn] & PG_UNEVICTABLE) this.nrPinned--;
    this.longterm.delete(pfn);
    this.pushFree(pfn);
  }

  private pushFree(pfn: number): void {
    const n = this.memory.nodeOf(pfn as never);
    this.flags[pfn] = 0;
    this.keyid[pfn] = 0;
    this.ownerMm[pfn] = -1;
    this.free[n][this.nrFree[n]++] = pfn;
  }

  /**
   * Top up cpu's list with frames of `node` to PCP_BATCH (rmqueue_bulk). A
   * list of another node is drained first. Returns the frames on the list.
   */
  refillPcp(cpu: number, node: number): number {
    const m = this.map;
    const p = m.pcp;
    const base = cpu * PCP_WORDS;
    m.lockPcp(cpu);
    if (p[base + PCP_NODE] !== node && p[base + PCP_COUNT] > 0) this.drainLocked(cpu);
    p[base + PCP_NODE] = node;
    let count = p[base + PCP_COUNT];
    const want = Math.min(PCP_BATCH, PCP_HIGH) - count;
    // The lowest frames go on top of the list, as on the free stack: one CPU
    // alone takes frames in the same order as without per-CPU lists.
    const take = Math.max(0, Math.min(want, this.nrFree[node]));
    for (let j = take - 1; j >= 0; j--) p[base + PCP_HDR + count + j] = this.free[node][--this.nrFree[node]];
    count += take;
    p[base + PCP_COUNT] = count;
    m.unlockPcp(cpu);
    return count;
  }

  /** Return every frame of the per-CPU lists of `node` (all nodes: -1) to the free stacks. */
  drainPcps(node = -1): void {
    const m = this.map;
    for (let c = 0; c < m.nrCpus; c++) {
      const base = c * PCP_WORDS;
      if (m.pcp[base + PCP_COUNT] === 0 || (node >= 0 && m.pcp[base + PCP_NODE] !== node)) continue;
      m.lockPcp(c);
      this.drainLocked(c);
      m.unlockPcp(c);
    }
  }

  private drainLocked(cpu: number): void {
    const p = this.map.pcp;
    const base = cpu * PCP_WORDS;
    // bottom of the list first onto the stack, so its lowest frame ends on top again
    for (let i = 0, n = p[base + PCP_COUNT]; i < n; i++) this.pushFree(p[base + PCP_HDR + i]);
    p[base + PCP_COUNT] = 0;
  }

  /** Mark an allocated frame unevictable (and unmovable when asked): pin_user_pages-like. */
  pin(pfn: number, unmovable: boolean): void {
    if (!(this.flags[pfn] & PG_UNEVICTABLE)) this.nrPinned++;
    this.flags[pfn] |= PG_UNEVICTABLE | (unmovable ? PG_UNMOVABLE : 0);
  }

  /** A long-term pin: the frame stays put (unevictable, unmovable) until its last unpin. */
  pinLongterm(pfn: number): void {
    const e = this.longterm.get(pfn);
    if (e !== undefined) {
      e.n++;
      return;
    }
    this.longterm.set(pfn, { n: 1, had: this.flags[pfn] & (PG_UNEVICTABLE | PG_UNMOVABLE) });
    this.pin(pfn, true);
  }

  /** Drop a long-term pin (a frame freed meanwhile has none left). */
  unpinLongterm(pfn: number): void {
    const e = this.longterm.get(pfn);
    if (e === undefined || --e.n > 0) return;
    this.longterm.delete(pfn);
    const lost = (PG_UNEVICTABLE | PG_UNMOVABLE) & ~e.had;
    if (lost & PG_UNEVICTABLE) this.nrPinned--;
    this.flags[pfn] &= ~lost;
  }

  /** Long-term pins on a frame. */
  longtermPins(pfn: number): number {
    return this.longterm.get(pfn)?.n ?? 0;
  }

  /** Call fn with every free frame (what a later allocation may hand out as it is). */
  forEachFree(fn: (pfn: number) => void): void {
    for (let n = 0; n < this.free.length; n++) {
      const s = this.free[n];
      for (let i = 0; i < this.nrFree[n]; i++) fn(s[i]);
    }
    const m = this.map;
    for (let c = 0; c < m.nrCpus; c++) {
      m.lockPcp(c);
      const base = c * PCP_WORDS;
      const frames = Array.from(m.pcp.subarray(base + PCP_HDR, base + PCP_HDR + m.pcp[base + PCP_COUNT]));
      m.unlockPcp(c);
      for (const pfn of frames) fn(pfn);
    }
  }

  isAllocated(pfn: number): boolean {
    return (this.flags[pfn] & PG_ALLOCATED) !== 0;
  }
}
