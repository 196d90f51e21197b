// Behaviour the final mutation runs of dist/bench/compare.js, csv.js and
// stats.js showed untested (see test/mutation-review/bench-final.md).
// Statistics reference values were computed once with SciPy 1.17.1 / NumPy
// 2.4.6 (the call is given at each value) and are hard-coded.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compareRuns, formatCompare, formatCompareCsv, type CompareOptions, type LoadedRun } from '../../bench/compare.js';
import { formatCsv, parseCsv, parseMeta } from '../../bench/csv.js';
import { InputError } from '../../bench/io.js';
import { cellKey, type Row, type RunMeta } from '../../bench/schema.js';
import { normalCdf } from '../../bench/stats.js';
import { mkMeta, mkRow, refuses } from './fixtures.js';

const OPTS: CompareOptions = { thresholdPct: 5, alpha: 0.05 };
/** 9 untied samples, median 100. */
const S9 = [96, 97, 98, 99, 100, 101, 102, 103, 104];
/** 9 samples, median 100, spread +-20% and +-40%: too spread to see 5%. */
const W1 = [80, 85, 90, 95, 100, 105, 110, 115, 120];
const W2 = [60, 70, 80, 90, 100, 110, 120, 130, 140];

const cell = (over: Partial<Row> = {}): Row => mkRow({ run_id: 'r1', ...over });
const fault = cell({ workload: 'fault', interface: 'encrypt-mprotect' });
const mktme = cell({ workload: 'fault', interface: 'dev-mktme' });
const dax = cell({ workload: 'dax-stacking', interface: 'memfd-secret' });
const swap = cell({ workload: 'swap', interface: 'plain-mmap', swap: 'plain' });

/** A run as loadRun returns it, built in memory: rows[i] has samples[i]. */
function mem(file: string, rows: Row[], samples: number[][], meta: Partial<RunMeta> = {}): LoadedRun {
  return { file, meta: mkMeta({ run_id: 'r1', seed: 1, ...meta }), rows, samples: new Map(rows.map((r, i) => [cellKey(r), samples[i]])) };
}

/** The lines of `text` from the one starting with `first` to the next blank line (or the end). */
function block(text: string, first: string): string[] {
  const lines = text.split('\n');
  const at = lines.findIndex((l) => l.startsWith(first));
  assert.ok(at >= 0, `no line starting with ${first} in\n${text}`);
  const end = lines.indexOf('', at);
  return lines.slice(at, end < 0 ? undefined : end);
}

describe('compare: settings notes', () => {
  const other: Partial<RunMeta> = {
    repeat: 3,
    time_ms: 200,
    warmup_ms: 100,
    min_samples: 20,
    node_version: 'v22.1.0',
    tinybench_version: '6.3.0',
    crypto_backends: ['openssl', 'noble'],
    crypto_impl: 'vaes-avx512',
    cost_source: 'file costs.json',
    nproc: 8,
    cpu_model: 'Other CPU',
    kernel_release: '6.19.0',
  };

  it('each setting that changes what a time means is named when it alone differs', () => {
    const base = mem('b.csv', [fault], [S9]);
    for (const [k, v] of Object.entries(other)) {
      const b = base.meta[k as keyof RunMeta] === '' ? 'none' : String(base.meta[k as keyof RunMeta]);
      const r = compareRuns(base, mem('n.csv', [fault], [S9], { [k]: v }), OPTS);
      assert.deepEqual(r.notes, [`settings differ (${k} ${b} vs ${String(v)}): times may not be comparable`], k);
    }
  });

  it("the header names the native backend's implementation where the run recorded one", () => {
    // the settings line, its wrapped continuation lines joined
    const at = (impl: string) => {
      const text = formatCompare(compareRuns(mem('b.csv', [fault], [S9]), mem('n.csv', [fault], [S9], { crypto_backends: ['native'], crypto_impl: impl }), OPTS));
      const lines = text.split('\n');
      const i = lines.findIndex((l) => l.startsWith('settings:'));
      let j = i + 1;
      while (lines[j].startsWith('  ')) j++;
      return lines.slice(i, j).join(' ').replace(/\s+/g, ' ');
    };
    assert.match(at('vaes-avx512'), /backend native \(vaes-avx512\), costs/);
    assert.match(at(''), /backend native, costs/);
  });

  it('a run from before crypto_impl was recorded says so', () => {
    const base = mem('b.csv', [fault], [S9]);
    delete (base.meta as Partial<RunMeta>).crypto_impl;
    const r = compareRuns(base, mem('n.csv', [fault], [S9], { crypto_impl: 'openssl-evp' }), OPTS);
    assert.deepEqual(r.notes, ['settings differ (crypto_impl not recorded vs openssl-evp): times may not be comparable']);
  });

  it('all of them differing: one note naming each, in a fixed order', () => {
    const r = compareRuns(mem('b.csv', [fault], [S9]), mem('n.csv', [fault], [S9], other), OPTS);
    assert.deepEqual(r.notes, [
      'settings differ (repeat 1 vs 3; time_ms 300 vs 200; warmup_ms 500 vs 100; min_samples 10 vs 20; node_version v20.20.2 vs v22.1.0; ' +
        'tinybench_version 6.2.5 vs 6.3.0; crypto_backends openssl vs openssl,noble; crypto_impl none vs vaes-avx512; cost_source sourced defaults vs file costs.json; ' +
        'nproc 2 vs 8; cpu_model Test CPU @ 3.0GHz vs Other CPU; kernel_release 6.18.44 vs 6.19.0): times may not be comparable',
    ]);
  });
});

describe('compare: the smallest detectable change', () => {
  it('complete separation at exactly alpha is not enough: 1 process against 39 cannot show any change at 0.05', () => {
    // scipy.stats.mannwhitneyu([100], [101 + i for i in range(39)], method='exact').pvalue = 0.05 (= 2 / C(40, 1)),
    // the smallest p these sizes can give; a p-value must be below alpha to count
    const s39 = Array.from({ length: 39 }, (_, i) => 101 + i);
    const [c] = compareRuns(mem('b.csv', [fault], [[100]]), mem('n.csv', [fault], [s39]), OPTS).cells;
    assert.equal(c.p, 0.05);
    assert.equal(c.significant, false);
    assert.equal(c.mdePct, Infinity);
    assert.equal(c.insufficient, true);
    // with a slightly larger alpha, complete separation is significant (and the samples finite)
    const wider = compareRuns(mem('b.csv', [fault], [[100]]), mem('n.csv', [fault], [s39]), { ...OPTS, alpha: 0.051 }).cells[0];
    assert.equal(wider.significant, true);
    assert.ok(Number.isFinite(wider.mdePct), String(wider.mdePct));
  });

  it('5 + 5 processes: one cell can show a change, but not when Holm divides alpha over 8 cells', () => {
    // scipy.stats.mannwhitneyu([1,2,3,4,5], [6,7,8,9,10], method='exact').pvalue = 0.007936507936507936 = 2 / C(10, 5);
    // times 8 cells (Holm's worst case) that is 0.0635 >= 0.05: no change can be significant
    const s5 = [98, 99, 100, 101, 102];
    const one = compareRuns(mem('b.csv', [fault], [s5]), mem('n.csv', [fault], [s5]), OPTS).cells[0];
    assert.ok(Number.isFinite(one.mdePct) && one.mdePct < 5 && !one.insufficient, String(one.mdePct));
    const rows = ['fault', 'swap', 'migration', 'dax-stacking'].flatMap((workload) => [1, 2].map((threads) => cell({ workload, threads })));
    const run = mem('a.csv', rows, rows.map(() => s5));
    const r = compareRuns(run, run, OPTS);
    assert.equal(r.timedCells, 8);
    for (const c of r.cells) {
      assert.equal(c.mdePct, Infinity, c.label);
      assert.equal(c.insufficient, true, c.label);
    }
  });

  it('a smallest detectable change equal to the threshold can show it: not insufficient', () => {
    const s7 = [99, 99.5, 100, 100, 100.5, 101, 100.2];
    const at = (thresholdPct: number) => compareRuns(mem('b.csv', [fault], [s7]), mem('n.csv', [fault], [s7]), { ...OPTS, thresholdPct }).cells[0];
    const mde = at(5).mdePct;
    assert.ok(mde > 0 && mde < 5, String(mde));
    assert.equal(at(mde).insufficient, false);
    assert.equal(at(mde * (1 - 1e-9)).insufficient, true);
  });
});

describe('compare: p-values and verdicts', () => {
  it('a Holm p of exactly 0.001 prints as p=0.001, not p<0.001', () => {
    // scipy.stats.mannwhitneyu([100], [110 + i / 100 for i in range(1999)], alternative='two-sided', method='exact').pvalue
    //   = 0.001 (2 / C(2000, 1))
    const ns = Array.from({ length: 1999 }, (_, i) => 110 + i / 100);
    const r = compareRuns(mem('b.csv', [fault], [[100]]), mem('n.csv', [fault], [ns]), OPTS);
    assert.equal(r.cells[0].pHolm, 0.001);
    const text = formatCompare(r);
    assert.match(text, /^fault enc-mprot p t1 .* p=0\.001 REGRESSION$/m);
    assert.doesNotMatch(text, /p<0\.001/);
  });

  it('a significant slowdown within the threshold: slower, no REGRESSION', () => {
    const base = [1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008];
    // 3% slower in every process: complete separation, scipy.stats.mannwhitneyu(..., method='exact').pvalue = 2 / C(18, 9) = 4.1135335252982314e-05
    const r = compareRuns(mem('b.csv', [fault], [base]), mem('n.csv', [fault], [base.map((x) => x * 1.03)]), OPTS);
    const [c] = r.cells;
    assert.ok(c.significant && !c.regression);
    assert.match(formatCompare(r), /^fault enc-mprot p t1 +1\.00 us +1\.03 us +\+3\.0% {2}p<0\.001$/m);
    assert.match(formatCompareCsv(r), /,both,1004,1034\.12,3,0,0,true,false,[\d.]+,slower,\n$/);
    // and the other way: faster
    const back = compareRuns(mem('n.csv', [fault], [base.map((x) => x * 1.03)]), mem('b.csv', [fault], [base]), OPTS);
    assert.match(formatCompareCsv(back), /,true,false,[\d.]+,faster,\n$/);
  });

  it('a significant change with two equal medians is named by the side the U test saw lower', () => {
    // 40 processes a side, the middle pair equal (medians 100 and 100), every
    // other value of the new side lower than the base's: significant, changePct 0
    const lowB = Array.from({ length: 19 }, (_, i) => 80 + i);
    const highB = Array.from({ length: 19 }, (_, i) => 200 + i);
    const lowN = Array.from({ length: 19 }, (_, i) => 1 + i);
    const highN = Array.from({ length: 19 }, (_, i) => 101 + i);
    const base = [...lowB, 100, 100, ...highB];
    const now = [...lowN, 100, 100, ...highN];
    const r = compareRuns(mem('b.csv', [fault], [base]), mem('n.csv', [fault], [now]), OPTS);
    const [c] = r.cells;
    assert.equal(c.changePct, 0);
    assert.ok(c.significant && !c.regression, `p_holm ${c.pHolm}`);
    assert.equal(c.lower, -1);
    assert.match(formatCompareCsv(r), /,0,[\d.e-]+,[\d.e-]+,true,false,[\d.]+,faster,\n$/);
    // the mirror image: the base lower, so the new side is slower (within the threshold: no regression)
    const back = compareRuns(mem('n.csv', [fault], [now]), mem('b.csv', [fault], [base]), OPTS);
    assert.equal(back.cells[0].lower, 1);
    assert.match(formatCompareCsv(back), /,true,false,[\d.]+,slower,\n$/);
  });

  it('the U test direction: 0 when neither side is lower; a nonzero change of the medians names the verdict, not the direction', () => {
    // the same samples on both sides: U at its mean
    const same = compareRuns(mem('b.csv', [fault], [S9]), mem('n.csv', [fault], [S9]), OPTS);
    assert.equal(same.cells[0].lower, 0);
    // a bimodal base (median 549.75) against a new side whose median is 1.9% higher but
    // whose ranks are mostly lower (U = 1180 of 1600, p 0.00019): significant, within the
    // threshold, and 'slower' as its +1.9% says, though the U test saw the new side lower
    const base = [...Array.from({ length: 20 }, (_, i) => 90 + i * 0.5), ...Array.from({ length: 20 }, (_, i) => 1000 + i)];
    const now = [...Array.from({ length: 19 }, (_, i) => 1 + i), 560, 560, ...Array.from({ length: 19 }, (_, i) => 561 + i)];
    const r = compareRuns(mem('b.csv', [fault], [base]), mem('n.csv', [fault], [now]), OPTS);
    const [c] = r.cells;
    assert.ok(c.significant && !c.regression && c.changePct > 0 && c.changePct < 5, `${c.changePct} ${c.pHolm}`);
    assert.equal(c.lower, -1);
    assert.match(formatCompareCsv(r), /,true,false,[\d.]+,slower,\n$/);
  });
});

describe('compare: cells timed on one side only', () => {
  it('a one-sided cell timed under load is not run, not noisy: no noisy warning', () => {
    const base = mem('b.csv', [fault, { ...dax, stability: 'noisy' }], [S9, S9]);
    const now = mem('n.csv', [fault, { ...swap, stability: 'noisy' }], [S9, S9]);
    const r = compareRuns(base, now, OPTS);
    assert.deepEqual(
      r.cells.map((c) => [c.label, c.noisy]),
      [
        ['fault enc-mprot p t1', false],
        ['dax memfd-sec p t1', false],
        ['swap plain-mmap p t1', false],
      ],
    );
    const text = formatCompare(r);
    assert.doesNotMatch(text, /noisy|Warning/);
    assert.deepEqual(
      formatCompareCsv(r)
        .trimEnd()
        .split('\n')
        .slice(1)
        .map((l) => l.split(',').at(-2)),
      ['same', 'not-run', 'not-run'],
    );
  });

  it('one cell not run on one side: singular, and a long list of them wraps with an indent', () => {
    const one = formatCompare(compareRuns(mem('b.csv', [fault, dax], [S9, S9]), mem('n.csv', [fault], [S9]), OPTS));
    assert.deepEqual(block(one, 'Result:'), ['Result: 0 significant regressions beyond 5%, 0 behaviour changes, 1 cell', '  not run on one side.']);
    const extra = ['migration', 'swap', 'dax-stacking', 'enosys-fallback'].flatMap((workload) => [1, 2].map((threads) => cell({ workload, interface: 'madvise-encrypt', threads })));
    const many = formatCompare(compareRuns(mem('b.csv', [fault, ...extra], [S9, ...extra.map(() => S9)]), mem('n.csv', [fault], [S9]), OPTS));
    assert.deepEqual(block(many, 'Not run in n.csv:'), [
      'Not run in n.csv: migrate madv-enc p t1, migrate madv-enc p t2, swap',
      '  madv-enc p t1, swap madv-enc p t2, dax madv-enc p t1, dax madv-enc p',
      '  t2, enosys madv-enc p t1, enosys madv-enc p t2',
    ]);
    assert.deepEqual(block(many, 'Result:'), ['Result: 0 significant regressions beyond 5%, 0 behaviour changes, 8', '  cells not run on one side.']);
  });
});

describe('compare: what the text says', () => {
  it('long revisions and paths: every head line wraps with a two-space indent; all backends named', () => {
    const base = mem('results/nightly/2025-11-25/memcrypt-bench-full-matrix-baseline.csv', [fault], [S9], { git_sha: 'release-2025.11-abcdef012345' });
    const now = mem('results/nightly/2025-11-26/memcrypt-bench-full-matrix-candidate.csv', [fault], [S9], {
      git_sha: 'release-2025.12-0123456789ab-dirty',
      crypto_backends: ['openssl', 'noble'],
    });
    const text = formatCompare(compareRuns(base, now, OPTS));
    assert.deepEqual(text.split('\n').slice(0, 11), [
      'memcrypt-bench compare',
      '  release-2025.11-abcdef012345...release-2025.12-0123456789ab-dirty',
      'base: release-2025.11-abcdef012345 2025-11-25T11:00:00Z',
      '  results/nightly/2025-11-25/memcrypt-bench-full-matrix-baseline.csv',
      'new: release-2025.12-0123456789ab-dirty 2025-11-25T11:00:00Z',
      '  results/nightly/2025-11-26/memcrypt-bench-full-matrix-candidate.csv',
      'machine: testhost, Test CPU @ 3.0GHz, 2 CPUs, 24 GiB, Linux 6.18.44,',
      '  node v20.20.2',
      'settings: repeat 1, warm-up 500 ms, time 300 ms, >= 10 rounds, backend',
      '  openssl,noble, costs sourced defaults',
      'Time: Mann-Whitney U per cell on per-process medians, Holm-corrected',
    ]);
  });

  it('a noisy cell: ? for its change, and a warning that it was left out', () => {
    const base = mem('b.csv', [fault, dax], [S9, S9]);
    const now = mem('n.csv', [fault, { ...dax, stability: 'noisy' }], [S9, S9.map((x) => x * 2)]);
    const text = formatCompare(compareRuns(base, now, OPTS));
    assert.deepEqual(block(text, 'dax memfd-sec'), ['dax memfd-sec p t1          100 ns  200 ns       ?  noisy: not tested', 'geomean                                      +0.0%']);
    assert.equal(
      text.split('\n').slice(-5).join('\n'),
      [
        '',
        'Warning: 1 cells were timed while other processes loaded the machine',
        '  (noisy): left out of the test.',
        '',
        'Result: 0 significant regressions beyond 5%, 0 behaviour changes.',
      ].join('\n'),
    );
  });

  // The smallest detectable changes below are k * s / median(base) * 100, as mde() in bench/compare.ts computes
  // them: s the pooled standard deviation (n1 + n2 - 2 degrees of freedom; W1 13.693, W2 27.386, S9 2.7386, all
  // medians 100) and k = uShiftForPower(9, 9, 0.05 / family), the shift at which the exact U test rejects half the
  // time (stats.test.ts checks that against mannWhitney itself): k = 1.37357 over 4 cells (W1 18.81, W2 37.62,
  // S9 3.76) and 1.30392 over 3 (W1 17.85, W2 35.71, S9 3.57).
  it('cells that cannot show the threshold: too few samples, too spread, or both, with the range of what they could show', () => {
    const rows = [fault, mktme, dax, swap];
    const mixed = formatCompare(compareRuns(mem('b.csv', rows, [[100], W1, W2, S9]), mem('n.csv', rows, [[101], W1, W2, S9]), OPTS));
    assert.deepEqual(block(mixed, 'Warning:'), [
      'Warning: 3 of 4 timed cells cannot show a 5% change: 1 have too few',
      '  samples for the U test to reach alpha after Holm; 2 are too spread',
      '  (smallest detectable change 19-38%). Run both sides with more',
      '  --repeat.',
    ]);
    const three = rows.slice(1);
    const spread = formatCompare(compareRuns(mem('b.csv', three, [W1, W2, S9]), mem('n.csv', three, [W1, W2, S9]), OPTS));
    assert.deepEqual(block(spread, 'Warning:'), [
      'Warning: 2 of 3 timed cells cannot show a 5% change: 2 are too spread',
      '  (smallest detectable change 18-36%). Run both sides with more',
      '  --repeat.',
    ]);
    const few = formatCompare(compareRuns(mem('b.csv', [fault], [[100]]), mem('n.csv', [fault], [[150]]), OPTS));
    assert.equal(
      few.split('\n').slice(-6).join('\n'),
      [
        '',
        'Warning: 1 of 1 timed cells cannot show a 5% change: 1 have too few',
        '  samples for the U test to reach alpha after Holm. Run both sides with',
        '  more --repeat.',
        '',
        'Result: 0 significant regressions beyond 5%, 0 behaviour changes.',
      ].join('\n'),
    );
  });
});

describe('csv: reading', () => {
  it('a broken quote: the message keeps the value whole, even one ending in on line and a word', () => {
    const [header, row] = formatCsv([mkRow()]).trimEnd().split('\n');
    const text = `${header}\n${row.replace(',testhost,', ',host on line seven"x,')}\n`;
    assert.throws(
      () => parseCsv(text, 'r.csv'),
      (e: unknown) => e instanceof InputError && e.line === 2 && e.message.endsWith('value is "host on line seven"'),
    );
  });

  it('a file with old Mac line ends (CR only): an error in the first record is on line 2, after the header', () => {
    const text = formatCsv([mkRow({ kernel: 'vanilla' as Row['kernel'] }), mkRow({ interface: 'dev-mktme' })]).replace(/\n/g, '\r');
    refuses(() => parseCsv(text, 'r.csv'), 2, `r.csv:2: kernel: expected 'patched' or 'unpatched', got 'vanilla'`);
  });
});

describe('csv: the optional fields of a meta file', () => {
  const M = 'm.json';
  /** The meta file with `key` set to the JSON text `value`. */
  const metaWith = (key: string, value: string): string => JSON.stringify({ ...mkMeta(), [key]: '@' }).replace('"@"', value);

  it('reads them when they are right', () => {
    const doc = parseMeta(JSON.stringify({ ...mkMeta(), stopped: 'SIGINT after 3 of 9 cells', rows: 0, csv_sha256: '0a'.repeat(32) }), M);
    assert.deepEqual([doc.stopped, doc.rows, doc.csv_sha256], ['SIGINT after 3 of 9 cells', 0, '0a'.repeat(32)]);
  });

  it('a JSON error with the line V8 names (Node 22 on): that line (lone CRs end lines there), not the line of the position', () => {
    // 11 old-Mac line ends (CR only), then a broken object: Node v22.23.3's JSON.parse(text) throws
    // "Expected double-quoted property name in JSON at position 28 (line 12 column 18)"; Node 20 leaves out
    // "(line 12 column 18)", so on Node 20 that message is thrown here in its place.
    const text = `${'\r'.repeat(11)}{"host": "a",    x}`;
    const NODE22 = 'Expected double-quoted property name in JSON at position 28 (line 12 column 18)';
    const parse = JSON.parse;
    JSON.parse = ((s: string) => {
      try {
        return parse(s) as unknown;
      } catch {
        throw new SyntaxError(NODE22);
      }
    }) as typeof JSON.parse;
    try {
      refuses(() => parseMeta(text, M), 12, `${M}:12: not valid JSON: ${NODE22}`);
    } finally {
      JSON.parse = parse;
    }
  });

  it('reads crypto_impl where it is there and refuses one that is not a string', () => {
    assert.equal(parseMeta(metaWith('crypto_impl', '"vaes-avx512"'), M).crypto_impl, 'vaes-avx512');
    const { crypto_impl: _, ...older } = mkMeta();
    assert.equal(parseMeta(JSON.stringify(older), M).crypto_impl, undefined, 'a run from before it was recorded');
    for (const v of ['1', 'null', 'true']) refuses(() => parseMeta(metaWith('crypto_impl', v), M), 0, `${M}: crypto_impl: expected a string`);
  });

  it('reads counting where it is there and refuses one that is not a string', () => {
    assert.equal(parseMeta(metaWith('counting', '"lockstep"'), M).counting, 'lockstep');
    assert.equal(parseMeta(JSON.stringify(mkMeta()), M).counting, undefined, 'a run from before it was recorded');
    for (const v of ['1', 'null', 'true']) refuses(() => parseMeta(metaWith('counting', v), M), 0, `${M}: counting: expected a string`);
  });

  it('refuses a stopped that is not a string', () => {
    for (const v of ['1', 'null', 'true']) refuses(() => parseMeta(metaWith('stopped', v), M), 0, `${M}: stopped: expected a string`);
  });

  it('refuses a row count that is not a whole number >= 0', () => {
    for (const v of ['-1', '2.5', '"3"', 'null']) refuses(() => parseMeta(metaWith('rows', v), M), 0, `${M}: rows: expected an integer >= 0`);
  });

  it('refuses a CSV digest that is not a string of 64 lower-case hex digits', () => {
    // the last: a list of one right digest, which reads as that digest when made a string
    const hex = 'a'.repeat(64);
    for (const v of [`"${'a'.repeat(63)}"`, `"${hex}a"`, `"x${hex}"`, `"${hex}x"`, `"${'A'.repeat(64)}"`, `"${'g'.repeat(64)}"`, '7', `["${hex}"]`])
      refuses(() => parseMeta(metaWith('csv_sha256', v), M), 0, `${M}: csv_sha256: expected 64 hex digits`);
  });
});

describe('stats: the normal CDF', () => {
  it('keeps its precision in the lower tail too', () => {
    // scipy.stats.norm.cdf(z): -5 -> 2.866515718791933e-07, -8.5 -> 9.47953482220325e-18, -10 -> 7.61985302416047e-24
    // (1 - 0.5 * erfc(|z| / sqrt 2) there would lose every digit below 1e-16)
    const ref: [number, number][] = [
      [-5, 2.866515718791933e-7],
      [-8.5, 9.47953482220325e-18],
      [-10, 7.61985302416047e-24],
    ];
    for (const [z, want] of ref) assert.ok(Math.abs(normalCdf(z) - want) <= 1e-12 * want, `normalCdf(${z}) = ${normalCdf(z)} vs SciPy ${want}`);
  });
});
