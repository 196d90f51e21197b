// A run that is stopped: SIGINT writes the cells done as a partial result
// set and leaves no temp files; SIGKILL leaves its run directory, which the
// next run removes. Every run here has its own TMPDIR.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../bench/cli.js', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'memcrypt-sig-test-'));
after(() => rmSync(root, { recursive: true, force: true }));

// 9 cells of at least 0.4 s each: a run that is still going when the test
// signals it 1.5 s in (cells no longer pay for starting their worker CPUs)
const runArgs = (out: string, repeat: number) => [
  CLI, 'run', '-w', 'fault,swap', '-i', 'plain-mmap,encrypt-mprotect,madvise-encrypt', '-t', '1', '--repeat', String(repeat),
  '--time', '400', '--warmup', '10', '--warmup-cells', '0', '--costs', 'defaults', '--out', out, '--no-history', '-f', 'none',
];

const runDirs = (tmp: string) => readdirSync(tmp).filter((n) => n.startsWith('memcrypt-run-'));

/** Poll until cond() holds (the run got that far); fails after limitMs. */
async function until(cond: () => boolean, what: string, limitMs = 60_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > limitMs) assert.fail(`waited ${limitMs} ms for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('stopping a run', () => {
  it('SIGINT: the cells done are written as a marked partial set, exit 130, no temp files left', async () => {
    const tmp = mkdtempSync(join(root, 'int-'));
    const out = join(root, 'int.csv');
    const child = spawn(process.execPath, runArgs(out, 1), { env: { ...process.env, TMPDIR: tmp }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exit = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    await until(() => runDirs(tmp).length === 1, 'the run directory');
    const dir = join(tmp, runDirs(tmp)[0]!);
    assert.equal(statSync(dir).mode & 0o777, 0o700, 'the run directory is the owner\'s only');
    // after a cell or two (a cell directory has come and gone at least once)
    await new Promise((r) => setTimeout(r, 1500));
    child.kill('SIGINT');
    assert.equal(await exit, 130, stderr);
    assert.match(stderr, /SIGINT: stopping after this cell/);
    const meta = JSON.parse(readFileSync(out.replace(/\.csv$/, '.meta.json'), 'utf8')) as { stopped: string; run_id: string };
    const m = /^SIGINT after (\d+) of (\d+) cells$/.exec(meta.stopped);
    assert.ok(m !== null, meta.stopped);
    const n = Number(m[1]), total = Number(m[2]);
    assert.ok(n >= 1 && n < total, meta.stopped);
    const rows = readFileSync(out, 'utf8').trim().split('\n').filter((l) => !l.startsWith('#'));
    assert.equal(rows.length, 1 + n, 'the header and one row per cell done');
    assert.ok(readFileSync(out.replace(/\.csv$/, '.txt'), 'utf8').includes(`stopped  ${meta.stopped}: a partial result set`));
    // the partial set is a valid one: report reads it
    const rep = spawnSync(process.execPath, [CLI, 'report', out], { encoding: 'utf8' });
    assert.equal(rep.status, 0, rep.stderr);
    assert.deepEqual(runDirs(tmp), [], 'no run directory left');
  });

  it('SIGKILL leaves the run directory; the next run removes it', async () => {
    const tmp = mkdtempSync(join(root, 'kill-'));
    const child = spawn(process.execPath, runArgs(join(root, 'kill.csv'), 3), { env: { ...process.env, TMPDIR: tmp }, stdio: 'ignore' });
    const exit = new Promise<void>((r) => child.on('close', () => r()));
    // into the second process, so that a child process is running too
    await until(() => runDirs(tmp).length === 1 && existsSync(join(tmp, runDirs(tmp)[0]!)) && readdirSync(join(tmp, runDirs(tmp)[0]!)).some((n) => n.startsWith('repeat-')), 'the repeat directory');
    const left = runDirs(tmp)[0]!;
    assert.match(left, new RegExp(`^memcrypt-run-${child.pid}-`));
    child.kill('SIGKILL');
    await exit;
    assert.deepEqual(runDirs(tmp), [left], 'SIGKILL cannot clean up');
    const next = spawnSync(process.execPath, [CLI, 'run', '-w', 'fault', '-i', 'plain-mmap', '-t', '1', '--repeat', '1', '--time', '20', '--warmup', '10', '--costs', 'defaults', '--out', join(root, 'next.csv'), '--no-history', '-f', 'none'], { env: { ...process.env, TMPDIR: tmp }, encoding: 'utf8' });
    assert.equal(next.status, 0, next.stderr);
    assert.match(next.stderr, new RegExp(`removed 1 temp directory of runs that were killed \\(${left}\\)`));
    assert.deepEqual(runDirs(tmp), []);
  });
});
