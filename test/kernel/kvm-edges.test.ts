// KVM's edges that the main KVM tests leave out (found by a mutation run of
// kernel/kvm.ts): every VM ioctl refuses a non-struct argument with EFAULT;
// changing an existing memslot; the address-space id; readonly slots and
// read-only VMM mappings; REG_REGION and UNREG_REGION where SEV is missing or
// not yet set up; the SEV-ES and SNP VMs pin too; the mmu notifier and a
// deleted slot zap exactly the guest pages they cover.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { E } from '../../kernel/errno.js';
import type { Kernel, Task } from '../../kernel/kernel.js';
import {
  KVM_CREATE_GUEST_MEMFD,
  KVM_CREATE_VM,
  KVM_MEM_GUEST_MEMFD,
  KVM_MEM_LOG_DIRTY_PAGES,
  KVM_MEM_READONLY,
  KVM_MEMORY_ENCRYPT_OP,
  KVM_MEMORY_ENCRYPT_REG_REGION,
  KVM_MEMORY_ENCRYPT_UNREG_REGION,
  KVM_SEV_INIT2,
  KVM_SET_MEMORY_ATTRIBUTES,
  KVM_SET_USER_MEMORY_REGION2,
  KVM_TDX_INIT_VM,
  KVM_X86_DEFAULT_VM,
  KVM_X86_SEV_ES_VM,
  KVM_X86_SNP_VM,
  vmOfFd,
} from '../../kernel/kvm.js';
import { NR } from '../../kernel/syscalls.js';
import { PROT_READ } from '../../kernel/uapi.js';
import { P, anon, createVm, kvmFd, region, sys, kvmKernel as kernel } from './kvm-util.js';

const store = (k: Kernel, t: Task, va: number) => k.localCpu(t).store(va, new Uint8Array(8).fill(1), 0, 8);
const load = (k: Kernel, t: Task, va: number) => k.localCpu(t).load(va, new Uint8Array(8), 0, 8);

describe('KVM edges', () => {
  it('/dev/kvm and a VM fd cannot be mapped; an unknown /dev/kvm ioctl is ENOTTY', () => {
    const k = kernel('sev');
    const t = k.spawn();
    const kvm = kvmFd(k, t);
    assert.equal(sys(k, t, NR.ioctl, kvm, 0xae00, 0), -E.ENOTTY); // KVM_GET_API_VERSION: not modelled
    assert.equal(sys(k, t, NR.mmap, 0, P, PROT_READ, 1, kvm, 0), -E.ENODEV);
    const vm = sys(k, t, NR.ioctl, kvm, KVM_CREATE_VM, KVM_X86_DEFAULT_VM);
    assert.equal(sys(k, t, NR.mmap, 0, P, PROT_READ, 1, vm, 0), -E.ENODEV);
    k.shutdown();
  });

  it('every VM ioctl that copies a struct refuses a non-struct argument with EFAULT', () => {
    const k = kernel('sev');
    const t = k.spawn();
    const vm = createVm(k, t, KVM_X86_SNP_VM);
    for (const cmd of [KVM_CREATE_GUEST_MEMFD, KVM_SET_USER_MEMORY_REGION2, KVM_SET_MEMORY_ATTRIBUTES, KVM_MEMORY_ENCRYPT_OP, KVM_MEMORY_ENCRYPT_REG_REGION, KVM_MEMORY_ENCRYPT_UNREG_REGION])
      assert.equal(sys(k, t, NR.ioctl, vm, cmd, 4096), -E.EFAULT, cmd.toString(16));
    k.shutdown();
  });

  it('changing a memslot: uaddr, size or READONLY cannot change; the same slot again is a no-op; a new gpa moves it', () => {
    const k = kernel('mktme');
    const t = k.spawn();
    const vmfd = createVm(k, t, KVM_X86_DEFAULT_VM);
    const vm = vmOfFd(t, vmfd)!;
    const ram = anon(k, t, 8);
    const set = (r: number[]) => sys(k, t, NR.ioctl, vmfd, KVM_SET_USER_MEMORY_REGION2, r);
    assert.equal(set(region(0, 0, 0, 4 * P, ram)), 0);
    assert.equal(store(k, vm.guest, P), 0);
    assert.equal(set(region(0, 0, 0, 4 * P, ram + P)), -E.EINVAL, 'another uaddr');
    assert.equal(set(region(0, 0, 0, 2 * P, ram)), -E.EINVAL, 'another size');
    assert.equal(set(region(0, KVM_MEM_READONLY, 0, 4 * P, ram)), -E.EINVAL, 'READONLY toggled');
    assert.equal(set(region(0, 0, 0, 4 * P, ram)), 0);
    assert.notEqual(vm.guestPte(P), 0, 'the same slot again: nothing zapped');
    assert.equal(set(region(0, KVM_MEM_LOG_DIRTY_PAGES, 0, 4 * P, ram)), 0, 'flags only');
    assert.equal(vm.guestPte(P), 0, 'a flags change zaps the slot');
    assert.equal(store(k, vm.guest, P), 0);
    assert.equal(set(region(0, KVM_MEM_LOG_DIRTY_PAGES, 16 * P, 4 * P, ram)), 0, 'moved');
    assert.equal(vm.guestPte(P), 0, 'the old place is zapped');
    assert.equal(load(k, vm.guest, P), -E.EFAULT, 'nothing at the old place');
    assert.equal(load(k, vm.guest, 17 * P), 0, 'the same memory at the new place');
    k.shutdown();
  });

  it('a slot beyond 2^31-1 pages, an unaligned guest_memfd offset, and address space 1 are EINVAL', () => {
    const k = kernel('sev');
    const t = k.spawn();
    const snp = createVm(k, t, KVM_X86_SNP_VM);
    const def = createVm(k, t, KVM_X86_DEFAULT_VM);
    const g = sys(k, t, NR.ioctl, snp, KVM_CREATE_GUEST_MEMFD, [8 * P, 0]);
    const ram = anon(k, t, 8);
    assert.equal(sys(k, t, NR.ioctl, snp, KVM_SET_USER_MEMORY_REGION2, region(0, KVM_MEM_GUEST_MEMFD, 0, 4 * P, ram, 1, g)), -E.EINVAL);
    assert.equal(sys(k, t, NR.ioctl, def, KVM_SET_USER_MEMORY_REGION2, region(0, 0, 0, 2 ** 31 * P, P)), -E.EINVAL);
    assert.equal(sys(k, t, NR.ioctl, def, KVM_SET_USER_MEMORY_REGION2, region(0, 0, 0, (2 ** 31 - 1) * P, P)), 0, 'the largest slot');
    // slot = as_id << 16 | id: an SNP VM has one address space; SMM's is not modelled
    assert.equal(sys(k, t, NR.ioctl, snp, KVM_SET_USER_MEMORY_REGION2, region(1 << 16, 0, 0, 4 * P, ram)), -E.EINVAL);
    assert.equal(sys(k, t, NR.ioctl, def, KVM_SET_USER_MEMORY_REGION2, region((1 << 16) | 1, 0, 0, 4 * P, ram)), -E.EINVAL);
    k.shutdown();
  });

  it('a READONLY slot faults on a guest write; a read-only VMM mapping refuses a write through GUP', () => {
    const k = kernel('mktme');
    const t = k.spawn();
    const vmfd = createVm(k, t, KVM_X86_DEFAULT_VM);
    const vm = vmOfFd(t, vmfd)!;
    const ram = anon(k, t, 4);
    const ro = anon(k, t, 4, PROT_READ);
    assert.equal(sys(k, t, NR.ioctl, vmfd, KVM_SET_USER_MEMORY_REGION2, region(0, KVM_MEM_READONLY, 0, 4 * P, ram)), 0);
    assert.equal(sys(k, t, NR.ioctl, vmfd, KVM_SET_USER_MEMORY_REGION2, region(1, 0, 8 * P, 4 * P, ro)), 0);
    assert.equal(load(k, vm.guest, 0), 0);
    assert.equal(store(k, vm.guest, 0), -E.EFAULT);
    assert.equal(load(k, vm.guest, 8 * P), 0, 'reading a read-only mapping is fine');
    assert.equal(store(k, vm.guest, 9 * P), -E.EFAULT);
    assert.equal(k.counters.get('gup_failures'), 1);
    k.shutdown();
  });

  it('the VM key op on a plain VM where the CPU has TDX is ENOTTY; REG/UNREG_REGION without SEV are ENOTTY', () => {
    const k = kernel('tdx');
    const t = k.spawn();
    const def = createVm(k, t, KVM_X86_DEFAULT_VM);
    assert.equal(sys(k, t, NR.ioctl, def, KVM_MEMORY_ENCRYPT_OP, [KVM_TDX_INIT_VM]), -E.ENOTTY);
    assert.equal(sys(k, t, NR.ioctl, def, KVM_MEMORY_ENCRYPT_REG_REGION, [anon(k, t, 1), P]), -E.ENOTTY);
    assert.equal(sys(k, t, NR.ioctl, def, KVM_MEMORY_ENCRYPT_UNREG_REGION, [0, P]), -E.ENOTTY);
    k.shutdown();
    const s = kernel('sev');
    const t2 = s.spawn();
    const vm = createVm(s, t2, KVM_X86_SEV_ES_VM);
    assert.equal(sys(s, t2, NR.ioctl, vm, KVM_MEMORY_ENCRYPT_UNREG_REGION, [0, P]), -E.ENOTTY, 'no ASID yet');
    s.shutdown();
  });

  it('SEV-ES and SNP VMs register regions too, once they have their ASID; SEV on a plain VM is EINVAL', () => {
    const k = kernel('sev');
    const t = k.spawn();
    for (const type of [KVM_X86_SEV_ES_VM, KVM_X86_SNP_VM]) {
      const vm = createVm(k, t, type);
      const ram = anon(k, t, 2);
      assert.equal(sys(k, t, NR.ioctl, vm, KVM_MEMORY_ENCRYPT_REG_REGION, [ram, 2 * P]), -E.ENOTTY, `${type}: no ASID yet`);
      assert.equal(sys(k, t, NR.ioctl, vm, KVM_MEMORY_ENCRYPT_OP, [KVM_SEV_INIT2]), 0);
      assert.equal(sys(k, t, NR.ioctl, vm, KVM_MEMORY_ENCRYPT_REG_REGION, [ram, 2 * P]), 0, String(type));
    }
    assert.equal(k.counters.get('pinned_pages'), 4);
    const def = createVm(k, t, KVM_X86_DEFAULT_VM);
    assert.equal(sys(k, t, NR.ioctl, def, KVM_MEMORY_ENCRYPT_OP, [KVM_SEV_INIT2]), -E.EINVAL);
    k.shutdown();
  });

  it('deleting a large slot zaps what the guest mapped in it and nothing in another slot', () => {
    const k = kernel('mktme');
    const t = k.spawn();
    const vmfd = createVm(k, t, KVM_X86_DEFAULT_VM);
    const vm = vmOfFd(t, vmfd)!;
    const a = anon(k, t, 128), b = anon(k, t, 4);
    const set = (r: number[]) => sys(k, t, NR.ioctl, vmfd, KVM_SET_USER_MEMORY_REGION2, r);
    assert.equal(set(region(0, 0, 0, 128 * P, a)), 0);
    assert.equal(set(region(1, 0, 1024 * P, 4 * P, b)), 0);
    assert.equal(store(k, vm.guest, 3 * P), 0);
    assert.equal(store(k, vm.guest, 1025 * P), 0);
    assert.equal(set(region(0, 0, 0, 0, a)), 0); // delete: 128 pages, more than 4 x the mapped ones + 64, so the zap walks what is mapped
    assert.equal(vm.guestPte(3 * P), 0);
    assert.notEqual(vm.guestPte(1025 * P), 0, 'the other slot keeps its mapping');
    assert.equal(vm.rmap.size, 1);
    // the mmu notifier: the VMM unmapping b zaps only that page of the guest
    assert.equal(sys(k, t, NR.munmap, b + 2 * P, P), 0); // guest page 1025 is b + P
    assert.notEqual(vm.guestPte(1025 * P), 0, 'another page of b');
    assert.equal(sys(k, t, NR.munmap, b, 4 * P), 0);
    assert.equal(vm.guestPte(1025 * P), 0);
    k.shutdown();
  });

  it('struct fields are u64 registers: a bigint within range is a number, anything else (negative, beyond 2^53, a fraction, a string) fails the checks', () => {
    const k = kernel('mktme');
    const t = k.spawn();
    const vm = createVm(k, t, KVM_X86_DEFAULT_VM);
    const mk = (size: unknown) => sys(k, t, NR.ioctl, vm, KVM_CREATE_GUEST_MEMFD, [size, 3] as never);
    assert.ok(mk(BigInt(4 * P)) >= 0, 'a bigint size');
    assert.ok(mk(4 * P) >= 0);
    for (const bad of [-1n, 2n ** 60n, BigInt(Number.MAX_SAFE_INTEGER) + 1n, 1.5 * P, '4096', -P]) assert.equal(mk(bad), -E.EINVAL, String(bad));
    // the flags field too: a bigint 3 is MMAP|INIT_SHARED, a bigint beyond 2^53 is no flags the kernel knows
    assert.ok(sys(k, t, NR.ioctl, vm, KVM_CREATE_GUEST_MEMFD, [P, 3n] as never) >= 0);
    assert.equal(sys(k, t, NR.ioctl, vm, KVM_CREATE_GUEST_MEMFD, [P, 2n ** 62n] as never), -E.EINVAL);
    k.shutdown();
  });

  it("deleting a guest_memfd slot zaps the guest's private pages (they have no VMM page, so no rmap entry)", () => {
    const k = kernel('sev');
    const t = k.spawn();
    const vmfd = createVm(k, t, KVM_X86_SNP_VM);
    assert.equal(sys(k, t, NR.ioctl, vmfd, KVM_MEMORY_ENCRYPT_OP, [KVM_SEV_INIT2]), 0);
    const vm = vmOfFd(t, vmfd)!;
    const shared = anon(k, t, 128);
    const g = sys(k, t, NR.ioctl, vmfd, KVM_CREATE_GUEST_MEMFD, [128 * P, 0]);
    assert.equal(sys(k, t, NR.ioctl, vmfd, KVM_SET_USER_MEMORY_REGION2, region(0, KVM_MEM_GUEST_MEMFD, 0, 128 * P, shared, 0, g)), 0);
    assert.equal(sys(k, t, NR.ioctl, vmfd, KVM_SET_MEMORY_ATTRIBUTES, [0, 128 * P, 8, 0]), 0);
    const other = anon(k, t, 4);
    assert.equal(sys(k, t, NR.ioctl, vmfd, KVM_SET_USER_MEMORY_REGION2, region(1, 0, 256 * P, 4 * P, other)), 0);
    assert.equal(store(k, vm.guest, 0), 0);
    assert.equal(store(k, vm.guest, 127 * P), 0);
    assert.equal(store(k, vm.guest, 257 * P), 0);
    assert.equal(vm.rmap.size, 1, 'only the shared page of slot 1 has a VMM page');
    assert.equal(sys(k, t, NR.ioctl, vmfd, KVM_SET_USER_MEMORY_REGION2, region(0, KVM_MEM_GUEST_MEMFD, 0, 0, shared, 0, g)), 0);
    assert.equal(vm.guestPte(0), 0);
    assert.equal(vm.guestPte(127 * P), 0);
    assert.notEqual(vm.guestPte(257 * P), 0);
    k.shutdown();
  });

  it("a zap shoots down the guest CPUs' TLBs: a cached translation of an unmapped page is not used again", () => {
    const k = kernel('mktme');
    const t = k.spawn();
    const vmfd = createVm(k, t, KVM_X86_DEFAULT_VM);
    const vm = vmOfFd(t, vmfd)!;
    const ram = anon(k, t, 4);
    assert.equal(sys(k, t, NR.ioctl, vmfd, KVM_SET_USER_MEMORY_REGION2, region(0, 0, 0, 4 * P, ram)), 0);
    const cpu = k.localCpu(vm.guest); // one CPU: its TLB keeps what it translated
    const buf = new Uint8Array(8);
    assert.equal(cpu.store(P, buf.fill(7), 0, 8), 0);
    assert.equal(cpu.load(P, buf, 0, 8), 0);
    assert.equal(sys(k, t, NR.munmap, ram, 4 * P), 0);
    assert.equal(cpu.load(P, buf, 0, 8), -E.EFAULT, 'the stale translation was flushed');
    k.shutdown();
  });
});
