// Shared set-up for kernel tests: a small machine and a kernel on it.
import assert from 'node:assert/strict';
import { defaultOvercommit } from '../../kernel/limits.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MemoryEncryptionEngine } from '../../hardware/engine.js';
import type { Pfn } from '../../hardware/types.js';
import { Machine } from '../../hardware/machine.js';
import { FastFault, enableFastFaults, mmWriteLock, mmWriteUnlock } from '../../kernel/fastfault.js';
import { ALL_FEATURES, Kernel, type KernelConfig, type KernelFeatures, type Task } from '../../kernel/kernel.js';
import type { MktmeKey } from '../../kernel/keys.js';
import type { SwapConfig } from '../../kernel/swap_device.js';
import { NR } from '../../kernel/syscalls.js';
import { TrapServer, cpuDescriptor } from '../../kernel/trap.js';
import { Worker } from 'node:worker_threads';
import { MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../../kernel/uapi.js';

export interface BootOptions {
  profile?: string;
  backend?: string;
  nodeFrames?: number[];
  daxFrames?: number;
  nrCpus?: number;
  features?: KernelFeatures;
  swapSlots?: number;
  swapEncrypt?: boolean;
  maxMapCount?: number;
  machine?: Machine;
  /**
   * vm.overcommit_memory. Default 1 (always): these tests map far more address
   * space than their machines of a hundred frames have, which mode 0 would
   * refuse as Linux does; limits.test.ts tests the modes themselves.
   */
  overcommit?: 0 | 1 | 2;
  /** the CPU has OS-enabled protection keys (KernelConfig.pku) */
  pku?: boolean;
}

export interface Booted {
  m: Machine;
  k: Kernel;
  dir: string;
  /** shut the kernel down and remove temp files */
  done(): void;
}

/**
 * Directories of machines whose test never reached done() (an assertion
 * failed first): removed when the test process exits, so that failing runs
 * (a mutation run fails thousands) leave nothing in /tmp.
 */
const leftovers = new Set<string>();
process.on('exit', () => {
  for (const d of leftovers) rmSync(d, { recursive: true, force: true });
});

export function boot(o: BootOptions = {}): Booted {
  // a directory only for a swap file or a DAX image: most tests need none, and leave none behind
  const dir = o.swapSlots || o.daxFrames ? mkdtempSync(join(tmpdir(), 'memcrypt-k-')) : '';
  if (dir !== '') leftovers.add(dir);
  const m =
    o.machine ??
    Machine.create({
      profile: o.profile ?? 'mktme',
      backend: o.backend ?? 'openssl',
      memory: { nodeFrames: o.nodeFrames ?? [64, 64], daxFrames: o.daxFrames ?? 0 },
      nrCpus: o.nrCpus ?? 1,
    });
  const swap: SwapConfig | null = o.swapSlots ? { path: join(dir, 'swap'), slots: o.swapSlots, encrypt: o.swapEncrypt ?? false } : null;
  const overcommit = { ...defaultOvercommit(m.memory.nrFrames - m.memory.daxFrames, swap?.slots ?? 0), mode: o.overcommit ?? 1 };
  const cfg: KernelConfig = { features: o.features ?? ALL_FEATURES, swap, maxMapCount: o.maxMapCount, pgtableSlots: 512, overcommit, pku: o.pku };
  const k = new Kernel(m, cfg);
  return {
    m,
    k,
    dir,
    done() {
      k.shutdown();
      if (dir !== '') rmSync(dir, { recursive: true, force: true });
      leftovers.delete(dir);
    },
  };
}

export const PAGE = 4096;
export const BASE = 0x2_0000_0000;

/** Store 8 bytes of `byte` at va through t's CPU (faulting the page in); asserts it succeeds. */
export function touch(k: Kernel, t: Task, va: number, byte: number): void {
  assert.equal(k.localCpu(t).store(va, new Uint8Array(8).fill(byte), 0, 8), 0);
}

/** The first byte at va through t's CPU; asserts the load succeeds. */
export function read(k: Kernel, t: Task, va: number): number {
  const out = new Uint8Array(8);
  assert.equal(k.localCpu(t).load(va, out, 0, 8), 0);
  return out[0];
}

/** Map `pages` read-write anonymous pages at `at` (MAP_FIXED, private unless `flags` says otherwise); asserts it succeeds. */
export function mapAnon(k: Kernel, t: Task, pages: number, at = BASE, flags = MAP_PRIVATE): void {
  assert.equal(k.syscall(t, NR.mmap, at, pages * PAGE, PROT_READ | PROT_WRITE, flags | MAP_ANONYMOUS | MAP_FIXED, -1, 0), at);
}

/** add_key an MKTME CPU key for t; asserts it succeeds and returns the key. */
export function addKey(k: Kernel, t: Task, payload = 'type=cpu algorithm=aes-xts-128'): MktmeKey {
  const serial = k.syscall(t, NR.add_key, 'mktme', 'test', payload);
  assert.ok(serial > 0, `add_key: ${serial}`);
  return k.keys.lookup(serial, t.creds) as MktmeKey;
}

/**
 * The fast-fault handler of CPU `cpu` running t, on the test's own thread
 * (what WorkerCpu builds in a worker); `engine` may wrap the machine's.
 */
export function fastFaultOn(k: Kernel, t: Task, cpu: number, engine: MemoryEncryptionEngine = k.machine.engine): FastFault {
  return new FastFault({
    cpu,
    mmId: t.mm.id,
    pgd: t.mm.pgd,
    mm: t.mm.shared,
    map: k.alloc.map,
    pool: k.pool,
    engine,
    keyPageRefs: k.keys.pageRefs,
    counters: k.counters.row(cpu),
    faultsIndex: k.counters.index.faults,
    directMapIndex: k.counters.index.direct_map_removed,
  });
}

/** CPU `cpu` now runs t (without being online: the kernel then waits for no IPI ack from it). */
export function runOn(k: Kernel, t: Task, cpu: number): void {
  k.smp.setOnline(cpu, t.mm.id);
  k.smp.setOffline(cpu);
}

/** The fast-fault handler of CPU `cpu` running t, on this thread, with fast faults on for t; `engine` may wrap the real one. */
export function fastCpu(k: Kernel, t: Task, cpu = 1, engine: MemoryEncryptionEngine = k.machine.engine): FastFault {
  runOn(k, t, cpu);
  enableFastFaults(k, t.mm);
  return fastFaultOn(k, t, cpu, engine);
}

/** The kernel enters t's mm and leaves it (any syscall): the CPUs' batches drained, VMAs republished. */
export function settle(k: Kernel, t: Task): void {
  mmWriteLock(k, t.mm);
  mmWriteUnlock(k, t.mm);
}

export interface Report {
  errors: number;
  faults: number;
  handled: number;
  passed: number;
}

/** Run one worker CPU per entry of `jobs` (its pages) on task t until all are done. */
export async function runCpus(k: Kernel, t: Task, jobs: number[][], fast: boolean, verify = true): Promise<Report[]> {
  const server = new TrapServer(k, t);
  const workers: Worker[] = [];
  const start = new Int32Array(new SharedArrayBuffer(8));
  const results = jobs.map((pages, j) => {
    const cpu = j + 1;
    server.serve(cpu);
    const desc = cpuDescriptor(k, t, cpu, fast);
    const w = new Worker(new URL('./fastfault-worker.js', import.meta.url), { workerData: { desc, base: BASE, pages, verify, start: start.buffer } });
    workers.push(w);
    return new Promise<Report>((res, rej) => {
      w.once('message', res);
      w.once('error', rej);
    });
  });
  // all CPUs ready, then off at once
  while (Atomics.load(start, 1) < jobs.length) await new Promise((r) => setTimeout(r, 1));
  Atomics.store(start, 0, 1);
  Atomics.notify(start, 0);
  try {
    return await Promise.all(results);
  } finally {
    await server.stop();
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

/**
 * The machine's engine, but whose zero() runs `meanwhile` (with the frame it
 * zeroed) right after zeroing: where "the other CPU" or "the kernel" may come
 * in, between a fast fault's checks and its compare-and-exchange. A CPU that
 * only flushes and zeroes needs no more of the engine.
 */
export function zeroThen(k: Kernel, meanwhile: (pfn: number) => void): MemoryEncryptionEngine {
  const real = k.machine.engine;
  return {
    flush: (pfn: Pfn) => real.flush(pfn),
    zero: (pfn: Pfn, keyid: number) => {
      real.zero(pfn, keyid);
      meanwhile(pfn);
    },
  } as unknown as MemoryEncryptionEngine;
}
