// The kernel: boot, tasks, open files and devices, and the state every
// operation file (mmap.ts, fault.ts, ...) works on. It runs on the boot CPU
// (cpu 0, the main thread); other CPUs enter it through the trap mailbox.
import { PerCpuCounters, type CountersDescriptor } from '../hardware/counters.js';
import type { Machine } from '../hardware/machine.js';
import { KeyService } from './keys.js';
import { PageAllocator, type PageAllocDescriptor } from './page_alloc.js';
import { PageTablePool, PTE_MAX_KEYID, PTE_MAX_PFN, type PgtableDescriptor } from './pgtable.js';
import { Smp, type SmpDescriptor } from './smp.js';
import { UserCpu } from './cpu.js';
import { daxDevice } from './dax.js';
import { kvmDevice } from './kvm.js';
import { MM_FILE_PAGES, MM_NODE, MM_RSS, MmShared, mmWriteLock, mmWriteUnlock } from './fastfault.js';
import { handleMmFault } from './memory.js';
import { PageCache } from './pagecache.js';
import { unmapRange } from './mmap.js';
import { SwapDevice, type SwapConfig } from './swap_device.js';
import { CAP_SYS_ADMIN, DEFAULT_MAX_MAP_COUNT, MMAP_MIN_ADDR, TASK_SIZE } from './uapi.js';
import { E } from './errno.js';
import type { MadviseHook } from './madvise.js';
import { CORE_SYSCALLS, type SysArg, type SyscallFn } from './syscalls.js';
import { DEFAULT_RLIMITS, defaultOvercommit, type Overcommit, type Rlimits } from './limits.js';
import { VmaList, type Vma, type VmaFile } from './vma.js';

export const KERNEL_COUNTERS = [
  'syscalls',
  'enosys',
  'faults',
  'tlb_shootdowns',
  'vma_count_max',
  'pinned_pages',
  'swap_out',
  'swap_in',
  'migrated',
  'migrate_failed',
  'plaintext_exposed_bytes',
  'pages_zapped',
  'direct_map_removed',
  'vma_splits',
  'vma_merges',
  'swap_sealed',
  'oom',
  'segv',
  'stage2_faults',
  'vm_exits',
  'gup_failures',
  'conversions',
  'bounce_bytes',
  'bounce_copies',
  'io_shared_bytes',
] as const;
export type KernelCounter = (typeof KERNEL_COUNTERS)[number];

/** Which of the designs under test this kernel was built with (its .config). */
export interface KernelFeatures {
  /** encrypt_mprotect(2) from the MKTME RFC */
  readonly encrypt_mprotect: boolean;
  /** the /dev/mktme driver */
  readonly dev_mktme: boolean;
  /** madvise(MADV_ENCRYPT) on any mapping */
  readonly madv_encrypt: boolean;
  /** memfd_secret(2), as merged in 5.14 */
  readonly memfd_secret: boolean;
  /** KVM's guest_memfd (6.8; host mmap of it 6.18): without it KVM_CREATE_GUEST_MEMFD is ENOTTY */
  readonly guest_memfd: boolean;
}

export const ALL_FEATURES: KernelFeatures = { encrypt_mprotect: true, dev_mktme: true, madv_encrypt: true, memfd_secret: true, guest_memfd: true };
export const NO_FEATURES: KernelFeatures = { encrypt_mprotect: false, dev_mktme: false, madv_encrypt: false, memfd_secret: false, guest_memfd: false };

export interface KernelConfig {
  readonly features: KernelFeatures;
  readonly maxMapCount?: number;
  readonly swap?: SwapConfig | null;
  readonly pgtableSlots?: number;
  /** host CPUs the simulator's threads share (smp.ts): how far hand-offs may spin */
  readonly hostCpus?: number;
  /** hand-offs also follow the host's load (backoff.ts HostLoad; default true); tests that assert a regime turn it off */
  readonly probeLoad?: boolean;
  /**
   * vm.mmap_min_addr: MAP_FIXED below it is EPERM without CAP_SYS_RAWIO
   * (security/commoncap.c:cap_mmap_addr). Default MMAP_MIN_ADDR (65536, most
   * distributions' CONFIG_DEFAULT_MMAP_MIN_ADDR); a host's own value is in
   * /proc/sys/vm/mmap_min_addr.
   */
  readonly mmapMinAddr?: number;
  /**
   * Whether the CPU has 1 GiB pages (pdpe1gb), so that MAP_HUGETLB with
   * MAP_HUGE_1GB names a huge page size the kernel knows.
   */
  readonly gigantic?: boolean;
  /**
   * Whether the CPU has protection keys the OS enabled (X86_FEATURE_OSPKE,
   * "ospke" in /proc/cpuinfo): PROT_EXEC-only mappings then get the
   * execute-only key (pkeys.ts). Default false.
   */
  readonly pku?: boolean;
  /**
   * vm.overcommit_* and the RAM and swap they weigh against. Default: Linux's
   * defaults for this simulated machine (its frames, its swap device).
   */
  readonly overcommit?: Overcommit;
}

/** struct file: an open file or device, with its page cache where it has one. */
export class OpenFile implements VmaFile {
  refs = 1;
  size = 0;
  /** pages charged to the commit total for this file (shared anonymous memory) */
  acct = 0;
  /** page cache: page offset -> frame, indexed in shared memory for the CPUs (pagecache.ts) */
  readonly pages: PageCache;
  /**
   * the mm whose memory limit pays for this file's pages (pinned file
   * memory); one that a worker CPU claimed (pagecache.ts) is set here when
   * the kernel next takes that mm (fastfault.ts), before it can matter
   */
  charged: MmStruct | null = null;
  /** driver state (e.g. the key set by an ioctl) */
  key: import('./keys.js').MktmeKey | null = null;
  constructor(
    private readonly k: Kernel,
    readonly path: string,
    readonly dev: string,
    readonly ino: number,
    readonly ops: FileOps,
    /** opened for writing (FMODE_WRITE) */
    readonly writable = true,
  ) {
    this.pages = new PageCache(k.pool);
  }

  /** Charge the file's pages to mm, unless another mm pays for them (or a CPU of another mm claimed the file): false then. */
  chargeTo(mm: MmStruct): boolean {
    if (!this.pages.claim(mm.id)) return false;
    this.charged = mm;
    return true;
  }

  get(): void {
    this.refs++;
  }

  /** fput: the last reference frees the file's pages. */
  put(): void {
    if (this.refs <= 0) throw new Error(`file: put on released ${this.path}`);
    if (--this.refs !== 0) return;
    this.ops.release(this.k, this);
    this.pages.clear(); // the page cache index's tables go back to the pool (the pages are release's)
  }
}

export interface FileOps {
  /** f_op->mmap: check and adjust the new VMA; 0 or -errno. */
  mmap(k: Kernel, file: OpenFile, vma: Vma, task: Task): number;
  /** vm_ops->fault: the frame backing page `pgoff` (allocating it if needed), or -errno. */
  fault(k: Kernel, file: OpenFile, vma: Vma, pgoff: number, task: Task): number;
  /** arg is the register: a number, or a struct the caller passes (a user pointer: syscalls.ts SysArg) */
  ioctl?(k: Kernel, file: OpenFile, cmd: number, arg: SysArg, task: Task): number;
  ftruncate?(k: Kernel, file: OpenFile, len: number): number;
  /** f_op->fallocate, after the VFS's checks (syscalls.ts) */
  fallocate?(k: Kernel, file: OpenFile, mode: number, offset: number, len: number, task: Task): number;
  /** get_user_pages refuses this file's mappings (vma_is_secretmem: EFAULT) */
  readonly gup?: 'refuse';
  /** Last reference dropped: free the page cache. */
  release(k: Kernel, file: OpenFile): void;
  /**
   * May worker CPUs fault this file's pages themselves, through a shared
   * mapping (fastfault.ts)? null: no, every fault traps. Else what `fault`
   * would do for a page it does not have, which a CPU of the mm the file is
   * charged to (or claims it for, pagecache.ts) then does: allocate it
   * charged to that mm, prepare it through the VMA's KeyID, give it PG_FILE
   * and `flags` (PG_UNEVICTABLE: a pinned page, mapped PTE_PINNED;
   * PG_SECRET: removed from the direct map, counted in direct_map_removed),
   * and insert it in the page cache. `pages`: the page offsets a fault may
   * reach; past them `fault` refuses (SIGBUS). Asked whenever the kernel
   * republishes the mm's VMAs for the CPUs.
   */
  fastFault?(file: OpenFile): FastFileFault | null;
}

/** What FileOps.fastFault allows the CPUs. */
export interface FastFileFault {
  readonly flags: number;
  readonly pages: number;
}

/** A device node in /dev. */
export interface Device {
  readonly path: string;
  open(k: Kernel, task: Task, flags: number): OpenFile | number;
}

/** mm_struct */
export class MmStruct {
  readonly vmas: VmaList;
  /** What CPUs on other threads read and update (fastfault.ts): rss, limit, node, VMA snapshot. */
  readonly shared: MmShared;
  /** Nesting of the kernel's write lock on this mm (fastfault.ts). Kernel only. */
  lockDepth = 0;
  /** Clock list of resident anonymous pages (virtual addresses), for reclaim. */
  readonly lru: number[] = [];
  clockHand = 0;
  /**
   * Pages under a guard marker (MADV_GUARD_INSTALL): a fault there is
   * SIGSEGV. MADV_DONTNEED leaves them; munmap and MADV_GUARD_REMOVE take
   * them away. While there are any, every fault of the mm traps (fastfault.ts).
   */
  readonly guards = new Set<number>();
  /** mm->context.execute_only_pkey: -1 until PROT_EXEC-only memory first asks for it (pkeys.ts) */
  execOnlyPkey = -1;
  /**
   * mmu notifiers (KVM): told of every range whose PTEs are cleared or
   * changed (unmap, zap, swap-out, migration, mprotect) before its frames go.
   */
  readonly notifiers = new Set<(start: number, end: number) => void>();
  constructor(
    readonly id: number,
    readonly pgd: number,
    maxMapCount: number,
    /** memory.max of its cgroup, in pages (Infinity: no limit) */
    memLimit: number,
    /** preferred NUMA node for new pages */
    node = 0,
    onVmaChange?: (what: 'split' | 'merge') => void,
    nrCpus = 1,
    /** areas of exited mms to take this mm's from (MmShared.create) */
    areas: SharedArrayBuffer[] = [],
  ) {
    this.vmas = new VmaList(maxMapCount, onVmaChange);
    this.shared = MmShared.create(nrCpus, memLimit, node, areas);
  }

  /** mmu_notifier_invalidate_range: tell the notifiers [start, end) changed. */
  invalidate(start: number, end: number): void {
    if (this.notifiers.size > 0) for (const n of this.notifiers) n(start, end);
  }

  /**
   * resident anonymous pages: RSS less the pages the CPUs' charge stocks
   * hold (fastfault.ts), which are empty while the kernel holds the mm
   */
  get rss(): number {
    return Atomics.load(this.shared.i32, MM_RSS) - (this.lockDepth > 0 ? 0 : this.shared.stocked());
  }
  set rss(n: number) {
    Atomics.store(this.shared.i32, MM_RSS, n + (this.lockDepth > 0 ? 0 : this.shared.stocked()));
  }
  /** pinned file pages (driver, secretmem) charged to this mm's limit */
  get filePages(): number {
    return Atomics.load(this.shared.i32, MM_FILE_PAGES);
  }
  set filePages(n: number) {
    Atomics.store(this.shared.i32, MM_FILE_PAGES, n);
  }
  get memLimit(): number {
    return this.shared.limit[0];
  }
  get node(): number {
    return this.shared.i32[MM_NODE];
  }
}

export interface Creds {
  readonly uid: number;
  readonly caps: ReadonlySet<number>;
}

/** task_struct (one process; its threads are the CPUs that run its mm). */
export class Task {
  readonly files = new Map<number, OpenFile>();
  exited = false;
  /**
   * Who handles this task's page faults: handle_mm_fault, or for a guest's
   * physical address space KVM's (kvm.ts kvmFault).
   */
  faultHandler: ((k: Kernel, task: Task, va: number, write: boolean) => number) | null = null;
  constructor(
    readonly pid: number,
    readonly mm: MmStruct,
    readonly creds: Creds,
    readonly rlimits: Rlimits = DEFAULT_RLIMITS,
  ) {}

  get uid(): number {
    return this.creds.uid;
  }
  get caps(): ReadonlySet<number> {
    return this.creds.caps;
  }

  /** Lowest free fd (get_unused_fd_flags). */
  installFd(f: OpenFile): number {
    let fd = 3;
    while (this.files.has(fd)) fd++;
    this.files.set(fd, f);
    return fd;
  }
}

export interface SpawnOptions {
  readonly uid?: number;
  readonly caps?: Iterable<number>;
  /** RLIMIT_AS, RLIMIT_DATA, RLIMIT_MEMLOCK in bytes (default DEFAULT_RLIMITS) */
  readonly rlimits?: Partial<Rlimits>;
  /** memory limit in pages */
  readonly memLimit?: number;
  readonly node?: number;
}

export interface KernelDescriptor {
  readonly pgtable: PgtableDescriptor;
  readonly smp: SmpDescriptor;
  readonly counters: CountersDescriptor;
  readonly memmap: PageAllocDescriptor;
  readonly keyPageRefs: SharedArrayBuffer;
}

export class Kernel {
  readonly machine: Machine;
  readonly config: KernelConfig;
  readonly features: KernelFeatures;
  readonly alloc: PageAllocator;
  readonly pool: PageTablePool;
  readonly smp: Smp;
  readonly keys: KeyService;
  readonly swap: SwapDevice | null;
  readonly counters: PerCpuCounters<KernelCounter>;
  /** The boot CPU's counter row: the kernel only runs there. */
  readonly row: Float64Array;
  readonly tasks = new Map<number, Task>();
  readonly devices = new Map<string, Device>();
  /** User CPUs that live on this thread (flushed directly on a shootdown). */
  readonly localCpus = new Set<{ mmId: number; flushTlb(): void }>();
  /** shared areas of exited mms, for the next ones (MmShared.recycle) */
  private readonly mmAreas: SharedArrayBuffer[] = [];
  /** The syscall table: a call with no entry is ENOSYS. */
  readonly syscalls = new Map<number, SyscallFn>(CORE_SYSCALLS);
  /** madvise advice added by designs under test (MADV_ENCRYPT). */
  readonly madviseHooks = new Map<number, MadviseHook>();
  maxMapCount: number;
  /** vm.mmap_min_addr (KernelConfig.mmapMinAddr) */
  readonly mmapMinAddr: number;
  readonly overcommit: Overcommit;
  /** vm_committed_as: pages charged by VM_ACCOUNT mappings and shared anonymous memory */
  committedPages = 0;
  private nextPid = 100;
  private nextMmId = 1;
  private nextIno = 1000;

  constructor(machine: Machine, config: KernelConfig) {
    if (machine.cpu !== 0) throw new Error('kernel: boots on cpu 0');
    if (machine.memory.nrFrames - 1 > PTE_MAX_PFN)
      throw new RangeError(`memory: the PTE format holds ${PTE_MAX_PFN + 1} frames, the machine has ${machine.memory.nrFrames}`);
    if (machine.profile.nrKeyids > PTE_MAX_KEYID)
      throw new RangeError(`hardware: ${machine.profile.nrKeyids} KeyIDs do not fit the PTE's ${PTE_MAX_KEYID}`);
    this.machine = machine;
    this.config = config;
    this.features = config.features;
    this.maxMapCount = config.maxMapCount ?? DEFAULT_MAX_MAP_COUNT;
    this.mmapMinAddr = config.mmapMinAddr ?? MMAP_MIN_ADDR;
    if (!Number.isSafeInteger(this.mmapMinAddr) || this.mmapMinAddr < 0 || this.mmapMinAddr > TASK_SIZE)
      throw new RangeError(`mmapMinAddr: expected an integer in [0, ${TASK_SIZE}], got ${config.mmapMinAddr}`);
    this.alloc = new PageAllocator(machine.memory, machine.nrCpus);
    this.pool = PageTablePool.create(config.pgtableSlots ?? 4096);
    this.smp = Smp.create(machine.nrCpus, config.hostCpus, config.probeLoad ?? true);
    this.counters = PerCpuCounters.create(KERNEL_COUNTERS, machine.nrCpus);
    this.row = this.counters.row(0);
    this.keys = new KeyService(machine.engine);
    this.swap = config.swap ? SwapDevice.open(config.swap, machine.engine.backend) : null;
    this.overcommit = config.overcommit ?? defaultOvercommit(machine.memory.nrFrames - machine.memory.daxFrames, config.swap?.slots ?? 0);
    if (machine.memory.daxFrames > 0) this.registerDevice(daxDevice);
    this.registerDevice(kvmDevice);
  }

  get engine() {
    return this.machine.engine;
  }

  descriptor(): KernelDescriptor {
    return {
      pgtable: this.pool.descriptor(),
      smp: this.smp.descriptor(),
      counters: this.counters.descriptor(),
      memmap: this.alloc.map.descriptor(),
      keyPageRefs: this.keys.pageRefs.buffer as SharedArrayBuffer,
    };
  }

  count(c: KernelCounter, n = 1): void {
    this.row[this.counters.index[c]] += n;
  }

  gauge(c: KernelCounter, v: number): void {
    const i = this.counters.index[c];
    if (v > this.row[i]) this.row[i] = v;
  }

  newIno(): number {
    return this.nextIno++;
  }

  /** fork+exec of a fresh process with an empty address space. */
  spawn(opts: SpawnOptions = {}): Task {
    const pgd = this.pool.allocPgd();
    if (pgd < 0) throw new Error('kernel: out of page-table memory (raise pgtableSlots)');
    const mm = new MmStruct(
      this.nextMmId++,
      pgd,
      this.maxMapCount,
      opts.memLimit ?? Infinity,
      opts.node ?? 0,
      (what) => this.count(what === 'split' ? 'vma_splits' : 'vma_merges'),
      this.machine.nrCpus,
      this.mmAreas,
    );
    const t = new Task(this.nextPid++, mm, { uid: opts.uid ?? 0, caps: new Set(opts.caps ?? [CAP_SYS_ADMIN]) }, { ...DEFAULT_RLIMITS, ...opts.rlimits });
    this.tasks.set(t.pid, t);
    return t;
  }

  /**
   * Enter the kernel with a syscall. Never throws: a kernel bug surfaces as
   * an exception from the operation, which is a bug in this model, so it is
   * let through; every user error is a -errno return.
   */
  syscall(task: Task, nr: number, ...args: SysArg[]): number {
    this.count('syscalls');
    const fn = this.syscalls.get(nr);
    if (fn === undefined) {
      this.count('enosys');
      return -E.ENOSYS;
    }
    // every syscall runs with the mm write-locked (fastfault.ts): simpler
    // than mmap_lock's read/write split, and exact, since the kernel is one thread
    mmWriteLock(this, task.mm);
    try {
      return fn(this, task, ...args);
    } finally {
      mmWriteUnlock(this, task.mm);
    }
  }

  registerSyscall(nr: number, fn: SyscallFn): void {
    if (this.syscalls.has(nr)) throw new Error(`kernel: syscall ${nr} registered twice`);
    this.syscalls.set(nr, fn);
  }

  registerMadvise(advice: number, hook: MadviseHook): void {
    if (this.madviseHooks.has(advice)) throw new Error(`kernel: madvise advice ${advice} registered twice`);
    this.madviseHooks.set(advice, hook);
  }

  registerDevice(d: Device): void {
    this.devices.set(d.path, d);
  }

  /** A user-mode CPU on this thread (the boot CPU) running task; faults are direct calls. */
  localCpu(task: Task): UserCpu {
    const cpu = new UserCpu(this.engine, this.pool, this.smp, task.mm, (va, write) => this.fault(task, va, write));
    this.localCpus.add(cpu);
    return cpu;
  }

  /** A page fault of task at va, handled by the kernel (trap or boot CPU). 0 or -errno. */
  fault(task: Task, va: number, write: boolean): number {
    mmWriteLock(this, task.mm);
    try {
      return task.faultHandler === null ? handleMmFault(this, task, va, write) : task.faultHandler(this, task, va, write);
    } finally {
      mmWriteUnlock(this, task.mm);
    }
  }

  /** exit(2): unmap everything, close every file, free the page tables. */
  exit(task: Task): void {
    if (task.exited) return;
    mmWriteLock(this, task.mm);
    try {
      unmapRange(this, task, 0, 2 ** 48);
    } finally {
      mmWriteUnlock(this, task.mm);
    }
    for (const f of task.files.values()) f.put();
    task.files.clear();
    this.pool.freeTables(task.mm.pgd);
    task.mm.shared.recycle(this.mmAreas);
    for (const c of this.localCpus) if (c.mmId === task.mm.id) this.localCpus.delete(c);
    task.exited = true;
    this.tasks.delete(task.pid);
  }

  /** Stop: every task exits, swap goes away. */
  shutdown(): void {
    for (const t of [...this.tasks.values()]) this.exit(t);
    this.swap?.close();
  }
}
