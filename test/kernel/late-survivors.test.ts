// Survivors of the quick mutation run on the final code of kernel/cpu.ts and
// kernel/fastfault.ts (test/mutation-review/kernel-final-a.md): what the user
// CPU writes to a PTE it walks, a PTE the kernel changes between the CPU's
// read of it and its ACCESSED/DIRTY update, how long a CPU polls a migration
// entry before it sleeps, and a keyed page that another CPU installs first.
// Everything runs on this thread; the moment another thread could come in is
// set up by hand, by wrapping the Atomics operation at that point
// (node:test mock.method) or the CPU's engine.
import assert from 'node:assert/strict';
import { afterEach, describe, it, mock } from 'node:test';
import type { MemoryEncryptionEngine } from '../../hardware/engine.js';
import { asPfn } from '../../hardware/types.js';
import { UserCpu } from '../../kernel/cpu.js';
import { type FastFault, enableFastFaults } from '../../kernel/fastfault.js';
import type { Kernel, Task } from '../../kernel/kernel.js';
import { doMprotect } from '../../kernel/mprotect.js';
import { PTE_DIRTY, PTE_MIGRATION, PTE_PRESENT, PTE_WRITE, ptePfn, pteKeyid } from '../../kernel/pgtable.js';
import { W_WAIT } from '../../kernel/smp.js';
import { KEYCTL_INVALIDATE, NR } from '../../kernel/syscalls.js';
import {
  MADV_DONTNEED,
  MADV_HWPOISON,
  MADV_POPULATE_READ,
  MADV_POPULATE_WRITE,
  MADV_SOFT_OFFLINE,
  PROT_READ,
  PROT_WRITE,
} from '../../kernel/uapi.js';
import { E } from '../../kernel/errno.js';
import { BASE, PAGE, addKey, boot, fastFaultOn, mapAnon, zeroThen } from './util.js';

const fill = (v: number, n = 8) => new Uint8Array(n).fill(v);

/** Atomics operations that write their array. */
const WRITES = ['store', 'compareExchange', 'exchange', 'or', 'and', 'xor', 'add', 'sub'] as const;

/**
 * n pages of private anonymous memory under an MKTME key: unlike plain
 * anonymous memory (a read maps it read-only, as the zero page), a read fault
 * maps a keyed page writable and clean, so a later write is the CPU's own
 * DIRTY update.
 */
function keyedPages(n: number) {
  const b = boot();
  const t = b.k.spawn();
  mapAnon(b.k, t, n);
  assert.equal(doMprotect(b.k, t, BASE, n * PAGE, PROT_READ | PROT_WRITE, addKey(b.k, t)), 0);
  return { ...b, t };
}

describe('the user CPU and the PTE it walks', () => {
  afterEach(() => mock.restoreAll());

  it('a TLB miss on a PTE that already has ACCESSED (and DIRTY for a write) writes nothing to the page table', () => {
    const { k, t, done } = keyedPages(2);
    // page 0 written, page 1 only read
    assert.equal(k.localCpu(t).store(BASE, fill(5), 0, 8), 0);
    assert.equal(k.localCpu(t).load(BASE + PAGE, fill(0), 0, 8), 0);
    const cpu = k.localCpu(t); // an empty TLB
    const writes: number[] = [];
    for (const op of WRITES) {
      const real = Atomics[op] as (...a: unknown[]) => unknown;
      mock.method(Atomics, op, (a: unknown, i: number, ...rest: unknown[]) => {
        if (a === k.pool.words) writes.push(i);
        return real(a, i, ...rest);
      });
    }
    assert.equal(cpu.load(BASE, fill(0), 0, 8), 0);
    cpu.flushTlb();
    assert.equal(cpu.store(BASE, fill(6), 0, 8), 0);
    assert.equal(cpu.tlbMisses, 2, 'both accesses walked the table');
    assert.deepEqual(writes, [], 'ACCESSED and DIRTY were set already');
    // a page only read so far: the write sets DIRTY, one write of its PTE
    assert.equal(cpu.store(BASE + PAGE, fill(7), 0, 8), 0);
    assert.deepEqual(writes, [k.pool.pteIndex(t.mm.pgd, BASE + PAGE)], "the CPU's own DIRTY update");
    mock.restoreAll();
    assert.ok(k.pool.get(t.mm.pgd, BASE + PAGE) & PTE_DIRTY);
    done();
  });

  it('a write whose DIRTY update finds the PTE zapped (MADV_DONTNEED in between) faults the page in again and lands in it', () => {
    const { k, t, done } = keyedPages(1);
    const cpu = k.localCpu(t);
    assert.equal(cpu.load(BASE, fill(0), 0, 8), 0); // present, writable, ACCESSED, clean
    assert.equal(k.pool.get(t.mm.pgd, BASE) & (PTE_WRITE | PTE_DIRTY), PTE_WRITE);
    const i = k.pool.pteIndex(t.mm.pgd, BASE);
    const realCas = Atomics.compareExchange;
    let zapped = 0;
    // the kernel zaps the page between the CPU's load of the PTE and its compare-and-exchange
    mock.method(Atomics, 'compareExchange', (a: Int32Array, j: number, expect: number, value: number) => {
      if (a === k.pool.words && j === i && zapped === 0) {
        zapped++;
        assert.equal(k.syscall(t, NR.madvise, BASE, PAGE, MADV_DONTNEED), 0);
        assert.equal(k.pool.get(t.mm.pgd, BASE), 0, 'the kernel cleared the PTE');
      }
      return realCas(a, j, expect, value);
    });
    const faults0 = k.counters.get('faults');
    assert.equal(cpu.store(BASE, fill(0xab), 0, 8), 0);
    mock.restoreAll();
    assert.equal(zapped, 1);
    const pte = k.pool.get(t.mm.pgd, BASE);
    assert.ok(pte & PTE_PRESENT && pte & PTE_DIRTY, 'the page is mapped again, dirty');
    assert.equal(k.counters.get('faults'), faults0 + 1, 'the write faulted it in');
    assert.equal(t.mm.rss, 1);
    const out = fill(0);
    assert.equal(k.localCpu(t).load(BASE, out, 0, 8), 0);
    assert.deepEqual(out, fill(0xab), 'another CPU reads what was written');
    assert.equal(cpu.load(BASE, out, 0, 8), 0);
    assert.deepEqual(out, fill(0xab), 'and so does the writer');
    done();
  });

  it('polls a migration entry 1000 times before it first sleeps, then sleeps (on the PTE\'s word, WAIT raised, at most 5 ms) between looks, and polls IPIs after the wait before it goes on', () => {
    const { k, done } = boot();
    const t = k.spawn();
    mapAnon(k, t, 1);
    assert.equal(k.localCpu(t).store(BASE, fill(9), 0, 8), 0);
    const w = k.pool.words;
    const i = k.pool.pteIndex(t.mm.pgd, BASE);
    const pte = Atomics.load(w, i);
    // the kernel's first step of a migration (kernel/migrate.ts)
    Atomics.store(w, i, (pte & ~PTE_PRESENT) | PTE_MIGRATION);
    let faults = 0;
    const cpu = new UserCpu(k.engine, k.pool, k.smp, t.mm, (va, write) => {
      faults++;
      return k.fault(t, va, write);
    });
    let polls = 0;
    const realPoll = cpu.pollIpi.bind(cpu);
    cpu.pollIpi = () => {
      polls++;
      realPoll();
    };
    const realStore = Atomics.store;
    const sleeps: number[] = [];
    const waiting = () => Atomics.load(k.smp.words, k.smp.w(cpu.cpu, W_WAIT));
    mock.method(Atomics, 'wait', (a: Int32Array, j: number, v: number, ms: number) => {
      assert.ok(a === w && j === i, 'sleeps on the PTE\'s word, where the kernel wakes it');
      assert.equal(v, (pte & ~PTE_PRESENT) | PTE_MIGRATION, 'while it holds the migration entry');
      assert.ok(ms > 0 && ms <= 5, `sleeps at most 5 ms, not ${ms} ms`);
      assert.equal(waiting(), 1, 'with WAIT raised: a shootdown does not wait for it');
      sleeps.push(polls);
      polls = 0;
      if (sleeps.length === 4) realStore(w, i, pte); // the kernel ends the move
      return 'timed-out';
    });
    const out = fill(0);
    assert.equal(cpu.load(BASE, out, 0, 8), 0);
    mock.restoreAll();
    assert.equal(faults, 0, 'waited instead of faulting');
    assert.deepEqual(out, fill(9));
    assert.equal(sleeps.length, 4);
    assert.equal(sleeps[0], 1 + 1001, 'one IPI poll at the access, then one per look at the entry: 1001 looks (IDLE_SPIN + 1) before the first sleep');
    assert.deepEqual(sleeps.slice(1), [1, 1, 1], 'then one look per sleep');
    assert.equal(polls, 1, 'one IPI poll after the wait, before the access');
    assert.equal(waiting(), 0, 'WAIT lowered');
    done();
  });
});

/** The fast-fault handler of CPU `cpu` running t, on this thread (as fastfault-survivors.test.ts makes it). */
function fastCpu(k: Kernel, t: Task, cpu: number, engine: MemoryEncryptionEngine = k.machine.engine): FastFault {
  return fastFaultOn(k, t, cpu, engine);
}

describe('fast faults: a keyed page another CPU installs first', () => {
  it('the loser drops its page reference of the key and flushes the frame it zeroed under the key before giving it back', () => {
    const { k, done } = boot({ nrCpus: 3, nodeFrames: [160, 64] });
    const t = k.spawn();
    mapAnon(k, t, 4);
    const key = addKey(k, t);
    const keyid = key.keyid;
    assert.equal(doMprotect(k, t, BASE, 4 * PAGE, PROT_READ | PROT_WRITE, key), 0);
    // CPUs 1 and 2 run t (not online: the kernel waits for no IPI ack from them)
    for (const c of [1, 2]) {
      k.smp.setOnline(c, t.mm.id);
      k.smp.setOffline(c);
    }
    enableFastFaults(k, t.mm);
    const real = k.machine.engine;
    const other = fastCpu(k, t, 2);
    let ours = -1;
    // CPU 2 faults the same page in while CPU 1 zeroes its frame (between CPU 1's PTE check and its compare-and-exchange)
    const engine = zeroThen(k, (pfn) => {
      ours = pfn;
      assert.equal(other.tryFault(BASE, true), true, 'CPU 2 installs the page');
    });
    const ff = fastCpu(k, t, 1, engine);
    const list = k.alloc.map.pcpCount(1);
    assert.equal(k.keys.pageRefs[keyid], 0);
    assert.equal(ff.tryFault(BASE, true), true, 'the access is retried');
    assert.deepEqual([ff.handled, ff.passed], [1, 0]);
    const pte = k.pool.get(t.mm.pgd, BASE);
    assert.ok(ours >= 0 && ptePfn(pte) !== ours, "CPU 2's frame is mapped");
    assert.equal(pteKeyid(pte), keyid);
    assert.equal(k.alloc.map.pcpCount(1), list, "CPU 1's frame is back on its list");
    assert.equal(k.alloc.keyid[ours], 0, 'and no longer under the key');
    assert.equal(k.keys.pageRefs[keyid], 1, 'one page uses the key: the mapped one');
    assert.equal(real.cachedAlias(asPfn(ours)), -1, "no line of the frame's key alias is left in the cache");
    assert.equal(t.mm.rss, 1);
    // nothing else holds the key: invalidated and unmapped, its KeyID is free again
    assert.equal(k.syscall(t, NR.keyctl, KEYCTL_INVALIDATE, key.serial), 0);
    assert.notEqual(k.keys.keyOf(keyid), null, 'the VMA and its page still hold it');
    assert.equal(k.syscall(t, NR.munmap, BASE, 4 * PAGE), 0);
    assert.equal(k.keys.pageRefs[keyid], 0);
    assert.equal(k.keys.keyOf(keyid), null, 'the KeyID is free');
    done();
  });
});

describe('madvise and mprotect far above every mapping', () => {
  // madvise_inject_error: get_user_pages_fast fails for an end above
  // TASK_SIZE_MAX (mm/gup.c gup_fast_fallback: -EFAULT); madvise_populate:
  // __get_user_pages with FOLL_MADV_POPULATE finds no VMA (vma_lookup: -ENOMEM)
  it('a range at or above 2^48 is unmapped like one just above TASK_SIZE: HWPOISON and SOFT_OFFLINE EFAULT, POPULATE and the rest ENOMEM', () => {
    const { k, done } = boot();
    const t = k.spawn();
    mapAnon(k, t, 1);
    const expect = [-E.EFAULT, -E.EFAULT, -E.ENOMEM, -E.ENOMEM, -E.ENOMEM, -E.ENOMEM];
    for (const start of [2 ** 47, 2 ** 48 - PAGE, 2 ** 48, 2 ** 48 + PAGE, 2n ** 63n, 2n ** 64n - 2n * BigInt(PAGE)]) {
      const got = [MADV_HWPOISON, MADV_SOFT_OFFLINE, MADV_POPULATE_READ, MADV_POPULATE_WRITE, MADV_DONTNEED].map((a) =>
        k.syscall(t, NR.madvise, start, PAGE, a),
      );
      got.push(k.syscall(t, NR.mprotect, start, PAGE, PROT_READ));
      assert.deepEqual(got, expect, `start ${start}`);
    }
    assert.equal(k.syscall(t, NR.madvise, BASE, PAGE, MADV_POPULATE_WRITE), 0, 'a mapped page is populated');
    done();
  });
});
