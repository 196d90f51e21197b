// Walks over sparse ranges skip missing tables whole (O(tables), not
// O(pages)), and still reach every PTE that is there: the first and last page
// of a table, pages in tables 4 GiB apart.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PTE_PRESENT, PTE_WRITE } from '../../kernel/pgtable.js';
import { NR } from '../../kernel/syscalls.js';
import { MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_NONE, PROT_READ, PROT_WRITE } from '../../kernel/uapi.js';
import { boot } from './util.js';

const P = 4096;
const LEAF = 1024 * P; // 4 MiB: one leaf table
const MID = 1024 * LEAF; // 4 GiB: one middle table

describe('sparse page-table walks', () => {
  it('nextSlot skips a missing middle table to the next 4 GiB, a missing leaf to the next 4 MiB', () => {
    const { k, done } = boot();
    const pool = k.pool;
    const pgd = k.spawn().mm.pgd;
    const base = 8 * MID;
    assert.equal(pool.nextSlot(pgd, base + 5 * P), base + MID, 'no middle table: the whole 4 GiB');
    assert.ok(pool.pteIndex(pgd, base + 3 * LEAF + 7 * P, true) >= 0);
    assert.equal(pool.nextSlot(pgd, base + 5 * P), base + LEAF, 'a middle table but no leaf: the next 4 MiB');
    assert.ok(pool.pteIndex(pgd, base + 3 * LEAF) >= 0, 'the leaf made covers its whole 4 MiB');
    assert.equal(pool.pteIndex(pgd, base + 4 * LEAF), -1);
    done();
  });

  it('mprotect and munmap over 64 GiB reach exactly the pages faulted in, in tables far apart', () => {
    const { k, done } = boot({ nodeFrames: [64, 64] });
    const t = k.spawn();
    const sys = (nr: number, ...a: (number | string)[]) => k.syscall(t, nr, ...a);
    const start = 16 * MID;
    const len = 16 * MID; // 64 GiB, PROT_NONE: nothing charged
    assert.equal(sys(NR.mmap, start, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), start);
    assert.equal(sys(NR.mprotect, start, len, PROT_READ | PROT_WRITE), 0);
    const cpu = k.localCpu(t);
    const pages = [start, start + LEAF - P, start + LEAF, start + 5 * MID + 17 * P, start + len - P];
    for (const va of pages) assert.equal(cpu.store(va, new Uint8Array(P).fill(1), 0), 0);
    assert.equal(sys(NR.mprotect, start, len, PROT_READ), 0);
    for (const va of pages) {
      const pte = k.pool.get(t.mm.pgd, va);
      assert.equal(pte & PTE_PRESENT, PTE_PRESENT, `0x${va.toString(16)} still mapped`);
      assert.equal(pte & PTE_WRITE, 0, `0x${va.toString(16)} write-protected`);
    }
    const zapped = k.counters.snapshot().pages_zapped;
    assert.equal(sys(NR.munmap, start, len), 0);
    assert.equal(k.counters.snapshot().pages_zapped - zapped, pages.length);
    for (const va of pages) assert.equal(k.pool.get(t.mm.pgd, va), 0);
    done();
  });
});

describe('munmap walks each leaf table\'s PTEs in a row', () => {
  it('frees every frame of a range of 300 pages across a leaf boundary, and not one page past its end', () => {
    const { k, done } = boot({ nodeFrames: [600, 64] });
    const t = k.spawn();
    const sys = (nr: number, ...a: (number | string)[]) => k.syscall(t, nr, ...a);
    const start = 16 * MID + LEAF - 100 * P; // 100 pages in one leaf, the rest in the next
    assert.equal(sys(NR.mmap, start, 320 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), start);
    const cpu = k.localCpu(t);
    const free = k.alloc.freeFrames();
    for (let i = 0; i < 320; i++) assert.equal(cpu.store(start + i * P, new Uint8Array(P).fill(i & 0xff), 0), 0);
    const zapped = k.counters.snapshot().pages_zapped;
    assert.equal(sys(NR.munmap, start, 300 * P), 0);
    assert.equal(k.counters.snapshot().pages_zapped - zapped, 300);
    assert.equal(k.alloc.freeFrames(), free - 20, 'the 300 frames back, the last 20 pages still held');
    for (let i = 0; i < 320; i++) assert.equal(k.pool.get(t.mm.pgd, start + i * P) !== 0, i >= 300, `page ${i}`);
    const got = new Uint8Array(P);
    assert.equal(cpu.load(start + 300 * P, got), 0);
    assert.equal(got[0], 300 & 0xff);
    done();
  });
});

describe('page-table memory across tasks', () => {
  it('an exited task\'s top-level table goes to the next task: spawn and exit without end in a small pool', () => {
    const { k, done } = boot();
    const used = k.pool.used;
    for (let i = 0; i < 200; i++) {
      const t = k.spawn();
      assert.equal(k.syscall(t, NR.mmap, 0x200000000, 2 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), 0x200000000);
      assert.equal(k.localCpu(t).store(0x200000000, new Uint8Array(P).fill(i), 0), 0);
      k.exit(t);
      assert.equal(k.pool.used, used, `after task ${i}: no table kept`);
    }
    done();
  });
});
