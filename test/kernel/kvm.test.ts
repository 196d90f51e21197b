// KVM's guest memory: VM types per hardware, guest_memfd, memslots, memory
// attributes, the guest's faults, SEV pinning and the VMs' keys, against the
// rules of linux-6.18.2 (virt/kvm/guest_memfd.c, kvm_main.c, svm/sev.c,
// vmx/tdx.c, mm/gup.c; ../../../shared/research-qemu-guestmemfd.md §1-3).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Machine } from '../../hardware/machine.js';
import { getDesign } from '../../interfaces/registry.js';
import { E } from '../../kernel/errno.js';
import { ALL_FEATURES, Kernel, NO_FEATURES, type Task } from '../../kernel/kernel.js';
import {
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  GUEST_MEMFD_FLAG_INIT_SHARED,
  GUEST_MEMFD_FLAG_MMAP,
  KVM_CREATE_GUEST_MEMFD,
  KVM_CREATE_VM,
  KVM_MEM_GUEST_MEMFD,
  KVM_MEM_READONLY,
  KVM_MEMORY_ATTRIBUTE_PRIVATE,
  KVM_MEMORY_ENCRYPT_OP,
  KVM_MEMORY_ENCRYPT_REG_REGION,
  KVM_MEMORY_ENCRYPT_UNREG_REGION,
  KVM_SEV_INIT2,
  KVM_SET_MEMORY_ATTRIBUTES,
  KVM_SET_USER_MEMORY_REGION2,
  KVM_TDX_INIT_VM,
  KVM_USER_MEM_SLOTS,
  KVM_X86_DEFAULT_VM,
  KVM_X86_SEV_ES_VM,
  KVM_X86_SEV_VM,
  KVM_X86_SNP_VM,
  KVM_X86_SW_PROTECTED_VM,
  KVM_X86_TDX_VM,
  sevGuestSetShared,
  vmOfFd,
} from '../../kernel/kvm.js';
import { PG_INACCESSIBLE, PG_UNEVICTABLE, PG_UNMOVABLE } from '../../kernel/page_alloc.js';
import { ptePfn, pteKeyid } from '../../kernel/pgtable.js';
import { NR } from '../../kernel/syscalls.js';
import { P, anon, createVm, region, sys } from './kvm-util.js';
import { CAP_IPC_LOCK, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from '../../kernel/uapi.js';

const RW = PROT_READ | PROT_WRITE;

function kernel(profile = 'sev', features = ALL_FEATURES, pgtableSlots = 1024): Kernel {
  const m = Machine.create({ profile, backend: 'openssl', memory: { nodeFrames: [96, 96] }, nrCpus: 1 });
  const k = new Kernel(m, { features, pgtableSlots });
  getDesign('memfd-secret').install(k);
  return k;
}

const store = (k: Kernel, t: Task, va: number, byte: number) => k.localCpu(t).store(va, new Uint8Array(P).fill(byte), 0, P);
function load(k: Kernel, t: Task, va: number): number | Uint8Array {
  const out = new Uint8Array(P);
  const r = k.localCpu(t).load(va, out, 0, P);
  return r < 0 ? r : out;
}
const allBytes = (b: number | Uint8Array, v: number) => typeof b !== 'number' && b.every((x) => x === v);

describe('KVM_CREATE_VM', () => {
  it('takes the VM types the CPU offers and refuses the rest with EINVAL', () => {
    const types: Record<string, number[]> = {
      mktme: [KVM_X86_DEFAULT_VM],
      sev: [KVM_X86_DEFAULT_VM, KVM_X86_SEV_VM, KVM_X86_SEV_ES_VM, KVM_X86_SNP_VM],
      tdx: [KVM_X86_DEFAULT_VM, KVM_X86_TDX_VM],
    };
    for (const [profile, ok] of Object.entries(types)) {
      const k = kernel(profile);
      const t = k.spawn();
      for (let type = 0; type <= 6; type++) {
        const fd = createVm(k, t, type);
        if (ok.includes(type)) assert.ok(fd >= 0, `${profile} type ${type}: ${fd}`);
        else assert.equal(fd, -E.EINVAL, `${profile} type ${type}`);
      }
      // SW_PROTECTED needs CONFIG_KVM_SW_PROTECTED_VM, which this kernel lacks
      assert.equal(createVm(k, t, KVM_X86_SW_PROTECTED_VM), -E.EINVAL);
      k.shutdown();
    }
  });

  it('is an ioctl of /dev/kvm only; VM ioctls from another process get EIO', () => {
    const k = kernel();
    const t = k.spawn(), other = k.spawn();
    const vm = createVm(k, t, KVM_X86_DEFAULT_VM);
    assert.equal(sys(k, t, NR.ioctl, vm, KVM_CREATE_VM, 0), -E.ENOTTY);
    // the fd passed to another process (SCM_RIGHTS): kvm->mm != current->mm
    const f = t.files.get(vm)!;
    f.get();
    const ofd = other.installFd(f);
    assert.equal(sys(k, other, NR.ioctl, ofd, KVM_CREATE_GUEST_MEMFD, [P, 0]), -E.EIO);
    k.shutdown();
  });
});

describe('KVM_CREATE_GUEST_MEMFD', () => {
  it('checks flags, then size, and is ENOTTY on a kernel without guest_memfd', () => {
    const k = kernel();
    const t = k.spawn();
    const snp = createVm(k, t, KVM_X86_SNP_VM);
    const def = createVm(k, t, KVM_X86_DEFAULT_VM);
    const mk = (vm: number, size: number, flags: number) => sys(k, t, NR.ioctl, vm, KVM_CREATE_GUEST_MEMFD, [size, flags]);
    assert.equal(sys(k, t, NR.ioctl, snp, KVM_CREATE_GUEST_MEMFD, 0), -E.EFAULT);
    // INIT_SHARED only where the VM has no private memory
    assert.equal(mk(snp, P, GUEST_MEMFD_FLAG_INIT_SHARED), -E.EINVAL);
    assert.ok(mk(def, P, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED) >= 0);
    assert.ok(mk(snp, P, GUEST_MEMFD_FLAG_MMAP) >= 0);
    assert.equal(mk(snp, P, 4), -E.EINVAL);
    assert.equal(mk(snp, P, 2 ** 40), -E.EINVAL);
    // flags before size: both wrong is EINVAL from flags, and size alone too
    assert.equal(mk(snp, 0, 4), -E.EINVAL);
    assert.equal(mk(snp, 0, 0), -E.EINVAL);
    assert.equal(mk(snp, P + 1, 0), -E.EINVAL);
    assert.equal(sys(k, t, NR.ioctl, snp, KVM_CREATE_GUEST_MEMFD, [2n ** 63n + 4096n as never, 0]), -E.EINVAL);
    k.shutdown();
    const old = kernel('sev', NO_FEATURES);
    const t2 = old.spawn();
    assert.equal(sys(old, t2, NR.ioctl, createVm(old, t2, KVM_X86_SNP_VM), KVM_CREATE_GUEST_MEMFD, [P, 0]), -E.ENOTTY);
    old.shutdown();
  });

  it('cannot be mapped without MMAP (ENODEV), nor privately (EINVAL), nor resized, nor touched where private (SIGBUS)', () => {
    const k = kernel();
    const t = k.spawn();
    const snp = createVm(k, t, KVM_X86_SNP_VM);
    const plain = sys(k, t, NR.ioctl, snp, KVM_CREATE_GUEST_MEMFD, [4 * P, 0]);
    const mmapable = sys(k, t, NR.ioctl, snp, KVM_CREATE_GUEST_MEMFD, [4 * P, GUEST_MEMFD_FLAG_MMAP]);
    assert.equal(sys(k, t, NR.mmap, 0, 4 * P, RW, MAP_SHARED, plain, 0), -E.ENODEV);
    assert.equal(sys(k, t, NR.mmap, 0, 4 * P, RW, MAP_PRIVATE, mmapable, 0), -E.EINVAL);
    assert.equal(sys(k, t, NR.ftruncate, plain, 8 * P), -E.EINVAL);
    const addr = sys(k, t, NR.mmap, 0, 4 * P, RW, MAP_SHARED, mmapable, 0);
    assert.ok(addr > 0);
    // private by default on an SNP VM (no INIT_SHARED): every touch is SIGBUS
    assert.equal(store(k, t, addr, 1), -E.EFAULT);
    k.shutdown();
  });

  it('a shared guest_memfd (DEFAULT VM, MMAP|INIT_SHARED) is zeroed memory the VMM can use, unevictable and unmovable', () => {
    const k = kernel('mktme');
    const t = k.spawn();
    const vm = createVm(k, t, KVM_X86_DEFAULT_VM);
    const g = sys(k, t, NR.ioctl, vm, KVM_CREATE_GUEST_MEMFD, [4 * P, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED]);
    const addr = sys(k, t, NR.mmap, 0, 4 * P, RW, MAP_SHARED, g, 0);
    assert.ok(allBytes(load(k, t, addr + P), 0));
    assert.equal(store(k, t, addr, 0x5a), 0);
    assert.ok(allBytes(load(k, t, addr), 0x5a));
    const pfn = ptePfn(k.pool.get(t.mm.pgd, addr));
    assert.ok(k.alloc.flags[pfn] & PG_INACCESSIBLE);
    const status = [0];
    assert.equal(sys(k, t, NR.move_pages, 0, [addr] as never, [1] as never, status as never), 0);
    assert.equal(status[0], -E.EINVAL); // kvm_gmem_migrate_folio
    assert.equal(t.mm.lru.includes(addr), false); // never on an LRU: never reclaimed
    k.shutdown();
  });

  it('fallocate: KEEP_SIZE required, page-aligned, allocate within the size; a punched hole reads as zeros again', () => {
    const k = kernel('mktme');
    const t = k.spawn();
    const vm = createVm(k, t, KVM_X86_DEFAULT_VM);
    const g = sys(k, t, NR.ioctl, vm, KVM_CREATE_GUEST_MEMFD, [4 * P, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED]);
    const fa = (mode: number, off: number, len: number) => sys(k, t, NR.fallocate, g, mode, off, len);
    assert.equal(fa(0, 0, P), -E.EOPNOTSUPP); // plain allocate: KEEP_SIZE missing
    assert.equal(fa(FALLOC_FL_PUNCH_HOLE, 0, P), -E.EOPNOTSUPP); // the VFS: punch needs KEEP_SIZE
    assert.equal(fa(FALLOC_FL_KEEP_SIZE | 0x10, 0, P), -E.EOPNOTSUPP); // ZERO_RANGE
    assert.equal(fa(FALLOC_FL_KEEP_SIZE, 1, P), -E.EINVAL);
    assert.equal(fa(FALLOC_FL_KEEP_SIZE, 0, 0), -E.EINVAL); // the VFS: len <= 0
    assert.equal(fa(FALLOC_FL_KEEP_SIZE, 2 * P, 4 * P), -E.EINVAL); // past i_size
    assert.equal(fa(FALLOC_FL_KEEP_SIZE, 0, 2 * P), 0);
    assert.equal(sys(k, t, NR.fallocate, 99, 3, 0, P), -E.EBADF);
    const addr = sys(k, t, NR.mmap, 0, 4 * P, RW, MAP_SHARED, g, 0);
    assert.equal(store(k, t, addr + P, 7), 0);
    const before = k.alloc.freeFrames();
    assert.equal(fa(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, P, P), 0);
    assert.equal(k.pool.get(t.mm.pgd, addr + P), 0, 'the VMM mapping of the hole is gone');
    assert.equal(k.alloc.freeFrames(), before + 1, 'the page went back to the allocator');
    assert.ok(allBytes(load(k, t, addr + P), 0));
    k.shutdown();
  });
});

describe('KVM_SET_USER_MEMORY_REGION2', () => {
  it('checks slot, flags, alignment, overlap (EEXIST) and the guest_memfd binding (EBADF, EINVAL)', () => {
    const k = kernel();
    const t = k.spawn();
    const vm = createVm(k, t, KVM_X86_SNP_VM);
    const vm2 = createVm(k, t, KVM_X86_SNP_VM);
    const ram = anon(k, t, 8);
    const g = sys(k, t, NR.ioctl, vm, KVM_CREATE_GUEST_MEMFD, [8 * P, 0]);
    const g2 = sys(k, t, NR.ioctl, vm2, KVM_CREATE_GUEST_MEMFD, [8 * P, 0]);
    const set = (r: number[]) => sys(k, t, NR.ioctl, vm, KVM_SET_USER_MEMORY_REGION2, r);
    assert.equal(sys(k, t, NR.ioctl, vm, KVM_SET_USER_MEMORY_REGION2, 5), -E.EFAULT);
    assert.equal(set(region(KVM_USER_MEM_SLOTS, 0, 0, 4 * P, ram)), -E.EINVAL);
    assert.equal(set(region(0, 8, 0, 4 * P, ram)), -E.EINVAL);
    assert.equal(set(region(0, KVM_MEM_GUEST_MEMFD | KVM_MEM_READONLY, 0, 4 * P, ram, 0, g)), -E.EINVAL);
    assert.equal(set(region(0, 0, 0, 4 * P + 1, ram)), -E.EINVAL);
    assert.equal(set(region(0, 0, 1, 4 * P, ram)), -E.EINVAL);
    assert.equal(set(region(0, 0, 0, 4 * P, ram + 1)), -E.EINVAL);
    assert.equal(set(region(0, 0, 0, 0, ram)), -E.EINVAL, 'deleting a slot that does not exist');
    assert.equal(set(region(0, KVM_MEM_GUEST_MEMFD, 0, 4 * P, ram, 0, g)), 0);
    assert.equal(set(region(1, 0, 2 * P, 4 * P, ram)), -E.EEXIST);
    assert.equal(set(region(1, KVM_MEM_GUEST_MEMFD, 4 * P, 4 * P, ram, 0, 77)), -E.EBADF);
    assert.equal(set(region(1, KVM_MEM_GUEST_MEMFD, 4 * P, 4 * P, ram, 0, ram > 0 ? vm2 : 0)), -E.EINVAL, 'not a guest_memfd');
    assert.equal(set(region(1, KVM_MEM_GUEST_MEMFD, 4 * P, 4 * P, ram, 0, g2)), -E.EINVAL, "another VM's guest_memfd");
    assert.equal(set(region(1, KVM_MEM_GUEST_MEMFD, 4 * P, 4 * P, ram, 2 * P, g)), -E.EINVAL, 'overlapping binding');
    assert.equal(set(region(1, KVM_MEM_GUEST_MEMFD, 4 * P, 8 * P, ram, 4 * P, g)), -E.EINVAL, 'past the end of the file');
    assert.equal(set(region(1, KVM_MEM_GUEST_MEMFD, 4 * P, 4 * P, ram, 4 * P, g)), 0);
    // guest_memfd slots cannot be changed, only deleted
    assert.equal(set(region(1, KVM_MEM_GUEST_MEMFD, 4 * P, 4 * P, ram, 4 * P, g)), -E.EINVAL);
    assert.equal(set(region(1, 0, 4 * P, 0, ram)), 0);
    k.shutdown();
  });
});

describe('KVM_SET_MEMORY_ATTRIBUTES', () => {
  it('PRIVATE only on VMs with private memory; flags, size, wrap and alignment are EINVAL', () => {
    const k = kernel();
    const t = k.spawn();
    const def = createVm(k, t, KVM_X86_DEFAULT_VM);
    const snp = createVm(k, t, KVM_X86_SNP_VM);
    const attr = (vm: number, a: number[]) => sys(k, t, NR.ioctl, vm, KVM_SET_MEMORY_ATTRIBUTES, a);
    assert.equal(attr(def, [0, P, KVM_MEMORY_ATTRIBUTE_PRIVATE, 0]), -E.EINVAL);
    assert.equal(attr(def, [0, P, 0, 0]), 0, 'attributes 0 are a no-op anywhere');
    assert.equal(attr(snp, [0, P, KVM_MEMORY_ATTRIBUTE_PRIVATE, 1]), -E.EINVAL);
    assert.equal(attr(snp, [0, 0, KVM_MEMORY_ATTRIBUTE_PRIVATE, 0]), -E.EINVAL);
    assert.equal(attr(snp, [P, P + 1, KVM_MEMORY_ATTRIBUTE_PRIVATE, 0]), -E.EINVAL);
    assert.equal(attr(snp, [1, P, KVM_MEMORY_ATTRIBUTE_PRIVATE, 0]), -E.EINVAL);
    assert.equal(attr(snp, [0, 4 * P, KVM_MEMORY_ATTRIBUTE_PRIVATE, 0]), 0);
    assert.equal(attr(snp, [0, 4 * P, KVM_MEMORY_ATTRIBUTE_PRIVATE, 0]), 0);
    assert.equal(attr(snp, [P, P, 0, 0]), 0);
    assert.equal(k.counters.get('conversions'), 0, 'pages the guest never mapped: bookkeeping, no conversion');
    k.shutdown();
    const mk = kernel('mktme');
    const t2 = mk.spawn();
    assert.equal(sys(mk, t2, NR.ioctl, createVm(mk, t2, 0), KVM_SET_MEMORY_ATTRIBUTES, [0, P, 0, 0]), -E.ENOTTY);
    mk.shutdown();
  });
});

/** An SNP guest as QEMU sets it up: private RAM from guest_memfd, shared RAM from anonymous memory. */
function snpGuest(k: Kernel, t: Task, pages: number) {
  const vmfd = createVm(k, t, KVM_X86_SNP_VM);
  assert.equal(sys(k, t, NR.ioctl, vmfd, KVM_MEMORY_ENCRYPT_OP, [KVM_SEV_INIT2]), 0);
  const shared = anon(k, t, pages);
  const g = sys(k, t, NR.ioctl, vmfd, KVM_CREATE_GUEST_MEMFD, [pages * P, 0]);
  assert.equal(sys(k, t, NR.ioctl, vmfd, KVM_SET_USER_MEMORY_REGION2, region(0, KVM_MEM_GUEST_MEMFD, 0, pages * P, shared, 0, g)), 0);
  assert.equal(sys(k, t, NR.ioctl, vmfd, KVM_SET_MEMORY_ATTRIBUTES, [0, pages * P, KVM_MEMORY_ATTRIBUTE_PRIVATE, 0]), 0);
  return { vmfd, vm: vmOfFd(t, vmfd)!, shared, g };
}

describe("the guest's memory", () => {
  it('SNP: private pages come zeroed from guest_memfd, under the VM key; the host holds only ciphertext', () => {
    const k = kernel();
    const t = k.spawn();
    const { vm, shared } = snpGuest(k, t, 4);
    const guest = vm.guest;
    assert.ok(allBytes(load(k, guest, 0), 0), 'zeroed on first use');
    assert.equal(store(k, guest, 0, 0x42), 0);
    const pte = vm.guestPte(0);
    assert.equal(pteKeyid(pte), vm.key!.keyid);
    assert.ok(k.alloc.flags[ptePfn(pte)] & PG_INACCESSIBLE);
    const raw = k.machine.memory.buf.u8.subarray(ptePfn(pte) * P, ptePfn(pte) * P + P);
    assert.equal(raw.every((b) => b === 0x42), false, 'the frame holds ciphertext');
    // the VMM's mapping of the same guest page is the shared backend: another page
    assert.equal(store(k, t, shared, 0x11), 0);
    assert.ok(allBytes(load(k, guest, 0), 0x42));
    k.shutdown();
  });

  it('SNP: converting to shared maps the VMM page; back to private maps guest_memfd again', () => {
    const k = kernel();
    const t = k.spawn();
    const { vmfd, vm, shared } = snpGuest(k, t, 4);
    const guest = vm.guest;
    assert.equal(store(k, guest, P, 0x42), 0);
    assert.equal(sys(k, t, NR.ioctl, vmfd, KVM_SET_MEMORY_ATTRIBUTES, [P, P, 0, 0]), 0);
    assert.equal(vm.guestPte(P), 0, 'the private mapping was zapped');
    assert.equal(k.counters.get('conversions'), 1, 'a page in use changed kind');
    assert.equal(store(k, t, shared + P, 0x33), 0);
    assert.ok(allBytes(load(k, guest, P), 0x33), 'the guest sees what the VMM wrote');
    assert.equal(pteKeyid(vm.guestPte(P)), 0);
    assert.equal(sys(k, t, NR.ioctl, vmfd, KVM_SET_MEMORY_ATTRIBUTES, [P, P, KVM_MEMORY_ATTRIBUTE_PRIVATE, 0]), 0);
    assert.ok(allBytes(load(k, guest, P), 0x42), 'guest_memfd kept the private page');
    k.shutdown();
  });

  it('a private page without a key, or in a slot without guest_memfd, stops the guest (EFAULT)', () => {
    const k = kernel();
    const t = k.spawn();
    const vmfd = createVm(k, t, KVM_X86_SNP_VM);
    const ram = anon(k, t, 2);
    assert.equal(sys(k, t, NR.ioctl, vmfd, KVM_SET_USER_MEMORY_REGION2, region(0, 0, 0, 2 * P, ram)), 0);
    assert.equal(sys(k, t, NR.ioctl, vmfd, KVM_SET_MEMORY_ATTRIBUTES, [0, 2 * P, KVM_MEMORY_ATTRIBUTE_PRIVATE, 0]), 0);
    const vm = vmOfFd(t, vmfd)!;
    assert.equal(store(k, vm.guest, 0, 1), -E.EFAULT); // no key yet
    assert.equal(sys(k, t, NR.ioctl, vmfd, KVM_MEMORY_ENCRYPT_OP, [KVM_SEV_INIT2]), 0);
    assert.equal(store(k, vm.guest, 0, 1), -E.EFAULT); // KVM_EXIT_MEMORY_FAULT
    assert.equal(store(k, vm.guest, 4 * P, 1), -E.EFAULT); // no memslot
    k.shutdown();
  });

  it('memfd_secret cannot back a guest: KVM cannot get its pages (EFAULT), and the failure is counted', () => {
    const k = kernel('mktme');
    const t = k.spawn();
    const vmfd = createVm(k, t, KVM_X86_DEFAULT_VM);
    const fd = sys(k, t, NR.memfd_secret, 0);
    assert.equal(sys(k, t, NR.ftruncate, fd, 2 * P), 0);
    const ram = sys(k, t, NR.mmap, 0, 2 * P, RW, MAP_SHARED, fd, 0);
    assert.equal(store(k, t, ram, 9), 0, 'the VMM itself can use it');
    assert.equal(sys(k, t, NR.ioctl, vmfd, KVM_SET_USER_MEMORY_REGION2, region(0, 0, 0, 2 * P, ram)), 0);
    const vm = vmOfFd(t, vmfd)!;
    assert.equal(store(k, vm.guest, 0, 1), -E.EFAULT);
    assert.equal(k.counters.get('gup_failures'), 1);
    k.shutdown();
  });

  it('a plain guest shares its pages with the VMM, and loses them when the VMM unmaps them (mmu notifier)', () => {
    const k = kernel('mktme');
    const t = k.spawn();
    const vmfd = createVm(k, t, KVM_X86_DEFAULT_VM);
    const ram = anon(k, t, 2);
    assert.equal(sys(k, t, NR.ioctl, vmfd, KVM_SET_USER_MEMORY_REGION2, region(0, 0, 0, 2 * P, ram)), 0);
    const vm = vmOfFd(t, vmfd)!;
    assert.equal(store(k, vm.guest, P, 0x24), 0);
    assert.ok(allBytes(load(k, t, ram + P), 0x24));
    assert.equal(ptePfn(vm.guestPte(P)), ptePfn(k.pool.get(t.mm.pgd, ram + P)));
    assert.equal(sys(k, t, NR.munmap, ram, 2 * P), 0);
    assert.equal(vm.guestPte(P), 0, 'zapped with the VMM mapping');
    assert.equal(store(k, vm.guest, P, 1), -E.EFAULT);
    k.shutdown();
  });
});

describe('SEV', () => {
  it("the guest's private memory is the VMM's pages under the ASID key: the VMM reads ciphertext until the guest shares", () => {
    const k = kernel();
    const t = k.spawn();
    const vmfd = createVm(k, t, KVM_X86_SEV_VM);
    assert.equal(sys(k, t, NR.ioctl, vmfd, KVM_MEMORY_ENCRYPT_OP, [KVM_SEV_INIT2]), 0);
    const ram = anon(k, t, 2);
    assert.equal(sys(k, t, NR.ioctl, vmfd, KVM_SET_USER_MEMORY_REGION2, region(0, 0, 0, 2 * P, ram)), 0);
    const vm = vmOfFd(t, vmfd)!;
    assert.equal(store(k, vm.guest, 0, 0x61), 0);
    assert.equal(allBytes(load(k, t, ram), 0x61), false, 'the VMM sees ciphertext');
    sevGuestSetShared(vm, P, 1, true);
    assert.equal(store(k, vm.guest, P, 0x62), 0);
    assert.ok(allBytes(load(k, t, ram + P), 0x62), 'a shared page is plaintext to both');
    k.shutdown();
  });

  it('REG_REGION: ENOTTY before the VM has its ASID, RLIMIT_MEMLOCK unless CAP_IPC_LOCK, and any GUP failure is ENOMEM', () => {
    const k = kernel();
    const t = k.spawn({ caps: [], rlimits: { memlock: 4 * P } });
    const vmfd = createVm(k, t, KVM_X86_SEV_VM);
    const ram = anon(k, t, 8);
    const reg = (addr: number, size: number) => sys(k, t, NR.ioctl, vmfd, KVM_MEMORY_ENCRYPT_REG_REGION, [addr, size]);
    assert.equal(reg(ram, 4 * P), -E.ENOTTY);
    assert.equal(sys(k, t, NR.ioctl, vmfd, KVM_MEMORY_ENCRYPT_OP, [KVM_SEV_INIT2]), 0);
    assert.equal(reg(ram, 0), -E.EINVAL);
    assert.equal(reg(ram, 5 * P), -E.ENOMEM, 'over RLIMIT_MEMLOCK');
    assert.equal(reg(ram + 1, 3 * P - 1), 0, 'an unaligned start pins the pages it touches');
    assert.equal(k.counters.get('pinned_pages'), 3);
    const pfn = ptePfn(k.pool.get(t.mm.pgd, ram));
    assert.ok(k.alloc.flags[pfn] & PG_UNEVICTABLE && k.alloc.flags[pfn] & PG_UNMOVABLE);
    const st = [0];
    assert.equal(sys(k, t, NR.move_pages, 0, [ram] as never, [1] as never, st as never), 0);
    assert.equal(st[0], -E.EBUSY, 'a long-term pinned page cannot move (and reclaim skips it: unevictable)');
    assert.equal(reg(ram + 3 * P, 2 * P), -E.ENOMEM, 'the limit is per VM: 3 + 2 > 4');
    assert.equal(sys(k, t, NR.ioctl, vmfd, KVM_MEMORY_ENCRYPT_UNREG_REGION, [ram, 3 * P]), -E.EINVAL, 'not the registered range');
    assert.equal(sys(k, t, NR.ioctl, vmfd, KVM_MEMORY_ENCRYPT_UNREG_REGION, [ram + 1, 3 * P - 1]), 0);
    assert.equal(k.alloc.flags[pfn] & (PG_UNEVICTABLE | PG_UNMOVABLE), 0);
    // a secretmem range cannot be pinned: GUP's EFAULT becomes ENOMEM
    const fd = sys(k, t, NR.memfd_secret, 0);
    assert.equal(sys(k, t, NR.ftruncate, fd, P), 0);
    const sec = sys(k, t, NR.mmap, 0, P, RW, MAP_SHARED, fd, 0);
    assert.equal(reg(sec, P), -E.ENOMEM);
    assert.equal(k.counters.get('gup_failures'), 1);
    k.shutdown();
    const k2 = kernel();
    const t2 = k2.spawn({ caps: [CAP_IPC_LOCK], rlimits: { memlock: 0 } });
    const v2 = createVm(k2, t2, KVM_X86_SEV_VM);
    assert.equal(sys(k2, t2, NR.ioctl, v2, KVM_MEMORY_ENCRYPT_OP, [KVM_SEV_INIT2]), 0);
    assert.equal(sys(k2, t2, NR.ioctl, v2, KVM_MEMORY_ENCRYPT_REG_REGION, [anon(k2, t2, 4), 4 * P]), 0, 'CAP_IPC_LOCK bypasses the limit');
    k2.shutdown();
  });
});

describe("the VMs' keys", () => {
  it('SEV runs out of ASIDs with EBUSY, TDX of HKIDs with ENOSPC, at the profile count; a closed VM gives its key back', () => {
    for (const [profile, type, init, errno] of [
      ['sev', KVM_X86_SEV_VM, KVM_SEV_INIT2, E.EBUSY],
      ['tdx', KVM_X86_TDX_VM, KVM_TDX_INIT_VM, E.ENOSPC],
    ] as const) {
      const k = kernel(profile);
      const t = k.spawn();
      const n = k.machine.profile.nrKeyids;
      const vms: number[] = [];
      for (let i = 0; i < n; i++) {
        const vm = createVm(k, t, type);
        assert.equal(sys(k, t, NR.ioctl, vm, KVM_MEMORY_ENCRYPT_OP, [init]), 0, `${profile} VM ${i}`);
        vms.push(vm);
      }
      const last = createVm(k, t, type);
      assert.equal(sys(k, t, NR.ioctl, last, KVM_MEMORY_ENCRYPT_OP, [init]), -errno);
      assert.equal(sys(k, t, NR.ioctl, last, KVM_MEMORY_ENCRYPT_OP, [init + 1]), -E.EINVAL);
      assert.equal(sys(k, t, NR.close, vms[7]), 0);
      assert.equal(sys(k, t, NR.ioctl, last, KVM_MEMORY_ENCRYPT_OP, [init]), 0);
      assert.equal(sys(k, t, NR.ioctl, last, KVM_MEMORY_ENCRYPT_OP, [init]), -E.EINVAL, 'once per VM');
      k.shutdown();
    }
    const mk = kernel('mktme');
    const t = mk.spawn();
    assert.equal(sys(mk, t, NR.ioctl, createVm(mk, t, 0), KVM_MEMORY_ENCRYPT_OP, [KVM_SEV_INIT2]), -E.ENOTTY);
    mk.shutdown();
  });
});
