// Temp files of a run and stopping a run. Every cell works in a directory
// under one run directory, memcrypt-run-<pid>-XXXXXX in $TMPDIR (mode 0700;
// the swap file and DAX image inside are 0600), removed when the run ends.
// A run killed with SIGKILL cannot remove it: the next run removes every
// run directory whose process is gone. SIGINT and SIGTERM ask the run to
// stop after the cell it is in; a second one stops it at once.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PREFIX = 'memcrypt-run-';

/** Is process pid alive (signal 0: EPERM means it is, someone else's)? */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Remove run directories of processes that are gone; their names, for a note. */
export function sweepStaleRuns(dir = tmpdir()): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return removed;
  }
  for (const name of names) {
    const m = /^memcrypt-run-(\d+)-/.exec(name);
    if (m === null || alive(Number(m[1]))) continue;
    rmSync(join(dir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

const live = new Set<string>();

/** Remove this process's run directories now (an exit that cannot wait for the run). */
export function removeRunDirs(): void {
  for (const d of live) rmSync(d, { recursive: true, force: true });
  live.clear();
}

/**
 * A new run directory for this process (mkdtemp makes it 0700). It goes
 * when the process exits, whatever the way but SIGKILL; the caller removes
 * it sooner when it is done with it.
 */
export function makeRunDir(dir = tmpdir()): string {
  const d = mkdtempSync(join(dir, `${PREFIX}${process.pid}-`));
  if (live.size === 0) process.once('exit', removeRunDirs);
  live.add(d);
  return d;
}

/** The exit status of a process stopped by this signal, as a shell reports it (128 + its number). */
export const signalExitCode = (sig: string): number => 128 + (sig === 'SIGINT' ? 2 : 15);

/** Why a run stopped early: the signal's name, or null while it has not. */
export interface StopFlag {
  readonly reason: string | null;
}

/**
 * SIGINT and SIGTERM set the flag (the run stops after its cell, and writes
 * what it has); a second signal removes the temp files and exits 128 +
 * signal number. dispose() puts the default handlers back.
 */
export function onStopSignals(say: (line: string) => void): StopFlag & { dispose(): void } {
  const flag = { reason: null as string | null };
  const handler = (sig: NodeJS.Signals): void => {
    if (flag.reason !== null) {
      say(`${sig} again: stopping now, nothing written`);
      removeRunDirs();
      process.exit(signalExitCode(sig));
    }
    flag.reason = sig;
    say(`${sig}: stopping after this cell and writing the cells done so far (again to stop now)`);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return {
    get reason() {
      return flag.reason;
    },
    dispose() {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    },
  };
}
