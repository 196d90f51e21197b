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

/** mulberry32: a small seeded PRNG, returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Prot = string; // "rw-" style
type Flag = 'MAP_SHARED' | 'MAP_PRIVATE' | 'MAP_ANONYMOUS' | 'MAP_FIXED' | 'MAP_FIXED_NOREPLACE';

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

function protBits(p: Prot): number {
  return (p[0] === 'r' ? 1 : 0) | (p[1] === 'w' ? 2 : 0) | (p[2] === 'x' ? 4 : 0);
}

class Gen {
  private readonly rnd: () => number;
  // shadow, per page of the region: prot now ('' = unmapped), prot at mmap time
  private readonly cur: Prot[] = new Array<Prot>(REGION_PAGES).fill('');
  private readonly orig: Prot[] = new Array<Prot>(REGION_PAGES).fill('');

  constructor(seed: number) {
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

  call(): string {
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
export function randomTrace(seed: number, n: number): string[] {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`randomTrace: n must be an integer >= 1, got ${n}`);
  if (!Number.isInteger(seed)) throw new RangeError(`randomTrace: seed must be an integer, got ${seed}`);
  const g = new Gen(seed);
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
