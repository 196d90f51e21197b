// What Linux merged for confidential VMs instead of a userspace key API:
// KVM's guest_memfd (6.8). fd = ioctl(vm, KVM_CREATE_GUEST_MEMFD, {size,
// flags}); the fd backs a memslot's private pages, which the guest gets
// zeroed, under its own key (the SEV-SNP ASID, the TDX HKID), and which host
// userspace never maps (mmap without GUEST_MEMFD_FLAG_MMAP: ENODEV; a fault on
// a private page: SIGBUS). The memory is unevictable and unmovable, and has
// no file or DAX backing. Since 6.18 a VM without private memory may ask for
// MMAP|INIT_SHARED and let its VMM map the whole file (QEMU's
// memory-backend-memfd,guest-memfd=on): shared memory, in plaintext.
//
// The helper is what QEMU does (docs/system/guest-memfd.rst, target/i386/
// sev.c, kvm_convert_memory): an SNP or TDX guest's RAM is private memory
// from a guest_memfd plus shared memory from an ordinary backend (anonymous
// here), all of it private to start with; a page the guest converts is
// punched out of the side it leaves, so RAM is not held twice.
//
// A process that is not a VMM gets nothing private from it: its helper makes a
// plain VM's shared guest_memfd and maps that, so its memory is unswappable
// and unmovable plaintext. Without guest_memfd (a kernel before 6.8) the VM
// ioctl is ENOTTY and a careful program falls back to anonymous memory.
import type { HardwareProfile } from '../hardware/profiles.js';
import type { Kernel } from '../kernel/kernel.js';
import {
  GUEST_MEMFD_FLAG_INIT_SHARED,
  GUEST_MEMFD_FLAG_MMAP,
  KVM_CREATE_GUEST_MEMFD,
  KVM_CREATE_VM,
  KVM_MEM_GUEST_MEMFD,
  KVM_MEMORY_ATTRIBUTE_PRIVATE,
  KVM_PATH,
  KVM_SET_MEMORY_ATTRIBUTES,
  KVM_SET_USER_MEMORY_REGION2,
  KVM_X86_DEFAULT_VM,
  KVM_X86_SNP_VM,
  KVM_X86_TDX_VM,
  hasPrivateMem,
} from '../kernel/kvm.js';
import { AT_FDCWD, NR } from '../kernel/syscalls.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from '../kernel/uapi.js';
import { EncryptionDesign, fallbackAlloc, type AllocResult, type GuestRam, type KeySpec, type UserEnv } from './contract.js';

const O_RDWR = 2;
const RW = PROT_READ | PROT_WRITE;

export class GuestMemfd extends EncryptionDesign {
  readonly name = 'guest-memfd' as const;
  readonly feature = 'guest_memfd' as const;
  readonly summary = 'KVM guest_memfd (6.8; host mmap 6.18), as merged for confidential VMs';
  override readonly vmOnly = true;

  protected installKernel(_k: Kernel): void {
    // part of KVM (kernel/kvm.ts): the kernel's guest_memfd feature turns it on
  }

  /** SEV-SNP or TDX where the hardware has it: their private memory comes from guest_memfd. */
  override vmType(cc: HardwareProfile['confidentialVm']): number {
    return cc === 'sev' ? KVM_X86_SNP_VM : cc === 'tdx' ? KVM_X86_TDX_VM : KVM_X86_DEFAULT_VM;
  }

  allocate(env: UserEnv, len: number, _key: KeySpec, careful: boolean): AllocResult {
    const kvm = env.sys(NR.openat, AT_FDCWD, KVM_PATH, O_RDWR);
    if (kvm < 0 && careful) return fallbackAlloc(env, len, 0, kvm);
    const vm = env.sys(NR.ioctl, kvm, KVM_CREATE_VM, KVM_X86_DEFAULT_VM);
    env.sys(NR.close, kvm);
    if (vm < 0 && careful) return fallbackAlloc(env, len, 0, vm);
    const fd = env.sys(NR.ioctl, vm, KVM_CREATE_GUEST_MEMFD, [len, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED]);
    env.sys(NR.close, vm); // the guest_memfd holds the VM
    if (fd < 0 && careful) return fallbackAlloc(env, len, 0, fd);
    const addr = env.sys(NR.mmap, 0, len, RW, MAP_SHARED, fd, 0);
    if (addr < 0 && careful) {
      env.sys(NR.close, fd);
      return { failed: addr };
    }
    const errno = kvm < 0 ? kvm : vm < 0 ? vm : fd < 0 ? fd : addr < 0 ? addr : 0;
    return { addr, len, fd, serial: 0, fallback: false, errno };
  }

  /** guest_memfd has no file or DAX backing: nothing to stack on another mapping. */
  encryptMapping(): null {
    return null;
  }

  /**
   * QEMU's RAM_GUEST_MEMFD block. An SNP or TDX guest: shared side from
   * anonymous memory, private side from a guest_memfd of the same size, one
   * memslot with both, every page private (kvm_set_memory_attributes_private).
   * A VM without private memory: a guest_memfd with MMAP|INIT_SHARED that
   * QEMU maps and uses as the RAM (the slot is then guest_memfd-only).
   */
  override guestRam(env: UserEnv, vmfd: number, type: number, len: number, _key: KeySpec): GuestRam | { readonly failed: number } {
    const priv = hasPrivateMem(type);
    const flags = priv ? 0 : GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED;
    const gmem = env.sys(NR.ioctl, vmfd, KVM_CREATE_GUEST_MEMFD, [len, flags]);
    if (gmem < 0) return { failed: gmem };
    const hva = priv
      ? env.sys(NR.mmap, 0, len, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
      : env.sys(NR.mmap, 0, len, RW, MAP_SHARED, gmem, 0);
    if (hva < 0) return { failed: hva };
    const r = env.sys(NR.ioctl, vmfd, KVM_SET_USER_MEMORY_REGION2, [0, KVM_MEM_GUEST_MEMFD, 0, len, hva, 0, gmem]);
    if (r < 0) return { failed: r };
    if (priv) {
      const a = env.sys(NR.ioctl, vmfd, KVM_SET_MEMORY_ATTRIBUTES, [0, len, KVM_MEMORY_ATTRIBUTE_PRIVATE, 0]);
      if (a < 0) return { failed: a };
    }
    return { vmfd, type, len, hva, gmem, alloc: null };
  }
}
