// A CPU in user mode: MMU with a small TLB, walking the shared page tables,
// loading and storing through the memory-encryption engine with the PTE's
// KeyID. It runs on the main thread (tests, the boot CPU) or in a worker; a
// fault enters the kernel through `trap` (a direct call on the main thread,
// the trap mailbox from a worker).
import type { MemoryEncryptionEngine } from '../hardware/engine.js';
import { PAGE_SIZE, asPfn } from '../hardware/types.js';
import { E } from './errno.js';
import {
  PTE_ACCESSED,
  PTE_DIRTY,
  PTE_MIGRATION,
  PTE_PRESENT,
  PTE_WRITE,
  type PageTablePool,
  ptePfn,
  pteKeyid,
} from './pgtable.js';
import { W_ACK, W_IPI, W_WAIT, type Smp } from './smp.js';

/**
 * Fault into the kernel: 0 when the access may be retried, else -errno
 * (-EFAULT = SIGSEGV). `fill` is given for a whole-page store at a
 * page-aligned va: the page it will write (src at fillOff). A handler may
 * put it in a fresh page in place of the zeroing and answer FAULT_FILLED:
 * retry the translation, the store is done.
 */
export type FaultFn = (va: number, write: boolean, fill: Uint8Array | null, fillOff: number) => number;

/** A FaultFn's answer: the fresh page already holds the whole-page store it was given. */
export const FAULT_FILLED = 1;

const TLB_ENTRIES = 64;

/** Polls of a word (a migration entry, a lockstep turn) before this CPU sleeps on it. */
const IDLE_SPIN = 1000;
/**
 * Longest sleep on such a word, ms, before it is looked at again. Its
 * writer wakes the sleeper (the kernel when it installs the moved page's
 * PTE), so this only bounds the wait should that never come.
 */
const IDLE_SLEEP_MS = 5;

export class UserCpu {
  readonly cpu: number;
  readonly mmId: number;
  private readonly pgd: number;
  private readonly engine: MemoryEncryptionEngine;
  private readonly pool: PageTablePool;
  private readonly smp: Smp;
  private readonly fault: FaultFn;
  // both on one buffer: every process spawned gets a CPU (key-exhaustion
  // spawns dozens a round), and each buffer is one more backing store to
  // make and collect. ab against two buffers, 11 processes: key-exhaustion
  // memfd-secret -2.5% (p_holm 0.006), guest-memfd -5.1% (0.068), the other
  // designs -0.6..-1.8% (n.s.)
  private readonly tlbTag: Float64Array;
  private readonly tlbPte: Int32Array;
  private readonly ipiWord: number;
  private readonly ackWord: number;
  private readonly waitWord: number;
  /** TLB hits and misses of this CPU (not shared counters: timing-dependent). */
  tlbHits = 0;
  tlbMisses = 0;
  /** the whole-page store in flight (store()), for the fault handler */
  private fill: Uint8Array | null = null;
  private fillOff = 0;
  /** the last fault of this translation stored `fill` in the fresh page */
  private filled = false;

  constructor(engine: MemoryEncryptionEngine, pool: PageTablePool, smp: Smp, mm: { id: number; pgd: number }, fault: FaultFn) {
    this.cpu = engine.cpu;
    this.engine = engine;
    this.pool = pool;
    this.smp = smp;
    this.mmId = mm.id;
    this.pgd = mm.pgd;
    this.fault = fault;
    const tlb = new ArrayBuffer(TLB_ENTRIES * 12);
    this.tlbTag = new Float64Array(tlb, 0, TLB_ENTRIES).fill(-1);
    this.tlbPte = new Int32Array(tlb, TLB_ENTRIES * 8, TLB_ENTRIES);
    this.ipiWord = smp.w(this.cpu, W_IPI);
    this.ackWord = smp.w(this.cpu, W_ACK);
    this.waitWord = smp.w(this.cpu, W_WAIT);
  }

  flushTlb(): void {
    this.tlbTag.fill(-1);
  }

  /**
   * Acknowledge a pending TLB-shootdown IPI: flush first, then ack. The ack
   * word is this CPU's own (only pollIpi writes it, on the thread that runs
   * the CPU), so it is read with a plain load; the IPI word, the kernel's,
   * with Atomics.load.
   */
  pollIpi(): void {
    const w = this.smp.words;
    const ipi = Atomics.load(w, this.ipiWord);
    if (ipi !== w[this.ackWord]) {
      this.flushTlb();
      Atomics.store(w, this.ackWord, ipi);
      Atomics.notify(w, this.ackWord);
    }
  }

  /**
   * Wait between two accesses while words[i] holds v: spin `spins` polls
   * acking IPIs (calling yieldCpu, if given, every 64), then sleep on the
   * word (its writer notifies it). Asleep, the CPU is in the kernel and uses
   * no translation: WAIT tells a shootdown not to wait for its ack, and it
   * polls IPIs before it goes on (smp.ts).
   */
  idleWhile(words: Int32Array, i: number, v: number, spins = IDLE_SPIN, yieldCpu: (() => void) | null = null): void {
    const sw = this.smp.words;
    for (let spin = 0; Atomics.load(words, i) === v; spin++) {
      this.pollIpi();
      if (yieldCpu !== null && (spin & 63) === 63) yieldCpu();
      if (spin >= spins) {
        Atomics.store(sw, this.waitWord, 1);
        Atomics.wait(words, i, v, IDLE_SLEEP_MS);
        Atomics.store(sw, this.waitWord, 0);
      }
    }
    this.pollIpi(); // a shootdown may have passed us by while we slept
  }

  /**
   * The PTE allowing this access to va, as an unsigned 32-bit value (a PTE
   * with frame 0x8000 or above is a negative int32), or -errno.
   */
  translate(va: number, write: boolean): number {
    const vpn = Math.floor(va / PAGE_SIZE);
    const slot = vpn & (TLB_ENTRIES - 1);
    if (this.tlbTag[slot] === vpn) {
      const pte = this.tlbPte[slot];
      if (!write || pte & PTE_DIRTY) {
        this.tlbHits++;
        return pte >>> 0;
      }
    }
    this.tlbMisses++;
    const w = this.pool.words;
    for (;;) {
      const i = this.pool.pteIndex(this.pgd, va);
      const pte = i < 0 ? 0 : Atomics.load(w, i);
      if (pte & PTE_PRESENT && (!write || pte & PTE_WRITE)) {
        // Set ACCESSED (and DIRTY) only if the PTE is still what we read: the
        // kernel may have just cleared it, and an OR would resurrect junk.
        const want = pte | PTE_ACCESSED | (write ? PTE_DIRTY : 0);
        if (want !== pte && Atomics.compareExchange(w, i, pte, want) !== pte) continue;
        this.tlbTag[slot] = vpn;
        this.tlbPte[slot] = want;
        return want >>> 0;
      }
      if (pte & PTE_MIGRATION) {
        // Wait for the kernel to finish moving the page, as migration_entry_wait
        // sleeps until the folio is unlocked (mm/migrate.c): a page moves in
        // microseconds, and the kernel wakes the PTE's sleepers when it
        // installs the new PTE.
        this.idleWhile(w, i, pte);
        continue;
      }
      const r = this.fault(va, write, this.fill, this.fillOff);
      if (r < 0) return r;
      // only the last fault counts: a page filled and then taken away (zapped, swapped) must be stored again
      this.filled = r === FAULT_FILLED;
      this.pollIpi();
    }
  }

  /** Load len bytes at va (within one page) into dst. 0 or -errno (-EIO: integrity fault). */
  load(va: number, dst: Uint8Array, dstOff = 0, len = PAGE_SIZE - (va % PAGE_SIZE)): number {
    this.pollIpi();
    const pte = this.translate(va, false);
    if (pte < 0) return pte;
    const ok = this.engine.read(asPfn(ptePfn(pte)), pteKeyid(pte), dst, dstOff, va % PAGE_SIZE, len);
    return ok ? 0 : -E.EIO;
  }

  /** Store len bytes of src at va (within one page). 0 or -errno. */
  store(va: number, src: Uint8Array, srcOff = 0, len = PAGE_SIZE - (va % PAGE_SIZE)): number {
    this.pollIpi();
    // (a short src is not offered: engine.write refuses it, and the fault handler must not throw)
    const whole = len === PAGE_SIZE && va % PAGE_SIZE === 0 && Number.isInteger(srcOff) && srcOff >= 0 && srcOff + PAGE_SIZE <= src.length;
    this.fill = whole ? src : null;
    this.fillOff = whole ? srcOff : 0;
    this.filled = false;
    const pte = this.translate(va, true);
    this.fill = null;
    this.fillOff = 0;
    if (pte < 0) return pte;
    if (this.filled) return 0;
    this.engine.write(asPfn(ptePfn(pte)), pteKeyid(pte), src, srcOff, va % PAGE_SIZE, len);
    return 0;
  }

  /** Copy a buffer to user memory across pages. 0 or the first -errno. */
  copyToUser(va: number, src: Uint8Array): number {
    for (let off = 0; off < src.length; ) {
      const n = Math.min(PAGE_SIZE - ((va + off) % PAGE_SIZE), src.length - off);
      const r = this.store(va + off, src, off, n);
      if (r < 0) return r;
      off += n;
    }
    return 0;
  }

  /** Copy user memory into a buffer across pages. 0 or the first -errno. */
  copyFromUser(va: number, dst: Uint8Array): number {
    for (let off = 0; off < dst.length; ) {
      const n = Math.min(PAGE_SIZE - ((va + off) % PAGE_SIZE), dst.length - off);
      const r = this.load(va + off, dst, off, n);
      if (r < 0) return r;
      off += n;
    }
    return 0;
  }
}
