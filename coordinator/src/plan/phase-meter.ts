import type { PhaseProgress, SearchProgress } from "../../../common/src/mod.js";

/** Least time between two reports of one meter (the bar need not move faster). */
const REPORT_INTERVAL_MS = 250;

/**
 * Turns a phase's raw counts into PhaseProgress reports (rate and ETA over the current step),
 * at most every 250 ms, and always at a step's end.
 */
export class PhaseMeter {
  private step = "";
  private stepStarted = 0;
  private lastReport = 0;
  private readonly started = performance.now();

  constructor(private readonly name: string, private readonly report: (p: PhaseProgress) => void) {}

  tick(step: string, done: number, total: number, unit: string): void {
    const now = performance.now();
    if (step !== this.step) {
      this.step = step;
      this.stepStarted = now;
    } else if (done < total && now - this.lastReport < REPORT_INTERVAL_MS) return;
    this.lastReport = now;
    const seconds = (now - this.stepStarted) / 1000;
    const rate = seconds > 0 && done > 0 ? done / seconds : 0;
    this.report({
      name: this.name,
      step,
      done,
      total,
      unit,
      elapsedSeconds: (now - this.started) / 1000,
      rate,
      etaSeconds: done >= total ? 0 : rate > 0 ? (total - done) / rate : -1,
    });
  }

  /** A candidate search's own progress calls, as ticks. */
  searchProgress(): (p: SearchProgress) => void {
    const steps: Record<string, string> = { cells: "k-means", assign: "assigning cells", tune: "tuning probes", search: "searching" };
    return (p) => this.tick(`${p.method === "cells" ? "cell probes" : "exact"}: ${steps[p.step] ?? p.step}`, p.done, p.total, p.step === "search" ? (p.method === "cells" ? "cells" : "tiles") : "steps");
  }
}
