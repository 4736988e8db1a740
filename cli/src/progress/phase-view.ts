import cliProgress from "cli-progress";
import type { PhaseProgress } from "../../../common/src/mod.js";
import { formatDuration } from "./rate-meter.js";

/** What a phase is called in views: its name, and the step when it has more than one. */
export function phaseLabel(p: PhaseProgress): string {
  return p.step && p.step !== p.name ? `${p.name} (${p.step})` : p.name;
}

function amount(v: number, unit: string): string {
  if (unit === "bytes") return v >= 1 << 30 ? `${(v / (1 << 30)).toFixed(2)} GiB` : `${(v / (1 << 20)).toFixed(1)} MiB`;
  return Math.round(v).toLocaleString("en-US");
}

function rateText(p: PhaseProgress): string {
  if (p.rate <= 0) return `-- ${p.unit}/s`;
  return p.unit === "bytes" ? `${amount(p.rate, "bytes")}/s` : `${p.rate >= 100 ? Math.round(p.rate).toLocaleString("en-US") : p.rate.toFixed(1)} ${p.unit}/s`;
}

/** `candidates (cells search) [#####.....] 42% 120/284 tiles | 3.2 tiles/s | ETA 44s`. */
export function formatPhase(p: PhaseProgress, width = 20): string {
  const fraction = p.total > 0 ? Math.min(1, p.done / p.total) : 0;
  const filled = Math.round(fraction * width);
  return (
    `${phaseLabel(p)} [${"#".repeat(filled)}${".".repeat(width - filled)}] ${(100 * fraction).toFixed(0)}% ` +
    `${amount(p.done, p.unit)}/${amount(p.total, p.unit)}${p.unit === "bytes" ? "" : ` ${p.unit}`} | ${rateText(p)} | ETA ${p.etaSeconds >= 0 ? formatDuration(p.etaSeconds) : "--"}`
  );
}

/** Short form for tables (`delift jobs`): `candidates 42%`. */
export function phaseCell(p: PhaseProgress | null | undefined): string {
  if (!p) return "-";
  return `${p.name} ${p.total > 0 ? `${Math.floor((100 * Math.min(1, p.done / p.total)))}%` : ""}`.trim();
}

/**
 * The embedded commands' view of a job's phases other than scoring (reading, candidates, ...):
 * a bar per phase step with its rate and ETA on a terminal; elsewhere a line every 10 s and at
 * each step's end.
 */
export class PhaseProgressView {
  private bar: cliProgress.SingleBar | null = null;
  private current = "";
  private lastLine = 0;

  constructor(private readonly enabled: boolean, private readonly tty = process.stderr.isTTY === true) {}

  update(p: PhaseProgress | null | undefined): void {
    if (!this.enabled || !p) return;
    const key = `${p.name}/${p.step}`;
    const total = Math.max(1, p.total);
    const payload = { label: phaseLabel(p), rate: rateText(p), eta: p.etaSeconds >= 0 ? formatDuration(p.etaSeconds) : "--" };
    if (!this.tty) {
      const now = Date.now();
      if (key === this.current && p.done < p.total && now - this.lastLine < 10_000) return;
      this.current = key;
      this.lastLine = now;
      process.stderr.write(formatPhase(p) + "\n");
      return;
    }
    if (key !== this.current) {
      this.stop();
      this.current = key;
      this.bar = new cliProgress.SingleBar(
        { format: "{label} {bar} {percentage}% | {rate} | ETA {eta}", stream: process.stderr, hideCursor: true, fps: 4 },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(total, Math.min(p.done, total), payload);
      return;
    }
    this.bar?.setTotal(total);
    this.bar?.update(Math.min(p.done, total), payload);
  }

  stop(): void {
    this.bar?.stop();
    this.bar = null;
  }
}
