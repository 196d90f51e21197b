// enosys-fallback: what a careful program pays when the kernel lacks the
// design (ENOSYS, ENOENT or EINVAL, then plain memory), next to the same
// program on a kernel that has it. One op = one allocation of 8 pages,
// touched and released.
import { allocTouchRelease } from './alloc-touch.js';
import type { Workload } from './workload.js';

export const enosysFallback: Workload = {
  name: 'enosys-fallback',
  description: 'a careful program on a kernel without the design, and with it',
  op: 'allocation',
  kernels: ['unpatched', 'patched'],
  pages: 8,
  swap: false,
  dax: false,
  memLimit: () => Infinity,
  setup: async () => 0,
  round: (s, n, counting) => allocTouchRelease(s, n, counting, 1),
};
