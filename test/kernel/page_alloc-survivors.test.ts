// Survivors of the quick mutation run in kernel/page_alloc.ts: the frame
// allocator and struct page driven directly on a small PhysicalMemory (no
// kernel), so that every frame number is exact. Covers the per-CPU list lock
// (taken by a CPU popping a frame while another party holds it), what
// pcpAlloc and pcpUndo leave in struct page and in which order frames come
// back, freeFrames per node with per-CPU lists, alloc's drain of a node's
// lists and its strict mode, release's double-free check and the pin count,
// refillPcp's top-up and its drain of another node's list, drainPcps per node
// and for all nodes, and forEachFree over the stacks and every CPU's list.
// The lock contention is set up by hand: a node:test mock of
// Atomics.compareExchange plays the holder that lets go after a few spins.
import assert from 'node:assert/strict';
import { afterEach, describe, it, mock } from 'node:test';
import { PhysicalMemory } from '../../hardware/memory.js';
import { PCP_BATCH, PG_ALLOCATED, PG_ANON, PG_DAX, PG_UNEVICTABLE, PageAllocator } from '../../kernel/page_alloc.js';

/** An allocator on fresh memory: nodes of the given sizes (pfns in order), then daxFrames of DAX. */
function make(nodeFrames: number[], nrCpus = 1, daxFrames = 0): PageAllocator {
  return new PageAllocator(PhysicalMemory.create({ nodeFrames, daxFrames }), nrCpus);
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

/** The frames on cpu's list, top first, taken off with pcpAlloc (the list is empty afterwards). */
function popAll(a: PageAllocator, cpu: number, node: number): number[] {
  const out: number[] = [];
  for (let p = a.map.pcpAlloc(cpu, node); p >= 0; p = a.map.pcpAlloc(cpu, node)) out.push(p);
  return out;
}

describe('page_alloc.ts: struct page of a new allocator', () => {
  it('every frame starts with no owner mm; DAX frames are flagged PG_DAX, RAM frames carry no flag', () => {
    const a = make([6, 4], 1, 3);
    assert.deepEqual(Array.from(a.ownerMm), new Array(13).fill(-1));
    assert.deepEqual(Array.from(a.flags), [...new Array(10).fill(0), PG_DAX, PG_DAX, PG_DAX]);
    assert.equal(a.freeFrames(), 10, 'DAX frames are not the allocator\'s');
  });
});

describe('page_alloc.ts: alloc, release and pin', () => {
  it('alloc hands out the lowest free frame of the node, allocated, KeyID 0 and no owner', () => {
    const a = make([4, 4]);
    const p = a.alloc(1);
    assert.equal(p, 4);
    assert.equal(a.flags[p], PG_ALLOCATED);
    assert.equal(a.keyid[p], 0);
    assert.equal(a.ownerMm[p], -1);
  });

  it('a released frame is free again with no owner, flags or KeyID, and the next alloc hands it out', () => {
    const a = make([4]);
    const p = a.alloc(0);
    a.flags[p] |= PG_ANON; // what a fault leaves in struct page
    a.keyid[p] = 3;
    a.ownerMm[p] = 7;
    a.release(p);
    assert.deepEqual([a.flags[p], a.keyid[p], a.ownerMm[p]], [0, 0, -1]);
    assert.equal(a.isAllocated(p), false);
    assert.equal(a.freeFrames(), 4);
    assert.equal(a.alloc(0), p);
  });

  it('a double free, the free of a never-allocated frame and the free of a DAX frame throw, naming the frame', () => {
    const a = make([4], 1, 2);
    const p = a.alloc(0);
    a.release(p);
    assert.throws(() => a.release(p), { message: `page_alloc: freeing frame ${p} which is not allocated` });
    assert.throws(() => a.release(3), { message: 'page_alloc: freeing frame 3 which is not allocated' });
    assert.throws(() => a.release(4), { message: 'page_alloc: freeing frame 4 which is not allocated' });
    assert.equal(a.freeFrames(), 4, 'nothing was pushed twice');
  });

  it('nrPinned counts pinned frames once however often they are pinned, and only their release lowers it', () => {
    const a = make([8]);
    const p = a.alloc(0);
    const q = a.alloc(0);
    a.pin(p, false);
    a.pin(p, true);
    assert.equal(a.nrPinned, 1);
    assert.equal(a.flags[p] & PG_UNEVICTABLE, PG_UNEVICTABLE);
    a.release(q); // not pinned
    assert.equal(a.nrPinned, 1);
    a.release(p);
    assert.equal(a.nrPinned, 0);
  });

  it('strict alloc gives -1 when its node is empty; without strict the next node serves', () => {
    const a = make([2, 2]);
    assert.deepEqual([a.alloc(0), a.alloc(0)], [0, 1]);
    assert.equal(a.alloc(0, true), -1);
    assert.equal(a.alloc(0), 2);
  });

  it('an allocation that finds its node empty takes the frames on that node\'s per-CPU lists, not another node\'s', () => {
    const a = make([4, 4], 2);
    assert.equal(a.refillPcp(1, 0), 4, 'cpu 1 holds every frame of node 0');
    assert.equal(a.freeFrames(0), 4);
    assert.equal(a.alloc(0, true), 0);
    assert.equal(a.map.pcpCount(1), 0, 'the list was drained');
    assert.equal(a.alloc(0), 1);
  });
});

describe('page_alloc.ts: freeFrames per node', () => {
  it('freeFrames(node) counts that node\'s free stack and the lists holding its frames; freeFrames() all', () => {
    const a = make([100, 80], 2);
    assert.deepEqual([a.freeFrames(), a.freeFrames(0), a.freeFrames(1)], [180, 100, 80]);
    a.refillPcp(0, 0);
    assert.deepEqual([a.freeFrames(), a.freeFrames(0), a.freeFrames(1)], [180, 100, 80]);
    a.refillPcp(1, 1);
    assert.deepEqual([a.freeFrames(), a.freeFrames(0), a.freeFrames(1)], [180, 100, 80]);
    a.alloc(0);
    a.map.pcpAlloc(1, 1);
    assert.deepEqual([a.freeFrames(), a.freeFrames(0), a.freeFrames(1)], [178, 99, 79]);
  });
});

describe('page_alloc.ts: per-CPU lists (MemMap)', () => {
  afterEach(() => mock.restoreAll());

  it('pcpAlloc pops the lowest frame first and marks it allocated, KeyID 0, no owner; -1 once the list is empty', () => {
    const a = make([3]);
    assert.equal(a.refillPcp(0, 0), 3);
    const p = a.map.pcpAlloc(0, 0);
    assert.equal(p, 0);
    assert.deepEqual([a.flags[p], a.keyid[p], a.ownerMm[p]], [PG_ALLOCATED, 0, -1]);
    assert.equal(a.isAllocated(0), true);
    assert.deepEqual([a.map.pcpAlloc(0, 0), a.map.pcpAlloc(0, 0), a.map.pcpAlloc(0, 0)], [1, 2, -1]);
    assert.equal(a.freeFrames(), 0);
  });

  it('pcpAlloc for a node other than the list\'s gives -1 and leaves the list', () => {
    const a = make([4, 4]);
    a.refillPcp(0, 1);
    assert.equal(a.map.pcpAlloc(0, 0), -1);
    assert.equal(a.map.pcpCountOf(0, 1), 4);
    assert.equal(a.map.pcpAlloc(0, 1), 4);
  });

  it('frames given back with pcpUndo are free, without owner, and come out again last given back first', () => {
    const a = make([8]);
    a.refillPcp(0, 0);
    const x = a.map.pcpAlloc(0, 0);
    const y = a.map.pcpAlloc(0, 0);
    assert.deepEqual([x, y], [0, 1]);
    for (const p of [x, y]) {
      a.flags[p] = PG_ALLOCATED | PG_ANON; // what the CPU's fault fills in before it loses the race
      a.keyid[p] = 2;
      a.ownerMm[p] = 5;
    }
    a.map.pcpUndo(0, x);
    a.map.pcpUndo(0, y);
    for (const p of [x, y]) assert.deepEqual([a.flags[p], a.keyid[p], a.ownerMm[p]], [0, 0, -1]);
    assert.equal(a.map.pcpCount(0), 8);
    assert.equal(a.freeFrames(), 8);
    assert.deepEqual(popAll(a, 0, 0), [1, 0, 2, 3, 4, 5, 6, 7]);
  });

  it('pcpAlloc waits while another party holds the list lock, and pops only once it is released', () => {
    const a = make([8], 2);
    a.refillPcp(1, 0);
    a.map.lockPcp(1); // the kernel (refilling or draining) holds cpu 1's list
    const realCas = Atomics.compareExchange;
    let spins = 0;
    mock.method(Atomics, 'compareExchange', (arr: Int32Array, i: number, expect: number, repl: number) => {
      const v = realCas(arr, i, expect, repl);
      if (arr === a.map.pcp && v !== 0) {
        spins++;
        assert.equal(a.map.pcpCount(1), 8, 'nothing is popped while the lock is held');
        if (spins === 3) a.map.unlockPcp(1); // the holder lets go
        if (spins > 100) throw new Error('still spinning: the lock was never released');
      }
      return v;
    });
    assert.equal(a.map.pcpAlloc(1, 0), 0);
    assert.equal(spins, 3, 'three failed attempts on the held lock, then success');
    assert.equal(a.map.pcpAlloc(1, 0), 1);
    assert.equal(spins, 3, 'pcpAlloc released the lock: the next pop does not wait');
  });
});

describe('page_alloc.ts: refillPcp', () => {
  it('a top-up of a list of the same node keeps its frames and puts the frames it takes on top', () => {
    const a = make([100]);
    assert.equal(a.refillPcp(0, 0), PCP_BATCH);
    assert.equal(a.map.pcpAlloc(0, 0), 0);
    assert.equal(a.refillPcp(0, 0), PCP_BATCH, 'topped up by one frame');
    assert.equal(a.freeFrames(), 99);
    assert.deepEqual(popAll(a, 0, 0), [64, ...range(1, 64)]);
  });

  it('a refill for another node first returns the list\'s frames to their node', () => {
    const a = make([8, 8]);
    assert.equal(a.refillPcp(0, 0), 8);
    assert.equal(a.refillPcp(0, 1), 8);
    assert.equal(a.map.pcpCountOf(0, 1), 8);
    assert.equal(a.map.pcpCountOf(0, 0), 0);
    assert.deepEqual([a.freeFrames(0), a.freeFrames(1)], [8, 8]);
    assert.equal(a.alloc(0, true), 0, 'node 0\'s frames are back on its stack, lowest on top');
    assert.deepEqual(popAll(a, 0, 1), range(8, 16));
  });
});

describe('page_alloc.ts: drainPcps', () => {
  it('drainPcps(node) empties only the lists of that node; drainPcps() empties every list', () => {
    const a = make([100, 80], 3);
    a.refillPcp(1, 0);
    a.refillPcp(2, 1);
    a.drainPcps(0);
    assert.deepEqual([a.map.pcpCount(1), a.map.pcpCount(2)], [0, PCP_BATCH]);
    assert.deepEqual([a.freeFrames(0), a.freeFrames(1)], [100, 80]);
    assert.equal(a.alloc(0, true), 0, 'the drained frames are back on the stack, lowest on top');
    a.drainPcps(1);
    assert.deepEqual([a.map.pcpCount(1), a.map.pcpCount(2)], [0, 0]);
    assert.equal(a.alloc(1, true), 100);
    a.refillPcp(1, 0);
    a.refillPcp(2, 1);
    a.drainPcps();
    assert.deepEqual([a.map.pcpCount(0), a.map.pcpCount(1), a.map.pcpCount(2)], [0, 0, 0]);
    assert.deepEqual([a.freeFrames(0), a.freeFrames(1)], [99, 79]);
    assert.deepEqual([a.alloc(0, true), a.alloc(1, true)], [1, 101]);
  });
});

describe('page_alloc.ts: forEachFree', () => {
  it('forEachFree visits every free frame once: those on the stacks and those on each CPU\'s list', () => {
    const a = make([70, 70], 2);
    a.refillPcp(0, 0);
    a.refillPcp(1, 1);
    const seen: number[] = [];
    a.forEachFree((p) => seen.push(p));
    assert.deepEqual(
      seen.sort((x, y) => x - y),
      range(0, 140),
    );
  });
});
