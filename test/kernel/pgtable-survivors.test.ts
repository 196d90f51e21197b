// Survivors of the quick mutation run in kernel/pgtable.ts, on a PageTablePool
// of its own (no kernel): ptePresent on present, swap and migration entries,
// the pool size check of PageTablePool.create and its message, pteIndex's -2
// when the pool has no slot for a middle table, and the reuse (zeroed) of the
// table slots freeTables gives back. The smallest pool, 35 slots, is slot 0
// (never used), 32 slots of one top-level table, one middle and one leaf.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PTE_MIGRATION, PTE_PRESENT, PTE_SWAP, PTE_WRITE, PageTablePool, mkPte, ptePresent } from '../../kernel/pgtable.js';

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
