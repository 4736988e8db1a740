import { createHash } from "node:crypto";
import { mkdir, open, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import {
  chooseSearchMethod,
  emptyLists,
  emptyTopK,
  encodeTileMessage,
  type EmbeddingMatrix,
  mergeTopK,
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
 * SE kernel is then built from them as from the thread's search. Cell-probe searches (past
 * EXACT_MAX_MULTIPLY_ADDS) stay in the thread.
 */
export type SearchWorkPlan = {
  matrix: { name: string; path: string; sha256: string; bytes: number };
  kernels: SearchWorkKernel[];
  byId: Map<string, SearchTileWork>;
  /** When the plan was made (the search's seconds run from here). */
  startedAt: number;
};

type SearchWorkKernel = { rows: Uint32Array; cols: Uint32Array; k: number; blocks: string[][] };

/** A search tile's id: the SHA-256 of what it computes (matrix, k, query and corpus rows), so a stored result is reused only for the same work. */
export function searchTileId(w: SearchTileWork): string {
  const h = createHash("sha256").update(`delift-search-tile-v1\n${w.matrix}\n${w.rows}\n${w.dim}\n${w.k}\n${w.queries.length}\n`);
  h.update(new Uint8Array(w.queries.buffer, w.queries.byteOffset, w.queries.byteLength));
  h.update(new Uint8Array(w.corpus.buffer, w.corpus.byteOffset, w.corpus.byteLength));
  return h.digest("hex");
}

/**
 * The job's search as worker tiles, or null where it stays in the thread: a dense SE kernel (no
 * search), a search past the exact limit (cell probes), an empty side, or corpus rows that do not
 * rise in the matrix.
 */
export async function planSearchWork(spec: JobSpec, planned: PlannedJob, dir: string, shape: { queryRows?: number; corpusRows?: number } = {}): Promise<SearchWorkPlan | null> {
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
    if (chooseSearchMethod(s.rows.length, s.cols.length, matrix.dim) !== "exact") return null;
    // A search tile's corpus rows rise (its ties go to the lower row); any other order stays in the thread.
    for (let c = 1; c < s.cols.length; c++) if (s.cols[c] <= s.cols[c - 1]) return null;
  }
  const startedAt = performance.now();
  const blob = await writeMatrixBlob(matrix, dir);
  const byId = new Map<string, SearchTileWork>();
  const kernels = sides.map((s) => {
    const k = Math.min(sparse.neighbors, s.cols.length);
    const blocks = planExactTiles(s.rows, s.cols, shape.queryRows, shape.corpusRows).map((row) =>
      row.map((t) => {
        const work: SearchTileWork = { kind: "search", matrix: blob.sha256, rows: matrix.count, dim: matrix.dim, k, queries: t.queries.slice(), corpus: t.corpus.slice() };
        const id = searchTileId(work);
        byId.set(id, work);
        return id;
      }),
    );
    return { ...s, k, blocks };
  });
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
  const total = plan.kernels.reduce((n, k) => n + k.blocks.reduce((m, b) => m + b.length, 0), 0);
  let done = 0;
  const kernels: SearchedKernel[] = [];
  for (const kernel of plan.kernels) {
    const lists: SearchLists = emptyLists(kernel.rows.length, kernel.k);
    let q0 = 0;
    for (const block of kernel.blocks) {
      const m = plan.byId.get(block[0])!.queries.length;
      const merged = emptyTopK(m, kernel.k);
      for (const id of block) {
        mergeTopK(merged, searchResultLists(plan.byId.get(id)!, await read(id)));
        onProgress?.(++done, total);
      }
      storeLists(lists, Uint32Array.from({ length: m }, (_, r) => q0 + r), merged);
      q0 += m;
    }
    kernels.push({ rows: kernel.rows, cols: kernel.cols, table: candidateTable(lists, kernel.cols, sparse) });
  }
  const seconds = (performance.now() - plan.startedAt) / 1000;
  return { kernels, facts: plan.kernels.map(() => ({ method: "exact", probes: null, cells: null, sampledRecall: null, seconds })) };
}

/** The matrix blob as a file beside the tile store (content-named: an intact one is kept). */
async function writeMatrixBlob(matrix: EmbeddingMatrix, dir: string): Promise<SearchWorkPlan["matrix"]> {
  const { bytes, sha256 } = searchMatrixBlob(matrix);
  await mkdir(dir, { recursive: true });
  const path = join(dir, sha256);
  const out = { name: searchMatrixBlobName(sha256), path, sha256, bytes: bytes.byteLength };
  if ((await stat(path).catch(() => null))?.size === bytes.byteLength) return out;
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const fh = await open(tmp, "w");
  try {
    await fh.writeFile(bytes);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  await rename(tmp, path);
  return out;
}
