import { randomUUID } from "node:crypto";
import { mkdir, rm } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { type ChunkedIndex, type CscKernel, KERNEL_FORMAT, type KernelMetadata, nearestNeighbours, parseBudget, type TileOutput, type UtilityKernel, writeKernel, writeKernelFromChunked } from "../../../common/src/mod.js";
import { assembleKernelChunked, stageKernelChunked } from "../kernel/assemble-chunked.js";
import { stageSimilarityChunked, type SearchedKernel } from "../kernel/stage-similarity.js";
import { prepareChunkedSelection, type ChunkedPrepared, type StagedKernel } from "../select/chunked-selection.js";
import { embedSamples } from "./embeddings.js";
import type { JobSpec } from "../jobs/job-spec.js";
import { assembleKernel } from "../kernel/assemble-kernel.js";
import { buildReport } from "../select/build-report.js";
import { cosineKernel, sparseCosineKernel } from "../select/cosine-kernel.js";
import { withRandomColumns } from "../plan/candidates.js";
import { fillCandidateTexts, leanRecordReader } from "../inputs/lean-records.js";
import { givenSimilarityKernel, matrixRowsOf, searchGivenCandidates, type SearchRunOptions } from "../plan/given-embeddings.js";
import { runCentralSelection, type PreparedSelection, type SelectionOutcome, type SelectionSettings } from "../select/run-selection.js";
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

/** The search phase's output for one kernel: the CSC it built, or its candidates (the similarities are computed as they are staged). */
export type SearchOutput = { main: CscKernel | SearchedKernel; second: CscKernel | SearchedKernel | null };

function isSearched(k: CscKernel | SearchedKernel): k is SearchedKernel {
  return "table" in k;
}

/**
 * The search phase of DELIFT (SE) on given embeddings: each kernel's candidate columns (sparse
 * mode; dense kernels need no search), as seKernels searches them, without building the kernels:
 * stageJobKernels computes their similarities straight into the chunked files.
 */
export async function searchJobKernels(spec: JobSpec, planned: PlannedJob, options: SearchRunOptions = {}): Promise<SearchOutput & { main: SearchedKernel; second: SearchedKernel | null }> {
  const { sets } = planned;
  const stage = spec.selection.stage;
  const sparse = spec.scoring.candidates;
  const one = async (rows: Uint32Array, cols: Uint32Array): Promise<SearchedKernel> => {
    const rowM = matrixRowsOf(sets, rows);
    const colM = matrixRowsOf(sets, cols);
    if (!sparse) return { rows: rowM, cols: colM, table: null };
    const { table, facts } = await searchGivenCandidates(sets.embeddings!, rowM, colM, sparse, options);
    options.onSearched?.(facts);
    return { rows: rowM, cols: colM, table };
  };
  return {
    main: await one(sets.v, sets.v),
    second: stage === "task" ? await one(sets.o, sets.v) : stage === "continual" ? await one(sets.v, sets.o) : null,
  };
}

/** Entries a searched kernel will have. */
export function searchedEntries(k: SearchedKernel): number {
  return k.table ? k.table.ptr[k.rows.length] : k.rows.length * k.cols.length;
}

/** A selection made and reported, not yet written. */
export type SelectedJob = {
  outcome: SelectionOutcome;
  report: SelectionReport;
  /** Whether --save-kernel writes the unscaled V x V utility kernel (re-assembled from the stored tiles, or the reused one). */
  saveKernel: boolean;
};

/** Where a job's kernels are staged on disk (chunked, unscaled) for its selection; `main` is what shard hosts read. */
export type KernelStaging = {
  main: string;
  second: string;
  signal?: AbortSignal;
  /** Assembly progress (kernel: which one, "tiles" read, "rows" of similarities computed, or "chunks" built). */
  onProgress?: (kernel: "main" | "second", step: "tiles" | "rows" | "chunks", done: number, total: number) => void;
};

/** A job's kernels staged in the chunked format, with the utility kernels' metadata (kernel.json's). */
export type StagedJobKernels = { main: StagedKernel; second: StagedKernel | null; utility: KernelMetadata[] };

/**
 * Stages the job's kernels into the chunked format: utility kernels assembled out of core from
 * the stored tiles (assembleKernelChunked: the kernel is never whole in memory), SE kernels (the
 * search phase's, or computed here) and a reused kernel written once from memory.
 */
export async function stageJobKernels(
  spec: JobSpec,
  planned: PlannedJob,
  read: (tile: TileSpec) => Promise<TileOutput>,
  staging: KernelStaging,
  /** The search phase's output (kernels or candidates), handed over: dropped once staged. */
  searched: SearchOutput | null = null,
): Promise<StagedJobKernels> {
  if (spec.selection.kernelType === "se") {
    let out: SearchOutput | null = searched ?? (await seKernels(spec, planned));
    const stage = async (k: CscKernel | SearchedKernel, dir: string, which: "main" | "second"): Promise<StagedKernel> => ({
      dir,
      index: isSearched(k)
        ? await stageSimilarityChunked(planned.sets.embeddings!, k, dir, { signal: staging.signal, onRows: (d, t) => staging.onProgress?.(which, "rows", d, t), onChunk: (d, t) => staging.onProgress?.(which, "chunks", d, t) })
        : await stageKernelChunked(dir, k),
    });
    const main = await stage(out.main, staging.main, "main");
    const second = out.second ? await stage(out.second, staging.second, "second") : null;
    out = null;
    return { main, second, utility: [] };
  }
  const dirs = [staging.main, staging.second];
  const staged: StagedKernel[] = [];
  const utility: KernelMetadata[] = [];
  if (planned.reusedKernel) {
    const reused = planned.reusedKernel;
    staged.push({ dir: staging.main, index: await stageKernelChunked(staging.main, reused.csc, reused.baseline) });
    utility.push(reused.metadata);
  }
  for (let r = 0; r < planned.requests.length; r++) {
    const dir = dirs[staged.length];
    const which = staged.length === 0 ? "main" : "second";
    const a = await assembleJobKernelChunked(planned, r, read, dir, staging.signal, (step, d, t) => staging.onProgress?.(which, step, d, t));
    staged.push({ dir, index: a.index });
    utility.push(a.metadata);
  }
  return { main: staged[0], second: staged[1] ?? null, utility };
}

/** Request r's utility kernel assembled out of core into `dir`, with its kernel.json metadata. */
export async function assembleJobKernelChunked(
  planned: PlannedJob,
  r: number,
  read: (tile: TileSpec) => Promise<TileOutput>,
  dir: string,
  signal?: AbortSignal,
  onProgress?: (step: "tiles" | "chunks", done: number, total: number) => void,
): Promise<{ index: ChunkedIndex; metadata: KernelMetadata }> {
  const ids = planned.sets.ids;
  const { targets, examples } = planned.requests[r];
  const axes = {
    rowOf: new Map(Array.from(targets, (g, k) => [g, k])),
    colOf: new Map(Array.from(examples, (g, k) => [g, k])),
    nRows: targets.length,
    nCols: examples.length,
  };
  const a = await assembleKernelChunked(planned.plans[r], axes, read, dir, { signal, onProgress });
  const metadata: KernelMetadata = {
    format: KERNEL_FORMAT,
    nRows: targets.length,
    nCols: examples.length,
    nnz: a.index.nnz,
    rowIds: Array.from(targets, (g) => ids[g]),
    colIds: Array.from(examples, (g) => ids[g]),
    modelHash: planned.inputs.bundle.hash,
    settingsKey: planned.settingsKey,
    maxLength: planned.inputs.prompts.maxLength,
    truncated: a.truncated,
  };
  return { index: a.index, metadata };
}

/** A job's kernels staged and its objective prepared: what any optimiser needs. */
export type PreparedJobSelection = {
  staged: StagedJobKernels;
  settings: SelectionSettings;
  prepared: PreparedSelection;
  /** The scaled main kernel when it was read (central selection, or lazy greedy's comparison). */
  main: CscKernel | null;
  shapes: ChunkedPrepared["shapes"];
  histograms: ChunkedPrepared["histograms"];
  utility: KernelMetadata[];
  kernelSeconds: number;
};

export function jobSelectionSettings(spec: JobSpec, planned: PlannedJob): SelectionSettings {
  const sel = spec.selection;
  return {
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
}

/**
 * Prepares the objective from staged kernels: the main kernel read whole (once, straight from its
 * chunks) only when `loadMain`, the second kernel streamed into its maxima.
 */
export async function prepareJobSelection(spec: JobSpec, planned: PlannedJob, staged: StagedJobKernels, timings: JobTimings, loadMain: boolean, stagingSeconds = 0): Promise<PreparedJobSelection> {
  const started = performance.now();
  const settings = jobSelectionSettings(spec, planned);
  const c = await prepareChunkedSelection(staged, settings, loadMain);
  const kernelSeconds = timings.kernelSeconds + stagingSeconds + (performance.now() - started) / 1000;
  return { staged, settings, prepared: c.prepared, main: c.main, shapes: c.shapes, histograms: c.histograms, utility: staged.utility, kernelSeconds };
}

/** The selection of a job, central: stages its kernels next to `out` (removed again), selects, builds the report. */
export async function selectJob(
  spec: JobSpec,
  planned: PlannedJob,
  read: (tile: TileSpec) => Promise<TileOutput>,
  timings: JobTimings,
  tiles: { computed: number; reused: number },
  out: string,
  /** The search phase's output, when it ran. */
  built: SearchOutput | null = null,
): Promise<SelectedJob> {
  return withStagingDir(out, async (dir) => {
    const started = performance.now();
    const staged = await stageJobKernels(spec, planned, read, { main: join(dir, "main"), second: join(dir, "second") }, built);
    const p = await prepareJobSelection(spec, planned, staged, timings, true, (performance.now() - started) / 1000);
    return reportJobSelection(spec, planned, p, runCentralSelection({ main: p.main!, second: null }, p.settings, p.prepared), timings, tiles);
  });
}

/** Runs fn with a fresh hidden directory next to `near`, removed afterwards however fn ends. */
export async function withStagingDir<T>(near: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = join(dirname(resolve(near)), `.${basename(near)}.kernel-${randomUUID().slice(0, 8)}`);
  await mkdir(dir, { recursive: true });
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
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
  const { shapes, settings, utility, kernelSeconds } = p;
  const { sets } = planned;
  const sel = spec.selection;
  // Lean sets hold no texts: the report's preview (its first picks) reads theirs back.
  await fillCandidateTexts(sets, outcome.result.order.slice(0, 15), spec.scoring.fields);
  const facts = (k: KernelMetadata | undefined): KernelFacts => ({
    truncatedPrompts: k ? k.truncated.pairs + k.truncated.baseline : null,
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
    kernel: { rows: "targets (V)", cols: "examples (V)", nRows: shapes.main.nRows, nCols: shapes.main.nCols, nnz: shapes.main.nnz, ...facts(utility[0]) },
    secondKernel: shapes.second
      ? {
          rows: sel.stage === "task" ? "targets (Q)" : "targets (V)",
          cols: sel.stage === "task" ? "examples (V)" : "examples (E)",
          nRows: shapes.second.nRows,
          nCols: shapes.second.nCols,
          nnz: shapes.second.nnz,
          ...facts(utility[1]),
        }
      : null,
    histograms: p.histograms,
    timings: { loadSeconds: timings.loadSeconds, kernelSeconds, totalSeconds: (Date.now() - timings.startedAt) / 1000 },
  });
  return { outcome, report, saveKernel: spec.saveKernel && (spec.selection.kernelType === "utility" || planned.reusedKernel !== null) };
}

/** Writes a selection into `out`: selected.jsonl, report.json, report.html (and kernel/ when asked). */
export async function writeSelectedJob(spec: JobSpec, planned: PlannedJob, selected: SelectedJob, out: string, read: (tile: TileSpec) => Promise<TileOutput>): Promise<{ summary: string }> {
  const { sets } = planned;
  const sel = spec.selection;
  const { outcome, report } = selected;
  const records = sets.records ? leanRecordReader(sets) : sets.candidates.map((s) => s.record);
  await writeSelection(out, { records, order: outcome.result.order, gains: outcome.result.gains }, report, {
    names: ["kernel"],
    write: async (tmp) => {
      if (!selected.saveKernel) return;
      const reused = planned.reusedKernel;
      if (reused) await writeKernel(join(tmp, "kernel"), { ...reused, metadata: { ...reused.metadata, data: spec.data } });
      else await writeAssembledKernel(planned, read, join(tmp, "kernel"), spec.data);
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

/** A kernel job's result: the utility kernel, assembled out of core and written chunk by chunk into `out`. */
export async function writeKernelJob(spec: JobSpec, planned: PlannedJob, read: (tile: TileSpec) => Promise<TileOutput>, out: string): Promise<{ summary: string }> {
  const metadata = await writeAssembledKernel(planned, read, out, spec.data);
  const t = metadata.truncated;
  return { summary: `kernel ${metadata.nRows} x ${metadata.nCols}; truncated: ${t.pairs} pair and ${t.baseline} baseline prompts` };
}

/**
 * The V x V utility kernel (request 0) as kernel.bin / kernel.parquet / kernel.json in `out`:
 * assembled into a staging directory next to it and written from there, chunk by chunk.
 */
async function writeAssembledKernel(planned: PlannedJob, read: (tile: TileSpec) => Promise<TileOutput>, out: string, data: string | undefined): Promise<KernelMetadata> {
  return withStagingDir(out, async (dir) => {
    const a = await assembleJobKernelChunked(planned, 0, read, join(dir, "kernel"));
    const metadata: KernelMetadata = { ...a.metadata, data };
    await writeKernelFromChunked(out, join(dir, "kernel"), metadata);
    return metadata;
  });
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
  return writeSelectedJob(spec, planned, await selectJob(spec, planned, read, timings, tiles, out), out, read);
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}
