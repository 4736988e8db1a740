import { assertReplaceable, createLogger, KERNEL_FILES, newMetricsRegistry, startMetricsServer } from "../../../common/src/mod.js";
import { type JobSpec, type PlanDescription, SELECTION_FILES } from "../../../coordinator/src/mod.js";
import { runEmbeddedJob } from "../embedded/run-embedded-job.js";
import { KernelProgress } from "../progress/kernel-progress.js";
import { PhaseProgressView } from "../progress/phase-view.js";
import type { EmbeddedFlags } from "./embedded-flags.js";
import { abortOnSignals } from "./interrupt.js";

/**
 * Runs a job on the embedded default: the data summary as soon as the coordinator has loaded and
 * planned the job (before any scoring), then a progress bar; returns the exit code. Input the
 * coordinator refuses while planning (bad records, budget, ids, kernel) exits 2.
 */
export async function runLocally(spec: JobSpec, out: string, flags: EmbeddedFlags): Promise<number> {
  await assertReplaceable(out, spec.kind === "kernel" ? KERNEL_FILES : [...SELECTION_FILES, "kernel"]);

  const registry = flags.metrics ? newMetricsRegistry({ process: "embedded" }) : undefined;
  const metricsServer = flags.metrics && registry ? await startMetricsServer(flags.metrics, registry) : null;
  if (metricsServer && !flags.quiet) process.stderr.write(`metrics on ${metricsServer.url}\n`);
  const progress = new KernelProgress(!flags.quiet);
  const phases = new PhaseProgressView(!flags.quiet);
  const interrupt = abortOnSignals();
  let started = false;
  try {
    const outcome = await runEmbeddedJob(spec, {
      out,
      storeDir: flags.storeDir,
      device: flags.device,
      threads: flags.threads,
      concurrency: flags.concurrency,
      signal: interrupt.signal,
      ...(registry ? { metrics: registry } : {}),
      log: createLogger({ format: flags.logFormat, level: flags.verbose ? "debug" : "warn" }),
      onPlanned: (description) => {
        phases.stop(); // the reading bar ends before the summary is printed
        printSummary(description);
      },
      onStatus: (s) => {
        if (s.state !== "scoring") phases.update(s.phase);
        if (s.state === "scoring" && !started) {
          phases.stop();
          started = true;
          progress.start({ tiles: s.tilesTotal, pairs: s.pairsTotal, tilesDone: s.tilesDone, pairsDone: s.pairsDone });
        } else if (started) {
          progress.update(s.tilesDone, s.pairsDone);
        }
      },
    });
    progress.stop();
    phases.stop();
    const s = outcome.status;
    if (s.state !== "done") {
      process.stderr.write(`delift: ${s.failedDuring === "planning" ? "" : `job ${s.state}: `}${s.error || s.state}; no output was written\n`);
      return interrupt.signal.aborted ? 130 : s.failedDuring === "planning" ? 2 : 1;
    }
    const computed = s.tilesDone - s.tilesReused;
    process.stderr.write(
      `${outcome.summary}\n` +
        (spec.selection.kernelType === "se"
          ? `SE kernel (sentence-embedding cosine): ${spec.embeddings ? `on the given embeddings, no samples embedded` : `${s.pairsTotal} samples embedded`} in ${s.elapsedSeconds.toFixed(1)} s (${computed} tiles computed, ${s.tilesReused} reused from the tile store)\n`
          : `${s.pairsTotal} prompts scored in ${s.elapsedSeconds.toFixed(1)} s (${computed} tiles computed, ${s.tilesReused} reused from the tile store)\n`) +
        `wrote ${out}\n`,
    );
    return 0;
  } finally {
    progress.stop();
    interrupt.dispose();
    await metricsServer?.close();
  }
}

function printSummary(description: PlanDescription): void {
  for (const s of description.skipped) process.stderr.write(`skipped ${s}\n`);
  process.stderr.write(description.summary + "\n");
}
