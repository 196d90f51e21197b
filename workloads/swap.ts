// swap: the process may keep only a quarter of its memory resident; every
// round the CPUs write and read back all of it, so pages go to the swap file
// and come back (re-encrypted for their new frame). One op = one page
// written and read back.
//
// The limit is half of one CPU's share of the pages (each CPU writes its
// share, then reads it back) at 2 CPUs and above, and at 1 CPU the same as
// at 2. A share that fits the limit swaps nothing back in when its CPU runs
// alone. With the limit at half the region, free-running 2-CPU rounds where
// one CPU finished before the other began swapped 32 pages out and in, and
// rounds where they interleaved 128, at 10-20x the time: 226 and 69 of 300
// timed rounds (plain-mmap, 2-vCPU development VM), so a process's median
// depended on its mix. With a share beyond the limit, every timed round
// swapped every page out and back in (150 of 150 rounds, plain-mmap and
// madvise-encrypt each).
import type { Workload } from './workload.js';
import { leaksOf, observe, roundSeed, sumDone } from './workload.js';

export const swap: Workload = {
  name: 'swap',
  description: 'memory pressure: four times the memory limit, swapped',
  op: 'page',
  kernels: ['patched'],
  pages: 64,
  swap: true,
  dax: false,
  memLimit: (pages, threads) => Math.max(1, Math.floor(pages / (2 * Math.max(2, threads)))),
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
