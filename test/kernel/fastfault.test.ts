// Faults handled on the faulting CPU (kernel/fastfault.ts): with one CPU the
// kernel's counts, LRU order and frames are exactly those of a kernel that
// handles every fault itself; with several racing CPUs no frame is owned
// twice, every reference balances, and the memory limit holds.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Kernel, Task } from '../../kernel/kernel.js';
import type { MktmeKey } from '../../kernel/keys.js';
import { doMprotect } from '../../kernel/mprotect.js';
import { PG_ALLOCATED, PG_ANON, PG_DAX } from '../../kernel/page_alloc.js';
import { PTE_PRESENT, ptePfn, pteKeyid } from '../../kernel/pgtable.js';
import { NR } from '../../kernel/syscalls.js';
import { MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE } from '../../kernel/uapi.js';
import { BASE, PAGE, boot, runCpus, settle } from './util.js';

function mapKeyed(k: Kernel, t: Task, pages: number): MktmeKey {
  assert.equal(k.syscall(t, NR.mmap, BASE, pages * PAGE, 3, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), BASE);
  const serial = k.syscall(t, NR.add_key, 'mktme', 'ff', 'type=cpu algorithm=aes-xts-128');
  const key = k.keys.lookup(serial, t.creds) as MktmeKey;
  assert.equal(doMprotect(k, t, BASE, pages * PAGE, 3, key), 0);
  return key;
}

/** Everything a fault leaves behind, for comparing two kernels. */
function state(k: Kernel, t: Task, pages: number) {
  settle(k, t);
  const ptes: string[] = [];
  for (let p = 0; p < pages; p++) {
    const pte = k.pool.get(t.mm.pgd, BASE + p * PAGE);
    ptes.push(`${pte & PTE_PRESENT ? 'P' : '-'}${pteKeyid(pte)}`);
  }
  return { counters: k.counters.snapshot(), engine: k.machine.engine.counters.snapshot(), lru: [...t.mm.lru], rss: t.mm.rss, ptes };
}

/** The invariants of a settled address space whose `pages` pages were all touched. */
function checkOwnership(k: Kernel, t: Task, pages: number, keyid: number): void {
  settle(k, t);
  const owner = new Map<number, number>();
  for (let p = 0; p < pages; p++) {
    const va = BASE + p * PAGE;
    const pte = k.pool.get(t.mm.pgd, va);
    assert.ok(pte & PTE_PRESENT, `page ${p} not present`);
    const pfn = ptePfn(pte);
    assert.equal(owner.get(pfn), undefined, `frame ${pfn} mapped at page ${owner.get(pfn)} and ${p}`);
    owner.set(pfn, p);
    assert.equal(k.alloc.flags[pfn], PG_ALLOCATED | PG_ANON, `flags of frame ${pfn}`);
    assert.equal(k.alloc.ownerMm[pfn], t.mm.id);
    assert.equal(k.alloc.ownerVa[pfn], va);
    assert.equal(k.alloc.keyid[pfn], keyid);
    assert.equal(pteKeyid(pte), keyid);
  }
  let allocated = 0;
  for (let pfn = 0; pfn < k.alloc.flags.length; pfn++) if (k.alloc.flags[pfn] & PG_ALLOCATED && !(k.alloc.flags[pfn] & PG_DAX)) allocated++;
  assert.equal(allocated, pages, 'frames allocated but not mapped');
  assert.equal(t.mm.rss, pages);
  const lru = [...t.mm.lru].sort((a, b) => a - b);
  assert.deepEqual(lru, Array.from({ length: pages }, (_, p) => BASE + p * PAGE), `LRU: each resident page once (${lru.length} entries)`);
  assert.notEqual(t.mm.vmas.find(BASE)!.anonVma, 0);
}

describe('faults on the faulting CPU', () => {
  it('one CPU: counts, LRU order, PTEs and frames are those of a kernel that handles every fault', async () => {
    const PAGES = 100;
    const order = Array.from({ length: PAGES }, (_, p) => (p * 37) % PAGES); // not in address order
    const runs = [];
    for (const fast of [false, true]) {
      const { k, done } = boot({ nrCpus: 2, nodeFrames: [160, 64] });
      const t = k.spawn();
      const key = mapKeyed(k, t, PAGES);
      const [r] = await runCpus(k, t, [order], fast);
      assert.deepEqual([r.errors, r.faults], [0, 0]);
      if (fast) assert.ok(r.handled > PAGES / 2 && r.handled + r.passed === PAGES, JSON.stringify(r));
      else assert.equal(r.handled + r.passed, 0);
      checkOwnership(k, t, PAGES, key.keyid);
      assert.equal(key.refs, 1 + 1 + PAGES); // keyring, VMA, pages
      runs.push(state(k, t, PAGES));
      assert.equal(k.syscall(t, NR.munmap, BASE, PAGES * PAGE), 0);
      assert.equal(key.refs, 1);
      assert.equal(k.alloc.freeFrames(), 224);
      k.exit(t);
      done();
    }
    assert.deepEqual(runs[1], runs[0]);
  });

  it('three CPUs racing for the same pages: one frame each, references balance, data intact', async () => {
    const PAGES = 600;
    const { k, done } = boot({ nrCpus: 4, nodeFrames: [700, 64] });
    const t = k.spawn();
    const key = mapKeyed(k, t, PAGES);
    const all = Array.from({ length: PAGES }, (_, p) => p);
    // every CPU touches every page, two in the same order: many faults race
    const res = await runCpus(k, t, [all, all, [...all].reverse()], true);
    assert.deepEqual(res.map((r) => [r.errors, r.faults]), [[0, 0], [0, 0], [0, 0]]);
    assert.ok(res.reduce((s, r) => s + r.handled, 0) > 0, 'no CPU handled a fault itself');
    settle(k, t);
    checkOwnership(k, t, PAGES, key.keyid);
    assert.equal(key.refs, 2 + PAGES);
    assert.equal(k.alloc.freeFrames() + PAGES, 764);
    assert.equal(k.machine.engine.counters.get('alias_conflicts'), 0);
    k.exit(t);
    assert.equal(key.refs, 1);
    assert.equal(k.alloc.freeFrames(), 764);
    done();
  });

  it('one CPU under a memory limit: file pages charged to the mm take their place from the pages the CPU may take', async () => {
    const PAGES = 16, LIMIT = 10;
    for (const file of [0, 4]) {
      const { k, done } = boot({ nrCpus: 2, nodeFrames: [96, 64], swapSlots: 32 });
      const t = k.spawn({ memLimit: LIMIT });
      mapKeyed(k, t, PAGES);
      t.mm.filePages = file; // as pinned file pages (secretmem's, a driver's) charged to the mm are
      const [r] = await runCpus(k, t, [Array.from({ length: PAGES }, (_, p) => p)], true, false);
      // (no read-back: a swapped-out page's load would be one more fault passed on.) The
      // first fault traps, as the CPU's list is empty until the kernel's first entry fills it;
      // then the CPU takes pages while rss + file pages stay under the limit, and passes the rest.
      const fit = LIMIT - file - 1;
      assert.deepEqual([r.errors, r.faults, r.handled, r.passed], [0, 0, fit, PAGES - fit], `file pages ${file}`);
      settle(k, t);
      assert.equal(t.mm.rss + t.mm.filePages, LIMIT);
      t.mm.filePages = 0;
      k.exit(t);
      done();
    }
  });

  it('two CPUs under a memory limit: rss never passes it, the rest goes to swap', async () => {
    const PAGES = 48, LIMIT = 16;
    const { k, done } = boot({ nrCpus: 3, nodeFrames: [96, 64], swapSlots: 64 });
    const t = k.spawn({ memLimit: LIMIT });
    mapKeyed(k, t, PAGES);
    const res = await runCpus(k, t, [0, 1].map((c) => Array.from({ length: PAGES / 2 }, (_, j) => 2 * j + c)), true, true);
    assert.deepEqual(res.map((r) => [r.errors, r.faults]), [[0, 0], [0, 0]]);
    settle(k, t);
    assert.ok(t.mm.rss <= LIMIT, `rss ${t.mm.rss} over the limit ${LIMIT}`);
    const c = k.counters.snapshot();
    assert.ok(c.swap_out >= PAGES - LIMIT, JSON.stringify(c));
    assert.equal(c.oom, 0);
    k.exit(t);
    assert.equal(k.alloc.freeFrames(), 160);
    done();
  });
});
