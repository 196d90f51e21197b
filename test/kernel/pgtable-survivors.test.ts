// Survivors of the quick mutation run in kernel/pgtable.ts, on a PageTablePool
// of its own (no kernel): ptePresent on present, swap and migration entries,
// the pool size check of PageTablePool.create and its message, pteIndex's -2
// when the pool has no slot for a middle table, and the reuse (zeroed) of the
// table slots freeTables gives back. The smallest pool, 35 slots, is slot 0
// (never used), 32 slots of one top-level table, one middle and one leaf.
// Then freeTables over a whole middle table (a leaf at any index, a middle
// table whose leaf did not fit, in the pool's last slot), and, on a kernel,
// flushTlbMm's flush of only the local CPUs that run the mm (kernel/tlb.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PTE_MIGRATION, PTE_PRESENT, PTE_SWAP, PTE_WRITE, PageTablePool, mkPte, ptePresent } from '../../kernel/pgtable.js';
import { flushTlbMm } from '../../kernel/tlb.js';
import { BASE, boot, mapAnon } from './util.js';

const P = 4096;
const LEAF = 1024 * P; // 4 MiB: one leaf table
const MID = 1024 * LEAF; // 4 GiB: one middle table

describe('pgtable.ts: ptePresent', () => {
  it('ptePresent is true for a present PTE (top pfn included) and false for none, swap and migration entries', () => {
    assert.equal(ptePresent(mkPte(5, 3, PTE_PRESENT | PTE_WRITE)), true);
    assert.equal(ptePresent(mkPte(0xffff, 0, PTE_PRESENT)), true);
    assert.equal(ptePresent(0), false);
    assert.equal(ptePresent(mkPte(9, 0, PTE_SWAP)), false);
    assert.equal(ptePresent(mkPte(9, 1, PTE_MIGRATION | PTE_WRITE)), false);
  });
});

describe('pgtable.ts: PageTablePool', () => {
  it('create wants an integer of at least 35 slots and says so', () => {
    assert.throws(() => PageTablePool.create(34), { name: 'RangeError', message: 'slots: expected an integer >= 35, got 34' });
    assert.throws(() => PageTablePool.create(35.5), { name: 'RangeError', message: 'slots: expected an integer >= 35, got 35.5' });
    assert.throws(() => PageTablePool.create(0), { name: 'RangeError', message: 'slots: expected an integer >= 35, got 0' });
    const pool = PageTablePool.create(35);
    assert.equal(pool.slots, 35);
    assert.equal(pool.words.length, 35 * 1024);
  });

  it('the first top-level table is slot 1; a PTE needs a middle and a leaf table; -2 when no slot is left for a middle table', () => {
    const pool = PageTablePool.create(35);
    const pgd = pool.allocPgd();
    assert.equal(pgd, 1);
    assert.equal(pool.used, 32);
    assert.equal(pool.pteIndex(pgd, P), -1, 'no table yet, none made without alloc');
    assert.equal(pool.pteIndex(pgd, P, true), 34 * 1024 + 1, 'middle table in slot 33, leaf in slot 34');
    assert.equal(pool.used, 34);
    assert.equal(pool.pteIndex(pgd, 2 * MID + P, true), -2, 'another 4 GiB needs another middle table');
    assert.equal(pool.pteIndex(pgd, LEAF + P, true), -2, 'another 4 MiB needs another leaf');
    assert.equal(pool.pteIndex(pgd, 2 * MID + P), -1);
    assert.equal(pool.allocPgd(), -1, 'no room for a second top-level table');
    assert.equal(pool.used, 34);
  });

  it('the slots freeTables gives back are reused, zeroed: a full pool maps another address after a task\'s tables are freed', () => {
    const pool = PageTablePool.create(35);
    const pgd = pool.allocPgd();
    const i = pool.pteIndex(pgd, P, true);
    pool.words[i] = mkPte(7, 0, PTE_PRESENT | PTE_WRITE);
    assert.equal(pool.get(pgd, P), mkPte(7, 0, PTE_PRESENT | PTE_WRITE));
    pool.words[i] = 0; // the PTEs are cleared before the tables are freed
    pool.words[i + 1] = mkPte(8, 0, PTE_PRESENT); // a stale word left in the leaf
    pool.freeTables(pgd);
    assert.equal(pool.used, 0);
    const again = pool.allocPgd();
    assert.equal(again, pgd, 'the exited task\'s top-level table');
    assert.equal(pool.get(again, P), 0, 'its entries were cleared');
    const j = pool.pteIndex(again, 2 * MID + P, true);
    assert.ok(j >= 0, `a middle and a leaf table from the freed slots (got ${j})`);
    assert.equal(pool.used, 34);
    assert.equal(pool.get(again, 2 * MID + P), 0);
    assert.equal(pool.get(again, 2 * MID + 2 * P), 0, 'the reused leaf was zeroed');
  });

  it('a top-level table is never made of freed single slots: with none of its own free it takes 32 fresh slots', () => {
    const pool = PageTablePool.create(67);
    const a = pool.allocPgd();
    assert.ok(pool.pteIndex(a, P, true) >= 0); // middle table slot 33, leaf slot 34
    pool.freeTables(a);
    assert.equal(pool.allocPgd(), a);
    const b = pool.allocPgd();
    assert.equal(b, 35, 'slots 35-66, not the freed middle or leaf slot');
    assert.equal(pool.used, 64);
    assert.equal(pool.pteIndex(b, P, true), 34 * 1024 + 1, 'the freed slots serve as its middle and leaf tables');
    assert.equal(pool.used, 66);
  });
});

describe('pgtable.ts: freeTables over a whole middle table', () => {
  it('freeTables gives back the leaf tables at every index of a middle table, not only the first', () => {
    const pool = PageTablePool.create(37);
    const pgd = pool.allocPgd();
    // one middle table (slot 33) with leaves at its indexes 5 and 1023 (slots 34 and 35)
    assert.equal(pool.pteIndex(pgd, 5 * LEAF + P, true), 34 * 1024 + 1);
    assert.equal(pool.pteIndex(pgd, 1023 * LEAF, true), 35 * 1024);
    assert.equal(pool.used, 35);
    pool.freeTables(pgd);
    assert.equal(pool.used, 0, 'the top-level table, the middle table and both leaves are free');
    // all four single slots (the three freed and the never-used slot 36) serve another task
    const again = pool.allocPgd();
    assert.ok(pool.pteIndex(again, 2 * MID, true) >= 0);
    assert.ok(pool.pteIndex(again, 4 * MID, true) >= 0, 'two middle and two leaf tables fit');
    assert.equal(pool.used, 36);
  });

  it('freeTables gives back a middle table left without a leaf (the leaf did not fit), in the pool\'s last slot', () => {
    const pool = PageTablePool.create(36);
    const pgd = pool.allocPgd();
    assert.equal(pool.pteIndex(pgd, P, true), 34 * 1024 + 1, 'middle table in slot 33, leaf in slot 34');
    assert.equal(pool.pteIndex(pgd, 2 * MID + P, true), -2, 'a middle table in slot 35, the last; no slot for its leaf');
    assert.equal(pool.used, 35);
    pool.freeTables(pgd);
    assert.equal(pool.used, 0);
    const again = pool.allocPgd();
    assert.equal(again, pgd);
    // freed in the order leaf 34, middle 33, middle 35; taken last freed first
    assert.equal(pool.pteIndex(again, 2 * MID + P, true), 33 * 1024 + 1, 'middle table in slot 35, leaf in slot 33');
    assert.equal(pool.pteIndex(again, P, true), -2, 'slot 34 as a middle table, and nothing more');
    assert.equal(pool.used, 35);
  });
});

describe('pgtable.ts: freeTables frees the tables its pgd made, and only those', () => {
  it('two tasks\' tables at the lowest and the highest top-level entry: freeing one gives back its own and keeps the other\'s mapped', () => {
    const pool = PageTablePool.create(2 * 32 + 1 + 4 * 2);
    const a = pool.allocPgd();
    const b = pool.allocPgd();
    const TOP = 2 ** 47 - P; // the last page a 47-bit user address reaches: top-level entry 32767
    for (const pgd of [a, b])
      for (const va of [P, TOP]) pool.words[pool.pteIndex(pgd, va, true)] = mkPte(pgd, 0, PTE_PRESENT);
    assert.equal(pool.used, 2 * 32 + 8);
    for (const va of [P, TOP]) pool.words[pool.pteIndex(a, va)] = 0; // exit cleared a's PTEs
    pool.freeTables(a);
    assert.equal(pool.used, 32 + 4, 'a\'s top-level table, both middle tables and both leaves are free');
    assert.equal(pool.get(a, TOP), 0);
    assert.equal(pool.get(b, P), mkPte(b, 0, PTE_PRESENT), 'b keeps its low mapping');
    assert.equal(pool.get(b, TOP), mkPte(b, 0, PTE_PRESENT), 'b keeps its high mapping');
    const c = pool.allocPgd();
    assert.equal(c, a);
    assert.equal(pool.get(c, TOP), 0, 'the reused top-level table has no entry left at 32767');
    for (const va of [P, TOP]) pool.words[pool.pteIndex(b, va)] = 0;
    pool.freeTables(b);
    assert.equal(pool.used, 32, 'only c\'s top-level table');
    pool.freeTables(c);
    assert.equal(pool.used, 0, 'a pgd that never made a table frees just itself');
  });
});

describe('tlb.ts: flushTlbMm', () => {
  it('flushes the TLB of the local CPUs that run the mm and keeps the translations of a CPU running another mm', () => {
    const { k, done } = boot();
    const a = k.spawn();
    const b = k.spawn();
    mapAnon(k, a, 1);
    mapAnon(k, b, 1);
    const cpuA = k.localCpu(a);
    const cpuB = k.localCpu(b);
    const buf = new Uint8Array(8).fill(7);
    for (const cpu of [cpuA, cpuB]) {
      assert.equal(cpu.store(BASE, buf, 0, 8), 0);
      assert.equal(cpu.load(BASE, buf, 0, 8), 0, 'the translation is in the TLB now');
    }
    const before = [cpuA.tlbMisses, cpuA.tlbHits, cpuB.tlbMisses, cpuB.tlbHits];
    flushTlbMm(k, a.mm);
    assert.equal(cpuA.load(BASE, buf, 0, 8), 0);
    assert.equal(cpuB.load(BASE, buf, 0, 8), 0);
    assert.deepEqual(
      [cpuA.tlbMisses, cpuA.tlbHits, cpuB.tlbMisses, cpuB.tlbHits],
      [before[0] + 1, before[1], before[2], before[3] + 1],
      'a\'s CPU walks the page table again; b\'s CPU hits its TLB',
    );
    assert.equal(k.counters.get('tlb_shootdowns'), 0, 'no CPU on another thread runs a: no IPI');
    done();
  });
});
