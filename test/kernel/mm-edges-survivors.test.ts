// Behaviour the quick mutation run of the new mm code (mmap.ts, mprotect.ts,
// madvise.ts, limits.ts after the u64/advice/limits work) showed untested:
// see test/mutation-review/kernel-mm-edges.md. Values follow Linux 6.18
// (test/kernel/linux-argchecks.md).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Machine } from '../../hardware/machine.js';
import { E } from '../../kernel/errno.js';
import { ALL_FEATURES, type FileOps, Kernel, OpenFile, type Task } from '../../kernel/kernel.js';
import { defaultOvercommit, type Overcommit } from '../../kernel/limits.js';
import { allocFilePage, freeFilePages } from '../../kernel/memory.js';
import { NR } from '../../kernel/syscalls.js';
import {
  CAP_SYS_ADMIN,
  MADV_COLLAPSE,
  MADV_DODUMP,
  MADV_DOFORK,
  MADV_DONTDUMP,
  MADV_GUARD_INSTALL,
  MADV_HWPOISON,
  MADV_NORMAL,
  MADV_POPULATE_READ,
  MADV_REMOVE,
  MADV_SOFT_OFFLINE,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_HUGETLB,
  MAP_HUGE_SHIFT,
  MAP_LOCKED,
  MAP_PRIVATE,
  MAP_SHARED,
  MAP_STACK,
  MMAP_BASE,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
} from '../../kernel/uapi.js';
import { VM_IO } from '../../kernel/vma.js';
import { BASE, PAGE, boot, read, touch } from './util.js';

const RW = PROT_READ | PROT_WRITE;
const FIXED = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
const HPAGE = 2 * 1024 * 1024;
const mmap = (k: Kernel, t: Task, addr: number, pages: number, prot: number, flags: number, fd = -1) => k.syscall(t, NR.mmap, addr, pages * PAGE, prot, flags, fd, 0);
const fileOps: FileOps = {
  mmap: () => 0,
  fault: (k, file, _vma, pgoff, task) => file.pages.get(pgoff) ?? allocFilePage(k, file, pgoff, null, task.mm),
  release: (k, file) => freeFilePages(k, file),
};

function kernel(oc: Partial<Overcommit> = {}, cfg: { gigantic?: boolean; maxMapCount?: number } = {}): Kernel {
  const m = Machine.create({ profile: 'none', backend: 'openssl', memory: { nodeFrames: [64] }, nrCpus: 1 });
  return new Kernel(m, { features: ALL_FEATURES, pgtableSlots: 256, overcommit: { ...defaultOvercommit(1000, 24), ...oc }, ...cfg });
}

describe('overcommit and limits: the exact boundaries', () => {
  it("defaultOvercommit: the reserves are 3% of memory (1/32) capped at 8 MiB and 128 MiB, in KiB", () => {
    assert.deepEqual(defaultOvercommit(1000, 24), { mode: 0, totalRamPages: 1000, swapPages: 24, ratio: 50, kbytes: 0, adminReserveKb: 125, userReserveKb: 125 });
    const big = defaultOvercommit(1 << 20, 0); // 4 GiB: 131072 KiB is 1/32
    assert.equal(big.adminReserveKb, 8192);
    assert.equal(big.userReserveKb, 131072);
  });

  it('mode 2: the charge must stay strictly below the limit; root is spared the admin reserve; overcommit_kbytes replaces the ratio', () => {
    const k = kernel({ mode: 2, adminReserveKb: 40, userReserveKb: 0 });
    const root = k.spawn({ caps: [CAP_SYS_ADMIN] });
    assert.equal(mmap(k, root, BASE, 524, RW, FIXED), -E.ENOMEM, '524 is not < 500 + 24');
    assert.equal(mmap(k, root, BASE, 523, RW, FIXED), BASE);
    k.shutdown();
    const k2 = kernel({ mode: 2, adminReserveKb: 40, userReserveKb: 0 });
    const user = k2.spawn({ caps: [] });
    assert.equal(mmap(k2, user, BASE, 514, RW, FIXED), -E.ENOMEM, 'less the 10 pages of admin reserve');
    assert.equal(mmap(k2, user, BASE, 513, RW, FIXED), BASE);
    k2.shutdown();
    const k3 = kernel({ mode: 2, kbytes: 400, adminReserveKb: 0, userReserveKb: 0 });
    const t3 = k3.spawn();
    assert.equal(mmap(k3, t3, BASE, 123, RW, FIXED), BASE, 'below 100 + 24 swap pages: the ratio is ignored');
    assert.equal(mmap(k3, t3, BASE + 1024 * PAGE, 1, RW, FIXED), -E.ENOMEM, '124 is not < 124');
    k3.shutdown();
  });

  it('mode 2: the user reserve is total_vm / 32, at most user_reserve_kbytes', () => {
    const k = kernel({ mode: 2, adminReserveKb: 0, userReserveKb: 4000 });
    const t = k.spawn();
    assert.equal(mmap(k, t, BASE + 4096 * PAGE, 320, PROT_NONE, FIXED), BASE + 4096 * PAGE, 'total_vm 320: not charged');
    assert.equal(mmap(k, t, BASE, 514, RW, FIXED), -E.ENOMEM, '514 is not < 524 - 320 / 32');
    assert.equal(mmap(k, t, BASE, 513, RW, FIXED), BASE);
    k.shutdown();
  });

  it('RLIMIT_DATA of 0 lets data mappings through (the Valgrind exception: the hard limit is infinite)', () => {
    const k = kernel({ mode: 1 });
    const t = k.spawn({ rlimits: { data: 0 } });
    assert.equal(mmap(k, t, BASE, 5, RW, FIXED), BASE);
    k.shutdown();
  });

  it('max_map_count: mmap is refused only once the count is above it (the last one may reach max + 1)', () => {
    const k = kernel({ mode: 1 }, { maxMapCount: 3 });
    const t = k.spawn();
    for (let i = 0; i < 4; i++) assert.equal(mmap(k, t, BASE + i * 4 * PAGE, 1, PROT_READ, FIXED), BASE + i * 4 * PAGE, `VMA ${i + 1}`);
    assert.equal(t.mm.vmas.mapCount, 4);
    assert.equal(mmap(k, t, BASE + 32 * PAGE, 1, PROT_READ, FIXED), -E.ENOMEM);
    k.shutdown();
  });
});

describe('mmap: placement and huge pages', () => {
  it('top-down placement starts below a VMA that straddles MMAP_BASE, and at MMAP_BASE when the VMA lies wholly above it', () => {
    const k = kernel({ mode: 1 });
    const t = k.spawn();
    const above = MMAP_BASE + 16 * PAGE;
    assert.equal(mmap(k, t, above, 4, PROT_READ, FIXED), above);
    assert.equal(mmap(k, t, 0, 1, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS), MMAP_BASE - PAGE);
    const straddle = MMAP_BASE - 8 * PAGE;
    assert.equal(mmap(k, t, straddle, 16, PROT_READ, FIXED), straddle, 'replaces the first one-page mapping too');
    assert.equal(mmap(k, t, 0, 1, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS), straddle - PAGE);
    k.shutdown();
  });

  it('no gap large enough: ENOMEM', () => {
    const k = kernel({ mode: 1 });
    const t = k.spawn();
    assert.equal(k.syscall(t, NR.mmap, 0, MMAP_BASE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), -E.ENOMEM);
    k.shutdown();
  });

  it('MAP_HUGETLB: 1 GiB pages exist only on a CPU that has them; never on a regular file', () => {
    for (const gigantic of [false, true]) {
      const k = kernel({ mode: 1 }, { gigantic });
      const t = k.spawn();
      const r = k.syscall(t, NR.mmap, 0, PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (30 << MAP_HUGE_SHIFT), -1, 0);
      assert.equal(r, gigantic ? -E.ENOMEM : -E.EINVAL, `gigantic ${gigantic}`);
      const fd = t.installFd(new OpenFile(k, '/test/f', '00:05', 3, fileOps));
      assert.equal(k.syscall(t, NR.mmap, 0, PAGE, RW, MAP_SHARED | MAP_HUGETLB, fd, 0), -E.EINVAL);
      k.shutdown();
    }
  });

  it('a file opened read-only: no writable shared mapping, and mprotect cannot add write later (VM_MAYWRITE is gone)', () => {
    const k = kernel({ mode: 1 });
    const t = k.spawn();
    const fd = t.installFd(new OpenFile(k, '/test/ro', '00:05', 4, fileOps, false));
    assert.equal(k.syscall(t, NR.mmap, BASE, PAGE, RW, MAP_SHARED | MAP_FIXED, fd, 0), -E.EACCES);
    assert.equal(k.syscall(t, NR.mmap, BASE, PAGE, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0), BASE);
    assert.equal(k.syscall(t, NR.mprotect, BASE, PAGE, RW), -E.EACCES);
    assert.match(t.mm.vmas.maps()[0]!, /^200000000-200001000 r--s /, 'still VM_MAYSHARE, as /proc/pid/maps shows it');
    k.shutdown();
  });
});

describe('madvise: per-VMA rules', () => {
  it('a flag advice returns 0 for a VMA that is not the first, and EAGAIN (not ENOMEM) when its split passes max_map_count', () => {
    const { k, done } = boot({ maxMapCount: 3 });
    const t = k.spawn();
    assert.equal(mmap(k, t, BASE, 4, RW, FIXED), BASE);
    assert.equal(mmap(k, t, BASE + 8 * PAGE, 4, RW, FIXED), BASE + 8 * PAGE);
    assert.equal(k.syscall(t, NR.madvise, BASE + 8 * PAGE, 4 * PAGE, MADV_DONTDUMP), 0, 'the second VMA, whole');
    assert.equal(k.syscall(t, NR.madvise, BASE + 9 * PAGE, PAGE, MADV_DODUMP), -E.EAGAIN, 'two splits would make 4 > 3');
    done();
  });

  it('DOFORK and POPULATE refuse VM_IO memory; GUARD_INSTALL refuses locked memory', () => {
    const { k, done } = boot();
    const t = k.spawn({ caps: [CAP_SYS_ADMIN, 14] });
    assert.equal(mmap(k, t, BASE, 2, RW, FIXED), BASE);
    t.mm.vmas.vmas[0]!.flags |= VM_IO; // as a driver's mapping has it
    assert.equal(k.syscall(t, NR.madvise, BASE, PAGE, MADV_DOFORK), -E.EINVAL);
    assert.equal(k.syscall(t, NR.madvise, BASE, PAGE, MADV_POPULATE_READ), -E.EINVAL);
    assert.equal(k.syscall(t, NR.madvise, BASE, PAGE, MADV_NORMAL), 0);
    assert.equal(mmap(k, t, BASE + 8 * PAGE, 2, PROT_READ, FIXED | MAP_LOCKED), BASE + 8 * PAGE);
    assert.equal(k.syscall(t, NR.madvise, BASE + 8 * PAGE, PAGE, MADV_GUARD_INSTALL), -E.EINVAL);
    done();
  });

  it('MADV_REMOVE on a private file mapping: EACCES (only shared writable mappings can punch holes)', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const fd = t.installFd(new OpenFile(k, '/test/rm', '00:05', 5, fileOps));
    assert.equal(k.syscall(t, NR.mmap, BASE, PAGE, RW, MAP_PRIVATE | MAP_FIXED, fd, 0), BASE);
    assert.equal(k.syscall(t, NR.madvise, BASE, PAGE, MADV_REMOVE), -E.EACCES);
    done();
  });

  it('MADV_COLLAPSE: inside one 2 MiB block from an unaligned start EINVAL, from an aligned start 0; a VMA with MAP_STACK EINVAL', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const at = 0x4_0000_0000; // 2 MiB aligned
    assert.equal(k.syscall(t, NR.mmap, at, 2 * HPAGE, RW, FIXED, -1, 0), at);
    assert.equal(k.syscall(t, NR.madvise, at + PAGE, PAGE, MADV_COLLAPSE), -E.EINVAL, '(hend - hstart) wraps');
    assert.equal(k.syscall(t, NR.madvise, at, PAGE, MADV_COLLAPSE), 0, 'no whole block: nothing to do');
    assert.equal(k.syscall(t, NR.madvise, at + HPAGE, HPAGE, MADV_COLLAPSE), -E.EINVAL, 'a whole block: collapsing is not modelled');
    const st = 0x8_0000_0000;
    assert.equal(k.syscall(t, NR.mmap, st, 2 * HPAGE, RW, FIXED | MAP_STACK, -1, 0), st);
    assert.equal(k.syscall(t, NR.madvise, st, PAGE, MADV_COLLAPSE), -E.EINVAL, 'VM_NOHUGEPAGE');
    done();
  });

  it('MADV_HWPOISON (privileged) takes the poisoned pages away, each page of the range; MADV_SOFT_OFFLINE keeps the data', () => {
    const { k, done } = boot();
    const t = k.spawn();
    assert.equal(mmap(k, t, BASE, 4, RW, FIXED), BASE);
    for (let p = 0; p < 4; p++) touch(k, t, BASE + p * PAGE, 0x40 + p);
    assert.equal(k.syscall(t, NR.madvise, BASE + PAGE, 2 * PAGE, MADV_HWPOISON), 0);
    assert.deepEqual([0, 1, 2, 3].map((p) => read(k, t, BASE + p * PAGE)), [0x40, 0, 0, 0x43]);
    assert.equal(k.syscall(t, NR.madvise, BASE, 4 * PAGE, MADV_SOFT_OFFLINE), 0);
    assert.deepEqual([0, 1, 2, 3].map((p) => read(k, t, BASE + p * PAGE)), [0x40, 0, 0, 0x43]);
    done();
  });
});
