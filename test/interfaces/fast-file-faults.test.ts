// The file-backed designs let a worker CPU fault their pages itself
// (FileOps.fastFault, kernel/fastfault.ts): /dev/mktme, memfd_secret and a
// guest_memfd made with MMAP | INIT_SHARED. The page a CPU takes is the one
// the design's own fault would give: its flags, KeyID, pin and counts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Machine } from '../../hardware/machine.js';
import { CPU_KEY, type UserEnv } from '../../interfaces/contract.js';
import { allDesigns, getDesign } from '../../interfaces/registry.js';
import { GUEST_MEMFD_FLAG_INIT_SHARED, GUEST_MEMFD_FLAG_MMAP, KVM_CREATE_GUEST_MEMFD, KVM_CREATE_VM, KVM_PATH, KVM_X86_DEFAULT_VM } from '../../kernel/kvm.js';
import { ALL_FEATURES, Kernel } from '../../kernel/kernel.js';
import { PG_ALLOCATED, PG_FILE, PG_INACCESSIBLE, PG_SECRET, PG_UNEVICTABLE, PG_UNMOVABLE } from '../../kernel/page_alloc.js';
import { PTE_PINNED, ptePfn, pteKeyid } from '../../kernel/pgtable.js';
import { AT_FDCWD, NR } from '../../kernel/syscalls.js';
import { MAP_SHARED } from '../../kernel/uapi.js';

const O_RDWR = 2;
const FALLOC_FL_KEEP_SIZE = 0x01;
const FALLOC_FL_PUNCH_HOLE = 0x02;
import { fastCpu, settle } from '../kernel/util.js';
import { E } from '../../kernel/errno.js';

const P = 4096;
const PAGES = 8;

function boot(frames = 128) {
  const m = Machine.create({ profile: 'mktme', backend: 'openssl', memory: { nodeFrames: [frames, 128], daxFrames: 0 }, nrCpus: 2 });
  const k = new Kernel(m, { features: ALL_FEATURES, pgtableSlots: 256 });
  for (const d of allDesigns()) d.install(k);
  const t = k.spawn();
  const env: UserEnv = { sys: (nr, ...a) => k.syscall(t, nr, ...a), cpu: k.localCpu(t) };
  return { k, t, env };
}

describe('file-backed designs: pages faulted on the faulting CPU', () => {
  const cases = [
    { design: 'dev-mktme', flags: PG_UNEVICTABLE | PG_UNMOVABLE, pinned: true, keyed: true },
    { design: 'memfd-secret', flags: PG_UNEVICTABLE | PG_UNMOVABLE | PG_SECRET, pinned: true, keyed: false },
    { design: 'guest-memfd', flags: PG_INACCESSIBLE, pinned: false, keyed: false },
  ] as const;
  for (const c of cases)
    it(`${c.design}: every first touch is handled on the CPU, and its page is the design's page`, () => {
      const { k, t, env } = boot();
      const a = getDesign(c.design).allocate(env, PAGES * P, CPU_KEY, true);
      assert.ok(!('failed' in a) && !a.fallback, JSON.stringify(a));
      const ff = fastCpu(k, t);
      for (let p = 0; p < PAGES; p++) assert.equal(ff.tryFault(a.addr + p * P, true), true, `page ${p}`);
      assert.deepEqual([ff.handled, ff.passed], [PAGES, 0]);
      settle(k, t);
      const vma = t.mm.vmas.find(a.addr)!;
      assert.equal(c.keyed, vma.keyid !== 0);
      for (let p = 0; p < PAGES; p++) {
        const pte = k.pool.get(t.mm.pgd, a.addr + p * P);
        const pfn = ptePfn(pte);
        assert.equal(k.alloc.flags[pfn], PG_ALLOCATED | PG_FILE | c.flags, `flags of page ${p}`);
        assert.equal(k.alloc.keyid[pfn], vma.keyid);
        assert.equal(pteKeyid(pte), vma.keyid);
        assert.equal((pte & PTE_PINNED) !== 0, c.pinned);
      }
      assert.deepEqual(
        [k.counters.get('faults'), k.counters.get('direct_map_removed'), k.counters.get('pinned_pages'), t.mm.filePages],
        [PAGES, c.flags & PG_SECRET ? PAGES : 0, c.pinned ? PAGES : 0, PAGES],
      );
      getDesign(c.design).release(env, a);
      assert.deepEqual([t.mm.filePages, k.alloc.nrPinned], [0, 0]);
      assert.equal(k.alloc.freeFrames(), 256);
      k.shutdown();
    });

  it('guest-memfd: a guest_memfd whose pages start private (no INIT_SHARED) has no fault for the CPU to take: it traps, and the kernel answers SIGBUS', () => {
    const { k, t, env } = boot();
    const kvm = env.sys(NR.openat, AT_FDCWD, KVM_PATH, O_RDWR);
    const vm = env.sys(NR.ioctl, kvm, KVM_CREATE_VM, KVM_X86_DEFAULT_VM);
    const fd = env.sys(NR.ioctl, vm, KVM_CREATE_GUEST_MEMFD, [PAGES * P, GUEST_MEMFD_FLAG_MMAP]);
    assert.ok(fd >= 0, `${fd}`);
    const addr = env.sys(NR.mmap, 0, PAGES * P, 3, MAP_SHARED, fd, 0);
    assert.ok(addr >= 0, `${addr}`);
    const ff = fastCpu(k, t);
    assert.equal(ff.tryFault(addr, true), false);
    assert.ok(k.fault(t, addr, true) < 0);
    k.shutdown();
  });

  it('memfd-secret and guest-memfd: a page past the end of the file, mapped all the same, traps (the kernel answers SIGBUS)', () => {
    const { k, t, env } = boot();
    const secret = env.sys(NR.memfd_secret, 0);
    assert.equal(env.sys(NR.ftruncate, secret, 2 * P), 0);
    const a = env.sys(NR.mmap, 0, 4 * P, 3, MAP_SHARED, secret, 0);
    const kvm = env.sys(NR.openat, AT_FDCWD, KVM_PATH, O_RDWR);
    const vm = env.sys(NR.ioctl, kvm, KVM_CREATE_VM, KVM_X86_DEFAULT_VM);
    const gmem = env.sys(NR.ioctl, vm, KVM_CREATE_GUEST_MEMFD, [2 * P, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED]);
    const g = env.sys(NR.mmap, 0, 4 * P, 3, MAP_SHARED, gmem, 0);
    assert.ok(a >= 0 && g >= 0, `${a} ${g}`);
    const ff = fastCpu(k, t);
    for (const base of [a, g]) {
      assert.equal(ff.tryFault(base + P, true), true, 'the last page of the file');
      assert.equal(ff.tryFault(base + 2 * P, true), false, 'the first page past it');
      assert.equal(k.fault(t, base + 2 * P, true), -E.EFAULT);
    }
    k.shutdown();
  });

  /** A guest_memfd of `pages` pages that t maps shared, and its fd. */
  function gmemMapped(env: UserEnv, pages: number): { gmem: number; addr: number } {
    const kvm = env.sys(NR.openat, AT_FDCWD, KVM_PATH, O_RDWR);
    const vm = env.sys(NR.ioctl, kvm, KVM_CREATE_VM, KVM_X86_DEFAULT_VM);
    const gmem = env.sys(NR.ioctl, vm, KVM_CREATE_GUEST_MEMFD, [pages * P, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED]);
    const addr = env.sys(NR.mmap, 0, pages * P, 3, MAP_SHARED, gmem, 0);
    assert.ok(addr >= 0, `${addr}`);
    return { gmem, addr };
  }

  it('guest-memfd: a hole punched by another process keeps the CPUs of the mm that maps the file out while its pages go, and lets them in again', () => {
    const { k, t, env } = boot();
    const { gmem, addr } = gmemMapped(env, PAGES);
    const ff = fastCpu(k, t);
    const free = k.alloc.freeFrames();
    for (let p = 0; p < PAGES; p++) assert.equal(ff.tryFault(addr + p * P, true), true);
    // the CPU claimed the file and charged its pages; the kernel has not taken t's mm since
    const file = t.files.get(gmem)!;
    assert.equal(file.charged, null);
    const other = k.spawn();
    file.get();
    const fd = other.installFd(file);
    assert.equal(k.syscall(other, NR.fallocate, fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 0, PAGES * P), 0);
    assert.equal(file.charged, t.mm, 'the punch took t’s mm first: its CPU’s claim and charges were settled');
    assert.equal(file.pages.size, 0);
    assert.equal(k.alloc.freeFrames(), free);
    settle(k, t);
    assert.equal(t.mm.filePages, 0, 'and the charge went with the pages');
    assert.equal(ff.tryFault(addr, true), true, 'the CPU is let in again');
    k.shutdown();
  });

  it('guest-memfd: a hole punched over more pages than the kernel has freed at once before gives every frame back', () => {
    const { k, t, env } = boot(1400);
    const N = 1100;
    const { gmem, addr } = gmemMapped(env, N);
    const free = k.alloc.freeFrames();
    for (let p = 0; p < N; p++) assert.equal(k.fault(t, addr + p * P, true), 0);
    assert.equal(env.sys(NR.fallocate, gmem, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 0, N * P), 0);
    assert.deepEqual([k.alloc.freeFrames(), t.mm.filePages, t.files.get(gmem)!.pages.size], [free, 0, 0]);
    k.shutdown();
  });
});
