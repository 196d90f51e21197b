// A timed round taken apart: where the simulator's time per op goes at each
// worker-CPU count, and how far more CPUs could take it. For each round it
// keeps the round's time on the kernel thread, what the kernel thread waited
// for the CPUs (workloads/session.ts cpuRounds), and each CPU's own time on
// its share. So a round splits into
//   kernel   the kernel thread's work outside the CPUs' round: the design's
//            syscalls (mmap, add_key, madvise, munmap, ...), the workload's
//            own steps
//   slowest  the slowest CPU's work (the round waits for it)
//   extra    what the kernel waited beyond that: handing the round out and
//            hearing it done, CPUs that started late, and kernel work done
//            while the CPUs ran (migration's move_pages)
// and `all cpus` is every CPU's work added up. At n CPUs, the best round of
// a simulator whose hand-offs cost nothing and whose CPUs split the 1-CPU
// work evenly is kernel(1) + all(1) / n: `bound` is that over the 1-CPU
// round. Medians over the rounds, each part's own median (they need not add
// up to the round's). The CPU counts of a cell are timed in short turns
// (measureGroup), so that each is compared with the 1-CPU rounds of the
// same stretch of the host's speed. README, "A round taken apart", has its
// figures.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startCell, timedRound, type CellStart } from '../workloads/cell.js';
import { plannedConfig, type CellPlan } from './runner.js';
import { median } from './stats.js';
import { humanNs } from './text.js';

/** One round's parts, ms. */
export interface RoundParts {
  readonly round: number;
  readonly kernel: number;
  readonly slowest: number;
  readonly all: number;
  readonly extra: number;
}

/** A cell's rounds at one CPU count: medians, ms per round. */
export interface PhaseRow extends RoundParts {
  readonly threads: number;
  readonly rounds: number;
  /** ops of one round */
  readonly ops: number;
  /**
   * The round against the same cell's at 1 CPU, the median over windows
   * timed side by side (measureGroup); absent: the two medians' ratio.
   */
  readonly vs1?: number;
}

/** A cell that ran no timed rounds: why. */
export interface PhaseSkip {
  readonly threads: number;
  readonly why: string;
}

/** One cell at every CPU count asked for. */
export interface PhaseCell {
  readonly name: string;
  readonly rows: readonly (PhaseRow | PhaseSkip)[];
}

export interface PhaseOptions {
  readonly seed: number;
  readonly timeMs: number;
  readonly warmupMs: number;
  readonly tmpdir: string;
  /** measureGroup: each cell's turn, ms (WINDOW_MS) */
  readonly windowMs?: number;
}

/**
 * A cell's turn when measureGroup times a cell's CPU counts in turn. The
 * host's speed moves over seconds (README, "A round taken apart"): 1.5 s of
 * one CPU count and then 1.5 s of the other put the two in different
 * stretches of it, and their ratio moved with it (dax-stacking plain-mmap at
 * 2 CPUs 1.78, 1.13 and 1.20 times its 1-CPU round in three runs within an
 * hour). Windows this short alternate within one stretch.
 */
export const WINDOW_MS = 40;

/** The parts of one round, from the round's time and the kernel's sums before and after it (ms). */
export function roundParts(
  round: number,
  before: { readonly waitMs: number; readonly slowestMs: number; readonly workMs: number },
  after: { readonly waitMs: number; readonly slowestMs: number; readonly workMs: number },
): RoundParts {
  const wait = after.waitMs - before.waitMs;
  const slowest = after.slowestMs - before.slowestMs;
  return { round, kernel: round - wait, slowest, all: after.workMs - before.workMs, extra: wait - slowest };
}

/** Each part's median over the rounds. */
export function medianParts(xs: readonly RoundParts[]): RoundParts {
  const m = (k: keyof RoundParts) => median(xs.map((x) => x[k]));
  return { round: m('round'), kernel: m('kernel'), slowest: m('slowest'), all: m('all'), extra: m('extra') };
}

/**
 * Time one cell at each of its CPU counts (`cells`: one group of
 * groupByCell, its 1-CPU cell first if there is one), taken apart: all
 * of them started, then windows of o.windowMs each in turn, o.warmupMs of
 * turns and then o.timeMs of them for every cell. A count's `vs1` is the
 * median over the turns of its window's median round against the 1-CPU
 * cell's window of the same turn: the two ran in the same stretch of the
 * host's speed.
 */
export async function measureGroup(cells: readonly CellPlan[], o: PhaseOptions): Promise<(PhaseRow | PhaseSkip)[]> {
  const workdir = mkdtempSync(join(o.tmpdir, 'memcrypt-phases-'));
  const started: { p: CellPlan; c: CellStart | null; why: string }[] = [];
  try {
    for (const p of cells) {
      const dir = join(workdir, String(started.length));
      mkdirSync(dir);
      const c = await startCell(plannedConfig(p, o.seed, dir));
      started.push(c.timeable ? { p, c, why: '' } : { p, c: null, why: `not timed (${c.outcome})` });
      if (!c.timeable) await c.session.close();
    }
    const timed = started.filter((s) => s.c !== null);
    const win = Math.max(1, o.windowMs ?? WINDOW_MS);
    const parts = timed.map(() => [] as RoundParts[]);
    const ratios = timed.map(() => [] as number[]);
    let n = 0;
    const one = timed.findIndex((s) => s.p.threads === 1);
    // one turn: every cell a window; kept, its rounds and each cell's ratio to the 1-CPU cell's window
    const turn = async (keep: boolean): Promise<void> => {
      const med: number[] = [];
      for (const [i, s] of timed.entries()) {
        const c = s.c!;
        const sums = c.session.cpuRounds;
        const rounds: number[] = [];
        const end = performance.now() + win;
        do {
          const before = { ...sums };
          const t = performance.now();
          await timedRound(c, ++n);
          const r = roundParts(performance.now() - t, before, sums);
          rounds.push(r.round);
          if (keep) parts[i].push(r);
        } while (performance.now() < end);
        med.push(median(rounds));
      }
      if (keep && one >= 0) for (const i of timed.keys()) ratios[i].push(med[i] / med[one]);
    };
    for (const end = performance.now() + o.warmupMs * timed.length; performance.now() < end; ) await turn(false);
    for (const end = performance.now() + o.timeMs * timed.length; performance.now() < end; ) await turn(true);
    return started.map((s) => {
      const i = timed.indexOf(s);
      if (i < 0) return { threads: s.p.threads, why: s.why };
      const vs1 = ratios[i].length > 0 ? { vs1: median(ratios[i]) } : {};
      return { threads: s.p.threads, rounds: parts[i].length, ops: s.c!.ops, ...medianParts(parts[i]), ...vs1 };
    });
  } finally {
    for (const s of started) if (s.c !== null) await s.c.session.close();
    rmSync(workdir, { recursive: true, force: true });
  }
}

/** The planned cells grouped by everything but the CPU count, in plan order. */
export function groupByCell(cells: readonly CellPlan[]): { name: string; cells: CellPlan[] }[] {
  const groups = new Map<string, { name: string; cells: CellPlan[] }>();
  for (const p of cells) {
    const swap = p.swap === 'none' ? '' : `, ${p.swap} swap`;
    const name = `${p.workload.name} ${p.design} (${p.kernel}, ${p.hardware}, ${p.backend}${swap})`;
    let g = groups.get(name);
    if (g === undefined) groups.set(name, (g = { name, cells: [] }));
    g.cells.push(p);
  }
  for (const g of groups.values()) g.cells.sort((a, b) => a.threads - b.threads);
  return [...groups.values()];
}

const us = (ms: number): string => humanNs(ms * 1e6);
/** The 1-CPU row's kernel part plus its CPUs' work split `ways` ways, over its round. */
const boundAt = (one: RoundParts, ways: number): string => ((one.kernel + one.all / ways) / one.round).toFixed(2);
const isRow = (r: PhaseRow | PhaseSkip): r is PhaseRow => 'rounds' in r;

/**
 * The report: a table per cell, 72 columns. `scaling`: per CPU count, how
 * many times one thread's work that many threads of native work got through
 * side by side in this process (hostref.ts hostScaling); each row of such a
 * count gets the bound at that instead of a perfect split.
 */
export function formatPhases(cells: readonly PhaseCell[], scaling: ReadonlyMap<number, number> = new Map()): string {
  const out: string[] = [
    'Where a timed round goes (medians of the rounds, each part its own):',
    'kernel = the kernel thread outside the CPUs\' round; slowest = the',
    'slowest CPU\'s work; all = every CPU\'s work; extra = what the kernel',
    'waited beyond the slowest CPU (hand-offs, late starts, its own work',
    'meanwhile); bound = kernel(1) + all(1) / cpus over the 1-CPU round:',
    'the best more CPUs could do with free hand-offs and an even split.',
  ];
  const w = [4, 6, 8, 8, 8, 8, 8, 5, 5];
  const line = (cols: string[]) => '  ' + cols.map((c, i) => c.padStart(w[i])).join(' ');
  for (const cell of cells) {
    out.push('', cell.name);
    out.push(line(['cpus', 'rounds', 'round', 'kernel', 'slowest', 'all', 'extra', 'vs 1', 'bound']));
    const one = cell.rows.find((r): r is PhaseRow => isRow(r) && r.threads === 1);
    for (const r of cell.rows) {
      if (!isRow(r)) {
        out.push(`  ${String(r.threads).padStart(w[0])} ${r.why}`);
        continue;
      }
      const vs = r.vs1 !== undefined ? r.vs1.toFixed(2) : one === undefined ? '-' : (r.round / one.round).toFixed(2);
      const bound = one === undefined ? '-' : boundAt(one, r.threads);
      out.push(line([String(r.threads), String(r.rounds), us(r.round), us(r.kernel), us(r.slowest), us(r.all), us(r.extra), vs, bound]));
      const s = scaling.get(r.threads);
      if (one !== undefined && r.threads > 1 && s !== undefined)
        out.push(`${' '.repeat(w[0] + 3)}the host did ${s.toFixed(2)}x one thread's work with ${r.threads}: bound ${boundAt(one, s)} at that`);
    }
  }
  return out.join('\n');
}
