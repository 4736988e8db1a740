import { type BlobStore, bundleFiles, InputError, modelBlobName, nearestNeighbours, parseBudget, readKernel, sampleLengths, type SkippedRecord, type UtilityKernel, type WorkSpec } from "../../../common/src/mod.js";
import { type LoadProgress, loadJobSets, loadModelInputs, type ModelInputs } from "../inputs/load-inputs.js";
import type { SampleSets } from "../inputs/sample-sets.js";
import type { JobSpec } from "../jobs/job-spec.js";
import { planDenseKernel, planSparseKernel } from "../plan/plan-tiles.js";
import { withRandomColumns } from "../plan/candidates.js";
import { matrixRowsOf, searchGivenCandidates, tableToGlobal } from "../plan/given-embeddings.js";
import { embedSamples } from "./embeddings.js";
import { sampleKeys } from "../plan/sample-keys.js";
import { settingsKey } from "../plan/settings-key.js";
import type { TileSpec } from "../plan/tile-spec.js";

/** One kernel of a job: targets (rows) x examples (columns), as global sample indices. */
export type KernelRequest = { targets: Uint32Array; examples: Uint32Array };

export type PlannedJob = {
  /** The V x V kernel given with the job (spec.kernel), already checked against the data and model. */
  reusedKernel: UtilityKernel | null;
  inputs: ModelInputs;
  sets: SampleSets;
  skipped: SkippedRecord[];
  /** Kernels to assemble: the main V x V first (unless reused), then the stage's second kernel (if any). */
  requests: KernelRequest[];
  plans: TileSpec[][];
  /** Every distinct tile of the job, in plan order. */
  tiles: Map<string, TileSpec>;
  settingsKey: string;
};

/** Tiles stay below this many tokens (int32 ids): about 1 MB, NATS's default payload limit, with room for the rest. */
export const DEFAULT_MAX_TILE_TOKENS = 200_000;

/** The kernels a stage needs (DESIGN.md §1); the SE variant computes them without tiles. */
export function kernelRequests(spec: JobSpec, sets: SampleSets): KernelRequest[] {
  if (spec.selection.kernelType === "se") return [];
  const requests: KernelRequest[] = spec.kernel ? [] : [{ targets: sets.v, examples: sets.v }];
  if (spec.kind === "select" && spec.selection.stage === "task") requests.push({ targets: sets.o, examples: sets.v });
  if (spec.kind === "select" && spec.selection.stage === "continual") requests.push({ targets: sets.v, examples: sets.o });
  return requests;
}

export async function planJob(spec: JobSpec, maxTileTokens = DEFAULT_MAX_TILE_TOKENS, progress: LoadProgress = {}): Promise<PlannedJob> {
  const inputs = await loadModelInputs(spec.model, spec.scoring);
  const { sets, skipped } = await loadJobSets(spec, inputs, undefined, progress);
  // A budget that does not fit the data is known now; finding out after scoring would waste it all.
  if (spec.kind === "select") parseBudget(spec.selection.budget, sets.v.length);
  const reusedKernel = spec.kernel ? await readMatchingKernel(spec.kernel, sets, inputs.bundle.hash) : null;
  const requests = kernelRequests(spec, sets);
  const settings = settingsKey(inputs.bundle.hash, inputs.prompts);
  const keys = sampleKeys(sets.tokens);
  const counts = Uint32Array.from({ length: sets.tokens.count }, (_, i) => {
    const l = sampleLengths(sets.tokens, i);
    return l.x + l.y;
  });
  const common = { settingsKey: settings, sampleKeys: keys, shape: spec.scoring.tile, sampleTokenCounts: counts, maxTileTokens };
  const sparse = spec.scoring.candidates;
  let plans: TileSpec[][];
  if (sparse && requests.length > 0 && sets.embeddings) {
    // Given embeddings: the search that scales (exact or cell probes), in the matrix's rows.
    plans = [];
    for (const r of requests) {
      const { table } = await searchGivenCandidates(sets.embeddings, matrixRowsOf(sets, r.targets), matrixRowsOf(sets, r.examples), sparse);
      plans.push(planSparseKernel({ ...common, ...r, candidates: tableToGlobal(sets, table) }));
    }
  } else if (sparse && requests.length > 0) {
    const { embeddings, dim } = await embedSamples(inputs, sets, "sparse mode (candidates by nearest neighbours)");
    plans = [];
    for (const r of requests) {
      const neighbours = await nearestNeighbours(embeddings, dim, r.targets, r.examples, sparse.neighbors);
      plans.push(planSparseKernel({ ...common, ...r, candidates: withRandomColumns(neighbours, r.examples, sparse) }));
    }
  } else {
    plans = requests.map((r) => planDenseKernel({ ...common, ...r }));
  }
  const tiles = new Map<string, TileSpec>();
  for (const plan of plans) for (const t of plan) tiles.set(t.id, t);
  return { reusedKernel, inputs, sets, skipped, requests, plans, tiles, settingsKey: settings };
}

/** Reads a kernel to reuse and checks it was computed for these candidates, in this order, by this model. */
async function readMatchingKernel(dir: string, sets: SampleSets, modelHash: string): Promise<UtilityKernel> {
  const kernel = await readKernel(dir);
  const ids = Array.from(sets.v, (g) => sets.ids[g]);
  const m = kernel.metadata;
  const mismatch = (which: string, list: string[]) => {
    if (list.length !== ids.length) return `it has ${list.length} ${which}s, the data has ${ids.length} candidates`;
    const k = list.findIndex((id, i) => id !== ids[i]);
    return k >= 0 ? `its ${which} ${k} is sample "${list[k]}", the data has "${ids[k]}" there` : null;
  };
  const problem = mismatch("row", m.rowIds) ?? mismatch("column", m.colIds);
  if (problem) throw new InputError({ file: dir, field: "rowIds" }, `kernel was computed for other samples: ${problem}`);
  if (m.modelHash !== modelHash) {
    throw new InputError({ file: dir, field: "modelHash" }, `kernel was computed with another model (${m.modelHash.slice(0, 12)}), not ${modelHash.slice(0, 12)}`);
  }
  return kernel;
}

/** Puts the model bundle's files into the object store by content hash (once per model). */
export async function publishModel(inputs: ModelInputs, blobs: BlobStore): Promise<string[]> {
  const { bundle } = inputs;
  const files = bundleFiles(bundle);
  for (const file of files) {
    const name = modelBlobName(bundle.hash, file);
    if (!(await blobs.has(name))) await blobs.putFile(name, `${bundle.dir}/${file}`);
  }
  return files;
}

export function workSpecFor(jobId: string, spec: JobSpec, planned: PlannedJob, modelFiles: string[]): WorkSpec {
  const vocab = planned.inputs.bundle.manifest.vocabSize;
  return {
    jobId,
    modelHash: planned.inputs.bundle.hash,
    modelFiles,
    prompts: planned.inputs.prompts,
    batch: spec.scoring.batch,
    ackWaitMs: spec.queue.ackWaitSeconds * 1000,
    maxDeliver: spec.queue.maxDeliver,
    vocabSize: typeof vocab === "number" ? vocab : null,
    kernel: spec.selection.kernelType,
  };
}
