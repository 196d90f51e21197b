// x86 memory protection keys, the one use the kernel makes of them on its own:
// execute-only memory (arch/x86/mm/pkeys.c, arch/x86/include/asm/pkeys.h,
// Linux 6.18). A CPU whose OS enabled protection keys (X86_FEATURE_OSPKE,
// "ospke" in /proc/cpuinfo) cannot express an execute-only page in its page
// tables, so mmap and mprotect with exactly PROT_EXEC give the VMA a key of
// its own whose PKRU bits deny data access: the "execute-only pkey".
//
// In Linux the key is four bits of vm_flags (VM_PKEY_BIT0-3), outside
// VM_ACCESS_FLAGS, so VMAs with different keys neither merge nor share an
// anon_vma (vma.ts compares Vma.pkey where Linux compares those bits). The
// model has no pkey_alloc(2), pkey_mprotect(2) or WRPKRU: every thread's PKRU
// stays as init_pkru_value sets it, access-disabled for keys 1-15, so any key
// other than 0 denies loads and stores (arch_vma_access_permitted).
import type { Kernel, MmStruct } from './kernel.js';
import { PROT_EXEC } from './uapi.js';
import type { Vma } from './vma.js';

/** ARCH_DEFAULT_PKEY */
export const DEFAULT_PKEY = 0;

/**
 * execute_only_pkey(mm): the mm's execute-only key; DEFAULT_PKEY when the CPU
 * has no OSPKE. Linux allocates it on first use with mm_pkey_alloc, which
 * hands out the lowest free key; key 0 is the default one and nothing else
 * allocates keys here, so it is always key 1 (what /proc/pid/smaps shows as
 * "ProtectionKey: 1" on such a host).
 */
export function executeOnlyPkey(k: Kernel, mm: MmStruct): number {
  if (k.config.pku !== true) return DEFAULT_PKEY;
  mm.execOnlyPkey = 1;
  return mm.execOnlyPkey;
}

/** do_mmap: the key of a new mapping, from the raw 64-bit prot register. */
export function mmapPkey(k: Kernel, mm: MmStruct, protR: bigint): number {
  return protR === BigInt(PROT_EXEC) ? executeOnlyPkey(k, mm) : DEFAULT_PKEY;
}

/**
 * arch_override_mprotect_pkey for mprotect(2), which asks for no key: exactly
 * PROT_EXEC takes the execute-only key. Any other prot moves a VMA that is
 * execute-only (vma_is_pkey_exec_only: access flags exactly VM_EXEC, with
 * the execute-only key) back to the default key, and leaves any other VMA
 * its own key. Here the only key besides 0 is the execute-only one, and only
 * exactly PROT_EXEC gives it, so every VMA with a key is execute-only: both
 * cases come to the default key.
 */
export function mprotectPkey(k: Kernel, mm: MmStruct, prot: number): number {
  return prot === PROT_EXEC ? executeOnlyPkey(k, mm) : DEFAULT_PKEY;
}

/** Do loads and stores to vma fault for its key (PKRU as init_pkru_value leaves it)? */
export const pkeyDeniesData = (vma: Vma): boolean => vma.pkey !== DEFAULT_PKEY;
