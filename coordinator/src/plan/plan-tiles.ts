import type { TileSpec } from "./tile-spec.js";
import { compactDensePlan, compactSparsePlan, materializePlan, type DenseKernelRequest, type SparseKernelRequest } from "./compact-plan.js";

export { DEFAULT_TILE_SHAPE } from "./compact-plan.js";
export type { CandidateTable, CompactPlan, DenseKernelRequest, SparseKernelRequest, TileShape } from "./compact-plan.js";

/**
 * Cuts the kernel targets x examples into tiles: baseline tiles of `rows` targets and pair
 * tiles of `columns` examples x `rows` targets, in data order. New samples appended to a data
 * set leave the old blocks (and so their content keys) unchanged, which is what lets a later
 * job reuse stored tiles. (Every tile as an object; compactDensePlan holds the same plan compactly.)
 */
export function planDenseKernel(request: DenseKernelRequest): TileSpec[] {
  return materializePlan(compactDensePlan(request));
}

/**
 * Sparse mode (DESIGN.md §2): each target is scored only against its candidates. Baseline tiles
 * as in dense mode; pair tiles are runs of consecutive example columns, each with the targets that
 * have it as a candidate, cut at shape.columns x shape.rows pairs (and the token budget).
 * (Every tile as an object; compactSparsePlan holds the same plan compactly.)
 */
export function planSparseKernel(request: SparseKernelRequest): TileSpec[] {
  return materializePlan(compactSparsePlan(request));
}
