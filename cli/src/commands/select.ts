import { ConfigError } from "../../../common/src/mod.js";
import { selectFromKernel } from "../../../coordinator/src/select/select-from-kernel.js";
import { choiceOption, intOption, numberOption, parseCommand, requireString } from "../args.js";
import { EMBEDDED_HELP, EMBEDDED_OPTIONS, embeddedFlags } from "../setup/embedded-flags.js";
import { JOB_OPTIONS, SCORING_HELP, SELECTION_HELP, jobSpecFromFlags } from "../setup/job-flags.js";
import { abortOnSignals } from "../setup/interrupt.js";
import { runLocally } from "../setup/run-locally.js";

export const SELECT_HELP = `delift select --data FILE --model DIR --budget B --out DIR [options]
delift select --kernel DIR --budget B --out DIR [--select-shards N] [options]

Selects the most useful subset of a data set with DELIFT: scores every (example, target) pair
with the model, then maximises the stage's submodular objective. Writes DIR/selected.jsonl (the
selected records with their original fields plus index, rank and gain, in pick order),
DIR/report.json and DIR/report.html.

With --kernel and no --model, selects straight from a kernel directory (the chunked format, or
kernel.bin from "delift kernel"): FL over its V x V kernel, no data set or model needed;
selected.jsonl then holds each pick's sample id, index, rank and gain.

${SELECTION_HELP}
  --job FILE             a whole job spec as JSON (as for "delift submit"); flags override it

Selection straight from a kernel (--kernel DIR without --model) takes --budget, --optimizer,
--epsilon, --seed, --scaling, --compare-lazy and --select-shards/--select-memory/--select-algorithm
(FL over that kernel; its shards are objects in this process, the same code a cluster runs over NATS).
${SCORING_HELP}
${EMBEDDED_HELP}`;

export async function selectCommand(argv: string[]): Promise<number> {
  const { values } = parseCommand("select", argv, { ...JOB_OPTIONS, ...EMBEDDED_OPTIONS });
  if (values.help) {
    process.stdout.write(SELECT_HELP + "\n");
    return 0;
  }
  const out = requireString(values.out, "out", "select");
  if (typeof values.kernel === "string" && values.model === undefined && values.job === undefined) return selectKernelOnly(values, out);
  if (typeof values.job !== "string") {
    requireString(values.data, "data", "select");
    requireString(values.model, "model", "select");
    requireString(values.budget, "budget", "select");
  }
  const spec = await jobSpecFromFlags(values, "select");
  return runLocally(spec, out, embeddedFlags(values));
}

/** delift select --kernel DIR (no model): FL over the kernel, central or sharded by the choice rule. */
async function selectKernelOnly(values: Record<string, string | boolean | undefined>, out: string): Promise<number> {
  for (const flag of ["data", "stage", "target", "target-ids", "existing", "existing-ids", "kernel-type", "embeddings", "save-kernel", "neighbors", "random-columns", "eta", "nu"]) {
    if (values[flag] !== undefined) throw new ConfigError(`delift select: --${flag} needs --data and --model (selection straight from a kernel is FL over that kernel)`);
  }
  const quiet = values.quiet === true;
  const interrupt = abortOnSignals();
  let lastDraw = 0;
  const tty = process.stderr.isTTY === true;
  const started = performance.now();
  try {
    const outcome = await selectFromKernel({
      kernelDir: requireString(values.kernel, "kernel", "select"),
      out,
      budget: requireString(values.budget, "budget", "select"),
      optimizer: choiceOption(values.optimizer, "optimizer", ["stochastic", "lazy"] as const) ?? "stochastic",
      epsilon: numberOption(values.epsilon, "epsilon", Number.MIN_VALUE, 1 - Number.EPSILON) ?? 0.01,
      seed: intOption(values.seed, "seed", 0, 0xffffffff) ?? 0,
      scaling: values.scaling === "clip" ? "clip-at-zero" : (choiceOption(values.scaling, "scaling", ["min-max", "clip-at-zero"] as const) ?? "min-max"),
      compareWithLazy: choiceOption(values["compare-lazy"], "compare-lazy", ["auto", "always", "never"] as const) ?? "auto",
      shards: intOption(values["select-shards"], "select-shards", 1, 4096) ?? null,
      memoryBytes: intOption(values["select-memory"], "select-memory", 1),
      algorithm: choiceOption(values["select-algorithm"], "select-algorithm", ["bands", "partition"] as const),
      signal: interrupt.signal,
      onSelecting: () => holdIfAsked("selecting", interrupt.signal),
      log: quiet ? undefined : (line) => process.stderr.write(`${line}\n`),
      onRound: quiet
        ? undefined
        : ({ round, picked, k }) => {
            const now = performance.now();
            if (now - lastDraw < (tty ? 200 : 5000) && picked < k) return;
            lastDraw = now;
            const seconds = (now - started) / 1000;
            const rate = picked / Math.max(seconds, 1e-3);
            const eta = picked > 0 ? (k - picked) / rate : NaN;
            const line = `selecting: round ${round}, ${picked}/${k} picks (${((100 * picked) / k).toFixed(1)}%), ${rate.toFixed(0)} picks/s${Number.isFinite(eta) ? `, ETA ${eta.toFixed(0)} s` : ""}`;
            process.stderr.write(tty ? `\r${line}\u001b[K` : `${line}\n`);
          },
    });
    if (!quiet && tty && lastDraw > 0) process.stderr.write("\n");
    process.stderr.write(`${outcome.summary}\nwrote ${out}\n`);
    return 0;
  } finally {
    interrupt.dispose();
  }
}

/** The test hook DELIFT_HOLD_AT=<point>: say so and wait there until cancelled. */
async function holdIfAsked(point: string, signal: AbortSignal): Promise<void> {
  if (process.env.DELIFT_HOLD_AT !== point) return;
  process.stderr.write(`delift: holding at ${point}\n`);
  // Nothing else keeps the event loop alive while it waits.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
  clearInterval(keepAlive);
  signal.throwIfAborted();
}
