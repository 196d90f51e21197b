// KVM behaviour found while reviewing the surviving mutants of dist/kernel/kvm.js
// in the quick Stryker rerun of kernel/ in /work/mutwork (report saves/chunkE;
// test/mutation-review/kernel-final-e-kvm.md). Every survivor of that run
// proved equivalent; reviewing 219:20 (the VM's last zap up to 2^53) showed
// memslots the model's stage 2 cannot hold (gpa past 2^47: a move there threw
// a RangeError, a fault there wrote into another table), which Linux refuses
// (kvm_arch_prepare_memory_region, kvm_mmu_max_gfn); reading
// kvm_set_memory_region next to it showed a moved memslot was not checked for
// overlap (EEXIST).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { E } from '../../kernel/errno.js';
import type { Kernel, Task } from '../../kernel/kernel.js';
import {
  GUEST_MEMFD_FLAG_MMAP,
  KVM_CREATE_GUEST_MEMFD,
  KVM_MEM_GUEST_MEMFD,
  KVM_SET_USER_MEMORY_REGION2,
  KVM_X86_DEFAULT_VM,
  vmOfFd,
} from '../../kernel/kvm.js';
import { NR } from '../../kernel/syscalls.js';
import { P, anon, createVm, region, sys, kvmKernel as kernel } from './kvm-util.js';

/** Store one page of `byte` at va (0 or -errno). */
const store = (k: Kernel, t: Task, va: number, byte: number) => k.localCpu(t).store(va, new Uint8Array(P).fill(byte), 0, P);
/** The first byte of the page at va, or -errno. */
function peek(k: Kernel, t: Task, va: number): number {
  const out = new Uint8Array(P);
  const r = k.localCpu(t).load(va, out, 0, P);
  return r < 0 ? r : out[0];
}
const ioctl = (k: Kernel, t: Task, fd: number, cmd: number, arg: unknown) => sys(k, t, NR.ioctl, fd, cmd, arg as never);
const setRegion = (k: Kernel, t: Task, vmfd: number, r: number[]) => ioctl(k, t, vmfd, KVM_SET_USER_MEMORY_REGION2, r);

const TOP = 2 ** 47; // the model host's MAXPHYADDR: 47 bits

describe('KVM: memslots end below the host MAXPHYADDR (x86.c kvm_arch_prepare_memory_region, mmu.h kvm_mmu_max_gfn)', () => {
  it('a slot whose last page is the last below 2^47 is made and maps; one page further, or far above, is EINVAL', () => {
    const k = kernel('mktme');
    const t = k.spawn();
    const vmfd = createVm(k, t, KVM_X86_DEFAULT_VM);
    const vm = vmOfFd(t, vmfd)!;
    const ram = anon(k, t, 4);
    assert.equal(store(k, t, ram, 0x5a), 0);
    assert.equal(setRegion(k, t, vmfd, region(0, 0, TOP, P, ram)), -E.EINVAL, 'first page at 2^47');
    assert.equal(setRegion(k, t, vmfd, region(0, 0, TOP - P, 2 * P, ram)), -E.EINVAL, 'last page at 2^47');
    assert.equal(setRegion(k, t, vmfd, region(0, 0, 2 ** 52, P, ram)), -E.EINVAL);
    assert.equal(setRegion(k, t, vmfd, region(0, 0, 2 ** 53 - P, P, ram)), -E.EINVAL);
    assert.equal(peek(k, vm.guest, TOP), -E.EFAULT, 'no slot there');
    assert.equal(setRegion(k, t, vmfd, region(0, 0, TOP - P, P, ram)), 0, 'last gfn 2^35 - 1');
    assert.equal(peek(k, vm.guest, TOP - P), 0x5a);
    k.shutdown();
  });

  it('a guest_memfd slot past 2^47 is EINVAL too, after the binding checks', () => {
    const k = kernel('mktme');
    const t = k.spawn();
    const vmfd = createVm(k, t, KVM_X86_DEFAULT_VM);
    const g = ioctl(k, t, vmfd, KVM_CREATE_GUEST_MEMFD, [2 * P, GUEST_MEMFD_FLAG_MMAP]);
    assert.ok(g >= 0);
    const ram = anon(k, t, 2);
    assert.equal(setRegion(k, t, vmfd, region(0, KVM_MEM_GUEST_MEMFD, TOP, P, ram, 0, 99)), -E.EBADF, 'kvm_gmem_bind first');
    assert.equal(setRegion(k, t, vmfd, region(0, KVM_MEM_GUEST_MEMFD, TOP - P, 2 * P, ram, 0, g)), -E.EINVAL);
    // the failed binding left nothing bound: the same file range binds below
    assert.equal(setRegion(k, t, vmfd, region(0, KVM_MEM_GUEST_MEMFD, TOP - 2 * P, 2 * P, ram, 0, g)), 0);
    k.shutdown();
  });

  it('moving a slot past 2^47 is EINVAL (not a RangeError) and leaves it where it was, its old mapping zapped', () => {
    const k = kernel('mktme');
    const t = k.spawn();
    const vmfd = createVm(k, t, KVM_X86_DEFAULT_VM);
    const vm = vmOfFd(t, vmfd)!;
    const ram = anon(k, t, 2);
    assert.equal(store(k, t, ram, 0x33), 0);
    assert.equal(setRegion(k, t, vmfd, region(0, 0, 0, 2 * P, ram)), 0);
    assert.equal(peek(k, vm.guest, 0), 0x33);
    assert.notEqual(vm.guestPte(0), 0);
    assert.equal(setRegion(k, t, vmfd, region(0, 0, TOP - P, 2 * P, ram)), -E.EINVAL);
    assert.equal(setRegion(k, t, vmfd, region(0, 0, 2 ** 53 - 2 * P, 2 * P, ram)), -E.EINVAL);
    assert.equal(vm.guestPte(0), 0, 'kvm_invalidate_memslot zapped it before the check');
    assert.equal(peek(k, vm.guest, 0), 0x33, 'the slot is still at 0');
    assert.equal(peek(k, vm.guest, TOP - P), -E.EFAULT);
    assert.equal(setRegion(k, t, vmfd, region(0, 0, TOP - 2 * P, 2 * P, ram)), 0, 'a move to the very top is allowed');
    assert.equal(peek(k, vm.guest, TOP - 2 * P), 0x33);
    k.shutdown();
  });
});

describe('KVM: a moved memslot may not overlap another (kvm_main.c kvm_set_memory_region, KVM_MR_MOVE)', () => {
  it('moving onto another slot, or across its edge, is EEXIST and changes nothing; onto its own old range, or touching another, is allowed', () => {
    const k = kernel('mktme');
    const t = k.spawn();
    const vmfd = createVm(k, t, KVM_X86_DEFAULT_VM);
    const vm = vmOfFd(t, vmfd)!;
    const a = anon(k, t, 4), b = anon(k, t, 4);
    assert.equal(store(k, t, a, 0xaa), 0);
    assert.equal(store(k, t, b, 0xbb), 0);
    assert.equal(setRegion(k, t, vmfd, region(0, 0, 0, 4 * P, a)), 0);
    assert.equal(setRegion(k, t, vmfd, region(1, 0, 16 * P, 4 * P, b)), 0);
    assert.equal(peek(k, vm.guest, 0), 0xaa);
    assert.equal(setRegion(k, t, vmfd, region(0, 0, 16 * P, 4 * P, a)), -E.EEXIST, 'onto slot 1');
    assert.equal(setRegion(k, t, vmfd, region(0, 0, 13 * P, 4 * P, a)), -E.EEXIST, 'its last page on slot 1’s first');
    assert.equal(setRegion(k, t, vmfd, region(0, 0, 19 * P, 4 * P, a)), -E.EEXIST, 'its first page on slot 1’s last');
    assert.notEqual(vm.guestPte(0), 0, 'a refused move zaps nothing (the check is before kvm_set_memslot)');
    assert.equal(peek(k, vm.guest, 16 * P), 0xbb, 'slot 1 is still what the guest sees there');
    assert.equal(peek(k, vm.guest, 0), 0xaa);
    assert.equal(setRegion(k, t, vmfd, region(0, 0, 2 * P, 4 * P, a)), 0, 'overlapping its own old range');
    assert.equal(peek(k, vm.guest, 2 * P), 0xaa);
    assert.equal(setRegion(k, t, vmfd, region(0, 0, 12 * P, 4 * P, a)), 0, 'ending where slot 1 begins');
    assert.equal(peek(k, vm.guest, 12 * P), 0xaa);
    assert.equal(peek(k, vm.guest, 16 * P), 0xbb);
    k.shutdown();
  });
});
