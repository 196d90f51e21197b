// Survivors of the quick mutation rerun of kernel/ at d2db032 (report
// /work/mutwork/saves/chunkE/mutation.json; review
// test/mutation-review/kernel-final-e.md).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Machine } from '../../hardware/machine.js';
import { getDesign } from '../../interfaces/registry.js';
import { E } from '../../kernel/errno.js';
import { enableFastFaults } from '../../kernel/fastfault.js';
import { ALL_FEATURES, Kernel, type Task } from '../../kernel/kernel.js';
import { PTE_ACCESSED, PTE_SWAP } from '../../kernel/pgtable.js';
import { MMAP_LEGACY_BASE } from '../../kernel/mmap.js';
import { NR } from '../../kernel/syscalls.js';
import {
  MADV_GUARD_INSTALL,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_POPULATE,
  MAP_PRIVATE,
  MAP_SHARED,
  MMAP_BASE,
  MMAP_MIN_ADDR,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
} from '../../kernel/uapi.js';
import { BASE, PAGE, boot, fastFaultOn, mapAnon } from './util.js';

const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const mmap = (k: Kernel, t: Task, addr: number, len: number, prot: number, flags: number): number =>
  k.syscall(t, NR.mmap, addr, len, prot, flags, -1, 0);

describe('kernel.ts: configuration', () => {
  it('vm.mmap_min_addr may be 0; a negative or fractional value is refused with a message naming it', () => {
    const m = Machine.create({ profile: 'none', backend: 'openssl', memory: { nodeFrames: [16] }, nrCpus: 1 });
    const k = new Kernel(m, { features: ALL_FEATURES, pgtableSlots: 256, mmapMinAddr: 0 });
    assert.equal(k.mmapMinAddr, 0);
    k.shutdown();
    for (const bad of [-4096, -1, 4096.5, Number.NaN])
      assert.throws(
        () => new Kernel(m, { features: ALL_FEATURES, pgtableSlots: 256, mmapMinAddr: bad }),
        (e: Error) => e instanceof RangeError && e.message === `mmapMinAddr: expected an integer in [0, 140737488351232], got ${bad}`,
        String(bad),
      );
  });
});

describe('fastfault.ts: a task with guard pages', () => {
  it('no VMA of an mm with a guard page is handled on a CPU: a fault on the guard page and one beside it both trap to the kernel', () => {
    // the kernel checks guard markers (memory.ts handleMmFault); the CPU's
    // snapshot holds none, so an mm with guards publishes no fast VMA
    const { k, done } = boot({ nrCpus: 2 });
    const t = k.spawn();
    mapAnon(k, t, 4);
    assert.equal(k.syscall(t, NR.madvise, BASE + PAGE, PAGE, MADV_GUARD_INSTALL), 0);
    k.smp.setOnline(1, t.mm.id);
    k.smp.setOffline(1);
    enableFastFaults(k, t.mm);
    const ff = fastFaultOn(k, t, 1);
    assert.equal(ff.tryFault(BASE + PAGE, true), false, 'the guard page');
    assert.equal(ff.tryFault(BASE + 2 * PAGE, true), false, 'a page of the same VMA');
    assert.deepEqual([ff.handled, ff.passed], [0, 2]);
    assert.equal(k.pool.get(t.mm.pgd, BASE + PAGE), 0);
    assert.equal(t.mm.rss, 0);
    assert.equal(k.localCpu(t).store(BASE + PAGE, new Uint8Array(8), 0, 8), -E.EFAULT, 'the kernel answers SIGSEGV');
    done();
  });
});

describe('mmap.ts: placement', () => {
  it('with nothing free below MMAP_BASE, the bottom-up search takes a gap of exactly the length asked for', () => {
    // mm/vma.c unmapped_area: gap_end - gap_start >= length
    const { k, done } = boot();
    const t = k.spawn();
    assert.ok(MMAP_LEGACY_BASE < MMAP_BASE);
    assert.equal(mmap(k, t, MMAP_MIN_ADDR, MMAP_BASE - MMAP_MIN_ADDR, PROT_NONE, ANON | MAP_FIXED), MMAP_MIN_ADDR);
    assert.equal(mmap(k, t, MMAP_BASE + 2 * PAGE, PAGE, PROT_READ, ANON | MAP_FIXED), MMAP_BASE + 2 * PAGE);
    assert.equal(mmap(k, t, 0, 2 * PAGE, PROT_READ, ANON), MMAP_BASE, 'the two-page gap at MMAP_BASE');
    done();
  });

  it('a hint is rounded down to a page, and one below vm.mmap_min_addr is raised to it (round_hint_to_min)', () => {
    const { k, done } = boot();
    const t = k.spawn();
    assert.equal(mmap(k, t, BASE + 123, PAGE, PROT_READ | PROT_WRITE, ANON), BASE);
    assert.equal(mmap(k, t, BASE + 3 * PAGE - 1, PAGE, PROT_READ, ANON), BASE + 2 * PAGE);
    assert.equal(mmap(k, t, PAGE, PAGE, PROT_READ, ANON), MMAP_MIN_ADDR);
    assert.equal(mmap(k, t, MMAP_MIN_ADDR - 1, PAGE, PROT_READ, ANON), MMAP_BASE - PAGE, 'raised to the minimum, taken: the top-down search');
    assert.deepEqual(
      t.mm.vmas.vmas.map((v) => [v.start, v.end]),
      [
        [MMAP_MIN_ADDR, MMAP_MIN_ADDR + PAGE],
        [BASE, BASE + PAGE],
        [BASE + 2 * PAGE, BASE + 3 * PAGE],
        [MMAP_BASE - PAGE, MMAP_BASE],
      ],
    );
    done();
  });
});

describe('memory.ts: the reclaim clock across a zap that frees no anonymous page', () => {
  it('unmapping only file pages leaves the clock hand where reclaim left it: the next victim is the page added after it', () => {
    const { k, done } = boot({ swapSlots: 8 });
    getDesign('memfd-secret').install(k);
    const t = k.spawn({ memLimit: 2 });
    const RW = PROT_READ | PROT_WRITE;
    const swapped = (va: number): boolean => (k.pool.get(t.mm.pgd, va) & PTE_SWAP) !== 0;
    const A = BASE, B = BASE + 2 * PAGE, C = BASE + 4 * PAGE, D = BASE + 6 * PAGE;
    mapAnon(k, t, 1, A);
    assert.equal(k.localCpu(t).store(A, new Uint8Array(8).fill(1), 0, 8), 0); // A: accessed
    // Populating maps a page accessed, as x86's vm_page_prot does (pgtable.ts
    // pageProt); age() clears the bit as an earlier scan of the clock would.
    const age = (va: number): number => Atomics.and(k.pool.words, k.pool.pteIndex(t.mm.pgd, va), ~PTE_ACCESSED);
    assert.equal(mmap(k, t, B, PAGE, RW, ANON | MAP_FIXED | MAP_POPULATE), B);
    assert.ok(age(B) & PTE_ACCESSED, 'B was populated accessed'); // B: populated, then aged
    assert.deepEqual(t.mm.lru, [A, B]);
    // a memfd_secret page charged to the mm: reclaim gives A its second chance and swaps B, the last on the clock
    const fd = k.syscall(t, NR.memfd_secret, 0);
    assert.ok(fd >= 0);
    assert.equal(k.syscall(t, NR.ftruncate, fd, PAGE), 0);
    const sec = k.syscall(t, NR.mmap, 0, PAGE, RW, MAP_SHARED, fd, 0);
    assert.ok(sec > 0);
    assert.equal(k.localCpu(t).store(sec, new Uint8Array(8).fill(2), 0, 8), 0);
    assert.ok(swapped(B) && !swapped(A));
    assert.deepEqual(t.mm.lru, [A]);
    // the zap of the secret page frees no anonymous frame; closing the file uncharges it
    assert.equal(k.syscall(t, NR.munmap, sec, PAGE), 0);
    assert.equal(k.syscall(t, NR.close, fd), 0);
    assert.equal(mmap(k, t, C, PAGE, RW, ANON | MAP_FIXED | MAP_POPULATE), C); // under the limit: no reclaim
    age(C);
    assert.deepEqual(t.mm.lru, [A, C]);
    // at the limit again: the hand is at C (added where it stood), and C is not accessed
    assert.equal(mmap(k, t, D, PAGE, RW, ANON | MAP_FIXED | MAP_POPULATE), D);
    assert.ok(swapped(C), 'C is the victim');
    assert.ok(!swapped(A), 'A is not');
    assert.deepEqual(t.mm.lru, [A, D]);
    done();
  });
});
