// The round shared by 'fault' and 'enosys-fallback': the program gets memory
// through the design's helper, every CPU writes and reads back its pages
// (first touch: faults), and the memory is given back.
import type { RoundReport } from './workload.js';
import { NO_LEAK } from '../interfaces/conformance.js';
import { leaksOf, observe, roundSeed, sumDone } from './workload.js';
import type { CellSession } from './session.js';

export async function allocTouchRelease(s: CellSession, n: number, counting: boolean, opsPerRound: number): Promise<RoundReport> {
  const a = s.allocate();
  if ('failed' in a)
    return { ops: opsPerRound, errors: 0, fault: 0, errno: a.failed, refused: true, fallback: false, observed: null, leaks: NO_LEAK, detail: 'the helper gave up' };
  const seed = roundSeed(s.cfg.seed, n);
  const done = sumDone(await s.runCpus({ round: n, addr: a.addr, seed, passes: 1, verifyOnly: false, writeOnly: false }));
  const observed = observe(s, a.addr, seed, counting);
  s.design.release(s.env, a);
  // after the release: what the freed frames still hold is what the next owner gets
  const leaks = leaksOf(s, [seed], counting);
  return {
    ops: opsPerRound,
    errors: done.errors,
    fault: done.fault,
    errno: a.errno,
    refused: false,
    fallback: a.fallback,
    observed,
    leaks,
    detail: a.fallback ? 'fell back to plain memory' : 'as designed',
  };
}
