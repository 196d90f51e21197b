// swap: the process may keep only half its memory resident; every round the
// CPUs write and read back all of it, so pages go to the swap file and come
// back (re-encrypted for their new frame). One op = one page written and
// read back.
import type { Workload } from './workload.js';
import { leaksOf, observe, roundSeed, sumDone } from './workload.js';

export const swap: Workload = {
  name: 'swap',
  description: 'memory pressure: twice the memory limit, swapped',
  op: 'page',
  kernels: ['patched'],
  pages: 64,
  swap: true,
  dax: false,
  memLimit: (pages) => Math.max(1, pages >> 1),
  async setup(s) {
    const a = s.allocate();
    if ('failed' in a) return a.failed;
    s.region = a;
    return 0;
  },
  async round(s, n, counting) {
    const a = s.region!;
    const seed = roundSeed(s.cfg.seed, n);
    const done = sumDone(await s.runCpus({ round: n, addr: a.addr, seed, passes: 1, verifyOnly: false, writeOnly: false }));
    return {
      ops: s.pages,
      errors: done.errors,
      fault: done.fault,
      errno: a.errno,
      refused: false,
      fallback: a.fallback,
      observed: observe(s, a.addr, seed, counting),
      leaks: leaksOf(s, [seed], counting),
      detail: `${s.k.counters.get('swap_out')} pages swapped out so far`,
    };
  },
};
