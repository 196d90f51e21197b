// compare's in-process contract: loadRun's refusals of mismatched files,
// compareRuns' verdicts (behaviour changes, U test + Holm, regressions) and
// the text and CSV it prints. Fast: no CLI processes (compare.test.ts has those).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { compareRuns, formatCompare, formatCompareCsv, loadRun, type CompareOptions, type LoadedRun } from '../../bench/compare.js';
import { formatCsv, formatMeta, formatSamples } from '../../bench/csv.js';
import { InputError } from '../../bench/io.js';
import { cellKey, type Row, type RunMeta } from '../../bench/schema.js';
import { mkMeta, mkRow, untimed } from './fixtures.js';

const OPTS: CompareOptions = { thresholdPct: 5, alpha: 0.05 };
/** 9 untied samples, median 100. */
const S9 = [96, 97, 98, 99, 100, 101, 102, 103, 104];
const times = (xs: number[], f: number) => xs.map((x) => x * f);

const cell = (over: Partial<Row> = {}): Row => mkRow({ run_id: 'r1', ...over });

/** A run as loadRun returns it, built in memory: rows[i] has samples[i]. */
function mem(file: string, rows: Row[], samples: number[][], meta: Partial<RunMeta> = {}): LoadedRun {
  return { file, meta: mkMeta({ run_id: 'r1', seed: 1, ...meta }), rows, samples: new Map(rows.map((r, i) => [cellKey(r), samples[i]])) };
}

/**
 * The rich scenario: a regression, a significant speed-up, unchanged and untimed cells, behaviour changes,
 * cells on one side only. The long file name, host name and three counter changes make those lines wrap.
 */
function scenario(): { base: LoadedRun; now: LoadedRun } {
  const slow = cell({ workload: 'fault', interface: 'encrypt-mprotect' });
  const same = { workload: 'fault', interface: 'dev-mktme' } as const;
  const fast = cell({ workload: 'swap', interface: 'encrypt-mprotect', swap: 'encrypted' });
  const mig = { workload: 'migration', interface: 'madvise-encrypt', ...untimed } as const;
  const t2 = { workload: 'fault', interface: 'encrypt-mprotect', threads: 2 } as const;
  const enosys = { workload: 'enosys-fallback', interface: 'dev-mktme', kernel: 'unpatched', ...untimed } as const;
  const secret = { workload: 'fault', interface: 'memfd-secret', ...untimed } as const;
  const S5 = [10_000, 10_100, 10_200, 10_300, 10_400];
  const base = mem(
    'results/baseline-2025-11-25.csv',
    [
      slow,
      cell(same),
      fast,
      cell({ ...mig, outcome: 'encrypted' }),
      cell(t2),
      cell({ ...enosys, outcome: 'plaintext-fallback', errno: 'ENOSYS' }),
      cell({ ...secret, outcome: 'unsupported', errno: 'ENOSYS' }),
      cell({ workload: 'dax-stacking', interface: 'memfd-secret' }),
      cell({ workload: 'swap', interface: 'plain-mmap', swap: 'plain' }),
    ],
    [S9, S9, S5, [], S9, [], [], S9, S9],
  );
  const now = mem(
    'new.csv',
    [
      slow,
      cell({ ...same, faults: 65, pages_encrypted: 66, crypto_bytes: 270336 }),
      fast,
      cell({ ...mig, outcome: 'data-loss' }),
      cell({ ...t2, faults: 99 }),
      cell({ ...enosys, outcome: 'encrypted' }),
      cell({ ...secret, outcome: 'unsupported', errno: 'EPERM' }),
      cell({ workload: 'fault', interface: 'encrypt-mprotect', kernel: 'unpatched' }),
    ],
    [times(S9, 1.2), S9.map((x) => x + 0.5), times(S5, 0.9), [], S9, [], [], S9],
    { host: 'build-server-with-a-rather-long-host-name' },
  );
  return { base, now };
}

const dir = mkdtempSync(join(tmpdir(), 'memcrypt-cmp-unit-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Write name.csv, name.meta.json (run r1) and name.samples.json (of run samplesRun); return the CSV path. */
function files(name: string, rows: Row[], cells: { key: string; samples: number[] }[], samplesRun = 'r1'): string {
  const csv = join(dir, `${name}.csv`);
  writeFileSync(csv, formatCsv(rows));
  writeFileSync(join(dir, `${name}.meta.json`), formatMeta(mkMeta({ run_id: 'r1', seed: 7 })));
  writeFileSync(join(dir, `${name}.samples.json`), formatSamples(samplesRun, cells));
  return csv;
}

/** loadRun(csv) must throw an InputError whose one-line message is exactly `message`. */
function refused(csv: string, message: string): void {
  assert.throws(
    () => loadRun(csv),
    (e: unknown) => {
      assert.ok(e instanceof InputError, String(e));
      assert.equal(e.message, message);
      return true;
    },
  );
}

describe('loadRun', () => {
  const timed = cell({ workload: 'fault', interface: 'encrypt-mprotect', sim_rounds: 9 });
  const notTimed = cell({ workload: 'swap', interface: 'encrypt-mprotect', swap: 'plain', ...untimed });
  const ok = [
    { key: cellKey(timed), samples: S9 },
    { key: cellKey(notTimed), samples: [] },
  ];

  it('reads the CSV, its meta and its samples: an untimed cell may have no samples', () => {
    const csv = files('ok', [timed, notTimed], ok);
    const run = loadRun(csv);
    assert.equal(run.file, csv);
    assert.equal(run.meta.run_id, 'r1');
    assert.equal(run.meta.seed, 7);
    assert.deepEqual(run.rows.map(cellKey), [cellKey(timed), cellKey(notTimed)]);
    assert.deepEqual([...run.samples], [
      [cellKey(timed), S9],
      [cellKey(notTimed), []],
    ]);
  });

  it('refuses a CSV whose rows are of another run than its meta file', () => {
    const csv = files('otherrows', [{ ...timed, run_id: 'r9' }, notTimed], ok);
    refused(csv, `${csv}: run r9 in the CSV, but ${join(dir, 'otherrows.meta.json')} is of run r1: not one result set`);
  });

  it('refuses the samples of another run', () => {
    const csv = files('othersamples', [timed, notTimed], ok, 'r2');
    refused(csv, `${join(dir, 'othersamples.samples.json')}: samples of run r2, but ${join(dir, 'othersamples.meta.json')} is of run r1: not one result set`);
  });

  it('refuses samples that lack a cell of the CSV', () => {
    const stranger = cell({ workload: 'migration', interface: 'dev-mktme' });
    const csv = files('lacking', [timed, notTimed], [ok[0], { key: cellKey(stranger), samples: [1] }]);
    refused(csv, `${join(dir, 'lacking.samples.json')}: no samples for cell ${cellKey(notTimed)} of ${csv}: not the samples of this run`);
  });

  it('refuses a timed cell without samples', () => {
    const csv = files('empty', [timed, notTimed], [{ key: cellKey(timed), samples: [] }, ok[1]]);
    refused(csv, `${join(dir, 'empty.samples.json')}: cell ${cellKey(timed)} has 9 timed rounds in ${csv} but no samples here`);
  });

  it('refuses samples with more cells than the CSV', () => {
    const extra = cell({ workload: 'migration', interface: 'dev-mktme' });
    const csv = files('extra', [timed, notTimed], [...ok, { key: cellKey(extra), samples: S9 }]);
    refused(csv, `${join(dir, 'extra.samples.json')}: 3 cells, but ${csv} has 2: not the samples of this run`);
  });
});

describe('compareRuns', () => {
  const a = cell({ workload: 'fault', interface: 'encrypt-mprotect' });
  const b = cell({ workload: 'fault', interface: 'dev-mktme' });

  it('a run against itself: no notes, no changes, nothing significant', () => {
    const run = mem('a.csv', [a, b], [S9, S9]);
    const r = compareRuns(run, run, OPTS);
    assert.deepEqual(r.notes, []);
    assert.equal(r.timedCells, 2);
    assert.equal(r.regressions, 0);
    assert.equal(r.behaviourChanges, 0);
    assert.equal(r.geomeanRatio, 1);
    for (const c of r.cells) {
      assert.deepEqual(c.changes, []);
      assert.equal(c.significant, false);
      assert.equal(c.regression, false);
      assert.equal(c.changePct, 0);
    }
  });

  it('counters of 1-thread cells and outcomes are compared exactly', () => {
    const t2 = cell({ workload: 'migration', interface: 'madvise-encrypt', threads: 2 });
    const base = mem('b.csv', [a, b, t2], [S9, S9, S9]);
    const now = mem('n.csv', [{ ...a, faults: 65, swap_out: 3 }, { ...b, outcome: 'unsupported', errno: 'ENOSYS' }, { ...t2, faults: 99 }], [S9, S9, S9]);
    const r = compareRuns(base, now, OPTS);
    assert.deepEqual(r.cells.map((c) => c.changes), [
      [
        { column: 'faults', base: 64, now: 65 },
        { column: 'swap_out', base: 0, now: 3 },
      ],
      [{ column: 'outcome', base: 'encrypted', now: 'unsupported/ENOSYS' }],
      [], // 2 threads: counters are not deterministic there
    ]);
    assert.equal(r.behaviourChanges, 2);
    // the other way round: the errno goes, and an errno alone is a change too
    const back = compareRuns(now, mem('m.csv', [a, { ...b, outcome: 'unsupported', errno: 'EPERM' }, t2], [S9, S9, S9]), OPTS);
    assert.deepEqual(back.cells[0].changes.map((c) => c.column), ['faults', 'swap_out']);
    assert.deepEqual(back.cells[1].changes, [{ column: 'outcome', base: 'unsupported/ENOSYS', now: 'unsupported/EPERM' }]);
    assert.deepEqual(compareRuns(now, base, OPTS).cells[1].changes, [{ column: 'outcome', base: 'unsupported/ENOSYS', now: 'encrypted' }]);
  });

  it('counters of 2-thread cells are compared exactly between runs that both counted in lockstep', () => {
    const t2 = cell({ workload: 'swap', interface: 'plain-mmap', swap: 'plain', threads: 2, swap_out: 96, swap_in: 64 });
    const lock = { counting: 'lockstep' };
    const base = mem('b.csv', [a, t2], [S9, S9], lock);
    const now = mem('n.csv', [a, { ...t2, swap_out: 32, swap_in: 0 }], [S9, S9], lock);
    const r = compareRuns(base, now, OPTS);
    assert.deepEqual(r.cells[1].changes, [
      { column: 'swap_out', base: 96, now: 32 },
      { column: 'swap_in', base: 64, now: 0 },
    ]);
    assert.equal(r.behaviourChanges, 1);
    assert.ok(!r.notes.some((n) => n.includes('counting')), r.notes.join('|'));
    assert.match(formatCompare(r), /Behaviour changes \(outcomes; exact counters\):/);
    // a base from before lockstep counting: its 2-thread counts are not exact, and the setting differs
    const old = compareRuns(mem('o.csv', [a, t2], [S9, S9]), now, OPTS);
    assert.deepEqual(old.cells[1].changes, []);
    assert.ok(old.notes.some((n) => n.includes('counting not recorded vs lockstep')), old.notes.join('|'));
    const oldText = formatCompare(compareRuns(mem('o.csv', [a, t2], [S9, S9]), mem('n.csv', [{ ...a, faults: 1 }, t2], [S9, S9], lock), OPTS));
    assert.match(oldText, /Behaviour changes \(outcomes; exact counters of 1-thread cells\):/);
  });

  it('different seeds: a note, counters not compared, outcomes still are', () => {
    const base = mem('b.csv', [a, b], [S9, S9]);
    const now = mem('n.csv', [{ ...a, faults: 65 }, { ...b, outcome: 'crashed' }], [S9, S9], { seed: 2 });
    const r = compareRuns(base, now, OPTS);
    assert.deepEqual(r.notes, ['seeds differ (1 vs 2): counters not compared']);
    assert.deepEqual(r.cells.map((c) => c.changes.map((x) => x.column)), [[], ['outcome']]);
    assert.equal(r.behaviourChanges, 1);
  });

  it('different hosts: a note after the seeds note', () => {
    const r = compareRuns(mem('b.csv', [a], [S9]), mem('n.csv', [a], [S9], { seed: 3, host: 'other' }), OPTS);
    assert.deepEqual(r.notes, ['seeds differ (1 vs 3): counters not compared', 'hosts differ (testhost vs other): times may not be comparable']);
  });

  it('refuses two runs without a cell in common', () => {
    assert.throws(() => compareRuns(mem('b.csv', [a], [S9]), mem('n.csv', [b], [S9]), OPTS), {
      name: 'InputError',
      message: 'n.csv: no cell in common with b.csv',
    });
  });

  it('a significant slowdown beyond the threshold is a regression; a p-value at alpha or a change at the threshold is not', () => {
    const base = mem('b.csv', [a], [S9]);
    const now = mem('n.csv', [a], [times(S9, 1.2)]);
    const r = compareRuns(base, now, OPTS);
    const [c] = r.cells;
    assert.ok(c.p > 0 && c.p < 0.001);
    assert.equal(c.pHolm, c.p); // one cell: nothing to correct
    assert.ok(Math.abs(c.changePct - 20) < 1e-9);
    assert.ok(c.significant && c.regression);
    assert.equal(r.regressions, 1);
    assert.ok(Math.abs(r.geomeanRatio - 1.2) < 1e-12);
    const atAlpha = compareRuns(base, now, { ...OPTS, alpha: c.pHolm }).cells[0];
    assert.equal(atAlpha.significant, false);
    assert.equal(atAlpha.regression, false);
    const atThreshold = compareRuns(base, now, { ...OPTS, thresholdPct: c.changePct });
    assert.equal(atThreshold.cells[0].significant, true);
    assert.equal(atThreshold.cells[0].regression, false);
    assert.equal(atThreshold.regressions, 0);
    assert.equal(compareRuns(base, now, { ...OPTS, thresholdPct: 19.9 }).regressions, 1);
  });

  it('labels name hardware and backend only when the runs have more than one', () => {
    const sev = { ...a, hardware: 'sev' };
    const noble = { ...a, crypto_backend: 'noble' };
    const hw = mem('h.csv', [a, sev], [S9, S9]);
    assert.deepEqual(compareRuns(hw, hw, OPTS).cells.map((c) => c.label), ['fault enc-mprot p t1 mktme', 'fault enc-mprot p t1 sev']);
    const be = mem('e.csv', [a, noble], [S9, S9]);
    assert.deepEqual(compareRuns(be, be, OPTS).cells.map((c) => c.label), ['fault enc-mprot p t1 openssl', 'fault enc-mprot p t1 noble']);
    const both = mem('x.csv', [a, { ...sev, crypto_backend: 'noble' }], [S9, S9]);
    assert.deepEqual(compareRuns(both, both, OPTS).cells.map((c) => c.label), ['fault enc-mprot p t1 mktme openssl', 'fault enc-mprot p t1 sev noble']);
    const one = mem('o.csv', [a, { ...a, kernel: 'unpatched', threads: 4 }], [S9, S9]);
    assert.deepEqual(compareRuns(one, one, OPTS).cells.map((c) => c.label), ['fault enc-mprot p t1', 'fault enc-mprot u t4']);
  });

  it('cells on one side only: not run (no behaviour change), untimed, labelled from the side they are on', () => {
    const { base, now } = scenario();
    const r = compareRuns(base, now, OPTS);
    const one = r.cells.filter((c) => !c.base || !c.now);
    assert.deepEqual(one.map((c) => [c.label, c.base !== null, c.now !== null, c.changes.length]), [
      ['dax memfd-sec p t1', true, false, 0],
      ['swap plain-mmap p t1', true, false, 0],
      ['fault enc-mprot u t1', false, true, 0],
    ]);
    for (const c of one) assert.ok(Number.isNaN(c.p) && Number.isNaN(c.pHolm) && Number.isNaN(c.changePct) && !c.significant);
    assert.equal(r.timedCells, 4); // both sides timed: not the untimed cells, not the one-sided ones
    assert.equal(r.behaviourChanges, 4); // the 4 changed cells; the 3 on one side are not run there
    assert.equal(r.notRun, 3);
    assert.equal(r.regressions, 1);
  });
});

describe('formatCompare', () => {
  it('the whole comparison: table of cells timed on both sides, behaviour changes, one-sided cells, result', () => {
    const { base, now } = scenario();
    const text = formatCompare(compareRuns(base, now, OPTS));
    assert.equal(
      text,
      [
        'memcrypt-bench compare abc1234...abc1234',
        'base: abc1234 2025-11-25T11:00:00Z results/baseline-2025-11-25.csv',
        'new: abc1234 2025-11-25T11:00:00Z new.csv',
        'machine: build-server-with-a-rather-long-host-name, Test CPU @ 3.0GHz, 2',
        '  CPUs, 24 GiB, Linux 6.18.44, node v20.20.2',
        'settings: repeat 1, warm-up 500 ms, time 300 ms, >= 10 rounds, backend',
        '  openssl, costs sourced defaults',
        'Time: Mann-Whitney U per cell on per-process medians, Holm-corrected',
        '  over 4 cells, alpha 0.05; ~ = no significant change; regression =',
        '  significant and slower by more than 5%; insufficient = not',
        '  significant, and too few or too spread samples to see a 5% change',
        '  (mde: smallest detectable).',
        'Note: hosts differ (testhost vs',
        '  build-server-with-a-rather-long-host-name): times may not be',
        '  comparable',
        '',
        'cell                          base     new  change  p (Holm)',
        'fault enc-mprot p t1        100 ns  120 ns  +20.0%  p<0.001 REGRESSION',
        'fault dev-mktme p t1        100 ns  101 ns       ~',
        'swap-dmc enc-mprot p t1    10.2 us 9.18 us  -10.0%  p=0.024',
        'fault enc-mprot p t2        100 ns  100 ns       ~',
        'geomean                                      +2.1%',
        '',
        'Behaviour changes (outcomes; exact counters of 1-thread cells):',
        '  fault dev-mktme p t1: faults 64 -> 65; pages_encrypted 64 -> 66;',
        '    crypto_bytes 262144 -> 270336',
        '  migrate madv-enc p t1: outcome encrypted -> data-loss',
        '  enosys dev-mktme u t1: outcome plaintext-fallback/ENOSYS -> encrypted',
        '  fault memfd-sec p t1: outcome unsupported/ENOSYS -> unsupported/EPERM',
        '',
        'Not run in new.csv: dax memfd-sec p t1, swap plain-mmap p t1',
        '',
        'Not run in results/baseline-2025-11-25.csv: fault enc-mprot u t1',
        '',
        'Result: 1 significant regression beyond 5%, 4 behaviour changes, 3 cells',
        '  not run on one side.',
      ].join('\n'),
    );
    for (const l of text.split('\n')) assert.ok(l.length <= 72, l);
  });

  it('a run against itself: every cell ~, geomean +0.0%, no behaviour or one-sided sections', () => {
    const run = mem('a.csv', [cell({ workload: 'fault' }), cell({ workload: 'dax-stacking', interface: 'memfd-secret' })], [S9, S9]);
    assert.equal(
      formatCompare(compareRuns(run, run, OPTS)),
      [
        'memcrypt-bench compare abc1234...abc1234',
        'base: abc1234 2025-11-25T11:00:00Z a.csv',
        'new: abc1234 2025-11-25T11:00:00Z a.csv',
        'machine: testhost, Test CPU @ 3.0GHz, 2 CPUs, 24 GiB, Linux 6.18.44,',
        '  node v20.20.2',
        'settings: repeat 1, warm-up 500 ms, time 300 ms, >= 10 rounds, backend',
        '  openssl, costs sourced defaults',
        'Time: Mann-Whitney U per cell on per-process medians, Holm-corrected',
        '  over 2 cells, alpha 0.05; ~ = no significant change; regression =',
        '  significant and slower by more than 5%; insufficient = not',
        '  significant, and too few or too spread samples to see a 5% change',
        '  (mde: smallest detectable).',
        '',
        'cell                          base     new  change  p (Holm)',
        'fault enc-mprot p t1        100 ns  100 ns       ~',
        'dax memfd-sec p t1          100 ns  100 ns       ~',
        'geomean                                      +0.0%',
        '',
        'Result: 0 significant regressions beyond 5%, 0 behaviour changes.',
      ].join('\n'),
    );
  });

  it('one behaviour change, no timed cell, a long threshold: singular, geomean -, wrapped result', () => {
    const c = cell({ ...untimed });
    const r = compareRuns(mem('b.csv', [c], [[]]), mem('n.csv', [{ ...c, syscalls: 4 }], [[]]), { thresholdPct: 12.345678901234567, alpha: 0.01 });
    assert.equal(
      formatCompare(r),
      [
        'memcrypt-bench compare abc1234...abc1234',
        'base: abc1234 2025-11-25T11:00:00Z b.csv',
        'new: abc1234 2025-11-25T11:00:00Z n.csv',
        'machine: testhost, Test CPU @ 3.0GHz, 2 CPUs, 24 GiB, Linux 6.18.44,',
        '  node v20.20.2',
        'settings: repeat 1, warm-up 500 ms, time 300 ms, >= 10 rounds, backend',
        '  openssl, costs sourced defaults',
        'Time: Mann-Whitney U per cell on per-process medians, Holm-corrected',
        '  over 0 cells, alpha 0.01; ~ = no significant change; regression =',
        '  significant and slower by more than 12.345678901234567%; insufficient',
        '  = not significant, and too few or too spread samples to see a',
        '  12.345678901234567% change (mde: smallest detectable).',
        '',
        'cell                          base     new  change  p (Holm)',
        'geomean                                          -',
        '',
        'Behaviour changes (outcomes; exact counters of 1-thread cells):',
        '  fault enc-mprot p t1: syscalls 3 -> 4',
        '',
        'Result: 0 significant regressions beyond 12.345678901234567%, 1',
        '  behaviour change.',
      ].join('\n'),
    );
  });
});

describe('formatCompareCsv', () => {
  it('one record per cell: its key, where it is, medians, change, p-values, verdicts, changes', () => {
    const { base, now } = scenario();
    assert.equal(
      formatCompareCsv(compareRuns(base, now, OPTS)),
      [
        'crypto_backend,hardware,interface,kernel,swap,workload,threads,in,base_median_ns,new_median_ns,change_pct,p_value,p_holm,significant,regression,mde_pct,verdict,behaviour_changes',
        'openssl,mktme,encrypt-mprotect,patched,none,fault,1,both,100,120,20,0,0,true,true,4.155,regression,',
        'openssl,mktme,dev-mktme,patched,none,fault,1,both,100,100.5,0.5,0.73,1,false,false,3.762,same,faults:64->65 pages_encrypted:64->66 crypto_bytes:262144->270336',
        'openssl,mktme,encrypt-mprotect,patched,encrypted,swap,1,both,10200,9180,-10,0.008,0.024,true,false,3.389,faster,',
        'openssl,mktme,madvise-encrypt,patched,none,migration,1,both,,,,,,false,false,,untimed,outcome:encrypted->data-loss',
        'openssl,mktme,encrypt-mprotect,patched,none,fault,2,both,100,100,0,1,1,false,false,3.762,same,',
        'openssl,mktme,dev-mktme,unpatched,none,enosys-fallback,1,both,,,,,,false,false,,untimed,outcome:plaintext-fallback/ENOSYS->encrypted',
        'openssl,mktme,memfd-secret,patched,none,fault,1,both,,,,,,false,false,,untimed,outcome:unsupported/ENOSYS->unsupported/EPERM',
        'openssl,mktme,memfd-secret,patched,none,dax-stacking,1,base,100,,,,,false,false,,not-run,',
        'openssl,mktme,plain-mmap,patched,plain,swap,1,base,100,,,,,false,false,,not-run,',
        'openssl,mktme,encrypt-mprotect,unpatched,none,fault,1,new,,100,,,,false,false,,not-run,',
        '',
      ].join('\n'),
    );
  });
});

describe('compare knows its limits', () => {
  it('one process a side cannot show any change: insufficient samples, never ~', () => {
    const c = cell({ workload: 'fault' });
    const r = compareRuns(mem('b.csv', [c], [[100]]), mem('n.csv', [c], [[150]]), OPTS);
    assert.equal(r.cells[0].mdePct, Infinity);
    assert.deepEqual([r.cells[0].insufficient, r.cells[0].significant, r.regressions], [true, false, 0]);
    const text = formatCompare(r);
    assert.match(text, /^fault enc-mprot p t1 +100 ns +150 ns +\? +insufficient samples$/m);
    assert.match(text, /Warning: 1 of 1 timed cells cannot show a 5% change: 1 have too\s+few\s+samples/);
    assert.match(formatCompareCsv(r), /,insufficient,\n$/);
  });

  it('seven processes a side with a 1% spread see 5%; the smallest detectable change shrinks with n', () => {
    const c = cell({ workload: 'fault' });
    const s7 = [99, 99.5, 100, 100, 100.5, 101, 100.2];
    const r7 = compareRuns(mem('b.csv', [c], [s7]), mem('n.csv', [c], [s7]), OPTS).cells[0];
    assert.ok(r7.mdePct > 0 && r7.mdePct < 5 && !r7.insufficient, String(r7.mdePct));
    const s14 = [...s7, ...s7];
    const r14 = compareRuns(mem('b.csv', [c], [s14]), mem('n.csv', [c], [s14]), OPTS).cells[0];
    assert.ok(r14.mdePct < r7.mdePct);
    // 10% slower in every process: flagged
    const slow = compareRuns(mem('b.csv', [c], [s7]), mem('n.csv', [c], [s7.map((x) => x * 1.1)]), OPTS);
    assert.equal(slow.regressions, 1);
  });

  it('a cell timed under load (noisy) on either side is shown but left out of the test and of Holm', () => {
    const quiet = cell({ workload: 'fault' });
    const loud = cell({ workload: 'dax-stacking', interface: 'memfd-secret' });
    const base = mem('b.csv', [quiet, loud], [S9, S9]);
    const now = mem('n.csv', [quiet, { ...loud, stability: 'noisy' }], [S9, S9.map((x) => x * 2)]);
    const r = compareRuns(base, now, OPTS);
    const n = r.cells.find((c) => c.key === cellKey(loud))!;
    assert.deepEqual([n.noisy, Number.isNaN(n.p), n.regression, r.regressions, r.timedCells], [true, true, false, 0, 1]);
    assert.match(formatCompare(r), /^dax memfd-sec p t1 .* noisy: not tested$/m);
    assert.match(formatCompareCsv(r), /dax-stacking,1,both,.*,noisy,/);
  });

  it('says when the runs were timed with other settings', () => {
    const c = cell({ workload: 'fault' });
    const r = compareRuns(mem('b.csv', [c], [S9]), mem('n.csv', [c], [S9], { repeat: 7, time_ms: 150, node_version: 'v22.1.0' }), OPTS);
    assert.match(r.notes.join('\n'), /settings differ \(repeat 1 vs 7; time_ms 300 vs 150; node_version v20\.20\.2 vs v22\.1\.0\)/);
  });
});
