import cliProgress from "cli-progress";
import type { JobStatusMessage } from "../../../common/src/mod.js";
import { formatDuration } from "./rate-meter.js";
import { formatPhase, phaseLabel } from "./phase-view.js";

/** What `delift watch` shows: a bar for the job, one per worker; or plain lines when not a TTY. */
export class JobWatchView {
  private readonly multi: cliProgress.MultiBar | null;
  private main: cliProgress.SingleBar | null = null;
  private phaseBar: cliProgress.SingleBar | null = null;
  private readonly workers = new Map<string, cliProgress.SingleBar>();
  private lastLine = 0;
  private lastText = "";

  constructor(private readonly jobId: string, private readonly plain: boolean) {
    this.multi = plain
      ? null
      : new cliProgress.MultiBar(
          { stream: process.stderr, hideCursor: true, clearOnComplete: false, fps: 4, format: "{label} {bar} {value}/{total} {info}" },
          cliProgress.Presets.shades_classic,
        );
  }

  update(s: JobStatusMessage): void {
    const info = `tiles | ${s.pairsPerSecond > 0 ? s.pairsPerSecond.toFixed(1) : "--"} pairs/s | ETA ${s.etaSeconds >= 0 ? formatDuration(s.etaSeconds) : "--"} | ${s.state}${s.redeliveries ? ` | ${s.redeliveries} redelivered` : ""}${s.tilesReused ? ` | ${s.tilesReused} reused` : ""}`;
    if (this.plain || !this.multi) {
      if (Date.now() - this.lastLine < 1000 && !["done", "failed", "cancelled"].includes(s.state)) return;
      this.lastLine = Date.now();
      const workers = s.workers.map((w) => `${w.workerId}=${w.pairsPerSecond.toFixed(1)}/s`).join(" ");
      const phase = s.phase ? ` | ${formatPhase(s.phase)}` : "";
      const text = `${this.jobId} ${s.tilesDone}/${s.tilesTotal} ${info}${workers ? ` | ${workers}` : ""}${phase}`;
      if (text === this.lastText) return;
      this.lastText = text;
      process.stderr.write(text + "\n");
      return;
    }
    if (!this.main) this.main = this.multi.create(Math.max(1, s.tilesTotal), s.tilesDone, { label: pad("job"), info });
    this.main.setTotal(Math.max(1, s.tilesTotal));
    this.main.update(s.tilesDone, { label: pad("job"), info });
    this.updatePhase(s);
    for (const w of s.workers) {
      let bar = this.workers.get(w.workerId);
      if (!bar) {
        bar = this.multi.create(Math.max(1, s.tilesTotal), 0, { label: pad(w.workerId), info: "" });
        this.workers.set(w.workerId, bar);
      }
      bar.setTotal(Math.max(1, s.tilesTotal));
      bar.update(w.tiles, { label: pad(w.workerId), info: `tiles | ${w.pairsPerSecond.toFixed(1)} pairs/s` });
    }
  }

  /** The current phase's own bar (reading, candidates, ...), under the job's: its step, rate and ETA. */
  private updatePhase(s: JobStatusMessage): void {
    const p = s.phase;
    if (!this.multi || !p) return;
    const total = Math.max(1, p.total);
    const info = formatPhase(p).replace(/^.*?\] /, "");
    if (!this.phaseBar) this.phaseBar = this.multi.create(total, 0, { label: pad(phaseLabel(p)), info });
    this.phaseBar.setTotal(total);
    this.phaseBar.update(Math.min(p.done, total), { label: pad(phaseLabel(p)), info });
  }

  /** A line about the connection (lost, reconnected), above the bars or between the plain lines. */
  notice(line: string): void {
    if (this.plain || !this.multi) process.stderr.write(line + "\n");
    else this.multi.log(line + "\n");
  }

  stop(): void {
    this.multi?.stop();
  }
}

function pad(label: string): string {
  return label.length > 24 ? label.slice(0, 23) + "…" : label.padEnd(24);
}
