// KVM, as far as a guest's memory goes (virt/kvm/kvm_main.c,
// virt/kvm/guest_memfd.c, arch/x86/kvm): /dev/kvm and KVM_CREATE_VM; a VM's
// memslots (KVM_SET_USER_MEMORY_REGION2), which take guest RAM from an address
// in the VMM's own address space or from a guest_memfd; memory attributes
// (KVM_SET_MEMORY_ATTRIBUTES: private or shared per guest page); guest_memfd
// files (KVM_CREATE_GUEST_MEMFD, 6.8; host mmap with GUEST_MEMFD_FLAG_MMAP,
// 6.18); SEV's pinning ioctl (KVM_MEMORY_ENCRYPT_REG_REGION); and the VM's
// key, an SEV ASID or a TDX HKID, allocated by KVM_MEMORY_ENCRYPT_OP (here a
// KeyID of the memory-encryption engine, from the same pool as MKTME keys).
//
// The guest's physical address space is an address space of its own, as the
// EPT/NPT is: a task whose page table maps guest physical addresses. Guest
// CPUs run in it; their faults are KVM's page faults (kvmFault), which find
// the memslot, then the page: from the guest_memfd for a private page, or by
// get_user_pages on the VMM's mapping for a shared one (an mmu notifier on
// the VMM's mm zaps what the VMM unmaps, swaps or moves). A guest page is
// mapped with the VM's key where the guest's memory is private (SEV: all of
// it but what the guest shares; SNP and TDX: the pages with the PRIVATE
// attribute), else with the KeyID of the VMM's own mapping.
//
// Sources, check order and errnos: ../shared/research-qemu-guestmemfd.md §1,
// §2 and a reading of linux-6.18.2 (virt/kvm/guest_memfd.c kvm_gmem_create,
// kvm_gmem_mmap, kvm_gmem_fault_user_mapping, kvm_gmem_fallocate,
// kvm_gmem_bind, kvm_gmem_migrate_folio; kvm_main.c kvm_set_memory_region,
// kvm_vm_ioctl_set_mem_attributes; svm/sev.c sev_mem_enc_register_region,
// sev_pin_memory, sev_asid_new; vmx/tdx.c __tdx_td_init; mm/gup.c
// check_vma_flags).
import { PAGE_SIZE, asPfn } from '../hardware/types.js';
import { E } from './errno.js';
import { type Device, type FileOps, type Kernel, type MmStruct, OpenFile, type Task } from './kernel.js';
import type { MktmeKey } from './keys.js';
import { allocFilePage, freeFrames, handleMmFault, takeFilePages, zapRange } from './memory.js';
import { mmWriteLock, mmWriteUnlock } from './fastfault.js';
import { PG_INACCESSIBLE } from './page_alloc.js';
import { PTE_DIRTY, PTE_PRESENT, PTE_WRITE, mkPte, ptePfn, pteKeyid } from './pgtable.js';
import type { SysArg } from './syscalls.js';
import { flushTlbMm } from './tlb.js';
import { CAP_IPC_LOCK, TASK_SIZE } from './uapi.js';
import { VM_MAYSHARE, VM_READ, VM_SHARED, VM_WRITE } from './vma.js';

export const KVM_PATH = '/dev/kvm';

// include/uapi/linux/kvm.h (KVMIO 0xAE), values as <linux/ioctl.h> builds them
export const KVM_CREATE_VM = 0xae01;
export const KVM_CREATE_GUEST_MEMFD = 0xc040aed4;
export const KVM_SET_USER_MEMORY_REGION2 = 0x40a0ae49;
export const KVM_SET_MEMORY_ATTRIBUTES = 0x4020aed2;
export const KVM_MEMORY_ENCRYPT_OP = 0xc008aeba;
export const KVM_MEMORY_ENCRYPT_REG_REGION = 0x8010aebb;
export const KVM_MEMORY_ENCRYPT_UNREG_REGION = 0x8010aebc;

// arch/x86/include/uapi/asm/kvm.h
export const KVM_X86_DEFAULT_VM = 0;
export const KVM_X86_SW_PROTECTED_VM = 1;
export const KVM_X86_SEV_VM = 2;
export const KVM_X86_SEV_ES_VM = 3;
export const KVM_X86_SNP_VM = 4;
export const KVM_X86_TDX_VM = 5;

/** KVM_MEMORY_ENCRYPT_OP commands that make a VM's key: KVM_SEV_INIT2 (sev_cmd_id 22) and KVM_TDX_INIT_VM (kvm_tdx_cmd_id 1). */
export const KVM_SEV_INIT2 = 22;
export const KVM_TDX_INIT_VM = 1;

export const GUEST_MEMFD_FLAG_MMAP = 1 << 0;
export const GUEST_MEMFD_FLAG_INIT_SHARED = 1 << 1;
export const KVM_MEM_LOG_DIRTY_PAGES = 1 << 0;
export const KVM_MEM_READONLY = 1 << 1;
export const KVM_MEM_GUEST_MEMFD = 1 << 2;
export const KVM_MEMORY_ATTRIBUTE_PRIVATE = 1 << 3;
/** x86: SHRT_MAX - 3 internal slots */
export const KVM_USER_MEM_SLOTS = 32764;
export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;

const PAGE = PAGE_SIZE;
const aligned = (x: number): boolean => x % PAGE === 0;
/** A u64 struct field as the model holds it: a safe non-negative integer, else NaN (every check on it fails). */
const u64 = (x: unknown): number => (typeof x === 'number' && Number.isSafeInteger(x) && x >= 0 ? x : typeof x === 'bigint' && x >= 0n && x <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : NaN);
/** A struct argument copied from user memory: the fields, or null (EFAULT) when the pointer is not a struct. */
const struct = (arg: SysArg): readonly number[] | null => (Array.isArray(arg) ? (arg as readonly number[]) : null);

/** The confidential-VM types the hardware profile offers, beside KVM_X86_DEFAULT_VM. */
function supportedTypes(k: Kernel): readonly number[] {
  switch (k.machine.profile.confidentialVm) {
    case 'sev':
      return [KVM_X86_SEV_VM, KVM_X86_SEV_ES_VM, KVM_X86_SNP_VM];
    case 'tdx':
      return [KVM_X86_TDX_VM];
    default:
      // KVM_X86_SW_PROTECTED_VM needs CONFIG_KVM_SW_PROTECTED_VM, "only for
      // development and testing" (api.rst): not in this kernel
      return [];
  }
}

/** kvm_arch_has_private_mem: SW_PROTECTED, SNP and TDX VMs (svm_vm_init, tdx_vm_init). */
export const hasPrivateMem = (type: number): boolean =>
  type === KVM_X86_SW_PROTECTED_VM || type === KVM_X86_SNP_VM || type === KVM_X86_TDX_VM;
/** A VM whose memory the host cannot read: SEV (all but what the guest shares) and the private-memory types. */
export const isConfidential = (type: number): boolean => type !== KVM_X86_DEFAULT_VM;

export interface Memslot {
  readonly id: number;
  readonly flags: number;
  readonly gpa: number;
  readonly pages: number;
  readonly uaddr: number;
  /** the bound guest_memfd (null: none, or closed since) and the page offset in it */
  gmem: OpenFile | null;
  readonly gmemPgoff: number;
  /** KVM_MEMSLOT_GMEM_ONLY: the guest_memfd was made with MMAP, every fault goes to it */
  readonly gmemOnly: boolean;
}

interface Region {
  readonly addr: number;
  readonly size: number;
  readonly pfns: number[];
}

/** struct kvm */
export class Vm {
  readonly slots: Memslot[] = [];
  /** gfns with KVM_MEMORY_ATTRIBUTE_PRIVATE (SNP, TDX) */
  readonly privateGfns = new Set<number>();
  /** SEV: gfns the guest maps with the C-bit clear (set_memory_decrypted), i.e. shared */
  readonly guestShared = new Set<number>();
  /** the ASID or HKID, once KVM_MEMORY_ENCRYPT_OP made it */
  key: MktmeKey | null = null;
  /** SEV: pages pinned by KVM_MEMORY_ENCRYPT_REG_REGION (sev->pages_locked) */
  pagesLocked = 0;
  readonly regions: Region[] = [];
  /** guest page -> the VMM page mapped there (for the mmu notifier) */
  readonly rmap = new Map<number, number>();
  /** the VM fd and every guest_memfd hold one (kvm_get_kvm) */
  refs = 1;
  destroyed = false;
  /** registered on the VMM's mm (mmu_notifier_register) */
  readonly notifier: (start: number, end: number) => void;
  constructor(
    readonly k: Kernel,
    readonly type: number,
    /** the VMM (QEMU) that made it; VM ioctls from another mm get EIO */
    readonly owner: Task,
  ) {
    this.notifier = (start, end) => this.invalidateHva(start, end);
  }

  private stage2: Task | null = null;

  /**
   * The guest physical address space (stage 2): a task whose page table maps
   * guest physical addresses and whose faults are KVM's. Guest CPUs run in
   * it. Made on first use, as KVM makes the root on the first vCPU's entry.
   */
  get guest(): Task {
    if (this.stage2 === null) {
      const t = this.k.spawn({ memLimit: Infinity, node: this.owner.mm.node });
      t.faultHandler = (k, task, gpa, write) => kvmFault(k, this, task, gpa, write);
      this.stage2 = t;
    }
    return this.stage2;
  }

  /** The VM is gone: its address space too. */
  exitGuest(): void {
    if (this.stage2 !== null && !this.stage2.exited) this.k.exit(this.stage2);
  }

  /** The guest's PTE at gpa (0: not mapped). */
  guestPte(gpa: number): number {
    return this.stage2 === null ? 0 : this.k.pool.get(this.stage2.mm.pgd, gpa);
  }

  slotOf(gpa: number): Memslot | null {
    for (const s of this.slots) if (gpa >= s.gpa && gpa < s.gpa + s.pages * PAGE) return s;
    return null;
  }

  /** Is guest page gpa private (mapped with the VM's key)? */
  isPrivate(gpa: number): boolean {
    const gfn = Math.floor(gpa / PAGE);
    if (this.type === KVM_X86_SEV_VM || this.type === KVM_X86_SEV_ES_VM) return !this.guestShared.has(gfn);
    return hasPrivateMem(this.type) && this.privateGfns.has(gfn);
  }

  /**
   * Zap the guest's mappings of [gpa, gpa + pages·4 KiB) and shoot down the
   * guest CPUs' TLBs (kvm_mmu_unmap_gfn_range + flush). Pages zapped.
   */
  zapGuest(gpa: number, pages: number): number {
    const k = this.k;
    if (this.stage2 === null) return 0;
    const pgd = this.stage2.mm.pgd;
    let zapped = 0;
    const one = (g: number): void => {
      const i = k.pool.pteIndex(pgd, g);
      if (i < 0) return;
      if (Atomics.exchange(k.pool.words, i, 0) !== 0) zapped++;
      this.rmap.delete(g);
    };
    if (pages > this.rmap.size * 4 + 64) {
      // a large range (a whole slot, exit): walk what is mapped instead
      const end = gpa + pages * PAGE;
      for (const g of [...this.rmap.keys()]) if (g >= gpa && g < end) one(g);
      // pages mapped from a guest_memfd have no VMM page, so no rmap entry
      for (const s of this.slots) {
        if (s.gmem === null) continue;
        const lo = Math.max(gpa, s.gpa), hi = Math.min(end, s.gpa + s.pages * PAGE);
        for (let g = lo; g < hi; g += PAGE) one(g);
      }
    } else for (let p = 0; p < pages; p++) one(gpa + p * PAGE);
    if (zapped > 0) flushTlbMm(k, this.stage2.mm);
    return zapped;
  }

  /** The mmu notifier on the VMM's mm: what it unmaps, swaps, moves or write-protects leaves the guest too. */
  invalidateHva(start: number, end: number): void {
    if (this.rmap.size === 0) return;
    const gpas: number[] = [];
    for (const [g, hva] of this.rmap) if (hva >= start && hva < end) gpas.push(g);
    for (const g of gpas) this.zapGuest(g, 1);
  }
}

const vmOf = new WeakMap<OpenFile, Vm>();

interface Gmem {
  readonly vm: Vm;
  readonly flags: number;
}
const gmemOf = new WeakMap<OpenFile, Gmem>();

function putVm(vm: Vm): void {
  if (--vm.refs > 0) return;
  const k = vm.k;
  vm.destroyed = true;
  // unpin SEV's regions (sev_vm_destroy -> __unregister_enc_region_locked)
  for (const r of vm.regions) unpinRegion(k, vm, r);
  vm.regions.length = 0;
  vm.owner.mm.notifiers.delete(vm.notifier);
  vm.zapGuest(0, Number.MAX_SAFE_INTEGER / PAGE);
  vm.exitGuest();
  vm.key?.put();
  vm.key = null;
}

const vmOps: FileOps = {
  ioctl(k, file, cmd, arg, task) {
    const vm = vmOf.get(file)!;
    if (vm.owner.mm !== task.mm || vm.destroyed) return -E.EIO;
    switch (cmd) {
      case KVM_CREATE_GUEST_MEMFD:
        return createGuestMemfd(k, vm, arg, task);
      case KVM_SET_USER_MEMORY_REGION2:
        return setMemoryRegion(k, vm, arg, task);
      case KVM_SET_MEMORY_ATTRIBUTES:
        return setMemoryAttributes(vm, arg);
      case KVM_MEMORY_ENCRYPT_OP:
        return encryptOp(k, vm, arg);
      case KVM_MEMORY_ENCRYPT_REG_REGION:
        return registerRegion(k, vm, arg, task);
      case KVM_MEMORY_ENCRYPT_UNREG_REGION:
        return unregisterRegion(k, vm, arg);
      default:
        return -E.ENOTTY;
    }
  },
  mmap: () => -E.ENODEV, // an anon-inode file with no mmap
  fault: () => -E.EFAULT,
  release(_k, file) {
    putVm(vmOf.get(file)!);
  },
};

const kvmDevOps: FileOps = {
  ioctl(k, _file, cmd, arg, task) {
    if (cmd !== KVM_CREATE_VM) return -E.ENOTTY;
    // kvm_dev_ioctl_create_vm: arg is the type; kvm_is_vm_type_supported
    const type = u64(arg);
    if (type !== KVM_X86_DEFAULT_VM && !supportedTypes(k).includes(type)) return -E.EINVAL;
    const vm = new Vm(k, type, task);
    task.mm.notifiers.add(vm.notifier);
    const f = new OpenFile(k, 'anon_inode:kvm-vm', '00:0e', k.newIno(), vmOps);
    vmOf.set(f, vm);
    return task.installFd(f);
  },
  mmap: () => -E.ENODEV,
  fault: () => -E.EFAULT,
  release() {},
};

export const kvmDevice: Device = {
  path: KVM_PATH,
  open: (k) => new OpenFile(k, KVM_PATH, '0a:e8', k.newIno(), kvmDevOps),
};

/** The VM of a VM fd (tests, workloads that look at the guest). */
export function vmOfFd(task: Task, fd: number): Vm | null {
  const f = task.files.get(fd);
  return f === undefined ? null : (vmOf.get(f) ?? null);
}

// ---- guest_memfd ---------------------------------------------------------

/** kvm_gmem_get_supported_flags: MMAP always; INIT_SHARED where the VM has no private memory (x86). */
const gmemFlags = (vm: Vm): number => GUEST_MEMFD_FLAG_MMAP | (hasPrivateMem(vm.type) ? 0 : GUEST_MEMFD_FLAG_INIT_SHARED);

function createGuestMemfd(k: Kernel, vm: Vm, arg: SysArg, task: Task): number {
  if (!k.features.guest_memfd) return -E.ENOTTY; // a kernel before 6.8: no such VM ioctl
  const a = struct(arg);
  if (a === null) return -E.EFAULT;
  const size = u64(a[0] ?? 0), flags = u64(a[1] ?? 0);
  // kvm_gmem_create; reserved[] is not checked
  if (!(flags < 2 ** 32) || (flags & ~gmemFlags(vm)) !== 0) return -E.EINVAL;
  // size is a loff_t: a u64 above 2^63 is negative
  if (!(size > 0) || !aligned(size)) return -E.EINVAL;
  const f = new OpenFile(k, 'anon_inode:[kvm-gmem]', '00:0e', k.newIno(), gmemOps);
  f.size = size;
  gmemOf.set(f, { vm, flags });
  vm.refs++;
  return task.installFd(f);
}

/** A guest_memfd page (kvm_gmem_get_folio + prepare): allocated and zeroed on first use, through the VM's key where private. */
function gmemPage(k: Kernel, file: OpenFile, pgoff: number, key: MktmeKey | null, charge: Task): number {
  const have = file.pages.get(pgoff);
  if (have !== undefined) return have;
  // charged to the VMM's memory cgroup; unevictable (AS_UNEVICTABLE: never on
  // an LRU here) and unmovable (kvm_gmem_migrate_folio -> EINVAL)
  const pfn = allocFilePage(k, file, pgoff, key, charge.mm);
  if (pfn >= 0) k.alloc.flags[pfn] |= PG_INACCESSIBLE;
  return pfn;
}

const gmemOps: FileOps = {
  mmap(_k, file, vma) {
    const g = gmemOf.get(file)!;
    if (!(g.flags & GUEST_MEMFD_FLAG_MMAP)) return -E.ENODEV;
    if ((vma.flags & (VM_SHARED | VM_MAYSHARE)) !== (VM_SHARED | VM_MAYSHARE)) return -E.EINVAL;
    return 0;
  },
  fault(k, file, _vma, pgoff, task) {
    const g = gmemOf.get(file)!;
    // kvm_gmem_fault_user_mapping: SIGBUS past the end, and on memory that is
    // private (no INIT_SHARED)
    if (pgoff * PAGE >= file.size || !(g.flags & GUEST_MEMFD_FLAG_INIT_SHARED)) return -E.EFAULT;
    return gmemPage(k, file, pgoff, null, task);
  },
  // what fault does for a page it does not have, on the faulting CPU
  fastFault(file) {
    const g = gmemOf.get(file)!;
    return g.flags & GUEST_MEMFD_FLAG_INIT_SHARED ? { flags: PG_INACCESSIBLE, pages: Math.ceil(file.size / PAGE) } : null;
  },
  ftruncate: () => -E.EINVAL, // kvm_gmem_setattr: the size is fixed at creation
  fallocate(k, file, mode, offset, len, task) {
    const g = gmemOf.get(file)!;
    if (!(mode & FALLOC_FL_KEEP_SIZE)) return -E.EOPNOTSUPP;
    if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE)) return -E.EOPNOTSUPP;
    if (!aligned(offset) || !aligned(len)) return -E.EINVAL;
    if (mode & FALLOC_FL_PUNCH_HOLE) {
      punchHole(k, g.vm, file, offset / PAGE, len / PAGE);
      return 0;
    }
    if (offset + len > file.size) return -E.EINVAL;
    for (let p = offset / PAGE; p < (offset + len) / PAGE; p++) {
      const pfn = gmemPage(k, file, p, null, task);
      if (pfn < 0) return pfn;
    }
    return 0;
  },
  release(k, file) {
    const g = gmemOf.get(file)!;
    // kvm_gmem_release: unbind every memslot, zap what the guest mapped from
    // it; the pages go with the inode (freed here: the model has no inode
    // that outlives its last file)
    for (const s of g.vm.slots)
      if (s.gmem === file) {
        g.vm.zapGuest(s.gpa, s.pages);
        s.gmem = null;
      }
    punchHole(k, g.vm, file, 0, Math.ceil(file.size / PAGE));
    putVm(g.vm);
  },
};

/**
 * kvm_gmem_punch_hole: zap the guest's mappings of the range, unmap it from
 * every process that mapped the file, free the pages; a later fault gets a
 * fresh zeroed page.
 */
function punchHole(k: Kernel, vm: Vm, file: OpenFile, first: number, n: number): void {
  // worker CPUs may fault the file's pages themselves through its mappings
  // (pagecache.ts): keep them out of every mm that maps it while pages go
  const mms = new Set<MmStruct>();
  for (const t of k.tasks.values()) if (t.mm.vmas.vmas.some((v) => v.file === file)) mms.add(t.mm);
  for (const mm of mms) mmWriteLock(k, mm);
  try {
    punchHoleLocked(k, vm, file, first, n);
  } finally {
    for (const mm of mms) mmWriteUnlock(k, mm);
  }
}

function punchHoleLocked(k: Kernel, vm: Vm, file: OpenFile, first: number, n: number): void {
  const last = first + n;
  for (const s of vm.slots) {
    if (s.gmem !== file) continue;
    const lo = Math.max(first, s.gmemPgoff), hi = Math.min(last, s.gmemPgoff + s.pages);
    if (lo < hi) vm.zapGuest(s.gpa + (lo - s.gmemPgoff) * PAGE, hi - lo);
  }
  // truncate_inode_pages_range -> unmap_mapping_range (i_mmap)
  for (const t of k.tasks.values())
    for (const v of t.mm.vmas.vmas) {
      if (v.file !== file) continue;
      const lo = Math.max(first, v.pgoff), hi = Math.min(last, v.pgoff + v.pages);
      if (lo < hi) zapRange(k, t.mm, v.start + (lo - v.pgoff) * PAGE, v.start + (hi - v.pgoff) * PAGE);
    }
  freeFileRange(k, file, first, last);
}

function freeFileRange(k: Kernel, file: OpenFile, first: number, last: number): void {
  const { frames, n } = takeFilePages(file, first, last);
  if (file.charged !== null) file.charged.filePages -= n;
  freeFrames(k, frames, n);
}

// ---- memslots --------------------------------------------------------------

/**
 * kvm_mmu_max_gfn (arch/x86/kvm/mmu.h), checked by kvm_arch_prepare_memory_region
 * (x86.c) for a new or moved memslot: its last gfn is below the host's
 * MAXPHYADDR. Real hosts report 46 to 52 bits (CPUID 0x80000008,
 * kvm_get_host_maxphyaddr); the model's host has 47, all its stage-2 table
 * holds (32768 top entries of 4 GiB, pgtable.ts).
 */
const MAX_GFN = 2 ** 47 / PAGE - 1;
const beyondMaxGfn = (gpa: number, pages: number): boolean => gpa / PAGE + pages - 1 > MAX_GFN;

/** kvm_check_memslot_overlap: [gpa, gpa + size) meets a slot of vm other than `except`. */
function overlapsSlot(vm: Vm, gpa: number, size: number, except: object | null): boolean {
  for (const s of vm.slots) if (s !== except && gpa < s.gpa + s.pages * PAGE && s.gpa < gpa + size) return true;
  return false;
}

function setMemoryRegion(k: Kernel, vm: Vm, arg: SysArg, task: Task): number {
  const a = struct(arg);
  if (a === null) return -E.EFAULT;
  // struct kvm_userspace_memory_region2 {u32 slot, flags; u64 guest_phys_addr,
  // memory_size, userspace_addr, guest_memfd_offset; u32 guest_memfd}
  const slotArg = u64(a[0] ?? 0) >>> 0, flags = u64(a[1] ?? 0) >>> 0;
  const gpa = u64(a[2] ?? 0), size = u64(a[3] ?? 0), uaddr = u64(a[4] ?? 0), off = u64(a[5] ?? 0);
  const gfd = u64(a[6] ?? 0) >>> 0;
  const id = slotArg & 0xffff, asId = slotArg >>> 16;
  if (id >= KVM_USER_MEM_SLOTS) return -E.EINVAL;
  // check_memory_region_flags
  let valid = KVM_MEM_LOG_DIRTY_PAGES | (k.features.guest_memfd ? KVM_MEM_GUEST_MEMFD : 0);
  if (flags & KVM_MEM_GUEST_MEMFD) valid &= ~KVM_MEM_LOG_DIRTY_PAGES;
  else valid |= KVM_MEM_READONLY;
  if (flags & ~valid) return -E.EINVAL;
  const gmemSlot = (flags & KVM_MEM_GUEST_MEMFD) !== 0;
  if (!(size >= 0) || !aligned(size) || !(gpa >= 0) || !aligned(gpa)) return -E.EINVAL;
  // access_ok: the end at most USER_PTR_MAX, which is TASK_SIZE_MAX (x86-64 __access_ok)
  if (!(uaddr >= 0) || !aligned(uaddr) || uaddr + size > TASK_SIZE) return -E.EINVAL;
  // (u64 fields the model holds are below 2^53: offset + size and gpa + size
  // cannot wrap, as the kernel checks they do not)
  if (gmemSlot && (!(off >= 0) || !aligned(off))) return -E.EINVAL;
  if (asId >= (hasPrivateMem(vm.type) ? 1 : 2)) return -E.EINVAL;
  const pages = size / PAGE;
  if (pages > 2 ** 31 - 1) return -E.EINVAL;
  if (asId !== 0) return -E.EINVAL; // the SMM address space: not modelled
  const at = vm.slots.findIndex((s) => s.id === id);
  const old = at < 0 ? null : vm.slots[at];
  if (pages === 0) {
    if (old === null) return -E.EINVAL;
    vm.zapGuest(old.gpa, old.pages);
    vm.slots.splice(at, 1);
    return 0;
  }
  if (old !== null) {
    if (gmemSlot) return -E.EINVAL; // guest_memfd slots can only be deleted
    if (uaddr !== old.uaddr || pages !== old.pages || ((flags ^ old.flags) & KVM_MEM_READONLY)) return -E.EINVAL;
    if (gpa === old.gpa && flags === old.flags) return 0;
    // KVM_MR_MOVE: kvm_check_memslot_overlap with the other slots, as for a new one (kvm_set_memory_region)
    if (gpa !== old.gpa)
      if (overlapsSlot(vm, gpa, size, old)) return -E.EEXIST;
    vm.zapGuest(old.gpa, old.pages);
    // KVM_MR_MOVE: kvm_set_memslot zaps the old slot (kvm_invalidate_memslot)
    // before kvm_arch_prepare_memory_region checks the new place
    if (gpa !== old.gpa && beyondMaxGfn(gpa, pages)) return -E.EINVAL;
    vm.slots[at] = { ...old, gpa, flags };
    return 0;
  }
  if (overlapsSlot(vm, gpa, size, null)) return -E.EEXIST;
  let gmem: OpenFile | null = null, gmemOnly = false;
  if (gmemSlot) {
    // kvm_gmem_bind
    const f = task.files.get(gfd);
    if (f === undefined) return -E.EBADF;
    const g = gmemOf.get(f);
    if (g === undefined || g.vm !== vm) return -E.EINVAL;
    if (off + size > f.size) return -E.EINVAL;
    for (const s of vm.slots)
      if (s.gmem === f && off / PAGE < s.gmemPgoff + s.pages && s.gmemPgoff < off / PAGE + pages) return -E.EINVAL;
    gmem = f;
    gmemOnly = (g.flags & GUEST_MEMFD_FLAG_MMAP) !== 0;
  }
  if (beyondMaxGfn(gpa, pages)) return -E.EINVAL; // kvm_arch_prepare_memory_region (KVM_MR_CREATE)
  vm.slots.push({ id, flags, gpa, pages, uaddr, gmem, gmemPgoff: off / PAGE, gmemOnly });
  return 0;
}

// ---- memory attributes -----------------------------------------------------

function setMemoryAttributes(vm: Vm, arg: SysArg): number {
  const k = vm.k;
  if (k.machine.profile.confidentialVm === 'none') return -E.ENOTTY; // no KVM_GENERIC_MEMORY_ATTRIBUTES
  const a = struct(arg);
  if (a === null) return -E.EFAULT;
  const address = u64(a[0] ?? 0), size = u64(a[1] ?? 0), attrs = u64(a[2] ?? 0), flags = u64(a[3] ?? 0);
  const supported = hasPrivateMem(vm.type) ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0;
  if (flags !== 0) return -E.EINVAL;
  if (!(attrs >= 0) || attrs >= 2 ** 32 || (attrs & ~supported) !== 0) return -E.EINVAL;
  if (!(size > 0) || !(address >= 0)) return -E.EINVAL; // (no wrap below 2^53)
  if (!aligned(address) || !aligned(size)) return -E.EINVAL;
  const priv = attrs === KVM_MEMORY_ATTRIBUTE_PRIVATE;
  const first = address / PAGE, n = size / PAGE;
  let changed = false;
  for (let g = first; g < first + n && !changed; g++) changed = vm.privateGfns.has(g) !== priv;
  if (!changed) return 0; // already so: no zap
  // kvm_arch_pre_set_memory_attributes: zap the old kind's mappings, flush
  for (let g = first; g < first + n; g++) {
    if (vm.privateGfns.has(g) === priv) continue;
    convertGfn(vm, g);
    if (priv) vm.privateGfns.add(g);
    else vm.privateGfns.delete(g);
  }
  return 0;
}

// ---- the VM's key: SEV ASID, TDX HKID --------------------------------------

function encryptOp(k: Kernel, vm: Vm, arg: SysArg): number {
  const cc = k.machine.profile.confidentialVm;
  if (cc === 'none') return -E.ENOTTY; // no mem_enc_ioctl
  // vt_mem_enc_ioctl: not a TD, before tdx_vm_ioctl copies the struct
  if (cc === 'tdx' && vm.type !== KVM_X86_TDX_VM) return -E.ENOTTY;
  const a = struct(arg);
  if (a === null) return -E.EFAULT;
  const id = u64(a[0] ?? -1);
  if (cc === 'sev') {
    if (id !== KVM_SEV_INIT2) return -E.EINVAL;
    // __sev_guest_init: only SEV types with need_init; once
    if (!isConfidential(vm.type) || vm.key !== null) return -E.EINVAL;
    // sev_asid_new: none free after one recycle -> EBUSY
    const key = k.keys.allocVmKey();
    if (key === null) return -E.EBUSY;
    vm.key = key;
    return 0;
  }
  if (id !== KVM_TDX_INIT_VM || vm.key !== null) return -E.EINVAL;
  // tdx_guest_keyid_alloc: ida_alloc_range -> ENOSPC when exhausted
  const key = k.keys.allocVmKey();
  if (key === null) return -E.ENOSPC;
  vm.key = key;
  return 0;
}

// ---- SEV: pinning the guest's memory ---------------------------------------

/**
 * get_user_pages on the VMM's mm: fault the page in and return its frame and
 * KeyID as [pfn, keyid], or -errno. check_vma_flags' rules as far as the
 * model has such mappings: it has no VM_IO/VM_PFNMAP mapping (KVM would
 * follow those PTEs instead), no fsdax, and no file with writeback (whose
 * shared writable mappings refuse long-term write pins).
 */
function gup(k: Kernel, task: Task, hva: number, write: boolean): number | [number, number] {
  const vma = task.mm.vmas.find(hva);
  if (vma === null) return -E.EFAULT;
  if (vma.file !== null && (vma.file as OpenFile).ops.gup === 'refuse') return -E.EFAULT; // vma_is_secretmem
  if (write ? !(vma.flags & VM_WRITE) : !(vma.flags & VM_READ)) return -E.EFAULT;
  const page = Math.floor(hva / PAGE) * PAGE;
  const pte = k.pool.get(task.mm.pgd, page);
  if (pte & PTE_PRESENT && (!write || pte & PTE_WRITE)) return [ptePfn(pte), pteKeyid(pte)];
  // faultin_page: a fault that succeeds leaves the page present
  const r = handleMmFault(k, task, page, write);
  if (r < 0) return r;
  const now = k.pool.get(task.mm.pgd, page);
  return [ptePfn(now), pteKeyid(now)];
}

function registerRegion(k: Kernel, vm: Vm, arg: SysArg, task: Task): number {
  // kvm_arch_vm_ioctl copies struct kvm_enc_region before it looks for the op
  const a = struct(arg);
  if (a === null) return -E.EFAULT;
  if (k.machine.profile.confidentialVm !== 'sev') return -E.ENOTTY; // no mem_enc_register_region (VMX)
  if (vm.key === null || !(vm.type === KVM_X86_SEV_VM || vm.type === KVM_X86_SEV_ES_VM || vm.type === KVM_X86_SNP_VM)) return -E.ENOTTY;
  const addr = u64(a[0] ?? 0), size = u64(a[1] ?? 0);
  // sev_pin_memory(FOLL_WRITE | FOLL_LONGTERM)
  if (!(size > 0) || !(addr >= 0)) return -E.EINVAL; // (no wrap below 2^53)
  const first = Math.floor(addr / PAGE), last = Math.floor((addr + size - 1) / PAGE);
  const npages = last - first + 1;
  const limit = Math.floor(task.rlimits.memlock / PAGE);
  if (vm.pagesLocked + npages > limit && !task.caps.has(CAP_IPC_LOCK)) return -E.ENOMEM;
  const pfns: number[] = [];
  for (let p = first; p <= last; p++) {
    const r = gup(k, task, p * PAGE, true);
    if (typeof r === 'number') {
      // npinned != npages: undo, and the errno becomes ENOMEM
      k.count('gup_failures');
      for (const pfn of pfns) k.alloc.unpinLongterm(pfn);
      return -E.ENOMEM;
    }
    k.alloc.pinLongterm(r[0]);
    pfns.push(r[0]);
  }
  k.gauge('pinned_pages', k.alloc.nrPinned);
  // sev_clflush_pages: the guest may flip a page's C-bit
  for (const pfn of pfns) k.engine.flush(asPfn(pfn));
  vm.pagesLocked += npages;
  vm.regions.push({ addr, size, pfns });
  return 0;
}

function unpinRegion(k: Kernel, vm: Vm, r: Region): void {
  for (const pfn of r.pfns) {
    k.engine.flush(asPfn(pfn));
    k.alloc.unpinLongterm(pfn);
  }
  vm.pagesLocked -= r.pfns.length;
}

function unregisterRegion(k: Kernel, vm: Vm, arg: SysArg): number {
  const a = struct(arg);
  if (a === null) return -E.EFAULT;
  if (k.machine.profile.confidentialVm !== 'sev') return -E.ENOTTY;
  if (vm.key === null) return -E.ENOTTY;
  const addr = u64(a[0] ?? 0), size = u64(a[1] ?? 0);
  const i = vm.regions.findIndex((r) => r.addr === addr && r.size === size);
  if (i < 0) return -E.EINVAL;
  unpinRegion(k, vm, vm.regions[i]);
  vm.regions.splice(i, 1);
  return 0;
}

// ---- the guest's page faults -------------------------------------------------

/**
 * A guest CPU's fault at guest physical address gpa (kvm_mmu_page_fault ->
 * kvm_faultin_pfn): 0 when mapped, else -errno. -EFAULT is what KVM_RUN
 * returns to the VMM (KVM_EXIT_MEMORY_FAULT, or a page GUP refused): the
 * guest cannot go on.
 */
export function kvmFault(k: Kernel, vm: Vm, guest: Task, gpa: number, write: boolean): number {
  k.count('stage2_faults');
  const page = Math.floor(gpa / PAGE) * PAGE;
  const slot = vm.slotOf(page);
  if (slot === null) return -E.EFAULT; // no memslot: MMIO, which no guest CPU here does
  if (write && slot.flags & KVM_MEM_READONLY) return -E.EFAULT;
  const priv = vm.isPrivate(page);
  const idx = (page - slot.gpa) / PAGE;
  let pfn: number, keyid: number, hva = -1;
  if (priv && vm.key === null) return -E.EFAULT; // the VM was never given its key
  if (slot.gmem !== null && (priv || slot.gmemOnly)) {
    // kvm_gmem_get_pfn: private memory, or a guest_memfd-only slot
    const pgoff = slot.gmemPgoff + idx;
    const fresh = !slot.gmem.pages.has(pgoff);
    pfn = gmemPage(k, slot.gmem, pgoff, priv ? vm.key : null, vm.owner);
    if (pfn < 0) return pfn;
    // allocating and clearing the page is a first-touch fault's work, and is
    // counted as one (a shared page got through GUP counts in handleMmFault)
    if (fresh) k.count('faults');
    keyid = priv ? vm.key!.keyid : 0;
  } else if (priv && hasPrivateMem(vm.type)) {
    return -E.EFAULT; // private access to a slot without guest_memfd: KVM_EXIT_MEMORY_FAULT
  } else {
    // hva_to_pfn: GUP on the VMM's mapping (not long-term: the mmu notifier
    // keeps it coherent)
    hva = slot.uaddr + idx * PAGE;
    const r = gup(k, vm.owner, hva, write);
    if (typeof r === 'number') {
      k.count('gup_failures');
      return r;
    }
    [pfn, keyid] = r;
    // SEV: the guest's private pages are its memory seen through the ASID key
    if (priv) keyid = vm.key!.keyid;
  }
  const i = k.pool.pteIndex(guest.mm.pgd, page, true);
  if (i < 0) return -E.ENOMEM;
  const writable = !(slot.flags & KVM_MEM_READONLY);
  Atomics.store(k.pool.words, i, mkPte(pfn, keyid, PTE_PRESENT | (writable ? PTE_WRITE : 0) | (write ? PTE_DIRTY : 0)));
  if (hva >= 0) vm.rmap.set(page, hva);
  return 0;
}

/** An exit from the guest to the VMM (an I/O kick, a hypercall the VMM serves): counted, priced as a VM exit. */
export function kvmIoExit(k: Kernel): void {
  k.count('vm_exits');
}

/**
 * The guest's own set_memory_decrypted/encrypted on SEV (the C-bit in its page
 * tables; no KVM call): pages [gpa, gpa + pages·4 KiB) become shared or
 * private again, and what the guest mapped of them is remapped on next use.
 */
export function sevGuestSetShared(vm: Vm, gpa: number, pages: number, shared: boolean): void {
  const first = Math.floor(gpa / PAGE);
  for (let g = first; g < first + pages; g++) {
    if (vm.guestShared.has(g) === shared) continue;
    convertGfn(vm, g);
    if (shared) vm.guestShared.add(g);
    else vm.guestShared.delete(g);
  }
}

/**
 * A guest page changes kind: its mapping goes. It counts as a conversion
 * when the guest had it mapped, i.e. the page is in use and the hardware's
 * page state changes with it (SNP: RMPUPDATE, the guest's PVALIDATE; TDX:
 * TDH.MEM.PAGE.REMOVE/ADD): marking not yet used RAM private at launch is
 * bookkeeping only.
 */
function convertGfn(vm: Vm, g: number): void {
  if (vm.zapGuest(g * PAGE, 1) > 0) vm.k.count('conversions');
}
