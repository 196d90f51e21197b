// The cost table the model multiplies the exact event counters with: what one
// event costs on a real machine, in nanoseconds. Every entry says where its
// figure comes from. These are the sourced defaults; `memcrypt-bench
// calibrate` (bench/calibrate/) replaces the host-side entries with figures
// measured on the machine it runs on, and marks them `measured`.
//
// Sources: ../shared/MODEL-FACTS.md ("Costs measured on a 2-vCPU AMD EPYC VM",
// "Hardware"). The host-side defaults are that VM's 2026-11-25 figures (the
// midpoints of the ranges); they drift by 2x between days, which is why
// calibrate exists.

export const COST_NAMES = [
  'syscall',
  'enosys',
  'fault',
  'clflush_line',
  'tlb_shootdown_cpu',
  'pconfig',
  'page_copy',
  'swap_io_page',
  'ewb_eldu_page',
  'crypto_page',
  'direct_map_remove',
  'vma_split',
  'zap_page',
  'vm_exit',
  'conversion',
  'pin_page',
] as const;
export type CostName = (typeof COST_NAMES)[number];

/** measured: on the host that wrote the calibration; literature: a published or secondary figure. */
export type Provenance = 'measured' | 'literature';

export interface CostEntry {
  /** ns per event */
  readonly ns: number;
  readonly provenance: Provenance;
  /** where the figure comes from, one line */
  readonly source: string;
}

export type CostTable = Readonly<Record<CostName, CostEntry>>;

/** What each entry is the cost of, for reports (at most 28 characters: a column of a 72-column table). */
export const COST_MEANING: Readonly<Record<CostName, string>> = {
  syscall: 'a trivial syscall (getppid)',
  enosys: 'a syscall that is missing',
  fault: 'anon first-touch fault',
  clflush_line: 'clflush of one 64 B line',
  tlb_shootdown_cpu: 'TLB-shootdown IPI per CPU',
  pconfig: 'programming a KeyID',
  page_copy: 'copying a 4 KiB page',
  swap_io_page: '4 KiB swap write or read',
  ewb_eldu_page: 'SGX EWB/ELDU of a page',
  crypto_page: 'inline encryption of a page',
  direct_map_remove: 'direct-map removal of a page',
  vma_split: 'VMA split or merge',
  zap_page: 'unmap+free a present page',
  vm_exit: 'a VM exit and re-entry',
  conversion: 'private<->shared, per page',
  pin_page: 'long-term pin of a page',
};

const MF = 'MODEL-FACTS.md, 2-vCPU AMD EPYC VM, Linux 6.18, 2026-11-25';

export const DEFAULT_COSTS: CostTable = {
  syscall: { ns: 205, provenance: 'literature', source: `getppid 166-244 ns (${MF})` },
  enosys: { ns: 148, provenance: 'literature', source: `ENOSYS 107-188 ns (${MF})` },
  fault: { ns: 2550, provenance: 'literature', source: `anon first touch 1.8-3.3 us/page (${MF})` },
  clflush_line: { ns: 300 / 64, provenance: 'literature', source: `clflush of a cached 4 KiB page ~0.3 us, /64 lines (${MF})` },
  tlb_shootdown_cpu: { ns: 1000, provenance: 'literature', source: 'cross-CPU TLB-shootdown IPI ~1 us per target CPU (estimate; needs two CPUs of one mm to measure)' },
  pconfig: { ns: 1000, provenance: 'literature', source: 'PCONFIG key programming ~1 us (estimate; ring 0, MKTME hardware only)' },
  page_copy: { ns: 200, provenance: 'literature', source: '4 KiB copy at ~20 GB/s (estimate)' },
  swap_io_page: { ns: 10_000, provenance: 'literature', source: 'one 4 KiB swap I/O on NVMe ~10 us (estimate)' },
  ewb_eldu_page: { ns: 13_000, provenance: 'literature', source: 'SGX EWB/ELDU ~40K cycles per page at 3 GHz (secondary source, MODEL-FACTS.md)' },
  crypto_page: { ns: 0, provenance: 'literature', source: 'MKTME/TME encrypt "at the speed of the memory bus" (MKTME RFC cover letter)' },
  direct_map_remove: { ns: 13_000, provenance: 'literature', source: `memfd_secret first touch ~15 us/page minus an anon fault (${MF}, older figure)` },
  vma_split: { ns: 3700, provenance: 'literature', source: `mprotect split+merge ~3.9 us, minus the syscall (${MF})` },
  zap_page: { ns: 100, provenance: 'literature', source: 'madvise(DONTNEED) per present page ~0.1 us (estimate)' },
  vm_exit: {
    ns: 850,
    provenance: 'literature',
    source: 'KVM_RUN with one VMRUN/#VMEXIT ~2,530 cycles on EPYC (M. Roth, lkml 2020-12, SVM vmsave/vmload patch), at ~3 GHz',
  },
  conversion: {
    ns: 1000,
    provenance: 'literature',
    source: 'RMPUPDATE + PVALIDATE and flush per 4 KiB page ~1 us (estimate; the exit and the ioctls are priced as such)',
  },
  pin_page: { ns: 100, provenance: 'literature', source: 'pin_user_pages_fast(FOLL_LONGTERM) per 4 KiB page ~0.1 us (estimate)' },
};

/** A table whose every entry is a finite ns >= 0, or the name of the first one that is not. */
export function checkCostTable(t: Record<string, unknown>): string | null {
  for (const n of COST_NAMES) {
    const e = t[n] as Partial<CostEntry> | undefined;
    if (e === undefined || typeof e !== 'object' || e === null) return `${n}: missing`;
    if (typeof e.ns !== 'number' || !Number.isFinite(e.ns) || e.ns < 0) return `${n}.ns: expected a number >= 0`;
    if (e.provenance !== 'measured' && e.provenance !== 'literature') return `${n}.provenance: expected 'measured' or 'literature'`;
    if (typeof e.source !== 'string' || e.source === '') return `${n}.source: expected a non-empty string`;
  }
  return null;
}
