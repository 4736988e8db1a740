import { ConfigError } from "../errors.js";

/**
 * Turns a budget given as text into a pick count k for n samples:
 * - a fraction "0.3" (0 < b < 1): k = ceil(b * n), at least 1;
 * - a percentage "30%" (0 < p <= 100): k = ceil(p / 100 * n), at least 1;
 * - an integer count "300" (1 <= k <= n).
 */
export function parseBudget(text: string, n: number): number {
  if (!Number.isInteger(n) || n < 0) {
    throw new ConfigError(`sample count must be a non-negative integer, got ${n}`);
  }
  if (n === 0) throw new ConfigError(`cannot select a budget from empty data (0 samples)`);
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed)) {
    const count = Number(trimmed);
    if (count < 1 || count > n) {
      throw new ConfigError(`budget ${trimmed} out of range: a count must be between 1 and ${n} (the number of samples)`);
    }
    return count;
  }
  const percent = /^(\d+(?:\.\d*)?|\.\d+)%$/.exec(trimmed);
  if (percent) {
    const p = Number(percent[1]);
    if (!(p > 0 && p <= 100)) {
      throw new ConfigError(`budget ${trimmed} out of range: a percentage must be above 0% and at most 100%`);
    }
    return countFromFraction(p / 100, n);
  }
  if (/^(\d+\.\d*|\.\d+)$/.test(trimmed)) {
    const b = Number(trimmed);
    if (!(b > 0 && b < 1)) {
      throw new ConfigError(
        `budget ${trimmed} out of range: a fraction must satisfy 0 < b < 1 (write a count as an integer, e.g. "${n}")`,
      );
    }
    return countFromFraction(b, n);
  }
  throw new ConfigError(
    `budget "${text}" not understood: give a fraction (0.3), a percentage (30%) or a count (1..${n})`,
  );
}

function countFromFraction(fraction: number, n: number): number {
  // The tolerance keeps 0.3 * 1000 (= 300.00000000000006 in binary) from rounding up to 301.
  const k = Math.ceil(fraction * n - 1e-9);
  return Math.min(n, Math.max(1, k));
}
