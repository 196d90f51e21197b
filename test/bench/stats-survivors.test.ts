// Behaviour the mutation run of dist/bench/stats.js showed untested (see
// test/mutation-review/csv-stats.md), against reference values computed once
// with SciPy 1.17.1 / NumPy (the call is given at each value) and hard-coded.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bimodalityCoefficient, cvPct, geomean, mannWhitney, median, minExactP, normalQuantile } from '../../bench/stats.js';

const close = (got: number, want: number, tol: number, what: string) => assert.ok(Math.abs(got - want) <= tol, `${what}: ${got} vs ${want}`);
const range = (n: number, f: (i: number) => number): number[] => Array.from({ length: n }, (_, i) => f(i));

describe('Mann-Whitney U: edge cases', () => {
  it('an empty side gives no statistic and no p', () => {
    // scipy.stats.mannwhitneyu([], [1, 2]) -> statistic nan, pvalue nan (with a SmallSampleWarning)
    assert.deepEqual(mannWhitney([], [1, 2]), { u: NaN, p: NaN });
    assert.deepEqual(mannWhitney([1, 2], []), { u: NaN, p: NaN });
  });

  it('all values tied: U = n1 n2 / 2 and p exactly 1', () => {
    // scipy.stats.mannwhitneyu([5,5], [5,5,5], alternative='two-sided', method='asymptotic') -> statistic 3.0, pvalue 1.0
    assert.deepEqual(mannWhitney([5, 5], [5, 5, 5]), { u: 3, p: 1 });
  });

  it('n1 n2 = 2500 without ties still takes the exact distribution', () => {
    const a = range(50, (i) => i);
    const b = range(50, (i) => i + 9.5);
    const r = mannWhitney(a, b);
    assert.equal(r.u, 820);
    // scipy.stats.mannwhitneyu(range(50), [i + 9.5 for i in range(50)], alternative='two-sided', method='exact')
    //   -> pvalue 0.0028083166387707576 (method='asymptotic' would give 0.00306745862373702)
    close(r.p, 0.0028083166387707576, 1e-12, 'exact, n = 50 + 50');
  });
});

describe('median, geomean, cvPct, bimodality, quantile', () => {
  it('median of unsorted values, odd and even counts, negatives included', () => {
    // numpy.median([5,1,3]) = 3.0, numpy.median([4,1,3,2]) = 2.5, numpy.median([10,-3,7,0]) = 3.5
    assert.equal(median([5, 1, 3]), 3);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.equal(median([10, -3, 7, 0]), 3.5);
  });

  it('geomean leaves out zero, negative and non-finite ratios', () => {
    // scipy.stats.gmean([1, 4]) = 2.0
    close(geomean([1, 0, 4, -2, NaN, Infinity]), 2, 1e-12, 'geomean');
  });

  it('the exact-test floor with a single sample on one side: 2 / C(n+1, 1)', () => {
    // scipy.stats.mannwhitneyu([0], [1,2,3,4,5], method='exact').pvalue = 0.3333333333333333 (and the same swapped)
    close(minExactP(1, 5), 1 / 3, 1e-15, 'minExactP(1, 5)');
    close(minExactP(5, 1), 1 / 3, 1e-15, 'minExactP(5, 1)');
  });

  it('the exact-test floor is 1 for a size below 1, a negative one included', () => {
    for (const [n1, n2] of [
      [1, -2],
      [3, -2],
      [0, 3],
      [-1, 4],
    ])
      assert.equal(minExactP(n1, n2), 1, `minExactP(${n1}, ${n2})`);
  });

  it('the bimodality coefficient of 4 values; NaN for 3', () => {
    // scipy.stats.skew(xs, bias=False), scipy.stats.kurtosis(xs, bias=False); n = 4:
    // (g^2 + 1) / (k + 3 (n-1)^2 / ((n-2)(n-3))) = 0.24571975131516016 for [1, 2, 3, 10]
    close(bimodalityCoefficient([1, 2, 3, 10]), 0.24571975131516016, 1e-12, 'n = 4');
    for (const xs of [
      [1, 2, 4],
      [0, 0, 1],
      [1, 2, 3],
    ])
      assert.ok(Number.isNaN(bimodalityCoefficient(xs)), `[${xs.join(', ')}]`);
  });

  it('CV of 2 values', () => {
    // numpy.std([1, 3], ddof=1) / numpy.mean([1, 3]) * 100 = 70.71067811865476
    close(cvPct([1, 3]), 70.71067811865476, 1e-12, 'cvPct([1, 3])');
  });

  it('the normal quantile is NaN at 0 and below (outside (0, 1); scipy.stats.norm.ppf(0) is -inf)', () => {
    assert.ok(Number.isNaN(normalQuantile(0)));
    assert.ok(Number.isNaN(normalQuantile(-0.5)));
  });
});
