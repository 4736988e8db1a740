import { encodeTileMessage, matrixFromFloat32 } from "../../../common/src/mod.js";
import type { JobSpec } from "../jobs/job-spec.js";
import type { SampleSets } from "../inputs/sample-sets.js";
import type { PhaseMeter } from "../plan/phase-meter.js";
import { assembleEmbeddings, embedTileWork, planEmbedTiles, type EmbedPlan } from "../runtime/embeddings.js";
import type { PlannedJob } from "../runtime/plan-job.js";
import { readStoredTile } from "../store/tile-store.js";

export type { EmbedPlan };

/**
 * The embeddings stage of a job (in its thread): DELIFT (SE) without given embeddings has its
 * samples embedded by the workers, as embed tiles; null for every other job.
 */
export async function embedOfPlan(spec: JobSpec, planned: PlannedJob): Promise<EmbedPlan | null> {
  if (spec.kind !== "select" || spec.selection.kernelType !== "se" || planned.sets.embeddings !== null) return null;
  return planEmbedTiles(planned.inputs, planned.sets, spec.scoring.embedTileTokens);
}

/** The message of one embed tile (the same bytes every time: its MAC can be recomputed). */
export function embedTileMessage(plan: EmbedPlan, planned: PlannedJob, jobId: string, tileId: string): Uint8Array {
  const tile = plan.byId.get(tileId);
  if (!tile) throw new Error(`no embed tile ${tileId} in the plan`);
  return encodeTileMessage({ jobId, tileId, work: embedTileWork(planned.inputs, planned.sets, tile) });
}

/**
 * The sets the search phase takes, with the workers' embeddings as the job's embedding matrix:
 * rows by global sample index (so the corpus index is the identity), as if given with the job.
 */
export async function searchSetsFromTiles(plan: EmbedPlan, sets: SampleSets, storeDir: string, meter: PhaseMeter): Promise<SampleSets> {
  const { data } = await assembleEmbeddings(plan, (id) => readStoredTile(storeDir, id), storeDir, (done, total) => meter.tick("assembling", done, total, "samples"));
  return { ...sets, embeddings: matrixFromFloat32(data, plan.dim), corpusIndex: Uint32Array.from({ length: plan.samples }, (_, g) => g) };
}
