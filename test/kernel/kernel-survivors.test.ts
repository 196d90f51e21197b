// Survivors of the quick mutation run in kernel/kernel.ts: the boot checks
// against the PTE format, the configured page-table pool, struct file
// references, a task's credentials and ids, inode numbers, the VMA split and
// merge counters, the vma_count_max gauge, registering a syscall or madvise
// advice twice, and what exit() and shutdown() leave behind.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Machine } from '../../hardware/machine.js';
import { MM_LOCK } from '../../kernel/fastfault.js';
import { ALL_FEATURES, Kernel, OpenFile, type FileOps } from '../../kernel/kernel.js';
import { PTE_MAX_KEYID, PTE_MAX_PFN, ptePfn } from '../../kernel/pgtable.js';
import { DAX_PATH } from '../../kernel/dax.js';
import { AT_FDCWD, NR } from '../../kernel/syscalls.js';
import { CAP_SYS_ADMIN, CAP_SYS_RESOURCE, MAP_SHARED } from '../../kernel/uapi.js';
import { BASE, boot, mapAnon, PAGE } from './util.js';

const RW = 3;
const R = 1;

const smallMachine = (nrCpus = 1) =>
  Machine.create({ profile: 'mktme', backend: 'openssl', memory: { nodeFrames: [16] }, nrCpus });

describe('Kernel (kernel.ts)', () => {
  it('boots only on cpu 0, and only where frame numbers and KeyIDs fit the PTE (exactly at the limits it boots)', () => {
    const m = smallMachine(2);
    const cpu1 = Machine.attach(m.descriptor(), 1);
    assert.throws(() => new Kernel(cpu1, { features: ALL_FEATURES }), /^Error: kernel: boots on cpu 0$/);
    // the last frame number the PTE holds is PTE_MAX_PFN: PTE_MAX_PFN + 1 frames boot
    const big = Machine.create({ profile: 'mktme', backend: 'openssl', memory: { nodeFrames: [PTE_MAX_PFN + 1] }, nrCpus: 1 });
    const kb = new Kernel(big, { features: ALL_FEATURES, pgtableSlots: 64 });
    assert.equal(kb.alloc.freeFrames(), PTE_MAX_PFN + 1);
    kb.shutdown();
    // KeyIDs: no profile has more than PTE_MAX_KEYID, so the profile is overridden on the machine
    const withKeyids = (n: number) => Object.create(m, { profile: { value: { ...m.profile, nrKeyids: n } } }) as Machine;
    const ok = new Kernel(withKeyids(PTE_MAX_KEYID), { features: ALL_FEATURES, pgtableSlots: 64 });
    ok.shutdown();
    assert.throws(
      () => new Kernel(withKeyids(PTE_MAX_KEYID + 1), { features: ALL_FEATURES }),
      new RangeError(`hardware: ${PTE_MAX_KEYID + 1} KeyIDs do not fit the PTE's ${PTE_MAX_KEYID}`),
    );
  });

  it('uses the configured page-table pool: a pool of 3 pgds runs out at the 4th spawn with a kernel error', () => {
    // slot 0 is never handed out, a pgd is 32 slots: 32*3+1 slots hold 3 pgds and nothing more
    const k = new Kernel(smallMachine(), { features: ALL_FEATURES, pgtableSlots: 32 * 3 + 1 });
    for (let i = 0; i < 3; i++) k.spawn();
    assert.throws(() => k.spawn(), /^Error: kernel: out of page-table memory \(raise pgtableSlots\)$/);
    assert.equal(k.tasks.size, 3);
    k.shutdown();
  });

  it('a put after the last one is a kernel bug: it throws naming the file, and the file was released once', () => {
    const { k, done } = boot();
    let released = 0;
    const ops: FileOps = { mmap: () => 0, fault: () => -14, release: () => void released++ };
    const f = new OpenFile(k, '/dev/test', '00:05', 7, ops);
    f.get();
    f.put();
    assert.equal(released, 0);
    f.put();
    assert.equal(released, 1);
    assert.throws(() => f.put(), /^Error: file: put on released \/dev\/test$/);
    assert.equal(released, 1);
    done();
  });

  it("a task has the credentials it was spawned with (default root with CAP_SYS_ADMIN), and pids ascend like Linux's alloc_pid", () => {
    const { k, done } = boot();
    const root = k.spawn();
    const user = k.spawn({ uid: 1000, caps: [CAP_SYS_RESOURCE] });
    assert.equal(root.uid, 0);
    assert.deepEqual([...root.caps], [CAP_SYS_ADMIN]);
    assert.equal(user.uid, 1000);
    assert.deepEqual([...user.caps], [CAP_SYS_RESOURCE]);
    assert.equal(user.creds.uid, 1000);
    assert.equal(user.pid, root.pid + 1);
    assert.equal(k.tasks.get(user.pid), user);
    done();
  });

  it('open gives the lowest free fd from 3 up (get_unused_fd_flags)', () => {
    const { k, done } = boot({ daxFrames: 1 });
    const t = k.spawn();
    const open = () => k.syscall(t, NR.openat, AT_FDCWD, DAX_PATH, 2);
    assert.deepEqual([open(), open(), open()], [3, 4, 5]);
    assert.equal(k.syscall(t, NR.close, 4), 0);
    assert.equal(open(), 4);
    assert.equal(open(), 6);
    done();
  });

  it('shared anonymous mappings get consecutive inode numbers (get_next_ino), shown in maps', () => {
    const { k, done } = boot();
    const t = k.spawn();
    mapAnon(k, t, 1, BASE, MAP_SHARED);
    mapAnon(k, t, 1, BASE + 4 * PAGE, MAP_SHARED);
    const inos = t.mm.vmas.maps().map((l) => {
      const m = / 00:01 (\d+) +\/dev\/zero \(deleted\)$/.exec(l);
      assert.ok(m, l);
      return Number(m[1]);
    });
    assert.equal(inos.length, 2);
    assert.equal(inos[1], inos[0] + 1);
    done();
  });

  it('a task spawned on node 1 gets its pages from node 1', () => {
    const { k, m, done } = boot({ nodeFrames: [64, 64] });
    const t = k.spawn({ node: 1 });
    assert.equal(t.mm.node, 1);
    mapAnon(k, t, 2);
    const cpu = k.localCpu(t);
    assert.equal(cpu.store(BASE, new Uint8Array(8).fill(1), 0, 8), 0);
    const pfn = ptePfn(k.pool.get(t.mm.pgd, BASE));
    assert.equal(m.memory.nodeOf(pfn as never), 1);
    done();
  });

  it('counts VMA splits and merges: mprotect of a middle page splits twice, undoing it merges twice', () => {
    const { k, done } = boot();
    const t = k.spawn();
    mapAnon(k, t, 3);
    const c = () => {
      const s = k.counters.snapshot();
      return [s.vma_splits, s.vma_merges];
    };
    assert.deepEqual(c(), [0, 0]);
    assert.equal(k.syscall(t, NR.mprotect, BASE + PAGE, PAGE, R), 0);
    assert.equal(t.mm.vmas.mapCount, 3);
    assert.deepEqual(c(), [2, 0]);
    assert.equal(k.syscall(t, NR.mprotect, BASE + PAGE, PAGE, RW), 0);
    assert.equal(t.mm.vmas.mapCount, 1);
    assert.deepEqual(c(), [2, 2]);
    done();
  });

  it('vma_count_max keeps the highest count when the count falls and rises again below it', () => {
    const { k, done } = boot();
    const t = k.spawn();
    for (let i = 0; i < 3; i++) mapAnon(k, t, 1, BASE + 2 * i * PAGE);
    assert.equal(k.counters.snapshot().vma_count_max, 3);
    assert.equal(k.syscall(t, NR.munmap, BASE, 4 * PAGE), 0);
    mapAnon(k, t, 1, BASE + 10 * PAGE);
    assert.equal(t.mm.vmas.mapCount, 2);
    assert.equal(k.counters.snapshot().vma_count_max, 3);
    done();
  });

  it('a syscall number or madvise advice registered twice is a kernel bug (throws, naming it)', () => {
    const { k, done } = boot();
    assert.throws(() => k.registerSyscall(NR.mmap, () => 0), /^Error: kernel: syscall 9 registered twice$/);
    k.registerMadvise(77, () => 0);
    assert.throws(() => k.registerMadvise(77, () => 0), /^Error: kernel: madvise advice 77 registered twice$/);
    done();
  });

  it('no TLB shootdown is sent for an mm that no other CPU runs, whichever task it is (2 CPUs, the other idle)', () => {
    const { k, done } = boot({ nrCpus: 2 });
    for (const t of [k.spawn(), k.spawn(), k.spawn()]) {
      mapAnon(k, t, 1);
      const cpu = k.localCpu(t);
      assert.equal(cpu.store(BASE, new Uint8Array(8).fill(1), 0, 8), 0);
      assert.equal(k.syscall(t, NR.munmap, BASE, PAGE), 0);
    }
    const s = k.counters.snapshot();
    assert.equal(s.pages_zapped, 3);
    assert.equal(s.tlb_shootdowns, 0);
    done();
  });

  it("exit forgets the task's CPUs and leaves the mm unlocked; another task's CPU still gets its TLB flushed", () => {
    const { k, done } = boot();
    const a = k.spawn();
    const b = k.spawn();
    const cpuA = k.localCpu(a);
    const cpuB = k.localCpu(b);
    mapAnon(k, a, 1);
    mapAnon(k, b, 1);
    const buf = new Uint8Array(8);
    assert.equal(cpuA.store(BASE, buf.fill(1), 0, 8), 0);
    assert.equal(cpuB.store(BASE, buf.fill(2), 0, 8), 0);
    k.exit(a);
    assert.equal(a.exited, true);
    assert.equal(k.tasks.has(a.pid), false);
    assert.equal(a.mm.lockDepth, 0);
    assert.equal(Atomics.load(a.mm.shared.i32, MM_LOCK), 0, 'no writer left on the dead mm');
    // b's page goes away: b's CPU must not read it through a stale TLB entry
    assert.equal(k.syscall(b, NR.munmap, BASE, PAGE), 0);
    assert.ok(cpuB.load(BASE, buf, 0, 8) < 0, 'the unmapped page faults');
    assert.equal(b.mm.lockDepth, 0);
    assert.deepEqual([...k.localCpus], [cpuB], "only b's CPU is left to flush");
    done();
  });

  it('shutdown exits every task and gives their frames back', () => {
    const { k, done } = boot();
    const free0 = k.alloc.freeFrames();
    const ts = [k.spawn(), k.spawn()];
    for (const t of ts) {
      mapAnon(k, t, 2);
      assert.equal(k.localCpu(t).copyToUser(BASE, new Uint8Array(2 * PAGE).fill(3)), 0);
    }
    assert.equal(k.alloc.freeFrames(), free0 - 4);
    k.shutdown();
    assert.equal(k.tasks.size, 0);
    assert.deepEqual(
      ts.map((t) => t.exited),
      [true, true],
    );
    assert.equal(k.alloc.freeFrames(), free0);
    assert.equal(k.localCpus.size, 0);
    done();
  });
});
