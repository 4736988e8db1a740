import cliProgress from "cli-progress";
import { formatDuration, RateMeter } from "./rate-meter.js";

export type KernelProgressTotals = { tiles: number; pairs: number; tilesDone: number; pairsDone: number };

/** The kernel progress bar: tiles done/total, pairs/s over the last seconds, ETA. Writes to stderr. */
export class KernelProgress {
  private readonly bar: cliProgress.SingleBar;
  private readonly meter = new RateMeter();
  private totals: KernelProgressTotals = { tiles: 0, pairs: 0, tilesDone: 0, pairsDone: 0 };
  private tiles = 0;
  private pairs = 0;
  private started = false;

  constructor(private readonly enabled: boolean) {
    this.bar = new cliProgress.SingleBar(
      {
        format: "tiles {bar} {value}/{total} | {pairs} prompts | {rate} prompts/s | ETA {eta}",
        stream: process.stderr,
        hideCursor: true,
        noTTYOutput: !process.stderr.isTTY,
        notTTYSchedule: 10_000,
        fps: 5,
      },
      cliProgress.Presets.shades_classic,
    );
  }

  start(totals: KernelProgressTotals): void {
    this.totals = totals;
    this.tiles = totals.tilesDone;
    this.pairs = totals.pairsDone;
    this.meter.add(this.pairs);
    if (this.enabled) this.bar.start(totals.tiles, this.tiles, this.payload());
    this.started = this.enabled;
  }

  /** Absolute progress, as a job status reports it. */
  update(tiles: number, pairs: number): void {
    this.tiles = tiles;
    this.pairs = pairs;
    this.meter.add(this.pairs);
    if (this.started) this.bar.update(this.tiles, this.payload());
  }

  stop(): void {
    if (!this.started) return;
    this.started = false;
    this.bar.update(this.tiles, this.payload());
    this.bar.stop();
  }

  private payload() {
    const rate = this.meter.rate();
    const left = this.totals.pairs - this.pairs;
    return {
      pairs: `${this.pairs}/${this.totals.pairs}`,
      rate: rate > 0 ? rate.toFixed(rate >= 100 ? 0 : 1) : "--",
      eta: rate > 0 ? formatDuration(left / rate) : "--",
    };
  }
}
