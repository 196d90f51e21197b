// Anonymous faults handled on the faulting CPU, as Linux does: every CPU runs
// the fault handler itself (mm/memory.c do_anonymous_page), and since 6.4 it
// does so under a per-VMA read lock instead of mmap_lock (lock_vma_under_rcu,
// "Per-VMA locks", Suren Baghdasaryan). Here the kernel thread is the only
// writer of an address space's VMAs and page tables; a worker CPU that faults
// on a private anonymous page it may access takes the page itself:
//
//   read-lock the mm  ->  find the VMA in the mm's shared snapshot  ->
//   charge the page to the mm (rss, memory limit)  ->  take a frame from this
//   CPU's per-CPU list (page_alloc.ts)  ->  prep_encrypted_page (flush, key
//   reference, zero through the KeyID: the XTS work runs on this CPU)  ->
//   fill in struct page  ->  install the PTE by compare-and-exchange from 0  ->
//   add the page to this CPU's LRU batch (lru_add, folio_batch)  ->  unlock.
//
// A CPU takes the pages of a shared file mapping the same way, where the
// file lets it (FileOps.fastFault: /dev/mktme, secretmem, guest_memfd), as
// Linux's shmem_fault, secretmem_fault and kvm_gmem_fault_user_mapping run
// on the faulting CPU: it looks the page up in the file's page cache, which
// lies in shared memory (pagecache.ts); a page that is not there it takes as
// above, but charged as a file page, prepared through the file's KeyID and
// inserted in the page cache by compare-and-exchange (the loser of a race
// maps the winner's page), with no LRU (such pages are unevictable). A page
// the file lacks a CPU takes only for the mm the file's pages are charged
// to (claiming the file for its mm if none has it yet); a page the file has
// any mm's CPU maps. Pages leave a file only under the write lock of every
// mm that maps it (pagecache.ts, locking contract).
//
// Anything else (no VMA, no permission, a locked or pinned anonymous VMA, a
// file that does not allow it or a page offset past the file, a PTE that is
// not empty, no table for it yet, an empty per-CPU list, a full LRU batch,
// the memory limit reached, or the kernel holding the write lock) traps to
// the kernel, which handles the fault as before and tops up the CPU's
// per-CPU list. Nothing here waits for the kernel.
//
// Locking contract (mmap_lock in miniature, as a per-CPU reader lock):
// - Each CPU has its own reader word, on a cache line of its own, and LOCK
//   holds WRITER while the kernel works on the mm. A CPU enters by storing 1
//   in its reader word and then looking at LOCK (both sequentially
//   consistent); if the kernel has the mm it stores 0 again and traps
//   instead, never spinning for it. The kernel stores WRITER and then looks at
//   every reader word, so of a CPU entering and the kernel arriving at least
//   one sees the other (Dekker). Linux's percpu_rw_semaphore
//   (kernel/locking/percpu-rwsem.c) is built the same way, and for the same
//   reason: readers never write a line another CPU reads. The single word
//   this replaced (a reader count that every fault entered and left by
//   compare-and-exchange, beside the rss a fault charged the same way) moved
//   its cache line between the two worker CPUs three times a fault (two
//   threads on this 2-vCPU VM: 200 ns for a CAS and a subtract on one shared
//   word, 25 ns on words a line apart). Measured with `ab` against the single
//   word, 12 processes: fault plain-mmap t2 -5.5% (p 0.012); fault
//   madvise-encrypt, migration, swap and every 1-CPU cell within -1..+3%,
//   none significant.
// - The kernel sets WRITER for every entry into the mm (syscall, trap, exit;
//   nested entries count in mm.lockDepth), then waits until no CPU is inside.
//   From then until it clears WRITER it is the only one touching the mm's
//   VMAs, PTEs, rss, LRU, the per-CPU LRU batches and charge stocks: it first
//   drains the batches into the mm's LRU (lru_add_drain) and returns the
//   stocks to rss, so single-CPU LRU order and every count are exactly those
//   of a kernel that handled all faults itself.
// - Before clearing WRITER the kernel republishes the VMA snapshot and bumps
//   GEN, so a CPU can cache its last VMA lookup per generation.
// - Charging a page to the mm (rss against the memory limit) takes it from
//   the CPU's own stock: pages already added to RSS. An empty stock charges
//   CHARGE_BATCH pages to RSS at once by compare-and-exchange, so the limit is
//   never overshot; closer to the limit than a batch, one page. That is
//   memcg's per-CPU stock (mm/memcontrol.c consume_stock, refill_stock;
//   try_charge falls back from MEMCG_CHARGE_BATCH to the page itself). The
//   kernel counts rss as RSS less the stocks (MmStruct.rss).
// - Between two CPUs in fast faults the only shared writes are then RSS (a
//   batch at a time) and the PTE (CAS from 0: the loser gives its frame back
//   to its own list and its charge to its stock, and retries the access).
import type { MemoryEncryptionEngine } from '../hardware/engine.js';
import { PAGE_SIZE, asPfn } from '../hardware/types.js';
import type { FastFileFault, Kernel, MmStruct, OpenFile } from './kernel.js';
import { CLAIM, INDEX_ENTRIES, INDEX_PAGES } from './pagecache.js';
import { PCP_BATCH, PG_ALLOCATED, PG_ANON, PG_FILE, PG_SECRET, PG_UNEVICTABLE, type MemMap } from './page_alloc.js';
import { pkeyDeniesData } from './pkeys.js';
import { W_MM } from './smp.js';
import { PTE_DIRTY, PTE_PINNED, mkPte, pageProt, type PageTablePool } from './pgtable.js';
import { VM_EXEC, VM_LOCKED, VM_READ, VM_SHARED, VM_WRITE, type Vma } from './vma.js';

// Int32 words of an mm's shared area: the first cache line
export const MM_LOCK = 0;
export const MM_GEN = 1;
/** VMAs in the snapshot; -1 when they do not fit it (every fault traps) */
export const MM_NVMAS = 2;
export const MM_RSS = 3;
export const MM_FILE_PAGES = 4;
export const MM_NODE = 5;
/** 1 when CPUs of other threads run this mm and may fault on their own */
export const MM_FAST = 6;
/** Int32 words a cache line holds: the header's line, then one per CPU */
const LINE_INTS = 16;
/** In a CPU's line: 1 while the CPU is inside a fast fault of the mm */
const CPU_READER = 0;
/** In a CPU's line: pages charged to RSS that this CPU has not used yet */
const CPU_STOCK = 1;
/** In a CPU's line: file pages it charged to RSS from its stock (the kernel moves them to MM_FILE_PAGES) */
const CPU_FILE = 2;
/** In a CPU's line: pages it pinned (file pages the file pins: the kernel adds them to its count) */
const CPU_PINNED = 3;
/** In a CPU's line: 1 when it claimed a file for the mm (pagecache.ts) since the kernel last took the mm */
const CPU_CLAIMED = 4;
export const MM_WRITER = 1 << 30;
/** Pages an empty stock charges at once (MEMCG_CHARGE_BATCH, include/linux/memcontrol.h). */
export const CHARGE_BATCH = 64;

/** VMAs a snapshot holds; an mm with more faults through the kernel. */
export const SNAP_MAX = 256;
/**
 * Pages a CPU's LRU batch holds before it must trap. Linux's batch is 31
 * pages (PAGEVEC_SIZE, then FBATCH_SIZE) and a CPU drains it itself under the
 * LRU lock; here the LRU is the kernel thread's, so the batch is as large as
 * a per-CPU list refill and the kernel drains it on its next entry.
 */
export const LRU_BATCH = 64;
// The memory limit is the one Float64 after the ints. The snapshot entries
// and the LRU batches are Float64 slots of a buffer of their own, made when
// CPUs of other threads first run the mm (makeSnapshot): 16 KiB that a
// process no such CPU runs need not allocate (key-exhaustion spawns dozens a
// round; a SharedArrayBuffer costs about a microsecond per 4 KiB to make).
const F_SNAP = 0;
// start, end, vm flags | SNAP_FAST, KeyID; for a file's pages (else 0): its
// page cache's directory table, the VMA's first page offset, the page
// offsets a fault may reach, the page flags a fresh page gets
const SNAP_WORDS = 8;
const SNAP_FAST = 2 ** 32; // above every vm flag the model uses
const batchSlots = 1 + LRU_BATCH; // count, then page addresses

export interface MmSharedDescriptor {
  readonly sab: SharedArrayBuffer;
  /** the snapshot and LRU batches; null until makeSnapshot */
  readonly snap: SharedArrayBuffer | null;
  readonly nrCpus: number;
}

/** An mm's shared area for nrCpus CPUs, bytes: the header's line and one per CPU, then the limit. */
function areaBytes(nrCpus: number): number {
  return LINE_INTS * (1 + nrCpus) * 4 + 8;
}

/** f64 of an mm without a snapshot: one empty array for all of them. */
const NO_SNAPSHOT = new Float64Array(0);

/**
 * What an mm's MmShared looks at once it exited and its area went back to
 * the pool (MmShared.recycle): zeros, for the largest machine (256 CPUs,
 * page_alloc.ts). Only a kernel bug would write there (an exited mm is never
 * locked again), and then no live mm would see it.
 */
let exitedArea: SharedArrayBuffer | null = null;

/** Areas a pool of exited mms' areas (the kernel's) keeps at most for the next mms. */
export const AREA_POOL_MAX = 64;

/** The part of an mm_struct that CPUs of other threads read and update. */
export class MmShared {
  i32: Int32Array;
  /** [0]: the memory limit in pages */
  limit: Float64Array;
  /** the VMA snapshot, then the CPUs' LRU batches; empty until makeSnapshot */
  f64: Float64Array;
  readonly nrCpus: number;
  private readonly sab: SharedArrayBuffer;
  private snap: SharedArrayBuffer | null;
  /** a descriptor went out: another thread may hold the area, which then never goes back to the pool */
  private exported = false;

  private constructor(d: MmSharedDescriptor) {
    this.sab = d.sab;
    this.snap = d.snap;
    this.nrCpus = d.nrCpus;
    const ints = LINE_INTS * (1 + d.nrCpus);
    this.i32 = new Int32Array(d.sab, 0, ints);
    this.limit = new Float64Array(d.sab, ints * 4, 1);
    this.f64 = d.snap === null ? NO_SNAPSHOT : new Float64Array(d.snap);
  }

  /**
   * A fresh mm's area, from `pool` (the kernel's, areas of exited mms that no
   * other thread saw: MmShared.recycle) when it has one, else new. A
   * SharedArrayBuffer is a backing store to make and collect, and
   * key-exhaustion spawns dozens of processes a round. Its guest-memfd cell
   * also fell into a slow mode in some processes and not others (CV 20-25%).
   * `run` of its guest-memfd and plain-mmap cells, 6 processes, twice each
   * way on the 2-vCPU development VM: guest-memfd 4.23-4.33 -> 2.42-2.44 us a
   * process (CV 5.8-9.5%), plain-mmap 9.59-9.66 -> 9.27-9.30 us. ab, 11
   * processes: key-exhaustion guest-memfd -7.8% (p_holm 0.018), plain-mmap
   * -2.8%, madvise-encrypt -2.3%; fault and qemu-guest within +-0.7%.
   */
  static create(nrCpus: number, memLimit: number, node: number, pool: SharedArrayBuffer[] = []): MmShared {
    const bytes = areaBytes(nrCpus);
    let sab = pool.pop();
    if (sab === undefined || sab.byteLength !== bytes) sab = new SharedArrayBuffer(bytes);
    else new Int32Array(sab).fill(0);
    const s = new MmShared({ sab, snap: null, nrCpus });
    s.limit[0] = memLimit;
    s.i32[MM_NODE] = node;
    return s;
  }

  /**
   * The mm exited: give its area to `pool` for the next mm, unless another
   * thread may hold it (a descriptor went out) or the pool is full. This
   * MmShared then looks at zeros no live mm uses. Kernel only, once nothing
   * maps the mm.
   */
  recycle(pool: SharedArrayBuffer[]): void {
    if (this.exported || pool.length >= AREA_POOL_MAX || this.i32.buffer !== this.sab) return;
    pool.push(this.sab);
    exitedArea ??= new SharedArrayBuffer(areaBytes(256));
    const ints = LINE_INTS * (1 + this.nrCpus);
    this.i32 = new Int32Array(exitedArea, 0, ints);
    this.limit = new Float64Array(exitedArea, ints * 4, 1);
  }

  static attach(d: MmSharedDescriptor): MmShared {
    return new MmShared(d);
  }

  /** Make the VMA snapshot and the LRU batches, once (kernel only, before any CPU attaches to use them). */
  makeSnapshot(): void {
    if (this.snap !== null) return;
    this.snap = new SharedArrayBuffer((SNAP_MAX * SNAP_WORDS + this.nrCpus * batchSlots) * 8);
    this.f64 = new Float64Array(this.snap);
  }

  descriptor(): MmSharedDescriptor {
    this.exported = true;
    return { sab: this.sab, snap: this.snap, nrCpus: this.nrCpus };
  }

  batchBase(cpu: number): number {
    return F_SNAP + SNAP_MAX * SNAP_WORDS + cpu * batchSlots;
  }

  /** i32 index of the CPU's reader word (1 while it is inside a fast fault) */
  readerIndex(cpu: number): number {
    return LINE_INTS * (1 + cpu) + CPU_READER;
  }

  /** i32 index of the CPU's charge stock (pages in RSS it has not used yet) */
  stockIndex(cpu: number): number {
    return LINE_INTS * (1 + cpu) + CPU_STOCK;
  }

  /** i32 index of the file pages the CPU charged to RSS (the kernel moves them to MM_FILE_PAGES) */
  fileIndex(cpu: number): number {
    return LINE_INTS * (1 + cpu) + CPU_FILE;
  }

  /** i32 index of the pages the CPU pinned since the kernel last took the mm */
  pinnedIndex(cpu: number): number {
    return LINE_INTS * (1 + cpu) + CPU_PINNED;
  }

  /** i32 index of the CPU's word that says it claimed a file since the kernel last took the mm */
  claimedIndex(cpu: number): number {
    return LINE_INTS * (1 + cpu) + CPU_CLAIMED;
  }

  /** Pages in the CPUs' stocks: in RSS, not resident. */
  stocked(): number {
    let n = 0;
    for (let c = 0; c < this.nrCpus; c++) n += Atomics.load(this.i32, this.stockIndex(c));
    return n;
  }
}

// ---- kernel side ----

/** Can a CPU take this private anonymous VMA's pages itself? (what do_anonymous_page does without the kernel's help) */
function fastAnonVma(k: Kernel, flags: number, keyid: number): boolean {
  if (flags & (VM_SHARED | VM_LOCKED)) return false;
  // keyed pages that the hardware keeps from the kernel are pinned at fault (memory.ts)
  return keyid === 0 || k.machine.profile.swap !== 'pinned';
}

/**
 * Can a CPU take this file VMA's pages itself, and how (FileOps.fastFault)?
 * Only a shared mapping whose KeyID is the one the file's pages get. (A CPU
 * takes a page the file has not only for the mm the file is charged to: it
 * claims the file for its mm if none has it, pagecache.ts, and traps if
 * another has.)
 */
function fastFileVma(vma: Vma): FastFileFault | null {
  const f = vma.file as OpenFile;
  if (f.ops.fastFault === undefined || !(vma.flags & VM_SHARED) || vma.keyid !== (f.key?.keyid ?? 0)) return null;
  return f.ops.fastFault(f);
}

/** The files CPUs claimed for mm are charged to it (OpenFile.charged). Kernel only, under the write lock. */
function settleClaims(mm: MmStruct): void {
  for (const v of mm.vmas.vmas) {
    const f = v.file as OpenFile | null;
    if (f !== null && f.charged === null && f.pages.claimant() === mm.id) f.charged = mm;
  }
}

/** Leaf tables the kernel builds ahead per publish (16: 64 MiB of address space). */
const PREBUILD_LEAVES = 16;
const LEAF_SPAN = PAGE_SIZE * 1024;

/**
 * Republish mm's VMAs for the CPUs, with page tables under each VMA a CPU may
 * fault on (built at mmap: a CPU cannot allocate a table, and would trap),
 * and for a file's pages the page cache index's tables too.
 * Kernel only, under the write lock.
 */
function publishVmas(k: Kernel, mm: MmStruct): void {
  const s = mm.shared;
  const v = mm.vmas.vmas;
  let leaves = PREBUILD_LEAVES;
  let indexTables = PREBUILD_LEAVES;
  if (v.length > SNAP_MAX) s.i32[MM_NVMAS] = -1;
  else {
    const f = s.f64;
    for (let j = 0; j < v.length; j++) {
      const o = F_SNAP + j * SNAP_WORDS;
      const vma = v[j];
      // a VMA whose protection key denies data access traps, and the kernel refuses it
      const open = mm.guards.size === 0 && !pkeyDeniesData(vma);
      let fast = open && vma.anonymous && fastAnonVma(k, vma.flags, vma.keyid);
      const file = open && vma.file !== null ? fastFileVma(vma) : null;
      f[o + 4] = 0;
      if (file !== null) {
        // the page cache's tables for the VMA's page offsets, as for its PTEs below
        const pc = (vma.file as OpenFile).pages;
        const hi = Math.min(vma.pgoff + vma.pages, file.pages, INDEX_PAGES);
        indexTables -= pc.build(vma.pgoff, hi, indexTables);
        if (pc.dir !== 0) {
          fast = true;
          f[o + 4] = pc.dir;
          f[o + 5] = vma.pgoff;
          f[o + 6] = hi;
          f[o + 7] = PG_ALLOCATED | PG_FILE | file.flags;
        }
      }
      f[o] = vma.start;
      f[o + 1] = vma.end;
      f[o + 2] = vma.flags + (fast ? SNAP_FAST : 0);
      f[o + 3] = vma.keyid;
      if (fast)
        for (let a = vma.start - (vma.start % LEAF_SPAN); a < vma.end && leaves > 0; a += LEAF_SPAN)
          if (k.pool.pteIndex(mm.pgd, a) === -1) {
            leaves--;
            k.pool.pteIndex(mm.pgd, a, true); // best effort: a full pool only means traps
          }
    }
    s.i32[MM_NVMAS] = v.length;
  }
  s.i32[MM_GEN]++;
}

/** Top up the per-CPU lists of the CPUs running mm, so that their next faults need no trap. */
function refillCpus(k: Kernel, mm: MmStruct): void {
  const w = k.smp.words;
  for (let c = 1; c < k.smp.nrCpus; c++)
    if (Atomics.load(w, k.smp.w(c, W_MM)) === mm.id && k.alloc.map.pcpCountOf(c, mm.node) < PCP_BATCH) k.alloc.refillPcp(c, mm.node); // (another node's list is drained first)
}

/** lru_add_drain for mm: move every CPU's batch to the mm's LRU. Kernel only, under the write lock. */
function drainLruBatches(mm: MmStruct): void {
  const f = mm.shared.f64; // (empty until a CPU of another thread runs the mm: then no batch has pages)
  // the VMA of the last page, prepared: the pages of a batch mostly share one
  let lo = 0, hi = 0;
  for (let c = 0; c < mm.shared.nrCpus; c++) {
    const b = mm.shared.batchBase(c);
    const n = f[b];
    for (let j = 0; j < n; j++) {
      const va = f[b + 1 + j];
      mm.lru.push(va);
      if (va >= lo && va < hi) continue;
      // a CPU's own faults are taken as writes: the VMA gets its anon_vma now
      const vma = mm.vmas.find(va);
      if (vma === null) continue;
      mm.vmas.anonVmaPrepare(mm.vmas.findIndex(va));
      lo = vma.start;
      hi = vma.end;
    }
    f[b] = 0;
  }
}

/** Polls of a CPU's reader word before the kernel sleeps on it. */
const WRITER_SPIN = 2000;

/** mmap_write_lock: keep the CPUs out of mm's fast faults. Nests on the kernel thread. */
export function mmWriteLock(k: Kernel, mm: MmStruct): void {
  if (mm.lockDepth++ > 0) return;
  const s = mm.shared;
  const L = s.i32;
  Atomics.store(L, MM_LOCK, MM_WRITER);
  // A CPU inside is at most one page of work from leaving; it wakes us if we sleep.
  for (let c = 0; c < s.nrCpus; c++) {
    const r = s.readerIndex(c);
    for (let polls = 1; Atomics.load(L, r) !== 0; polls++) if (polls >= WRITER_SPIN) Atomics.wait(L, r, 1, 0.05);
  }
  // the stocks go back (drain_all_stock): rss is exact while the kernel holds the mm
  let pinned = 0;
  let claimed = false;
  for (let c = 0; c < s.nrCpus; c++) {
    const st = s.stockIndex(c);
    if (L[st] !== 0) {
      L[MM_RSS] -= L[st];
      L[st] = 0;
    }
    // file pages the CPU charged from its stock are file pages, not rss
    const fi = s.fileIndex(c);
    if (L[fi] !== 0) {
      L[MM_RSS] -= L[fi];
      L[MM_FILE_PAGES] += L[fi];
      L[fi] = 0;
    }
    const pi = s.pinnedIndex(c);
    pinned += L[pi];
    L[pi] = 0;
    const ci = s.claimedIndex(c);
    if (L[ci] !== 0) {
      L[ci] = 0;
      claimed = true;
    }
  }
  if (claimed) settleClaims(mm); // one scan of the VMAs, however many CPUs claimed
  if (pinned > 0) {
    // no page a CPU pinned has been unpinned since: it is still mapped, so
    // the count now is the highest it reached (pinned_pages, as pinPage)
    k.alloc.nrPinned += pinned;
    k.gauge('pinned_pages', k.alloc.nrPinned);
  }
  drainLruBatches(mm);
}

/** mmap_write_unlock: republish the VMAs if CPUs may fault on their own, then let them in. */
export function mmWriteUnlock(k: Kernel, mm: MmStruct): void {
  if (--mm.lockDepth > 0) return;
  if (mm.lockDepth < 0) throw new Error(`mm ${mm.id}: write unlock without lock`);
  if (mm.shared.i32[MM_FAST] !== 0) {
    publishVmas(k, mm);
    refillCpus(k, mm);
  }
  Atomics.store(mm.shared.i32, MM_LOCK, 0);
}

/** Let CPUs on other threads handle their own anonymous faults of mm (they attach to it). */
export function enableFastFaults(k: Kernel, mm: MmStruct): void {
  mmWriteLock(k, mm);
  mm.shared.makeSnapshot();
  mm.shared.i32[MM_FAST] = 1;
  mmWriteUnlock(k, mm);
}

// ---- CPU side ----

export interface FastFaultContext {
  readonly cpu: number;
  readonly mmId: number;
  readonly pgd: number;
  readonly mm: MmShared;
  readonly map: MemMap;
  readonly pool: PageTablePool;
  readonly engine: MemoryEncryptionEngine;
  /** per-KeyID page references (keys.ts) */
  readonly keyPageRefs: Int32Array;
  /** this CPU's kernel counter row and the indexes of `faults` and `direct_map_removed` in it */
  readonly counters: Float64Array;
  readonly faultsIndex: number;
  readonly directMapIndex: number;
}

/** A worker CPU's own fault handler for private anonymous pages, and for file pages where the file allows it. */
export class FastFault {
  /** faults handled here, and those passed to the kernel (this CPU's own tally, not a shared counter) */
  handled = 0;
  passed = 0;
  /** the last tryFault that returned true also did the access's whole-page store (its `fill`) */
  filled = false;
  private cacheGen = -1;
  private cacheStart = 0;
  private cacheEnd = 0;
  private cacheFlags = 0;
  private cacheKeyid = 0;
  /** the VMA's file: its page cache's directory table (0: anonymous), first page offset, offsets a fault reaches, a fresh page's flags */
  private cacheDir = 0;
  private cachePgoff = 0;
  private cacheLimit = 0;
  private cachePageFlags = 0;

  private readonly reader: number;
  private readonly stock: number;
  private readonly filePages: number;
  private readonly pinned: number;
  private readonly claimed: number;

  constructor(private readonly c: FastFaultContext) {
    this.reader = c.mm.readerIndex(c.cpu);
    this.stock = c.mm.stockIndex(c.cpu);
    this.filePages = c.mm.fileIndex(c.cpu);
    this.pinned = c.mm.pinnedIndex(c.cpu);
    this.claimed = c.mm.claimedIndex(c.cpu);
  }

  /**
   * Try to resolve a fault at va here. True when the access can be retried
   * (the PTE is now there, ours or another CPU's); false when the kernel
   * must handle it (trap). `fill`, when given, is the page a whole-page
   * store at va (page-aligned) is about to write: a fresh encrypted page
   * then gets it in place of its zeroing's encryption (engine.fillFresh),
   * and `filled` says so, so that the store is not done twice.
   */
  tryFault(va: number, write: boolean, fill: Uint8Array | null = null, fillOff = 0): boolean {
    const L = this.c.mm.i32;
    const r = this.reader;
    this.filled = false;
    // Enter, then look for the kernel (the plain first look only spares the
    // stores while the kernel has the mm; the look after the store decides)
    let ok = false;
    if ((L[MM_LOCK] & MM_WRITER) === 0) {
      Atomics.store(L, r, 1);
      if ((Atomics.load(L, MM_LOCK) & MM_WRITER) === 0 && L[MM_FAST] !== 0) ok = this.locked(va, write, fill, fillOff);
      // Leave; wake a kernel that may be waiting for this CPU to go.
      Atomics.store(L, r, 0);
      if ((Atomics.load(L, MM_LOCK) & MM_WRITER) !== 0) Atomics.notify(L, r);
    }
    if (ok) this.handled++;
    else this.passed++;
    return ok;
  }

  private lookup(va: number): boolean {
    const s = this.c.mm;
    const gen = s.i32[MM_GEN];
    if (gen === this.cacheGen && va >= this.cacheStart && va < this.cacheEnd) return true;
    const n = s.i32[MM_NVMAS];
    const f = s.f64;
    let lo = 0, hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (f[F_SNAP + mid * SNAP_WORDS + 1] > va) hi = mid;
      else lo = mid + 1;
    }
    if (lo >= n || f[F_SNAP + lo * SNAP_WORDS] > va) return false;
    const o = F_SNAP + lo * SNAP_WORDS;
    this.cacheGen = gen;
    this.cacheStart = f[o];
    this.cacheEnd = f[o + 1];
    this.cacheFlags = f[o + 2];
    this.cacheKeyid = f[o + 3];
    this.cacheDir = f[o + 4];
    this.cachePgoff = f[o + 5];
    this.cacheLimit = f[o + 6];
    this.cachePageFlags = f[o + 7];
    return true;
  }

  private locked(va: number, write: boolean, fill: Uint8Array | null, fillOff: number): boolean {
    const c = this.c;
    if (!this.lookup(va)) return false;
    const fl = this.cacheFlags;
    if (fl < SNAP_FAST) return false;
    // the access check: the kernel answers a denied access (SIGSEGV)
    if (write ? !(fl & VM_WRITE) : !(fl & (VM_READ | VM_WRITE | VM_EXEC))) return false;
    const page = va - (va % PAGE_SIZE);
    const i = c.pool.pteIndex(c.pgd, page);
    if (i < 0) return false; // no table yet: the kernel builds it
    const w = c.pool.words;
    if (Atomics.load(w, i) !== 0) return false; // swap, migration, protnone, stale: the kernel's
    if (this.cacheDir !== 0) return this.fileFault(page, i, write, fill, fillOff);
    const s = c.mm;
    const b = s.batchBase(c.cpu);
    if (s.f64[b] >= LRU_BATCH) return false;
    const pfn = this.takeFrame();
    if (pfn < 0) return false;
    const keyid = this.cacheKeyid;
    const filled = this.prepare(pfn, keyid, write, fill, fillOff); // (the VMA holds the key)
    c.map.flags[pfn] = PG_ALLOCATED | PG_ANON;
    c.map.ownerMm[pfn] = c.mmId;
    c.map.ownerVa[pfn] = page;
    const pte = mkPte(pfn, keyid, pageProt((fl & VM_WRITE) !== 0) | (write ? PTE_DIRTY : 0));
    if (Atomics.compareExchange(w, i, 0, pte) !== 0) {
      // another CPU faulted the page in first: undo, and retry the access
      this.giveBack(pfn, keyid, filled);
      return true;
    }
    const n = s.f64[b];
    s.f64[b + 1 + n] = page;
    s.f64[b] = n + 1;
    c.counters[c.faultsIndex]++;
    this.filled = filled;
    return true;
  }

  /** A frame from this CPU's list, charged to the mm (charge); -1, nothing taken, where the kernel must do it. */
  private takeFrame(): number {
    if (!this.charge()) return -1;
    const pfn = this.c.map.pcpAlloc(this.c.cpu, this.c.mm.i32[MM_NODE]);
    if (pfn < 0) this.c.mm.i32[this.stock]++;
    return pfn;
  }

  /**
   * prep_encrypted_page on this CPU: frame pfn gets KeyID keyid (a key the
   * caller's VMA or file holds, so it cannot die here), then its zeroing,
   * or in its place the whole-page store of a write's first touch. True
   * when the store went in (fill).
   */
  private prepare(pfn: number, keyid: number, write: boolean, fill: Uint8Array | null, fillOff: number): boolean {
    const c = this.c;
    if (keyid !== 0) {
      c.engine.flush(asPfn(pfn));
      Atomics.add(c.keyPageRefs, keyid, 1);
    }
    c.map.keyid[pfn] = keyid;
    const filled = fill !== null && write && c.engine.fillFresh(asPfn(pfn), keyid, fill, fillOff);
    if (!filled) c.engine.zero(asPfn(pfn), keyid);
    return filled;
  }

  /**
   * Undo the taking of frame pfn, prepared through keyid (and filled), that
   * lost a race: its key reference, its lines under the key, the frame to
   * this CPU's list, the charge to its stock.
   */
  private giveBack(pfn: number, keyid: number, filled: boolean): void {
    const c = this.c;
    if (filled) c.engine.unfill(asPfn(pfn), keyid);
    if (keyid !== 0) {
      c.engine.flush(asPfn(pfn));
      Atomics.sub(c.keyPageRefs, keyid, 1);
    }
    c.map.pcpUndo(c.cpu, pfn);
    c.mm.i32[this.stock]++;
  }

  /**
   * Charge a page to the mm (mem_cgroup_charge) from this CPU's stock; an
   * empty one charges a batch, or one page near the limit; false at the
   * limit, where the kernel reclaims. Plain loads: the kernel changes file
   * pages only under the write lock, which this CPU's reader word keeps
   * out, and the compare-exchange checks the rss it read (a failed one
   * returns the rss to try next). The stock is this CPU's alone while it is
   * inside.
   */
  private charge(): boolean {
    const L = this.c.mm.i32;
    const st = this.stock;
    if (L[st] > 0) {
      L[st]--;
      return true;
    }
    const limit = this.c.mm.limit[0] - L[MM_FILE_PAGES];
    for (let rss = L[MM_RSS]; ; ) {
      if (rss >= limit) return false;
      const n = limit - rss >= CHARGE_BATCH ? CHARGE_BATCH : 1;
      const seen = Atomics.compareExchange(L, MM_RSS, rss, rss + n);
      if (seen === rss) {
        L[st] = n - 1;
        return true;
      }
      rss = seen;
    }
  }

  /**
   * A fault on a file's page (FileOps.fastFault): the page cache's page, or
   * a fresh one taken as the file's fault takes it, then the PTE. `i` is the
   * empty PTE's index. As locked(), true when the access can be retried.
   */
  private fileFault(page: number, i: number, write: boolean, fill: Uint8Array | null, fillOff: number): boolean {
    const c = this.c;
    const pgoff = this.cachePgoff + (page - this.cacheStart) / PAGE_SIZE;
    if (pgoff >= this.cacheLimit) return false; // past the file (SIGBUS) or its index: the kernel's
    const w = c.pool.words;
    const leaf = w[this.cacheDir * INDEX_ENTRIES + (pgoff >>> 10)]; // (a table pointer: plain, pagecache.ts)
    if (leaf === 0) return false;
    const slot = leaf * INDEX_ENTRIES + (pgoff & (INDEX_ENTRIES - 1));
    const keyid = this.cacheKeyid;
    const pflags = this.cachePageFlags;
    let have = Atomics.load(w, slot);
    let filled = false;
    if (have === 0) {
      // the file's fault for a page it does not have: claim the file for
      // this mm if no mm pays for it yet; allocate, charge, prepare
      const L = c.mm.i32;
      const claim = this.cacheDir * INDEX_ENTRIES + CLAIM;
      const owner = Atomics.load(w, claim);
      if (owner !== c.mmId) {
        if (Atomics.compareExchange(w, claim, 0, c.mmId) !== 0) return false; // another mm's: the kernel refuses
        L[this.claimed] = 1;
      }
      const pfn = this.takeFrame();
      if (pfn < 0) return false;
      filled = this.prepare(pfn, keyid, write, fill, fillOff); // (the file holds the key)
      c.map.flags[pfn] = pflags;
      have = Atomics.compareExchange(w, slot, 0, pfn + 1);
      if (have !== 0) {
        // another CPU put the page in first: undo, and map that one
        this.giveBack(pfn, keyid, filled);
        filled = false;
      } else {
        have = pfn + 1;
        L[this.filePages]++;
        if (pflags & PG_UNEVICTABLE) L[this.pinned]++;
        if (pflags & PG_SECRET) c.counters[c.directMapIndex]++; // set_direct_map_invalid_noflush
      }
    }
    const pfn = have - 1;
    const pte = mkPte(pfn, keyid, pageProt((this.cacheFlags & VM_WRITE) !== 0) | (pflags & PG_UNEVICTABLE ? PTE_PINNED : 0) | (write ? PTE_DIRTY : 0));
    // lost to another CPU mapping the same page: the access is retried (a
    // fresh page of ours is the file's now, in its page cache)
    if (Atomics.compareExchange(w, i, 0, pte) !== 0) return true;
    c.counters[c.faultsIndex]++;
    this.filled = filled;
    return true;
  }
}
