// Command-line value checks: each throws one line that names the option and
// echoes what the user typed.

/** An integer in [min, max], as typed (decimal, or what Number() reads). */
export const positiveInt = (name: string, max = Number.MAX_SAFE_INTEGER, min = 1) => (v: unknown) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name}: expected an integer in [${min}, ${max}], got '${String(v)}'`);
  return n;
};

export const nonNegative = (name: string) => (v: unknown) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name}: expected a number >= 0, got '${String(v)}'`);
  return n;
};

export const probability = (name: string) => (v: unknown) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || n >= 1) throw new Error(`--${name}: expected a number in (0, 1), got '${String(v)}'`);
  return n;
};

/** "a,b" or repeated flags -> unique list, each checked by `check` (which throws naming the value). */
export const csvList =
  (name: string, check: (s: string) => unknown) =>
  (v: unknown): string[] => {
    const items = (Array.isArray(v) ? v : [v]).flatMap((x) => String(x).split(',')).map((s) => s.trim()).filter(Boolean);
    if (items.length === 0) throw new Error(`--${name}: expected at least one value`);
    // de-duplicated after parsing: "-t 1,01" is one value
    const out = new Map<string, string>();
    for (const s of items) {
      let canon: unknown;
      try {
        canon = check(s);
      } catch (e) {
        const msg = (e as Error).message;
        throw new Error(msg.startsWith(`--${name}:`) ? msg : `--${name}: ${msg}`);
      }
      const key = typeof canon === 'number' || typeof canon === 'string' ? String(canon) : s;
      if (!out.has(key)) out.set(key, key);
    }
    return [...out.values()];
  };

