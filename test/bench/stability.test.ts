// Is a timing trustworthy: the statistics behind the stability flags and
// compare's smallest detectable change, against reference values, and the
// shuffled orders of run --repeat.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { shuffledOrder } from '../../bench/repeat.js';
import { LoadMeter, stabilityFlags } from '../../bench/stability.js';
import { REPEAT } from '../../bench/runner.js';
import { bimodalityCoefficient, cvPct, mannWhitney, minExactP, normalQuantile, spearmanTrend } from '../../bench/stats.js';

const close = (a: number, b: number, tol = 1e-9) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

describe('statistics for stability', () => {
  it('the exact U test floor: 2 / C(n1+n2, n1)', () => {
    close(minExactP(5, 5), 2 / 252);
    close(minExactP(7, 7), 2 / 3432);
    close(minExactP(1, 1), 1);
    assert.equal(minExactP(0, 5), 1);
    // Holm over the default suite's timed cells needs p < 0.05 / 78.
    // 78 = 42 at 1 thread (60 cells less 18 that do not run their scenario: unsupported, crashed)
    // + 36 at 2 threads (the same less key-exhaustion's 6, which runs at 1 thread only);
    // 7 a side are the fewest that can (2 / 3432 < 0.05 / 78), with the sides completely apart only
    assert.ok(minExactP(6, 6) > 0.05 / 78 && minExactP(7, 7) < 0.05 / 78);
  });

  it('why --repeat defaults to 9: a change still passes Holm over 78 cells with 3 of the 81 pairs the other way round', () => {
    assert.equal(REPEAT, 9);
    const base = [1, 2, 3, 4, 5, 6, 7, 8, 9];
    // one process of the new side as fast as the base's best three (a slow spell on the base's side, say)
    const slower = [6.5, 10, 11, 12, 13, 14, 15, 16, 17];
    const r = mannWhitney(base, slower);
    assert.equal(r.u, 3);
    close(r.p, (2 * (1 + 1 + 2 + 3)) / 48620, 1e-15); // U = 0, 1, 2, 3: 1, 1, 2 and 3 of the C(18, 9) orders
    assert.ok(r.p < 0.05 / 78);
    // with 7 a side, one such pair is already too many
    assert.ok(mannWhitney([1, 2, 3, 4, 5, 6, 7], [6.5, 8, 9, 10, 11, 12, 13]).p > 0.05 / 78);
  });

  it('Spearman trend and the bimodality coefficient match SciPy 1.17 (spearmanr; skew and kurtosis with bias=False)', () => {
    // scipy.stats.spearmanr([5,3,4,8,9,9,12], range(7)).statistic
    close(spearmanTrend([5, 3, 4, 8, 9, 9, 12]), 0.8829187134416479, 1e-12);
    close(spearmanTrend([3, 2, 1]), -1);
    assert.ok(Number.isNaN(spearmanTrend([1, 1, 1])) && Number.isNaN(spearmanTrend([1, 2])));
    // (g^2+1)/(k+3(n-1)^2/((n-2)(n-3))) with scipy.stats.skew/kurtosis(bias=False)
    close(bimodalityCoefficient([1, 2, 2, 3, 10, 11, 12, 12, 13]), 0.4743358740061306, 1e-12);
    assert.ok(Number.isNaN(bimodalityCoefficient([1, 2, 3])));
  });

  it('normal quantile and CV', () => {
    close(normalQuantile(0.975), 1.959963984540054, 1e-12); // scipy.stats.norm.ppf(0.975)
    close(normalQuantile(0.5), 0, 1e-9);
    assert.ok(Number.isNaN(normalQuantile(1)));
    close(cvPct([9, 10, 11]), 10);
    assert.ok(Number.isNaN(cvPct([5])));
  });
});

describe('stability flags', () => {
  it('noisy, drift within processes, two clusters', () => {
    assert.deepEqual(stabilityFlags(true, []), ['noisy']);
    const flat = [100, 101, 99, 100, 102, 98, 100, 101, 99, 100];
    assert.deepEqual(stabilityFlags(false, [flat]), []);
    const rising = [90, 92, 95, 97, 100, 104, 108, 111, 115, 120];
    assert.deepEqual(stabilityFlags(false, [rising, rising.map((x) => x + 1)]), ['drift']);
    const twoLevels = [[100, 101, 100, 99, 100, 101], [150, 151, 149, 150, 151, 150]];
    assert.ok(stabilityFlags(false, twoLevels).includes('bimodal'));
  });

  it('the load meter gives a share in [0, 100], or NaN where /proc/stat is missing', () => {
    const m = new LoadMeter();
    m.start();
    let x = 0;
    for (let i = 0; i < 1e6; i++) x += i;
    const share = m.stop();
    assert.ok(Number.isNaN(share) || (share >= 0 && share <= 100), String(share + x * 0));
  });
});

describe('run --repeat: shuffled orders', () => {
  it('a permutation, the same for the same seed, different for another', () => {
    const a = shuffledOrder(52, 7);
    assert.deepEqual([...a].sort((x, y) => x - y), Array.from({ length: 52 }, (_, i) => i));
    assert.deepEqual(shuffledOrder(52, 7), a);
    assert.notDeepEqual(shuffledOrder(52, 8), a);
    assert.deepEqual(shuffledOrder(0, 1), []);
  });
});
