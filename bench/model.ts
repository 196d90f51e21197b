// The modelled cost: the cell's exact event counters times the cost table
// (calibrated on this host, or the sourced defaults), per op, one term per
// cost-table entry. It says what the same events would cost on a real
// machine, independent of how fast this simulator runs them: this is the
// figure the designs are argued with.
//
// Terms are kept in whole picoseconds (thousandths of a ns, the CSV's
// precision) and the total is their sum, so the columns of a row add up to
// modelled_ns_per_op exactly, as written.
import { COST_NAMES, type CostName, type CostTable } from '../hardware/costs.js';
import type { CounterColumn } from './schema.js';

/** How many events of each cost a cell's counters hold. */
export const TERM_EVENTS: Readonly<Record<CostName, { readonly of: string; readonly count: (c: Readonly<Record<CounterColumn, number>>) => number }>> = {
  syscall: { of: 'syscalls - enosys', count: (c) => c.syscalls - c.enosys },
  enosys: { of: 'enosys', count: (c) => c.enosys },
  fault: { of: 'faults', count: (c) => c.faults },
  clflush_line: { of: 'clflush_lines', count: (c) => c.clflush_lines },
  tlb_shootdown_cpu: { of: 'tlb_shootdowns', count: (c) => c.tlb_shootdowns },
  pconfig: { of: 'key_programs', count: (c) => c.key_programs },
  page_copy: { of: 'migrated + bounce_bytes / 4096', count: (c) => c.migrated + c.bounce_bytes / 4096 },
  swap_io_page: { of: 'swap_out + swap_in', count: (c) => c.swap_out + c.swap_in },
  ewb_eldu_page: { of: 'swap_sealed', count: (c) => c.swap_sealed },
  crypto_page: { of: 'pages_encrypted + pages_decrypted', count: (c) => c.pages_encrypted + c.pages_decrypted },
  direct_map_remove: { of: 'direct_map_removed', count: (c) => c.direct_map_removed },
  vma_split: { of: 'vma_splits + vma_merges', count: (c) => c.vma_splits + c.vma_merges },
  zap_page: { of: 'pages_zapped', count: (c) => c.pages_zapped },
  vm_exit: { of: 'stage2_faults + vm_exits', count: (c) => c.stage2_faults + c.vm_exits },
  conversion: { of: 'conversions', count: (c) => c.conversions },
  pin_page: { of: 'pinned_pages', count: (c) => c.pinned_pages },
};

/** Short names of the terms for 72-column reports. */
export const TERM_SHORT: Readonly<Record<CostName, string>> = {
  syscall: 'syscall',
  enosys: 'enosys',
  fault: 'fault',
  clflush_line: 'clflush',
  tlb_shootdown_cpu: 'tlb-ipi',
  pconfig: 'pconfig',
  page_copy: 'copy',
  swap_io_page: 'swap-io',
  ewb_eldu_page: 'ewb',
  crypto_page: 'crypto',
  direct_map_remove: 'directmap',
  vma_split: 'vma',
  zap_page: 'zap',
  vm_exit: 'vm-exit',
  conversion: 'convert',
  pin_page: 'pin',
};

export interface Modelled {
  /** ns per op, the sum of the terms */
  readonly total: number;
  readonly terms: Readonly<Record<CostName, number>>;
}

const _milli = (x: number): number => Math.round(x * 1000);

/** The modelled cost per op, term by term; NaN everywhere when ops is 0. */
export function modelCell(costs: CostTable, c: Readonly<Record<CounterColumn, number>>, ops: number): Modelled {
  const terms = {} as Record<CostName, number>;
  let sum = 0;
  for (const n of COST_NAMES) {
    const m = ops > 0 ? _milli((TERM_EVENTS[n].count(c) * costs[n].ns) / ops) : NaN;
    terms[n] = m / 1000;
    sum += m;
  }
  return { total: sum / 1000, terms };
}

/** a - b per op, both as written (thousandths). */
export const overNs = (a: number, b: number): number => (_milli(a) - _milli(b)) / 1000;

/** The n largest terms, largest first, with their share of the total (0..1). */
export function topTerms(terms: Readonly<Record<CostName, number>>, n: number): { name: CostName; ns: number; share: number }[] {
  const total = COST_NAMES.reduce((a, k) => a + terms[k], 0);
  return COST_NAMES.filter((k) => terms[k] > 0)
    .sort((a, b) => terms[b] - terms[a] || COST_NAMES.indexOf(a) - COST_NAMES.indexOf(b))
    .slice(0, n)
    .map((k) => ({ name: k, ns: terms[k], share: total > 0 ? terms[k] / total : 0 }));
}
