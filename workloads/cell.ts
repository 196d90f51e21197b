// A cell's life: open the session, set the workload up, run the counting
// round and observe the outcome. The caller then times further rounds (or not,
// when the outcome says there is nothing to time) and closes the session.
import { NO_LEAK, type Counter, type Outcome } from '../interfaces/conformance.js';
import { E } from '../kernel/errno.js';
import { outcomeOf, setupOutcome, type CellOutcome, type RoundReport } from './workload.js';
import { CellSession, type CellConfig } from './session.js';

export interface CellStart extends CellOutcome {
  readonly session: CellSession;
  readonly counters: Readonly<Record<Counter, number>>;
  /** ops of one round */
  readonly ops: number;
  readonly detail: string;
  /** further rounds are worth timing */
  readonly timeable: boolean;
  /** the counting round's program fell back to plain memory */
  readonly fallback: boolean;
}

/** Outcomes whose program ran its scenario to the end: worth timing and modelling. */
export const TIMEABLE: ReadonlySet<Outcome> = new Set<Outcome>(['encrypted', 'secret', 'leaked', 'plaintext', 'plaintext-fallback']);

export async function startCell(cfg: CellConfig): Promise<CellStart> {
  const session = await CellSession.open(cfg);
  try {
    const wl = cfg.workload;
    // counted rounds run their CPUs in lockstep: the same counters in every run
    session.lockstep = true;
    const r = await wl.setup(session);
    const rep: RoundReport | null = r === 0 ? await wl.round(session, 0, true) : null;
    session.lockstep = false;
    if (rep === null) {
      const o = r === -E.EFAULT ? { outcome: 'crashed' as const, errno: 'EFAULT' as const, leaks: NO_LEAK } : setupOutcome(r, r > 0);
      return { ...o, session, counters: session.counters(0), ops: 0, detail: 'setup failed', timeable: false, fallback: false };
    }
    const o = outcomeOf(rep);
    const timeable = TIMEABLE.has(o.outcome);
    return { ...o, session, counters: session.counters(rep.errors, rep.procs), ops: rep.ops, detail: rep.detail, timeable, fallback: rep.fallback };
  } catch (e) {
    await session.close();
    throw e;
  }
}

/**
 * A timed round. It must do what the counting round did: a round that lost
 * data, faulted, or fell back where the counting round did not (say, out of
 * KeyIDs) throws, rather than be timed as if it were the same cell.
 */
export async function timedRound(c: Pick<CellStart, 'session' | 'fallback'>, n: number): Promise<number> {
  const rep = await c.session.cfg.workload.round(c.session, n, false);
  if (rep.errors > 0 || rep.fault < 0)
    throw new Error(`round ${n}: ${rep.errors} pages read back wrong, fault ${rep.fault}`);
  if (rep.fallback !== c.fallback)
    throw new Error(`round ${n}: ${rep.fallback ? `fell back to plain memory (errno ${rep.errno})` : 'did not fall back'}, unlike the counting round`);
  return rep.ops;
}

export type { CellConfig } from './session.js';
