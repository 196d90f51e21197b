// The shared areas of exited mms go to the next ones (fastfault.ts
// MmShared.create and recycle): an mm no other thread saw gives its area
// back at exit, the next spawn takes it zeroed, and the exited mm no longer
// looks at it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AREA_POOL_MAX, MM_LOCK, MM_NODE, MM_RSS, MmShared } from '../../kernel/fastfault.js';
import { BASE, PAGE, boot, mapAnon, touch } from './util.js';

describe('mm shared areas: exited mms give theirs to the next', () => {
  it('the next spawn takes an exited mm’s area, zeroed, with its own limit and node; the exited mm sees zeros and reaches no live mm', () => {
    const { k, done } = boot({ nrCpus: 3, nodeFrames: [64, 64] });
    const a = k.spawn({ memLimit: 7, node: 1 });
    mapAnon(k, a, 2);
    touch(k, a, BASE, 1);
    touch(k, a, BASE + PAGE, 2);
    const area = a.mm.shared.i32.buffer;
    assert.equal(a.mm.shared.i32[MM_RSS], 2);
    a.mm.shared.i32[MM_LOCK + 15] = 99; // a word the kernel leaves alone
    k.exit(a);
    const b = k.spawn({ memLimit: 5 });
    assert.equal(b.mm.shared.i32.buffer, area, 'the same area');
    assert.ok(b.mm.shared.i32.every((v) => v === 0), 'zeroed (node 0)');
    assert.equal(b.mm.shared.limit[0], 5);
    assert.equal(b.mm.shared.i32[MM_NODE], 0);
    assert.notEqual(a.mm.shared.i32.buffer, area, 'the exited mm looks elsewhere');
    assert.ok(a.mm.shared.i32.every((v) => v === 0));
    assert.equal(a.mm.shared.limit[0], 0);
    assert.equal(a.mm.rss, 0);
    a.mm.shared.i32[MM_RSS] = 40; // (only a kernel bug would)
    assert.equal(b.mm.shared.i32[MM_RSS], 0, 'and its writes reach no live mm');
    const c = k.spawn({ node: 1 });
    assert.notEqual(c.mm.shared.i32.buffer, area, 'one mm an area');
    assert.equal(c.mm.shared.i32[MM_NODE], 1);
    assert.equal(c.mm.shared.limit[0], Infinity);
    done();
  });

  it('an mm whose area went to another thread (a descriptor) keeps it; a pool holds AREA_POOL_MAX areas at most', () => {
    const { k, done } = boot({ nrCpus: 2 });
    const a = k.spawn();
    const area = a.mm.shared.i32.buffer;
    a.mm.shared.descriptor();
    k.exit(a);
    assert.equal(a.mm.shared.i32.buffer, area, 'still its own');
    assert.notEqual(k.spawn().mm.shared.i32.buffer, area, 'not given to the next');
    // the pool's bound: past it an mm keeps its area
    const pool: SharedArrayBuffer[] = [];
    const many = Array.from({ length: AREA_POOL_MAX + 2 }, () => MmShared.create(2, 10, 0, pool));
    const own = many.map((m) => m.i32.buffer);
    for (const m of many) m.recycle(pool);
    assert.equal(pool.length, AREA_POOL_MAX);
    assert.ok(pool.every((b, i) => b === own[i]), 'the first AREA_POOL_MAX areas, themselves');
    assert.deepEqual(
      many.map((m, i) => m.i32.buffer === own[i]),
      many.map((_, i) => i >= AREA_POOL_MAX),
    );
    done();
  });

  it('recycle gives an area once, and create takes only an area of its size', () => {
    const pool: SharedArrayBuffer[] = [];
    const s = MmShared.create(2, 10, 0, pool);
    s.recycle(pool);
    s.recycle(pool);
    assert.equal(pool.length, 1, 'once');
    const bigger = MmShared.create(3, 10, 0, pool);
    assert.notEqual(bigger.i32.buffer, pool[0]);
    assert.equal(pool.length, 0, 'an area of another size is dropped');
    assert.equal(bigger.i32.length, 16 * 4);
    const fresh = MmShared.create(2, 10, 0);
    assert.equal(fresh.i32.length, 16 * 3);
    assert.equal(fresh.limit[0], 10);
  });
});
