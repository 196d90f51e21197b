// Resource limits and overcommit, against what mm/util.c __vm_enough_memory,
// mm/mmap.c may_expand_vm / mlock_future_ok and mm/mlock.c can_do_mlock do
// (Linux 6.18; test/kernel/linux-argchecks.md sections 2.2 and 2.4).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Machine } from '../../hardware/machine.js';
import { E } from '../../kernel/errno.js';
import { ALL_FEATURES, Kernel, type Task } from '../../kernel/kernel.js';
import { defaultOvercommit, type Overcommit } from '../../kernel/limits.js';
import { NR } from '../../kernel/syscalls.js';
import {
  CAP_IPC_LOCK,
  CAP_SYS_ADMIN,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_GROWSDOWN,
  MAP_LOCKED,
  MAP_NORESERVE,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
} from '../../kernel/uapi.js';

const P = 4096;
const BASE = 0x2_0000_0000;
const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;

function kernel(oc: Partial<Overcommit> = {}): Kernel {
  const m = Machine.create({ profile: 'none', backend: 'openssl', memory: { nodeFrames: [64] }, nrCpus: 1 });
  return new Kernel(m, { features: ALL_FEATURES, pgtableSlots: 256, overcommit: { ...defaultOvercommit(1000, 24), ...oc } });
}
const mmap = (k: Kernel, t: Task, addr: number, pages: number, prot: number, flags: number) => k.syscall(t, NR.mmap, addr, pages * P, prot, flags, -1, 0);

describe('overcommit', () => {
  it('mode 0 refuses one charge larger than RAM + swap, and only charged mappings', () => {
    const k = kernel();
    const t = k.spawn();
    assert.equal(mmap(k, t, BASE, 1025, RW, ANON), -E.ENOMEM); // 1025 > 1000 + 24
    assert.equal(k.committedPages, 0, 'a refused charge is given back');
    assert.equal(mmap(k, t, BASE, 1024, RW, ANON), BASE);
    assert.equal(mmap(k, t, BASE + 2048 * P, 1024, RW, ANON), BASE + 2048 * P, 'mode 0 looks at each call alone');
    assert.equal(k.committedPages, 2048);
    assert.equal(mmap(k, t, BASE + 4096 * P, 5000, PROT_READ, ANON), BASE + 4096 * P, 'read-only: not charged');
    assert.equal(mmap(k, t, BASE + 16384 * P, 5000, RW, ANON | MAP_NORESERVE), BASE + 16384 * P, 'MAP_NORESERVE: not charged');
    assert.equal(k.syscall(t, NR.mprotect, BASE + 4096 * P, 5000 * P, RW), -E.ENOMEM, 'mprotect making it writable charges it');
    assert.equal(k.syscall(t, NR.mprotect, BASE + 4096 * P, 1000 * P, RW), 0);
    assert.equal(k.committedPages, 3048);
    assert.equal(k.syscall(t, NR.munmap, BASE, 1024 * P), 0);
    assert.equal(k.committedPages, 2024, 'munmap gives the VM_ACCOUNT pages back');
    k.shutdown();
  });

  it('MAP_FIXED over charged memory is charged only for the pages it adds', () => {
    const k = kernel();
    const t = k.spawn();
    assert.equal(mmap(k, t, BASE, 1000, RW, ANON), BASE);
    assert.equal(mmap(k, t, BASE, 1500, RW, ANON), BASE, '500 new pages');
    assert.equal(k.committedPages, 1500);
    assert.equal(mmap(k, t, BASE + 1500 * P, 1025, RW, ANON), -E.ENOMEM);
    k.shutdown();
  });

  it('shared anonymous memory is charged whole at mmap; a refusal leaves the old mapping gone', () => {
    const k = kernel();
    const t = k.spawn();
    assert.equal(mmap(k, t, BASE, 4, RW, ANON), BASE);
    assert.equal(mmap(k, t, BASE, 1025, PROT_NONE, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED), -E.ENOMEM, 'even PROT_NONE');
    assert.equal(t.mm.vmas.mapCount, 0);
    assert.equal(k.committedPages, 0);
    assert.equal(mmap(k, t, BASE, 1025, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE), BASE);
    assert.equal(mmap(k, t, BASE + 2048 * P, 100, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED), BASE + 2048 * P);
    assert.equal(k.committedPages, 100);
    assert.equal(k.syscall(t, NR.munmap, BASE + 2048 * P, 100 * P), 0);
    assert.equal(k.committedPages, 0, 'the shmem charge goes with the file');
    k.shutdown();
  });

  it('mode 1 charges but never refuses', () => {
    const k = kernel({ mode: 1 });
    const t = k.spawn();
    assert.equal(mmap(k, t, BASE, 100_000, RW, ANON), BASE);
    assert.equal(k.committedPages, 100_000);
    k.shutdown();
  });

  it('mode 2: the running total against ratio x RAM + swap, less the reserves; MAP_NORESERVE does not count', () => {
    // allowed = 1000 * 50% + 24 - admin (not CAP_SYS_ADMIN: 40 KiB = 10 pages) - min(total_vm / 32, user 20 pages)
    const k = kernel({ mode: 2, adminReserveKb: 40, userReserveKb: 80 });
    const t = k.spawn({ caps: [] });
    assert.equal(mmap(k, t, BASE, 513, RW, ANON), BASE, 'committed 513 < 514');
    assert.equal(mmap(k, t, BASE + 1024 * P, 1, RW, ANON | MAP_NORESERVE), -E.ENOMEM, '514 - 513 / 32 = 498: refused');
    assert.equal(k.committedPages, 513);
    const root = k.spawn({ caps: [CAP_SYS_ADMIN] });
    assert.equal(mmap(k, root, BASE, 1, RW, ANON), BASE, 'root is spared the admin reserve: 514 < 524');
    k.shutdown();
  });
});

describe('RLIMIT_MEMLOCK', () => {
  it('MAP_LOCKED: EPERM with a zero limit, EAGAIN past it, CAP_IPC_LOCK passes; munmap gives it back', () => {
    const k = kernel();
    const none = k.spawn({ caps: [], rlimits: { memlock: 0 } });
    assert.equal(mmap(k, none, BASE, 1, PROT_READ, ANON | MAP_LOCKED), -E.EPERM);
    const t = k.spawn({ caps: [], rlimits: { memlock: 16 * P } });
    assert.equal(mmap(k, t, BASE, 10, PROT_READ, ANON | MAP_LOCKED), BASE);
    assert.equal(mmap(k, t, BASE + 10 * P, 7, PROT_READ, ANON | MAP_LOCKED), -E.EAGAIN, '17 > 16');
    assert.equal(mmap(k, t, BASE + 10 * P, 6, PROT_READ, ANON | MAP_LOCKED), BASE + 10 * P);
    assert.equal(k.syscall(t, NR.munmap, BASE, 8 * P), 0);
    assert.equal(t.mm.vmas.lockedPages, 8);
    assert.equal(mmap(k, t, BASE + 20 * P, 8, PROT_READ, ANON | MAP_LOCKED), BASE + 20 * P);
    const cap = k.spawn({ caps: [CAP_IPC_LOCK], rlimits: { memlock: 0 } });
    assert.equal(mmap(k, cap, BASE, 100, PROT_READ, ANON | MAP_LOCKED), BASE);
    k.shutdown();
  });
});

describe('RLIMIT_AS and RLIMIT_DATA', () => {
  it('AS counts every mapping; MAP_FIXED does not count what it replaces', () => {
    const k = kernel({ mode: 1 });
    const t = k.spawn({ rlimits: { as: 10 * P } });
    assert.equal(mmap(k, t, BASE, 8, PROT_NONE, ANON), BASE);
    assert.equal(mmap(k, t, BASE + 8 * P, 3, PROT_READ, ANON), -E.ENOMEM);
    assert.equal(mmap(k, t, BASE + 4 * P, 6, PROT_READ, ANON), BASE + 4 * P, '4 of the 6 pages replace mapped ones');
    assert.equal(t.mm.vmas.totalPages, 10);
    k.shutdown();
  });

  it('DATA counts private writable memory that is not a stack, at mmap and when mprotect makes it so', () => {
    const k = kernel({ mode: 1 });
    const t = k.spawn({ rlimits: { data: 4 * P } });
    assert.equal(mmap(k, t, BASE, 5, RW, ANON), -E.ENOMEM);
    assert.equal(mmap(k, t, BASE, 5, PROT_READ, ANON), BASE);
    assert.equal(mmap(k, t, BASE + 8 * P, 5, RW, ANON | MAP_GROWSDOWN), BASE + 8 * P, 'a stack is not data');
    assert.equal(mmap(k, t, BASE + 16 * P, 5, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED), BASE + 16 * P, 'nor is shared memory');
    assert.equal(k.syscall(t, NR.mprotect, BASE, 5 * P, RW), -E.ENOMEM);
    assert.equal(k.syscall(t, NR.mprotect, BASE, 4 * P, RW), 0);
    assert.equal(t.mm.vmas.dataPages, 4);
    k.shutdown();
  });
});
