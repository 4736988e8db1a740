import { formatSummary, summarizeCorpus } from "../../../common/src/mod.js";
import { writeKernel } from "../../../common/src/kernel/kernel-files.js";
import { TileStore } from "../../../coordinator/src/mod.js";
import { loadOnnxCausalLm } from "../../../worker/src/mod.js";
import { parseCommand, requireString } from "../args.js";
import { computeKernels } from "../embedded/compute-kernel.js";
import { KernelProgress } from "../progress/kernel-progress.js";
import { defaultStoreDir } from "../setup/default-store.js";
import { abortOnSignals } from "../setup/interrupt.js";
import { loadCorpus, loadModelInputs } from "../setup/load-inputs.js";
import { RUN_OPTIONS, RUN_OPTIONS_HELP, runConfig } from "../setup/run-config.js";

export const KERNEL_HELP = `delift kernel --data FILE --model DIR --out DIR [options]

Computes the dense DELIFT utility kernel UF[i][j] = d(y_i | P0) - d(y_i | P1 with example j) of a
data set on this machine (the embedded default: no NATS server needed) and writes DIR/kernel.parquet
(row, col, utility), DIR/kernel.bin (compact CSC) and DIR/kernel.json (ids, settings, counts).

  --data FILE      JSONL (.jsonl, .jsonl.gz) or Parquet data set
  --model DIR      model bundle (manifest.json, model.onnx, tokenizer.json)
  --out DIR        output directory (replaced atomically when the kernel is complete)
  --store DIR      tile store; finished tiles are kept there and reused (default ~/.cache/delift/tiles)
  --quiet          no progress bar
${RUN_OPTIONS_HELP}`;

export async function kernelCommand(argv: string[]): Promise<number> {
  const { values } = parseCommand("kernel", argv, {
    ...RUN_OPTIONS,
    data: { type: "string" },
    model: { type: "string" },
    out: { type: "string" },
    store: { type: "string" },
    quiet: { type: "boolean" },
  });
  if (values.help) {
    process.stdout.write(KERNEL_HELP + "\n");
    return 0;
  }
  const data = requireString(values.data, "data", "kernel");
  const modelDir = requireString(values.model, "model", "kernel");
  const out = requireString(values.out, "out", "kernel");
  const config = await runConfig(values);

  const inputs = await loadModelInputs(modelDir, config);
  const corpus = await loadCorpus(data, inputs, config);
  const all = Uint32Array.from({ length: corpus.tokens.count }, (_, i) => i);
  process.stderr.write(formatSummary(summarizeCorpus(corpus, inputs.prompts, { examples: all, targets: all })) + "\n");
  for (const s of corpus.skipped) process.stderr.write(`skipped ${s.file}:${s.line}${s.field ? ` field "${s.field}"` : ""}: ${s.reason}\n`);

  const model = await loadOnnxCausalLm(inputs.bundle.modelPath, {
    device: config.device,
    threads: config.threads,
    padId: inputs.bundle.manifest.padId ?? inputs.bundle.manifest.eosId,
  });
  const store = await TileStore.open(typeof values.store === "string" ? values.store : defaultStoreDir());
  const progress = new KernelProgress(!values.quiet);
  const interrupt = abortOnSignals();
  try {
    const { kernels, stats } = await computeKernels({
      tokens: corpus.tokens,
      ids: corpus.samples.map((s) => s.id),
      dataLabel: corpus.file,
      requests: [{ targets: all, examples: all }],
      prompts: inputs.prompts,
      modelHash: inputs.bundle.hash,
      model,
      batch: config.batch,
      tile: config.tile,
      store,
      signal: interrupt.signal,
      progress,
    });
    progress.stop();
    const kernel = kernels[0];
    await writeKernel(out, kernel, interrupt.signal);
    const t = kernel.metadata.truncated;
    process.stderr.write(
      `kernel ${kernel.metadata.nRows} x ${kernel.metadata.nCols}: ${stats.pairs} pairs + ${stats.baselines} baselines in ${stats.seconds.toFixed(1)} s ` +
        `(${(stats.pairs / stats.seconds).toFixed(1)} pairs/s; ${stats.tilesComputed} tiles computed, ${stats.tilesReused} reused); ` +
        `truncated: ${t.pairs} pair and ${t.baseline} baseline prompts\n` +
        `wrote ${out}/kernel.parquet, ${out}/kernel.bin, ${out}/kernel.json\n`,
    );
    return 0;
  } finally {
    progress.stop();
    interrupt.dispose();
    await model.dispose();
  }
}
