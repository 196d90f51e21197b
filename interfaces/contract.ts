// The one contract every API design under test implements: a kernel side that
// is installed only into a kernel configured with the design's feature, and
// the userspace helper a real program would write on top of it, in a careful
// flavour (checks every return, falls back to plaintext memory) and a naive
// one (assumes the call exists). Outcomes are never stated by a design: the
// conformance runner observes them by running the program on the model.
import { randomFillSync } from 'node:crypto';
import type { UserCpu } from '../kernel/cpu.js';
import type { Kernel, KernelFeatures } from '../kernel/kernel.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../kernel/uapi.js';
import { KEYCTL_INVALIDATE, NR, type SysArg } from '../kernel/syscalls.js';
import {
  KVM_MEMORY_ENCRYPT_REG_REGION,
  KVM_SET_USER_MEMORY_REGION2,
  KVM_X86_DEFAULT_VM,
  KVM_X86_SEV_ES_VM,
  KVM_X86_SEV_VM,
} from '../kernel/kvm.js';
import type { HardwareProfile } from '../hardware/profiles.js';

/** plain-mmap first: it is the control every other design is measured against. */
export const DESIGN_NAMES = ['plain-mmap', 'encrypt-mprotect', 'dev-mktme', 'madvise-encrypt', 'memfd-secret', 'guest-memfd'] as const;
/** The control: memory as programs get it today, no protection. */
export const CONTROL_DESIGN: DesignName = 'plain-mmap';
export type DesignName = (typeof DESIGN_NAMES)[number];

/** What a process can do: enter the kernel, and touch memory on its CPU. */
export interface UserEnv {
  sys(nr: number, ...args: SysArg[]): number;
  readonly cpu: UserCpu;
}

/** The key a program asks for: an add_key("mktme", ...) payload. */
export interface KeySpec {
  readonly description: string;
  readonly payload: string;
}

export const CPU_KEY: KeySpec = { description: 'bench', payload: 'type=cpu algorithm=aes-xts-128' };

/**
 * 32 bytes of AES-XTS key material from the CSPRNG, with halves that differ
 * (OpenSSL refuses equal ones). Counters and outcomes never depend on key
 * bytes, so a run stays repeatable per seed while nothing in its results,
 * logs or file names lets anyone derive a key.
 */
export function randomKeyBytes(): Uint8Array {
  const k = new Uint8Array(32);
  do randomFillSync(k);
  while (k.subarray(0, 16).every((b, i) => b === k[16 + i]));
  return k;
}

/** A user-supplied key (needed to read persistent memory again after a power cycle). */
export function userKey(bytes: Uint8Array, description = 'persistent'): KeySpec {
  if (bytes.length !== 32) throw new RangeError(`key: expected 32 bytes, got ${bytes.length}`);
  return { description, payload: `type=user algorithm=aes-xts-128 key=${Buffer.from(bytes).toString('hex')}` };
}

/** What the helper handed back to the program. addr may be MAP_FAILED (-errno) in a naive program. */
export interface Allocation {
  readonly addr: number;
  readonly len: number;
  /** fd the memory came from (-1 for anonymous memory) */
  readonly fd: number;
  /** key serial in use, or -errno */
  readonly serial: number;
  /** the helper fell back to plain memory */
  readonly fallback: boolean;
  /** the first failing call's -errno (0: none): ENOSYS, ENOENT, EINVAL ... */
  readonly errno: number;
}

/** The helper gave up (careful program, unrecoverable): -errno. */
export type AllocResult = Allocation | { readonly failed: number };

/** A guest's RAM as the VMM (QEMU) set it up through a design: memslot 0, at guest physical address 0. */
export interface GuestRam {
  readonly vmfd: number;
  /** the KVM VM type */
  readonly type: number;
  readonly len: number;
  /** the VMM's own mapping of the RAM (the shared side where there is a guest_memfd) */
  readonly hva: number;
  /** the guest_memfd holding the private side, or -1 */
  readonly gmem: number;
  /** what the design's helper handed out for the RAM block, when it did */
  readonly alloc: Allocation | null;
}

export abstract class EncryptionDesign {
  abstract readonly name: DesignName;
  /** The kernel config option that builds its kernel side (null: needs none, every kernel has it). */
  abstract readonly feature: keyof KernelFeatures | null;
  /** One line for reports. */
  abstract readonly summary: string;
  /**
   * Its protection exists for a VM's guest memory only (guest_memfd): in
   * key-exhaustion each process is then a VMM whose VM needs its own key.
   */
  readonly vmOnly: boolean = false;

  /** Install the kernel side if the kernel was configured with it. */
  install(k: Kernel): void {
    if (this.feature !== null && k.features[this.feature]) this.installKernel(k);
  }

  protected abstract installKernel(k: Kernel): void;

  /** Get len bytes (page multiple) of encrypted memory, as the program would. */
  abstract allocate(env: UserEnv, len: number, key: KeySpec, careful: boolean): AllocResult;

  /**
   * Stack encryption on an existing shared mapping [addr, addr+len) of fd
   * (Device DAX). 0, or -errno; null when the design has no call that takes
   * an existing mapping at all (it hands out its own memory only).
   */
  abstract encryptMapping(env: UserEnv, addr: number, len: number, fd: number, key: KeySpec): number | null;

  /**
   * The KVM VM type a VMM creates for a guest with this design on hardware
   * offering `cc` (HardwareProfile.confidentialVm). The designs that give a
   * process memory make an SEV guest where the hardware has SEV (QEMU's
   * sev-guest object: KVM_X86_SEV_VM, its RAM pinned) and a plain VM
   * elsewhere: a TDX guest needs guest_memfd for its private memory.
   */
  vmType(cc: HardwareProfile['confidentialVm']): number {
    return cc === 'sev' ? KVM_X86_SEV_VM : KVM_X86_DEFAULT_VM;
  }

  /**
   * Give the VM `len` bytes of RAM at guest physical 0, as QEMU does with a
   * RAM block from this design: the design's careful helper allocates it
   * (encrypted where the design does that), kvm_set_user_memory_region()
   * makes it memslot 0, and for an SEV or SEV-ES guest sev_ram_block_added()
   * registers it with KVM_MEMORY_ENCRYPT_REG_REGION, which pins it. A failure
   * ends QEMU (it exits): -errno.
   */
  guestRam(env: UserEnv, vmfd: number, type: number, len: number, key: KeySpec): GuestRam | { readonly failed: number } {
    const a = this.allocate(env, len, key, true);
    if ('failed' in a) return a;
    const r = env.sys(NR.ioctl, vmfd, KVM_SET_USER_MEMORY_REGION2, [0, 0, 0, len, a.addr, 0, 0]);
    if (r < 0) return { failed: r };
    if (type === KVM_X86_SEV_VM || type === KVM_X86_SEV_ES_VM) {
      const p = env.sys(NR.ioctl, vmfd, KVM_MEMORY_ENCRYPT_REG_REGION, [a.addr, len]);
      if (p < 0) return { failed: p };
    }
    return { vmfd, type, len, hva: a.addr, gmem: -1, alloc: a };
  }

  /**
   * munmap and close what allocate() returned, and drop the key: a program
   * that allocates again and again must not use up the KeyIDs (63 on MKTME).
   */
  release(env: UserEnv, a: Allocation): void {
    if (a.addr >= 0) env.sys(NR.munmap, a.addr, a.len);
    if (a.fd >= 0) env.sys(NR.close, a.fd);
    if (a.serial > 0) env.sys(NR.keyctl, KEYCTL_INVALIDATE, a.serial);
  }
}

/** add_key for the program; careful programs check it. */
export function addKey(env: UserEnv, key: KeySpec): number {
  return env.sys(NR.add_key, 'mktme', key.description, key.payload);
}

/** Plain anonymous memory. */
export function plainAnon(env: UserEnv, len: number, prot: number): number {
  return env.sys(NR.mmap, 0, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

/**
 * Every careful helper's fallback: plain read-write anonymous memory, with
 * the serial the program got and the -errno that made it fall back.
 */
export function fallbackAlloc(env: UserEnv, len: number, serial: number, errno: number): AllocResult {
  const addr = plainAnon(env, len, PROT_READ | PROT_WRITE);
  return addr < 0 ? { failed: addr } : { addr, len, fd: -1, serial, fallback: true, errno };
}
