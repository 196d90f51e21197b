// Modelled cost: the hardware profile's cost table times the cell's exact
// event counters, per op. It says what the same events would cost on the
// machine the costs were measured on (MODEL-FACTS.md), independent of how
// fast this simulator runs them.
import type { CostTable } from '../hardware/profiles.js';
import type { Counter } from '../interfaces/conformance.js';

export function modelledNs(costs: CostTable, c: Readonly<Record<Counter, number>>): number {
  return (
    (c.syscalls - c.enosys) * costs.syscall +
    c.enosys * costs.enosys +
    c.faults * costs.fault +
    c.clflush_lines * costs.clflush_line +
    c.tlb_shootdowns * costs.tlb_shootdown_cpu +
    c.key_programs * costs.pconfig +
    c.migrated * costs.page_copy +
    (c.swap_out + c.swap_in) * costs.swap_io_page +
    (c.pages_encrypted + c.pages_decrypted) * costs.crypto_page +
    c.direct_map_removed * costs.direct_map_remove
  );
}

export function modelledNsPerOp(costs: CostTable, c: Readonly<Record<Counter, number>>, ops: number): number {
  return ops > 0 ? modelledNs(costs, c) / ops : NaN;
}
