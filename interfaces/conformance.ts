// The conformance runner: one cell = one design x hardware profile x kernel
// (patched or not) x scenario, run on a fresh machine, one CPU. The program
// allocates memory through the design's helper, writes a seeded pattern,
// lives through the scenario (memory pressure, NUMA migration, a power
// cycle), reads everything back and checks it. The outcome is observed, not
// declared: crashes are SIGSEGVs from the CPU, "encrypted" means the frames
// really hold ciphertext under a KeyID, and so on.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ENGINE_COUNTERS, type EngineCounter } from '../hardware/engine.js';
import { Machine } from '../hardware/machine.js';
import { PAGE_SIZE } from '../hardware/types.js';
import type { UserCpu } from '../kernel/cpu.js';
import { DAX_PATH } from '../kernel/dax.js';
import { E, errnoName, type ErrnoName } from '../kernel/errno.js';
import { ALL_FEATURES, KERNEL_COUNTERS, Kernel, NO_FEATURES, type KernelCounter, type Task } from '../kernel/kernel.js';
import { PG_SECRET } from '../kernel/page_alloc.js';
import { PTE_MIGRATION, PTE_SWAP, ptePfn, pteKeyid } from '../kernel/pgtable.js';
import { AT_FDCWD, NR } from '../kernel/syscalls.js';
import { MAP_SHARED, PROT_READ, PROT_WRITE } from '../kernel/uapi.js';
import { CPU_KEY, randomKeyBytes, userKey, type Allocation, type EncryptionDesign, type UserEnv } from './contract.js';
import { getDesign } from './registry.js';

export const SCENARIOS = ['basic', 'swap', 'migration', 'dax'] as const;
export type Scenario = (typeof SCENARIOS)[number];

export const OUTCOMES = ['encrypted', 'secret', 'leaked', 'plaintext', 'plaintext-fallback', 'unsupported', 'crashed', 'data-loss'] as const;
/**
 * encrypted: frames hold ciphertext under a KeyID, everything read back, and
 * no plaintext of the region reached any medium outside those frames (swap
 * file, DAX image, frames back in the free pool).
 * secret: plaintext frames the kernel cannot reach (memfd_secret: not in the
 * direct map), and none of it left elsewhere either.
 * leaked: it would be one of those two, but the region's plaintext was found
 * on another medium (leak_medium says where).
 * plaintext: the design protects nothing (the plain-mmap control).
 * plaintext-fallback: the program runs, in plaintext. unsupported: the design
 * cannot do what the scenario needs (errno says why). crashed: SIGSEGV.
 * data-loss: what was read back is not what was written.
 */
export type Outcome = (typeof OUTCOMES)[number];

/**
 * integrity_errors: pages read back wrong; procs, procs_encrypted: processes a
 * workload ran and how many of them got encrypted memory (key-exhaustion).
 */
export type Counter = KernelCounter | EngineCounter | 'integrity_errors' | 'procs' | 'procs_encrypted';

/** Processes of a cell and how many got encrypted memory. */
export interface ProcCount {
  readonly total: number;
  readonly encrypted: number;
}
export const NO_PROCS: ProcCount = { total: 0, encrypted: 0 };

export interface CellSpec {
  readonly design: string;
  readonly profile: string;
  readonly patched: boolean;
  readonly scenario: Scenario;
  /** careful program (fallbacks) or naive one */
  readonly careful: boolean;
  readonly pages: number;
  readonly seed: number;
  readonly backend: string;
  /** folder for the swap file and the DAX image */
  readonly workdir: string;
  /** swap over dm-crypt: the swap device encrypts what it stores */
  readonly encryptedSwap?: boolean;
}

export interface CellResult {
  readonly outcome: Outcome;
  readonly errno: ErrnoName | null;
  readonly counters: Readonly<Record<Counter, number>>;
  /** where the region's plaintext was found outside its frames */
  readonly leaks: LeakScan;
  /** one line: what happened */
  readonly detail: string;
  /**
   * Where the region's plaintext is once the program has released it (munmap,
   * close, key invalidated): frames the kernel scrubs on free (secretmem)
   * hold none. Set for cells that got as far as reading their memory back.
   */
  readonly released?: LeakScan;
}

const RW = PROT_READ | PROT_WRITE;

/**
 * The seeded bytes of page i, into buf. A seed's pages are windows of one
 * stream of 32-bit words: page i is words 4i .. 4i+1023 of it (see
 * streamInto), so a page starts 16 bytes (an XTS block) after the previous one.
 */
export function patternPage(seed: number, i: number, buf: Uint8Array): void {
  patternInto(seed, i, new Uint32Array(buf.buffer, buf.byteOffset, buf.byteLength >>> 2), 0);
}

/** The same bytes into words[at, at + 1024): no allocation (hot paths keep one view). */
export function patternInto(seed: number, i: number, words: Uint32Array, at: number): void {
  streamInto(seed, i * PAGE_STEP_WORDS, PAGE_SIZE >>> 2, words, at);
}

/**
 * Words first .. first+n-1 of seed's pattern stream, into words[at, at + n).
 * Word k is murmur3's fmix32 of (h ^ (k+1)·0x85ebca6b), h from the seed: a
 * bijection of k, so within a seed no word repeats, no two pages are equal
 * and none is all zeros; and every word is computed on its own (no chain from
 * the previous one), so a round's pages for all CPUs are one stream of
 * 4·pages + 1020 words, made once per round, and page p of it is the 4 KiB
 * at byte 16p (cpu-worker.ts): no page is generated twice.
 */
/** Words from one page's start to the next's in a pattern stream: 16 bytes, so a page is 16-byte aligned in it. */
export const PAGE_STEP_WORDS = 4;

export function streamInto(seed: number, first: number, n: number, words: Uint32Array, at: number): void {
  const h = (seed * 0x9e3779b1 + 1) >>> 0;
  for (let j = 0; j < n; j++) {
    let x = h ^ Math.imul(first + j + 1, 0x85ebca6b);
    x ^= x >>> 16;
    x = Math.imul(x, 0x85ebca6b);
    x ^= x >>> 13;
    x = Math.imul(x, 0xc2b2ae35);
    x ^= x >>> 16;
    words[at + j] = x;
  }
}

/** Pages 0..pages-1 of a persistent-memory image that hold the seed's pattern in plaintext. */
export function plaintextPages(image: Uint8Array, pages: number, seed: number): number {
  const buf = new Uint8Array(PAGE_SIZE);
  let n = 0;
  for (let i = 0; i < pages; i++) {
    patternPage(seed, i, buf);
    if (Buffer.compare(image.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE), buf) === 0) n++;
  }
  return n;
}

export const LEAK_MEDIA = ['swap', 'dax', 'free-ram'] as const;
export type LeakMedium = (typeof LEAK_MEDIA)[number];

export interface LeakScan {
  /** where the region's plaintext was found, in LEAK_MEDIA order */
  readonly media: LeakMedium[];
  /** bytes of it found, all media together */
  readonly bytes: number;
}

export const NO_LEAK: LeakScan = { media: [], bytes: 0 };

/**
 * The plaintext pages of some seeds' patterns, looked up by their first two
 * words and then compared in full: a page scan costs a map lookup per page.
 */
class PatternIndex {
  private readonly byHead = new Map<number, Uint8Array[]>();
  constructor(seeds: readonly number[], pages: number) {
    for (const seed of seeds)
      for (let i = 0; i < pages; i++) {
        const p = new Uint8Array(PAGE_SIZE);
        patternPage(seed, i, p);
        const h = PatternIndex.head(p);
        this.byHead.set(h, [...(this.byHead.get(h) ?? []), p]);
      }
  }
  private static head(p: Uint8Array): number {
    return (p[0] | (p[1] << 8) | (p[2] << 16)) * 256 + p[3] + (p[4] ^ p[5]) * 2 ** 32;
  }
  has(page: Uint8Array): boolean {
    const c = this.byHead.get(PatternIndex.head(page));
    return c !== undefined && c.some((p) => Buffer.compare(p, page) === 0);
  }
}

/**
 * Look for the plaintext of a region (pages 0..pages-1 of the given pattern
 * seeds) where it must not be: every frame in the free pool, every slot of the
 * swap file (freed slots keep their bytes), and a DAX image when one is given.
 * An observation of the media themselves, not of counters.
 */
export function scanLeaks(k: Kernel, seeds: readonly number[], pages: number, daxImage?: Uint8Array): LeakScan {
  const index = new PatternIndex(seeds, pages);
  const found: Record<LeakMedium, number> = { swap: 0, dax: 0, 'free-ram': 0 };
  const raw = k.machine.memory.buf.u8;
  k.alloc.forEachFree((pfn) => {
    if (index.has(raw.subarray(pfn * PAGE_SIZE, (pfn + 1) * PAGE_SIZE))) found['free-ram'] += PAGE_SIZE;
  });
  k.swap?.forEachRawSlot(new Uint8Array(PAGE_SIZE), (_slot, page) => {
    if (index.has(page)) found.swap += PAGE_SIZE;
  });
  if (daxImage)
    for (let off = 0; off + PAGE_SIZE <= daxImage.length; off += PAGE_SIZE)
      if (index.has(daxImage.subarray(off, off + PAGE_SIZE))) found.dax += PAGE_SIZE;
  const media = LEAK_MEDIA.filter((m) => found[m] > 0);
  return { media, bytes: media.reduce((a, m) => a + found[m], 0) };
}

/** A protected outcome (encrypted, secret) turns into `leaked` when a scan found the region's plaintext elsewhere. */
export function withLeaks(outcome: Outcome, leaks: LeakScan): Outcome {
  return (outcome === 'encrypted' || outcome === 'secret') && leaks.bytes > 0 ? 'leaked' : outcome;
}

interface Booted {
  machine: Machine;
  k: Kernel;
  task: Task;
  env: UserEnv;
}

function bootCell(spec: CellSpec, design: EncryptionDesign, machine: Machine): Booted {
  const swap = spec.scenario === 'swap' ? { path: join(spec.workdir, 'swap'), slots: spec.pages * 2, encrypt: spec.encryptedSwap ?? false } : null;
  const k = new Kernel(machine, { features: spec.patched ? ALL_FEATURES : NO_FEATURES, swap, pgtableSlots: 256 });
  design.install(k);
  const task = k.spawn({ memLimit: spec.scenario === 'swap' ? Math.max(1, spec.pages >> 1) : Infinity });
  const cpu = k.localCpu(task);
  return { machine, k, task, env: { sys: (nr, ...a) => k.syscall(task, nr, ...a), cpu } };
}

/** Write the pattern to every page; 0 or the CPU's -errno. */
export function writePattern(cpu: UserCpu, addr: number, pages: number, seed: number, buf: Uint8Array): number {
  for (let i = 0; i < pages; i++) {
    patternPage(seed, i, buf);
    const r = cpu.store(addr + i * PAGE_SIZE, buf);
    if (r < 0) return r;
  }
  return 0;
}

/** Read every page back; the number of pages that differ, or the CPU's -errno. */
export function verifyPattern(cpu: UserCpu, addr: number, pages: number, seed: number, buf: Uint8Array, got: Uint8Array): number {
  let bad = 0;
  for (let i = 0; i < pages; i++) {
    patternPage(seed, i, buf);
    const r = cpu.load(addr + i * PAGE_SIZE, got);
    if (r < 0) return r;
    if (Buffer.compare(buf, got) !== 0) bad++;
  }
  return bad;
}

/** What the frames behind [addr, +pages) of task really hold: 'encrypted' | 'secret' | 'plaintext'. */
export function observeFrames(k: Kernel, task: Task, addr: number, pages: number, seed: number): Outcome {
  const buf = new Uint8Array(PAGE_SIZE);
  const raw = k.machine.memory.buf.u8;
  let keyed = 0, secret = 0, resident = 0;
  for (let i = 0; i < pages; i++) {
    const pte = k.pool.get(task.mm.pgd, addr + i * PAGE_SIZE);
    if (pte === 0 || pte & (PTE_SWAP | PTE_MIGRATION)) continue;
    resident++;
    const pfn = ptePfn(pte);
    patternPage(seed, i, buf);
    const stored = raw.subarray(pfn * PAGE_SIZE, pfn * PAGE_SIZE + PAGE_SIZE);
    if (pteKeyid(pte) !== 0 && Buffer.compare(stored, buf) !== 0) keyed++;
    if (k.alloc.flags[pfn] & PG_SECRET) secret++;
  }
  if (resident > 0 && keyed === resident) return 'encrypted';
  if (resident > 0 && secret === resident) return 'secret';
  return 'plaintext';
}

const observe = (b: Booted, addr: number, pages: number, seed: number): Outcome => observeFrames(b.k, b.task, addr, pages, seed);

/** Kernel and engine counters of a machine, as one record. */
export function snapshotCounters(k: Kernel, integrity: number, procs: ProcCount = NO_PROCS): Record<Counter, number> {
  const out = {} as Record<Counter, number>;
  const kc = k.counters.snapshot();
  const ec = k.machine.engine.counters.snapshot();
  for (const c of KERNEL_COUNTERS) out[c] = kc[c];
  for (const c of ENGINE_COUNTERS) out[c] = ec[c];
  out.integrity_errors = integrity;
  out.procs = procs.total;
  out.procs_encrypted = procs.encrypted;
  return out;
}

const counters = (b: Booted, integrity: number) => snapshotCounters(b.k, integrity);

const errnoOf = (r: number): ErrnoName | null => (r < 0 ? errnoName(r) : null);

/** Run one cell. Never throws for a program's failure: that is an outcome. */
export function runCell(spec: CellSpec): CellResult {
  const design = getDesign(spec.design);
  const machine = Machine.create({
    profile: spec.profile,
    backend: spec.backend,
    memory: { nodeFrames: [spec.pages * 2 + 64, spec.pages * 2 + 64], daxFrames: spec.scenario === 'dax' ? spec.pages : 0 },
    nrCpus: 1,
  });
  let b = bootCell(spec, design, machine);
  const buf = new Uint8Array(PAGE_SIZE);
  const got = new Uint8Array(PAGE_SIZE);
  const len = spec.pages * PAGE_SIZE;
  const done = (outcome: Outcome, errno: number | ErrnoName | null, detail: string, integrity = 0, leaks = NO_LEAK, release?: () => LeakScan): CellResult => {
    const res: CellResult = {
      outcome: withLeaks(outcome, leaks),
      errno: typeof errno === 'number' ? errnoOf(errno) : errno,
      counters: counters(b, integrity),
      leaks,
      detail,
      // after the counters: releasing is not part of the cell's work
      ...(release && { released: release() }),
    };
    b.k.shutdown();
    return res;
  };
  // A SIGSEGV is reported with the errno of the call the program did not
  // check, when there was one (the ENOSYS that left memory PROT_NONE).
  const crashOrFail = (r: number, what: string, cause = 0): CellResult =>
    r === -E.EFAULT
      ? done('crashed', cause < 0 ? cause : r, `SIGSEGV ${what}`)
      : done('unsupported', r, `${what} failed`);

  if (spec.scenario === 'dax') {
    const fd = b.env.sys(NR.openat, AT_FDCWD, DAX_PATH, 2);
    const addr = b.env.sys(NR.mmap, 0, len, RW, MAP_SHARED, fd, 0);
    if (addr < 0) return done('unsupported', addr, 'mmap of /dev/dax0.0 failed');
    const key = userKey(randomKeyBytes()); // the same key after the power cycle, never derived from the seed
    const r = design.encryptMapping(b.env, addr, len, fd, key);
    if (r === null) return done('unsupported', null, 'the design has no call that takes an existing mapping');
    if (r < 0) return done('unsupported', r, 'encrypting the DAX mapping failed');
    const w = writePattern(b.env.cpu, addr, spec.pages, spec.seed, buf);
    if (w < 0) return crashOrFail(w, 'writing DAX');
    const before = observe(b, addr, spec.pages, spec.seed);
    const partial = counters(b, 0);
    // power cycle: the region goes to a real file, keys and RAM are lost
    b.k.shutdown();
    const img = join(spec.workdir, 'dax.img');
    machine.powerOff(img);
    machine.powerOn(img);
    const image = readFileSync(img);
    const leaked = plaintextPages(image, spec.pages, spec.seed) * PAGE_SIZE;
    b = bootCell(spec, design, machine);
    const fd2 = b.env.sys(NR.openat, AT_FDCWD, DAX_PATH, 2);
    const addr2 = b.env.sys(NR.mmap, 0, len, RW, MAP_SHARED, fd2, 0);
    const r2 = design.encryptMapping(b.env, addr2, len, fd2, key);
    if (r2 !== null && r2 < 0) return done('unsupported', r2, 'encrypting the DAX mapping after power-on failed');
    const bad = verifyPattern(b.env.cpu, addr2, spec.pages, spec.seed, buf, got);
    if (bad < 0) return crashOrFail(bad, 'reading DAX after power-on');
    // counters of both boots
    const leaks = scanLeaks(b.k, [spec.seed], spec.pages, image);
    const res = done(bad > 0 ? 'data-loss' : before, null, `${bad} pages lost, ${leaked} plaintext bytes in the DAX image`, bad, leaks);
    const sum = { ...res.counters } as Record<Counter, number>;
    for (const c of Object.keys(sum) as Counter[]) sum[c] += c === 'integrity_errors' || c === 'procs' || c === 'procs_encrypted' ? 0 : partial[c];
    sum.plaintext_exposed_bytes += leaked;
    return { ...res, counters: sum };
  }

  const a = design.allocate(b.env, len, CPU_KEY, spec.careful);
  if ('failed' in a) return done('unsupported', a.failed, 'the helper gave up');
  const alloc: Allocation = a;
  const w = writePattern(b.env.cpu, alloc.addr, spec.pages, spec.seed, buf);
  if (w < 0) return crashOrFail(w, 'writing the memory', alloc.errno);
  let errno: number = alloc.errno;
  let note = alloc.fallback ? 'fell back to plain memory' : 'as designed';
  let unsupported = false;
  if (spec.scenario === 'migration') {
    const pages = [...Array(spec.pages).keys()].map((i) => alloc.addr + i * PAGE_SIZE);
    const status: number[] = [];
    const r = b.env.sys(NR.move_pages, 0, pages, pages.map(() => 1), status);
    const failed = r < 0 ? r : (status.find((s) => s < 0) ?? 0);
    if (failed < 0) {
      errno = failed;
      unsupported = true;
      note = `${status.filter((s) => s < 0).length} of ${spec.pages} pages did not move`;
    }
  }
  // observe before reading back: reading may fault pages back in
  const seen = observe(b, alloc.addr, spec.pages, spec.seed);
  const bad = verifyPattern(b.env.cpu, alloc.addr, spec.pages, spec.seed, buf, got);
  if (bad < 0) return crashOrFail(bad, 'reading the memory back');
  if (bad > 0) return done('data-loss', errno, `${bad} of ${spec.pages} pages read back wrong`, bad);
  if (unsupported) return done('unsupported', errno, note);
  if (spec.scenario === 'swap' && b.k.counters.get('swap_out') === 0 && !alloc.fallback && seen !== 'plaintext')
    return done('unsupported', errno, 'nothing was swapped');
  const leaks = scanLeaks(b.k, [spec.seed], spec.pages);
  const release = (): LeakScan => {
    design.release(b.env, alloc);
    return scanLeaks(b.k, [spec.seed], spec.pages);
  };
  return done(alloc.fallback ? 'plaintext-fallback' : seen, errno, note, 0, leaks, release);
}
