// A first-touch whole-page store that the fault handler does in place of the
// fresh page's zeroing (FastFault's fill, engine.fillFresh): the page holds
// the store, the counters are those of zeroing then storing, a read fault or
// a part-page store is never filled, the loser of a race gives back a zeroed
// frame, and a page filled and then taken away before the CPU looks again is
// stored again. Everything runs on this thread.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import type { MemoryEncryptionEngine } from '../../hardware/engine.js';
import { asPfn, type Pfn } from '../../hardware/types.js';
import { FAULT_FILLED, UserCpu } from '../../kernel/cpu.js';
import { MM_LOCK, enableFastFaults } from '../../kernel/fastfault.js';
import type { Kernel, Task } from '../../kernel/kernel.js';
import { doMprotect } from '../../kernel/mprotect.js';
import { ptePfn } from '../../kernel/pgtable.js';
import { NR } from '../../kernel/syscalls.js';
import { MADV_DONTNEED, PROT_READ, PROT_WRITE } from '../../kernel/uapi.js';
import { BASE, PAGE, addKey, boot, fastFaultOn, mapAnon } from './util.js';

const RW = PROT_READ | PROT_WRITE;

/** t with `pages` anonymous pages at BASE, keyed unless `plain`, and CPU 1 running it with fast faults. */
function setup(pages = 4, plain = false) {
  const b = boot({ nrCpus: 3, nodeFrames: [160, 64] });
  const { k } = b;
  const t = k.spawn();
  mapAnon(k, t, pages);
  if (!plain) assert.equal(doMprotect(k, t, BASE, pages * PAGE, RW, addKey(k, t)), 0);
  for (const c of [1, 2]) {
    k.smp.setOnline(c, t.mm.id);
    k.smp.setOffline(c);
  }
  enableFastFaults(k, t.mm);
  return { ...b, t };
}

const enc = (k: Kernel) => k.machine.engine.counters.snapshot();
const readBack = (k: Kernel, t: Task, va: number): Uint8Array => {
  const out = new Uint8Array(PAGE);
  assert.equal(k.localCpu(t).load(va, out), 0);
  return out;
};

describe('a first-touch whole-page store filled by the fault handler', () => {
  it('a keyed page: filled, holding the store, counted as zeroing plus store', () => {
    const { k, t, done } = setup();
    const ff = fastFaultOn(k, t, 1);
    assert.equal(ff.filled, false, 'before any fault');
    const src = Uint8Array.from(randomBytes(2 * PAGE));
    assert.equal(ff.tryFault(BASE + PAGE, true, src, PAGE), true);
    assert.equal(ff.filled, true);
    assert.deepEqual(readBack(k, t, BASE + PAGE), src.subarray(PAGE));
    // zeroing + store, then the read back
    assert.deepEqual([enc(k).pages_encrypted, enc(k).pages_decrypted], [2, 1]);
    done();
  });

  it('not filled: a read fault, plain memory, no page offered, a page already there', () => {
    const { k, t, done } = setup();
    const ff = fastFaultOn(k, t, 1);
    const src = Uint8Array.from(randomBytes(PAGE));
    assert.equal(ff.tryFault(BASE, false, src, 0), true, 'a read fault');
    assert.equal(ff.filled, false);
    assert.deepEqual(readBack(k, t, BASE), new Uint8Array(PAGE), 'zeroed');
    assert.equal(ff.tryFault(BASE + PAGE, true), true, 'no page offered');
    assert.equal(ff.filled, false);
    assert.deepEqual(readBack(k, t, BASE + PAGE), new Uint8Array(PAGE));
    assert.equal(ff.tryFault(BASE + 2 * PAGE, true, src, 0), true);
    assert.equal(ff.filled, true);
    assert.equal(ff.tryFault(BASE + 2 * PAGE, true, src, 0), false, 'the PTE is there: the kernel\'s');
    assert.equal(ff.filled, false, 'a call that did not fill says so');
    done();
    const p = setup(2, true);
    const pf = fastFaultOn(p.k, p.t, 1);
    assert.equal(pf.tryFault(BASE, true, src, 0), true, 'plain memory');
    assert.equal(pf.filled, false);
    assert.deepEqual(readBack(p.k, p.t, BASE), new Uint8Array(PAGE));
    p.done();
  });

  it('the loser of a race gives back its frame zeroed under the key, its store not counted', () => {
    const { k, t, done } = setup();
    const real = k.machine.engine;
    const other = fastFaultOn(k, t, 2);
    let ours = -1;
    // CPU 2 faults the page in (a read) between CPU 1's fill and its compare-and-exchange
    const engine = {
      flush: (pfn: Pfn) => real.flush(pfn),
      zero: (pfn: Pfn, kid: number) => real.zero(pfn, kid),
      unfill: (pfn: Pfn, kid: number) => real.unfill(pfn, kid),
      fillFresh: (pfn: Pfn, kid: number, src: Uint8Array, off: number) => {
        const r = real.fillFresh(pfn, kid, src, off);
        ours = pfn;
        assert.equal(other.tryFault(BASE, false), true, 'CPU 2 installs the page');
        return r;
      },
    } as unknown as MemoryEncryptionEngine;
    k.smp.setOnline(1, t.mm.id);
    k.smp.setOffline(1);
    const ff = fastFaultOn(k, t, 1, engine);
    const src = Uint8Array.from(randomBytes(PAGE));
    assert.equal(ff.tryFault(BASE, true, src, 0), true, 'the access is retried');
    assert.equal(ff.filled, false, 'and the store is still to do');
    assert.ok(ours >= 0 && ptePfn(k.pool.get(t.mm.pgd, BASE)) !== ours, "CPU 2's frame is mapped");
    // both CPUs zeroed a frame, nothing was stored
    assert.equal(enc(k).pages_encrypted, 2);
    // our frame holds what zeroing it under the key gives: zeroing it again changes nothing
    const raw = () => Uint8Array.from(k.machine.memory.buf.u8.subarray(ours * PAGE, (ours + 1) * PAGE));
    const before = raw();
    assert.ok(before.some((b) => b !== 0), 'ciphertext, not plaintext zeros');
    real.zero(asPfn(ours), k.alloc.map.keyid[ptePfn(k.pool.get(t.mm.pgd, BASE))]);
    assert.deepEqual(raw(), before);
    done();
  });
});

describe('UserCpu.store and FAULT_FILLED', () => {
  /** t's local CPU whose faults go through `fault` (the kernel's by default). */
  function cpuWith(k: Kernel, t: Task, fault: (va: number, write: boolean, fill: Uint8Array | null, off: number) => number): UserCpu {
    return new UserCpu(k.engine, k.pool, k.smp, t.mm, fault);
  }

  it('a whole-page store is offered page-aligned with its src, a part-page store never', () => {
    const { k, t, done } = setup();
    const offered: [number, boolean, boolean, number][] = [];
    const cpu = cpuWith(k, t, (va, write, fill, off) => {
      offered.push([va, write, fill !== null, off]);
      return k.fault(t, va, write);
    });
    const src = Uint8Array.from(randomBytes(3 * PAGE));
    assert.equal(cpu.store(BASE, src, PAGE), 0);
    assert.equal(cpu.store(BASE + PAGE + 8, src, 0, 64), 0);
    // a whole page from a src too short for it: not offered (the store itself refuses it)
    assert.throws(() => cpu.store(BASE + 2 * PAGE, src, 2 * PAGE + 16), /src/);
    // a whole page from a src offset the engine cannot encrypt in place: offered, not filled, stored
    assert.equal(cpu.store(BASE + 3 * PAGE, src, 8), 0);
    assert.deepEqual(offered, [
      [BASE, true, true, PAGE],
      [BASE + PAGE + 8, true, false, 0],
      [BASE + 2 * PAGE, true, false, 0],
      [BASE + 3 * PAGE, true, true, 8],
    ]);
    assert.deepEqual(readBack(k, t, BASE), src.subarray(PAGE, 2 * PAGE));
    assert.deepEqual(readBack(k, t, BASE + 3 * PAGE), src.subarray(8, 8 + PAGE));
    done();
  });

  it('a part-page store at a page boundary is not offered: the rest of the page stays zero', () => {
    const { k, t, done } = setup();
    const offered: boolean[] = [];
    const ff = fastFaultOn(k, t, 1);
    const cpu = cpuWith(k, t, (va, write, fill, off) => {
      offered.push(fill !== null);
      assert.equal(ff.tryFault(va, write, fill, off), true);
      return ff.filled ? FAULT_FILLED : 0;
    });
    const src = Uint8Array.from(randomBytes(PAGE));
    assert.equal(cpu.store(BASE, src, 0, 64), 0);
    const want = new Uint8Array(PAGE);
    want.set(src.subarray(0, 64));
    assert.deepEqual(readBack(k, t, BASE), want);
    // a whole page at an address inside a page is refused, as without the fill, and nothing is stored
    assert.throws(() => cpu.store(BASE + PAGE + 8, src, 0, PAGE), /len|pageOff/);
    assert.deepEqual(readBack(k, t, BASE + PAGE), new Uint8Array(PAGE));
    // a negative src offset is refused by the store itself, and the fault handler leaves the mm unlocked
    assert.throws(() => cpu.store(BASE + 2 * PAGE, src, -16), /srcOff|src/);
    assert.equal(t.mm.shared.i32[MM_LOCK], 0);
    assert.deepEqual(offered, [false, false, false]);
    done();
  });

  it('FAULT_FILLED skips the store; a later plain fault in the same translation stores again', () => {
    const { k, t, done } = setup();
    const src = Uint8Array.from(randomBytes(PAGE));
    // filled, then the page is zapped before the CPU looks again: the next fault (the kernel's) maps a fresh zeroed page
    let calls = 0;
    const cpu = cpuWith(k, t, (va, write, fill, off) => {
      calls++;
      if (calls === 1) {
        const ff = fastFaultOn(k, t, 1);
        assert.equal(ff.tryFault(va, write, fill, off), true);
        assert.equal(ff.filled, true);
        assert.equal(k.syscall(t, NR.madvise, BASE, PAGE, MADV_DONTNEED), 0);
        return FAULT_FILLED;
      }
      return k.fault(t, va, write);
    });
    assert.equal(cpu.store(BASE, src, 0), 0);
    assert.equal(calls, 2);
    assert.deepEqual(readBack(k, t, BASE), src, 'stored again, not lost');
    // and a fill that stays: no second store
    const before = enc(k).pages_encrypted;
    const cpu2 = cpuWith(k, t, (va, write, fill, off) => {
      const ff = fastFaultOn(k, t, 1);
      assert.equal(ff.tryFault(va, write, fill, off), true);
      return ff.filled ? FAULT_FILLED : 0;
    });
    assert.equal(cpu2.store(BASE + PAGE, src, 0), 0);
    assert.equal(enc(k).pages_encrypted - before, 2, 'zeroing and store, counted once each');
    assert.deepEqual(readBack(k, t, BASE + PAGE), src);
    // the next store to the page, which is mapped now (no fault): stored
    const again = Uint8Array.from(randomBytes(PAGE));
    assert.equal(cpu2.store(BASE + PAGE, again, 0), 0);
    assert.deepEqual(readBack(k, t, BASE + PAGE), again);
    done();
  });
});
