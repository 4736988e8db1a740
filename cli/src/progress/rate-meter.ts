/** Throughput over a sliding window, so the rate and ETA follow the current speed. */
export class RateMeter {
  private readonly samples: { t: number; value: number }[] = [];

  constructor(private readonly windowMs = 20_000, private readonly now = () => Date.now()) {}

  add(value: number): void {
    const t = this.now();
    this.samples.push({ t, value });
    while (this.samples.length > 2 && t - this.samples[0].t > this.windowMs) this.samples.shift();
  }

  /** Units per second over the window, 0 until two samples exist. */
  rate(): number {
    if (this.samples.length < 2) return 0;
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    const dt = (last.t - first.t) / 1000;
    return dt > 0 ? (last.value - first.value) / dt : 0;
  }
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "--";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, "0")}m` : m > 0 ? `${m}m${String(sec).padStart(2, "0")}s` : `${sec}s`;
}
