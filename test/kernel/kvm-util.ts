// Set-up shared by the KVM tests: syscalls as a VMM makes them, and the
// kvm_userspace_memory_region2 the model takes.
import assert from 'node:assert/strict';
import { Machine } from '../../hardware/machine.js';
import { ALL_FEATURES, Kernel, type Task } from '../../kernel/kernel.js';
import { KVM_CREATE_VM, KVM_PATH } from '../../kernel/kvm.js';
import { AT_FDCWD, NR } from '../../kernel/syscalls.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../../kernel/uapi.js';

export const P = 4096;

export const sys = (k: Kernel, t: Task, nr: number, ...a: (number | readonly number[])[]) => k.syscall(t, nr, ...a);

/** open("/dev/kvm", O_RDWR) */
export const kvmFd = (k: Kernel, t: Task) => sys(k, t, NR.openat, AT_FDCWD, KVM_PATH as never, 2);

/** KVM_CREATE_VM on a fresh /dev/kvm fd: the VM fd or -errno. */
export function createVm(k: Kernel, t: Task, type: number): number {
  const kvm = kvmFd(k, t);
  assert.ok(kvm >= 0, `open ${KVM_PATH}: ${kvm}`);
  return sys(k, t, NR.ioctl, kvm, KVM_CREATE_VM, type);
}

/** Private anonymous memory, read-write unless told. */
export const anon = (k: Kernel, t: Task, pages: number, prot = PROT_READ | PROT_WRITE) => sys(k, t, NR.mmap, 0, pages * P, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

/** kvm_userspace_memory_region2 as the model takes it: slot, flags, gpa, size, uaddr, gmem offset, gmem fd */
export const region = (slot: number, flags: number, gpa: number, size: number, uaddr: number, off = 0, fd = 0) => [slot, flags, gpa, size, uaddr, off, fd];

export interface KvmKernelOptions {
  readonly pgtableSlots?: number;
  readonly mmapMinAddr?: number;
}

/** A kernel with every feature on a one-CPU machine of two 128-frame nodes, the `profile` engine. */
export function kvmKernel(profile: string, opts: KvmKernelOptions = {}): Kernel {
  const m = Machine.create({ profile, backend: 'openssl', memory: { nodeFrames: [128, 128] }, nrCpus: 1 });
  return new Kernel(m, { features: ALL_FEATURES, pgtableSlots: opts.pgtableSlots ?? 512, ...(opts.mmapMinAddr === undefined ? {} : { mmapMinAddr: opts.mmapMinAddr }) });
}
