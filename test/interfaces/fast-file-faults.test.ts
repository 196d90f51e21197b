// The file-backed designs let a worker CPU fault their pages itself
// (FileOps.fastFault, kernel/fastfault.ts): /dev/mktme, memfd_secret and a
// guest_memfd made with MMAP | INIT_SHARED. The page a CPU takes is the one
// the design's own fault would give: its flags, KeyID, pin and counts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Machine } from '../../hardware/machine.js';
import { CPU_KEY, type UserEnv } from '../../interfaces/contract.js';
import { allDesigns, getDesign } from '../../interfaces/registry.js';
import { GUEST_MEMFD_FLAG_MMAP, KVM_CREATE_GUEST_MEMFD, KVM_CREATE_VM, KVM_PATH, KVM_X86_DEFAULT_VM } from '../../kernel/kvm.js';
import { ALL_FEATURES, Kernel } from '../../kernel/kernel.js';
import { PG_ALLOCATED, PG_FILE, PG_INACCESSIBLE, PG_SECRET, PG_UNEVICTABLE, PG_UNMOVABLE } from '../../kernel/page_alloc.js';
import { PTE_PINNED, ptePfn, pteKeyid } from '../../kernel/pgtable.js';
import { AT_FDCWD, NR } from '../../kernel/syscalls.js';
import { MAP_SHARED } from '../../kernel/uapi.js';

const O_RDWR = 2;
import { fastCpu, settle } from '../kernel/util.js';

const P = 4096;
const PAGES = 8;

function boot() {
  const m = Machine.create({ profile: 'mktme', backend: 'openssl', memory: { nodeFrames: [128, 128], daxFrames: 0 }, nrCpus: 2 });
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
});
