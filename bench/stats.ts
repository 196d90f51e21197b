// Statistics for comparing runs: the Mann-Whitney U test (as benchstat uses
// for timing samples), Holm's step-down correction across the matrix, and
// the geometric mean of ratios.

/** Two-sided Mann-Whitney U test of samples a vs b: U of a and the p-value. */
export function mannWhitney(a: readonly number[], b: readonly number[]): { u: number; p: number } {
  const n1 = a.length, n2 = b.length;
  if (n1 === 0 || n2 === 0) return { u: NaN, p: NaN };
  // rank the pooled samples, ties get their mean rank
  const all = [...a.map((v) => ({ v, g: 0 })), ...b.map((v) => ({ v, g: 1 }))].sort((x, y) => x.v - y.v);
  let r1 = 0;
  let tieTerm = 0; // sum of t^3 - t over tie groups
  for (let i = 0; i < all.length; ) {
    let j = i;
    while (j < all.length && all[j].v === all[i].v) j++;
    const rank = (i + 1 + j) / 2;
    for (let k = i; k < j; k++) if (all[k].g === 0) r1 += rank;
    const t = j - i;
    tieTerm += t * t * t - t;
    i = j;
  }
  const u = r1 - (n1 * (n1 + 1)) / 2;
  const mean = (n1 * n2) / 2;
  if (tieTerm === 0 && n1 * n2 <= 2500) return { u, p: exactP(u, n1, n2) };
  const n = n1 + n2;
  const variance = ((n1 * n2) / 12) * (n + 1 - tieTerm / (n * (n - 1)));
  if (variance === 0) return { u, p: 1 };
  const z = (Math.abs(u - mean) - 0.5) / Math.sqrt(variance); // continuity correction
  return { u, p: Math.min(1, 2 * (1 - normalCdf(Math.max(0, z)))) };
}

/** Exact two-sided p-value of U for sample sizes n1, n2 without ties. */
function exactP(u: number, n1: number, n2: number): number {
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
  const counts = prev[n2];
  let total = 0;
  for (let k = 0; k <= max; k++) total += counts[k];
  const lo = Math.min(u, max - u);
  let tail = 0;
  for (let k = 0; k <= Math.floor(lo + 1e-9); k++) tail += counts[k];
  return Math.min(1, (2 * tail) / total);
}

/** Standard normal CDF (Abramowitz-Stegun 7.1.26 via erf; |error| < 1.5e-7). */
export function normalCdf(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return z >= 0 ? 0.5 * (1 + y) : 0.5 * (1 - y);
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
