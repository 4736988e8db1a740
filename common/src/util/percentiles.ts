/** Nearest-rank percentiles of a list of numbers (sorted copy; input untouched). */
export function percentiles(values: ArrayLike<number>, ps: number[]): number[] {
  if (values.length === 0) return ps.map(() => 0);
  const sorted = Float64Array.from(values).sort();
  return ps.map((p) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]);
}
