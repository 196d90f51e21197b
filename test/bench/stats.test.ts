// The statistics against reference values computed once with a trusted
// implementation: SciPy 1.17.1, scipy.stats.mannwhitneyu(a, b,
// alternative='two-sided', use_continuity=True, method='exact' for small
// untied samples, 'asymptotic' otherwise), and Holm's step-down adjustment
// (Holm 1979; p_(k) * (m - k + 1), made monotone, capped at 1) worked out by
// hand below. Then compare's verdicts rest on the adjusted p, not the raw one.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compareRuns, type LoadedRun } from '../../bench/compare.js';
import { cellKey } from '../../bench/schema.js';
import { erfc, holm, mannWhitney, normalCdf, uCritical, uShiftForPower } from '../../bench/stats.js';
import { mkMeta, mkRow } from './fixtures.js';

const range = <T,>(n: number, f: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => f(i));
// erfc (and so the normal approximation's p) is good to about 1e-13 relative
const close = (got: number, want: number, what: string) => assert.ok(Math.abs(got - want) <= 1e-12 * Math.max(1e-3, Math.abs(want)), `${what}: ${got} vs SciPy ${want}`);

describe('erfc and the normal CDF against SciPy', () => {
  it('erfc across both methods (series below 2.5, continued fraction above) and the tails', () => {
    // scipy.special.erfc(x), SciPy 1.17.1
    const ref: [number, number][] = [
      [0, 1], [0.1, 0.8875370839817152], [0.5, 0.4795001221869535], [1, 0.15729920705028516],
      [2, 0.004677734981047266], [2.49, 0.00042928786773391303], [2.5, 0.00040695201744495886],
      [3, 2.2090496998585445e-5], [5, 1.5374597944280347e-12], [10, 2.0884875837625446e-45],
    ];
    for (const [x, want] of ref) {
      assert.ok(Math.abs(erfc(x) - want) <= 1e-12 * want, `erfc(${x}) = ${erfc(x)} vs SciPy ${want}`);
      assert.ok(Math.abs(erfc(-x) - (2 - want)) <= 1e-15 * 2, `erfc(${-x})`);
    }
    assert.equal(erfc(Infinity), 0);
    assert.ok(Number.isNaN(erfc(NaN)));
  });

  it('normalCdf(0) is exactly one half, so U at its mean with ties gives p = 1 exactly', () => {
    assert.equal(normalCdf(0), 0.5);
    // scipy.stats.norm.cdf(-1.5) = 0.06680720126885807, norm.cdf(2) = 0.9772498680518208
    close(normalCdf(-1.5), 0.06680720126885807, 'normalCdf(-1.5)');
    close(normalCdf(2), 0.9772498680518208, 'normalCdf(2)');
    // scipy.stats.mannwhitneyu([1,2,3], [1,2,3], method='asymptotic').pvalue = 1.0
    assert.deepEqual(mannWhitney([1, 2, 3], [1, 2, 3]), { u: 4.5, p: 1 });
  });
});

describe('Mann-Whitney U against SciPy', () => {
  it('small samples with ties: the exact distribution given the ties', () => {
    // scipy.stats.mannwhitneyu(a, b, method=PermutationMethod(n_resamples=np.inf)).pvalue
    // (the normal approximation, method='asymptotic', gives 0.007659988586736321)
    const r = mannWhitney([1, 2, 2, 3, 3, 3, 4], [3, 4, 4, 5, 5, 6, 7]);
    assert.equal(r.u, 3.5);
    close(r.p, 0.007575757575757576, 'tied, n = 7 + 7');
    close(mannWhitney([1, 2, 2, 3, 4, 5, 5], [2, 3, 5, 5, 6, 7, 8]).p, 0.08158508158508158, 'tied across the samples');
    close(mannWhitney([1, 2, 3], [3, 3, 4, 5, 6, 7, 8, 9, 10]).p, 0.02727272727272727, 'tied, n = 3 + 9');
    close(mannWhitney([10, 10, 10, 12, 12, 13, 14, 15], [9, 10, 11, 11, 11, 16, 17, 18]).p, 0.815073815073815, 'three tie groups, n = 8 + 8');
    assert.deepEqual(mannWhitney([5, 5, 5], [5, 5, 5, 5]), { u: 6, p: 1 });
  });

  it('7 processes a side, completely apart but for a tie within one side: p = 2 / C(14, 7), as without the tie', () => {
    // two of the base's per-process medians equal (a default run's madvise-encrypt
    // enosys-fallback t1 cell on the unpatched kernel, ns per op): the normal
    // approximation gave 0.0021, which no Holm correction over 78 cells passes
    const base = [20530, 20801, 20420, 22373, 22013, 20530, 20520];
    const slower = [24146, 23995, 23735, 23896, 24697, 23906, 26420];
    const r = mannWhitney(base, slower);
    assert.equal(r.u, 0);
    close(r.p, 2 / 3432, 'complete separation with a tie');
    close(r.p, 0.0005827505827505828, 'SciPy PermutationMethod');
    assert.ok(r.p * 78 < 0.05);
  });

  it('large untied samples (n1 n2 = 3600 > 2500): the normal approximation', () => {
    const r = mannWhitney(range(60, (i) => i), range(60, (i) => i + 7.5));
    assert.equal(r.u, 1378);
    close(r.p, 0.02694585619564296, 'untied, n = 60 + 60');
  });

  it('large samples with ties: the tie correction matters', () => {
    const r = mannWhitney(range(60, (i) => Math.floor(i / 3)), range(60, (i) => Math.floor(i / 3) + 2));
    assert.equal(r.u, 1458);
    close(r.p, 0.07274553185170458, 'tied, n = 60 + 60');
  });

  it('small untied samples: the exact distribution', () => {
    const a = mannWhitney([1.5, 3.2, 4.1, 6.0, 7.7], [2.0, 5.5, 8.1, 9.3, 10.4, 12.0]);
    assert.equal(a.u, 6);
    close(a.p, 0.12554112554112554, 'exact, n = 5 + 6');
    const b = mannWhitney(range(9, (i) => 10 + i), range(8, (i) => 14.5 + i));
    assert.equal(b.u, 10);
    close(b.p, 0.011106540518305223, 'exact, n = 9 + 8');
  });
});

describe('the U test\'s critical value and its shift for 50% power', () => {
  it('critical values as the published two-sided tables give them at 0.05 (n1 = n2 = 5..10), none below the floor', () => {
    // Mann-Whitney tables, two-tailed alpha 0.05: U <= 2, 5, 8, 13, 17, 23
    assert.deepEqual([5, 6, 7, 8, 9, 10].map((n) => uCritical(n, n, 0.05)), [2, 5, 8, 13, 17, 23]);
    // 5 + 5: complete separation gives p = 2 / C(10, 5) = 0.0079; at alpha 0.05 / 8 no U is below it
    assert.equal(uCritical(5, 5, 0.05 / 8), -1);
    assert.equal(uCritical(5, 5, 0.008), 0);
    // the bound is strict, as compare's p < alpha: 1 against 39 gives at best p = 2 / 40 = 0.05
    assert.equal(uCritical(1, 39, 0.05), -1);
    assert.equal(uCritical(1, 39, 0.051), 0);
    // the normal approximation's side (n1 n2 > 2500) has a floor too, far smaller
    assert.equal(uCritical(60, 60, 1e-300), -1);
    assert.equal(uCritical(0, 9, 0.05), -1);
  });

  it('every critical value is what mannWhitney rejects: p below alpha at it, not at one more', () => {
    // samples with a given U of the first: its values sit among 0..n2-1 of the second
    const withU = (n1: number, n2: number, u: number): [number[], number[]] => {
      const a: number[] = [];
      for (let i = 0, left = u; i < n1; i++) {
        const above = Math.min(n2, left); // how many of b this value is larger than
        a.push(above - 0.5 + i * 1e-6); // distinct: a tie inside a sample takes the tied test
        left -= above;
      }
      return [a, range(n2, (j) => j)];
    };
    // (50 x 50 = 2500 is the largest exact case, 51 x 50 the smallest normal one)
    for (const [n1, n2, alpha] of [[9, 9, 0.05 / 78], [7, 9, 0.01], [12, 15, 0.05 / 40], [50, 50, 0.05 / 78], [51, 50, 0.05 / 78], [60, 60, 0.05 / 78]] as const) {
      const c = uCritical(n1, n2, alpha);
      assert.ok(c >= 0, `${n1}+${n2}`);
      const [a0, b0] = withU(n1, n2, c);
      assert.equal(mannWhitney(a0, b0).u, c);
      assert.ok(mannWhitney(a0, b0).p < alpha, `${n1}+${n2}: p at U = ${c}`);
      const [a1, b1] = withU(n1, n2, c + 1);
      assert.ok(mannWhitney(a1, b1).p >= alpha, `${n1}+${n2}: p at U = ${c + 1}`);
    }
  });

  it('at the shift it returns, mannWhitney itself rejects about half the time; far less at 0.7 of it, far more at 1.3', () => {
    // 9 processes a side, alpha 0.05 over 78 cells (the default suite's Holm worst case)
    const k = uShiftForPower(9, 9, 0.05 / 78);
    // the large-sample formula z sqrt(2/9) sqrt(pi/3) gives 1.65: too hopeful at this size
    assert.ok(k > 2 && k < 2.3, String(k));
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    const normal = () => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
    const power = (d: number) => {
      let hits = 0;
      for (let r = 0; r < 400; r++) if (mannWhitney(range(9, normal), range(9, () => normal() + d)).p < 0.05 / 78) hits++;
      return hits / 400;
    };
    const at = power(k);
    assert.ok(at > 0.4 && at < 0.6, `power ${at} at ${k}`);
    assert.ok(power(0.7 * k) < 0.3);
    assert.ok(power(1.3 * k) > 0.75);
  });

  it('the same on every call and every run, smaller with more samples, Infinity where no test can reject', () => {
    assert.equal(uShiftForPower(9, 9, 0.05 / 78), uShiftForPower(9, 9, 0.05 / 78));
    // pinned: the simulation is seeded, so two runs' smallest detectable changes differ only by their spreads
    // (the README quotes 2.13; final-bench-survivors.test.ts derives its figures from 1.37357 over 4 cells)
    assert.ok(Math.abs(uShiftForPower(9, 9, 0.05 / 78) - 2.126636028289795) < 1e-12);
    assert.ok(Math.abs(uShiftForPower(9, 9, 0.05 / 4) - 1.3735730051994324) < 1e-12);
    assert.ok(uShiftForPower(18, 18, 0.05 / 78) < uShiftForPower(9, 9, 0.05 / 78));
    assert.equal(uShiftForPower(5, 5, 0.05 / 8), Infinity);
    assert.ok(Number.isFinite(uShiftForPower(1, 39, 0.051)));
  });
});

describe('Holm', () => {
  it('ten cells: p_(k) x (m - k + 1), monotone, capped at 1, in the given order', () => {
    // sorted: .001x10=.01 .0049x9=.0441 .011x8=.088 .012x7=.084->.088 .02x6=.12
    //         .03x5=.15 .04x4=.16 .3x3=.9 .6x2=1.2->1 .9x1=.9->1
    const got = holm([0.001, 0.011, 0.02, 0.04, 0.3, 0.0049, 0.6, 0.012, 0.03, 0.9]);
    const want = [0.01, 0.088, 0.12, 0.16, 0.9, 0.0441, 1, 0.088, 0.15, 1];
    got.forEach((p, i) => assert.ok(Math.abs(p - want[i]) < 1e-12, `cell ${i}: ${p} vs ${want[i]}`));
  });
});

describe('compare decides on the Holm-adjusted p', () => {
  function run(file: string, slow: boolean): LoadedRun {
    const rows = range(10, (i) => mkRow({ workload: `w${i}`, sim_rounds: 5 }));
    const samples = new Map(
      rows.map((r, i) => [cellKey(r), i === 0 && slow ? [6, 7, 8, 9, 10] : [1, 2, 3, 4, 5]] as [string, number[]]),
    );
    return { file, meta: mkMeta(), rows, samples };
  }

  it('one cell 2x slower with p = 2/252 raw, 10 cells: 0.079 adjusted, so not significant', () => {
    const r = compareRuns(run('base.csv', false), run('new.csv', true), { thresholdPct: 5, alpha: 0.05 });
    const c = r.cells.find((x) => x.label.startsWith('w0 '))!;
    assert.ok(Math.abs(c.p - 2 / 252) < 1e-12);
    assert.ok(Math.abs(c.pHolm - 20 / 252) < 1e-12);
    assert.equal(c.significant, false);
    assert.equal(c.regression, false);
    assert.equal(r.regressions, 0);
  });

  it('the same change alone is significant, and a regression past the threshold', () => {
    const one = (file: string, slow: boolean): LoadedRun => {
      const r = run(file, slow);
      return { ...r, rows: r.rows.slice(0, 1) };
    };
    const r = compareRuns(one('base.csv', false), one('new.csv', true), { thresholdPct: 5, alpha: 0.05 });
    assert.equal(r.cells[0].significant, true);
    assert.equal(r.cells[0].regression, true);
    assert.equal(compareRuns(one('b', false), one('n', true), { thresholdPct: 200, alpha: 0.05 }).regressions, 0);
  });
});
