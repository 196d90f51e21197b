// Execute-only memory on a CPU with OS-enabled protection keys (kernel/pkeys.ts):
// what x86 Linux 6.18 does with PROT_EXEC alone when /proc/cpuinfo says
// "ospke", checked against this kind of host by replay-linux.test.ts too.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { enableFastFaults, mmWriteLock, mmWriteUnlock } from '../../kernel/fastfault.js';
import type { Kernel, Task } from '../../kernel/kernel.js';
import { PTE_PRESENT } from '../../kernel/pgtable.js';
import { NR } from '../../kernel/syscalls.js';
import { MADV_GUARD_INSTALL, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_EXEC, PROT_NONE, PROT_READ, PROT_SEM, PROT_WRITE } from '../../kernel/uapi.js';
import { BASE, PAGE, boot, fastFaultOn } from './util.js';

const FIXED = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
const mmap = (k: Kernel, t: Task, addr: number, pages: number, prot: number | bigint): number => k.syscall(t, NR.mmap, addr, pages * PAGE, prot, FIXED, -1, 0);
const mprotect = (k: Kernel, t: Task, addr: number, pages: number, prot: number): number => k.syscall(t, NR.mprotect, addr, pages * PAGE, prot);
/** `start-end perms` of every VMA, relative to BASE in pages */
const layout = (t: Task): string[] => t.mm.vmas.vmas.map((v) => `${(v.start - BASE) / PAGE}-${(v.end - BASE) / PAGE} ${v.mapsLine().split(' ')[1]} key${v.pkey}`);
const load = (k: Kernel, t: Task, va: number): number => k.localCpu(t).load(va, new Uint8Array(8), 0, 8);

describe('protection keys: execute-only memory (arch/x86/mm/pkeys.c)', () => {
  it('mmap with exactly PROT_EXEC takes the execute-only key (1); any other prot, or a CPU without ospke, key 0', () => {
    for (const pku of [false, true]) {
      const { k, done } = boot({ pku });
      const t = k.spawn();
      assert.equal(mmap(k, t, BASE, 2, PROT_EXEC), BASE);
      assert.equal(mmap(k, t, BASE + 4 * PAGE, 2, PROT_EXEC | PROT_READ), BASE + 4 * PAGE);
      // mmap never validates prot: bit 32 is ignored for the VMA's flags, but prot is no longer exactly PROT_EXEC
      assert.equal(mmap(k, t, BASE + 8 * PAGE, 2, 0x1_0000_0004n), BASE + 8 * PAGE);
      assert.equal(mmap(k, t, BASE + 12 * PAGE, 2, PROT_EXEC | PROT_SEM), BASE + 12 * PAGE);
      assert.deepEqual(layout(t), ['0-2 --xp key' + (pku ? 1 : 0), '4-6 r-xp key0', '8-10 --xp key0', '12-14 --xp key0'], `pku ${pku}`);
      assert.equal(t.mm.execOnlyPkey, pku ? 1 : -1);
      done();
    }
  });

  it('VMAs with different keys do not merge; mprotect(PROT_EXEC) gives the key alone and then they do', () => {
    for (const pku of [false, true]) {
      const { k, done } = boot({ pku });
      const t = k.spawn();
      assert.equal(mmap(k, t, BASE, 2, PROT_EXEC), BASE);
      assert.equal(mmap(k, t, BASE + 2 * PAGE, 2, 0x1_0000_0004n), BASE + 2 * PAGE); // --x, key 0
      assert.deepEqual(layout(t), pku ? ['0-2 --xp key1', '2-4 --xp key0'] : ['0-4 --xp key0']);
      // the same flags, only the key changes: a change all the same, and the halves merge
      assert.equal(mprotect(k, t, BASE + 2 * PAGE, 2, PROT_EXEC), 0);
      assert.deepEqual(layout(t), [`0-4 --xp key${pku ? 1 : 0}`]);
      done();
    }
  });

  it('mprotect to anything but exactly PROT_EXEC moves execute-only memory back to key 0', () => {
    const { k, done } = boot({ pku: true });
    const t = k.spawn();
    assert.equal(mmap(k, t, BASE, 8, PROT_EXEC), BASE);
    assert.equal(mprotect(k, t, BASE, 2, PROT_EXEC | PROT_SEM), 0, 'PROT_SEM: still --x, but not "exec only"');
    assert.equal(mprotect(k, t, BASE + 2 * PAGE, 2, PROT_READ | PROT_EXEC), 0);
    assert.equal(mprotect(k, t, BASE + 4 * PAGE, 2, PROT_NONE), 0);
    assert.deepEqual(layout(t), ['0-2 --xp key0', '2-4 r-xp key0', '4-6 ---p key0', '6-8 --xp key1']);
    // and a read-write mapping turned execute-only gets the key
    assert.equal(mmap(k, t, BASE + 16 * PAGE, 2, PROT_READ | PROT_WRITE), BASE + 16 * PAGE);
    assert.equal(mprotect(k, t, BASE + 16 * PAGE, 2, PROT_EXEC), 0);
    assert.equal(t.mm.vmas.find(BASE + 16 * PAGE)!.pkey, 1);
    done();
  });

  it('two guarded neighbours with different keys get separate anon_vmas and stay apart (a 6.18 trace that failed on such a host)', () => {
    for (const pku of [false, true]) {
      const { k, done } = boot({ pku });
      const t = k.spawn();
      assert.equal(mmap(k, t, BASE, 10, PROT_EXEC), BASE);
      assert.equal(mmap(k, t, BASE + 10 * PAGE, 3, PROT_NONE), BASE + 10 * PAGE);
      // MADV_GUARD_INSTALL prepares an anon_vma for each: the second reuses the first's only when compatible
      assert.equal(k.syscall(t, NR.madvise, BASE + 2 * PAGE, 10 * PAGE, MADV_GUARD_INSTALL), 0);
      assert.equal(mprotect(k, t, BASE + 4 * PAGE, 7, PROT_EXEC), 0);
      // real Linux on a host with ospke: 200093000-20009d000 --xp, 20009d000-20009e000 --xp, 20009e000-2000a0000 ---p
      assert.deepEqual(layout(t), pku ? ['0-10 --xp key1', '10-11 --xp key1', '11-13 ---p key0'] : ['0-11 --xp key0', '11-13 ---p key0']);
      done();
    }
  });

  it('loads and stores to execute-only memory fault (SIGSEGV); without ospke x86 lets a load through', () => {
    for (const pku of [false, true]) {
      const { k, done } = boot({ pku });
      const t = k.spawn();
      assert.equal(mmap(k, t, BASE, 2, PROT_EXEC), BASE);
      const segv = k.counters.snapshot().segv;
      assert.equal(load(k, t, BASE), pku ? -14 : 0, `pku ${pku}`); // -EFAULT: SIGSEGV
      assert.equal(k.counters.snapshot().segv - segv, pku ? 1 : 0);
      done();
    }
  });

  it('pages present before mprotect(PROT_EXEC) lose data access, and get it back with their data after PROT_READ', () => {
    const { k, done } = boot({ pku: true });
    const t = k.spawn();
    assert.equal(mmap(k, t, BASE, 1, PROT_READ | PROT_WRITE), BASE);
    assert.equal(k.localCpu(t).store(BASE, new Uint8Array(8).fill(0x5a), 0, 8), 0);
    assert.equal(mprotect(k, t, BASE, 1, PROT_EXEC), 0);
    assert.equal(k.pool.get(t.mm.pgd, BASE) & PTE_PRESENT, 0, 'the PTE keeps its frame but is not present');
    assert.equal(load(k, t, BASE), -14);
    assert.equal(mprotect(k, t, BASE, 1, PROT_READ | PROT_EXEC), 0);
    const out = new Uint8Array(8);
    assert.equal(k.localCpu(t).load(BASE, out, 0, 8), 0);
    assert.deepEqual([...out], new Array(8).fill(0x5a));
    done();
  });

  it('a CPU on another thread does not fault execute-only memory in on its own: the VMA is not a fast one', () => {
    const { k, done } = boot({ pku: true, nrCpus: 2, nodeFrames: [160, 64] });
    const t = k.spawn();
    assert.equal(mmap(k, t, BASE, 2, PROT_EXEC), BASE);
    assert.equal(mmap(k, t, BASE + 4 * PAGE, 2, PROT_READ | PROT_EXEC), BASE + 4 * PAGE);
    k.smp.setOnline(1, t.mm.id);
    k.smp.setOffline(1);
    enableFastFaults(k, t.mm);
    mmWriteLock(k, t.mm);
    mmWriteUnlock(k, t.mm);
    const ff = fastFaultOn(k, t, 1);
    assert.equal(ff.tryFault(BASE, false), false, 'key 1: the kernel decides (and refuses)');
    assert.equal(ff.tryFault(BASE + 4 * PAGE, false), true, 'key 0 r-x: the CPU\'s');
    done();
  });
});
