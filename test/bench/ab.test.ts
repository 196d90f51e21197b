// ab: this build against another checkout in the same processes. The
// statistics on fixed numbers; the command against a copy of this build, the
// same and with a change in behaviour; its one-line refusals. No timing is
// asserted: the verdicts on timed cells here come from two processes, which
// can never reach significance (too few).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'csv-parse/sync';
import { abVerdicts, behaviourDiff, cellConfig, cellName, checkPair, loadBuild, runAbJob, shortCellName, type AbJob, defaultProcesses, formatAb, type AbCellResult, type AbSide } from '../../bench/ab.js';
import { InputError } from '../../bench/io.js';
import { lastErrorLine, namedCellKey } from '../../bench/repeat.js';
import { minSignedRankP, signedRank } from '../../bench/stats.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(ROOT, 'dist/bench/cli.js');

describe('signed-rank test', () => {
  it('gives the exact two-sided p of the sign patterns', () => {
    // every sign alike: the two extreme patterns of 2^5
    assert.deepEqual(signedRank([0.1, 0.2, 0.3, 0.4, 0.5]), { w: 15, p: 2 / 32, n: 5 });
    assert.equal(signedRank([-0.1, -0.2, -0.3, -0.4, -0.5]).p, 2 / 32);
    // ranks 1..5, W- = 2: patterns with a sum <= 2 are {}, {1}, {2}
    assert.deepEqual(signedRank([1, -2, 3, 4, 5]), { w: 13, p: (2 * 3) / 32, n: 5 });
    // tied magnitudes share rank 1.5: W+ = 4.5 of 6; sums <= 1.5 are {}, {a}, {b}
    assert.deepEqual(signedRank([1, -1, 2]), { w: 4.5, p: 6 / 8, n: 3 });
    // zeros dropped, as Wilcoxon did
    assert.equal(signedRank([0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]).n, 6);
    assert.equal(signedRank([]).p, 1);
    assert.equal(minSignedRankP(8), 2 / 256);
    assert.equal(minSignedRankP(0), 1);
  });

  it('takes enough processes by default that a change reaches alpha after Holm with one process of the smaller quarter against it', () => {
    const oneAgainst = (n: number): number => signedRank(Array.from({ length: n }, (_, i) => (i + 1 === Math.ceil(n / 4) ? -(i + 1) : i + 1))).p;
    for (const [cells, n] of [
      [1, 7],
      [4, 10],
      [16, 12],
      [78, 15],
    ] as const) {
      assert.equal(defaultProcesses(cells, 0.05), n, `${cells} cells`);
      assert.ok(oneAgainst(n) * cells < 0.05);
      assert.ok(oneAgainst(n - 1) * cells >= 0.05);
    }
    // one process against at rank 2 of 7: sign patterns with W- <= 2 are 3 of 128
    assert.equal(oneAgainst(7), (2 * 3) / 128);
    assert.ok(defaultProcesses(40, 0.01) > defaultProcesses(40, 0.05));
  });
});

const side = (over: Partial<AbSide> = {}): AbSide => ({ outcome: 'encrypted', errno: '', counters: { syscalls: 3, faults: 64 }, ops: 64, timeable: true, ...over });
const res = (key: string, ratio: number, o: Partial<AbCellResult> = {}): AbCellResult => ({
  key,
  base: side(),
  now: side(),
  baseNs: 1000,
  nowNs: 1000 * ratio,
  ratio,
  pairs: 10,
  ...o,
});
const A = 'native|mktme|madvise-encrypt|patched|none|fault|1';
const B = 'native|mktme|plain-mmap|patched|none|fault|1';
const C = 'native|mktme|dev-mktme|unpatched|plain|swap|2';

describe('ab verdicts', () => {
  it('a slowdown every process agrees on is a REGRESSION, a speed-up faster, noise ~; in the given order', () => {
    const procs = [1.11, 1.09, 1.12, 1.1, 1.08, 1.13, 1.1, 1.11].map((x, i) => [
      res(B, [1.01, 0.99, 1.0, 1.02, 0.98, 1.01, 0.99, 1.0][i]),
      res(A, x),
      res(C, 0.8 + i * 0.001),
    ]);
    const r = abVerdicts(procs, 5, 0.05, [A, B, C]);
    assert.deepEqual(r.cells.map((c) => c.key), [A, B, C]);
    assert.deepEqual(r.cells.map((c) => c.verdict), ['REGRESSION', '~', 'faster']);
    assert.equal(r.regressions, 1);
    assert.equal(r.tested, 3);
    assert.ok(Math.abs(r.cells[0].changePct - 10.5) < 1e-9);
    assert.equal(r.cells[0].pHolm, 3 * (2 / 256));
    assert.deepEqual(r.cells[0].ratios.length, 8);
  });

  it('a significant change under the threshold is ~; too few processes say so', () => {
    const small = abVerdicts([1, 2, 3, 4, 5, 6, 7, 8].map((i) => [res(A, 1.03 + i * 0.001)]), 5, 0.05);
    assert.equal(small.cells[0].verdict, '~');
    assert.ok(small.cells[0].pHolm < 0.05);
    // 5 processes: 2/32 = 0.0625 at best
    const few = abVerdicts([1, 2, 3, 4, 5].map(() => [res(A, 1.5)]), 5, 0.05);
    assert.equal(few.cells[0].verdict, 'insufficient processes');
    assert.equal(few.regressions, 0);
    assert.match(formatAb(few, []), /too few: these processes\s+cannot reach alpha/);
  });

  it('behaviour: outcome, errno, ops and every shared counter are compared; a side that cannot run the cell is one', () => {
    assert.deepEqual(behaviourDiff(side(), side()), []);
    assert.deepEqual(behaviourDiff(side(), side({ counters: { syscalls: 4, faults: 64, only_new: 1 } })), ['syscalls 3 -> 4']);
    assert.deepEqual(behaviourDiff(side(), side({ outcome: 'plaintext-fallback', errno: 'EINVAL' })), ['outcome encrypted -> plaintext-fallback', 'errno - -> EINVAL']);
    assert.deepEqual(behaviourDiff(side({ errno: 'ENOSYS' }), side({ ops: 32 })), ['errno ENOSYS -> -', 'ops 64 -> 32']);
    const r = abVerdicts(
      [
        [res(A, NaN, { pairs: 0, base: side({ outcome: 'error', error: 'unknown design', timeable: false }) }), res(B, 1, { now: side({ counters: { syscalls: 4, faults: 64 } }) })],
      ],
      5,
      0.05,
    );
    assert.equal(r.behaviourChanges, 2);
    assert.equal(r.cells[0].error, 'base: unknown design');
    assert.equal(r.cells[0].verdict, 'not timed');
    const text = formatAb(r, [['new', 'abc /a/very/long/path/' + 'x'.repeat(80)]]);
    for (const l of text.split('\n')) assert.ok(l.length <= 72, l);
    assert.match(text, /syscalls 3 -> 4/);
  });

  it("a child's death is told by its error's own line, not node's version line", () => {
    const stderr = [
      'memcrypt-bench: process 1: 16 cells',
      'file:///x/dist/hardware/xts-native.js:62',
      '    addon.crypt(h, src, dst);',
      '          ^',
      '',
      'RangeError: crypt: data unit out of range',
      '    at crypt (file:///x/dist/hardware/xts-native.js:62:11)',
      '    at Object.decrypt (file:///x/dist/hardware/xts-native.js:81:13)',
      '',
      'Node.js v20.20.2',
      '',
    ].join('\n');
    assert.equal(lastErrorLine(stderr), 'RangeError: crypt: data unit out of range');
    assert.equal(lastErrorLine('memcrypt-bench: cell x: EFAULT\n'), 'memcrypt-bench: cell x: EFAULT');
    assert.equal(lastErrorLine('\n'), undefined);
  });

  it('gives each build the cell as run does: swap over dm-crypt for the encrypted swap device only', () => {
    const spec = { backend: 'native', hardware: 'mktme', design: 'encrypt-mprotect', kernel: 'patched', swap: 'encrypted', workload: 'swap', threads: 2 } as const;
    const wl = { name: 'swap' };
    assert.deepEqual(cellConfig(spec, wl, 7, '/w'), {
      design: 'encrypt-mprotect',
      hardware: 'mktme',
      kernel: 'patched',
      workload: wl,
      threads: 2,
      seed: 7,
      backend: 'native',
      workdir: '/w',
      encryptedSwap: true,
    });
    assert.equal(cellConfig({ ...spec, swap: 'plain' }, wl, 7, '/w').encryptedSwap, false);
    assert.equal(cellConfig({ ...spec, swap: 'none' }, wl, 7, '/w').encryptedSwap, false);
  });

  it('names cells as the report does', () => {
    assert.equal(cellName(A), 'fault madvise-encrypt t1');
    assert.equal(cellName(C), 'swap dev-mktme unpatched plain-swap t2');
    // the table's 28 columns: the report's short names, every field that tells cells apart
    assert.equal(shortCellName(A), 'fault madv-enc t1');
    assert.equal(shortCellName(C), 'swap dev-mktme unpat t2');
    // cut to 28 columns; the CSV keeps the whole key
    assert.equal(shortCellName('openssl|sev|encrypt-mprotect|unpatched|encrypted|swap|2'), 'swap-dmc enc-mprot unpat se~');
    assert.equal(shortCellName('native|mktme|madvise-encrypt|unpatched|none|enosys-fallback|2'), 'enosys madv-enc unpat t2');
  });
});

describe('memcrypt-bench ab', () => {
  const dir = mkdtempSync(join(tmpdir(), 'memcrypt-ab-test-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  // a second checkout of this build: its own dist (own modules) and addon file, the same packages
  const copy = (name: string): string => {
    const d = join(dir, name);
    mkdirSync(d);
    cpSync(join(ROOT, 'dist'), join(d, 'dist'), { recursive: true, filter: (f) => f !== join(ROOT, 'dist/test') });
    cpSync(join(ROOT, 'package.json'), join(d, 'package.json'));
    symlinkSync(join(ROOT, 'node_modules'), join(d, 'node_modules'));
    cpSync(join(ROOT, 'build'), join(d, 'build'), { recursive: true });
    return d;
  };
  let same: string, changed: string;
  before(() => {
    same = copy('same');
    changed = copy('changed');
    // the base maps one page more per allocation: one syscall more a round
    const f = join(changed, 'dist/interfaces/plain-mmap.js');
    const src = readFileSync(f, 'utf8');
    const patched = src.replace('const addr = plainAnon(env, len, PROT_READ | PROT_WRITE);', 'plainAnon(env, 4096, PROT_READ | PROT_WRITE);\n        const addr = plainAnon(env, len, PROT_READ | PROT_WRITE);');
    assert.notEqual(patched, src);
    writeFileSync(f, patched);
  });
  const ab = (args: string[]) => spawnSync(process.execPath, [CLI, 'ab', ...args], { encoding: 'utf8', timeout: 120_000 });
  const FAST = ['-w', 'fault', '-t', '1', '--repeat', '2', '--time', '20', '--warmup', '10', '--order-seed', '3'];

  it('against a copy of itself: every counter alike, each process a ratio, too few processes for a verdict; CSV and a 72-column report', () => {
    const out = join(dir, 'same.csv');
    // madvise-encrypt: both builds' native addons encrypt in one process
    const r = ab(['--vs', same, ...FAST, '-i', 'plain-mmap,madvise-encrypt', '-o', out]);
    assert.equal(r.status, 0, r.stderr);
    const rows = parse(readFileSync(out, 'utf8'), { columns: true }) as Record<string, string>[];
    assert.deepEqual(rows.map((x) => x.cell), ['native|mktme|plain-mmap|patched|none|fault|1', 'native|mktme|madvise-encrypt|patched|none|fault|1']);
    for (const row of rows) {
      assert.equal(row.ratios.split(' ').length, 2);
      assert.ok(row.ratios.split(' ').every((x) => Number(x) > 0));
      assert.equal(row.verdict, 'insufficient processes');
      assert.equal(row.behaviour, '');
    }
    assert.match(r.stdout, /^base: +\S+ .*same/m);
    assert.match(r.stdout, /^fault plain-mmap t1 .* too few$/m);
    assert.match(r.stdout, /^fault madv-enc t1 .* too few$/m);
    assert.match(r.stdout, /0 REGRESSION, 0 behaviour changes/);
    for (const l of r.stdout.trimEnd().split('\n')) assert.ok(l.length <= 72, l);
  });

  it('against a base that behaves otherwise: the counters that differ, exit 1 (0 with --fail-on regression)', () => {
    const r = ab(['--vs', changed, ...FAST, '-i', 'plain-mmap']);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stdout, /behaviour changes \(the counting rounds differ\):\n {2}fault plain-mmap t1:\n {4}syscalls (\d+) -> (\d+)/);
    const [, b, n] = /syscalls (\d+) -> (\d+)/.exec(r.stdout)!;
    assert.equal(Number(b), Number(n) + 1);
    assert.equal(ab(['--vs', changed, ...FAST, '-i', 'plain-mmap', '--fail-on', 'regression']).status, 0);
  });

  it('a timed round that fails in one build is that cell\'s behaviour change, and the other cells still run', () => {
    const failing = copy('failing');
    const f = join(failing, 'dist/workloads/cell.js');
    const src = readFileSync(f, 'utf8');
    const at = 'export async function timedRound(c, n) {';
    assert.ok(src.includes(at));
    // the base's madvise-encrypt rounds read back wrong from the third on
    const start = 'export async function startCell(cfg) {';
    assert.ok(src.includes(start));
    writeFileSync(
      f,
      src
        .replace(at, `${at}\n    if (n >= 3 && c.session.cfg.design === 'madvise-encrypt') throw new Error(\`round \${n}: 1 pages read back wrong, fault 0\`);`)
        // and it has no encrypt-mprotect
        .replace(start, `${start}\n    if (cfg.design === 'encrypt-mprotect') throw new Error('unknown design: encrypt-mprotect\\n    at x');`),
    );
    const out = join(dir, 'failing.csv');
    const r = ab(['--vs', failing, ...FAST, '-i', 'plain-mmap,madvise-encrypt,encrypt-mprotect', '-o', out]);
    assert.equal(r.status, 1, r.stderr);
    // the first process runs every cell, the second only the one both builds could time
    assert.match(r.stderr, /process 1 of 2: 3 cells\nmemcrypt-bench: process 2 of 2: 1 cells\n/);
    assert.match(r.stdout, /fault madvise-encrypt t1:\n {4}base: a timed round: round \d+: 1 pages read back wrong/);
    assert.match(r.stdout, /fault encrypt-mprotect t1:\n {4}base: unknown design: encrypt-mprotect\n/);
    const rows = parse(readFileSync(out, 'utf8'), { columns: true }) as Record<string, string>[];
    const row = (d: string) => rows.find((x) => x.cell.includes(`|${d}|`))!;
    assert.equal(row('plain-mmap').ratios.split(' ').length, 2);
    assert.equal(row('madvise-encrypt').verdict, 'not timed');
    assert.equal(row('encrypt-mprotect').verdict, 'not timed');
    assert.equal(row('encrypt-mprotect').outcome, 'error -> encrypted');
    assert.equal(row('plain-mmap').outcome, 'plaintext');
  });

  it("a child's job: every cell in the job's order, progress after each, its results written for the parent", async () => {
    const jobDir = mkdtempSync(join(dir, 'job-'));
    const cells = (['plain-mmap', 'madvise-encrypt'] as const).map((design) => ({ backend: 'native', hardware: 'mktme', design, kernel: 'patched', swap: 'none', workload: 'fault', threads: 1 }) as const);
    const job: AbJob = { now: ROOT, base: same, cells, order: [1, 0], seed: 1, timeMs: 5, warmupMs: 4, pairSeed: 9, tmpdir: jobDir, out: join(jobDir, 'out.json'), parent: process.ppid };
    writeFileSync(join(jobDir, 'job.json'), JSON.stringify(job));
    const seen: [number, number, string][] = [];
    await runAbJob(join(jobDir, 'job.json'), (done, total, key) => seen.push([done, total, key]));
    const keys = cells.map(namedCellKey);
    assert.deepEqual(seen, [
      [1, 2, keys[1]],
      [2, 2, keys[0]],
    ]);
    const res = JSON.parse(readFileSync(job.out, 'utf8')) as AbCellResult[];
    assert.deepEqual(res.map((x) => x.key), [keys[1], keys[0]]);
    assert.ok(res.every((x) => x.pairs >= 5 && x.ratio > 0 && behaviourDiff(x.base, x.now).length === 0));
  });

  it('refuses a base that is not another built checkout, each case in its own words', async () => {
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    const linked = copy('linked');
    rmSync(join(linked, 'build'), { recursive: true });
    symlinkSync(join(ROOT, 'build'), join(linked, 'build'));
    const broken = copy('broken');
    writeFileSync(join(broken, 'dist/workloads/cell.js'), 'export const startCell = (;\n');
    // a build from before timedRound, and one whose registry lost getWorkload
    const old = copy('old');
    const cellJs = join(old, 'dist/workloads/cell.js');
    writeFileSync(cellJs, readFileSync(cellJs, 'utf8').replace('export async function timedRound(', 'async function timedRound('));
    const noReg = copy('noreg');
    const regJs = join(noReg, 'dist/workloads/registry.js');
    writeFileSync(regJs, readFileSync(regJs, 'utf8').replace('export function getWorkload(', 'function getWorkload('));
    // what the command does before any work: checkPair, then loadBuild
    const refusal = async (vs: string): Promise<string> => {
      try {
        checkPair(ROOT, vs, `--vs ${vs}`);
        await loadBuild(vs, `--vs ${vs}`);
      } catch (e) {
        assert.ok(e instanceof InputError, String(e));
        return e.message;
      }
      return 'accepted';
    };
    for (const [vs, why] of [
      [join(dir, 'nowhere'), /^--vs .*nowhere: no such directory$/],
      [ROOT, /is this checkout; give another one/],
      [empty, /not a built memcrypt-bench checkout: no .*cell\.js \(run npm ci there\)/],
      [linked, /xts_native\.node is this checkout's \(a link\): give it its own build/],
      [broken, /^--vs .*broken: cannot load its build: Unexpected token/],
      [old, /^--vs .*old: its build has no startCell\/timedRound\/getWorkload: too old or not memcrypt-bench$/],
      [noReg, /^--vs .*noreg: its build has no startCell\/timedRound\/getWorkload/],
    ] as const)
      assert.match(await refusal(vs), why);
    assert.equal(await refusal(same), 'accepted');
    // from the command line: one line, exit 2, nothing on stdout, for either kind
    for (const [vs, why] of [
      [join(dir, 'nowhere'), /^memcrypt-bench: --vs .*nowhere: no such directory\n$/],
      [broken, /^memcrypt-bench: --vs .*broken: cannot load its build: Unexpected token ';'\n$/],
      [same, /^memcrypt-bench: --repeat: .*\n$/],
    ] as const) {
      const r = ab(['--vs', vs, ...FAST, ...(vs === same ? ['--repeat', '1'] : [])]);
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, why);
      assert.equal(r.stdout, '');
    }
  });
});
