// Which free frames a munmap hands to which CPU (kernel/memory.ts zapRange
// and freeByCpu): frames that several worker CPUs took go back on the free
// stack so that each CPU's refill (fastfault.ts refillCpus) gets its own;
// frames of one CPU, the kernel's among them, go back in the order they were
// zapped, as before. Faults are driven on this thread with FastFault, as a
// worker CPU makes them, so every frame number is exact.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type FastFault, enableFastFaults } from '../../kernel/fastfault.js';
import type { Kernel, Task } from '../../kernel/kernel.js';
import { MemMap, PCP_BATCH } from '../../kernel/page_alloc.js';
import { ptePfn } from '../../kernel/pgtable.js';
import { NR } from '../../kernel/syscalls.js';
import { BASE, PAGE, boot, fastFaultOn, mapAnon, touch } from './util.js';

const PAGES = 16;

/** A task with PAGES anonymous pages mapped and worker CPUs 1..cpus running it (not online: no IPI waits for them), each with its fast-fault handler. */
function setup(cpus: number) {
  const b = boot({ nrCpus: cpus + 1, nodeFrames: [200, 64] });
  const t = b.k.spawn();
  mapAnon(b.k, t, PAGES);
  for (let c = 1; c <= cpus; c++) {
    b.k.smp.setOnline(c, t.mm.id);
    b.k.smp.setOffline(c);
  }
  enableFastFaults(b.k, t.mm);
  const ff = [null, ...Array.from({ length: cpus }, (_, i) => fastFaultOn(b.k, t, i + 1))] as (FastFault | null)[];
  return { ...b, t, ff };
}

const pfnOf = (k: Kernel, t: Task, page: number): number => ptePfn(k.pool.get(t.mm.pgd, BASE + page * PAGE));

/** Fault page in on `cpu` (0: the kernel, through its own CPU); returns its frame. */
function fault(k: Kernel, t: Task, ff: (FastFault | null)[], cpu: number, page: number): number {
  if (cpu === 0) touch(k, t, BASE + page * PAGE, 1);
  else assert.equal(ff[cpu]!.tryFault(BASE + page * PAGE, true), true, `CPU ${cpu}, page ${page}`);
  const pfn = pfnOf(k, t, page);
  assert.equal(k.alloc.map.cpu[pfn], cpu, `page ${page}: the frame's CPU`);
  return pfn;
}

/** The first n frames on cpu's list, top first (taken off it). */
function top(k: Kernel, cpu: number, n: number): number[] {
  return Array.from({ length: n }, () => k.alloc.map.pcpAlloc(cpu, 0));
}

describe('munmap: which frames go back to which CPU', () => {
  it('two CPUs: each CPU\'s refill gets back the frames it took, its own on top of its list', () => {
    const { k, t, ff, done } = setup(2);
    const pfn: number[] = [];
    for (let p = 0; p < PAGES; p++) pfn[p] = fault(k, t, ff, 1 + (p % 2), p);
    assert.deepEqual([k.alloc.map.pcpCount(1), k.alloc.map.pcpCount(2)], [PCP_BATCH - PAGES / 2, PCP_BATCH - PAGES / 2]);
    assert.equal(k.syscall(t, NR.munmap, BASE, PAGES * PAGE), 0);
    // topped up to PCP_BATCH again, CPU 1 first: each from the top of the stack, its own last freed
    assert.deepEqual([k.alloc.map.pcpCount(1), k.alloc.map.pcpCount(2)], [PCP_BATCH, PCP_BATCH]);
    const mine = (cpu: number) => pfn.filter((_, p) => 1 + (p % 2) === cpu).reverse(); // the last page's on top
    assert.deepEqual(top(k, 1, PAGES / 2), mine(1));
    assert.deepEqual(top(k, 2, PAGES / 2), mine(2));
    done();
  });

  it('two CPUs and the kernel: the kernel\'s frames go under the CPUs\', for the next allocation after the refills', () => {
    const { k, t, ff, done } = setup(2);
    const pfn: number[] = [];
    pfn[0] = fault(k, t, ff, 0, 0);
    pfn[1] = fault(k, t, ff, 0, 1);
    for (let p = 2; p < PAGES; p++) pfn[p] = fault(k, t, ff, 1 + (p % 2), p);
    assert.equal(k.syscall(t, NR.munmap, BASE, PAGES * PAGE), 0);
    const n = PAGES / 2 - 1;
    assert.deepEqual(top(k, 1, n), pfn.filter((_, p) => p >= 2 && p % 2 === 0).reverse());
    assert.deepEqual(top(k, 2, n), pfn.filter((_, p) => p >= 2 && p % 2 === 1).reverse());
    // the kernel's own two are next on the stack, in the order zapped: page 1's on top
    assert.deepEqual([k.alloc.alloc(0), k.alloc.alloc(0)], [pfn[1], pfn[0]]);
    done();
  });

  it('one worker CPU, with the kernel\'s faults among its own: the frames go back in the order zapped', () => {
    const { k, t, ff, done } = setup(2);
    const pfn: number[] = [];
    // the kernel's first (its entries top CPU 1's list up), in the middle of the range
    for (const p of [3, 10]) pfn[p] = fault(k, t, ff, 0, p);
    for (let p = 0; p < PAGES; p++) if (p !== 3 && p !== 10) pfn[p] = fault(k, t, ff, 1, p);
    assert.equal(k.syscall(t, NR.munmap, BASE, PAGES * PAGE), 0);
    // CPU 1 took 14 of its list and gets 14 back, the kernel's among them; CPU 2 took none and gets none
    assert.deepEqual(top(k, 1, PAGES - 2), [...pfn].reverse().slice(0, PAGES - 2));
    assert.equal(k.alloc.map.pcpCount(2), PCP_BATCH);
    assert.deepEqual([k.alloc.alloc(0), k.alloc.alloc(0)], [pfn[1], pfn[0]]);
    done();
  });

  it('a frame\'s CPU is a byte: a map of more than 256 CPUs is refused', () => {
    assert.equal(MemMap.create(4, 256).cpu.length, 4);
    assert.throws(() => MemMap.create(4, 257), { name: 'RangeError', message: 'nrCpus: at most 256 (a frame\'s CPU is a byte), got 257' });
  });

  it('CPUs taking turns (1, 2, 1, ...): still several, each gets its own back', () => {
    const { k, t, ff, done } = setup(2);
    const pfn: number[] = [];
    // pages 0-5 on CPU 1, then 6-7 on CPU 2, then 8-15 on CPU 1 again
    const on = (p: number) => (p >= 6 && p < 8 ? 2 : 1);
    for (let p = 0; p < PAGES; p++) pfn[p] = fault(k, t, ff, on(p), p);
    assert.equal(k.syscall(t, NR.munmap, BASE, PAGES * PAGE), 0);
    assert.deepEqual(top(k, 1, PAGES - 2), pfn.filter((_, p) => on(p) === 1).reverse());
    assert.deepEqual(top(k, 2, 2), [pfn[7], pfn[6]]);
    done();
  });
});
