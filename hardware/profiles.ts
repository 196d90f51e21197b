// Hardware profiles as plain data (presets), one per memory-encryption
// technology. The kernel model reads these fields; it never branches on the
// profile's name. Sources: ../shared/MODEL-FACTS.md ("Hardware"). What events
// cost is not a property of the profile: hardware/costs.ts and calibrate.

export type SwapMode =
  | 'reencrypt' // kernel reads through the keyed alias, re-encrypts on swap-in (MKTME)
  | 'ewb-eldu' // hardware exports an encrypted, versioned blob (SGX EWB/ELDU)
  | 'pinned'; // kernel cannot read the page: memory is pinned, never swapped (SEV, TDX)

export type MigrateMode =
  | 'reencrypt' // kernel copies through per-KeyID mappings (MKTME)
  | 'firmware' // only the security firmware can move pages (SEV SEND/RECEIVE); the kernel gets EBUSY
  | 'pinned'; // not movable at all

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
  /**
   * Can software hand the engine a key of its own (MKTME's PCONFIG
   * KEYID_SET_KEY_DIRECT)? Only then can memory be read again after a power
   * cycle (persistent memory, Device DAX). SEV keys are made by the security
   * processor, the SGX key by the CPU, TDX private keys by the TDX module:
   * none is ever given or shown to software.
   */
  readonly keyFromSoftware: boolean;
  /**
   * Which confidential-VM technology KVM can use on this CPU: SEV (the SEV,
   * SEV-ES and SEV-SNP VM types), TDX, or none (KVM_X86_DEFAULT_VM only).
   * Its KeyIDs are then the VMs' keys (ASIDs, HKIDs).
   */
  readonly confidentialVm: 'none' | 'sev' | 'tdx';
}

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
    keyFromSoftware: true,
    confidentialVm: 'none',
  },
  sev: {
    name: 'sev',
    description: 'AMD SEV: guest memory unreadable by the host kernel, pinned by KVM',
    // KVM's SEV, SEV-ES and SNP VM types: SNP needs EPYC 7003 (Milan) or later
    nrKeyids: 509, // ASIDs usable for SEV guests on EPYC 7002 (order of magnitude)
    kernelCanReadEncrypted: false,
    swap: 'pinned', // KVM_MEMORY_ENCRYPT_REG_REGION pins guest memory
    migrate: 'firmware', // SEND/RECEIVE (later COPY) through the PSP only
    integrity: 'none',
    aliasCoherent: false,
    keyFromSoftware: false,
    confidentialVm: 'sev',
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
    keyFromSoftware: false,
    confidentialVm: 'none',
    // EWB/ELDU cost: hardware/costs.ts (ewb_eldu_page), counted as swap_sealed.
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
    keyFromSoftware: false,
    confidentialVm: 'tdx',
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
    keyFromSoftware: false,
    confidentialVm: 'none',
  },
} as const satisfies Record<string, HardwareProfile>;

export type ProfileName = keyof typeof PROFILES;
export const PROFILE_NAMES = Object.keys(PROFILES) as ProfileName[];

export function getProfile(name: string): HardwareProfile {
  if (!Object.hasOwn(PROFILES, name))
    throw new RangeError(`hardware: unknown profile '${name}' (expected one of: ${PROFILE_NAMES.join(', ')})`);
  return PROFILES[name as ProfileName];
}
