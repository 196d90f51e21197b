// Survivors of the quick mutation run in kernel/cpu.ts (the user-mode CPU):
// the TLB's hits and misses, the ACCESSED and DIRTY bits it sets, waiting on
// a migration entry (asleep on the PTE's word, marked WAIT), a PTE whose frame number sets the sign bit, the default
// lengths of load and store, integrity faults, and copying across pages.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { asPfn } from '../../hardware/types.js';
import { UserCpu } from '../../kernel/cpu.js';
import { DAX_PATH } from '../../kernel/dax.js';
import { E } from '../../kernel/errno.js';
import type { MktmeKey } from '../../kernel/keys.js';
import { doMprotect } from '../../kernel/mprotect.js';
import { PTE_ACCESSED, PTE_DIRTY, PTE_MIGRATION, PTE_PRESENT, ptePfn } from '../../kernel/pgtable.js';
import { W_WAIT } from '../../kernel/smp.js';
import { AT_FDCWD, NR } from '../../kernel/syscalls.js';
import { MAP_SHARED } from '../../kernel/uapi.js';
import { BASE, boot, mapAnon, PAGE } from './util.js';

const RW = 3;
const fill = (v: number, n = PAGE) => new Uint8Array(n).fill(v);
const pattern = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 255);

describe('the user CPU', () => {
  it('TLB: a second access to a page hits, a write to a clean entry misses once, and 64 slots by page number', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const cpu = k.localCpu(t);
    mapAnon(k, t, 8);
    const b8 = fill(0, 8);
    const counts = () => [cpu.tlbHits, cpu.tlbMisses];
    assert.equal(cpu.load(BASE, b8, 0, 8), 0);
    assert.deepEqual(counts(), [0, 1], 'first touch: a miss');
    assert.equal(cpu.load(BASE + 8, b8, 0, 8), 0);
    assert.equal(cpu.load(BASE + PAGE - 8, b8, 0, 8), 0);
    assert.deepEqual(counts(), [2, 1], 'the same page at other offsets: hits');
    assert.equal(cpu.store(BASE + 16, b8, 0, 8), 0);
    assert.deepEqual(counts(), [2, 2], 'a write through a clean (read) entry misses');
    assert.equal(cpu.store(BASE + 24, b8, 0, 8), 0);
    assert.equal(cpu.load(BASE + 32, b8, 0, 8), 0);
    assert.deepEqual(counts(), [4, 2], 'now dirty: writes and reads hit');
    // pages 1..7 take slots 1..7 (vpn & 63): no page evicts another
    for (let p = 1; p < 8; p++) assert.equal(cpu.load(BASE + p * PAGE, b8, 0, 8), 0);
    assert.deepEqual(counts(), [4, 9]);
    for (let p = 0; p < 8; p++) assert.equal(cpu.load(BASE + p * PAGE + 100, b8, 0, 8), 0);
    assert.deepEqual(counts(), [12, 9]);
    // a page 64 pages further takes the same slot as page 0
    mapAnon(k, t, 1, BASE + 64 * PAGE);
    assert.equal(cpu.load(BASE + 64 * PAGE, b8, 0, 8), 0);
    assert.equal(cpu.load(BASE, b8, 0, 8), 0);
    assert.deepEqual(counts(), [12, 11], 'page 64 evicted page 0 and back');
    done();
  });

  it('sets ACCESSED on a read and DIRTY on a write in the PTE itself', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const cpu = k.localCpu(t);
    mapAnon(k, t, 1);
    assert.equal(cpu.load(BASE, fill(0, 8), 0, 8), 0);
    let pte = k.pool.get(t.mm.pgd, BASE);
    assert.ok(pte & PTE_PRESENT);
    assert.ok(pte & PTE_ACCESSED, 'read: ACCESSED');
    assert.ok(!(pte & PTE_DIRTY), 'read: not DIRTY');
    assert.equal(cpu.store(BASE, fill(1, 8), 0, 8), 0);
    pte = k.pool.get(t.mm.pgd, BASE);
    assert.ok(pte & PTE_DIRTY, 'write: DIRTY');
    assert.ok(pte & PTE_ACCESSED);
    done();
  });

  it('an address outside every VMA faults, on a fresh CPU and after a TLB shootdown', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const cpu = k.localCpu(t);
    const low = 0x1000; // page number 1: TLB slot 1
    assert.equal(cpu.load(low, fill(0, 8), 0, 8), -E.EFAULT);
    mapAnon(k, t, 2);
    assert.equal(cpu.store(BASE, fill(1)), 0);
    assert.equal(k.syscall(t, NR.munmap, BASE, 2 * PAGE), 0); // shoots down this CPU's TLB
    assert.equal(cpu.load(low, fill(0, 8), 0, 8), -E.EFAULT);
    assert.equal(cpu.store(low, fill(0, 8), 0, 8), -E.EFAULT);
    assert.equal(cpu.load(BASE, fill(0, 8), 0, 8), -E.EFAULT, 'the unmapped page is gone from the TLB');
    assert.equal(k.counters.get('segv'), 4);
    done();
  });

  it('load and store default to the rest of the page from va', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const cpu = k.localCpu(t);
    mapAnon(k, t, 2);
    const p = pattern(PAGE, 1);
    assert.equal(cpu.store(BASE, p), 0);
    const out = fill(0xee);
    assert.equal(cpu.load(BASE + 100, out), 0);
    assert.deepEqual(out.subarray(0, PAGE - 100), p.subarray(100));
    assert.ok(out.subarray(PAGE - 100).every((b) => b === 0xee), 'nothing past the page');
    assert.equal(cpu.store(BASE + PAGE + 100, p), 0);
    const page = fill(0);
    assert.equal(cpu.load(BASE + PAGE, page), 0);
    assert.ok(page.subarray(0, 100).every((b) => b === 0));
    assert.deepEqual(page.subarray(100), p.subarray(0, PAGE - 100));
    done();
  });

  it('a frame number above 32767 (the PTE sign bit set) is a frame, not an error', () => {
    const { k, m, done } = boot({ daxFrames: 32768 });
    const t = k.spawn();
    const fd = k.syscall(t, NR.openat, AT_FDCWD, DAX_PATH, 2);
    const pgoff = 32760;
    const a = k.syscall(t, NR.mmap, 0, PAGE, RW, MAP_SHARED, fd, pgoff * PAGE);
    assert.ok(a > 0);
    const cpu = k.localCpu(t);
    const p = pattern(PAGE, 5);
    assert.equal(cpu.store(a, p), 0);
    const pte = k.pool.get(t.mm.pgd, a);
    assert.ok(pte < 0, 'the PTE is negative as an int32');
    assert.equal(ptePfn(pte), m.memory.daxStart + pgoff);
    const out = fill(0);
    assert.equal(cpu.load(a, out), 0);
    assert.deepEqual(out, p);
    done();
  });

  it('a MAC mismatch (the frame written through another KeyID) loads as -EIO', () => {
    const { k, m, done } = boot({ profile: 'tdx' });
    const t = k.spawn();
    const cpu = k.localCpu(t);
    mapAnon(k, t, 1);
    const serial = k.syscall(t, NR.add_key, 'mktme', 'test', 'type=cpu algorithm=aes-xts-128');
    assert.ok(serial > 0, `add_key: ${serial}`);
    const key = k.keys.lookup(serial, t.creds) as MktmeKey;
    assert.equal(doMprotect(k, t, BASE, PAGE, RW, key), 0);
    assert.equal(cpu.store(BASE, fill(3)), 0);
    assert.equal(cpu.load(BASE, fill(0)), 0);
    const pfn = ptePfn(k.pool.get(t.mm.pgd, BASE));
    m.engine.write(asPfn(pfn), 0, fill(0x41)); // the host writes the private page through KeyID 0
    const before = m.engine.counters.snapshot().integrity_faults;
    assert.equal(cpu.load(BASE, fill(0)), -E.EIO);
    assert.equal(m.engine.counters.snapshot().integrity_faults - before, 1);
    done();
  });

  it('copyToUser and copyFromUser: across pages, up to the end of a mapping, and the first error', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const cpu = k.localCpu(t);
    mapAnon(k, t, 3); // pages 0..2; page 3 is not mapped
    assert.equal(cpu.store(BASE, fill(0x55)), 0);
    assert.equal(cpu.store(BASE + PAGE, fill(0xaa)), 0);
    assert.equal(cpu.store(BASE + 2 * PAGE, fill(0xcc)), 0);
    // ending exactly at the end of the mapping touches nothing beyond it
    assert.equal(cpu.copyToUser(BASE + 2 * PAGE, fill(0xcc)), 0);
    assert.equal(cpu.copyFromUser(BASE + 2 * PAGE, fill(0)), 0);
    assert.equal(cpu.copyToUser(BASE + PAGE + 96, fill(0xaa, 2 * PAGE - 96)), 0);
    const end = fill(0, 2 * PAGE - 96);
    assert.equal(cpu.copyFromUser(BASE + PAGE + 96, end), 0);
    assert.ok(end.every((b) => b === 0xaa));
    assert.equal(cpu.store(BASE + 2 * PAGE, fill(0xcc)), 0);
    // 100 bytes into page 0, on through page 1, 600 bytes into page 2
    const src = pattern(2 * PAGE + 500, 3);
    assert.equal(cpu.copyToUser(BASE + 100, src), 0);
    const pg = [0, 1, 2].map((p) => {
      const b = fill(0);
      assert.equal(cpu.load(BASE + p * PAGE, b), 0);
      return b;
    });
    assert.ok(pg[0].subarray(0, 100).every((b) => b === 0x55), 'before the copy: untouched');
    assert.deepEqual(pg[0].subarray(100), src.subarray(0, PAGE - 100));
    assert.deepEqual(pg[1], src.subarray(PAGE - 100, 2 * PAGE - 100));
    assert.deepEqual(pg[2].subarray(0, 600), src.subarray(2 * PAGE - 100));
    assert.ok(pg[2].subarray(600).every((b) => b === 0xcc), 'after the copy: untouched');
    const back = fill(0, src.length);
    assert.equal(cpu.copyFromUser(BASE + 100, back), 0);
    assert.deepEqual(back, src);
    // a copy running into the unmapped page: the first error, after the part that fits
    const tail = pattern(1000, 9);
    assert.equal(cpu.copyToUser(BASE + 3 * PAGE - 500, tail), -E.EFAULT);
    const b500 = fill(0, 500);
    assert.equal(cpu.load(BASE + 3 * PAGE - 500, b500, 0, 500), 0);
    assert.deepEqual(b500, tail.subarray(0, 500));
    const got = fill(0xee, 1000);
    assert.equal(cpu.copyFromUser(BASE + 3 * PAGE - 500, got), -E.EFAULT);
    assert.deepEqual(got.subarray(0, 500), tail.subarray(0, 500));
    assert.ok(got.subarray(500).every((b) => b === 0xee));
    assert.equal(cpu.copyToUser(BASE, new Uint8Array(0)), 0, 'nothing to copy');
    done();
  });

  it('waits on a migration entry (spinning, then asleep on the PTE\'s word with WAIT raised) instead of faulting into the kernel', async () => {
    const { k, done } = boot();
    const t = k.spawn();
    mapAnon(k, t, 1);
    assert.equal(k.localCpu(t).store(BASE, fill(9)), 0);
    const w = k.pool.words;
    const i = k.pool.pteIndex(t.mm.pgd, BASE);
    const pte = Atomics.load(w, i);
    // the kernel's first step of a migration (kernel/migrate.ts)
    Atomics.store(w, i, (pte & ~PTE_PRESENT) | PTE_MIGRATION);
    const faulted = new Int32Array(new SharedArrayBuffer(4));
    let faults = 0;
    const cpu = new UserCpu(k.engine, k.pool, k.smp, t.mm, (va, write) => {
      faults++;
      Atomics.store(faulted, 0, 1);
      return k.fault(t, va, write);
    });
    // the "kernel" finishing the move, on another thread: once this CPU sleeps on
    // the PTE's word with WAIT raised (a waiter to wake there: the wake-up finds
    // the entry still there and the CPU sleeps again), or once it has faulted
    // (then it did not wait); then the new PTE and its wake-up, as migrate.ts
    const code = `
      const { workerData: d, parentPort } = require('node:worker_threads');
      const w = new Int32Array(d.pt), sw = new Int32Array(d.sw), faulted = new Int32Array(d.faulted);
      const nap = new Int32Array(new SharedArrayBuffer(4));
      let how;
      for (let naps = 0; ; naps++) {
        if (Atomics.load(faulted, 0)) { how = 'faulted'; break; }
        if (Atomics.load(sw, d.wait) === 1 && Atomics.notify(w, d.i, 1) > 0) { how = 'slept'; break; }
        if (naps === 2000) { how = 'never slept on the PTE'; break; }
        Atomics.wait(nap, 0, 0, 1);
      }
      Atomics.store(w, d.i, d.pte);
      Atomics.notify(w, d.i);
      parentPort.postMessage(how);`;
    const worker = new Worker(code, {
      eval: true,
      workerData: { pt: w.buffer, sw: k.smp.words.buffer, faulted: faulted.buffer, wait: k.smp.w(cpu.cpu, W_WAIT), i, pte },
    });
    try {
      const how = new Promise<string>((res, rej) => {
        worker.once('message', res);
        worker.once('error', rej);
      });
      await new Promise((r) => worker.once('online', r));
      const out = fill(0);
      assert.equal(cpu.load(BASE, out), 0);
      assert.equal(await how, 'slept');
      assert.equal(faults, 0);
      assert.equal(Atomics.load(k.smp.words, k.smp.w(cpu.cpu, W_WAIT)), 0, 'WAIT is lowered once the CPU goes on');
      assert.ok(out.every((b) => b === 9));
    } finally {
      await worker.terminate();
      done();
    }
  });
});
