// Survivors of the quick mutation run of main at 965434e (report
// /work/mutwork/saves/chunkC/mutation.json) in kernel/{kernel,madvise,memory,
// migrate}.ts: the kernel's config checks and default overcommit on a machine
// with DAX, exit twice, MADV_WIPEONFORK on a private file mapping,
// MADV_COLLAPSE on a VMA of exactly one huge page, guard markers and the
// anon_vma of file VMAs, MADV_GUARD_REMOVE, the errnos of MADV_POPULATE_*,
// unprivileged advice, the LRU clock hand after a zap at its tail, the PTE a
// read fault of shared memory gets, and the PTE and notifier range of a
// migrated page.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Machine } from '../../hardware/machine.js';
import { E } from '../../kernel/errno.js';
import { ALL_FEATURES, Kernel, NO_FEATURES, OpenFile, type FileOps, type Task } from '../../kernel/kernel.js';
import { allocFilePage, freeFilePages } from '../../kernel/memory.js';
import { PTE_ACCESSED, PTE_DIRTY, PTE_PRESENT, PTE_SWAP, PTE_WRITE } from '../../kernel/pgtable.js';
import { NR } from '../../kernel/syscalls.js';
import {
  MADV_COLLAPSE,
  MADV_DONTNEED,
  MADV_GUARD_INSTALL,
  MADV_GUARD_REMOVE,
  MADV_POPULATE_READ,
  MADV_POPULATE_WRITE,
  MADV_WIPEONFORK,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  TASK_SIZE,
} from '../../kernel/uapi.js';
import { VM_PFNMAP } from '../../kernel/vma.js';
import { BASE, boot, mapAnon, PAGE, read, touch } from './util.js';

const RW = PROT_READ | PROT_WRITE;
const buf = (b: number) => new Uint8Array(8).fill(b);

/** A shmem-like file: page cache pages made on first fault, not charged to anyone. */
const cacheOps: FileOps = {
  mmap: () => 0,
  fault: (k, file, _vma, pgoff) => file.pages.get(pgoff) ?? allocFilePage(k, file, pgoff, null),
  release: (k, file) => freeFilePages(k, file),
};

/** A pinned-memory file like memfd_secret's: its pages are charged to the faulting mm. */
const chargedOps: FileOps = {
  mmap: () => 0,
  fault: (k, file, _vma, pgoff, task) => file.pages.get(pgoff) ?? allocFilePage(k, file, pgoff, null, task.mm),
  release: (k, file) => freeFilePages(k, file),
};

function openFile(k: Kernel, t: Task, ops: FileOps, ino = 7): { f: OpenFile; fd: number } {
  const f = new OpenFile(k, `/test/f${ino}`, '00:05', ino, ops);
  return { f, fd: t.installFd(f) };
}

/** mmap `pages` pages of fd at `at` (MAP_FIXED) from page `pgoff`. */
function mapFile(k: Kernel, t: Task, fd: number, at: number, pages: number, pgoff: number, prot = RW, flags = MAP_SHARED): void {
  assert.equal(k.syscall(t, NR.mmap, at, pages * PAGE, prot, flags | MAP_FIXED, fd, pgoff * PAGE), at);
}

const ranges = (t: Task) => t.mm.vmas.vmas.map((v) => [(v.start - BASE) / PAGE, (v.end - BASE) / PAGE]);

describe('kernel.ts: configuration and exit', () => {
  it('NO_FEATURES names every feature ALL_FEATURES names, each one off', () => {
    assert.deepEqual(Object.keys(NO_FEATURES).sort(), Object.keys(ALL_FEATURES).sort());
    for (const v of Object.values(NO_FEATURES)) assert.equal(v, false);
  });

  it('vm.mmap_min_addr may be TASK_SIZE itself; one past it is refused with a message naming mmapMinAddr', () => {
    const m = Machine.create({ profile: 'none', backend: 'openssl', memory: { nodeFrames: [16] }, nrCpus: 1 });
    const k = new Kernel(m, { features: ALL_FEATURES, pgtableSlots: 256, mmapMinAddr: TASK_SIZE });
    assert.equal(k.mmapMinAddr, TASK_SIZE);
    k.shutdown();
    assert.throws(
      () => new Kernel(m, { features: ALL_FEATURES, pgtableSlots: 256, mmapMinAddr: TASK_SIZE + PAGE }),
      /^RangeError: mmapMinAddr: expected an integer in \[0, \d+\], got \d+$/,
    );
  });

  it('the default overcommit heuristic counts RAM without the DAX region: one charge larger than RAM is refused', () => {
    const m = Machine.create({ profile: 'none', backend: 'openssl', memory: { nodeFrames: [64], daxFrames: 32 }, nrCpus: 1 });
    const k = new Kernel(m, { features: ALL_FEATURES, pgtableSlots: 256 });
    const t = k.spawn();
    const anon = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
    assert.equal(k.syscall(t, NR.mmap, BASE, 65 * PAGE, RW, anon, -1, 0), -E.ENOMEM, '65 pages > 64 pages of RAM, no swap');
    assert.equal(k.syscall(t, NR.mmap, BASE, 64 * PAGE, RW, anon, -1, 0), BASE);
    k.shutdown();
  });

  it('exiting a task twice is harmless: two tasks spawned after it get address spaces of their own', () => {
    const { k, done } = boot();
    const a = k.spawn();
    mapAnon(k, a, 1);
    touch(k, a, BASE, 9);
    k.exit(a);
    k.exit(a);
    const b = k.spawn();
    const c = k.spawn();
    assert.notEqual(b.mm.pgd, c.mm.pgd);
    mapAnon(k, b, 1);
    mapAnon(k, c, 1);
    touch(k, b, BASE, 1);
    touch(k, c, BASE, 2);
    assert.equal(read(k, b, BASE), 1);
    assert.equal(read(k, c, BASE), 2);
    done();
  });
});

describe('madvise: per-VMA rules', () => {
  it('MADV_WIPEONFORK on a private file mapping is EINVAL (file-backed, though not shared)', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const { fd } = openFile(k, t, cacheOps);
    mapFile(k, t, fd, BASE, 2, 0, RW, MAP_PRIVATE);
    assert.equal(k.syscall(t, NR.madvise, BASE, PAGE, MADV_WIPEONFORK), -E.EINVAL);
    assert.equal(t.mm.vmas.vmas.length, 1, 'no split');
    mapAnon(k, t, 1, BASE + 4 * PAGE);
    assert.equal(k.syscall(t, NR.madvise, BASE + 4 * PAGE, PAGE, MADV_WIPEONFORK), 0, 'private anonymous memory takes it');
    done();
  });

  it('MADV_COLLAPSE on a VMA that is exactly one aligned 2 MiB block is allowed: a range with no whole block in it is 0', () => {
    const { k, done } = boot();
    const t = k.spawn();
    assert.equal(BASE % (2 * 1024 * 1024), 0);
    mapAnon(k, t, 512); // [BASE, BASE + 2 MiB)
    assert.equal(k.syscall(t, NR.madvise, BASE, PAGE, MADV_COLLAPSE), 0);
    done();
  });

  it('MADV_GUARD_INSTALL gives a shared file VMA no anon_vma: guarded file VMAs still merge when the hole between them is mapped', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const { fd } = openFile(k, t, cacheOps);
    mapFile(k, t, fd, BASE, 1, 0);
    mapFile(k, t, fd, BASE + 2 * PAGE, 1, 2);
    assert.equal(k.syscall(t, NR.madvise, BASE, PAGE, MADV_GUARD_INSTALL), 0);
    assert.equal(k.syscall(t, NR.madvise, BASE + 2 * PAGE, PAGE, MADV_GUARD_INSTALL), 0);
    mapFile(k, t, fd, BASE + PAGE, 1, 1);
    assert.deepEqual(ranges(t), [[0, 3]]);
    done();
  });

  it('MADV_GUARD_REMOVE takes the markers off exactly the range; on a VM_PFNMAP VMA it is EINVAL and the markers stay', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const cpu = k.localCpu(t);
    mapAnon(k, t, 3);
    assert.equal(k.syscall(t, NR.madvise, BASE, 3 * PAGE, MADV_GUARD_INSTALL), 0);
    assert.equal(k.syscall(t, NR.madvise, BASE, 2 * PAGE, MADV_GUARD_REMOVE), 0);
    assert.equal(cpu.store(BASE, buf(1), 0, 8), 0);
    assert.equal(cpu.store(BASE + PAGE, buf(2), 0, 8), 0);
    assert.equal(cpu.store(BASE + 2 * PAGE, buf(3), 0, 8), -E.EFAULT, 'the page after the range is still guarded');
    // no syscall here makes a PFN-mapped VMA: set the flag by hand
    t.mm.vmas.vmas[0].flags |= VM_PFNMAP;
    assert.equal(k.syscall(t, NR.madvise, BASE + 2 * PAGE, PAGE, MADV_GUARD_REMOVE), -E.EINVAL);
    assert.equal(cpu.store(BASE + 2 * PAGE, buf(3), 0, 8), -E.EFAULT);
    done();
  });

  it('advice other than MADV_HWPOISON / MADV_SOFT_OFFLINE needs no CAP_SYS_ADMIN', () => {
    const { k, done } = boot();
    const t = k.spawn({ uid: 1000, caps: [] });
    mapAnon(k, t, 1);
    touch(k, t, BASE, 5);
    assert.equal(k.syscall(t, NR.madvise, BASE, PAGE, MADV_DONTNEED), 0);
    assert.equal(read(k, t, BASE), 0);
    done();
  });
});

describe('madvise: MADV_POPULATE_* errnos', () => {
  it('a page over the memory limit with no swap is ENOMEM', () => {
    const { k, done } = boot();
    const t = k.spawn({ memLimit: 1 });
    mapAnon(k, t, 2);
    assert.equal(k.syscall(t, NR.madvise, BASE, 2 * PAGE, MADV_POPULATE_WRITE), -E.ENOMEM);
    assert.equal(t.mm.rss, 1, 'the first page was populated');
    done();
  });

  it('any other fault error is EFAULT: a charged file page another mm may not have', () => {
    const { k, done } = boot();
    const a = k.spawn();
    const { f, fd } = openFile(k, a, chargedOps);
    mapFile(k, a, fd, BASE, 2, 0);
    touch(k, a, BASE, 1); // the file is charged to a's mm now
    const b = k.spawn();
    f.get();
    const fdB = b.installFd(f);
    mapFile(k, b, fdB, BASE, 2, 0);
    assert.equal(k.syscall(b, NR.madvise, BASE, 2 * PAGE, MADV_POPULATE_READ), -E.EFAULT);
    assert.equal(f.pages.size, 1);
    done();
  });
});

describe('memory.ts: LRU and faults', () => {
  it('a zap of every page from the clock hand to the end of the LRU sends the hand back to the oldest page', () => {
    const { k, done } = boot({ swapSlots: 8 });
    const t = k.spawn({ memLimit: 4 });
    mapAnon(k, t, 6);
    for (let p = 0; p < 4; p++) touch(k, t, BASE + p * PAGE, p + 1);
    const lru = () => t.mm.lru.map((va) => (va - BASE) / PAGE);
    assert.deepEqual(lru(), [0, 1, 2, 3]);
    t.mm.clockHand = 2; // as reclaim would leave it: page 2 is next
    assert.equal(k.syscall(t, NR.madvise, BASE + 2 * PAGE, 2 * PAGE, MADV_DONTNEED), 0);
    assert.deepEqual(lru(), [0, 1]);
    touch(k, t, BASE + 4 * PAGE, 5);
    touch(k, t, BASE + 5 * PAGE, 6);
    assert.equal(t.mm.rss, 4);
    // every page was accessed: one turn clears the bits, from the hand on
    touch(k, t, BASE + 2 * PAGE, 7);
    const pte = (p: number) => k.pool.get(t.mm.pgd, BASE + p * PAGE);
    assert.ok(pte(0) & PTE_SWAP, 'the oldest page went to swap');
    assert.ok(pte(4) & PTE_PRESENT, 'the page faulted after the zap stayed');
    assert.equal(read(k, t, BASE), 1);
    done();
  });

  it('a read fault of shared memory maps the page writable: the write after it does not fault', () => {
    const { k, done } = boot();
    const t = k.spawn();
    mapAnon(k, t, 1, BASE, MAP_SHARED);
    assert.equal(read(k, t, BASE), 0);
    assert.ok(k.pool.get(t.mm.pgd, BASE) & PTE_WRITE);
    const faults = k.counters.snapshot().faults;
    touch(k, t, BASE, 4);
    assert.equal(k.counters.snapshot().faults, faults);
    done();
  });

  it('shared file VMAs made writable by mprotect and written still merge when the hole between them is mapped', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const { fd } = openFile(k, t, cacheOps);
    mapFile(k, t, fd, BASE, 1, 0, PROT_READ);
    mapFile(k, t, fd, BASE + 2 * PAGE, 1, 2, PROT_READ);
    for (const p of [0, 2]) {
      assert.equal(read(k, t, BASE + p * PAGE), 0);
      assert.equal(k.syscall(t, NR.mprotect, BASE + p * PAGE, PAGE, RW), 0);
      touch(k, t, BASE + p * PAGE, p + 1);
    }
    mapFile(k, t, fd, BASE + PAGE, 1, 1);
    assert.deepEqual(ranges(t), [[0, 3]]);
    assert.equal(read(k, t, BASE + 2 * PAGE), 3);
    done();
  });
});

describe('migrate.ts: the moved page', () => {
  it('a migrated page keeps its write, dirty and accessed bits (an old page stays old), and the notifiers hear of exactly its page', () => {
    const { k, done } = boot();
    const t = k.spawn();
    mapAnon(k, t, 3);
    touch(k, t, BASE + PAGE, 8);
    touch(k, t, BASE + 2 * PAGE, 7);
    // reclaim's clock has aged the third page since its fault (swap.ts)
    Atomics.and(k.pool.words, k.pool.pteIndex(t.mm.pgd, BASE + 2 * PAGE), ~PTE_ACCESSED);
    const heard: number[][] = [];
    t.mm.notifiers.add((s: number, e: number) => heard.push([s, e]));
    const status: number[] = [];
    assert.equal(k.syscall(t, NR.move_pages, 0, [BASE + PAGE], [1], status), 0);
    assert.deepEqual(status, [1]);
    assert.deepEqual(heard, [[BASE + PAGE, BASE + 2 * PAGE]]);
    const bits = (va: number) => {
      const pte = k.pool.get(t.mm.pgd, va);
      return [!!(pte & PTE_PRESENT), !!(pte & PTE_WRITE), !!(pte & PTE_DIRTY), !!(pte & PTE_ACCESSED)];
    };
    assert.deepEqual(bits(BASE + PAGE), [true, true, true, true], 'young before, young after');
    assert.equal(k.syscall(t, NR.move_pages, 0, [BASE + 2 * PAGE], [1], status), 0);
    assert.deepEqual(status, [1]);
    assert.deepEqual(bits(BASE + 2 * PAGE), [true, true, true, false], 'old before, old after');
    const faults = k.counters.snapshot().faults;
    touch(k, t, BASE + PAGE, 9);
    assert.equal(k.counters.snapshot().faults, faults, 'the write after the move does not fault');
    assert.equal(read(k, t, BASE + PAGE), 9);
    done();
  });
});
