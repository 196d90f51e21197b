// Fast faults (kernel/fastfault.ts) driven on this thread: a FastFault made
// from the kernel's own shared objects, as a worker CPU makes it, so that every
// outcome is exact (no race between threads). tryFault's result is the
// contract: true when the CPU installed the page (or found it installed), false
// when the fault must trap to the kernel. Races are set up by hand: a hook in
// the CPU's engine runs "the other CPU" or "the kernel" at the point where the
// real one could come in.
import assert from 'node:assert/strict';
import { afterEach, describe, it, mock } from 'node:test';
import { getDesign } from '../../interfaces/registry.js';
import {
  CHARGE_BATCH,
  LRU_BATCH,
  MM_FAST,
  MM_LOCK,
  MM_RSS,
  MM_WRITER,
  SNAP_MAX,
  mmWriteLock,
  mmWriteUnlock,
} from '../../kernel/fastfault.js';
import type { Kernel, Task } from '../../kernel/kernel.js';
import type { MktmeKey } from '../../kernel/keys.js';
import { doMprotect } from '../../kernel/mprotect.js';
import { PCP_BATCH } from '../../kernel/page_alloc.js';
import { PTE_ACCESSED, PTE_DIRTY, PTE_PRESENT, PTE_WRITE, mkPte, ptePfn } from '../../kernel/pgtable.js';
import { NR } from '../../kernel/syscalls.js';
import { MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PROT_EXEC, PROT_READ, PROT_WRITE } from '../../kernel/uapi.js';
import { VM_LOCKED } from '../../kernel/vma.js';
import { BASE, PAGE, boot, fastCpu, fastFaultOn, runOn, settle, zeroThen } from './util.js';

const RW = PROT_READ | PROT_WRITE;
const LEAF_SPAN = 1024 * PAGE; // one leaf table: 4 MiB

function mmapAt(k: Kernel, t: Task, addr: number, len: number, prot = RW, flags = MAP_PRIVATE | MAP_ANONYMOUS): void {
  assert.equal(k.syscall(t, NR.mmap, addr, len, prot, flags | MAP_FIXED, -1, 0), addr);
}

const present = (k: Kernel, t: Task, va: number): boolean => (k.pool.get(t.mm.pgd, va) & PTE_PRESENT) !== 0;

describe('fast faults: the VMA snapshot and its lookup', () => {
  // V0 [BASE, +2P) rw, a hole [+2P, +3P), V1 [+3P, +4P) read-only, V2 [+4P, +6P) rw right after V1
  function threeVmas() {
    const b = boot({ nrCpus: 2, nodeFrames: [160, 64] });
    const t = b.k.spawn();
    mmapAt(b.k, t, BASE, 2 * PAGE);
    mmapAt(b.k, t, BASE + 3 * PAGE, PAGE, PROT_READ);
    mmapAt(b.k, t, BASE + 4 * PAGE, 2 * PAGE);
    assert.equal(t.mm.vmas.vmas.length, 3);
    const ff = fastCpu(b.k, t);
    return { ...b, t, ff };
  }

  it('a fault at the first byte of each of three VMAs is handled on the CPU, with the VMA of that address', () => {
    const { k, t, ff, done } = threeVmas();
    assert.equal(ff.tryFault(BASE + 3 * PAGE, false), true, 'read of V1 (read-only, second in the snapshot)');
    assert.equal(k.pool.get(t.mm.pgd, BASE + 3 * PAGE) & PTE_WRITE, 0, 'a read-only VMA gets a read-only PTE');
    // vm_page_prot carries ACCESSED (pgtable.ts pageProt): the PTE has it before any access retries
    const flags = PTE_PRESENT | PTE_WRITE | PTE_ACCESSED | PTE_DIRTY;
    assert.equal(k.pool.get(t.mm.pgd, BASE + 3 * PAGE) & flags, PTE_PRESENT | PTE_ACCESSED, 'read of V1: present, accessed');
    assert.equal(ff.tryFault(BASE + 4 * PAGE, true), true, 'write at V2 start = V1 end');
    assert.equal(ff.tryFault(BASE, true), true, 'write at V0 start');
    assert.equal(k.pool.get(t.mm.pgd, BASE) & flags, flags, 'write of V0: present, writable, accessed, dirty');
    assert.equal(ff.tryFault(BASE + 5 * PAGE + 100, true), true, 'write inside the last page of V2');
    assert.deepEqual([ff.handled, ff.passed], [4, 0]);
    assert.equal(k.counters.get('faults'), 4);
    for (const p of [0, 3, 4, 5]) assert.ok(present(k, t, BASE + p * PAGE), `page ${p}`);
    settle(k, t);
    assert.deepEqual(t.mm.lru, [BASE + 3 * PAGE, BASE + 4 * PAGE, BASE, BASE + 5 * PAGE]);
    assert.equal(t.mm.rss, 4);
    done();
  });

  it('a write to the read-only VMA between two writable ones traps (the kernel answers SIGSEGV)', () => {
    const { k, t, ff, done } = threeVmas();
    assert.equal(ff.tryFault(BASE + 3 * PAGE, true), false, 'write of V1, first lookup');
    assert.equal(ff.tryFault(BASE + 4 * PAGE, true), true, 'V2 is now the cached VMA');
    assert.equal(ff.tryFault(BASE + 3 * PAGE, true), false, 'write of V1, below the cached VMA');
    assert.equal(ff.tryFault(BASE + PAGE, true), true, 'V0 is now the cached VMA');
    assert.equal(ff.tryFault(BASE + 3 * PAGE + 16, true), false, 'write of V1, above the cached VMA');
    assert.equal(ff.tryFault(BASE + 3 * PAGE + 8, false), true, 'a read of V1 is fine');
    assert.deepEqual([ff.handled, ff.passed], [3, 3]);
    assert.ok(!present(k, t, BASE + 4 * PAGE + PAGE) && present(k, t, BASE + 3 * PAGE));
    done();
  });

  it('an address in no VMA traps: in the hole, below the first, at the end of the last', () => {
    const { k, t, ff, done } = threeVmas();
    // reads: the VMA after the hole is readable
    assert.equal(ff.tryFault(BASE + 2 * PAGE, false), false, 'hole, nothing cached');
    assert.equal(ff.tryFault(BASE + 4 * PAGE, true), true);
    assert.equal(ff.tryFault(BASE + 2 * PAGE + 4, false), false, 'hole, V2 cached');
    assert.equal(ff.tryFault(BASE - PAGE, false), false, 'below V0');
    assert.equal(ff.tryFault(BASE + 6 * PAGE, true), false, 'V2 end');
    assert.deepEqual([ff.handled, ff.passed], [1, 4]);
    for (const va of [BASE + 2 * PAGE, BASE - PAGE, BASE + 6 * PAGE]) assert.equal(k.pool.get(t.mm.pgd, va), 0);
    assert.equal(k.counters.get('faults'), 1);
    done();
  });

  it('a page whose PTE is not empty is the kernel\'s, even in a fast VMA', () => {
    const { k, t, ff, done } = threeVmas();
    assert.equal(ff.tryFault(BASE, false), true);
    const pte = k.pool.get(t.mm.pgd, BASE);
    const free = k.alloc.map.pcpCount(1);
    assert.equal(ff.tryFault(BASE, true), false);
    assert.equal(k.pool.get(t.mm.pgd, BASE), pte);
    assert.equal(k.alloc.map.pcpCount(1), free);
    assert.deepEqual([ff.handled, ff.passed], [1, 1]);
    done();
  });

  it('the cached VMA is dropped when the kernel republishes: a VMA turned read-only takes no write', () => {
    const { k, t, ff, done } = threeVmas();
    assert.equal(ff.tryFault(BASE, true), true); // V0 cached, writable
    assert.equal(k.syscall(t, NR.mprotect, BASE, 2 * PAGE, PROT_READ), 0);
    assert.equal(t.mm.vmas.find(BASE)!.start, BASE);
    assert.equal(ff.tryFault(BASE + PAGE, true), false, 'write to V0 after mprotect(PROT_READ)');
    assert.equal(ff.tryFault(BASE + PAGE, false), true, 'a read is still the CPU\'s');
    assert.equal(k.pool.get(t.mm.pgd, BASE + PAGE) & PTE_WRITE, 0);
    done();
  });

  it('a VMA unmapped since the last publish is gone for the CPU, though its old entry is still in the snapshot', () => {
    const { k, t, ff, done } = threeVmas();
    assert.equal(k.syscall(t, NR.munmap, BASE + 4 * PAGE, 2 * PAGE), 0);
    assert.equal(ff.tryFault(BASE + 4 * PAGE, true), false);
    assert.equal(ff.tryFault(BASE + 5 * PAGE, false), false);
    assert.equal(k.pool.get(t.mm.pgd, BASE + 4 * PAGE), 0);
    assert.equal(ff.tryFault(BASE + PAGE, true), true);
    done();
  });
});

describe('fast faults: the snapshot holds SNAP_MAX VMAs, and the LRU batches lie after it', () => {
  it(`with ${SNAP_MAX} VMAs every one is the CPU's; with one more, every fault traps`, () => {
    const { k, done } = boot({ nrCpus: 2, nodeFrames: [160, 64] });
    const t = k.spawn();
    const at = (j: number) => BASE + 2 * j * PAGE; // one page each, a hole between: no merging
    for (let j = 0; j < SNAP_MAX; j++) mmapAt(k, t, at(j), PAGE);
    assert.equal(t.mm.vmas.vmas.length, SNAP_MAX);
    const ff = fastCpu(k, t);
    assert.equal(ff.tryFault(at(SNAP_MAX - 1), true), true, 'the last VMA');
    assert.equal(ff.tryFault(at(240), true), true, 'VMA 240');
    assert.equal(ff.tryFault(at(239), true), true, 'VMA 239');
    assert.equal(ff.tryFault(at(32), true), true, 'VMA 32');
    assert.equal(ff.tryFault(at(1), true), true, 'VMA 1');
    settle(k, t);
    assert.deepEqual(t.mm.lru, [at(SNAP_MAX - 1), at(240), at(239), at(32), at(1)]);
    for (const j of [SNAP_MAX - 1, 240, 239, 32, 1]) assert.equal(k.alloc.keyid[ptePfn(k.pool.get(t.mm.pgd, at(j)))], 0);
    mmapAt(k, t, at(SNAP_MAX), PAGE);
    assert.equal(t.mm.vmas.vmas.length, SNAP_MAX + 1);
    assert.equal(ff.tryFault(at(0), true), false, 'VMA 0 of 257');
    assert.equal(ff.tryFault(at(SNAP_MAX), true), false, 'VMA 256 of 257');
    assert.deepEqual([ff.handled, ff.passed], [5, 2]);
    assert.equal(k.syscall(t, NR.munmap, at(SNAP_MAX), PAGE), 0);
    assert.equal(ff.tryFault(at(0), true), true, 'back to 256');
    k.exit(t);
    done();
  });
});

describe('fast faults: page tables built ahead at publish', () => {
  it('the first fault in a VMA mapped while fast faults are on is the CPU\'s: its table is there', () => {
    const { k, done } = boot({ nrCpus: 2, nodeFrames: [160, 64] });
    const t = k.spawn();
    const ff = fastCpu(k, t);
    mmapAt(k, t, BASE, 4 * PAGE);
    assert.equal(ff.tryFault(BASE + 2 * PAGE, true), true);
    assert.deepEqual([ff.handled, ff.passed], [1, 0]);
    done();
  });

  it('a VMA that starts in the middle of a leaf span gets the table of that span and of the next', () => {
    const { k, done } = boot({ nrCpus: 2, nodeFrames: [160, 64] });
    const t = k.spawn();
    const ff = fastCpu(k, t);
    const start = BASE + 3 * (LEAF_SPAN / 4); // 3 MiB into a span
    mmapAt(k, t, start, LEAF_SPAN / 2);
    assert.equal(ff.tryFault(start, true), true, 'first page, first span');
    assert.equal(ff.tryFault(BASE + LEAF_SPAN, true), true, 'first page of the next span');
    done();
  });

  it('at most 16 leaf tables per publish: the 17th span traps until the next kernel entry builds it', () => {
    const { k, done } = boot({ nrCpus: 2, nodeFrames: [160, 64] });
    const t = k.spawn();
    const ff = fastCpu(k, t);
    const used = k.pool.used;
    mmapAt(k, t, BASE, 20 * LEAF_SPAN);
    assert.equal(k.pool.used - used, 1 + 16, 'one middle table, 16 leaves');
    assert.equal(ff.tryFault(BASE + 15 * LEAF_SPAN, true), true, 'span 15');
    assert.equal(ff.tryFault(BASE + 16 * LEAF_SPAN, true), false, 'span 16: no table yet');
    assert.equal(k.pool.get(t.mm.pgd, BASE + 16 * LEAF_SPAN), 0);
    settle(k, t);
    assert.equal(k.pool.used - used, 1 + 20);
    assert.equal(ff.tryFault(BASE + 16 * LEAF_SPAN, true), true, 'span 16 after the next publish');
    assert.equal(ff.tryFault(BASE + 19 * LEAF_SPAN, true), true, 'span 19');
    done();
  });

  it('no table is built ahead under a VMA the CPUs do not fault on (shared anonymous memory)', () => {
    const { k, done } = boot({ nrCpus: 2, nodeFrames: [160, 64] });
    const t = k.spawn();
    const ff = fastCpu(k, t);
    const used = k.pool.used;
    mmapAt(k, t, BASE, 4 * LEAF_SPAN, RW, MAP_SHARED | MAP_ANONYMOUS);
    assert.equal(k.pool.used, used);
    assert.equal(ff.tryFault(BASE, true), false);
    done();
  });

  it('an mm without fast faults gets no tables ahead and its CPUs no per-CPU frames', () => {
    const { k, done } = boot({ nrCpus: 2, nodeFrames: [160, 64] });
    const t = k.spawn();
    runOn(k, t, 1); // a worker CPU whose faults all trap (fastFaults false)
    const used = k.pool.used;
    const free = k.alloc.freeFrames();
    mmapAt(k, t, BASE, 4 * LEAF_SPAN);
    assert.equal(k.pool.used, used);
    assert.equal(k.alloc.map.pcpCount(1), 0);
    assert.equal(k.alloc.freeFrames(), free);
    done();
  });
});

describe('fast faults: which VMAs a CPU may fault on', () => {
  it('a locked VMA (VM_LOCKED: its pages are pinned at fault) is the kernel\'s', () => {
    const { k, done } = boot({ nrCpus: 2, nodeFrames: [160, 64] });
    const t = k.spawn();
    mmapAt(k, t, BASE, 4 * PAGE);
    t.mm.vmas.find(BASE)!.flags |= VM_LOCKED; // as mlock would (no syscall of the model sets it)
    const ff = fastCpu(k, t);
    assert.equal(ff.tryFault(BASE, true), false);
    assert.equal(k.fault(t, BASE, true), 0);
    assert.equal(k.alloc.nrPinned, 1);
    done();
  });

  for (const profile of ['sev', 'tdx']) {
    it(`${profile} (pinned swap): a keyed VMA is the kernel's (pinned at fault), a plain one the CPU's`, () => {
      const { k, done } = boot({ profile, nrCpus: 2, nodeFrames: [160, 64] });
      const t = k.spawn();
      mmapAt(k, t, BASE, 4 * PAGE);
      mmapAt(k, t, BASE + LEAF_SPAN, 4 * PAGE);
      const serial = k.syscall(t, NR.add_key, 'mktme', 'ff', 'type=cpu algorithm=aes-xts-128');
      const key = k.keys.lookup(serial, t.creds) as MktmeKey;
      assert.ok(key, 'a key on this profile');
      assert.equal(doMprotect(k, t, BASE + LEAF_SPAN, 4 * PAGE, RW, key), 0);
      const ff = fastCpu(k, t);
      assert.equal(ff.tryFault(BASE, true), true, 'KeyID 0');
      assert.equal(ff.tryFault(BASE + LEAF_SPAN, true), false, 'keyed');
      assert.equal(k.fault(t, BASE + LEAF_SPAN, true), 0);
      assert.equal(k.alloc.nrPinned, 1);
      done();
    });
  }
  it('mktme (swap re-encrypts): a keyed VMA is the CPU\'s', () => {
    const { k, done } = boot({ nrCpus: 2, nodeFrames: [160, 64] });
    const t = k.spawn();
    mmapAt(k, t, BASE, 4 * PAGE);
    const serial = k.syscall(t, NR.add_key, 'mktme', 'ff', 'type=cpu algorithm=aes-xts-128');
    const key = k.keys.lookup(serial, t.creds) as MktmeKey;
    assert.equal(doMprotect(k, t, BASE, 4 * PAGE, RW, key), 0);
    const ff = fastCpu(k, t);
    assert.equal(ff.tryFault(BASE, true), true);
    assert.equal(k.alloc.keyid[ptePfn(k.pool.get(t.mm.pgd, BASE))], key.keyid);
    done();
  });
});

describe('fast faults: per-CPU frames and LRU batches', () => {
  it('leaving an mm, the kernel tops up the lists of the CPUs running it, not those of other mms', () => {
    const { k, done } = boot({ nrCpus: 3, nodeFrames: [300, 64] });
    const a = k.spawn();
    const b = k.spawn();
    runOn(k, b, 2);
    fastCpu(k, a, 1);
    mmapAt(k, a, BASE, PAGE);
    assert.equal(k.alloc.map.pcpCount(1), PCP_BATCH);
    assert.equal(k.alloc.map.pcpCount(2), 0);
    done();
  });

  it('a VMA whose first page was faulted on a CPU has its anon_vma once the kernel drains the batch', () => {
    const { k, done } = boot({ nrCpus: 2, nodeFrames: [160, 64] });
    const t = k.spawn();
    const ff = fastCpu(k, t);
    mmapAt(k, t, BASE, 4 * PAGE);
    mmapAt(k, t, BASE + 8 * PAGE, 4 * PAGE);
    assert.equal(ff.tryFault(BASE + 8 * PAGE, true), true);
    settle(k, t);
    assert.notEqual(t.mm.vmas.find(BASE + 8 * PAGE)!.anonVma, 0);
    assert.equal(t.mm.vmas.find(BASE)!.anonVma, 0);
    assert.deepEqual(t.mm.lru, [BASE + 8 * PAGE]);
    done();
  });

  it('a batch whose pages go from one VMA to another, either way round, gives each its anon_vma, in fault order', () => {
    // two VMAs side by side that do not merge (RW and RWX): a page at the end
    // of the VMA looked up last is the next one's first
    for (const order of [
      [BASE + 3 * PAGE, BASE + 4 * PAGE],
      [BASE + 5 * PAGE, BASE + 2 * PAGE, BASE + 6 * PAGE, BASE],
    ]) {
      const { k, done } = boot({ nrCpus: 2, nodeFrames: [160, 64] });
      const t = k.spawn();
      const ff = fastCpu(k, t);
      mmapAt(k, t, BASE, 4 * PAGE);
      mmapAt(k, t, BASE + 4 * PAGE, 4 * PAGE, RW | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
      assert.equal(t.mm.vmas.vmas.length, 2, 'two VMAs');
      for (const va of order) assert.equal(ff.tryFault(va, true), true);
      settle(k, t);
      assert.notEqual(t.mm.vmas.find(BASE)!.anonVma, 0, `${order}: the first VMA`);
      assert.notEqual(t.mm.vmas.find(BASE + 4 * PAGE)!.anonVma, 0, `${order}: the second VMA`);
      assert.deepEqual(t.mm.lru, order);
      done();
    }
  });

  it(`a CPU's LRU batch holds ${LRU_BATCH} pages, even when its list holds more frames`, () => {
    const { k, done } = boot({ nrCpus: 2, nodeFrames: [300, 64] });
    const a = k.spawn();
    const b = k.spawn();
    mmapAt(k, a, BASE, PAGE);
    mmapAt(k, b, BASE, (LRU_BATCH + 2) * PAGE);
    const fb = fastCpu(k, b, 1); // CPU 1 runs b: its list is topped up
    assert.equal(fb.tryFault(BASE, true), true);
    fastCpu(k, a, 1); // switched to a: the kernel tops its list up again
    runOn(k, b, 1); // and back to b, which the kernel has not entered meanwhile
    assert.equal(k.alloc.map.pcpCount(1), PCP_BATCH);
    for (let p = 1; p < LRU_BATCH; p++) assert.equal(fb.tryFault(BASE + p * PAGE, true), true, `page ${p}`);
    assert.ok(k.alloc.map.pcpCount(1) > 0);
    assert.equal(fb.tryFault(BASE + LRU_BATCH * PAGE, true), false, 'batch full');
    settle(k, b);
    assert.equal(b.mm.lru.length, LRU_BATCH);
    assert.equal(fb.tryFault(BASE + LRU_BATCH * PAGE, true), true, 'after the drain');
    done();
  });

  it('pinned file pages count against the memory limit of fast faults too', () => {
    const { k, done } = boot({ nrCpus: 2, nodeFrames: [160, 64] });
    getDesign('memfd-secret').install(k); // memfd_secret(2): pinned pages charged to the mm
    const t = k.spawn({ memLimit: 4 });
    const fd = k.syscall(t, NR.memfd_secret, 0);
    assert.ok(fd >= 0, `memfd_secret: ${fd}`);
    assert.equal(k.syscall(t, NR.ftruncate, fd, 2 * PAGE), 0);
    const s = k.syscall(t, NR.mmap, 0, 2 * PAGE, RW, MAP_SHARED, fd, 0);
    assert.ok(s > 0);
    assert.equal(k.fault(t, s, true), 0);
    assert.equal(k.fault(t, s + PAGE, true), 0);
    assert.equal(t.mm.filePages, 2);
    mmapAt(k, t, BASE, 4 * PAGE);
    const ff = fastCpu(k, t);
    assert.equal(ff.tryFault(BASE, true), true);
    assert.equal(ff.tryFault(BASE + PAGE, true), true);
    assert.equal(ff.tryFault(BASE + 2 * PAGE, true), false, 'rss 2 + file pages 2 = limit 4');
    assert.equal(t.mm.rss, 2);
    done();
  });

  it('a page another CPU installs first: the frame goes back to the list, nothing is flushed, the access is retried', () => {
    const { k, done } = boot({ nrCpus: 3, nodeFrames: [160, 64] });
    const t = k.spawn();
    mmapAt(k, t, BASE, 4 * PAGE);
    const real = k.machine.engine;
    let theirs = -1;
    // the other CPU wins between our PTE check and our compare-and-exchange (during our zeroing)
    const engine = zeroThen(k, () => {
      theirs = k.alloc.alloc(0);
      Atomics.store(k.pool.words, k.pool.pteIndex(t.mm.pgd, BASE), mkPte(theirs, 0, PTE_PRESENT | PTE_WRITE));
    });
    const ff = fastCpu(k, t, 1, engine);
    const list = k.alloc.map.pcpCount(1);
    const flushed = real.counters.get('clflush_lines');
    const refs0 = k.keys.pageRefs[0];
    assert.equal(ff.tryFault(BASE, true), true);
    assert.equal(ptePfn(k.pool.get(t.mm.pgd, BASE)), theirs);
    assert.equal(k.alloc.map.pcpCount(1), list);
    assert.equal(real.counters.get('clflush_lines'), flushed);
    assert.equal(k.keys.pageRefs[0], refs0);
    assert.equal(t.mm.rss, 0);
    assert.equal(t.mm.shared.i32[t.mm.shared.stockIndex(1)], CHARGE_BATCH, 'the charge went back to the stock');
    assert.deepEqual([ff.handled, ff.passed], [1, 0]);
    assert.equal(k.counters.get('faults'), 0);
    done();
  });
});

describe('fast faults: the per-CPU charge stock', () => {
  const rssWord = (t: Task): number => t.mm.shared.i32[MM_RSS];
  const stock = (t: Task, cpu: number): number => t.mm.shared.i32[t.mm.shared.stockIndex(cpu)];

  it("a CPU's first fault charges a batch to RSS and the next ones come from its stock; rss counts resident pages, and the kernel takes the stock back", () => {
    const { k, done } = boot({ nrCpus: 3, nodeFrames: [160, 64] });
    const t = k.spawn();
    mmapAt(k, t, BASE, 8 * PAGE);
    const ff = fastCpu(k, t, 1);
    runOn(k, t, 2);
    settle(k, t); // CPU 2's per-CPU list filled
    const f2 = fastFaultOn(k, t, 2, k.machine.engine);
    const line = (i: number): number => Math.floor(i / 16);
    const sh = t.mm.shared;
    for (const c of [1, 2]) assert.equal(line(sh.stockIndex(c)), line(sh.readerIndex(c)), `CPU ${c}'s stock is on its own line, beside its reader word`);
    for (const c of [1, 2]) {
      // and so are the words the kernel drains from it: file pages charged, pins, claims
      const words = [sh.readerIndex(c), sh.stockIndex(c), sh.fileIndex(c), sh.pinnedIndex(c), sh.claimedIndex(c)];
      assert.equal(new Set(words).size, 5, `CPU ${c}: ${words}`);
      for (const i of words) assert.equal(line(i), 1 + c, `CPU ${c}: word ${i}`);
    }
    assert.ok(line(sh.stockIndex(1)) > line(MM_RSS), 'not on the line of RSS');
    assert.equal(ff.tryFault(BASE, true), true);
    assert.deepEqual([rssWord(t), stock(t, 1), t.mm.rss], [CHARGE_BATCH, CHARGE_BATCH - 1, 1]);
    const realCas = Atomics.compareExchange;
    let cases = 0;
    mock.method(Atomics, 'compareExchange', (a: Int32Array, i: number, v: number, n: number) => {
      if (a === t.mm.shared.i32) cases++;
      return realCas(a, i, v, n);
    });
    assert.equal(ff.tryFault(BASE + PAGE, true), true);
    mock.restoreAll();
    assert.equal(cases, 0, 'a page from the stock touches no shared word of the mm');
    assert.deepEqual([rssWord(t), stock(t, 1), t.mm.rss], [CHARGE_BATCH, CHARGE_BATCH - 2, 2]);
    // a second CPU has a stock of its own
    assert.equal(f2.tryFault(BASE + 2 * PAGE, true), true);
    assert.deepEqual([rssWord(t), stock(t, 2), t.mm.rss], [2 * CHARGE_BATCH, CHARGE_BATCH - 1, 3]);
    mmWriteLock(k, t.mm);
    assert.deepEqual([rssWord(t), stock(t, 1), stock(t, 2), t.mm.rss], [3, 0, 0, 3], 'exact while the kernel holds the mm');
    t.mm.rss = 5;
    assert.equal(rssWord(t), 5);
    mmWriteUnlock(k, t.mm);
    done();
  });

  it('closer to the limit than a batch a CPU charges one page at a time, and at the limit it traps with nothing charged', () => {
    const { k, done } = boot({ nrCpus: 2, nodeFrames: [160, 64] });
    const t = k.spawn({ memLimit: CHARGE_BATCH + 2 });
    mmapAt(k, t, BASE, (CHARGE_BATCH + 4) * PAGE);
    const ff = fastCpu(k, t, 1);
    for (let p = 0; p < CHARGE_BATCH; p++) assert.equal(ff.tryFault(BASE + p * PAGE, true), true, `page ${p}`);
    assert.deepEqual([rssWord(t), stock(t, 1)], [CHARGE_BATCH, 0]);
    settle(k, t); // the LRU batch drained, the per-CPU list filled again
    assert.equal(ff.tryFault(BASE + CHARGE_BATCH * PAGE, true), true);
    assert.deepEqual([rssWord(t), stock(t, 1)], [CHARGE_BATCH + 1, 0], 'one page, not a batch');
    assert.equal(ff.tryFault(BASE + (CHARGE_BATCH + 1) * PAGE, true), true);
    assert.equal(ff.tryFault(BASE + (CHARGE_BATCH + 2) * PAGE, true), false, 'at the limit');
    assert.deepEqual([rssWord(t), stock(t, 1), t.mm.rss], [CHARGE_BATCH + 2, 0, CHARGE_BATCH + 2]);
    done();
  });

  it('a CPU whose per-CPU list is empty gives the page it charged back to its stock and traps', () => {
    const { k, done } = boot({ nrCpus: 2, nodeFrames: [160, 64] });
    const t = k.spawn();
    mmapAt(k, t, BASE, 4 * PAGE);
    const ff = fastCpu(k, t, 1);
    assert.equal(ff.tryFault(BASE, true), true);
    k.alloc.drainPcps();
    assert.equal(ff.tryFault(BASE + PAGE, true), false);
    assert.deepEqual([rssWord(t), stock(t, 1), t.mm.rss], [CHARGE_BATCH, CHARGE_BATCH - 1, 1]);
    done();
  });
});

describe('fast faults: the tallies and the mm lock word', () => {
  afterEach(() => mock.restoreAll());
  const lockWord = (L: Int32Array): number => L[MM_LOCK];

  it('a fault while the kernel holds the mm, and one outside every VMA, count as passed, not handled', () => {
    const { k, done } = boot({ nrCpus: 2, nodeFrames: [160, 64] });
    const t = k.spawn();
    mmapAt(k, t, BASE, 4 * PAGE);
    const ff = fastCpu(k, t);
    mmWriteLock(k, t.mm);
    assert.equal(ff.tryFault(BASE, true), false);
    assert.deepEqual([ff.handled, ff.passed], [0, 1]);
    mmWriteUnlock(k, t.mm);
    assert.equal(ff.tryFault(BASE + LEAF_SPAN, true), false);
    assert.deepEqual([ff.handled, ff.passed], [0, 2]);
    assert.equal(ff.tryFault(BASE, true), true);
    assert.deepEqual([ff.handled, ff.passed], [1, 2]);
    done();
  });

  it('a fault enters and leaves through its own reader word: it never writes the lock word, and a kernel arriving between its store and its look turns it away', () => {
    const { k, done } = boot({ nrCpus: 3, nodeFrames: [160, 64] });
    const t = k.spawn();
    mmapAt(k, t, BASE, 4 * PAGE);
    const s = t.mm.shared;
    const L = s.i32;
    const ff = fastCpu(k, t, 2);
    const r = s.readerIndex(2);
    assert.notEqual(Math.floor(r / 16), Math.floor(s.readerIndex(1) / 16), 'each CPU has a cache line of its own');
    assert.notEqual(Math.floor(r / 16), Math.floor(MM_LOCK / 16), 'apart from the lock word');
    const realStore = Atomics.store;
    const stores: [number, number][] = [];
    let kernelArrives = false;
    mock.method(Atomics, 'store', (a: Int32Array, i: number, v: number) => {
      if (a === L) stores.push([i, v]);
      const out = realStore(a, i, v);
      if (a === L && i === r && v === 1 && kernelArrives) Atomics.or(L, MM_LOCK, MM_WRITER); // after the store, before the look
      return out;
    });
    const wakes: number[] = [];
    const realNotify = Atomics.notify;
    mock.method(Atomics, 'notify', (a: Int32Array, i: number, n?: number) => {
      if (a === L) wakes.push(i);
      return realNotify(a, i, n);
    });
    assert.equal(ff.tryFault(BASE, true), true);
    assert.deepEqual(stores, [[r, 1], [r, 0]], 'in and out on its own word');
    assert.deepEqual([ff.handled, ff.passed, L[MM_LOCK], wakes.length], [1, 0, 0, 0]);
    kernelArrives = true;
    assert.equal(ff.tryFault(BASE + PAGE, true), false, 'the kernel took the mm');
    mock.restoreAll();
    assert.deepEqual(stores.slice(2), [[r, 1], [r, 0]]);
    assert.deepEqual(wakes, [r], 'leaving, it wakes the kernel that may wait for it');
    assert.deepEqual([ff.handled, ff.passed, L[r], present(k, t, BASE + PAGE)], [1, 1, 0, false]);
    assert.equal(k.counters.get('faults'), 1, 'one fault, counted once');
    Atomics.store(L, MM_LOCK, 0);
    done();
  });

  it('an mm the kernel has not opened to CPU-side faults (MM_FAST 0) sends every fault to the kernel, lock word untouched', () => {
    const { k, done } = boot({ nrCpus: 2, nodeFrames: [160, 64] });
    const t = k.spawn();
    mmapAt(k, t, BASE, 4 * PAGE);
    const ff = fastCpu(k, t);
    const L = t.mm.shared.i32;
    L[MM_FAST] = 0;
    assert.equal(ff.tryFault(BASE, true), false);
    assert.deepEqual([ff.handled, ff.passed, lockWord(L), present(k, t, BASE)], [0, 1, 0, false]);
    L[MM_FAST] = 1;
    assert.equal(ff.tryFault(BASE, true), true);
    assert.deepEqual([ff.handled, ff.passed, lockWord(L), present(k, t, BASE)], [1, 1, 0, true]);
    done();
  });

  it("the kernel polls a CPU's reader word 2000 times while the CPU is inside, then sleeps on it until the CPU leaves", () => {
    const { k, done } = boot({ nrCpus: 3, nodeFrames: [160, 64] });
    const t = k.spawn();
    const s = t.mm.shared;
    const L = s.i32;
    const r = s.readerIndex(2);
    const realLoad = Atomics.load;
    const realStore = Atomics.store;
    let polls = 0;
    const sleeps: number[] = [];
    realStore(L, r, 1); // CPU 2 is inside a fast fault
    mock.method(Atomics, 'load', (a: Int32Array, i: number) => {
      if (a === L && i === r) polls++;
      return realLoad(a, i);
    });
    mock.method(Atomics, 'wait', (a: Int32Array, i: number, v: number) => {
      assert.ok(a === L && i === r && v === 1);
      assert.equal(realLoad(L, MM_LOCK), MM_WRITER, 'the writer is announced before the kernel waits');
      sleeps.push(polls);
      realStore(L, r, 0); // the CPU leaves while the kernel sleeps
      return 'ok';
    });
    mmWriteLock(k, t.mm);
    mock.restoreAll();
    assert.deepEqual(sleeps, [2000]);
    assert.equal(polls, 2001, 'one look after the wake');
    assert.equal(realLoad(L, MM_LOCK), MM_WRITER);
    mmWriteUnlock(k, t.mm);
    assert.equal(realLoad(L, MM_LOCK), 0);
    done();
  });

  it('a CPU that leaves while the kernel waits wakes it on its reader word; one that leaves an unlocked mm wakes nobody', () => {
    const { k, done } = boot({ nrCpus: 2, nodeFrames: [160, 64] });
    const t = k.spawn();
    mmapAt(k, t, BASE, 4 * PAGE);
    const L = t.mm.shared.i32;
    let kernelArrives = false;
    const engine = zeroThen(k, () => {
      if (kernelArrives) Atomics.or(L, MM_LOCK, MM_WRITER); // the kernel takes the mm while we are inside
    });
    const ff = fastCpu(k, t, 1, engine);
    const wakes: number[] = [];
    const realNotify = Atomics.notify;
    mock.method(Atomics, 'notify', (a: Int32Array, i: number, n?: number) => {
      if (a === L) wakes.push(i);
      return realNotify(a, i, n);
    });
    assert.equal(ff.tryFault(BASE, true), true);
    assert.deepEqual(wakes, []);
    kernelArrives = true;
    assert.equal(ff.tryFault(BASE + PAGE, true), true, 'a CPU inside finishes its fault');
    assert.deepEqual(wakes, [t.mm.shared.readerIndex(1)]);
    mock.restoreAll();
    assert.equal(Atomics.load(L, MM_LOCK), MM_WRITER);
    Atomics.store(L, MM_LOCK, 0);
    done();
  });

  it('a write unlock without the lock is a kernel bug: it throws', () => {
    const { k, done } = boot({ nrCpus: 2, nodeFrames: [160, 64] });
    const t = k.spawn();
    assert.throws(() => mmWriteUnlock(k, t.mm), new RegExp(`mm ${t.mm.id}: write unlock without lock`));
    t.mm.lockDepth = 0;
    done();
  });
});

describe('per-CPU lists across memory nodes', () => {
  it('a CPU that ran a node-1 mm and then runs a node-0 mm gets node-0 frames, and its faults stay on the fast path', () => {
    const { k, done } = boot({ nodeFrames: [160, 160], nrCpus: 2 });
    const t1 = k.spawn({ node: 1 });
    mmapAt(k, t1, BASE, 8 * PAGE);
    const f1 = fastCpu(k, t1, 1);
    for (let i = 0; i < 8; i++) assert.equal(f1.tryFault(BASE + i * PAGE, true), true);
    settle(k, t1);
    assert.equal(k.alloc.map.pcpCountOf(1, 1), PCP_BATCH, 'a full list of node-1 frames');
    const t0 = k.spawn({ node: 0 });
    mmapAt(k, t0, BASE, 8 * PAGE); // the kernel leaves t0's mm: CPU 1 (running it from here) is refilled
    const f0 = fastCpu(k, t0, 1);
    settle(k, t0);
    assert.equal(k.alloc.map.pcpCountOf(1, 0), PCP_BATCH, 'the node-1 list was drained and refilled from node 0');
    for (let i = 0; i < 8; i++) assert.equal(f0.tryFault(BASE + i * PAGE, true), true, `fault ${i} handled on the CPU`);
    assert.equal(f0.handled, 8);
    assert.equal(f0.passed, 0);
    done();
  });
});
