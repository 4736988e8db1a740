import { join } from "node:path";
import { type CscKernel, KERNEL_FORMAT, nearestNeighbours, parseBudget, type TileOutput, type UtilityKernel, writeKernel } from "../../../common/src/mod.js";
import { embedSamples } from "./embeddings.js";
import type { JobSpec } from "../jobs/job-spec.js";
import { assembleKernel } from "../kernel/assemble-kernel.js";
import { buildReport } from "../select/build-report.js";
import { cosineKernel, sparseCosineKernel } from "../select/cosine-kernel.js";
import { withRandomColumns } from "../plan/candidates.js";
import { fillCandidateTexts, leanRecordReader } from "../inputs/lean-records.js";
import { givenSimilarityKernel, type SearchRunOptions } from "../plan/given-embeddings.js";
import { prepareSelection, runCentralSelection, type PreparedSelection, type SelectionOutcome, type SelectionSettings } from "../select/run-selection.js";
import type { SelectionReport } from "../report/types.js";
import { writeSelection } from "../select/write-selection.js";
import type { TileSpec } from "../plan/tile-spec.js";
import type { PlannedJob } from "./plan-job.js";

export type JobTimings = { loadSeconds: number; kernelSeconds: number; startedAt: number };

export type KernelFacts = { truncatedPrompts: number | null; tilesComputed: number | null; tilesReused: number | null };

/** Assembles the job's utility kernels from stored tiles (rows/cols as the requests give them). */
export async function assembleJobKernels(planned: PlannedJob, read: (tile: TileSpec) => Promise<TileOutput>): Promise<UtilityKernel[]> {
  const ids = planned.sets.ids;
  const out: UtilityKernel[] = [];
  for (let r = 0; r < planned.requests.length; r++) {
    const { targets, examples } = planned.requests[r];
    const axes = {
      rowOf: new Map(Array.from(targets, (g, k) => [g, k])),
      colOf: new Map(Array.from(examples, (g, k) => [g, k])),
      nRows: targets.length,
      nCols: examples.length,
    };
    const a = await assembleKernel(planned.plans[r], axes, read);
    out.push({
      csc: a.csc,
      baseline: a.baseline,
      metadata: {
        format: KERNEL_FORMAT,
        nRows: targets.length,
        nCols: examples.length,
        nnz: a.csc.rowIdx.length,
        rowIds: Array.from(targets, (g) => ids[g]),
        colIds: Array.from(examples, (g) => ids[g]),
        modelHash: planned.inputs.bundle.hash,
        settingsKey: planned.settingsKey,
        maxLength: planned.inputs.prompts.maxLength,
        truncated: a.truncated,
      },
    });
  }
  return out;
}

/** DELIFT (SE): kernels from the bundle's sentence encoder instead of in-context utility. */
export async function seKernels(spec: JobSpec, planned: PlannedJob, options: SearchRunOptions = {}): Promise<{ main: CscKernel; second: CscKernel | null }> {
  const { sets } = planned;
  const stage = spec.selection.stage;
  if (sets.embeddings) {
    // Given embeddings (--embeddings): no encoder; sparse mode searches them at scale.
    const given = async (rows: Uint32Array, cols: Uint32Array) => (await givenSimilarityKernel(sets, rows, cols, spec.scoring.candidates, options)).kernel;
    return {
      main: await given(sets.v, sets.v),
      second: stage === "task" ? await given(sets.o, sets.v) : stage === "continual" ? await given(sets.v, sets.o) : null,
    };
  }
  const { embeddings: e, dim } = await embedSamples(planned.inputs, sets, "the SE kernel");
  const sparse = spec.scoring.candidates;
  // Dense: every pair. Sparse mode: each row against its nearest columns (and random ones), as for the utility kernel.
  const kernel = async (rows: Uint32Array, cols: Uint32Array) =>
    sparse
      ? sparseCosineKernel(e, dim, rows, cols, withRandomColumns(await nearestNeighbours(e, dim, rows, cols, sparse.neighbors), cols, sparse))
      : cosineKernel(e, dim, rows, cols);
  return {
    main: await kernel(sets.v, sets.v),
    second: stage === "task" ? await kernel(sets.o, sets.v) : stage === "continual" ? await kernel(sets.v, sets.o) : null,
  };
}

/** A selection made and reported, not yet written. */
export type SelectedJob = {
  outcome: SelectionOutcome;
  report: SelectionReport;
  /** The unscaled V x V utility kernel, kept for --save-kernel (the selection scales its own copy). */
  utilityToSave: UtilityKernel | null;
};

/** A job's kernels assembled (or computed), scaled and turned into its objective: what any optimiser needs. */
export type PreparedJobSelection = {
  kernels: { main: CscKernel; second: CscKernel | null };
  settings: SelectionSettings;
  prepared: PreparedSelection;
  utility: UtilityKernel[];
  utilityToSave: UtilityKernel | null;
  kernelSeconds: number;
};

/** Assembles (or computes, for SE) the job's kernels and prepares its objective. */
export async function prepareJobSelection(
  spec: JobSpec,
  planned: PlannedJob,
  read: (tile: TileSpec) => Promise<TileOutput>,
  timings: JobTimings,
  /** SE kernels the search phase built already. */
  built: { main: CscKernel; second: CscKernel | null } | null = null,
): Promise<PreparedJobSelection> {
  const kernelStarted = performance.now();
  const assembled = spec.selection.kernelType === "utility" ? await assembleJobKernels(planned, read) : [];
  const utility = planned.reusedKernel ? [planned.reusedKernel, ...assembled] : assembled;
  // The selection scales its kernels in place: what --save-kernel writes is a copy of the values
  // before, the utility kernel exactly as "delift kernel" writes it.
  const utilityToSave = spec.saveKernel && utility[0] ? { ...utility[0], csc: { ...utility[0].csc, values: utility[0].csc.values.slice() } } : null;
  const kernels = spec.selection.kernelType === "se" ? built ?? (await seKernels(spec, planned)) : { main: utility[0].csc, second: utility[1]?.csc ?? null };
  const kernelSeconds = timings.kernelSeconds + (performance.now() - kernelStarted) / 1000;
  const sel = spec.selection;
  const settings: SelectionSettings = {
    stage: sel.stage,
    k: parseBudget(sel.budget, planned.sets.v.length),
    optimizer: sel.optimizer,
    epsilon: sel.epsilon,
    seed: sel.seed,
    scaling: sel.scaling,
    eta: sel.eta,
    nu: sel.nu,
    compareWithLazy: sel.compareLazy,
  };
  return { kernels, settings, prepared: prepareSelection(kernels, settings), utility, utilityToSave, kernelSeconds };
}

/** The selection of a job: assembles (or computes, for SE) its kernels, selects centrally, builds the report. */
export async function selectJob(
  spec: JobSpec,
  planned: PlannedJob,
  read: (tile: TileSpec) => Promise<TileOutput>,
  timings: JobTimings,
  tiles: { computed: number; reused: number },
  /** SE kernels the search phase built already. */
  built: { main: CscKernel; second: CscKernel | null } | null = null,
): Promise<SelectedJob> {
  const p = await prepareJobSelection(spec, planned, read, timings, built);
  return reportJobSelection(spec, planned, p, runCentralSelection(p.kernels, p.settings, p.prepared), timings, tiles);
}

/** The report of a selection made over prepared kernels (centrally or by shard hosts). */
export async function reportJobSelection(
  spec: JobSpec,
  planned: PlannedJob,
  p: PreparedJobSelection,
  outcome: SelectionOutcome,
  timings: JobTimings,
  tiles: { computed: number; reused: number },
): Promise<SelectedJob> {
  const { kernels, settings, utility, utilityToSave, kernelSeconds } = p;
  const { sets } = planned;
  const sel = spec.selection;
  // Lean sets hold no texts: the report's preview (its first picks) reads theirs back.
  await fillCandidateTexts(sets, outcome.result.order.slice(0, 15), spec.scoring.fields);
  const facts = (k: UtilityKernel | undefined): KernelFacts => ({
    truncatedPrompts: k ? k.metadata.truncated.pairs + k.metadata.truncated.baseline : null,
    tilesComputed: k ? tiles.computed : null,
    tilesReused: k ? tiles.reused : null,
  });
  const otherFile = sel.stage === "task" ? spec.target ?? spec.targetIds : spec.existing ?? spec.existingIds;
  const report = buildReport(outcome, {
    settings,
    kernelType: sel.kernelType,
    budget: sel.budget,
    maxLength: planned.inputs.prompts.maxLength,
    model: { dir: planned.inputs.bundle.dir, name: planned.inputs.bundle.manifest.name ?? null, hash: planned.inputs.bundle.hash },
    data: {
      file: spec.data,
      samples: sets.v.length,
      skipped: planned.skipped.length,
      target: sel.stage === "task" ? { file: String(otherFile), samples: sets.o.length } : null,
      existing: sel.stage === "continual" ? { file: String(otherFile), samples: sets.o.length } : null,
    },
    samples: sets.candidates,
    kernel: { rows: "targets (V)", cols: "examples (V)", nRows: kernels.main.nRows, nCols: kernels.main.nCols, nnz: kernels.main.rowIdx.length, ...facts(utility[0]) },
    secondKernel: kernels.second
      ? {
          rows: sel.stage === "task" ? "targets (Q)" : "targets (V)",
          cols: sel.stage === "task" ? "examples (V)" : "examples (E)",
          nRows: kernels.second.nRows,
          nCols: kernels.second.nCols,
          nnz: kernels.second.rowIdx.length,
          ...facts(utility[1]),
        }
      : null,
    scaled: kernels,
    timings: { loadSeconds: timings.loadSeconds, kernelSeconds, totalSeconds: (Date.now() - timings.startedAt) / 1000 },
  });
  return { outcome, report, utilityToSave };
}

/** Writes a selection into `out`: selected.jsonl, report.json, report.html (and kernel/ when asked). */
export async function writeSelectedJob(spec: JobSpec, planned: PlannedJob, selected: SelectedJob, out: string): Promise<{ summary: string }> {
  const { sets } = planned;
  const sel = spec.selection;
  const { outcome, report, utilityToSave } = selected;
  const records = sets.records ? leanRecordReader(sets) : sets.candidates.map((s) => s.record);
  await writeSelection(out, { records, order: outcome.result.order, gains: outcome.result.gains }, report, {
    names: ["kernel"],
    write: async (tmp) => {
      if (utilityToSave) await writeKernel(join(tmp, "kernel"), { ...utilityToSave, metadata: { ...utilityToSave.metadata, data: spec.data } });
    },
  });
  const r = report.result;
  const d = r.distributed ?? null;
  const how = d ? `${d.algorithm} on ${d.shards} shards, ${d.hosts} hosts, ${d.rounds} rounds, ${formatBytes(d.bytesSent + d.bytesReceived)} moved` : `${sel.optimizer} greedy`;
  return {
    summary:
      `selected ${r.selected} of ${sets.v.length} (${sel.stage}, ${report.settings.objective.toUpperCase()}, ${how}): ` +
      `f(A) = ${r.value.toFixed(4)} (${((100 * r.value) / (r.valueOfAll || 1)).toFixed(1)}% of f(V))` +
      (r.ratioToLazy !== null && (d !== null || sel.optimizer !== "lazy") ? `, ${r.ratioToLazy.toFixed(4)} of lazy greedy` : ""),
  };
}

/** A kernel job's result: the assembled utility kernel, written into `out`. */
export async function writeKernelJob(spec: JobSpec, planned: PlannedJob, read: (tile: TileSpec) => Promise<TileOutput>, out: string): Promise<{ summary: string }> {
  const kernel = (await assembleJobKernels(planned, read))[0];
  kernel.metadata.data = spec.data;
  await writeKernel(out, kernel);
  const t = kernel.metadata.truncated;
  return { summary: `kernel ${kernel.metadata.nRows} x ${kernel.metadata.nCols}; truncated: ${t.pairs} pair and ${t.baseline} baseline prompts` };
}

/**
 * The end of a job in one call: kernel jobs write the kernel; selection jobs select and write
 * selected.jsonl, report.json and report.html (and the kernel when asked). All into `out`.
 */
export async function finishJob(
  spec: JobSpec,
  planned: PlannedJob,
  read: (tile: TileSpec) => Promise<TileOutput>,
  out: string,
  timings: JobTimings,
  tiles: { computed: number; reused: number },
): Promise<{ summary: string }> {
  if (spec.kind === "kernel") return writeKernelJob(spec, planned, read, out);
  return writeSelectedJob(spec, planned, await selectJob(spec, planned, read, timings, tiles), out);
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}
