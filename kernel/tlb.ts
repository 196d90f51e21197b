// TLB shootdown (flush_tlb_mm_range): after the kernel changed or cleared PTEs
// of mm, and before it reuses a frame or changes a page's KeyID, every CPU
// running mm must have dropped its cached translations.
import type { Kernel, MmStruct } from './kernel.js';

export function flushTlbMm(k: Kernel, mm: MmStruct): void {
  for (const c of k.localCpus) if (c.mmId === mm.id) c.flushTlb();
  const sent = k.smp.shootdown(0, mm.id);
  k.count('tlb_shootdowns', sent);
}
