// Survivors of the quick mutation run in kernel/memory.ts: zeroing of page
// cache pages, the flush of freed pages, zapRange over a missing leaf table
// and over nothing, the LRU and its clock hand after a zap, OOM in the
// anonymous and file fault paths and in the page-table pool, the memory-limit
// charge of file pages, which pinned pages may still move, and the fault
// handler's present / migration / protnone PTE cases.
import assert from 'node:assert/strict';
import { defaultOvercommit } from '../../kernel/limits.js';
import { describe, it } from 'node:test';
import { asPfn } from '../../hardware/types.js';
import { Machine } from '../../hardware/machine.js';
import { E } from '../../kernel/errno.js';
import { ALL_FEATURES, Kernel, OpenFile, type FileOps, type Task } from '../../kernel/kernel.js';
import { allocFilePage, freeFilePages } from '../../kernel/memory.js';
import { doMprotect } from '../../kernel/mprotect.js';
import { PG_ALLOCATED } from '../../kernel/page_alloc.js';
import { PTE_DIRTY, PTE_MIGRATION, PTE_PRESENT, PTE_WRITE, ptePfn } from '../../kernel/pgtable.js';
import { NR } from '../../kernel/syscalls.js';
import { MADV_DONTNEED, MAP_SHARED } from '../../kernel/uapi.js';
import { VM_LOCKED } from '../../kernel/vma.js';
import { addKey, BASE, boot, mapAnon, PAGE, read } from './util.js';

const RW = 3;

const buf = (b: number) => new Uint8Array(8).fill(b);

/** Take every free frame; give them back with the returned function. */
function hogFrames(k: Kernel): () => void {
  const hog: number[] = [];
  for (let p = k.alloc.alloc(0); p >= 0; p = k.alloc.alloc(0)) hog.push(p);
  return () => {
    for (const p of hog) k.alloc.release(p);
  };
}

/** A pinned-memory file like memfd_secret's: its pages are charged to the faulting mm. */
const chargedOps: FileOps = {
  mmap: () => 0,
  fault: (k, file, _vma, pgoff, task) => file.pages.get(pgoff) ?? allocFilePage(k, file, pgoff, null, task.mm),
  release: (k, file) => freeFilePages(k, file),
};

const pteIndex = (k: Kernel, t: Task, va: number) => k.pool.pteIndex(t.mm.pgd, va);

describe('memory.ts', () => {
  it('a page cache page starts zeroed, though its frame held an anonymous page before', () => {
    const { k, done } = boot({ nodeFrames: [16] });
    const t = k.spawn();
    const cpu = k.localCpu(t);
    mapAnon(k, t, 1);
    assert.equal(cpu.store(BASE, buf(0xab), 0, 8), 0);
    const frame = ptePfn(k.pool.get(t.mm.pgd, BASE));
    assert.equal(k.syscall(t, NR.munmap, BASE, PAGE), 0);
    mapAnon(k, t, 1, BASE, MAP_SHARED); // shmem: a page cache page
    assert.equal(read(k, t, BASE), 0);
    assert.equal(ptePfn(k.pool.get(t.mm.pgd, BASE)), frame, 'the same frame came back');
    done();
  });

  it('freeing a KeyID-0 page flushes nothing; freeing a keyed page flushes its lines', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const cpu = k.localCpu(t);
    mapAnon(k, t, 2);
    const key = addKey(k, t);
    assert.equal(doMprotect(k, t, BASE + PAGE, PAGE, RW, key), 0);
    assert.equal(cpu.store(BASE, buf(1), 0, 8), 0);
    assert.equal(cpu.store(BASE + PAGE, buf(2), 0, 8), 0);
    const lines = () => k.engine.counters.get('clflush_lines');
    let before = lines();
    assert.equal(k.syscall(t, NR.munmap, BASE, PAGE), 0);
    assert.equal(lines(), before);
    before = lines();
    assert.equal(k.syscall(t, NR.munmap, BASE + PAGE, PAGE), 0);
    assert.equal(lines() - before, 64);
    done();
  });

  it('munmap of part of a shared mapping zaps its PTE but leaves the page to the page cache', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const cpu = k.localCpu(t);
    mapAnon(k, t, 2, BASE, MAP_SHARED); // shmem
    assert.equal(cpu.store(BASE, buf(7), 0, 8), 0);
    assert.equal(cpu.store(BASE + PAGE, buf(8), 0, 8), 0);
    const frame = ptePfn(k.pool.get(t.mm.pgd, BASE));
    const free = k.alloc.freeFrames();
    assert.equal(k.syscall(t, NR.munmap, BASE, PAGE), 0);
    assert.equal(k.counters.snapshot().pages_zapped, 1);
    assert.equal(k.pool.get(t.mm.pgd, BASE), 0);
    assert.equal(k.alloc.freeFrames(), free, 'no frame freed');
    assert.notEqual(k.alloc.flags[frame] & PG_ALLOCATED, 0);
    done();
  });

  it('zapping a range whose first 4 MiB has no leaf table still zaps the pages after it', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const cpu = k.localCpu(t);
    const pages = 3 * 1024; // BASE is 4 MiB aligned: three leaf tables' worth
    mapAnon(k, t, pages);
    const free = k.alloc.freeFrames();
    assert.equal(cpu.store(BASE + 1024 * PAGE, buf(1), 0, 8), 0); // the first page after the missing table
    assert.equal(cpu.store(BASE + 2048 * PAGE + 9 * PAGE, buf(2), 0, 8), 0);
    assert.equal(k.syscall(t, NR.munmap, BASE, pages * PAGE), 0);
    assert.equal(k.counters.snapshot().pages_zapped, 2);
    assert.equal(k.alloc.freeFrames(), free);
    done();
  });

  it('a zap that finds no page flushes no TLB', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const cpu = k.localCpu(t);
    mapAnon(k, t, 2);
    const b = buf(3);
    assert.equal(cpu.store(BASE, b, 0, 8), 0);
    assert.equal(cpu.load(BASE, b, 0, 8), 0);
    const [misses, hits] = [cpu.tlbMisses, cpu.tlbHits];
    assert.equal(k.syscall(t, NR.madvise, BASE + PAGE, PAGE, MADV_DONTNEED), 0); // never touched
    assert.equal(cpu.load(BASE, b, 0, 8), 0);
    assert.deepEqual([cpu.tlbMisses, cpu.tlbHits], [misses, hits + 1]);
    assert.equal(k.counters.snapshot().pages_zapped, 0);
    done();
  });

  it('a zap drops exactly the zapped pages from the LRU and keeps the clock hand on the same page', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const cpu = k.localCpu(t);
    mapAnon(k, t, 6);
    for (let p = 0; p < 6; p++) assert.equal(cpu.store(BASE + p * PAGE, buf(p + 1), 0, 8), 0);
    const lru = () => t.mm.lru.map((va) => (va - BASE) / PAGE);
    assert.deepEqual(lru(), [0, 1, 2, 3, 4, 5]);
    t.mm.clockHand = 3; // as reclaim would leave it: page 3 is next
    const dontneed = (p: number) => assert.equal(k.syscall(t, NR.madvise, BASE + p * PAGE, PAGE, MADV_DONTNEED), 0);
    dontneed(1); // before the hand
    assert.deepEqual([lru(), t.mm.clockHand], [[0, 2, 3, 4, 5], 2]);
    dontneed(4); // after the hand
    assert.deepEqual([lru(), t.mm.clockHand], [[0, 2, 3, 5], 2]);
    dontneed(3); // at the hand: the hand moves on to the next page
    assert.deepEqual([lru(), t.mm.clockHand], [[0, 2, 5], 2]);
    assert.equal(read(k, t, BASE + 5 * PAGE), 6);
    done();
  });

  it('an anonymous fault with no free frame is ENOMEM and counts an OOM', () => {
    const { k, done } = boot({ nodeFrames: [16] });
    const t = k.spawn();
    const cpu = k.localCpu(t);
    mapAnon(k, t, 2);
    assert.equal(cpu.store(BASE, buf(1), 0, 8), 0);
    const giveBack = hogFrames(k);
    assert.equal(cpu.store(BASE + PAGE, buf(2), 0, 8), -E.ENOMEM);
    assert.equal(k.counters.snapshot().oom, 1);
    giveBack();
    assert.equal(cpu.store(BASE + PAGE, buf(2), 0, 8), 0);
    assert.equal(read(k, t, BASE + PAGE), 2);
    done();
  });

  it('a shared anonymous (page cache) fault with no free frame is ENOMEM and counts an OOM', () => {
    const { k, done } = boot({ nodeFrames: [16] });
    const t = k.spawn();
    const cpu = k.localCpu(t);
    mapAnon(k, t, 1, BASE, MAP_SHARED);
    const giveBack = hogFrames(k);
    assert.equal(cpu.store(BASE, buf(1), 0, 8), -E.ENOMEM);
    assert.equal(k.counters.snapshot().oom, 1);
    giveBack();
    assert.equal(cpu.store(BASE, buf(1), 0, 8), 0);
    done();
  });

  it('a fault with no page-table memory left is ENOMEM', () => {
    const m = Machine.create({ profile: 'mktme', backend: 'openssl', memory: { nodeFrames: [16] }, nrCpus: 1 });
    // the smallest pool: slot 0, one pgd, one middle and one leaf table
    // (1025 pages on 16 frames: overcommit_memory = 1 lets the mapping through)
    const k = new Kernel(m, { features: ALL_FEATURES, pgtableSlots: 1 + 32 + 2, overcommit: { ...defaultOvercommit(16, 0), mode: 1 } });
    const t = k.spawn();
    const cpu = k.localCpu(t);
    mapAnon(k, t, 1025); // BASE is 4 MiB aligned: the last page needs a second leaf table
    assert.equal(cpu.store(BASE, buf(1), 0, 8), 0);
    assert.equal(cpu.store(BASE + 1024 * PAGE, buf(1), 0, 8), -E.ENOMEM);
    assert.equal(read(k, t, BASE), 1);
    k.shutdown();
  });

  it("charged file pages: allocated on the mm's node, counted against its memory limit until the file is released, uncharged again when allocation fails", () => {
    const { k, done } = boot({ nodeFrames: [32, 32] });
    const t = k.spawn({ node: 1, memLimit: 3 });
    const cpu = k.localCpu(t);
    const f = new OpenFile(k, '/test/charged', '00:05', 7, chargedOps);
    const fd = t.installFd(f);
    const at = k.syscall(t, NR.mmap, 0, 3 * PAGE, RW, MAP_SHARED, fd, 0);
    assert.ok(at > 0, `mmap: ${at}`);
    assert.equal(cpu.store(at, buf(1), 0, 8), 0);
    assert.equal(cpu.store(at + PAGE, buf(2), 0, 8), 0);
    for (const pfn of f.pages.values()) assert.equal(k.machine.memory.nodeOf(asPfn(pfn)), 1);
    // the third file page: the limit would allow it, but there is no frame
    const giveBack = hogFrames(k);
    assert.equal(cpu.store(at + 2 * PAGE, buf(3), 0, 8), -E.ENOMEM);
    assert.equal(k.counters.snapshot().oom, 1);
    giveBack();
    // 2 file pages charged, limit 3: one anonymous page fits, the next does not (no swap)
    mapAnon(k, t, 2);
    assert.equal(cpu.store(BASE, buf(4), 0, 8), 0);
    assert.equal(cpu.store(BASE + PAGE, buf(5), 0, 8), -E.ENOMEM);
    // another mm may not fault pages of a file charged to this one
    const other = k.spawn();
    assert.equal(allocFilePage(k, f, 9, null, other.mm), -E.EINVAL);
    assert.equal(f.pages.has(9), false);
    // releasing the file gives its charge back
    assert.equal(k.syscall(t, NR.munmap, at, 3 * PAGE), 0);
    assert.equal(k.syscall(t, NR.close, fd), 0);
    assert.equal(cpu.store(BASE + PAGE, buf(5), 0, 8), 0);
    done();
  });

  it('pinned (VM_LOCKED) pages stay movable unless keyed on hardware that cannot re-encrypt', () => {
    for (const [profile, keyed] of [['mktme', false], ['mktme', true], ['sev', false]] as const) {
      const { k, done } = boot({ profile });
      const t = k.spawn();
      mapAnon(k, t, 1);
      if (keyed) assert.equal(doMprotect(k, t, BASE, PAGE, RW, addKey(k, t)), 0);
      t.mm.vmas.vmas[0].flags |= VM_LOCKED; // no syscall here sets it (no mlock)
      assert.equal(k.localCpu(t).store(BASE, buf(7), 0, 8), 0);
      const status: number[] = [];
      assert.equal(k.syscall(t, NR.move_pages, 0, [BASE], [1], status), 0);
      assert.deepEqual(status, [1], `${profile} keyed=${keyed}`);
      assert.equal(read(k, t, BASE), 7);
      done();
    }
  });

  describe('handle_mm_fault on a PTE that is not empty (k.fault, as a trap handler calls it)', () => {
    it('present: a read fault changes nothing; a write fault on a read-only PTE of a writable VMA makes it writable and dirty', () => {
      const { k, done } = boot();
      const t = k.spawn();
      mapAnon(k, t, 1);
      assert.equal(k.localCpu(t).store(BASE, buf(1), 0, 8), 0);
      const i = pteIndex(k, t, BASE);
      Atomics.and(k.pool.words, i, ~(PTE_WRITE | PTE_DIRTY)); // a stale read-only PTE
      const ro = Atomics.load(k.pool.words, i);
      assert.equal(k.fault(t, BASE, false), 0);
      assert.equal(Atomics.load(k.pool.words, i), ro);
      assert.equal(k.fault(t, BASE, true), 0);
      assert.equal(Atomics.load(k.pool.words, i), ro | PTE_WRITE | PTE_DIRTY);
      done();
    });

    it('a migration entry is left for the CPU to wait on', () => {
      const { k, done } = boot();
      const t = k.spawn();
      mapAnon(k, t, 1);
      assert.equal(k.localCpu(t).store(BASE, buf(1), 0, 8), 0);
      const i = pteIndex(k, t, BASE);
      const pte = Atomics.load(k.pool.words, i);
      const mig = (pte & ~PTE_PRESENT) | PTE_MIGRATION;
      Atomics.store(k.pool.words, i, mig);
      assert.equal(k.fault(t, BASE, false), 0);
      assert.equal(Atomics.load(k.pool.words, i), mig);
      Atomics.store(k.pool.words, i, pte);
      done();
    });

    it('protnone: the frame the PTE kept is mapped again, with the write bit the VMA allows', () => {
      const { k, done } = boot();
      const t = k.spawn();
      mapAnon(k, t, 2);
      const cpu = k.localCpu(t);
      assert.equal(cpu.store(BASE, buf(1), 0, 8), 0);
      assert.equal(cpu.store(BASE + PAGE, buf(0x5a), 0, 8), 0);
      const i = pteIndex(k, t, BASE + PAGE);
      const pte = Atomics.load(k.pool.words, i);
      assert.notEqual(ptePfn(pte), 0, 'not frame 0, so that a lost frame number shows');
      Atomics.store(k.pool.words, i, pte & ~(PTE_PRESENT | PTE_WRITE)); // a protnone PTE left behind
      const free = k.alloc.freeFrames();
      assert.equal(read(k, t, BASE + PAGE), 0x5a);
      const now = Atomics.load(k.pool.words, i);
      assert.equal(ptePfn(now), ptePfn(pte));
      assert.equal(now & (PTE_PRESENT | PTE_WRITE), PTE_PRESENT | PTE_WRITE);
      assert.equal(k.alloc.freeFrames(), free, 'no new frame');
      done();
    });
  });
});
