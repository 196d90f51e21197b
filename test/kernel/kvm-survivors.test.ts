// KVM behaviour the mutation run of kernel/kvm.ts found untested
// (test/mutation-review/kernel-kvm.md): the u64 struct fields, the VM's life
// (a guest_memfd holds it), exactly which guest pages a zap takes (a memslot
// deleted, a page converted, a hole punched, a guest_memfd closed, the VMM
// unmapping), GUP's rules and counts, the memslot and binding checks,
// fallocate's range and charge, REG/UNREG_REGION's arguments, the counters a
// guest fault keeps, and the SEV guest's own sharing.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { E } from '../../kernel/errno.js';
import type { Kernel, Task } from '../../kernel/kernel.js';
import {
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  GUEST_MEMFD_FLAG_INIT_SHARED,
  GUEST_MEMFD_FLAG_MMAP,
  KVM_CREATE_GUEST_MEMFD,
  KVM_CREATE_VM,
  KVM_MEM_GUEST_MEMFD,
  KVM_MEMORY_ATTRIBUTE_PRIVATE,
  KVM_MEMORY_ENCRYPT_OP,
  KVM_MEMORY_ENCRYPT_REG_REGION,
  KVM_MEMORY_ENCRYPT_UNREG_REGION,
  KVM_SEV_INIT2,
  KVM_SET_MEMORY_ATTRIBUTES,
  KVM_SET_USER_MEMORY_REGION2,
  KVM_TDX_INIT_VM,
  KVM_X86_DEFAULT_VM,
  KVM_X86_SEV_ES_VM,
  KVM_X86_SEV_VM,
  KVM_X86_SNP_VM,
  KVM_X86_SW_PROTECTED_VM,
  KVM_X86_TDX_VM,
  hasPrivateMem,
  kvmIoExit,
  sevGuestSetShared,
  vmOfFd,
} from '../../kernel/kvm.js';
import { PTE_WRITE } from '../../kernel/pgtable.js';
import { AT_FDCWD, NR } from '../../kernel/syscalls.js';
import { MADV_GUARD_INSTALL, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE, TASK_SIZE } from '../../kernel/uapi.js';
import { P, anon, createVm, region, sys, kvmKernel as kernel } from './kvm-util.js';

const RW = PROT_READ | PROT_WRITE;
const PRIV = KVM_MEMORY_ATTRIBUTE_PRIVATE;
const KEEP = FALLOC_FL_KEEP_SIZE;
const PUNCH = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE;

/** Store one page of `byte` at va (0 or -errno). */
const store = (k: Kernel, t: Task, va: number, byte: number) => k.localCpu(t).store(va, new Uint8Array(P).fill(byte), 0, P);
/** The first byte of the page at va, or -errno. */
function peek(k: Kernel, t: Task, va: number): number {
  const out = new Uint8Array(P);
  const r = k.localCpu(t).load(va, out, 0, P);
  return r < 0 ? r : out[0];
}
/** Every byte of the page at va is `byte`. */
function allIs(k: Kernel, t: Task, va: number, byte: number): boolean {
  const out = new Uint8Array(P);
  return k.localCpu(t).load(va, out, 0, P) === 0 && out.every((b) => b === byte);
}
const count = (k: Kernel, c: string) => k.counters.get(c as never);
const ioctl = (k: Kernel, t: Task, fd: number, cmd: number, arg: unknown) => sys(k, t, NR.ioctl, fd, cmd, arg as never);
const setRegion = (k: Kernel, t: Task, vmfd: number, r: number[]) => ioctl(k, t, vmfd, KVM_SET_USER_MEMORY_REGION2, r);
const setAttr = (k: Kernel, t: Task, vmfd: number, gpa: number, size: number, attrs: number) => ioctl(k, t, vmfd, KVM_SET_MEMORY_ATTRIBUTES, [gpa, size, attrs, 0]);
const gmemFd = (k: Kernel, t: Task, vmfd: number, size: number, flags = 0) => ioctl(k, t, vmfd, KVM_CREATE_GUEST_MEMFD, [size, flags]);

/** An SEV-family VM (SNP unless `type` says SEV or SEV-ES) with its ASID. */
function sevVm(k: Kernel, t: Task, type = KVM_X86_SNP_VM): number {
  const vmfd = createVm(k, t, type);
  assert.equal(ioctl(k, t, vmfd, KVM_MEMORY_ENCRYPT_OP, [KVM_SEV_INIT2]), 0);
  return vmfd;
}

/** A guest_memfd slot `id` of `pages` pages at gpa, bound at page `pgoff` of a new guest_memfd of `filePages`, shared side from new anonymous memory. */
function gmemSlot(k: Kernel, t: Task, vmfd: number, id: number, gpa: number, pages: number, filePages = pages, pgoff = 0) {
  const g = gmemFd(k, t, vmfd, filePages * P);
  assert.ok(g >= 0, `guest_memfd: ${g}`);
  const shared = anon(k, t, pages);
  assert.equal(setRegion(k, t, vmfd, region(id, KVM_MEM_GUEST_MEMFD, gpa, pages * P, shared, pgoff * P, g)), 0);
  return { g, shared };
}

describe('KVM: /dev/kvm and the VM types', () => {
  it('open("/dev/kvm") finds the KVM device, and KVM_CREATE_VM on it makes a VM', () => {
    const k = kernel('mktme');
    const t = k.spawn();
    const kvm = sys(k, t, NR.openat, AT_FDCWD, '/dev/kvm' as never, 2);
    assert.ok(kvm >= 0, `open: ${kvm}`);
    assert.ok(sys(k, t, NR.ioctl, kvm, KVM_CREATE_VM, KVM_X86_DEFAULT_VM) >= 0);
    k.shutdown();
  });

  it('a SW_PROTECTED VM would have private memory (kvm_arch_has_private_mem), though this kernel makes none', () => {
    // a direct call: CONFIG_KVM_SW_PROTECTED_VM is off, so no such VM exists to ask through an ioctl
    assert.equal(hasPrivateMem(KVM_X86_SW_PROTECTED_VM), true);
    assert.equal(hasPrivateMem(KVM_X86_SEV_VM), false);
    const k = kernel('sev');
    assert.equal(createVm(k, k.spawn(), KVM_X86_SW_PROTECTED_VM), -E.EINVAL);
    k.shutdown();
  });
});

describe('KVM: struct fields are u64s', () => {
  it('guest_memfd flags with bits above 31 (2^32, a negative number or bigint) or a fraction are EINVAL; a bigint 0 is no flags', () => {
    const k = kernel('mktme');
    const t = k.spawn();
    const vm = createVm(k, t, KVM_X86_DEFAULT_VM);
    const mk = (flags: unknown) => ioctl(k, t, vm, KVM_CREATE_GUEST_MEMFD, [P, flags]);
    // each of these has low 32 bits that are valid flags (0 or MMAP)
    assert.equal(mk(2 ** 32), -E.EINVAL);
    assert.equal(mk(-(2 ** 32)), -E.EINVAL);
    assert.equal(mk(-(2n ** 32n)), -E.EINVAL);
    assert.equal(mk(1.5), -E.EINVAL);
    assert.ok(mk(0n) >= 0, 'a bigint 0');
    k.shutdown();
  });
});

describe("KVM: the VM's life", () => {
  it('KVM_SET_USER_MEMORY_REGION2 adds and deletes memslots: a new VM has none, and no guest mapping', () => {
    const k = kernel('mktme');
    const t = k.spawn();
    const vmfd = createVm(k, t, KVM_X86_DEFAULT_VM);
    const vm = vmOfFd(t, vmfd)!;
    assert.equal(vm.slots.length, 0);
    assert.equal(vm.guestPte(0), 0, 'the guest never ran: no address space yet');
    const ram = anon(k, t, 4);
    assert.equal(setRegion(k, t, vmfd, region(3, 0, 8 * P, 4 * P, ram)), 0);
    assert.deepEqual(
      vm.slots.map((s) => [s.id, s.gpa, s.pages, s.uaddr]),
      [[3, 8 * P, 4, ram]],
    );
    assert.equal(setRegion(k, t, vmfd, region(3, 0, 8 * P, 0, ram)), 0);
    assert.equal(vm.slots.length, 0);
    k.shutdown();
  });

  it("the guest's address space is made on the VMM's NUMA node", () => {
    const k = kernel('mktme');
    const t = k.spawn({ node: 1 });
    const vm = vmOfFd(t, createVm(k, t, KVM_X86_DEFAULT_VM))!;
    assert.equal(vm.guest.mm.node, 1);
    k.shutdown();
  });

  it('an open guest_memfd keeps its VM (key, guest memory) after the VM fd is closed; the last close destroys it, ends its address space and frees the key', () => {
    const k = kernel('sev');
    const t = k.spawn();
    const vmfd = sevVm(k, t);
    const vm = vmOfFd(t, vmfd)!;
    const { g } = gmemSlot(k, t, vmfd, 0, 0, 4);
    assert.equal(setAttr(k, t, vmfd, 0, 4 * P, PRIV), 0);
    const tables = k.pool.used;
    const guest = vm.guest;
    assert.equal(store(k, guest, 0, 0x42), 0);
    const keyid = vm.key!.keyid;
    assert.equal(sys(k, t, NR.close, vmfd), 0);
    assert.equal(vm.destroyed, false);
    assert.notEqual(k.keys.keyOf(keyid), null, 'the ASID is still the VM’s');
    assert.ok(allIs(k, guest, 0, 0x42), 'the guest still has its memory');
    assert.equal(sys(k, t, NR.close, g), 0);
    assert.equal(vm.destroyed, true);
    assert.equal(k.keys.keyOf(keyid), null, 'the ASID is free again');
    assert.equal(guest.exited, true, "the guest's address space is gone");
    assert.equal(k.pool.used, tables, 'with its page tables');
    k.shutdown();
  });

  it('closing a guest_memfd leaves its VM usable', () => {
    const k = kernel('mktme');
    const t = k.spawn();
    const vmfd = createVm(k, t, KVM_X86_DEFAULT_VM);
    const g = gmemFd(k, t, vmfd, 4 * P, GUEST_MEMFD_FLAG_MMAP);
    assert.ok(g >= 0);
    assert.equal(sys(k, t, NR.close, g), 0);
    assert.equal(setRegion(k, t, vmfd, region(0, 0, 0, 4 * P, anon(k, t, 4))), 0);
    assert.ok(gmemFd(k, t, vmfd, 4 * P) >= 0);
    k.shutdown();
  });
});

describe("KVM: the guest's faults", () => {
  it("a guest access below a memslot is no memslot's (EFAULT), even where the VMM has memory just before the slot's", () => {
    const k = kernel('mktme');
    const t = k.spawn();
    const vmfd = createVm(k, t, KVM_X86_DEFAULT_VM);
    const ram = anon(k, t, 8);
    assert.equal(store(k, t, ram, 0x11), 0);
    assert.equal(setRegion(k, t, vmfd, region(0, 0, 4 * P, 4 * P, ram + 4 * P)), 0);
    const vm = vmOfFd(t, vmfd)!;
    assert.equal(peek(k, vm.guest, 0), -E.EFAULT);
    assert.equal(peek(k, vm.guest, 3 * P), -E.EFAULT);
    assert.equal(count(k, 'gup_failures'), 0, 'not even tried');
    assert.equal(peek(k, vm.guest, 4 * P), 0);
    k.shutdown();
  });

  it('SEV-ES: the guest’s memory is the VMM’s pages under the ASID key, so the VMM reads ciphertext', () => {
    const k = kernel('sev');
    const t = k.spawn();
    const vmfd = sevVm(k, t, KVM_X86_SEV_ES_VM);
    const ram = anon(k, t, 2);
    assert.equal(setRegion(k, t, vmfd, region(0, 0, 0, 2 * P, ram)), 0);
    const vm = vmOfFd(t, vmfd)!;
    assert.equal(store(k, vm.guest, 0, 0x61), 0);
    assert.ok(allIs(k, vm.guest, 0, 0x61));
    assert.equal(allIs(k, t, ram, 0x61), false);
    k.shutdown();
  });

  it('every guest fault counts in stage2_faults; a guest_memfd page counts as a page fault when first used, not when mapped again', () => {
    const k = kernel('sev');
    const t = k.spawn();
    const vmfd = sevVm(k, t);
    gmemSlot(k, t, vmfd, 0, 0, 4);
    assert.equal(setAttr(k, t, vmfd, 0, 4 * P, PRIV), 0);
    const guest = vmOfFd(t, vmfd)!.guest;
    const s2 = count(k, 'stage2_faults'), f = count(k, 'faults');
    assert.equal(store(k, guest, 0, 1), 0);
    assert.deepEqual([count(k, 'stage2_faults'), count(k, 'faults')], [s2 + 1, f + 1]);
    // shared then private again: the mapping goes, the guest_memfd page stays
    assert.equal(setAttr(k, t, vmfd, 0, P, 0), 0);
    assert.equal(setAttr(k, t, vmfd, 0, P, PRIV), 0);
    assert.equal(peek(k, guest, 0), 1);
    assert.deepEqual([count(k, 'stage2_faults'), count(k, 'faults')], [s2 + 2, f + 1]);
    k.shutdown();
  });

  it('a private page before the VM has its key stops the guest (EFAULT): SNP from guest_memfd, SEV from the VMM’s page', () => {
    const k = kernel('sev');
    const t = k.spawn();
    const snp = createVm(k, t, KVM_X86_SNP_VM);
    gmemSlot(k, t, snp, 0, 0, 2);
    assert.equal(setAttr(k, t, snp, 0, 2 * P, PRIV), 0);
    assert.equal(peek(k, vmOfFd(t, snp)!.guest, 0), -E.EFAULT);
    const sev = createVm(k, t, KVM_X86_SEV_VM);
    assert.equal(setRegion(k, t, sev, region(0, 0, 0, 2 * P, anon(k, t, 2))), 0);
    assert.equal(peek(k, vmOfFd(t, sev)!.guest, 0), -E.EFAULT);
    k.shutdown();
  });

  it("a guest_memfd page the VMM's memory limit has no room for: the guest's fault is ENOMEM, and nothing is mapped", () => {
    const k = kernel('sev');
    const t = k.spawn({ memLimit: 2 });
    const vmfd = sevVm(k, t);
    gmemSlot(k, t, vmfd, 0, 0, 4);
    assert.equal(setAttr(k, t, vmfd, 0, 4 * P, PRIV), 0);
    const vm = vmOfFd(t, vmfd)!;
    assert.equal(store(k, vm.guest, 0, 1), 0);
    assert.equal(store(k, vm.guest, P, 2), 0);
    assert.equal(k.fault(vm.guest, 2 * P, true), -E.ENOMEM);
    assert.equal(vm.guestPte(2 * P), 0);
    k.shutdown();
  });

  it('out of page-table memory, a guest fault is ENOMEM', () => {
    // slot 0 of the pool is never used; the VMM's and the guest's top levels take 32 each,
    // the VMM's memory one middle and one leaf table, the guest's first page as many
    const k = kernel('mktme', { pgtableSlots: 1 + 32 + 32 + 4 });
    const t = k.spawn();
    const vmfd = createVm(k, t, KVM_X86_DEFAULT_VM);
    const vm = vmOfFd(t, vmfd)!;
    const ram = anon(k, t, 2);
    assert.equal(store(k, t, ram, 1), 0);
    assert.equal(store(k, t, ram + P, 2), 0);
    assert.equal(setRegion(k, t, vmfd, region(0, 0, 0, P, ram)), 0);
    assert.equal(setRegion(k, t, vmfd, region(1, 0, 1024 * P, P, ram + P)), 0); // another leaf table's 4 MiB
    assert.equal(peek(k, vm.guest, 0), 1);
    assert.equal(k.fault(vm.guest, 1024 * P, false), -E.ENOMEM);
    k.shutdown();
  });

  it('a guest page of VMM memory at address 0 is unmapped from the guest when the VMM unmaps it', () => {
    const k = kernel('mktme', { mmapMinAddr: 0 });
    const t = k.spawn();
    assert.equal(sys(k, t, NR.mmap, 0, P, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), 0);
    const vmfd = createVm(k, t, KVM_X86_DEFAULT_VM);
    const vm = vmOfFd(t, vmfd)!;
    assert.equal(setRegion(k, t, vmfd, region(0, 0, 0, P, 0)), 0);
    assert.equal(store(k, vm.guest, 0, 5), 0);
    assert.equal(peek(k, t, 0), 5);
    assert.equal(sys(k, t, NR.munmap, 0, P), 0);
    assert.equal(vm.guestPte(0), 0);
    assert.equal(peek(k, vm.guest, 0), -E.EFAULT);
    k.shutdown();
  });

  it('an exit to the VMM is counted', () => {
    const k = kernel('mktme');
    const before = count(k, 'vm_exits');
    kvmIoExit(k);
    assert.equal(count(k, 'vm_exits'), before + 1);
    k.shutdown();
  });
});

describe('KVM: GUP on the VMM’s memory', () => {
  it('a guest read of a write-only VMM mapping is refused (no VM_READ), though the VMM itself can read it', () => {
    const k = kernel('mktme');
    const t = k.spawn();
    const vmfd = createVm(k, t, KVM_X86_DEFAULT_VM);
    const ram = anon(k, t, 2, PROT_WRITE);
    assert.equal(setRegion(k, t, vmfd, region(0, 0, 0, 2 * P, ram)), 0);
    const vm = vmOfFd(t, vmfd)!;
    assert.equal(peek(k, vm.guest, 0), -E.EFAULT);
    assert.equal(count(k, 'gup_failures'), 1);
    assert.equal(store(k, vm.guest, P, 3), 0, 'writing is allowed');
    assert.equal(peek(k, t, ram + P), 3, 'x86 has no write-only pages for the CPU');
    k.shutdown();
  });

  it("GUP takes no page fault for a page the VMM has, except a guest write to a read-only one, which makes the VMM's page writable", () => {
    const k = kernel('mktme');
    const t = k.spawn();
    const vmfd = createVm(k, t, KVM_X86_DEFAULT_VM);
    const vm = vmOfFd(t, vmfd)!;
    const ram = anon(k, t, 4);
    assert.equal(setRegion(k, t, vmfd, region(0, 0, 0, 4 * P, ram)), 0);
    assert.equal(store(k, t, ram, 0x10), 0);
    assert.equal(store(k, t, ram + P, 0x11), 0);
    assert.equal(peek(k, t, ram + 2 * P), 0); // a read: mapped read-only (the zero page's place)
    assert.equal(peek(k, t, ram + 3 * P), 0);
    assert.equal(k.pool.get(t.mm.pgd, ram + 3 * P) & PTE_WRITE, 0);
    const f = count(k, 'faults');
    assert.equal(peek(k, vm.guest, 0), 0x10);
    assert.equal(store(k, vm.guest, P, 0x21), 0);
    assert.equal(peek(k, vm.guest, 2 * P), 0);
    assert.equal(count(k, 'faults'), f, 'present pages: no fault');
    assert.equal(store(k, vm.guest, 3 * P, 0x23), 0);
    assert.equal(count(k, 'faults'), f + 1, 'a write to a read-only page faults (FOLL_WRITE)');
    assert.notEqual(k.pool.get(t.mm.pgd, ram + 3 * P) & PTE_WRITE, 0);
    assert.equal(peek(k, t, ram + P), 0x21);
    assert.equal(peek(k, t, ram + 3 * P), 0x23);
    k.shutdown();
  });

  it('a guard page in the VMM’s memory stops the guest (EFAULT)', () => {
    const k = kernel('mktme');
    const t = k.spawn();
    const vmfd = createVm(k, t, KVM_X86_DEFAULT_VM);
    const ram = anon(k, t, 2);
    assert.equal(sys(k, t, NR.madvise, ram, P, MADV_GUARD_INSTALL), 0);
    assert.equal(setRegion(k, t, vmfd, region(0, 0, 0, 2 * P, ram)), 0);
    const vm = vmOfFd(t, vmfd)!;
    assert.equal(peek(k, vm.guest, 0), -E.EFAULT);
    assert.equal(vm.guestPte(0), 0);
    assert.equal(peek(k, vm.guest, P), 0);
    k.shutdown();
  });
});

describe('KVM: what a zap takes', () => {
  it('deleting a large memslot unmaps exactly its pages: its first page, not the page just past it, nor pages below it, nor guest_memfd pages around it', () => {
    const k = kernel('sev');
    const t = k.spawn();
    const vmfd = sevVm(k, t);
    const vm = vmOfFd(t, vmfd)!;
    gmemSlot(k, t, vmfd, 0, 0, 4);
    const big = anon(k, t, 128);
    assert.equal(setRegion(k, t, vmfd, region(1, 0, 1024 * P, 128 * P, big)), 0);
    gmemSlot(k, t, vmfd, 2, 1152 * P, 4); // right after slot 1
    assert.equal(setAttr(k, t, vmfd, 0, P, PRIV), 0);
    assert.equal(setAttr(k, t, vmfd, 1153 * P, P, PRIV), 0);
    const guest = vm.guest;
    for (const gpa of [0, P, 1024 * P, 1029 * P, 1152 * P, 1153 * P]) assert.equal(store(k, guest, gpa, 9), 0, `gpa ${gpa / P}`);
    assert.equal(vm.rmap.size, 4, 'the shared pages: gpa 1, 1024, 1029, 1152');
    assert.equal(setRegion(k, t, vmfd, region(1, 0, 1024 * P, 0, big)), 0);
    assert.equal(vm.guestPte(1024 * P), 0);
    assert.equal(vm.guestPte(1029 * P), 0);
    assert.equal(peek(k, guest, 1024 * P), -E.EFAULT);
    for (const gpa of [0, P, 1152 * P, 1153 * P]) assert.notEqual(vm.guestPte(gpa), 0, `gpa ${gpa / P} keeps its mapping`);
    k.shutdown();
  });

  it('converting one page unmaps that page only, and counts one conversion', () => {
    const k = kernel('sev');
    const t = k.spawn();
    const vmfd = sevVm(k, t);
    const vm = vmOfFd(t, vmfd)!;
    gmemSlot(k, t, vmfd, 0, 0, 4);
    assert.equal(setAttr(k, t, vmfd, 0, 4 * P, PRIV), 0);
    assert.equal(store(k, vm.guest, 0, 1), 0);
    assert.equal(store(k, vm.guest, P, 2), 0);
    assert.equal(setAttr(k, t, vmfd, 0, P, 0), 0);
    assert.equal(vm.guestPte(0), 0);
    assert.notEqual(vm.guestPte(P), 0);
    assert.equal(count(k, 'conversions'), 1);
    // far from anything the guest touched: no page table there, nothing to unmap
    assert.equal(setAttr(k, t, vmfd, 2 ** 30, 4 * P, PRIV), 0);
    assert.equal(count(k, 'conversions'), 1);
    k.shutdown();
  });

  it("a zap that finds nothing mapped does not flush the guest CPU's TLB", () => {
    const k = kernel('mktme');
    const t = k.spawn();
    const vmfd = createVm(k, t, KVM_X86_DEFAULT_VM);
    const vm = vmOfFd(t, vmfd)!;
    assert.equal(setRegion(k, t, vmfd, region(0, 0, 0, 4 * P, anon(k, t, 4))), 0);
    assert.equal(setRegion(k, t, vmfd, region(1, 0, 16 * P, 4 * P, anon(k, t, 4))), 0);
    const cpu = k.localCpu(vm.guest);
    const buf = new Uint8Array(8);
    assert.equal(cpu.load(0, buf, 0, 8), 0);
    assert.equal(cpu.load(0, buf, 0, 8), 0);
    const hits = cpu.tlbHits;
    assert.equal(setRegion(k, t, vmfd, region(1, 0, 16 * P, 0, 0)), 0); // the guest never used slot 1
    assert.equal(cpu.load(0, buf, 0, 8), 0);
    assert.equal(cpu.tlbHits, hits + 1, 'still in the TLB');
    k.shutdown();
  });

  it('the mmu notifier unmaps from the guest exactly the pages the VMM unmapped', () => {
    const k = kernel('mktme');
    const t = k.spawn();
    const vmfd = createVm(k, t, KVM_X86_DEFAULT_VM);
    const vm = vmOfFd(t, vmfd)!;
    const ram = anon(k, t, 4);
    assert.equal(setRegion(k, t, vmfd, region(0, 0, 0, 4 * P, ram)), 0);
    for (const p of [0, 1, 2]) assert.equal(store(k, vm.guest, p * P, p + 1), 0);
    assert.equal(sys(k, t, NR.munmap, ram + P, P), 0);
    assert.equal(vm.guestPte(P), 0);
    assert.notEqual(vm.guestPte(0), 0);
    assert.notEqual(vm.guestPte(2 * P), 0);
    assert.equal(peek(k, vm.guest, P), -E.EFAULT);
    k.shutdown();
  });

  it("punching a hole in a guest_memfd unmaps it from the guest, which reads zeros there; the guest's other pages, and another slot's, stay", () => {
    const k = kernel('sev');
    const t = k.spawn();
    const vmfd = sevVm(k, t);
    const vm = vmOfFd(t, vmfd)!;
    // slot 0: guest pages 16-23 are pages 4-11 of a 16-page guest_memfd
    const { g } = gmemSlot(k, t, vmfd, 0, 16 * P, 8, 16, 4);
    assert.equal(setAttr(k, t, vmfd, 16 * P, 8 * P, PRIV), 0);
    assert.equal(setRegion(k, t, vmfd, region(1, 0, 64 * P, 8 * P, anon(k, t, 8))), 0);
    const guest = vm.guest;
    for (let i = 0; i < 8; i++) assert.equal(store(k, guest, (16 + i) * P, 0x30 + i), 0);
    assert.equal(store(k, guest, 70 * P, 0x70), 0);
    assert.equal(sys(k, t, NR.fallocate, g, PUNCH, 6 * P, P), 0); // file page 6: guest page 18
    assert.equal(vm.guestPte(18 * P), 0);
    assert.ok(allIs(k, guest, 18 * P, 0), 'a fresh zeroed page');
    for (const i of [0, 1, 3, 7]) {
      assert.notEqual(vm.guestPte((16 + i) * P), 0, `guest page ${16 + i} stays mapped`);
      assert.ok(allIs(k, guest, (16 + i) * P, 0x30 + i));
    }
    assert.notEqual(vm.guestPte(70 * P), 0, "slot 1's page 6 stays mapped");
    k.shutdown();
  });

  it('closing a guest_memfd unbinds its own slot (a private access there is EFAULT); another guest_memfd’s slot and a plain slot keep their pages', () => {
    const k = kernel('sev');
    const t = k.spawn();
    const vmfd = sevVm(k, t);
    const vm = vmOfFd(t, vmfd)!;
    const one = gmemSlot(k, t, vmfd, 0, 0, 4);
    gmemSlot(k, t, vmfd, 1, 16 * P, 4);
    assert.equal(setRegion(k, t, vmfd, region(2, 0, 32 * P, 4 * P, anon(k, t, 4))), 0);
    assert.equal(setAttr(k, t, vmfd, 0, 32 * P, PRIV), 0);
    const guest = vm.guest;
    assert.equal(store(k, guest, 0, 0x11), 0);
    assert.equal(store(k, guest, 16 * P, 0x22), 0);
    assert.equal(store(k, guest, 32 * P, 0x33), 0);
    assert.equal(sys(k, t, NR.close, one.g), 0);
    assert.equal(vm.guestPte(0), 0);
    assert.equal(peek(k, guest, 0), -E.EFAULT);
    assert.notEqual(vm.guestPte(16 * P), 0);
    assert.ok(allIs(k, guest, 16 * P, 0x22));
    assert.notEqual(vm.guestPte(32 * P), 0);
    k.shutdown();
  });
});

describe('KVM: guest_memfd files', () => {
  it('a guest_memfd mapping shows in /proc/pid/maps as anon_inode:[kvm-gmem], with a device and an inode', () => {
    const k = kernel('mktme');
    const t = k.spawn();
    const vmfd = createVm(k, t, KVM_X86_DEFAULT_VM);
    const g = gmemFd(k, t, vmfd, 2 * P, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED);
    assert.ok(sys(k, t, NR.mmap, 0, 2 * P, RW, MAP_SHARED, g, 0) > 0);
    const lines = t.mm.vmas.maps().filter((l) => l.includes('kvm-gmem'));
    assert.equal(lines.length, 1);
    assert.match(lines[0], /^[0-9a-f]{8,}-[0-9a-f]{8,} rw-s 00000000 [0-9a-f]{2}:[0-9a-f]{2} [1-9]\d* +anon_inode:\[kvm-gmem\]$/);
    k.shutdown();
  });

  it('a mapping longer than the guest_memfd: a touch at or past its end is SIGBUS (EFAULT)', () => {
    const k = kernel('mktme');
    const t = k.spawn();
    const vmfd = createVm(k, t, KVM_X86_DEFAULT_VM);
    const g = gmemFd(k, t, vmfd, 4 * P, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED);
    const addr = sys(k, t, NR.mmap, 0, 8 * P, RW, MAP_SHARED, g, 0);
    assert.ok(addr > 0);
    assert.equal(store(k, t, addr + 3 * P, 1), 0);
    assert.equal(store(k, t, addr + 4 * P, 1), -E.EFAULT);
    assert.equal(peek(k, t, addr + 6 * P), -E.EFAULT);
    k.shutdown();
  });

  it('fallocate allocates every page of its range and none past it, up to the end of the file, and returns 0', () => {
    const k = kernel('mktme'); // fresh: the first frame handed out is frame 0
    const t = k.spawn();
    const vmfd = createVm(k, t, KVM_X86_DEFAULT_VM);
    const g = gmemFd(k, t, vmfd, 8 * P, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED);
    const free = k.alloc.freeFrames();
    assert.equal(sys(k, t, NR.fallocate, g, KEEP, 0, P), 0);
    assert.equal(k.alloc.freeFrames(), free - 1);
    assert.equal(sys(k, t, NR.fallocate, g, KEEP, P, 2 * P), 0);
    assert.equal(k.alloc.freeFrames(), free - 3);
    assert.equal(sys(k, t, NR.fallocate, g, KEEP, 0, 8 * P), 0, 'up to the end');
    assert.equal(k.alloc.freeFrames(), free - 8);
    k.shutdown();
  });

  it("fallocate beyond the VMM's memory limit is ENOMEM; a punched hole is uncharged, so its room can be allocated again", () => {
    const k = kernel('mktme');
    const t = k.spawn({ memLimit: 4 });
    const vmfd = createVm(k, t, KVM_X86_DEFAULT_VM);
    const g = gmemFd(k, t, vmfd, 8 * P, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED);
    assert.equal(sys(k, t, NR.fallocate, g, KEEP, 0, 8 * P), -E.ENOMEM);
    assert.equal(sys(k, t, NR.fallocate, g, PUNCH, 0, 8 * P), 0);
    assert.equal(sys(k, t, NR.fallocate, g, KEEP, 0, 4 * P), 0);
    assert.equal(sys(k, t, NR.fallocate, g, KEEP, 4 * P, P), -E.ENOMEM);
    assert.equal(sys(k, t, NR.fallocate, g, PUNCH, P, 2 * P), 0);
    assert.equal(sys(k, t, NR.fallocate, g, KEEP, 4 * P, 2 * P), 0);
    k.shutdown();
  });

  it("punching one page frees that page only and unmaps it from the VMM; the VMM's other pages, and another file's, stay mapped", () => {
    const k = kernel('mktme');
    const t = k.spawn();
    const vmfd = createVm(k, t, KVM_X86_DEFAULT_VM);
    const flags = GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED;
    const g = gmemFd(k, t, vmfd, 8 * P, flags);
    const h = gmemFd(k, t, vmfd, 8 * P, flags);
    const a = sys(k, t, NR.mmap, 0, 6 * P, RW, MAP_SHARED, g, 2 * P); // file pages 2-7
    const b = sys(k, t, NR.mmap, 0, 8 * P, RW, MAP_SHARED, h, 0);
    for (let i = 0; i < 6; i++) assert.equal(store(k, t, a + i * P, 0x20 + i), 0);
    assert.equal(store(k, t, b + 3 * P, 0x53), 0);
    const free = k.alloc.freeFrames();
    assert.equal(sys(k, t, NR.fallocate, g, PUNCH, 3 * P, P), 0); // file page 3: a + P
    assert.equal(k.alloc.freeFrames(), free + 1);
    assert.equal(k.pool.get(t.mm.pgd, a + P), 0);
    for (const i of [0, 2, 5]) assert.notEqual(k.pool.get(t.mm.pgd, a + i * P), 0, `file page ${i + 2} stays mapped`);
    assert.notEqual(k.pool.get(t.mm.pgd, b + 3 * P), 0, "the other file's page 3 stays mapped");
    assert.ok(allIs(k, t, a + P, 0));
    assert.ok(allIs(k, t, a + 2 * P, 0x22));
    assert.ok(allIs(k, t, b + 3 * P, 0x53));
    k.shutdown();
  });

  it('a guest_memfd made with MMAP backs its slot alone: the guest sees what the VMM wrote through it, at the bound offset', () => {
    const k = kernel('mktme');
    const t = k.spawn();
    const vmfd = createVm(k, t, KVM_X86_DEFAULT_VM);
    const g = gmemFd(k, t, vmfd, 8 * P, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED);
    const a = sys(k, t, NR.mmap, 0, 8 * P, RW, MAP_SHARED, g, 0);
    assert.equal(store(k, t, a + 2 * P, 0x77), 0);
    const other = anon(k, t, 4);
    assert.equal(store(k, t, other, 0x99), 0);
    assert.equal(setRegion(k, t, vmfd, region(0, KVM_MEM_GUEST_MEMFD, 0, 4 * P, other, 2 * P, g)), 0);
    const vm = vmOfFd(t, vmfd)!;
    assert.ok(allIs(k, vm.guest, 0, 0x77));
    k.shutdown();
  });
});

describe('KVM: memslot checks', () => {
  it('userspace_addr 0 is valid; a range past 2^47 is EINVAL; a slot just below another, even touching it, does not overlap', () => {
    const k = kernel('mktme');
    const t = k.spawn();
    const vmfd = createVm(k, t, KVM_X86_DEFAULT_VM);
    assert.equal(setRegion(k, t, vmfd, region(0, 0, 0, 4 * P, 0)), 0);
    assert.equal(setRegion(k, t, vmfd, region(1, 0, 64 * P, P, 2 ** 47)), -E.EINVAL);
    assert.equal(setRegion(k, t, vmfd, region(1, 0, 64 * P, 2 * P, 2 ** 47 - P)), -E.EINVAL);
    const ram = anon(k, t, 8);
    assert.equal(setRegion(k, t, vmfd, region(1, 0, 32 * P, 4 * P, ram)), 0);
    assert.equal(setRegion(k, t, vmfd, region(2, 0, 28 * P, 4 * P, ram + 4 * P)), 0);
    assert.equal(setRegion(k, t, vmfd, region(3, 0, 16 * P, 4 * P, ram)), 0);
    k.shutdown();
  });

  it('a memslot may end at TASK_SIZE, the top of user space, and not a page further (access_ok: USER_PTR_MAX is TASK_SIZE_MAX)', () => {
    const k = kernel('mktme');
    const t = k.spawn();
    const vmfd = createVm(k, t, KVM_X86_DEFAULT_VM);
    assert.equal(setRegion(k, t, vmfd, region(0, 0, 0, 2 * P, TASK_SIZE - 2 * P)), 0);
    assert.equal(setRegion(k, t, vmfd, region(1, 0, 64 * P, 2 * P, TASK_SIZE - P)), -E.EINVAL);
    assert.equal(setRegion(k, t, vmfd, region(1, 0, 64 * P, P, TASK_SIZE)), -E.EINVAL);
    k.shutdown();
  });

  it('guest_memfd bindings: a plain slot does not hold offset 0, and a range just below another binding is free', () => {
    const k = kernel('sev');
    const t = k.spawn();
    const vmfd = sevVm(k, t);
    const ram = anon(k, t, 4);
    assert.equal(setRegion(k, t, vmfd, region(0, 0, 0, 4 * P, ram)), 0);
    const g = gmemFd(k, t, vmfd, 16 * P);
    const bind = (id: number, gpa: number, off: number) => setRegion(k, t, vmfd, region(id, KVM_MEM_GUEST_MEMFD, gpa, 4 * P, ram, off, g));
    assert.equal(bind(1, 16 * P, 8 * P), 0);
    assert.equal(bind(2, 32 * P, 4 * P), 0, 'just below the first binding');
    assert.equal(bind(3, 48 * P, 0), 0, 'offset 0: slot 0 is no guest_memfd slot');
    assert.equal(bind(4, 64 * P, 10 * P), -E.EINVAL, 'inside the first binding');
    k.shutdown();
  });
});

describe('KVM_SET_MEMORY_ATTRIBUTES', () => {
  it('attributes beyond 32 bits, or not a u64, are EINVAL', () => {
    const k = kernel('sev');
    const t = k.spawn();
    const vmfd = sevVm(k, t);
    assert.equal(setAttr(k, t, vmfd, 0, P, 2 ** 32), -E.EINVAL);
    assert.equal(setAttr(k, t, vmfd, 0, P, 2 ** 32 + PRIV), -E.EINVAL);
    assert.equal(setAttr(k, t, vmfd, 0, P, -1), -E.EINVAL);
    assert.equal(setAttr(k, t, vmfd, 0, P, PRIV), 0);
    k.shutdown();
  });

  it('changes exactly its range: the next page stays shared, and a page already private is not unmapped again', () => {
    const k = kernel('sev');
    const t = k.spawn();
    const vmfd = sevVm(k, t);
    const vm = vmOfFd(t, vmfd)!;
    const { shared } = gmemSlot(k, t, vmfd, 0, 0, 4);
    assert.equal(store(k, t, shared + P, 0x55), 0);
    assert.equal(setAttr(k, t, vmfd, 0, P, PRIV), 0);
    assert.equal(store(k, vm.guest, 0, 0x66), 0);
    assert.ok(allIs(k, vm.guest, P, 0x55), 'page 1 is still the VMM’s shared page');
    const c = count(k, 'conversions');
    assert.equal(setAttr(k, t, vmfd, 0, 2 * P, PRIV), 0);
    assert.equal(count(k, 'conversions'), c + 1, 'page 1 only');
    assert.notEqual(vm.guestPte(0), 0, 'page 0 was private already');
    k.shutdown();
  });
});

describe("KVM: the VM's key and SEV's regions", () => {
  it('KVM_MEMORY_ENCRYPT_OP where the CPU has neither SEV nor TDX is ENOTTY before the argument is looked at', () => {
    const k = kernel('mktme');
    const t = k.spawn();
    const vmfd = createVm(k, t, KVM_X86_DEFAULT_VM);
    assert.equal(ioctl(k, t, vmfd, KVM_MEMORY_ENCRYPT_OP, 4096), -E.ENOTTY);
    k.shutdown();
  });

  it('REG/UNREG_REGION copy their struct before looking for the op: a bad pointer is EFAULT even where the CPU has no SEV (x86.c kvm_arch_vm_ioctl)', () => {
    for (const profile of ['tdx', 'mktme']) {
      const k = kernel(profile);
      const t = k.spawn();
      const vmfd = createVm(k, t, KVM_X86_DEFAULT_VM);
      assert.equal(ioctl(k, t, vmfd, KVM_MEMORY_ENCRYPT_REG_REGION, 4096), -E.EFAULT, profile);
      assert.equal(ioctl(k, t, vmfd, KVM_MEMORY_ENCRYPT_UNREG_REGION, 4096), -E.EFAULT, profile);
      assert.equal(ioctl(k, t, vmfd, KVM_MEMORY_ENCRYPT_REG_REGION, [anon(k, t, 1), P]), -E.ENOTTY, profile);
      k.shutdown();
    }
  });

  it('KVM_MEMORY_ENCRYPT_OP on a VM that is not a TD, where the CPU has TDX, is ENOTTY before the argument is looked at (vt_mem_enc_ioctl)', () => {
    const k = kernel('tdx');
    const t = k.spawn();
    const vmfd = createVm(k, t, KVM_X86_DEFAULT_VM);
    assert.equal(ioctl(k, t, vmfd, KVM_MEMORY_ENCRYPT_OP, 4096), -E.ENOTTY);
    assert.equal(ioctl(k, t, createVm(k, t, KVM_X86_TDX_VM), KVM_MEMORY_ENCRYPT_OP, 4096), -E.EFAULT, 'a TD copies it');
    k.shutdown();
  });

  it('KVM_TDX_INIT_VM needs its command id: a struct without one is EINVAL', () => {
    const k = kernel('tdx');
    const t = k.spawn();
    const vmfd = createVm(k, t, KVM_X86_TDX_VM);
    assert.equal(ioctl(k, t, vmfd, KVM_MEMORY_ENCRYPT_OP, []), -E.EINVAL);
    assert.equal(ioctl(k, t, vmfd, KVM_MEMORY_ENCRYPT_OP, [KVM_TDX_INIT_VM]), 0);
    k.shutdown();
  });

  it('UNREG_REGION on a TD with its key is ENOTTY (VMX has no such op)', () => {
    const k = kernel('tdx');
    const t = k.spawn();
    const vmfd = createVm(k, t, KVM_X86_TDX_VM);
    assert.equal(ioctl(k, t, vmfd, KVM_MEMORY_ENCRYPT_OP, [KVM_TDX_INIT_VM]), 0);
    assert.equal(ioctl(k, t, vmfd, KVM_MEMORY_ENCRYPT_UNREG_REGION, [0, P]), -E.ENOTTY);
    k.shutdown();
  });

  it('REG_REGION: a range that wraps is EINVAL; one where nothing is mapped, or read-only, is ENOMEM; exactly RLIMIT_MEMLOCK is allowed', () => {
    const k = kernel('sev');
    const t = k.spawn({ caps: [], rlimits: { memlock: 4 * P } });
    const vmfd = sevVm(k, t, KVM_X86_SEV_VM);
    const reg = (addr: unknown, size: number) => ioctl(k, t, vmfd, KVM_MEMORY_ENCRYPT_REG_REGION, [addr, size]);
    assert.equal(reg(-P, P), -E.EINVAL, '2^64 - 4096 + 4096 wraps');
    assert.equal(reg(0, P), -E.ENOMEM, 'nothing at address 0');
    assert.equal(reg(BigInt(Number.MAX_SAFE_INTEGER), P), -E.ENOMEM, 'nothing at 2^53 - 1');
    assert.equal(reg(anon(k, t, 4, PROT_READ), P), -E.ENOMEM, 'FOLL_WRITE on a read-only mapping');
    assert.equal(count(k, 'gup_failures'), 3);
    assert.equal(reg(anon(k, t, 4), 4 * P), 0, 'RLIMIT_MEMLOCK exactly');
    k.shutdown();
  });

  it('UNREG_REGION finds the region by address and size both, and unpins that one', () => {
    const k = kernel('sev');
    const t = k.spawn();
    const vmfd = sevVm(k, t, KVM_X86_SEV_VM);
    const a = anon(k, t, 2), b = anon(k, t, 2);
    assert.equal(ioctl(k, t, vmfd, KVM_MEMORY_ENCRYPT_REG_REGION, [a, 2 * P]), 0);
    assert.equal(ioctl(k, t, vmfd, KVM_MEMORY_ENCRYPT_REG_REGION, [b, 2 * P]), 0);
    const pfnA = k.pool.get(t.mm.pgd, a) >>> 16, pfnB = k.pool.get(t.mm.pgd, b) >>> 16;
    assert.equal(ioctl(k, t, vmfd, KVM_MEMORY_ENCRYPT_UNREG_REGION, [a, P]), -E.EINVAL, 'the right address, another size');
    assert.equal(ioctl(k, t, vmfd, KVM_MEMORY_ENCRYPT_UNREG_REGION, [b, 2 * P]), 0);
    assert.equal(k.alloc.longtermPins(pfnA), 1);
    assert.equal(k.alloc.longtermPins(pfnB), 0);
    k.shutdown();
  });

  it("an SEV guest's sharing: exactly the pages it asks; sharing a shared page again changes nothing; unsharing makes a page private again", () => {
    const k = kernel('sev');
    const t = k.spawn();
    const vmfd = sevVm(k, t, KVM_X86_SEV_VM);
    const ram = anon(k, t, 4);
    assert.equal(setRegion(k, t, vmfd, region(0, 0, 0, 4 * P, ram)), 0);
    const vm = vmOfFd(t, vmfd)!;
    sevGuestSetShared(vm, P, 1, true);
    assert.equal(store(k, vm.guest, P, 0x62), 0);
    assert.equal(store(k, vm.guest, 2 * P, 0x63), 0);
    assert.ok(allIs(k, t, ram + P, 0x62), 'shared: plaintext to the VMM');
    assert.equal(allIs(k, t, ram + 2 * P, 0x63), false, 'page 2 is still private');
    const c = count(k, 'conversions');
    sevGuestSetShared(vm, P, 1, true);
    assert.equal(count(k, 'conversions'), c);
    assert.notEqual(vm.guestPte(P), 0);
    sevGuestSetShared(vm, P, 1, false);
    assert.equal(count(k, 'conversions'), c + 1);
    assert.equal(store(k, vm.guest, P, 0x64), 0);
    assert.equal(allIs(k, t, ram + P, 0x64), false, 'private again: ciphertext to the VMM');
    k.shutdown();
  });
});
