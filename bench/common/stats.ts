export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function fmt(n: number, digits = 2): string {
  return Number.isFinite(n) ? n.toFixed(digits) : String(n);
}

/** One line a figure, aligned: the benchmark's report. */
export function row(label: string, value: string): void {
  console.log(`  ${label.padEnd(44)} ${value}`);
}
