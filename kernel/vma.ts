// VMAs: sorted, split and merged as Linux's mm/vma.c does. This file depends on
// nothing else in the kernel so it can be tested on its own (as Linux does in
// tools/testing/vma). Page-level work (zapping PTEs) is the caller's.
import { E } from './errno.js';

// vm_flags bits (include/linux/mm.h values)
export const VM_READ = 0x1;
export const VM_WRITE = 0x2;
export const VM_EXEC = 0x4;
export const VM_SHARED = 0x8;
export const VM_MAYREAD = 0x10;
export const VM_MAYWRITE = 0x20;
export const VM_MAYEXEC = 0x40;
export const VM_MAYSHARE = 0x80;
export const VM_GROWSDOWN = 0x100;
export const VM_PFNMAP = 0x400;
export const VM_LOCKED = 0x2000;
export const VM_IO = 0x4000;
export const VM_SEQ_READ = 0x8000;
export const VM_RAND_READ = 0x10000;
export const VM_DONTCOPY = 0x20000;
export const VM_DONTEXPAND = 0x40000;
export const VM_ACCOUNT = 0x100000;
export const VM_NORESERVE = 0x200000;
export const VM_SYNC = 0x800000;
/**
 * VM_DROPPABLE is bit 40 in Linux (include/linux/mm.h). The model's flag word
 * is 32 bits, so it takes VM_ARCH_1's bit (0x1000000), which x86 leaves unused;
 * only equality (merging) and membership are ever asked of it.
 */
export const VM_DROPPABLE = 0x1000000;
export const VM_WIPEONFORK = 0x2000000;
export const VM_DONTDUMP = 0x4000000;
export const VM_MIXEDMAP = 0x10000000;
export const VM_HUGEPAGE = 0x20000000;
/**
 * VM_MERGEABLE is bit 31 in Linux; here it takes 0x800 (unused on MMU
 * kernels) so that flag words stay positive 31-bit integers.
 */
export const VM_MERGEABLE = 0x800;
export const VM_NOHUGEPAGE = 0x40000000;
export const VM_ACCESS_FLAGS = VM_READ | VM_WRITE | VM_EXEC;
/** is_data_mapping: private writable memory that is not a stack (VM_STACK = VM_GROWSDOWN on x86). */
export const isDataMapping = (flags: number): boolean => (flags & (VM_WRITE | VM_SHARED | VM_GROWSDOWN)) === VM_WRITE;
/** Flags that forbid merging (VM_SPECIAL). */
export const VM_SPECIAL = VM_IO | VM_DONTEXPAND | VM_PFNMAP | VM_MIXEDMAP;

/** What a VMA holds of an encryption key: a counted reference (kernel/keys.ts). */
export interface VmaKeyRef {
  readonly keyid: number;
  get(): void;
  put(): void;
}

/** What a VMA holds of a file: identity, the /proc/maps fields and a counted reference. */
export interface VmaFile {
  readonly path: string;
  readonly dev: string; // "00:05"
  readonly ino: number;
  get(): void;
  put(): void;
}

export class Vma {
  constructor(
    public start: number,
    public end: number,
    public flags: number,
    public pgoff: number,
    public readonly file: VmaFile | null,
    public key: VmaKeyRef | null = null,
  ) {}

  /**
   * The anon_vma's identity, 0 for none. A private VMA gets one when a page
   * of it is first written (anon_vma_prepare: VmaList.anonVmaPrepare), not on
   * a read fault (the zero page); splits inherit it. Two VMAs whose anon_vmas
   * differ never merge (is_mergeable_anon_vma). Every chain is singular here:
   * there is no fork.
   */
  anonVma = 0;

  /**
   * The x86 protection key (VM_PKEY_BIT0-3 of vm_flags in Linux): 0, or the
   * mm's execute-only key (pkeys.ts). Compared wherever Linux compares
   * vm_flags beyond the access bits: merging and anon_vma reuse.
   */
  pkey = 0;

  get keyid(): number {
    return this.key === null ? 0 : this.key.keyid;
  }

  get pages(): number {
    return (this.end - this.start) / 4096;
  }

  get anonymous(): boolean {
    return this.file === null;
  }

  /** A copy for a split: takes its own key reference (vm_area_dup). */
  dup(): Vma {
    this.key?.get();
    this.file?.get();
    const v = new Vma(this.start, this.end, this.flags, this.pgoff, this.file, this.key);
    v.anonVma = this.anonVma;
    v.pkey = this.pkey;
    return v;
  }

  /** Drop what this VMA holds (remove_vma). */
  release(): void {
    this.key?.put();
    this.file?.put();
  }

  /** /proc/pid/maps line. */
  mapsLine(): string {
    const perms =
      (this.flags & VM_READ ? 'r' : '-') +
      (this.flags & VM_WRITE ? 'w' : '-') +
      (this.flags & VM_EXEC ? 'x' : '-') +
      (this.flags & VM_MAYSHARE ? 's' : 'p');
    const off = this.file ? this.pgoff * 4096 : 0;
    const head =
      `${hex8(this.start)}-${hex8(this.end)} ${perms} ${hex8(off)} ` +
      `${this.file ? this.file.dev : '00:00'} ${this.file ? this.file.ino : 0} `;
    return this.file ? head.padEnd(73) + this.file.path : head;
  }
}

const hex8 = (n: number) => n.toString(16).padStart(8, '0');

/** An address space's VMA list: sorted by start, never overlapping. */
export class VmaList {
  readonly vmas: Vma[] = [];
  maxMapCount: number;
  // mm->total_vm, data_vm, locked_vm, and the VM_ACCOUNT pages (what munmap
  // gives back to the commit charge), kept as VMAs come, go and change flags
  totalPages = 0;
  dataPages = 0;
  lockedPages = 0;
  accountedPages = 0;
  /** Told of every split and merge (the kernel counts them; the model prices them). */
  private readonly onChange: (what: 'split' | 'merge') => void;

  constructor(maxMapCount: number, onChange: (what: 'split' | 'merge') => void = () => {}) {
    this.maxMapCount = maxMapCount;
    this.onChange = onChange;
  }

  get mapCount(): number {
    return this.vmas.length;
  }

  /** vm_stat_account and friends: add (sign 1) or remove (-1) a VMA's pages from the totals. */
  private account(v: Vma, sign: 1 | -1): void {
    const n = sign * v.pages;
    this.totalPages += n;
    if (isDataMapping(v.flags)) this.dataPages += n;
    if (v.flags & VM_LOCKED) this.lockedPages += n;
    if (v.flags & VM_ACCOUNT) this.accountedPages += n;
  }

  /** Pages of [start, end) that are mapped, and how many of them are VM_ACCOUNT. */
  overlap(start: number, end: number): { pages: number; accounted: number } {
    let pages = 0, accounted = 0;
    for (let i = this.findIndex(start); i < this.vmas.length && this.vmas[i].start < end; i++) {
      const v = this.vmas[i];
      const n = (Math.min(v.end, end) - Math.max(v.start, start)) / 4096;
      pages += n;
      if (v.flags & VM_ACCOUNT) accounted += n;
    }
    return { pages, accounted };
  }

  /** Index of the first VMA with end > addr (find_vma), or vmas.length. */
  findIndex(addr: number): number {
    const v = this.vmas;
    let lo = 0, hi = v.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (v[mid].end > addr) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** The VMA containing addr, or null. */
  find(addr: number): Vma | null {
    const i = this.findIndex(addr);
    const v = this.vmas[i];
    return v !== undefined && v.start <= addr ? v : null;
  }

  /** First VMA intersecting [start, end), or null (find_vma_intersection). */
  intersection(start: number, end: number): Vma | null {
    const v = this.vmas[this.findIndex(start)];
    return v !== undefined && v.start < end ? v : null;
  }

  /**
   * Split vmas[i] at addr (start < addr < end): [start, addr) stays at i,
   * [addr, end) is inserted at i+1. With check (split_vma), ENOMEM at
   * max_map_count; munmap's own splits (__split_vma) do not check.
   */
  split(i: number, addr: number, check = true): number {
    const vma = this.vmas[i];
    if (check && this.mapCount >= this.maxMapCount) return -E.ENOMEM;
    const tail = vma.dup();
    tail.start = addr;
    tail.pgoff = vma.pgoff + (addr - vma.start) / 4096;
    vma.end = addr;
    this.vmas.splice(i + 1, 0, tail);
    this.onChange('split');
    return 0;
  }

  private lastAnonVma = 0;

  /**
   * anon_vma_prepare for vmas[i]: nothing if it has one; else the anon_vma of
   * the next VMA, then of the previous one, where anon_vma_compatible allows
   * (adjacent, same file, flags and protection key equal but for the access bits, contiguous
   * pgoff: mm/rmap.c find_mergeable_anon_vma); else a new one.
   */
  anonVmaPrepare(i: number): void {
    const v = this.vmas;
    const vma = v[i];
    if (vma.anonVma !== 0) return;
    const next = v[i + 1];
    if (next !== undefined && next.anonVma !== 0 && VmaList.anonCompatible(vma, next)) {
      vma.anonVma = next.anonVma;
      return;
    }
    const prev = v[i - 1];
    if (prev !== undefined && prev.anonVma !== 0 && VmaList.anonCompatible(prev, vma)) {
      vma.anonVma = prev.anonVma;
      return;
    }
    vma.anonVma = ++this.lastAnonVma;
  }

  /** anon_vma_compatible(a, b), a below b. */
  static anonCompatible(a: Vma, b: Vma): boolean {
    return (
      a.end === b.start &&
      a.file === b.file &&
      ((a.flags ^ b.flags) & ~VM_ACCESS_FLAGS) === 0 &&
      a.pkey === b.pkey &&
      a.keyid === b.keyid &&
      b.pgoff === a.pgoff + a.pages
    );
  }

  /** Can a (below) and b (above) be one VMA? (is_mergeable_vma + is_mergeable_anon_vma + pgoff) */
  static mergeable(a: Vma, b: Vma): boolean {
    return (
      a.end === b.start &&
      (a.anonVma === 0 || b.anonVma === 0 || a.anonVma === b.anonVma) &&
      a.flags === b.flags &&
      a.pkey === b.pkey &&
      (a.flags & VM_SPECIAL) === 0 &&
      a.file === b.file &&
      a.keyid === b.keyid && // MKTME: VMAs with different KeyIDs never merge
      a.key === b.key &&
      a.pgoff + a.pages === b.pgoff
    );
  }

  /**
   * Merge vmas[i] with its neighbours where they are compatible. Returns the
   * index of the VMA that now covers vmas[i]'s range. Each merge drops the
   * absorbed VMA's key reference.
   */
  mergeAround(i: number): number {
    // Left first, then right against the result: a right merge needs the
    // previous and next anon_vmas to agree as well (can_vma_merge_right).
    const v = this.vmas;
    if (i > 0 && VmaList.mergeable(v[i - 1], v[i])) {
      v[i - 1].end = v[i].end;
      v[i - 1].anonVma ||= v[i].anonVma;
      v[i].release();
      v.splice(i, 1);
      this.onChange('merge');
      i--;
    }
    if (i + 1 < v.length && VmaList.mergeable(v[i], v[i + 1])) {
      v[i].end = v[i + 1].end;
      v[i].anonVma ||= v[i + 1].anonVma;
      v[i + 1].release();
      v.splice(i + 1, 1);
      this.onChange('merge');
    }
    return i;
  }

  /**
   * vma_modify: make [start, end) (inside vmas[i]) a VMA of its own (splits
   * checked against max_map_count), apply `change` to it, then merge it with
   * its neighbours. Returns the index of the VMA now covering the range, or
   * -ENOMEM with nothing changed but a first split already done (as Linux).
   */
  modify(i: number, start: number, end: number, change: (v: Vma) => void): number {
    if (this.vmas[i].start < start) {
      const r = this.split(i, start);
      if (r < 0) return r;
      i++;
    }
    if (end < this.vmas[i].end) {
      const r = this.split(i, end);
      if (r < 0) return r;
    }
    this.account(this.vmas[i], -1);
    change(this.vmas[i]);
    this.account(this.vmas[i], 1);
    return this.mergeAround(i);
  }

  /** Insert a VMA into a gap (the caller made sure there is one) and merge it. */
  insert(vma: Vma): number {
    const i = this.findIndex(vma.start);
    this.vmas.splice(i, 0, vma);
    this.account(vma, 1);
    return this.mergeAround(i);
  }

  /**
   * Detach every VMA part in [start, end): split at the edges, then remove.
   * Returns the detached VMAs (the caller zaps their pages and drops their
   * keys) or -ENOMEM when a split would pass max_map_count; on error nothing
   * has changed (do_vmi_align_munmap checks the limit before splitting).
   */
  detach(start: number, end: number): Vma[] | number {
    const r = this.splitEdges(start, end);
    if (r < 0) return r;
    const v = this.vmas;
    const i = this.findIndex(start);
    let j = i;
    while (j < v.length && v[j].start < end) j++;
    const out = v.splice(i, j - i);
    for (const d of out) this.account(d, -1);
    return out;
  }

  /**
   * vms_gather_munmap_vmas's splits: make start and end VMA boundaries where
   * they fall inside a VMA. A hole punched inside one VMA makes one more VMA:
   * -ENOMEM at max_map_count, before anything is split. The splits stay even
   * when the caller then fails (a refused MAP_FIXED mapping leaves them).
   */
  splitEdges(start: number, end: number): number {
    const v = this.vmas;
    let i = this.findIndex(start);
    if (i >= v.length || v[i].start >= end) return 0;
    if (v[i].start < start && end < v[i].end && this.mapCount >= this.maxMapCount) return -E.ENOMEM;
    if (v[i].start < start) {
      this.split(i, start, false);
      i++;
    }
    let j = i;
    while (j < v.length && v[j].start < end) j++;
    if (v[j - 1].end > end) this.split(j - 1, end, false);
    return 0;
  }

  /** /proc/pid/maps */
  maps(): string[] {
    return this.vmas.map((v) => v.mapsLine());
  }
}
