// File pages faulted on the faulting CPU (kernel/fastfault.ts, pagecache.ts),
// driven on this thread as fastfault-survivors.test.ts drives anonymous ones:
// a file whose FileOps.fastFault lets CPUs take its pages (as /dev/mktme,
// secretmem and guest_memfd do), its fault the one the CPU must match.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Pfn } from '../../hardware/types.js';
import { E } from '../../kernel/errno.js';
import { type FileOps, type Kernel, OpenFile, type Task } from '../../kernel/kernel.js';
import type { MktmeKey } from '../../kernel/keys.js';
import { allocFilePage, freeFilePages, pinPage } from '../../kernel/memory.js';
import { mmWriteLock, mmWriteUnlock } from '../../kernel/fastfault.js';
import { setVmaKey } from '../../kernel/mprotect.js';
import { PG_ALLOCATED, PG_FILE, PG_SECRET, PG_UNEVICTABLE, PG_UNMOVABLE } from '../../kernel/page_alloc.js';
import { PTE_DIRTY, PTE_PINNED, PTE_PRESENT, PTE_WRITE, ptePfn, pteKeyid } from '../../kernel/pgtable.js';
import { NR } from '../../kernel/syscalls.js';
import { MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from '../../kernel/uapi.js';
import { BASE, PAGE, addKey, boot, fastCpu, mapAnon, runCpus, settle, touch, zeroThen } from './util.js';

const RW = PROT_READ | PROT_WRITE;
const PINNED_SECRET = PG_UNEVICTABLE | PG_UNMOVABLE | PG_SECRET;

/** A file like secretmem or /dev/mktme: pages charged to the faulting mm, with `flags`, `pages` long, through the file's key if it has one. */
function fileOps(flags: number, pages = Infinity): FileOps {
  return {
    mmap(_k, file, vma) {
      if (file.key !== null) setVmaKey(vma, file.key);
      return 0;
    },
    fault(k, file, _vma, pgoff, task) {
      if (pgoff >= pages) return -E.EFAULT;
      const have = file.pages.get(pgoff);
      if (have !== undefined) return have;
      const pfn = allocFilePage(k, file, pgoff, file.key, task.mm);
      if (pfn < 0) return pfn;
      if (flags & PG_UNEVICTABLE) pinPage(k, pfn, true);
      if (flags & PG_SECRET) {
        k.alloc.flags[pfn] |= PG_SECRET;
        k.count('direct_map_removed');
      }
      return pfn;
    },
    fastFault: () => ({ flags, pages }),
    release(k, file) {
      freeFilePages(k, file);
      file.key?.put();
    },
  };
}

function openFile(k: Kernel, t: Task, ops: FileOps, key: MktmeKey | null = null): { file: OpenFile; fd: number } {
  const file = new OpenFile(k, '/test-file', '00:2a', k.newIno(), ops);
  if (key !== null) {
    key.get();
    file.key = key;
  }
  return { file, fd: t.installFd(file) };
}

function mapFile(k: Kernel, t: Task, fd: number, pages: number, at = BASE, pgoff = 0, flags = MAP_SHARED): void {
  assert.equal(k.syscall(t, NR.mmap, at, pages * PAGE, RW, flags | MAP_FIXED, fd, pgoff * PAGE), at);
}

const pfnAt = (k: Kernel, t: Task, va: number): number => ptePfn(k.pool.get(t.mm.pgd, va));

describe('file pages on the faulting CPU', () => {
  it('a CPU takes a page of a shared file itself: it claims the file for its mm, and the page is charged, pinned, counted and cached as the file fault does it', () => {
    const { k, done } = boot({ nrCpus: 2, nodeFrames: [160, 64] });
    const t = k.spawn();
    const { file, fd } = openFile(k, t, fileOps(PINNED_SECRET));
    mapFile(k, t, fd, 4);
    const ff = fastCpu(k, t);
    assert.equal(ff.tryFault(BASE + PAGE, true), true);
    assert.equal(ff.tryFault(BASE, false), true);
    assert.deepEqual([ff.handled, ff.passed], [2, 0]);
    const pfn = pfnAt(k, t, BASE + PAGE);
    assert.equal(file.pages.get(1), pfn);
    assert.equal(file.pages.get(0), pfnAt(k, t, BASE));
    assert.equal(k.alloc.flags[pfn], PG_ALLOCATED | PG_FILE | PINNED_SECRET);
    const pte = k.pool.get(t.mm.pgd, BASE + PAGE);
    assert.equal(pte & (PTE_PRESENT | PTE_PINNED | PTE_DIRTY), PTE_PRESENT | PTE_PINNED | PTE_DIRTY);
    assert.equal(k.pool.get(t.mm.pgd, BASE) & PTE_DIRTY, 0, 'a read: not dirty');
    assert.deepEqual([k.counters.get('faults'), k.counters.get('direct_map_removed')], [2, 2]);
    assert.equal(file.charged, null, 'the claim is the CPU’s until the kernel takes the mm');
    assert.equal(file.pages.claimant(), t.mm.id);
    settle(k, t);
    assert.equal(file.charged, t.mm);
    assert.deepEqual([t.mm.filePages, t.mm.rss, k.alloc.nrPinned, k.counters.get('pinned_pages')], [2, 0, 2, 2]);
    // the same page offset through another mapping of the file: the cached page, no new one
    mapFile(k, t, fd, 1, BASE + 8 * PAGE, 1);
    assert.equal(ff.tryFault(BASE + 8 * PAGE, true), true);
    assert.equal(pfnAt(k, t, BASE + 8 * PAGE), pfn);
    settle(k, t);
    assert.deepEqual([t.mm.filePages, k.alloc.nrPinned, k.counters.get('faults'), k.counters.get('direct_map_removed')], [2, 2, 3, 2]);
    // unmapped and closed, the pages go, and their charge and pins with them
    assert.equal(k.syscall(t, NR.munmap, BASE, 16 * PAGE), 0);
    assert.equal(k.syscall(t, NR.close, fd), 0);
    assert.deepEqual([t.mm.filePages, k.alloc.nrPinned], [0, 0]);
    assert.equal(file.pages.dir, 0, 'the index’s tables went back to the pool');
    done();
  });

  it('one CPU: counters, charges, pins and PTEs are those of a kernel that handles every fault', () => {
    const PAGES = 40;
    const order = Array.from({ length: PAGES }, (_, p) => (p * 7) % PAGES);
    const runs = [];
    for (const fast of [false, true]) {
      const { k, done } = boot({ nrCpus: 2, nodeFrames: [160, 64] });
      const t = k.spawn();
      const key = addKey(k, t);
      const { file, fd } = openFile(k, t, fileOps(PG_UNEVICTABLE | PG_UNMOVABLE), key);
      mapFile(k, t, fd, PAGES);
      const ff = fast ? fastCpu(k, t) : null;
      for (const p of order) {
        const va = BASE + p * PAGE;
        if (ff === null || !ff.tryFault(va, p % 3 !== 0)) assert.equal(k.fault(t, va, p % 3 !== 0), 0);
      }
      if (ff !== null) assert.deepEqual([ff.handled, ff.passed], [PAGES, 0]);
      settle(k, t);
      const ptes = order.map((p) => {
        const pte = k.pool.get(t.mm.pgd, BASE + p * PAGE);
        assert.equal(file.pages.get(p), ptePfn(pte));
        return [pte & (PTE_PRESENT | PTE_PINNED | PTE_DIRTY), pteKeyid(pte), k.alloc.keyid[ptePfn(pte)], k.alloc.flags[ptePfn(pte)]];
      });
      runs.push({ counters: k.counters.snapshot(), ptes, file: t.mm.filePages, rss: t.mm.rss, pinned: k.alloc.nrPinned, refs: k.keys.pageRefs[key.keyid] });
      assert.equal(k.syscall(t, NR.munmap, BASE, PAGES * PAGE), 0);
      assert.equal(k.syscall(t, NR.close, fd), 0);
      assert.equal(k.keys.pageRefs[key.keyid], 0);
      assert.equal(k.alloc.freeFrames(), 224);
      k.exit(t);
      done();
    }
    assert.deepEqual(runs[1], runs[0]);
    assert.deepEqual([runs[1].file, runs[1].pinned, runs[1].refs], [PAGES, PAGES, PAGES]);
  });

  it("another mm's CPU maps the pages the file has, but traps for one it has not, and the kernel refuses that mm a page (EINVAL), as before", () => {
    const { k, done } = boot({ nrCpus: 3, nodeFrames: [160, 64] });
    const a = k.spawn(), b = k.spawn();
    const { file, fd } = openFile(k, a, fileOps(0));
    file.get();
    const fdB = b.installFd(file);
    mapFile(k, a, fd, 4);
    mapFile(k, b, fdB, 4);
    const cpuA = fastCpu(k, a, 1), cpuB = fastCpu(k, b, 2);
    assert.equal(cpuA.tryFault(BASE, true), true, 'A claims the file');
    assert.equal(cpuB.tryFault(BASE, true), true, 'B maps the page A took');
    assert.equal(pfnAt(k, b, BASE), pfnAt(k, a, BASE));
    assert.equal(cpuB.tryFault(BASE + PAGE, true), false, 'a page the file has not: B traps');
    assert.equal(k.fault(b, BASE + PAGE, true), -E.EINVAL, 'the kernel refuses it, though it has not seen A’s claim yet');
    assert.equal(file.charged, null);
    settle(k, a);
    assert.equal(file.charged, a.mm);
    assert.equal(k.fault(b, BASE + PAGE, true), -E.EINVAL);
    assert.equal(cpuA.tryFault(BASE + PAGE, true), true);
    assert.deepEqual([a.mm.filePages, b.mm.filePages], [1, 0]);
    settle(k, a);
    assert.deepEqual([a.mm.filePages, b.mm.filePages], [2, 0]);
    k.exit(b);
    k.exit(a);
    assert.equal(k.alloc.freeFrames(), 224);
    done();
  });

  it('a page offset past the file traps (the kernel answers SIGBUS), and so does a private mapping of the file', () => {
    const { k, done } = boot({ nrCpus: 2, nodeFrames: [160, 64] });
    const t = k.spawn();
    const { fd } = openFile(k, t, fileOps(0, 2));
    mapFile(k, t, fd, 4);
    mapFile(k, t, fd, 1, BASE + 8 * PAGE, 0, MAP_PRIVATE);
    const ff = fastCpu(k, t);
    assert.equal(ff.tryFault(BASE + PAGE, true), true);
    assert.equal(ff.tryFault(BASE + 2 * PAGE, true), false);
    assert.equal(k.fault(t, BASE + 2 * PAGE, true), -E.EFAULT);
    assert.equal(ff.tryFault(BASE + 8 * PAGE, true), false, 'private: the kernel’s');
    assert.deepEqual([ff.handled, ff.passed], [1, 2]);
    done();
  });

  it('two CPUs race for a page offset: the loser gives back its frame, charge and key reference, and maps the page the winner put in the page cache', () => {
    const { k, done } = boot({ nrCpus: 3, nodeFrames: [160, 64] });
    const t = k.spawn();
    const key = addKey(k, t);
    const { file, fd } = openFile(k, t, fileOps(PG_UNEVICTABLE | PG_UNMOVABLE), key);
    mapFile(k, t, fd, 1); // page offset 0 at BASE
    mapFile(k, t, fd, 1, BASE + 8 * PAGE); // and again at BASE + 8 pages
    const other = fastCpu(k, t, 2);
    let ours = -1;
    // CPU 2 faults offset 0 in through the other mapping while CPU 1 zeroes its frame
    const engine = zeroThen(k, (pfn) => {
      ours = pfn;
      assert.equal(other.tryFault(BASE + 8 * PAGE, true), true, 'CPU 2 takes the page');
    });
    const ff = fastCpu(k, t, 1, engine);
    const list = k.alloc.map.pcpCount(1);
    assert.equal(ff.tryFault(BASE, true), true);
    const theirs = file.pages.get(0)!;
    assert.ok(ours >= 0 && theirs !== ours);
    assert.equal(pfnAt(k, t, BASE), theirs, "CPU 2's page is mapped at both");
    assert.equal(pfnAt(k, t, BASE + 8 * PAGE), theirs);
    assert.equal(k.alloc.map.pcpCount(1), list, "CPU 1's frame is back on its list");
    assert.deepEqual([k.alloc.keyid[ours], k.alloc.flags[ours]], [0, 0]);
    assert.equal(k.keys.pageRefs[key.keyid], 1, 'one page uses the key');
    settle(k, t);
    assert.deepEqual([t.mm.filePages, t.mm.rss, k.alloc.nrPinned, k.counters.get('faults')], [1, 0, 1, 2]);
    k.exit(t);
    assert.equal(k.keys.pageRefs[key.keyid], 0);
    assert.equal(k.alloc.freeFrames(), 224);
    done();
  });

  it('with the table pool exhausted the file has no index, and its faults trap', () => {
    const { k, done } = boot({ nrCpus: 2, nodeFrames: [160, 64] });
    const t = k.spawn();
    const { file, fd } = openFile(k, t, fileOps(0));
    mapFile(k, t, fd, 2);
    const ff = fastCpu(k, t);
    const hog: number[] = [];
    for (let s = k.pool.allocTable(); s >= 0; s = k.pool.allocTable()) hog.push(s);
    // a new file, mapped while no table is left
    const second = openFile(k, t, fileOps(0));
    mapFile(k, t, second.fd, 2, BASE + 8 * PAGE);
    assert.equal(second.file.pages.dir, 0);
    assert.equal(ff.tryFault(BASE + 8 * PAGE, true), false);
    assert.equal(k.fault(t, BASE + 8 * PAGE, true), 0, 'the kernel keeps the page beside the index');
    assert.notEqual(second.file.pages.get(0), undefined);
    assert.equal(ff.tryFault(BASE, true), true, 'the first file got its index before');
    assert.notEqual(file.pages.dir, 0);
    for (const s of hog) k.pool.freeTable(s);
    done();
  });

  it('three worker CPUs racing over the same pages of a keyed, pinned file: one page per offset, every PTE maps it, charges, pins and key references balance, data intact', async () => {
    const PAGES = 300;
    const { k, done } = boot({ nrCpus: 4, nodeFrames: [400, 64] });
    const t = k.spawn();
    const key = addKey(k, t);
    const { file, fd } = openFile(k, t, fileOps(PG_UNEVICTABLE | PG_UNMOVABLE), key);
    mapFile(k, t, fd, PAGES);
    const all = Array.from({ length: PAGES }, (_, p) => p);
    const res = await runCpus(k, t, [all, all, [...all].reverse()], true);
    assert.deepEqual(res.map((r) => [r.errors, r.faults]), [[0, 0], [0, 0], [0, 0]]);
    assert.ok(res.reduce((n, r) => n + r.handled, 0) > PAGES / 2, JSON.stringify(res)); // (the rest trapped: an empty per-CPU list)
    settle(k, t);
    const seen = new Set<number>();
    for (let p = 0; p < PAGES; p++) {
      const pfn = pfnAt(k, t, BASE + p * PAGE);
      assert.equal(file.pages.get(p), pfn, `offset ${p}`);
      assert.ok(!seen.has(pfn), `frame ${pfn} twice`);
      seen.add(pfn);
      assert.equal(k.alloc.flags[pfn], PG_ALLOCATED | PG_FILE | PG_UNEVICTABLE | PG_UNMOVABLE);
      assert.equal(k.alloc.keyid[pfn], key.keyid);
    }
    assert.equal(file.pages.size, PAGES);
    assert.deepEqual([t.mm.filePages, t.mm.rss, k.alloc.nrPinned, k.keys.pageRefs[key.keyid]], [PAGES, 0, PAGES, PAGES]);
    assert.equal(k.alloc.freeFrames() + PAGES, 464, 'every frame a loser took went back');
    assert.equal(k.machine.engine.counters.get('alias_conflicts'), 0);
    k.exit(t);
    assert.deepEqual([k.alloc.freeFrames(), k.alloc.nrPinned, k.keys.pageRefs[key.keyid]], [464, 0, 0]);
    done();
  });

  it("a page offset whose index leaf the kernel's budget left for later traps; the kernel's next entry builds it", () => {
    const { k, done } = boot({ nrCpus: 2, nodeFrames: [160, 64] });
    const t = k.spawn();
    const { file, fd } = openFile(k, t, fileOps(0));
    mapFile(k, t, fd, 16 * 1024); // 16 leaves of page offsets, and 16 of PTEs
    const ff = fastCpu(k, t);
    // a publish builds 16 tables: the directory and 15 leaves; the PTE tables are all there
    assert.equal(ff.tryFault(BASE + (14 * 1024 + 3) * PAGE, true), true);
    assert.equal(file.pages.get(14 * 1024 + 3), pfnAt(k, t, BASE + (14 * 1024 + 3) * PAGE));
    assert.equal(ff.tryFault(BASE + (15 * 1024 + 5) * PAGE, true), false, 'no leaf for offsets 15360..16383 yet');
    settle(k, t);
    assert.equal(ff.tryFault(BASE + (15 * 1024 + 6) * PAGE, true), true);
    assert.equal(file.pages.get(15 * 1024 + 6), pfnAt(k, t, BASE + (15 * 1024 + 6) * PAGE));
    assert.deepEqual([ff.handled, ff.passed], [2, 1]);
    done();
  });

  it("a whole-page store's first touch of a fresh page stores its data in place of the zeroing; a page the file has gets no store from the fault", () => {
    const { k, done } = boot({ nrCpus: 2, nodeFrames: [160, 64] });
    const t = k.spawn();
    const key = addKey(k, t);
    const { fd } = openFile(k, t, fileOps(0), key);
    mapFile(k, t, fd, 2);
    mapFile(k, t, fd, 1, BASE + 8 * PAGE);
    const ff = fastCpu(k, t);
    const data = new Uint8Array(PAGE).fill(0x5a);
    assert.equal(ff.tryFault(BASE, true, data, 0), true);
    assert.equal(ff.filled, true, 'the fresh page got the data');
    const out = new Uint8Array(PAGE);
    assert.equal(k.machine.engine.read(pfnAt(k, t, BASE) as Pfn, key.keyid, out), true);
    assert.ok(out.every((b) => b === 0x5a));
    assert.equal(ff.tryFault(BASE + 8 * PAGE, true, new Uint8Array(PAGE).fill(1), 0), true);
    assert.equal(ff.filled, false, 'offset 0 was there: the store is the access’s to make');
    assert.equal(k.machine.engine.read(pfnAt(k, t, BASE) as Pfn, key.keyid, out), true);
    assert.ok(out.every((b) => b === 0x5a), 'and the fault wrote nothing');
    done();
  });

  it('a read-only shared mapping gets read-only PTEs, and a write to it traps (the kernel answers SIGSEGV)', () => {
    const { k, done } = boot({ nrCpus: 2, nodeFrames: [160, 64] });
    const t = k.spawn();
    const { fd } = openFile(k, t, fileOps(0));
    assert.equal(k.syscall(t, NR.mmap, BASE, 2 * PAGE, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0), BASE);
    const ff = fastCpu(k, t);
    assert.equal(ff.tryFault(BASE, false), true);
    assert.equal(k.pool.get(t.mm.pgd, BASE) & PTE_WRITE, 0);
    assert.equal(ff.tryFault(BASE + PAGE, true), false);
    assert.equal(k.fault(t, BASE + PAGE, true), -E.EFAULT);
    // writable: writable PTEs
    mapFile(k, t, fd, 1, BASE + 8 * PAGE);
    assert.equal(ff.tryFault(BASE + 8 * PAGE, false), true);
    assert.equal(k.pool.get(t.mm.pgd, BASE + 8 * PAGE) & (PTE_WRITE | PTE_DIRTY), PTE_WRITE, 'writable, not dirty: a read');
    done();
  });

  it('two CPUs fault the same address: the loser finds the page cache filled and the PTE there, gives its frame back, and retries the access', () => {
    const { k, done } = boot({ nrCpus: 3, nodeFrames: [160, 64] });
    const t = k.spawn();
    const { file, fd } = openFile(k, t, fileOps(PG_UNEVICTABLE | PG_UNMOVABLE));
    mapFile(k, t, fd, 1);
    const other = fastCpu(k, t, 2);
    const engine = zeroThen(k, () => assert.equal(other.tryFault(BASE, true), true, 'CPU 2 takes the page and maps it'));
    const ff = fastCpu(k, t, 1, engine);
    const list = k.alloc.map.pcpCount(1);
    assert.equal(ff.tryFault(BASE, true), true, 'the access is retried');
    assert.deepEqual([ff.handled, ff.passed], [1, 0]);
    assert.equal(pfnAt(k, t, BASE), file.pages.get(0));
    assert.equal(k.alloc.map.pcpCount(1), list);
    settle(k, t);
    assert.deepEqual([t.mm.filePages, t.mm.rss, k.alloc.nrPinned, k.counters.get('faults'), k.keys.pageRefs[0]], [1, 0, 1, 1, 0]);
    done();
  });

  it("a file mapping whose KeyID is not its file's (a key stacked on it) traps: the page must get the file's", () => {
    const { k, done } = boot({ nrCpus: 2, nodeFrames: [160, 64] });
    const t = k.spawn();
    const { fd } = openFile(k, t, fileOps(0));
    mapFile(k, t, fd, 2);
    const key = addKey(k, t);
    setVmaKey(t.mm.vmas.find(BASE)!, key);
    const ff = fastCpu(k, t);
    assert.equal(ff.tryFault(BASE, true), false);
    assert.equal(k.fault(t, BASE, true), 0);
    const pte = k.pool.get(t.mm.pgd, BASE);
    assert.deepEqual([pteKeyid(pte), k.alloc.keyid[ptePfn(pte)]], [key.keyid, 0], 'the kernel maps the file’s page through the VMA’s KeyID');
    done();
  });

  it("the kernel charges a file's page to the mm a CPU of it claimed the file for only when the kernel takes that mm, not another's", () => {
    const { k, done } = boot({ nrCpus: 3, nodeFrames: [160, 64] });
    const a = k.spawn(), b = k.spawn();
    const x = openFile(k, b, fileOps(0));
    const y = openFile(k, a, fileOps(0));
    y.file.get();
    const yB = b.installFd(y.file);
    mapFile(k, a, y.fd, 1);
    mapFile(k, b, x.fd, 1);
    mapFile(k, b, yB, 1, BASE + 8 * PAGE);
    const cpuA = fastCpu(k, a, 1), cpuB = fastCpu(k, b, 2);
    assert.equal(cpuA.tryFault(BASE, true), true, 'A claims y');
    assert.equal(cpuB.tryFault(BASE, true), true, 'B claims x');
    settle(k, b);
    assert.deepEqual([x.file.charged, y.file.charged], [b.mm, null], 'y is A’s, though B maps it too');
    settle(k, a);
    assert.equal(y.file.charged, a.mm);
    done();
  });

  it("the kernel faulting a file's page for a mm whose CPU puts one in first (a guest's fault, say) uses the CPU's page and gives its own back", async () => {
    const { k, done } = boot({ nrCpus: 2, nodeFrames: [160, 64] });
    const t = k.spawn();
    const { file, fd } = openFile(k, t, fileOps(PG_UNEVICTABLE | PG_UNMOVABLE));
    mapFile(k, t, fd, 2);
    const ff = fastCpu(k, t);
    assert.equal(ff.tryFault(BASE + PAGE, true), true); // the claim: t's
    settle(k, t);
    const real = k.machine.engine.zero.bind(k.machine.engine);
    const free = k.alloc.freeFrames();
    const { mock } = await import('node:test');
    const zero = mock.method(k.machine.engine, 'zero', (pfn: Pfn, kid: number) => {
      real(pfn, kid);
      zero.mock.restore();
      assert.equal(ff.tryFault(BASE, true), true, 'the CPU takes offset 0 meanwhile');
    });
    // not under t's write lock, as KVM faults guest_memfd pages for a VMM while its CPUs run
    const pfn = allocFilePage(k, file, 0, null, t.mm);
    assert.equal(pfn, file.pages.get(0));
    assert.equal(pfn, pfnAt(k, t, BASE), "the CPU's page");
    settle(k, t);
    assert.deepEqual([t.mm.filePages, k.alloc.freeFrames()], [2, free - 1], 'one page charged for offset 0, one frame taken');
    done();
  });

  it("a kernel entry builds index tables for the mm's file mappings in address order, 16 in all: a mapping past the budget traps until a later entry reaches it", () => {
    const { k, done } = boot({ nrCpus: 2, nodeFrames: [160, 64] });
    const t = k.spawn();
    const high = BASE + 64 * 1024 * PAGE;
    mapAnon(k, t, 1, high); // a page table at `high` (it outlives the mapping)
    touch(k, t, high, 1);
    assert.equal(k.syscall(t, NR.munmap, high, PAGE), 0);
    const a = openFile(k, t, fileOps(0)), b = openFile(k, t, fileOps(0));
    mapFile(k, t, a.fd, 40 * 1024); // 40 leaves of page offsets, below `high`
    const ff = fastCpu(k, t); // (its entry: the first 16 of them)
    mapFile(k, t, b.fd, 1, high); // this entry: 16 more of a's, none for b
    assert.equal(b.file.pages.dir, 0);
    assert.equal(ff.tryFault(high, true), false);
    settle(k, t); // a's last 9 leaves, then b's directory and leaf
    assert.notEqual(b.file.pages.dir, 0);
    assert.equal(ff.tryFault(high + 8, true), true);
    done();
  });

  it("the kernel settles its CPUs' claims with one look at the mm's VMAs, however many CPUs claimed, and with none when no CPU did", () => {
    const { k, done } = boot({ nrCpus: 3, nodeFrames: [160, 64] });
    const t = k.spawn();
    const x = openFile(k, t, fileOps(0)), y = openFile(k, t, fileOps(0));
    mapFile(k, t, x.fd, 1);
    mapFile(k, t, y.fd, 1, BASE + 8 * PAGE);
    const cpu1 = fastCpu(k, t, 1), cpu2 = fastCpu(k, t, 2);
    // count the kernel's reads of the VMA list while it takes the mm (publishing them at unlock is not counted)
    const list = t.mm.vmas.vmas;
    let reads = 0;
    Object.defineProperty(t.mm.vmas, 'vmas', { get: () => (reads++, list), configurable: true });
    const lookedAt = (): number => {
      reads = 0;
      mmWriteLock(k, t.mm);
      const n = reads;
      mmWriteUnlock(k, t.mm);
      return n;
    };
    assert.equal(lookedAt(), 0, 'no claim: no look');
    assert.equal(cpu1.tryFault(BASE, true), true, 'CPU 1 claims x');
    assert.equal(cpu2.tryFault(BASE + 8 * PAGE, true), true, 'CPU 2 claims y');
    assert.equal(lookedAt(), 1);
    assert.deepEqual([x.file.charged, y.file.charged], [t.mm, t.mm]);
    assert.equal(lookedAt(), 0, 'settled: no look again');
    done();
  });
});
