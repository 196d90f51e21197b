// Survivors of the quick mutation run in kernel/migrate.ts (move_pages(2)):
// the node checks, arrays of different lengths, a keyed page on hardware that
// cannot re-encrypt it, a full destination node, an address outside every
// VMA, the TLB flush of a call that moves nothing, and the flush of a moved
// keyed page's old frame.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { asPfn } from '../../hardware/types.js';
import { E } from '../../kernel/errno.js';
import type { Kernel, Task } from '../../kernel/kernel.js';
import { doMprotect } from '../../kernel/mprotect.js';
import { ptePfn } from '../../kernel/pgtable.js';
import { NR } from '../../kernel/syscalls.js';
import { addKey, BASE, boot, mapAnon, PAGE, read, touch } from './util.js';

const RW = 3;

const nodeOfPage = (k: Kernel, t: Task, va: number) => k.machine.memory.nodeOf(asPfn(ptePfn(k.pool.get(t.mm.pgd, va))));

describe('move_pages (migrate.ts)', () => {
  it('a node outside [0, nr_nodes) or not an integer is ENODEV for the call, and nothing moves', () => {
    const { k, done } = boot(); // 2 nodes
    const t = k.spawn();
    mapAnon(k, t, 1);
    touch(k, t, BASE, 3);
    for (const bad of [-1, 2, 0.5]) {
      const status = [99];
      assert.equal(k.syscall(t, NR.move_pages, 0, [BASE], [bad], status), -E.ENODEV, `node ${bad}`);
      assert.deepEqual(status, [99]);
    }
    assert.equal(nodeOfPage(k, t, BASE), 0);
    const c = k.counters.snapshot();
    assert.deepEqual([c.migrated, c.migrate_failed], [0, 0]);
    // the last node is a node
    const status: number[] = [];
    assert.equal(k.syscall(t, NR.move_pages, 0, [BASE], [1], status), 0);
    assert.deepEqual(status, [1]);
    done();
  });

  it('pages and nodes of different lengths are EINVAL, and nothing moves', () => {
    const { k, done } = boot();
    const t = k.spawn();
    mapAnon(k, t, 2);
    touch(k, t, BASE, 1);
    touch(k, t, BASE + PAGE, 2);
    const status: number[] = [];
    assert.equal(k.syscall(t, NR.move_pages, 0, [BASE, BASE + PAGE], [1], status), -E.EINVAL);
    assert.deepEqual(status, []);
    assert.equal(nodeOfPage(k, t, BASE), 0);
    assert.equal(k.counters.snapshot().migrated, 0);
    done();
  });

  it('a keyed page is EBUSY where the hardware cannot re-encrypt it, even when the kernel did not pin it (SGX: swap by EWB, migrate pinned)', () => {
    const { k, done } = boot({ profile: 'sgx' });
    const t = k.spawn();
    mapAnon(k, t, 2);
    const key = addKey(k, t);
    assert.equal(doMprotect(k, t, BASE, PAGE, RW, key), 0);
    touch(k, t, BASE, 1);
    touch(k, t, BASE + PAGE, 2); // KeyID 0: movable
    const status: number[] = [];
    assert.equal(k.syscall(t, NR.move_pages, 0, [BASE, BASE + PAGE], [1, 1], status), 0);
    assert.deepEqual(status, [-E.EBUSY, 1]);
    assert.equal(nodeOfPage(k, t, BASE), 0);
    const c = k.counters.snapshot();
    assert.deepEqual([c.migrated, c.migrate_failed], [1, 1]);
    assert.equal(read(k, t, BASE), 1);
    done();
  });

  it('a full destination node: that page answers ENOMEM and stays, the others move', () => {
    const { k, done } = boot({ nodeFrames: [64, 8] });
    const t = k.spawn();
    mapAnon(k, t, 2);
    touch(k, t, BASE, 1);
    touch(k, t, BASE + PAGE, 2);
    // take every free frame of node 1 (no fallback to node 0)
    while (k.alloc.alloc(1, true) >= 0);
    const status: number[] = [];
    assert.equal(k.syscall(t, NR.move_pages, 0, [BASE, BASE + PAGE], [1, 0], status), 0);
    assert.deepEqual(status, [-E.ENOMEM, 0]);
    assert.equal(nodeOfPage(k, t, BASE), 0);
    const c = k.counters.snapshot();
    assert.deepEqual([c.migrated, c.migrate_failed], [0, 1]);
    assert.equal(read(k, t, BASE), 1);
    done();
  });

  it("an address outside every VMA moves nothing, not even what another mm's page tables hold at the same table index", () => {
    const { k, done } = boot();
    const a = k.spawn();
    const b = k.spawn(); // b's pgd follows a's in the pool: a's top level ends where b's begins
    mapAnon(k, b, 1);
    touch(k, b, BASE, 9);
    const beyond = 2 ** 47 + BASE; // above TASK_SIZE: no VMA of a can hold it
    const status: number[] = [];
    assert.equal(k.syscall(a, NR.move_pages, 0, [beyond], [1], status), 0);
    // Linux answers EFAULT for an unmapped address (add_page_for_migration);
    // this model answers ENOENT (reported). Either way the page is not moved.
    assert.ok(status[0] === -E.EFAULT || status[0] === -E.ENOENT, `status ${status[0]}`);
    assert.equal(nodeOfPage(k, b, BASE), 0);
    assert.equal(k.counters.snapshot().migrated, 0);
    assert.equal(read(k, b, BASE), 9);
    done();
  });

  it('a call that moves nothing flushes no TLB', () => {
    const { k, done } = boot();
    const t = k.spawn();
    mapAnon(k, t, 2);
    const cpu = k.localCpu(t); // one CPU throughout: localCpu makes a new one per call
    const buf = new Uint8Array(8).fill(4);
    assert.equal(cpu.store(BASE, buf, 0, 8), 0);
    assert.equal(cpu.load(BASE, buf, 0, 8), 0);
    const misses = cpu.tlbMisses;
    const hits = cpu.tlbHits;
    const status: number[] = [];
    // one page already on node 0, one not present
    assert.equal(k.syscall(t, NR.move_pages, 0, [BASE, BASE + PAGE], [0, 1], status), 0);
    assert.deepEqual(status, [0, -E.ENOENT]);
    buf.fill(0);
    assert.equal(cpu.load(BASE, buf, 0, 8), 0);
    assert.equal(buf[0], 4);
    assert.deepEqual([cpu.tlbMisses, cpu.tlbHits], [misses, hits + 1], 'the translation stayed in the TLB');
    done();
  });

  it("the old frame of a moved keyed page is flushed (no keyed line left cached); a KeyID-0 page's is not", () => {
    const { k, done } = boot();
    const t = k.spawn();
    mapAnon(k, t, 2);
    const key = addKey(k, t);
    assert.equal(doMprotect(k, t, BASE, PAGE, RW, key), 0);
    touch(k, t, BASE, 1);
    touch(k, t, BASE + PAGE, 2);
    const keyedOld = ptePfn(k.pool.get(t.mm.pgd, BASE));
    const plainOld = ptePfn(k.pool.get(t.mm.pgd, BASE + PAGE));
    const lines = () => k.engine.counters.get('clflush_lines');
    // KeyID 0 alone: nothing is flushed
    let before = lines();
    assert.equal(k.syscall(t, NR.move_pages, 0, [BASE + PAGE], [1], []), 0);
    assert.equal(lines(), before);
    assert.equal(nodeOfPage(k, t, BASE + PAGE), 1);
    // the keyed page: its old frame is flushed, one page of lines
    before = lines();
    assert.equal(k.syscall(t, NR.move_pages, 0, [BASE], [1], []), 0);
    assert.equal(lines() - before, 64);
    assert.equal(k.engine.cachedAlias(asPfn(keyedOld)), -1);
    assert.notEqual(plainOld, keyedOld);
    assert.equal(read(k, t, BASE), 1);
    assert.equal(read(k, t, BASE + PAGE), 2);
    done();
  });
});
