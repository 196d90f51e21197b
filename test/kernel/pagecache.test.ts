// A file's page cache index in the shared table pool (kernel/pagecache.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CLAIM, INDEX_PAGES, PageCache } from '../../kernel/pagecache.js';
import { PageTablePool } from '../../kernel/pgtable.js';

/** A pool of `slots` tables (32 of them a top-level table's, never used here). */
const pool = (slots = 40) => PageTablePool.create(slots);

describe('page cache index', () => {
  it('pages go in and out by offset; each offset holds one page; a deleted one can be filled again', () => {
    const p = pool();
    const pc = new PageCache(p);
    assert.equal(pc.get(5), undefined);
    assert.equal(pc.dir, 0, 'no tables until a page goes in');
    pc.set(5, 700).set(0, 0).set(2047, 9);
    assert.deepEqual([pc.get(5), pc.get(0), pc.get(2047), pc.get(6)], [700, 0, 9, undefined], 'frame 0 is a page too');
    assert.equal(pc.has(0), true);
    assert.equal(pc.size, 3);
    assert.throws(() => pc.set(5, 701), /offset 5 already holds frame 700/);
    assert.equal(pc.insert(5, 701), 700, 'insert gives the page that is there');
    assert.equal(pc.insert(6, 702), 702);
    assert.equal(pc.delete(5), true);
    assert.equal(pc.delete(5), false);
    assert.equal(pc.insert(5, 703), 703);
    assert.deepEqual(pc.entries(), [[0, 0], [5, 703], [6, 702], [2047, 9]]);
    assert.equal(p.used, 3, 'a directory and two leaves');
  });

  it('the index lies in the pool: a leaf word is the frame plus one, found through the directory', () => {
    const p = pool();
    const pc = new PageCache(p);
    pc.set(1030, 77);
    const leaf = p.words[pc.dir * 1024 + 1];
    assert.notEqual(leaf, 0);
    assert.equal(p.words[leaf * 1024 + 6], 78);
    assert.equal(p.words[pc.dir * 1024], 0, 'no leaf for offsets 0..1023');
  });

  it('offsets past the index, and any when the pool is out of tables, are kept beside it; leaves made later take them in', () => {
    const p = pool(36); // slot 0, a top-level table's 32 slots, and 3 more
    p.allocPgd();
    const other = new PageCache(p);
    other.set(0, 100); // a directory and a leaf: one table left
    const pc = new PageCache(p);
    pc.set(INDEX_PAGES, 1).set(3, 2).set(1024 + 3, 3);
    assert.deepEqual([pc.get(INDEX_PAGES), pc.get(3), pc.get(1027)], [1, 2, 3]);
    assert.equal(pc.claimant(), 0, 'the first offset past the index is no leaf of the directory’s claim word');
    assert.notEqual(pc.dir, 0, 'the last table became the directory');
    assert.deepEqual([p.words[pc.dir * 1024], p.words[pc.dir * 1024 + 1]], [0, 0], 'and no leaf was left for 3 or 1027');
    other.clear(); // two tables come free
    assert.equal(pc.build(0, 2048, 16), 2);
    const leaf0 = p.words[pc.dir * 1024], leaf1 = p.words[pc.dir * 1024 + 1];
    assert.deepEqual([p.words[leaf0 * 1024 + 3], p.words[leaf1 * 1024 + 3]], [3, 4], 'frames 2 and 3, plus one, moved into the leaves');
    assert.deepEqual(pc.entries(), [[3, 2], [1027, 3], [INDEX_PAGES, 1]]);
  });

  it('build makes the tables of a range, within its budget, and says how many it made', () => {
    const p = pool();
    const pc = new PageCache(p);
    assert.equal(pc.build(0, 3000, 16), 4, 'a directory and three leaves');
    assert.equal(pc.build(0, 3000, 16), 0, 'all there');
    assert.equal(pc.build(3000, 6000, 1), 1, 'one, as the budget says');
    assert.equal(pc.build(INDEX_PAGES, INDEX_PAGES + 5, 16), 0, 'none past the index');
    const q = new PageCache(p);
    assert.equal(q.build(2000, 2000, 16), 0, 'nor for an empty range');
    assert.equal(q.dir, 0);
  });

  it('the claim: the first mm to claim the file has it, before and after the directory exists', () => {
    const p = pool();
    const pc = new PageCache(p);
    assert.equal(pc.claimant(), 0);
    assert.equal(pc.claim(7), true);
    assert.equal(pc.claim(8), false);
    assert.equal(pc.claim(7), true);
    pc.set(0, 1);
    assert.equal(p.words[pc.dir * 1024 + CLAIM], 7, 'the directory holds the claim for the CPUs');
    const q = new PageCache(p);
    q.build(0, 1, 16);
    Atomics.store(p.words, q.dir * 1024 + CLAIM, 9); // a CPU's claim
    assert.equal(q.claimant(), 9);
    assert.equal(q.claim(7), false);
    assert.equal(q.claim(9), true);
  });

  it('clear gives every table back to the pool; forEach may delete the page it is given', () => {
    const p = pool();
    const pc = new PageCache(p);
    for (let i = 0; i < 3000; i += 500) pc.set(i, i);
    pc.set(INDEX_PAGES + 1, 42);
    const used = p.used;
    assert.equal(used, 4);
    const seen: number[] = [];
    pc.forEach((pgoff, pfn) => {
      seen.push(pfn);
      if (pgoff % 1000 === 0) pc.delete(pgoff);
    });
    assert.deepEqual(seen, [0, 500, 1000, 1500, 2000, 2500, 42]);
    assert.deepEqual([...pc.values()], [500, 1500, 2500, 42]);
    pc.clear();
    assert.equal(p.used, 0);
    assert.equal(pc.size, 0);
    assert.equal(pc.dir, 0);
  });
});
