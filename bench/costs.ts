// Which cost table a run uses, decided before any cell runs: `--costs FILE`
// (a calibration document), `--costs defaults` (the sourced defaults of
// hardware/costs.ts), or, with neither, results/calibration.json when it is
// there; when it is not, `run` calibrates this host first and keeps the file,
// and says so. Without a C compiler that falls back to the defaults, in one line.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_COSTS, type CostTable } from '../hardware/costs.js';
import { loadCalibration, runCalibration, saveCalibration, type Calibration } from './calibrate/calibrate.js';
import { readInput } from './io.js';

export interface ResolvedCosts {
  readonly costs: CostTable;
  /** one line: where the table came from (a row's cost_source) */
  readonly source: string;
  /** what was done to get it, for stderr (calibrated now, no compiler, ...) */
  readonly note: string | null;
}

export const DEFAULTS_SOURCE = 'sourced defaults (hardware/costs.ts, MODEL-FACTS.md)';

const _calibrated = (c: Calibration, file: string): string => `calibrated on ${c.host.hostname} ${c.created_at.slice(0, 10)} (${file})`;

/** Calibrate this host now (reps repetitions a figure) and keep the result at `file`. */
export function calibrateInto(file: string, reps: number): { ok: true; calibration: Calibration } | { ok: false; why: string } {
  const dir = mkdtempSync(join(tmpdir(), 'memcrypt-calibrate-'));
  try {
    const r = runCalibration({ reps, workdir: dir });
    if (r.ok) saveCalibration(file, r.calibration);
    return r;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The table for a run. `opt` is what --costs said (undefined: nothing);
 * `auto` is results/calibration.json. A named file that cannot be read or is
 * malformed throws an InputError (one line) before any work starts.
 */
export function resolveCosts(opt: string | undefined, auto: string, autoName = auto, reps = 5): ResolvedCosts {
  if (opt === 'defaults') return { costs: DEFAULT_COSTS, source: DEFAULTS_SOURCE, note: null };
  const [file, name] = opt !== undefined ? [opt, opt] : existsSync(auto) ? [auto, autoName] : [null, autoName];
  if (file !== null) {
    const c = loadCalibration(readInput(file), name);
    return { costs: c.costs, source: _calibrated(c, name), note: null };
  }
  const t0 = performance.now();
  const r = calibrateInto(auto, reps);
  if (!r.ok) return { costs: DEFAULT_COSTS, source: DEFAULTS_SOURCE, note: `cannot calibrate this host (${r.why}); the model uses the sourced defaults` };
  const s = ((performance.now() - t0) / 1000).toFixed(1);
  return { costs: r.calibration.costs, source: _calibrated(r.calibration, autoName), note: `no cost table yet: calibrated this host in ${s} s, kept in ${autoName}` };
}
