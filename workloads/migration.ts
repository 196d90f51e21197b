// migration: while the CPUs keep writing and verifying their pages, the
// kernel moves every page to the other NUMA node (move_pages in chunks,
// yielding to serve the CPUs' traps between chunks). A CPU that meets a page
// in flight waits on its migration entry; TLBs are shot down before each
// page moves. One op = one page the kernel was asked to move.
import { PAGE_SIZE } from '../hardware/types.js';
import { NR } from '../kernel/syscalls.js';
import type { Workload } from './workload.js';
import { leaksOf, observe, roundSeed, sumDone } from './workload.js';

const CHUNK = 8;
const PASSES = 3;

export const migration: Workload = {
  name: 'migration',
  description: 'NUMA migration of every page under concurrent writers',
  op: 'page',
  kernels: ['patched'],
  pages: 64,
  swap: false,
  dax: false,
  memLimit: () => Infinity,
  async setup(s) {
    const a = s.allocate();
    if ('failed' in a) return a.failed;
    s.region = a;
    // first touch, so there is something to move
    const done = sumDone(await s.runCpus({ round: -1, addr: a.addr, seed: roundSeed(s.cfg.seed, -1), passes: 1, verifyOnly: false, writeOnly: true }));
    return done.fault;
  },
  async round(s, n, counting) {
    const a = s.region!;
    const seed = roundSeed(s.cfg.seed, n);
    const node = (n + 1) % 2;
    let failed = 0, firstErr = 0, next = 0, started = false;
    // the kernel's work, one chunk of move_pages per step, between serving
    // traps; it starts once a CPU is running, so the two overlap. Until then
    // the kernel waits as it does for a trap, not in a busy loop: on a busy
    // host (other processes on every CPU) that loop held a host CPU the
    // worker CPU needed to start, and every round took one scheduler tick
    // (4.0 ms, 62.5 us an op, 1 and 2 worker CPUs alike, on this 2-vCPU VM)
    const step = (): boolean | 'wait' => {
      if (!started && !(started = s.anyCpuRunning())) return 'wait';
      if (next >= s.pages) return false;
      const pages: number[] = [];
      for (let i = next; i < Math.min(next + CHUNK, s.pages); i++) pages.push(a.addr + i * PAGE_SIZE);
      next += CHUNK;
      const status: number[] = [];
      const r = s.env.sys(NR.move_pages, 0, pages, pages.map(() => node), status);
      for (const st of r < 0 ? [r] : status)
        if (st < 0) {
          failed++;
          firstErr ||= st;
        }
      return next < s.pages;
    };
    const cpus = s.runCpus({ round: n, addr: a.addr, seed, passes: PASSES, verifyOnly: false, writeOnly: false }, step);
    started = true;
    while (step()); // if the CPUs finished first
    const done = sumDone(await cpus);
    return {
      ops: s.pages,
      errors: done.errors,
      fault: done.fault,
      errno: firstErr || a.errno,
      refused: failed > 0,
      fallback: a.fallback,
      observed: observe(s, a.addr, seed, counting),
      // the setup's first touch wrote round -1's pattern: old frames may hold either
      leaks: leaksOf(s, [roundSeed(s.cfg.seed, -1), seed], counting),
      detail: failed > 0 ? `${failed} of ${s.pages} pages did not move` : `moved to node ${node}`,
    };
  },
};
