// Statistics for comparing runs: the Mann-Whitney U test (as benchstat uses
// for timing samples), Holm's step-down correction across the matrix, and
// the geometric mean of ratios.

/** Largest n1 n2 for which mannWhitney's p is exact; above it, the normal approximation. */
const EXACT_MAX_PAIRS = 2500;

/** Two-sided Mann-Whitney U test of samples a vs b: U of a and the p-value. */
export function mannWhitney(a: readonly number[], b: readonly number[]): { u: number; p: number } {
  const n1 = a.length, n2 = b.length;
  if (n1 === 0 || n2 === 0) return { u: NaN, p: NaN };
  // rank the pooled samples, ties get their mean rank
  const all = [...a.map((v) => ({ v, g: 0 })), ...b.map((v) => ({ v, g: 1 }))].sort((x, y) => x.v - y.v);
  let r1 = 0;
  let tieTerm = 0; // sum of t^3 - t over tie groups
  const twiceRanks: number[] = []; // every sample's mid-rank, doubled (an integer)
  for (let i = 0; i < all.length; ) {
    let j = i;
    while (j < all.length && all[j].v === all[i].v) j++;
    const rank = (i + 1 + j) / 2;
    for (let k = i; k < j; k++) {
      if (all[k].g === 0) r1 += rank;
      twiceRanks.push(i + 1 + j);
    }
    const t = j - i;
    tieTerm += t * t * t - t;
    i = j;
  }
  const u = r1 - (n1 * (n1 + 1)) / 2;
  const mean = (n1 * n2) / 2;
  if (n1 * n2 <= EXACT_MAX_PAIRS) return { u, p: tieTerm === 0 ? exactP(u, n1, n2) : exactTiedP(2 * r1, n1, twiceRanks) };
  const n = n1 + n2;
  const variance = ((n1 * n2) / 12) * (n + 1 - tieTerm / (n * (n - 1)));
  if (variance === 0) return { u, p: 1 };
  const z = (Math.abs(u - mean) - 0.5) / Math.sqrt(variance); // continuity correction
  return { u, p: Math.min(1, erfc(Math.max(0, z) / Math.SQRT2)) }; // 2 * (1 - normalCdf(z))
}

/** How many orderings of n1 + n2 distinct values give each U = 0 .. n1 n2 (the U test's null distribution, unnormalised). */
function uNullCounts(n1: number, n2: number): Float64Array {
  // counts[k] = number of orderings with U = k, built up one sample at a time:
  // f(i, j, k) = f(i-1, j, k-j) + f(i, j-1, k)
  const max = n1 * n2;
  let prev: Float64Array[] = [];
  for (let j = 0; j <= n2; j++) {
    const row = new Float64Array(max + 1);
    row[0] = 1;
    prev.push(row);
  }
  for (let i = 1; i <= n1; i++) {
    const cur: Float64Array[] = [];
    for (let j = 0; j <= n2; j++) {
      const row = new Float64Array(max + 1);
      for (let k = 0; k <= max; k++) {
        let v = k - j >= 0 ? prev[j][k - j] : 0;
        if (j > 0) v += cur[j - 1][k];
        row[k] = v;
      }
      cur.push(row);
    }
    prev = cur;
  }
  return prev[n2];
}

/** Exact two-sided p-value of U for sample sizes n1, n2 without ties. */
function exactP(u: number, n1: number, n2: number): number {
  const counts = uNullCounts(n1, n2);
  const max = n1 * n2;
  let total = 0;
  for (let k = 0; k <= max; k++) total += counts[k];
  const lo = Math.min(u, max - u);
  let tail = 0;
  for (let k = 0; k <= Math.floor(lo + 1e-9); k++) tail += counts[k];
  return Math.min(1, (2 * tail) / total);
}

/**
 * The largest U (of either sample, the smaller of U and n1 n2 - U) whose
 * two-sided p-value is below alpha, as mannWhitney computes it for samples
 * without ties: a test at alpha rejects exactly when min(U, n1 n2 - U) is at
 * most this. -1 when no U is (too few samples for alpha).
 */
export function uCritical(n1: number, n2: number, alpha: number): number {
  const max = n1 * n2;
  if (max <= EXACT_MAX_PAIRS) {
    const counts = uNullCounts(n1, n2);
    let total = 0;
    for (let k = 0; k <= max; k++) total += counts[k];
    let tail = 0, crit = -1;
    for (let u = 0; 2 * u <= max; u++) {
      tail += counts[u];
      if ((2 * tail) / total >= alpha) break;
      crit = u;
    }
    return crit;
  }
  // mannWhitney's normal approximation with continuity correction, no ties:
  // p < alpha  <=>  mean - u - 0.5 > z sd
  const n = n1 + n2;
  const sd = Math.sqrt((max / 12) * (n + 1));
  const z = -normalQuantile(alpha / 2); // (from the lower tail: 1 - alpha / 2 rounds to 1 for a tiny alpha)
  const bound = max / 2 - 0.5 - z * sd; // u must lie strictly below it
  return Math.max(-1, Math.ceil(bound) - 1);
}

/** Deterministic uniform numbers in [0, 1) from a seed (mulberry32): the power estimate below, run --repeat's cell orders. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Replicates of the power estimate: its standard error at 50% power is 0.8 points. */
const POWER_REPS = 4000;
const shiftMemo = new Map<string, number>();

/**
 * The shift, in standard deviations of normal data, at which the U test at
 * alpha (two-sided, samples of n1 and n2, exact where mannWhitney is exact)
 * rejects half the time: a compare cell's smallest detectable change is this
 * times its spread. Found by bisection on a fixed simulation (the same
 * POWER_REPS normal samples at every shift, so the estimate is the same on
 * every run and rises with the shift); Infinity where no shift reaches half
 * (alpha below what complete separation gives, or too few samples).
 *
 * Why not the large-sample formula z sqrt(1/n1 + 1/n2) sqrt(pi/3): at the
 * sizes compare sees it is far too hopeful. With 9 processes a side and
 * alpha 0.05 over 78 cells (Holm's worst case), the exact test needs 2.13
 * standard deviations where that formula says 1.65: simulated with
 * mannWhitney itself, a change of the formula's size was seen in about a
 * quarter of the runs (256 of 1000).
 */
export function uShiftForPower(n1: number, n2: number, alpha: number): number {
  const key = `${n1}/${n2}/${alpha}`;
  const memo = shiftMemo.get(key);
  if (memo !== undefined) return memo;
  const crit = uCritical(n1, n2, alpha);
  let shift = Infinity;
  // (no critical value, crit -1: no shift is ever seen, and the shift stays Infinity)
  const rnd = mulberry32(0x5eed);
  const normal = (): number => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
  const base = new Float64Array(POWER_REPS * n1).map(normal);
  const next = new Float64Array(POWER_REPS * n2).map(normal);
  for (let rep = 0; rep < POWER_REPS; rep++) {
    base.subarray(rep * n1, (rep + 1) * n1).sort();
    next.subarray(rep * n2, (rep + 1) * n2).sort();
  }
  // a shifted-up second sample: U of the first (pairs where it is larger)
  // falls; counted by one merge of the two sorted samples
  const rejects = (d: number): number => {
    let r = 0;
    for (let rep = 0; rep < POWER_REPS; rep++) {
      let u = 0;
      for (let i = 0, j = 0; i < n1; i++) {
        const b = base[rep * n1 + i];
        while (j < n2 && next[rep * n2 + j] + d < b) j++;
        u += j;
      }
      if (u <= crit) r++;
    }
    return r;
  };
  let lo = 0, hi = 64;
  if (rejects(hi) * 2 >= POWER_REPS) {
    for (let i = 0; i < 30; i++) {
      const mid = (lo + hi) / 2;
      if (rejects(mid) * 2 >= POWER_REPS) hi = mid;
      else lo = mid;
    }
    shift = hi;
  }
  shiftMemo.set(key, shift);
  return shift;
}

/**
 * Exact two-sided p-value of a rank sum with ties, conditional on the tie
 * pattern: of all C(N, n1) ways to give n1 of the N pooled mid-ranks to the
 * first sample, the share whose rank sum is as extreme, twice the smaller
 * tail (as exactP, and as SciPy's mannwhitneyu(method=PermutationMethod())
 * with every permutation). The normal approximation is far too cautious at
 * the sizes compare sees (7 to 9 processes a side): complete separation with one
 * tie gives p = 0.0021 there against 2 / C(14, 7) = 0.00058 here, which is
 * what decides whether a change can pass Holm over a suite's cells.
 * twiceRanks: the N mid-ranks doubled (integers); sum2: the first sample's
 * doubled rank sum. Without ties it gives exactP's p; exactP stays for that
 * case because its table is n1 n2 wide where this one is N (N + 1).
 */
function exactTiedP(sum2: number, n1: number, twiceRanks: readonly number[]): number {
  // ways[k][s]: subsets of k of the ranks seen so far with doubled sum s
  const max = twiceRanks.reduce((x, y) => x + y, 0);
  const ways: Float64Array[] = Array.from({ length: n1 + 1 }, () => new Float64Array(max + 1));
  ways[0][0] = 1;
  let seen = 0;
  for (const r of twiceRanks) {
    seen += r;
    for (let k = n1; k >= 1; k--) {
      const to = ways[k], from = ways[k - 1];
      for (let s = seen; s >= r; s--) to[s] += from[s - r];
    }
  }
  const counts = ways[n1];
  let total = 0, le = 0, ge = 0;
  for (let s = 0; s <= max; s++) {
    total += counts[s];
    if (s <= sum2) le += counts[s];
    if (s >= sum2) ge += counts[s];
  }
  return Math.min(1, (2 * Math.min(le, ge)) / total);
}

/**
 * erfc(x) for x >= 0 to better than 1e-13 relative (against mpmath: at
 * most 6.5e-14 just below 2.5, 2.8e-14 above; the tests hold it to 1e-12):
 * below 2.5 as 1 - erf(x) from
 * the all-positive series erf(x) = 2/sqrt(pi) e^(-x^2) sum 2^n x^(2n+1) / (2n+1)!!
 * (Abramowitz-Stegun 7.1.6), above it from the continued fraction
 * erfc(x) = e^(-x^2)/sqrt(pi) * 1/(x+ (1/2)/(x+ 1/(x+ (3/2)/(x+ ...)))) (A-S 7.1.14),
 * evaluated with the modified Lentz method.
 */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 0) return 2 - erfc(-x);
  if (x === Infinity) return 0;
  const ex2 = Math.exp(-x * x);
  if (x < 2.5) {
    let term = x, sum = x;
    for (let n = 0; n < 200 && term > sum * 1e-17; n++) {
      term *= (2 * x * x) / (2 * n + 3);
      sum += term;
    }
    return 1 - (2 / Math.sqrt(Math.PI)) * ex2 * sum;
  }
  // f = x + a1/(x + a2/(x + ...)), a_k = k/2
  const tiny = 1e-300;
  let f = x, c = x, d = 0;
  for (let k = 1; k < 300; k++) {
    const a = k / 2;
    d = x + a * d;
    d = d === 0 ? tiny : d;
    c = x + a / c;
    c = c === 0 ? tiny : c;
    d = 1 / d;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return ex2 / Math.sqrt(Math.PI) / f;
}

/** Standard normal CDF, from erfc (so normalCdf(0) is exactly 0.5 and the upper tail keeps its precision). */
export function normalCdf(z: number): number {
  return z >= 0 ? 1 - 0.5 * erfc(z / Math.SQRT2) : 0.5 * erfc(-z / Math.SQRT2);
}

/** Holm's step-down adjusted p-values (same order as given; NaN stays NaN and is not counted). */
export function holm(ps: readonly number[]): number[] {
  const idx = ps.map((p, i) => ({ p, i })).filter((x) => !Number.isNaN(x.p)).sort((x, y) => x.p - y.p);
  const m = idx.length;
  const out = ps.map(() => NaN);
  let running = 0;
  idx.forEach(({ p, i }, k) => {
    running = Math.max(running, Math.min(1, (m - k) * p));
    out[i] = running;
  });
  return out;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function geomean(xs: readonly number[]): number {
  const ok = xs.filter((x) => x > 0 && Number.isFinite(x));
  if (ok.length === 0) return NaN;
  return Math.exp(ok.reduce((s, x) => s + Math.log(x), 0) / ok.length);
}

/**
 * The smallest two-sided p the exact U test can give for samples of n1 and
 * n2 without ties: both orderings of complete separation, 2 / C(n1+n2, n1).
 * With 5 + 5 samples that is 0.0079, so Holm over 8 cells can never reach 0.05.
 */
export function minExactP(n1: number, n2: number): number {
  if (n1 < 1 || n2 < 1) return 1;
  let c = 1; // C(n1+n2, n1), built up as a product (exact while it fits a double)
  for (let i = 1; i <= n1; i++) c = (c * (n2 + i)) / i;
  return Math.min(1, 2 / c);
}

/** Ranks 1..n with ties sharing their mean rank. */
function ranks(xs: readonly number[]): number[] {
  const idx = xs.map((_, i) => i).sort((a, b) => xs[a] - xs[b]);
  const r = new Array<number>(xs.length);
  for (let i = 0; i < idx.length; ) {
    let j = i;
    while (j + 1 < idx.length && xs[idx[j + 1]] === xs[idx[i]]) j++;
    for (let k = i; k <= j; k++) r[idx[k]] = (i + j) / 2 + 1;
    i = j + 1;
  }
  return r;
}

/**
 * Spearman's rank correlation of xs with their order (a monotone trend in a
 * time series): +1 rising, -1 falling, NaN for fewer than 3 values or a
 * constant series.
 */
export function spearmanTrend(xs: readonly number[]): number {
  const n = xs.length;
  if (n < 3) return NaN;
  const rx = ranks(xs);
  const mean = (n + 1) / 2;
  let sxy = 0, sxx = 0, syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = rx[i] - mean, dy = i + 1 - mean;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  return sxx === 0 ? NaN : sxy / Math.sqrt(sxx * syy);
}

/**
 * Sarle's bimodality coefficient (g^2 + 1) / (k + 3(n-1)^2 / ((n-2)(n-3))),
 * with the sample skewness g and excess kurtosis k. Above 5/9 (0.555, the
 * value of a uniform distribution) a sample is taken as bimodal. NaN below
 * 4 values.
 */
export function bimodalityCoefficient(xs: readonly number[]): number {
  const n = xs.length;
  if (n < 4) return NaN;
  const m = xs.reduce((a, b) => a + b, 0) / n;
  let m2 = 0, m3 = 0, m4 = 0;
  for (const x of xs) {
    const d = x - m;
    m2 += d * d;
    m3 += d * d * d;
    m4 += d * d * d * d;
  }
  m2 /= n;
  m3 /= n;
  m4 /= n;
  if (m2 === 0) return NaN;
  // bias-corrected sample skewness and excess kurtosis (as SAS and scipy's bias=False)
  const g = (Math.sqrt(n * (n - 1)) / (n - 2)) * (m3 / m2 ** 1.5);
  const k = ((n - 1) / ((n - 2) * (n - 3))) * ((n + 1) * (m4 / (m2 * m2) - 3) + 6);
  return (g * g + 1) / (k + (3 * (n - 1) ** 2) / ((n - 2) * (n - 3)));
}

/** Coefficient of variation, %: sample standard deviation over the mean. NaN below 2 values. */
export function cvPct(xs: readonly number[]): number {
  const n = xs.length;
  if (n < 2) return NaN;
  const m = xs.reduce((a, b) => a + b, 0) / n;
  const v = xs.reduce((a, x) => a + (x - m) ** 2, 0) / (n - 1);
  return (Math.sqrt(v) / m) * 100;
}

/** The standard normal quantile: z with normalCdf(z) = p (bisection on normalCdf; p in (0, 1)). */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) return NaN;
  let lo = -40, hi = 40;
  for (let i = 0; i < 100; i++) {
    const mid = (lo + hi) / 2;
    if (normalCdf(mid) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/**
 * Wilcoxon's signed-rank test of "xs is symmetric about 0", two-sided,
 * exact: the distribution of the positive ranks' sum over all 2^n sign
 * patterns, counted by dynamic programming. Zeros are dropped (Wilcoxon's
 * rule); tied magnitudes share their mean rank, counted in half ranks so the
 * sums stay integers. ab tests the per-process log ratios with it: each
 * process is one paired unit.
 */
export function signedRank(xs: readonly number[]): { w: number; p: number; n: number } {
  const nz = xs.filter((x) => x !== 0 && Number.isFinite(x));
  const n = nz.length;
  if (n === 0) return { w: 0, p: 1, n: 0 };
  const r = ranks(nz.map(Math.abs)).map((x) => Math.round(x * 2)); // half ranks
  const wPlus2 = nz.reduce((s, x, i) => s + (x > 0 ? r[i] : 0), 0);
  const total2 = r.reduce((s, x) => s + x, 0);
  // ways[s]: sign patterns whose positive half-rank sum is s
  let ways = new Float64Array(total2 + 1);
  ways[0] = 1;
  for (const ri of r) {
    const next = ways.slice();
    for (let s = total2 - ri; s >= 0; s--) if (ways[s] > 0) next[s + ri] += ways[s];
    ways = next;
  }
  const lo = Math.min(wPlus2, total2 - wPlus2);
  let tail = 0;
  for (let s = 0; s <= lo; s++) tail += ways[s];
  return { w: wPlus2 / 2, p: Math.min(1, (2 * tail) / 2 ** n), n };
}

/** The smallest two-sided p the exact signed-rank test can give for n nonzero values: every sign alike, 2 / 2^n. */
export const minSignedRankP = (n: number): number => (n < 1 ? 1 : Math.min(1, 2 / 2 ** n));
