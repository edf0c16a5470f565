/**
 * Finite-number checks where numbers enter from files and options: weights,
 * statistics, preprocessing. A NaN that gets in silently turns every output
 * into NaN downstream, where the cause can no longer be seen.
 */

/**
 * Why `values` cannot be used, or null: "holds 12 non-finite values (NaN or
 * Infinity) of 36864, the first at index 0 (NaN)".
 */
export function describeNonFinite(values: ArrayLike<number>): string | null {
  let count = 0;
  let first = -1;
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) {
      if (first < 0) first = i;
      count++;
    }
  }
  if (count === 0) return null;
  return `holds ${count} non-finite value(s) (NaN or Infinity) of ${values.length}, the first at index ${first} (${values[first]})`;
}

/**
 * Checks a per-channel normalisation (mean/std on [0, 1] pixels): `channels`
 * finite numbers each, std > 0. Returns the key and the problem, or null.
 */
export function normalizationProblem(
  mean: unknown,
  std: unknown,
  channels: number,
): { key: 'mean' | 'std'; expected: string; received: unknown } | null {
  const isList = (v: unknown): v is number[] =>
    Array.isArray(v) && v.length === channels && v.every((x) => typeof x === 'number' && Number.isFinite(x));
  if (!isList(mean)) return { key: 'mean', expected: `a list of ${channels} finite number(s)`, received: mean };
  if (!isList(std) || std.some((x) => x <= 0)) {
    return { key: 'std', expected: `a list of ${channels} positive finite number(s)`, received: std };
  }
  return null;
}
