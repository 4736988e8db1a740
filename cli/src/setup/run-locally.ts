import { assertReplaceable, formatProblem, formatSummary, KERNEL_FILES, parseBudget, summarizeCorpus } from "../../../common/src/mod.js";
import { type JobSpec, loadJobSets, loadModelInputs, SELECTION_FILES } from "../../../coordinator/src/mod.js";
import { runEmbeddedJob } from "../embedded/run-embedded-job.js";
import { KernelProgress } from "../progress/kernel-progress.js";
import type { EmbeddedFlags } from "./embedded-flags.js";
import { abortOnSignals } from "./interrupt.js";

/**
 * Runs a job on the embedded default with a data summary first and a progress bar; returns the
 * exit code. The data is read twice (here for the summary, then by the coordinator): cheap
 * next to scoring, and it keeps the coordinator the only owner of a job's inputs.
 */
export async function runLocally(spec: JobSpec, out: string, flags: EmbeddedFlags): Promise<number> {
  const inputs = await loadModelInputs(spec.model, spec.scoring);
  const { sets, skipped } = await loadJobSets(spec, inputs);
  if (spec.kind === "select") parseBudget(spec.selection.budget, sets.v.length);
  await assertReplaceable(out, spec.kind === "kernel" ? KERNEL_FILES : [...SELECTION_FILES, "kernel"]);
  for (const s of skipped) process.stderr.write(`skipped ${formatProblem(s)}\n`);
  const corpus = { file: spec.data, samples: [...sets.candidates, ...sets.other], tokens: sets.tokens, skipped };
  const dense = spec.selection.kernelType === "utility" && !spec.scoring.candidates;
  const pairs = !dense ? null : spec.selection.stage === "task" ? { examples: sets.v, targets: sets.o } : { examples: sets.v, targets: sets.v };
  process.stderr.write(formatSummary(summarizeCorpus(corpus, inputs.prompts, pairs)) + "\n");

  const progress = new KernelProgress(!flags.quiet);
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
      log: flags.verbose ? (line) => process.stderr.write(`${line}\n`) : undefined,
      onStatus: (s) => {
        if (s.state === "scoring" && !started) {
          started = true;
          progress.start({ tiles: s.tilesTotal, pairs: s.pairsTotal, tilesDone: s.tilesDone, pairsDone: s.pairsDone });
        } else if (started) {
          progress.update(s.tilesDone, s.pairsDone);
        }
      },
    });
    progress.stop();
    const s = outcome.status;
    if (s.state !== "done") {
      process.stderr.write(`delift: ${s.failedDuring === "planning" ? "" : `job ${s.state}: `}${s.error || s.state}; no output was written\n`);
      return interrupt.signal.aborted ? 130 : s.failedDuring === "planning" ? 2 : 1;
    }
    const computed = s.tilesDone - s.tilesReused;
    process.stderr.write(
      `${outcome.summary}\n` +
        `${s.pairsTotal} prompts scored in ${s.elapsedSeconds.toFixed(1)} s (${computed} tiles computed, ${s.tilesReused} reused from the tile store)\n` +
        `wrote ${out}\n`,
    );
    return 0;
  } finally {
    progress.stop();
    interrupt.dispose();
  }
}
