import { createHash } from "node:crypto";
import { mkdir, stat } from "node:fs/promises";
import { atomicWrite } from "../runtime/job-files.js";
import { join } from "node:path";
import {
  chooseSearchMethod,
  emptyLists,
  emptyTopK,
  encodeTileMessage,
  type EmbeddingMatrix,
  mergeCellTile,
  mergeTopK,
  planCellProbeTiles,
  planExactTiles,
  searchMatrixBlob,
  searchMatrixBlobName,
  searchResultLists,
  type SearchLists,
  type SearchTileWork,
  storeLists,
} from "../../../common/src/mod.js";
import type { JobSpec } from "../jobs/job-spec.js";
import { candidateTable } from "../plan/candidates.js";
import { matrixRowsOf, type SearchFacts } from "../plan/given-embeddings.js";
import type { SearchedKernel } from "../kernel/stage-similarity.js";
import type { PlannedJob } from "../runtime/plan-job.js";

/**
 * Exact candidate search as worker tiles (issue 8 item 2): each searched kernel's (query block x
 * corpus block) tiles, exactly the tiles exactSearch runs in the thread (same blocks, same order),
 * over the job's embedding matrix as one content-named blob in the object store. The workers'
 * lists, merged per query block in corpus-block order, are the thread's lists byte for byte; the
 * SE kernel is then built from them as from the thread's search. Past EXACT_MAX_MULTIPLY_ADDS the
 * search is cell-probe: k-means, assignment and probe tuning run in the thread, the per-cell tiles
 * on the workers, merged per query chunk in cell order as cellProbeSearch merges them.
 */
export type SearchWorkPlan = {
  matrix: { name: string; path: string; sha256: string; bytes: number };
  kernels: SearchWorkKernel[];
  byId: Map<string, SearchTileWork>;
  /** When the plan was made (the search's seconds run from here). */
  startedAt: number;
};

/**
 * A kernel's search as groups of tiles whose lists merge together: exact search's query blocks
 * (local null: the tiles cover the block's queries in order), or cell-probe search's query chunks
 * (local: each tile's rows as chunk positions). `positions`: the group's rows of the kernel's lists.
 */
type SearchGroup = { positions: Uint32Array; tiles: { id: string; local: Uint32Array | null }[] };
type SearchWorkKernel = { rows: Uint32Array; cols: Uint32Array; k: number; groups: SearchGroup[]; facts: Omit<SearchFacts, "seconds"> };

/** A search tile's id: the SHA-256 of what it computes (matrix, k, query and corpus rows), so a stored result is reused only for the same work. */
export function searchTileId(w: SearchTileWork): string {
  const h = createHash("sha256").update(`delift-search-tile-v1\n${w.matrix}\n${w.rows}\n${w.dim}\n${w.k}\n${w.queries.length}\n`);
  h.update(new Uint8Array(w.queries.buffer, w.queries.byteOffset, w.queries.byteLength));
  h.update(new Uint8Array(w.corpus.buffer, w.corpus.byteOffset, w.corpus.byteLength));
  return h.digest("hex");
}

/**
 * The job's search as worker tiles, or null where it stays in the thread: a dense SE kernel (no
 * search), an empty side, or corpus rows that do not rise in the matrix.
 */
export async function planSearchWork(
  spec: JobSpec,
  planned: PlannedJob,
  dir: string,
  options: { queryRows?: number; corpusRows?: number; method?: "exact" | "cells"; signal?: AbortSignal } = {},
): Promise<SearchWorkPlan | null> {
  const sparse = spec.scoring.candidates;
  const sets = planned.sets;
  const matrix = sets.embeddings;
  if (!sparse || !matrix) return null;
  const pairs: [Uint32Array, Uint32Array][] = [[sets.v, sets.v]];
  if (spec.selection.stage === "task") pairs.push([sets.o, sets.v]);
  else if (spec.selection.stage === "continual") pairs.push([sets.v, sets.o]);
  const sides = pairs.map(([r, c]) => ({ rows: matrixRowsOf(sets, r), cols: matrixRowsOf(sets, c) }));
  for (const s of sides) {
    if (s.rows.length === 0 || s.cols.length === 0 || sparse.neighbors <= 0) return null;
    // A search tile's corpus rows rise (its ties go to the lower row); any other order stays in the thread.
    for (let c = 1; c < s.cols.length; c++) if (s.cols[c] <= s.cols[c - 1]) return null;
  }
  const startedAt = performance.now();
  const blob = await writeMatrixBlob(matrix, dir);
  const byId = new Map<string, SearchTileWork>();
  const add = (k: number, queries: Uint32Array, corpus: Uint32Array): string => {
    const work: SearchTileWork = { kind: "search", matrix: blob.sha256, rows: matrix.count, dim: matrix.dim, k, queries: queries.slice(), corpus: corpus.slice() };
    const id = searchTileId(work);
    byId.set(id, work);
    return id;
  };
  const kernels: SearchWorkKernel[] = [];
  for (const s of sides) {
    const method = options.method ?? chooseSearchMethod(s.rows.length, s.cols.length, matrix.dim);
    if (method === "exact") {
      const k = Math.min(sparse.neighbors, s.cols.length);
      let q0 = 0;
      const groups = planExactTiles(s.rows, s.cols, options.queryRows, options.corpusRows).map((row) => {
        const m = row[0].queries.length;
        const group = { positions: Uint32Array.from({ length: m }, (_, r) => q0 + r), tiles: row.map((t) => ({ id: add(k, t.queries, t.corpus), local: null })) };
        q0 += m;
        return group;
      });
      kernels.push({ ...s, k, groups, facts: { method, probes: null, cells: null, sampledRecall: null } });
    } else {
      // The k-means and the probe tuning run here (cheap next to the search); the cells' tiles go to the workers.
      const plan = await planCellProbeTiles(matrix, s.rows, s.cols, sparse.neighbors, { seed: sparse.seed, signal: options.signal });
      const groups = plan.chunks.map((c) => ({ positions: c.positions, tiles: c.tiles.map((t) => ({ id: add(plan.k, t.tile.queries, t.tile.corpus), local: t.local })) }));
      kernels.push({ ...s, k: plan.k, groups, facts: { method, probes: plan.probes, cells: plan.cells, sampledRecall: plan.sampledRecall } });
    }
  }
  return { matrix: blob, kernels, byId, startedAt };
}

/** Tiles to publish, once each (pairs: the tile's queries, as embed tiles count their samples). */
export function searchWorkTiles(plan: SearchWorkPlan): { id: string; pairs: number }[] {
  return [...plan.byId].map(([id, w]) => ({ id, pairs: w.queries.length }));
}

export function searchTileMessage(plan: SearchWorkPlan, jobId: string, tileId: string): Uint8Array {
  const work = plan.byId.get(tileId);
  if (!work) throw new Error(`no search tile ${tileId} in the plan`);
  return encodeTileMessage({ jobId, tileId, work });
}

/** Why an uploaded search result is refused (null: it is a well-formed answer to its tile). */
export function searchUploadProblem(plan: SearchWorkPlan, tileId: string, values: Float32Array): string | null {
  const work = plan.byId.get(tileId);
  if (!work) return `tile ${tileId} is not one of the job's search tiles`;
  try {
    searchResultLists(work, values);
    return null;
  } catch (err) {
    return `tile ${tileId}: ${(err as Error).message}`;
  }
}

/**
 * Merges the stored tiles' lists per query block (in corpus-block order, as exactSearch does) and
 * builds each kernel's candidate table: the search phase's output, as the thread's search gives it.
 */
export async function gatherSearchWork(
  spec: JobSpec,
  plan: SearchWorkPlan,
  read: (tileId: string) => Promise<Float32Array>,
  onProgress?: (done: number, total: number) => void,
): Promise<{ kernels: SearchedKernel[]; facts: SearchFacts[] }> {
  const sparse = spec.scoring.candidates!;
  const total = plan.kernels.reduce((n, k) => n + k.groups.reduce((m, g) => m + g.tiles.length, 0), 0);
  let done = 0;
  const kernels: SearchedKernel[] = [];
  for (const kernel of plan.kernels) {
    const lists: SearchLists = emptyLists(kernel.rows.length, kernel.k);
    for (const group of kernel.groups) {
      const merged = emptyTopK(group.positions.length, kernel.k);
      for (const t of group.tiles) {
        const part = searchResultLists(plan.byId.get(t.id)!, await read(t.id));
        if (t.local) mergeCellTile(merged, t.local, part);
        else mergeTopK(merged, part);
        onProgress?.(++done, total);
      }
      storeLists(lists, group.positions, merged);
    }
    kernels.push({ rows: kernel.rows, cols: kernel.cols, table: candidateTable(lists, kernel.cols, sparse) });
  }
  const seconds = (performance.now() - plan.startedAt) / 1000;
  return { kernels, facts: plan.kernels.map((k) => ({ ...k.facts, seconds })) };
}

/** The matrix blob as a file beside the tile store (content-named: an intact one is kept). */
async function writeMatrixBlob(matrix: EmbeddingMatrix, dir: string): Promise<SearchWorkPlan["matrix"]> {
  const { bytes, sha256 } = searchMatrixBlob(matrix);
  await mkdir(dir, { recursive: true });
  const path = join(dir, sha256);
  const out = { name: searchMatrixBlobName(sha256), path, sha256, bytes: bytes.byteLength };
  if ((await stat(path).catch(() => null))?.size === bytes.byteLength) return out;
  await atomicWrite(path, bytes);
  return out;
}
