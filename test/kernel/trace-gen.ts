// Random syscall traces for the VMA differential test (model vs real Linux, see
// replay-linux.test.ts and replay_linux.c). A trace is JSON lines, one call per line:
//   {"op":"mmap","addr":"0x200000000","len":"0x3000","prot":"rw-","flags":["MAP_PRIVATE",...]}
//   {"op":"munmap"|"mprotect"|"madvise", "addr", "len", "prot"?, "advice"?}
//   {"op":"maps"}
// Every call stays inside the 1 MiB test region [REGION_START, REGION_END): a call that could
// succeed never names a page outside it, and mmap is always MAP_FIXED or MAP_FIXED_NOREPLACE
// (a kernel-chosen address would differ between the model and Linux). Invalid inputs (an
// unaligned addr, len 0, an invalid prot, an unknown advice) appear on purpose, as do odd lens
// (not a page multiple; rounded up, still inside the region), ranges with holes and ranges that
// start in a hole. The generator keeps a rough shadow of what is mapped only to aim calls at
// existing mappings (splits, merges, mprotect back to the original prot); the shadow is not an
// oracle and is never compared with anything.

import { mulberry32 } from '../../bench/stats.js';

export const PAGE_SIZE = 0x1000;
/** First byte of the test region (8 GiB: far from where Linux puts a process's own mappings). */
export const REGION_START = 0x2_0000_0000;
export const REGION_PAGES = 256;
/** 1 MiB */
export const REGION_SIZE = REGION_PAGES * PAGE_SIZE;
/** One past the last byte of the test region. */
export const REGION_END = REGION_START + REGION_SIZE;
/** Largest mapping or range the generator asks for, in pages. */
export const MAX_PAGES = 32;

/** mulberry32: a small seeded PRNG, returns floats in [0, 1) (the harness's own, bench/stats.ts). */
export { mulberry32 };

type Prot = string; // "rw-" style
type Flag = string; // a MAP_* name replay.ts and replay_linux.c both know

/**
 * What the edge classes need to know of the machine the trace runs on: a MAP_FIXED at 0 is
 * EPERM only when vm.mmap_min_addr is above 0 (and the process lacks CAP_SYS_RAWIO).
 */
export interface TraceOptions {
  /** add the edge-input classes (64-bit registers, all advice, mmap flags, PROT_GROWS*) */
  readonly edges?: boolean;
  readonly mmapMinAddr?: number;
  /**
   * RAM + swap of the machine in pages (totalram_pages + total_swap_pages): with it, the
   * edge traces also make mappings around that size (overcommit mode 0).
   */
  readonly commitPages?: number;
}

/** RLIMIT_MEMLOCK that replay_linux.c sets for itself (REPLAY_MEMLOCK). */
export const REPLAY_MEMLOCK = 256 * 1024;

/** A page range inside the region: pages [page, page + npages). */
interface Range {
  page: number;
  npages: number;
}
interface Run {
  start: number;
  end: number;
}

// prot strings, repeated to weight them
const PROTS: readonly Prot[] = ['rw-', 'rw-', 'rw-', 'rw-', 'r--', 'r--', 'r--', '---', '---', 'r-x', 'rwx', '-w-', '--x'];
const UNKNOWN_ADVICE: readonly number[] = [12345, 255];
const INVALID_PROT = 0x10;

const hex = (n: number): string => '0x' + n.toString(16);
const protString = (bits: number): string => (bits & 1 ? 'r' : '-') + (bits & 2 ? 'w' : '-') + (bits & 4 ? 'x' : '-');

// Every advice of Linux 6.18 on x86-64 but MADV_HWPOISON and MADV_SOFT_OFFLINE (they would
// poison the test machine's memory when run with CAP_SYS_ADMIN).
const ALL_ADVICE: readonly string[] = [
  'MADV_NORMAL', 'MADV_RANDOM', 'MADV_SEQUENTIAL', 'MADV_WILLNEED', 'MADV_DONTNEED', 'MADV_FREE', 'MADV_REMOVE',
  'MADV_DONTFORK', 'MADV_DOFORK', 'MADV_MERGEABLE', 'MADV_UNMERGEABLE', 'MADV_HUGEPAGE', 'MADV_NOHUGEPAGE',
  'MADV_DONTDUMP', 'MADV_DODUMP', 'MADV_WIPEONFORK', 'MADV_KEEPONFORK', 'MADV_COLD', 'MADV_PAGEOUT',
  'MADV_POPULATE_READ', 'MADV_POPULATE_WRITE', 'MADV_DONTNEED_LOCKED', 'MADV_COLLAPSE', 'MADV_GUARD_INSTALL',
  'MADV_GUARD_REMOVE',
];

function protBits(p: Prot): number {
  return (p[0] === 'r' ? 1 : 0) | (p[1] === 'w' ? 2 : 0) | (p[2] === 'x' ? 4 : 0);
}

class Gen {
  private readonly rnd: () => number;
  // shadow, per page of the region: prot now ('' = unmapped), prot at mmap time
  private readonly cur: Prot[] = new Array<Prot>(REGION_PAGES).fill('');
  private readonly orig: Prot[] = new Array<Prot>(REGION_PAGES).fill('');

  constructor(
    seed: number,
    private readonly opts: TraceOptions = {},
  ) {
    this.rnd = mulberry32(seed);
  }

  private chance(p: number): boolean {
    return this.rnd() < p;
  }
  /** integer in [lo, hi] */
  private int(lo: number, hi: number): number {
    return lo + Math.floor(this.rnd() * (hi - lo + 1));
  }
  private pick<T>(a: readonly T[]): T {
    return a[Math.floor(this.rnd() * a.length)]!;
  }

  private runs(mapped: boolean): Run[] {
    const out: Run[] = [];
    let p = 0;
    while (p < REGION_PAGES) {
      if ((this.cur[p] !== '') !== mapped) {
        p++;
        continue;
      }
      const start = p;
      while (p < REGION_PAGES && (this.cur[p] !== '') === mapped) p++;
      out.push({ start, end: p });
    }
    return out;
  }

  private clip(page: number, npages: number): Range {
    page = Math.max(0, Math.min(page, REGION_PAGES - 1));
    npages = Math.max(1, Math.min(npages, REGION_PAGES - page));
    return { page, npages };
  }

  private anyRange(): Range {
    const npages = this.int(1, MAX_PAGES);
    return { page: this.int(0, REGION_PAGES - npages), npages };
  }

  /** Starts in or a little before a mapping: overlaps it, often partially. */
  private overMapping(): Range {
    const runs = this.runs(true);
    if (runs.length === 0) return this.anyRange();
    const r = this.pick(runs);
    const page = this.int(r.start - 4, r.end - 1);
    // half the time end inside the run or at its end: a partial overlap without a hole after it
    const npages = page < r.end && this.chance(0.5) ? this.int(1, r.end - page) : this.int(1, MAX_PAGES);
    return this.clip(page, npages);
  }

  /** Strictly inside one mapped run (a middle piece splits a VMA in three). */
  private insideMapping(): Range {
    const runs = this.runs(true);
    if (runs.length === 0) return this.anyRange();
    const r = this.pick(runs);
    const page = this.int(r.start, r.end - 1);
    const end = this.int(page + 1, Math.min(r.end, page + MAX_PAGES));
    return { page, npages: end - page };
  }

  /** Right before or right after a mapped run (a new mapping there may merge). */
  private adjacent(): Range {
    const runs = this.runs(true);
    if (runs.length === 0) return this.anyRange();
    const r = this.pick(runs);
    const before = r.start > 0 && (r.end >= REGION_PAGES || this.chance(0.5));
    if (before) {
      const npages = this.int(1, Math.min(MAX_PAGES, r.start));
      return { page: r.start - npages, npages };
    }
    if (r.end >= REGION_PAGES) return this.anyRange();
    return this.clip(r.end, this.int(1, MAX_PAGES));
  }

  /** Starts in a mapping and runs past its end into a hole (and maybe the next mapping). */
  private withHole(): Range {
    const runs = this.runs(true).filter((r) => r.end < REGION_PAGES);
    if (runs.length === 0) return this.overMapping();
    const r = this.pick(runs);
    const page = this.int(Math.max(r.start, r.end - 8), r.end - 1);
    return this.clip(page, r.end - page + this.int(1, MAX_PAGES));
  }

  /** Starts in a hole, preferably one followed by a mapping. */
  private startInHole(): Range {
    const holes = this.runs(false);
    if (holes.length === 0) return this.anyRange();
    const inner = holes.filter((h) => h.end < REGION_PAGES);
    const h = this.pick(inner.length > 0 && this.chance(0.8) ? inner : holes);
    const page = this.int(Math.max(h.start, h.end - 4), h.end - 1);
    return this.clip(page, h.end - page + this.int(0, MAX_PAGES));
  }

  private targetRange(): Range {
    const r = this.rnd();
    if (r < 0.5) return this.insideMapping();
    if (r < 0.7) return this.overMapping();
    if (r < 0.8) return this.withHole();
    if (r < 0.87) return this.startInHole();
    if (r < 0.93) return this.adjacent();
    return this.anyRange();
  }

  /**
   * addr/len for a range, with the occasional invalid or odd value. Returns the JSON fields and
   * whether the kernel will see an aligned addr and a nonzero len.
   */
  private addrLen(r: Range): { addr: string | number; len: string | number; ok: boolean } {
    let addr = REGION_START + r.page * PAGE_SIZE;
    let len = r.npages * PAGE_SIZE;
    let ok = true;
    const v = this.rnd();
    if (v < 0.04) {
      addr += this.int(1, PAGE_SIZE - 1); // unaligned addr: EINVAL
      ok = false;
    } else if (v < 0.07) {
      len = 0;
      ok = false;
    } else if (v < 0.14) {
      len -= this.int(1, PAGE_SIZE - 1); // odd len: rounded up to r.npages pages
    }
    return {
      addr: this.chance(0.1) ? addr : hex(addr),
      len: this.chance(0.15) ? len : hex(len),
      ok,
    };
  }

  private mmap(): string {
    const r = this.rnd();
    const range = r < 0.35 ? this.adjacent() : r < 0.6 ? this.overMapping() : this.anyRange();
    const { addr, len, ok } = this.addrLen(range);
    const prot = this.pick(PROTS);
    const shared = this.chance(0.2);
    const noreplace = this.chance(0.55);
    const flags: Flag[] = [shared ? 'MAP_SHARED' : 'MAP_PRIVATE', 'MAP_ANONYMOUS', noreplace ? 'MAP_FIXED_NOREPLACE' : 'MAP_FIXED'];
    if (ok) {
      const pages = this.pages(range);
      if (!noreplace || pages.every((p) => this.cur[p] === '')) {
        for (const p of pages) this.cur[p] = this.orig[p] = prot;
      }
    }
    return JSON.stringify({ op: 'mmap', addr, len, prot, flags });
  }

  /**
   * An mmap that names a file descriptor: a closed or negative fd without
   * MAP_ANONYMOUS (EBADF), combined with what would be an error of its own
   * (len 0, an unaligned offset, no MAP_SHARED/PRIVATE) so the errno order is
   * checked, not just each errno. None of them maps anything.
   */
  private badFdMmap(): string {
    const { addr, len } = this.addrLen(this.anyRange());
    const flags: Flag[] = [this.chance(0.5) ? 'MAP_SHARED' : 'MAP_PRIVATE', this.chance(0.5) ? 'MAP_FIXED_NOREPLACE' : 'MAP_FIXED'];
    const r = this.rnd();
    const o: Record<string, unknown> = { op: 'mmap', addr, len: r < 0.3 ? 0 : len, prot: this.pick(PROTS), flags: r > 0.85 ? flags.slice(1) : flags };
    o.fd = this.chance(0.5) ? 1000 + Math.floor(this.rnd() * 1000) : -1 - Math.floor(this.rnd() * 3);
    if (this.chance(0.4)) o.offset = this.chance(0.5) ? 4096 * Math.floor(this.rnd() * 4) + 1 + Math.floor(this.rnd() * 4095) : 4096 * Math.floor(this.rnd() * 4);
    return JSON.stringify(o);
  }

  private munmap(): string {
    const range = this.chance(0.1) ? this.anyRange() : this.targetRange();
    const { addr, len, ok } = this.addrLen(range);
    if (ok) for (const p of this.pages(range)) this.cur[p] = this.orig[p] = '';
    return JSON.stringify({ op: 'munmap', addr, len });
  }

  private mprotect(): string {
    const range = this.targetRange();
    const { addr, len, ok } = this.addrLen(range);
    const first = this.cur[range.page]!;
    let prot: Prot | number;
    const v = this.rnd();
    if (v < 0.05) prot = INVALID_PROT | (this.chance(0.5) ? 0 : this.int(0, 7));
    else if (v < 0.45 && first !== '') prot = this.orig[range.page]!; // back to the original: merges
    else if (v < 0.55 && first !== '') prot = first; // no change
    else prot = this.pick(PROTS);
    if (ok && typeof prot === 'string') {
      // like the kernel: applied up to the first hole
      for (const p of this.pages(range)) {
        if (this.cur[p] === '') break;
        this.cur[p] = prot;
      }
    }
    if (typeof prot === 'string' && this.chance(0.1)) prot = protBits(prot);
    return JSON.stringify({ op: 'mprotect', addr, len, prot });
  }

  private madvise(): string {
    const range = this.targetRange();
    const { addr, len } = this.addrLen(range);
    const v = this.rnd();
    const advice = v < 0.08 ? this.pick(UNKNOWN_ADVICE) : v < 0.3 ? 'MADV_NORMAL' : 'MADV_DONTNEED';
    return JSON.stringify({ op: 'madvise', addr, len, advice });
  }

  private pages(r: Range): number[] {
    return Array.from({ length: r.npages }, (_, i) => r.page + i);
  }

  // ---- edge classes (opts.edges). Every edge call either fails on Linux or changes only the
  // test region: a register value that reaches outside it always makes the call fail.

  /** A range in the region (no invalid-addr/len noise), as numbers. */
  private regionRange(): { addr: number; len: number; range: Range } {
    const range = this.targetRange();
    return { addr: REGION_START + range.page * PAGE_SIZE, len: range.npages * PAGE_SIZE, range };
  }

  /** 64-bit register values that make each call fail in a different check. */
  private edgeRegisters(): string {
    const { addr, len } = this.regionRange();
    const op = this.pick(['mmap', 'munmap', 'mprotect', 'madvise'] as const);
    const anyLen = this.pick([hex(len), String(len)]);
    // addresses no call may succeed at (above TASK_SIZE, or too close to it for the length)
    // (a MAP_FIXED address in the last 4095 is taken for an error number by the kernel itself)
    const badAddr = this.pick(['-4096', '0xfffffffffffff000', '0x800000000000', '0x7ffffffff000', '-1', '-12', '-22', '-4095', '-100', '0x8000000000000000', '0x1000000000000000']);
    // lens that wrap in PAGE_ALIGN or in start + len: no call gets past them
    const wrapLen = '0x' + ((1n << 64n) - BigInt(addr) + BigInt(this.int(0, 3) * PAGE_SIZE)).toString(16);
    const wrapping = ['-1', '-4096', '0xfffffffffffff001', '0xfffffffffffff000', wrapLen];
    // for mmap also lens past TASK_SIZE (ENOMEM before any VMA is looked at)
    const badLen = this.pick(op === 'mmap' ? [...wrapping, '0x800000000000', '0x8000000000000000', '0x7fffffffffff'] : wrapping);
    const useBadAddr = this.chance(0.5);
    const a = useBadAddr ? badAddr : hex(addr);
    const l = useBadAddr ? (this.chance(0.5) ? anyLen : badLen) : badLen;
    switch (op) {
      case 'mmap': {
        const flags: Flag[] = [this.chance(0.8) ? 'MAP_PRIVATE' : 'MAP_SHARED', 'MAP_ANONYMOUS', this.chance(0.5) ? 'MAP_FIXED' : 'MAP_FIXED_NOREPLACE'];
        // a fixed address of 0: EPERM below vm.mmap_min_addr (only bad lens with it)
        if (this.chance(0.15) && (this.opts.mmapMinAddr ?? 0) > 0) return JSON.stringify({ op, addr: '0', len: hex(len), prot: this.pick(PROTS), flags });
        return JSON.stringify({ op, addr: a, len: l, prot: this.pick(PROTS), flags });
      }
      case 'munmap':
        return JSON.stringify({ op, addr: a, len: l });
      case 'mprotect':
        return JSON.stringify({ op, addr: a, len: l, prot: this.pick(PROTS) });
      case 'madvise':
        return JSON.stringify({ op, addr: a, len: l, advice: this.pick(['MADV_NORMAL', 'MADV_DONTNEED', 'MADV_DONTDUMP', 'MADV_COLD']) });
    }
  }

  /** mmap with the MAP_* flags that change checks or VM flags, in the region. */
  private edgeMmap(): string {
    const r = this.rnd();
    const range = r < 0.4 ? this.adjacent() : r < 0.6 ? this.overMapping() : this.anyRange();
    let addr = REGION_START + range.page * PAGE_SIZE;
    const len = range.npages * PAGE_SIZE;
    const fixed = this.chance(0.5) ? 'MAP_FIXED' : 'MAP_FIXED_NOREPLACE';
    const v = this.rnd();
    let flags: Flag[] | string;
    let prot: string | number = this.pick(PROTS);
    let maps = true; // the call maps the range if it gets past the EEXIST check
    if (v < 0.1) {
      flags = ['MAP_SHARED_VALIDATE', 'MAP_ANONYMOUS', fixed]; // EINVAL: no anonymous case
      maps = false;
    } else if (v < 0.16) {
      flags = ['MAP_ANONYMOUS', fixed]; // type 0: EINVAL
      maps = false;
    } else if (v < 0.24) {
      flags = ['MAP_DROPPABLE', 'MAP_ANONYMOUS', fixed];
      if (this.chance(0.4)) {
        flags.push(this.pick(['MAP_LOCKED', 'MAP_GROWSDOWN'])); // EINVAL
        maps = false;
      }
    } else if (v < 0.32) {
      const shared = this.chance(0.4);
      flags = [shared ? 'MAP_SHARED' : 'MAP_PRIVATE', 'MAP_ANONYMOUS', 'MAP_GROWSDOWN', fixed];
      if (shared) maps = false; // GROWSDOWN|SHARED: EINVAL
    } else if (v < 0.5) {
      flags = ['MAP_PRIVATE', 'MAP_ANONYMOUS', fixed, this.pick(['MAP_NORESERVE', 'MAP_STACK', 'MAP_SYNC', 'MAP_32BIT', 'MAP_DENYWRITE', 'MAP_EXECUTABLE', 'MAP_UNINITIALIZED', 'MAP_NONBLOCK', 'MAP_ABOVE4G'])];
    } else if (v < 0.58) {
      // MAP_HUGETLB with no huge page pool: EINVAL off a 2 MiB boundary or for an unknown size,
      // else ENOMEM after the old mappings in the 2 MiB range are gone (MAP_FIXED)
      const sizeLog = this.pick([0, 0, 21, 25]);
      if (this.chance(0.6)) addr = REGION_START; // 2 MiB aligned
      const bits = 0x02 | 0x20 | 0x40000 | (fixed === 'MAP_FIXED' ? 0x10 : 0x100000) | (sizeLog << 26);
      flags = hex(bits);
      maps = false;
      if (addr === REGION_START && fixed === 'MAP_FIXED' && sizeLog !== 25) for (let p = 0; p < REGION_PAGES; p++) this.cur[p] = this.orig[p] = '';
    } else if (v < 0.7) {
      // bits above 31: ignored for MAP_PRIVATE, EOPNOTSUPP... no, EINVAL for anonymous VALIDATE
      flags = hex(0x1_0000_0000 * this.int(1, 0xff) + (0x02 | 0x20 | (fixed === 'MAP_FIXED' ? 0x10 : 0x100000)));
    } else if (v < 0.85) {
      // prot bits mmap ignores (PROT_SEM, PROT_GROWS*, bits above 31)
      flags = ['MAP_PRIVATE', 'MAP_ANONYMOUS', fixed];
      prot = this.pick(['0xffffffff', '0x100000003', '0x1000001', '0x2000003', '0xffffffffffffffff', '8']);
    } else {
      flags = ['MAP_PRIVATE', 'MAP_ANONYMOUS', fixed, 'MAP_LOCKED'];
      prot = this.pick(['r--', '---']); // read-only locked: faulted read-only (no anon_vma)
    }
    const pages = this.pages(range);
    const shown = typeof prot === 'string' && prot.length === 3 ? prot : protString(Number(BigInt(prot) & 7n));
    if (maps && (fixed === 'MAP_FIXED' || pages.every((p) => this.cur[p] === ''))) for (const p of pages) this.cur[p] = this.orig[p] = shown;
    return JSON.stringify({ op: 'mmap', addr: hex(addr), len: hex(len), prot, flags });
  }

  /** mprotect with PROT_GROWSDOWN/UP, PROT_SEM and prot bits above 31. */
  private edgeMprotect(): string {
    const { addr, len } = this.regionRange();
    const prot = this.pick(['0x1000001', '0x1000003', '0x2000001', '0x3000001', '0x100000001', '0x8000000000000001', '8', '0x9', '0x10']);
    return JSON.stringify({ op: 'mprotect', addr: hex(addr), len: hex(len), prot });
  }

  /** Every advice Linux 6.18 knows (but the memory-failure ones), and ints that truncate. */
  private edgeMadvise(): string {
    const { addr, len } = this.regionRange();
    const v = this.rnd();
    let advice: string | number;
    if (v < 0.75) advice = this.pick(ALL_ADVICE);
    else if (v < 0.85) advice = this.pick(['0x100000004', '0x10000000e', '0xffffffff00000010', '0x100000012']);
    else advice = this.pick(['-1', '0x80000000', '26', '99', '104', '5', '0xffffffff']);
    return JSON.stringify({ op: 'madvise', addr: hex(addr), len: hex(len), advice });
  }

  /**
   * A mapping at the region's start around RAM + swap in size: refused if charged (private
   * writable, or shared), granted with MAP_NORESERVE or read-only; or mprotect making a part
   * of the region writable after such a mapping (charged then).
   */
  private edgeCommit(commit: number): string {
    const v = this.rnd();
    const pages = commit + this.pick([1, 1, 2, 4096, 0, -1]);
    const len = '0x' + (BigInt(pages) * 4096n).toString(16);
    let flags: Flag[];
    let prot = 'rw-';
    let maps: boolean;
    let clears = false;
    if (v < 0.35) {
      flags = ['MAP_PRIVATE', 'MAP_ANONYMOUS', 'MAP_FIXED'];
      maps = pages <= commit;
    } else if (v < 0.55) {
      flags = ['MAP_PRIVATE', 'MAP_ANONYMOUS', 'MAP_FIXED', 'MAP_NORESERVE'];
      maps = true;
    } else if (v < 0.75) {
      flags = ['MAP_PRIVATE', 'MAP_ANONYMOUS', 'MAP_FIXED'];
      prot = this.pick(['r--', '---']);
      maps = true;
    } else {
      // shmem charges the whole size, after the old range is cleared
      flags = ['MAP_SHARED', 'MAP_ANONYMOUS', 'MAP_FIXED'];
      maps = pages <= commit;
      clears = !maps;
    }
    if (maps || clears) for (let p = 0; p < REGION_PAGES; p++) this.cur[p] = this.orig[p] = maps ? prot : '';
    return JSON.stringify({ op: 'mmap', addr: hex(REGION_START), len, prot, flags });
  }

  call(): string {
    if (this.opts.edges && this.opts.commitPages !== undefined && this.chance(0.01)) return this.edgeCommit(this.opts.commitPages);
    if (this.opts.edges && this.chance(0.45)) {
      const e = this.rnd();
      if (e < 0.3) return this.edgeRegisters();
      if (e < 0.6) return this.edgeMmap();
      if (e < 0.75) return this.edgeMprotect();
      return this.edgeMadvise();
    }
    const r = this.rnd();
    if (r < 0.3) return this.mmap();
    if (r < 0.34) return this.badFdMmap();
    if (r < 0.5) return this.munmap();
    if (r < 0.78) return this.mprotect();
    return this.madvise();
  }

  /** Calls until the next maps op: about 5. */
  gap(): number {
    return this.int(3, 7);
  }
}

/**
 * A deterministic random trace of n lines (n >= 1) for the given seed: syscalls confined to the
 * test region with a {"op":"maps"} about every 5 calls and always as the last line.
 */
export function randomTrace(seed: number, n: number, opts: TraceOptions = {}): string[] {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`randomTrace: n must be an integer >= 1, got ${n}`);
  if (!Number.isInteger(seed)) throw new RangeError(`randomTrace: seed must be an integer, got ${seed}`);
  const g = new Gen(seed, opts);
  const out: string[] = [];
  const maps = JSON.stringify({ op: 'maps' });
  let untilMaps = g.gap();
  while (out.length < n - 1) {
    if (untilMaps === 0) {
      out.push(maps);
      untilMaps = g.gap();
    } else {
      out.push(g.call());
      untilMaps--;
    }
  }
  out.push(maps);
  return out;
}
