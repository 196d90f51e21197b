// fault: the first-touch baseline. Each round maps fresh memory through the
// design and the CPUs touch every page once (a fault each, with
// prep_encrypted_page's flush and zeroing), read it back, and unmap it.
// One op = one page.
import { allocTouchRelease } from './alloc-touch.js';
import type { Workload } from './workload.js';

export const fault: Workload = {
  name: 'fault',
  description: 'first touch of fresh encrypted memory (page faults)',
  op: 'page',
  kernels: ['patched'],
  pages: 64,
  swap: false,
  dax: false,
  memLimit: () => Infinity,
  setup: async () => 0,
  round: (s, n, counting) => allocTouchRelease(s, n, counting, s.pages),
};
