// Hardware profiles as plain data (presets), one per memory-encryption
// technology. The kernel model reads these fields; it never branches on the
// profile's name. Sources: ../shared/MODEL-FACTS.md ("Hardware" and "Costs").

export type SwapMode =
  | 'reencrypt' // kernel reads through the keyed alias, re-encrypts on swap-in (MKTME)
  | 'ewb-eldu' // hardware exports an encrypted, versioned blob (SGX EWB/ELDU)
  | 'pinned'; // kernel cannot read the page: memory is pinned, never swapped (SEV, TDX)

export type MigrateMode =
  | 'reencrypt' // kernel copies through per-KeyID mappings (MKTME)
  | 'firmware' // only the security firmware can move pages (SEV SEND/RECEIVE); the kernel gets EBUSY
  | 'pinned'; // not movable at all

/** Modelled cost of each event, in nanoseconds. Order-of-magnitude figures. */
export interface CostTable {
  readonly syscall: number;
  readonly enosys: number;
  readonly fault: number;
  readonly clflush_line: number;
  readonly tlb_shootdown_cpu: number;
  readonly pconfig: number;
  readonly page_copy: number;
  readonly swap_io_page: number;
  /** Extra cost of encrypting or decrypting one 4 KiB page in the memory controller. */
  readonly crypto_page: number;
  /** Removing a page from the kernel direct map (memfd_secret first touch). */
  readonly direct_map_remove: number;
  /** Splitting a VMA (mprotect over part of a mapping). */
  readonly vma_split: number;
}

export interface HardwareProfile {
  readonly name: string;
  readonly description: string;
  /** KeyIDs usable for keys, 1..nrKeyids; KeyID 0 is the platform alias. 0 = no engine. */
  readonly nrKeyids: number;
  /** Can the kernel read an encrypted page through its own mapping (keyed direct map)? */
  readonly kernelCanReadEncrypted: boolean;
  readonly swap: SwapMode;
  readonly migrate: MigrateMode;
  /** 'mac': a read through another KeyID than the one that wrote the line faults (TDX). */
  readonly integrity: 'none' | 'mac';
  /** false: caches are not coherent across KeyID aliases of one page; the kernel must flush. */
  readonly aliasCoherent: boolean;
  readonly costs: CostTable;
}

// Linux-side costs measured on a 2-vCPU AMD EPYC VM, Linux 6.18 (MODEL-FACTS.md):
// getppid ~110 ns, ENOSYS ~80 ns, anon first touch 1.4-1.8 us, clflush of a
// 4 KiB page ~0.3 us (=> ~4.7 ns a line), mprotect splitting a VMA ~3.2 us,
// memfd_secret first touch ~15 us (~13 us over a plain fault: direct-map removal).
// Estimates, not measured here: a TLB-shootdown IPI ~1 us per target CPU,
// PCONFIG ~1 us, a 4 KiB copy ~0.2 us (~20 GB/s), swap I/O ~10 us a page (NVMe).
const LINUX_COSTS: CostTable = {
  syscall: 110,
  enosys: 80,
  fault: 1600,
  clflush_line: 300 / 64,
  tlb_shootdown_cpu: 1000,
  pconfig: 1000,
  page_copy: 200,
  swap_io_page: 10_000,
  crypto_page: 0, // MKTME/TME run "at the speed of the memory bus"
  direct_map_remove: 13_000,
  vma_split: 3200,
};

const PROFILES = {
  mktme: {
    name: 'mktme',
    description: 'Intel MKTME: AES-XTS-128, PA tweak, 63 KeyIDs, kernel has keyed direct maps',
    nrKeyids: 63, // 6 KeyID bits in the first parts: 63 keys + KeyID 0
    kernelCanReadEncrypted: true,
    swap: 'reencrypt',
    migrate: 'reencrypt',
    integrity: 'none',
    aliasCoherent: false, // the kernel must clflush when a page changes KeyID
    costs: LINUX_COSTS,
  },
  sev: {
    name: 'sev',
    description: 'AMD SEV: guest memory unreadable by the host kernel, pinned by KVM',
    nrKeyids: 509, // ASIDs usable for SEV guests on EPYC 7002 (order of magnitude)
    kernelCanReadEncrypted: false,
    swap: 'pinned', // KVM_MEMORY_ENCRYPT_REG_REGION pins guest memory
    migrate: 'firmware', // SEND/RECEIVE (later COPY) through the PSP only
    integrity: 'none',
    aliasCoherent: false,
    costs: LINUX_COSTS,
  },
  sgx: {
    name: 'sgx',
    description: 'Intel SGX: EPC is device-like memory; eviction via EWB/ELDU',
    nrKeyids: 1, // one EPC encryption key
    kernelCanReadEncrypted: false,
    swap: 'ewb-eldu',
    migrate: 'pinned',
    integrity: 'mac',
    aliasCoherent: true,
    // EWB/ELDU about 40K cycles a page (secondary source) => ~13 us at 3 GHz.
    costs: { ...LINUX_COSTS, swap_io_page: LINUX_COSTS.swap_io_page + 13_000 },
  },
  tdx: {
    name: 'tdx',
    description: 'Intel TDX: MKTME plus a per-line MAC and owner bit; private memory pinned',
    nrKeyids: 63,
    kernelCanReadEncrypted: false,
    swap: 'pinned',
    migrate: 'pinned',
    integrity: 'mac',
    aliasCoherent: false,
    costs: LINUX_COSTS,
  },
  none: {
    name: 'none',
    description: 'No memory encryption engine',
    nrKeyids: 0,
    kernelCanReadEncrypted: true,
    swap: 'reencrypt',
    migrate: 'reencrypt',
    integrity: 'none',
    aliasCoherent: true,
    costs: LINUX_COSTS,
  },
} as const satisfies Record<string, HardwareProfile>;

export type ProfileName = keyof typeof PROFILES;
export const PROFILE_NAMES = Object.keys(PROFILES) as ProfileName[];

export function getProfile(name: string): HardwareProfile {
  if (!Object.hasOwn(PROFILES, name))
    throw new RangeError(`hardware: unknown profile '${name}' (expected one of: ${PROFILE_NAMES.join(', ')})`);
  return PROFILES[name as ProfileName];
}
