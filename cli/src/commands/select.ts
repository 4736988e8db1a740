import { ConfigError, formatSummary, summarizeCorpus, type PreparedCorpus } from "../../../common/src/mod.js";
import { readKernel, writeKernel, type UtilityKernel } from "../../../common/src/kernel/kernel-files.js";
import { parseBudget, type CscKernel } from "../../../common/src/selection/mod.js";
import { TileStore } from "../../../coordinator/src/mod.js";
import { buildReport } from "../../../coordinator/src/select/build-report.js";
import { runSelection, type SelectionSettings, type Stage } from "../../../coordinator/src/select/run-selection.js";
import { writeSelection } from "../../../coordinator/src/select/write-selection.js";
import { loadOnnxCausalLm } from "../../../worker/src/mod.js";
import { choiceOption, intOption, numberOption, parseCommand, requireString } from "../args.js";
import { computeKernels, type KernelRequest } from "../embedded/compute-kernel.js";
import { seKernels } from "../embedded/se-kernels.js";
import { KernelProgress } from "../progress/kernel-progress.js";
import { defaultStoreDir } from "../setup/default-store.js";
import { abortOnSignals } from "../setup/interrupt.js";
import { loadCorpus, loadModelInputs, type ModelInputs } from "../setup/load-inputs.js";
import { RUN_OPTIONS, RUN_OPTIONS_HELP, runConfig, type RunConfig } from "../setup/run-config.js";
import { combineSets, resolveIdList, type SampleSets } from "../setup/sample-sets.js";

export const SELECT_HELP = `delift select --data FILE --model DIR --budget B --out DIR [options]

Selects the most useful subset of a data set with DELIFT on this machine (the embedded default)
and writes DIR/selected.jsonl (records plus index, rank, gain), DIR/report.json and DIR/report.html.

  --data FILE            candidate samples V (JSONL, .jsonl.gz or Parquet)
  --model DIR            model bundle
  --stage STAGE          instruction (FL, default) | task (FLMI with a target set) | continual (FLCG)
  --target FILE          task stage: target set Q (a data file); or --target-ids FILE: ids of samples of --data
  --existing FILE        continual stage: data already used E; or --existing-ids FILE: ids of samples of --data
                         (Q and E are never selected; id lists take those samples out of V)
  --budget B             a fraction (0.3), a percentage (30%) or a count (300) of V
  --optimizer NAME       stochastic (default) | lazy (exact)
  --epsilon E            stochastic greedy's epsilon (default 0.01)
  --seed N               seed of every random choice (default 0)
  --scaling NAME         min-max (default) | clip (max(UF, 0))
  --eta X / --nu X       FLMI / FLCG weights (default 1)
  --kernel-type T        utility (DELIFT, default) | se (DELIFT-SE: sentence-embedding cosine)
  --kernel DIR           reuse a kernel written by "delift kernel" for V (instruction part)
  --save-kernel DIR      also write the V x V utility kernel
  --compare-lazy WHEN    auto (default: when the kernel is small) | always | never: also run lazy greedy
                         and report the ratio of f(A)
  --store DIR            tile store (default ~/.cache/delift/tiles)
  --out DIR              output directory (written all or nothing)
  --quiet                no progress bar
${RUN_OPTIONS_HELP}`;

export async function selectCommand(argv: string[]): Promise<number> {
  const started = performance.now();
  const { values } = parseCommand("select", argv, {
    ...RUN_OPTIONS,
    data: { type: "string" },
    model: { type: "string" },
    stage: { type: "string" },
    target: { type: "string" },
    "target-ids": { type: "string" },
    existing: { type: "string" },
    "existing-ids": { type: "string" },
    budget: { type: "string" },
    optimizer: { type: "string" },
    epsilon: { type: "string" },
    seed: { type: "string" },
    scaling: { type: "string" },
    eta: { type: "string" },
    nu: { type: "string" },
    "kernel-type": { type: "string" },
    kernel: { type: "string" },
    "save-kernel": { type: "string" },
    "compare-lazy": { type: "string" },
    store: { type: "string" },
    out: { type: "string" },
    quiet: { type: "boolean" },
  });
  if (values.help) {
    process.stdout.write(SELECT_HELP + "\n");
    return 0;
  }
  const data = requireString(values.data, "data", "select");
  const modelDir = requireString(values.model, "model", "select");
  const out = requireString(values.out, "out", "select");
  const budget = requireString(values.budget, "budget", "select");
  const stage = choiceOption(values.stage, "stage", ["instruction", "task", "continual"] as const) ?? "instruction";
  const kernelType = choiceOption(values["kernel-type"], "kernel-type", ["utility", "se"] as const) ?? "utility";
  checkStageFlags(stage, values);
  if (values.kernel && kernelType === "se") throw new ConfigError("--kernel reuses a utility kernel; it cannot be combined with --kernel-type se");
  const config = await runConfig(values);
  const settingsBase = {
    stage,
    optimizer: choiceOption(values.optimizer, "optimizer", ["stochastic", "lazy"] as const) ?? "stochastic",
    epsilon: numberOption(values.epsilon, "epsilon", 1e-9, 0.999999) ?? 0.01,
    seed: intOption(values.seed, "seed", 0, 2 ** 32 - 1) ?? 0,
    scaling: (choiceOption(values.scaling, "scaling", ["min-max", "clip"] as const) ?? "min-max") === "clip" ? ("clip-at-zero" as const) : ("min-max" as const),
    eta: numberOption(values.eta, "eta", 0, 1e6) ?? 1,
    nu: numberOption(values.nu, "nu", 0, 1e6) ?? 1,
    compareWithLazy: choiceOption(values["compare-lazy"], "compare-lazy", ["auto", "always", "never"] as const) ?? "auto",
  };

  const inputs = await loadModelInputs(modelDir, config);
  const sets = await loadSampleSets(stage, data, values, inputs, config);
  const k = parseBudget(budget, sets.v.length);
  const settings: SelectionSettings = { ...settingsBase, k };
  const pairs = stage === "task" ? { examples: sets.v, targets: sets.o } : { examples: sets.v, targets: sets.v };
  const summaryCorpus = { file: data, samples: [...sets.candidates, ...sets.other], tokens: sets.tokens, skipped: [] } as PreparedCorpus;
  process.stderr.write(formatSummary(summarizeCorpus(summaryCorpus, inputs.prompts, kernelType === "utility" ? pairs : null)) + "\n");
  const loadSeconds = (performance.now() - started) / 1000;

  const interrupt = abortOnSignals();
  const progress = new KernelProgress(!values.quiet);
  try {
    const kernelStarted = performance.now();
    const kernels =
      kernelType === "se"
        ? await seKernels(inputs, sets, stage, config)
        : await utilityKernels(stage, sets, inputs, config, values, progress, interrupt.signal);
    progress.stop();
    const kernelSeconds = (performance.now() - kernelStarted) / 1000;
    if (typeof values["save-kernel"] === "string" && kernels.mainFile) await writeKernel(values["save-kernel"], kernels.mainFile, interrupt.signal);

    const outcome = runSelection({ main: kernels.main, second: kernels.second }, settings);
    const report = buildReport(outcome, {
      settings,
      kernelType,
      budget,
      maxLength: inputs.prompts.maxLength,
      model: { dir: inputs.bundle.dir, name: inputs.bundle.manifest.name ?? null, hash: inputs.bundle.hash },
      data: {
        file: data,
        samples: sets.v.length,
        skipped: sets.skipped,
        target: stage === "task" ? { file: String(values.target ?? values["target-ids"]), samples: sets.o.length } : null,
        existing: stage === "continual" ? { file: String(values.existing ?? values["existing-ids"]), samples: sets.o.length } : null,
      },
      samples: sets.candidates,
      kernel: { rows: "targets (V)", cols: "examples (V)", nRows: kernels.main.nRows, nCols: kernels.main.nCols, nnz: kernels.main.rowIdx.length, ...kernels.mainFacts },
      secondKernel: kernels.second
        ? {
            rows: stage === "task" ? "targets (Q)" : "targets (V)",
            cols: stage === "task" ? "examples (V)" : "examples (E)",
            nRows: kernels.second.nRows,
            nCols: kernels.second.nCols,
            nnz: kernels.second.rowIdx.length,
            ...kernels.secondFacts,
          }
        : null,
      scaled: { main: kernels.main, second: kernels.second },
      timings: { loadSeconds, kernelSeconds, totalSeconds: (performance.now() - started) / 1000 },
    });
    await writeSelection(out, { records: sets.candidates.map((s) => s.record), order: outcome.result.order, gains: outcome.result.gains }, report);
    const r = report.result;
    process.stderr.write(
      `selected ${r.selected} of ${sets.v.length} (${stage}, ${report.settings.objective.toUpperCase()}, ${settings.optimizer} greedy): ` +
        `f(A) = ${r.value.toFixed(4)} (${((100 * r.value) / (r.valueOfAll || 1)).toFixed(1)}% of f(V))` +
        `${r.ratioToLazy !== null && settings.optimizer !== "lazy" ? `, ${r.ratioToLazy.toFixed(4)} of lazy greedy` : ""}\n` +
        `wrote ${out}/selected.jsonl, ${out}/report.json, ${out}/report.html\n`,
    );
    return 0;
  } finally {
    progress.stop();
    interrupt.dispose();
  }
}

function checkStageFlags(stage: Stage, values: Record<string, unknown>): void {
  const has = (f: string) => typeof values[f] === "string";
  if (has("target") && has("target-ids")) throw new ConfigError("give --target or --target-ids, not both");
  if (has("existing") && has("existing-ids")) throw new ConfigError("give --existing or --existing-ids, not both");
  if (stage === "task" && !has("target") && !has("target-ids")) throw new ConfigError("--stage task needs a target set: --target FILE or --target-ids FILE");
  if (stage === "continual" && !has("existing") && !has("existing-ids")) {
    throw new ConfigError("--stage continual needs the data already used: --existing FILE or --existing-ids FILE");
  }
  if (stage !== "task" && (has("target") || has("target-ids"))) throw new ConfigError("--target belongs to --stage task");
  if (stage !== "continual" && (has("existing") || has("existing-ids"))) throw new ConfigError("--existing belongs to --stage continual");
}

async function loadSampleSets(stage: Stage, data: string, values: Record<string, unknown>, inputs: ModelInputs, config: RunConfig): Promise<SampleSets> {
  const corpus = await loadCorpus(data, inputs, config);
  for (const s of corpus.skipped) process.stderr.write(`skipped ${s.file}:${s.line}${s.field ? ` field "${s.field}"` : ""}: ${s.reason}\n`);
  const otherFile = stage === "task" ? values.target : stage === "continual" ? values.existing : undefined;
  const idFile = stage === "task" ? values["target-ids"] : stage === "continual" ? values["existing-ids"] : undefined;
  if (typeof otherFile === "string") return combineSets(corpus, await loadCorpus(otherFile, inputs, config));
  if (typeof idFile === "string") {
    const other = await resolveIdList(idFile, corpus);
    const taken = new Set(other);
    return combineSets(corpus, null, corpus.samples.map((_, i) => i).filter((i) => !taken.has(i)), other);
  }
  return combineSets(corpus, null);
}

type KernelFacts = { truncatedPrompts: number | null; tilesComputed: number | null; tilesReused: number | null };

export type StageKernels = {
  main: CscKernel;
  second: CscKernel | null;
  mainFile: UtilityKernel | null;
  mainFacts: KernelFacts;
  secondFacts: KernelFacts;
};

async function utilityKernels(
  stage: Stage,
  sets: SampleSets,
  inputs: ModelInputs,
  config: RunConfig,
  values: Record<string, unknown>,
  progress: KernelProgress,
  signal: AbortSignal,
): Promise<StageKernels> {
  const reused = typeof values.kernel === "string" ? await readMatchingKernel(values.kernel, sets, inputs.bundle.hash) : null;
  const requests: KernelRequest[] = [];
  if (!reused) requests.push({ targets: sets.v, examples: sets.v });
  if (stage === "task") requests.push({ targets: sets.o, examples: sets.v });
  if (stage === "continual") requests.push({ targets: sets.v, examples: sets.o });
  let computed: UtilityKernel[] = [];
  let stats = { tilesComputed: 0, tilesReused: 0 };
  if (requests.length > 0) {
    const model = await loadOnnxCausalLm(inputs.bundle.modelPath, {
      device: config.device,
      threads: config.threads,
      padId: inputs.bundle.manifest.padId ?? inputs.bundle.manifest.eosId,
    });
    try {
      const run = await computeKernels({
        tokens: sets.tokens,
        ids: sets.ids,
        dataLabel: String(values.data),
        prompts: inputs.prompts,
        modelHash: inputs.bundle.hash,
        model,
        batch: config.batch,
        tile: config.tile,
        store: await TileStore.open(typeof values.store === "string" ? values.store : defaultStoreDir()),
        requests,
        signal,
        progress,
      });
      computed = run.kernels;
      stats = run.stats;
    } finally {
      await model.dispose();
    }
  }
  const mainFile = reused ?? computed.shift()!;
  const second = stage === "instruction" ? null : computed.shift()!;
  const facts = (k: UtilityKernel | null): KernelFacts => ({
    truncatedPrompts: k ? k.metadata.truncated.pairs + k.metadata.truncated.baseline : null,
    tilesComputed: stats.tilesComputed,
    tilesReused: stats.tilesReused,
  });
  return {
    main: mainFile.csc,
    second: second?.csc ?? null,
    mainFile,
    mainFacts: facts(mainFile),
    secondFacts: facts(second),
  };
}

async function readMatchingKernel(dir: string, sets: SampleSets, modelHash: string): Promise<UtilityKernel> {
  const kernel = await readKernel(dir);
  const ids = Array.from(sets.v, (g) => sets.ids[g]);
  const m = kernel.metadata;
  const mismatch = (which: string, list: string[]) => {
    if (list.length !== ids.length) return `${which} has ${list.length} entries, the data has ${ids.length} candidates`;
    const k = list.findIndex((id, i) => id !== ids[i]);
    return k >= 0 ? `${which} ${k} is sample "${list[k]}", the data has "${ids[k]}" there` : null;
  };
  const problem = mismatch("row", m.rowIds) ?? mismatch("column", m.colIds);
  if (problem) throw new ConfigError(`--kernel ${dir} was computed for other samples: ${problem}`);
  if (m.modelHash !== modelHash) {
    throw new ConfigError(`--kernel ${dir} was computed with another model (${m.modelHash.slice(0, 12)}), not ${modelHash.slice(0, 12)}`);
  }
  return kernel;
}
