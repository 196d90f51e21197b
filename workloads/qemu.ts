// qemu-guest and qemu-nvdimm: a VMM (QEMU, the cell's process) gives a guest
// its RAM through the design, and the guest's CPUs (the worker CPUs, running
// in the guest's physical address space: kernel/kvm.ts) work on it. This is
// the case the 2019 thread's seed message (Kai Huang, doing the QEMU
// enabling) argued from: see ../shared/research-qemu-guestmemfd.md §2.
//
// Setup, as QEMU does it: open /dev/kvm, KVM_CREATE_VM with the design's VM
// type for this hardware (SEV where the CPU has it, SNP/TDX for guest_memfd),
// make the VM's key (KVM_MEMORY_ENCRYPT_OP: the ASID or HKID), then the RAM
// block through the design (an SEV guest's is registered and pinned). A
// confidential guest's kernel then makes its swiotlb pool shared: on SEV by
// clearing the C-bit, on SNP/TDX by asking the VMM, which converts the pages
// (KVM_SET_MEMORY_ATTRIBUTES) and punches them out of the guest_memfd.
//
// qemu-guest, each round: the guest CPUs write and read back their data pages,
// then the guest writes REQS virtio-blk requests of K pages each to its disk,
// on the boot CPU: the guest driver and QEMU's device model. Where the host
// cannot read guest memory (any confidential VM) the driver bounces through
// the swiotlb pool (one copy for a write; a read, virtioRequest(..., false),
// takes two) and the device reaches only the pool; elsewhere the device reads
// the guest's buffer through QEMU's own mapping of the RAM (which, with
// MKTME, carries the key: the kernel-held key makes it plaintext to QEMU).
// One op = one virtio write.
//
// qemu-nvdimm: QEMU maps /dev/dax0.0 from its own fd (memory-backend-file,
// pmem=on) and asks the design to encrypt that mapping; it becomes the
// guest's second memslot (an SEV guest's registered and pinned too), and the
// guest CPUs write and read back the NVDIMM. A design that cannot stack on the
// mapping cannot give the guest an encrypted NVDIMM. One op = one page.
import { PAGE_SIZE } from '../hardware/types.js';
import { observeFrames, patternPage } from '../interfaces/conformance.js';
import { CPU_KEY, randomKeyBytes, userKey, type GuestRam, type UserEnv } from '../interfaces/contract.js';
import type { UserCpu } from '../kernel/cpu.js';
import { DAX_PATH } from '../kernel/dax.js';
import {
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  KVM_CREATE_VM,
  KVM_MEMORY_ENCRYPT_OP,
  KVM_MEMORY_ENCRYPT_REG_REGION,
  KVM_PATH,
  KVM_SET_MEMORY_ATTRIBUTES,
  KVM_SET_USER_MEMORY_REGION2,
  KVM_SEV_INIT2,
  KVM_TDX_INIT_VM,
  KVM_X86_SEV_ES_VM,
  KVM_X86_SEV_VM,
  KVM_X86_TDX_VM,
  hasPrivateMem,
  isConfidential,
  kvmIoExit,
  sevGuestSetShared,
  vmOfFd,
  type Vm,
} from '../kernel/kvm.js';
import { AT_FDCWD, NR } from '../kernel/syscalls.js';
import { MADV_DONTNEED, MAP_SHARED, PROT_READ, PROT_WRITE } from '../kernel/uapi.js';
import type { CellSession } from './session.js';
import { Swiotlb } from './swiotlb.js';
import type { RoundReport, Workload } from './workload.js';
import { leaksOf, roundSeed, sumDone } from './workload.js';

const P = PAGE_SIZE;
const O_RDWR = 2;
/**
 * Pages per virtio-blk request (16 KiB: 8 swiotlb slots) and requests per
 * round: enough that the VM's boot, which the counting round's counters
 * include, is a small share of the cost per write.
 */
export const K = 4;
export const REQS = 64;
/** The guest's swiotlb= pool: 128 slabs, one segment (256 KiB, 64 pages). */
export const POOL_SLABS = 128;
const POOL_PAGES = (POOL_SLABS * 2048) / P;

interface Guest {
  readonly vm: Vm;
  readonly ram: GuestRam;
  /** the guest's driver CPU and QEMU's device-model CPU, both on the boot CPU */
  readonly guestCpu: UserCpu;
  readonly qemuCpu: UserCpu;
  /** where the guest's I/O buffer is, and its swiotlb pool (null: the host reads guest memory, no bounce) */
  readonly ioGpa: number;
  readonly pool: Swiotlb | null;
  /** guest physical address of the pages the guest CPUs work on */
  readonly dataGpa: number;
  readonly buf: Uint8Array;
  readonly want: Uint8Array;
  /** QEMU's disk image: one request's blocks */
  readonly disk: Uint8Array;
}
const guests = new WeakMap<CellSession, Guest>();

/** The VM of a qemu cell, for tests and conformance checks. */
export const guestOf = (s: CellSession): { vm: Vm; ram: GuestRam } | null => {
  const g = guests.get(s);
  return g === undefined ? null : { vm: g.vm, ram: g.ram };
};

/** The guest's request for [gpa, gpa+len) to become private or shared, as QEMU serves it (kvm_convert_memory). */
function convert(s: CellSession, g: { vm: Vm; ram: GuestRam }, gpa: number, len: number, toPrivate: boolean): number {
  const { vm, ram } = g;
  if (!hasPrivateMem(vm.type)) {
    // SEV and SEV-ES: the guest flips the C-bit in its own page tables; no exit
    sevGuestSetShared(vm, gpa, len / P, !toPrivate);
    return 0;
  }
  kvmIoExit(s.k); // KVM_EXIT_HYPERCALL (KVM_HC_MAP_GPA_RANGE) to QEMU
  const r = s.env.sys(NR.ioctl, ram.vmfd, KVM_SET_MEMORY_ATTRIBUTES, [gpa, len, toPrivate ? 8 : 0, 0]);
  if (r < 0) return r;
  // ram_block_discard_range of the side the pages leave, "to avoid doubling memory"
  if (toPrivate) return s.env.sys(NR.madvise, ram.hva + gpa, len, MADV_DONTNEED);
  return s.env.sys(NR.fallocate, ram.gmem, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, gpa, len);
}

/**
 * QEMU's first steps: open /dev/kvm (and keep it open, as kvm_init keeps
 * s->fd), KVM_CREATE_VM of `type`, and for a confidential VM its key
 * (sev_kvm_init's KVM_SEV_INIT2, tdx_kvm_init's KVM_TDX_INIT_VM). The VM fd,
 * or -errno (QEMU exits).
 */
export function createVm(env: UserEnv, type: number): number {
  const kvm = env.sys(NR.openat, AT_FDCWD, KVM_PATH, O_RDWR);
  if (kvm < 0) return kvm;
  const vmfd = env.sys(NR.ioctl, kvm, KVM_CREATE_VM, type);
  if (vmfd < 0 || !isConfidential(type)) return vmfd;
  const init = env.sys(NR.ioctl, vmfd, KVM_MEMORY_ENCRYPT_OP, [type === KVM_X86_TDX_VM ? KVM_TDX_INIT_VM : KVM_SEV_INIT2]);
  return init < 0 ? init : vmfd;
}

/** QEMU's steps up to a running guest; 0, -errno (QEMU exits), or 1 when the design has no call for the NVDIMM. */
async function boot(s: CellSession, nvdimm: boolean): Promise<number> {
  const env = s.env;
  const dataPages = s.pages;
  const type = s.design.vmType(s.k.machine.profile.confidentialVm);
  const vmfd = createVm(env, type);
  if (vmfd < 0) return vmfd;
  // RAM: the data pages (qemu-guest), the I/O buffer, the swiotlb pool
  const ramPages = (nvdimm ? 0 : dataPages) + K + POOL_PAGES;
  const ram = s.design.guestRam(env, vmfd, type, ramPages * P, CPU_KEY);
  if ('failed' in ram) return ram.failed;
  const vm = vmOfFd(s.task, vmfd)!;
  const ioGpa = nvdimm ? 0 : dataPages * P;
  const poolGpa = ioGpa + K * P;
  let pool: Swiotlb | null = null;
  if (isConfidential(type)) {
    // the guest kernel has accepted (touched) its memory, then
    // swiotlb_update_mem_attributes makes the pool shared
    const guestCpu = s.k.localCpu(vm.guest);
    const zero = new Uint8Array(P);
    for (let p = 0; p < POOL_PAGES; p++) {
      const w = guestCpu.store(poolGpa + p * P, zero, 0, P);
      if (w < 0) return w;
    }
    const r = convert(s, { vm, ram }, poolGpa, POOL_PAGES * P, false);
    if (r < 0) return r;
    pool = new Swiotlb(poolGpa, POOL_SLABS);
  }
  let dataGpa = 0;
  if (nvdimm) {
    const fd = env.sys(NR.openat, AT_FDCWD, DAX_PATH, O_RDWR);
    if (fd < 0) return fd;
    const len = dataPages * P;
    const addr = env.sys(NR.mmap, 0, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (addr < 0) return addr;
    // An SEV guest's NVDIMM is its private memory like the rest: the ASID key
    // encrypts it whatever the design (and a restarted VM gets another key).
    // Elsewhere the design must stack its encryption on QEMU's mapping.
    if (!(isConfidential(type) && !hasPrivateMem(type))) {
      const e = s.design.encryptMapping(env, addr, len, fd, userKey(randomKeyBytes()));
      if (e === null) return 1;
      if (e < 0) return e;
    }
    dataGpa = ramPages * P;
    const r = env.sys(NR.ioctl, vmfd, KVM_SET_USER_MEMORY_REGION2, [1, 0, dataGpa, len, addr, 0, 0]);
    if (r < 0) return r;
    if (type === KVM_X86_SEV_VM || type === KVM_X86_SEV_ES_VM) {
      const p = env.sys(NR.ioctl, vmfd, KVM_MEMORY_ENCRYPT_REG_REGION, [addr, len]);
      if (p < 0) return p;
    }
  }
  await s.runIn(vm.guest);
  guests.set(s, {
    vm,
    ram,
    guestCpu: s.k.localCpu(vm.guest),
    qemuCpu: env.cpu,
    ioGpa,
    pool,
    dataGpa,
    buf: new Uint8Array(K * P),
    want: new Uint8Array(P),
    disk: new Uint8Array(K * P),
  });
  return 0;
}

/** The seed of request j's blocks in round seed `seed` (other streams than the data pages'). */
const ioSeed = (seed: number, j: number): number => (seed ^ (0x51ed270b + j * 0x9e3779b9)) >>> 0;

/**
 * One virtio-blk request of K pages, write (guest -> disk) or read (disk ->
 * guest): the -errno of an access that failed (the guest cannot go on), and
 * the pages that arrived wrong.
 */
export function virtioRequest(s: CellSession, seed: number, j: number, write: boolean): { fault: number; errors: number } {
  return request(s, guests.get(s)!, seed, j, write);
}

function request(s: CellSession, g: Guest, seed: number, j: number, write: boolean): { fault: number; errors: number } {
  const k = s.k;
  const len = K * P;
  const hva = (gpa: number) => g.ram.hva + gpa; // memslot 0: guest physical 0 at hva
  const sd = ioSeed(seed, j);
  let r = 0;
  if (write) {
    // the guest's data for the request, in its (private) buffer
    for (let p = 0; p < K && r === 0; p++) {
      patternPage(sd, p, g.want);
      r = g.guestCpu.store(g.ioGpa + p * P, g.want, 0, P);
    }
  } else {
    // QEMU's image holds the blocks the guest will read
    for (let p = 0; p < K; p++) patternPage(sd, p, g.disk.subarray(p * P, p * P + P));
  }
  if (r < 0) return { fault: r, errors: 0 };
  kvmIoExit(k); // the driver kicks the virtqueue: an exit to QEMU
  let at = g.ioGpa;
  let slot = -1;
  if (g.pool !== null) {
    // dma_map: bounce into the shared pool; map copies in every direction
    slot = g.pool.map(len);
    if (slot < 0) return { fault: 0, errors: K }; // DMA_MAPPING_ERROR: the request fails
    at = g.pool.slotGpa(slot);
    r = g.guestCpu.copyFromUser(g.ioGpa, g.buf);
    if (r === 0) r = g.guestCpu.copyToUser(at, g.buf);
    if (r < 0) return { fault: r, errors: 0 };
    k.count('bounce_copies');
    k.count('bounce_bytes', len);
    k.count('io_shared_bytes', len);
  }
  // QEMU's device model, through its own mapping of guest RAM
  r = write ? g.qemuCpu.copyFromUser(hva(at), g.disk) : g.qemuCpu.copyToUser(hva(at), g.disk);
  if (r < 0) return { fault: r, errors: 0 };
  if (g.pool !== null) {
    if (!write) {
      // dma_unmap for DMA_FROM_DEVICE: copy back into the guest's buffer
      r = g.guestCpu.copyFromUser(at, g.buf);
      if (r === 0) r = g.guestCpu.copyToUser(g.ioGpa, g.buf);
      if (r < 0) return { fault: r, errors: 0 };
      k.count('bounce_copies');
      k.count('bounce_bytes', len);
    }
    g.pool.unmap(slot, len);
  }
  // what arrived: the disk (write) or the guest's buffer (read)
  let errors = 0;
  for (let p = 0; p < K; p++) {
    patternPage(sd, p, g.want);
    let got: Uint8Array;
    if (write) got = g.disk.subarray(p * P, p * P + P);
    else {
      got = g.buf.subarray(0, P);
      const l = g.guestCpu.load(g.ioGpa + p * P, got, 0, P);
      if (l < 0) return { fault: l, errors };
    }
    if (Buffer.compare(got, g.want) !== 0) errors++;
  }
  return { fault: 0, errors };
}

async function round(s: CellSession, n: number, counting: boolean, nvdimm: boolean): Promise<RoundReport> {
  const g = guests.get(s)!;
  const seed = roundSeed(s.cfg.seed, n);
  const d = sumDone(await s.runCpus({ round: n, addr: g.dataGpa, seed, passes: 1, verifyOnly: false, writeOnly: false }));
  let errors = d.errors, fault = d.fault;
  if (!nvdimm)
    for (let j = 0; j < REQS && fault === 0; j++) {
      const r = request(s, g, seed, j, true);
      errors += r.errors;
      fault = r.fault;
    }
  const observed = counting ? observeFrames(s.k, g.vm.guest, g.dataGpa, s.pages, seed) : null;
  const mem = s.k.machine.memory;
  const dax = nvdimm && counting ? mem.buf.u8.subarray(mem.daxStart * P, (mem.daxStart + mem.daxFrames) * P) : undefined;
  const alloc = g.ram.alloc;
  return {
    ops: nvdimm ? s.pages : REQS,
    errors,
    fault,
    errno: alloc?.errno ?? 0,
    refused: false,
    fallback: alloc?.fallback ?? false,
    observed,
    leaks: leaksOf(s, [seed], counting, dax),
    detail: nvdimm
      ? `${s.pages} NVDIMM pages; VM type ${g.vm.type}`
      : `${REQS} virtio writes of ${K} pages; VM type ${g.vm.type}; ${g.pool === null ? 'no bounce' : 'swiotlb bounce'}`,
  };
}

export const qemuGuest: Workload = {
  name: 'qemu-guest',
  description: 'QEMU gives a guest its RAM through the design; virtio-blk writes',
  op: 'virtio write',
  kernels: ['patched'],
  guest: true,
  pages: 32,
  swap: false,
  dax: false,
  memLimit: () => Infinity,
  setup: (s) => boot(s, false),
  round: (s, n, counting) => round(s, n, counting, false),
};

export const qemuNvdimm: Workload = {
  name: 'qemu-nvdimm',
  description: 'a guest NVDIMM on Device DAX that QEMU maps from its own fd',
  op: 'page',
  kernels: ['patched'],
  guest: true,
  pages: 32,
  swap: false,
  dax: true,
  memLimit: () => Infinity,
  setup: (s) => boot(s, true),
  round: (s, n, counting) => round(s, n, counting, true),
};
