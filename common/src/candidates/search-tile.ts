import { gatherRows, type EmbeddingMatrix } from "../embeddings/embedding-matrix.js";
import type { KnnEngine } from "./knn-engine.js";
import { EMPTY, emptyTopK, mergeTopK, type TopKLists } from "./top-k.js";

/**
 * The unit of search work (a tile kind of its own for phase 2's workers): a block of query rows
 * against a block of corpus rows, both global row indices into the embedding matrix; the output
 * is each query's top k among those corpus rows (ids = corpus row indices), mergeable with the
 * outputs of the query block's other tiles. Exact search covers the corpus with such tiles;
 * cell-probe search gives each query group one tile over the members of the cells it probes.
 */
export type SearchTile = { queries: Uint32Array; corpus: Uint32Array };

/** Rows per onnxruntime call: bounds the score matrix (512 x 16,384 floats = 32 MiB). */
export const QUERY_BLOCK = 512;
export const CORPUS_BLOCK = 16_384;

/** Best-first top-k ids per query (EMPTY-padded), the result of every search method. */
export type SearchLists = { count: number; k: number; ids: Uint32Array };

export async function runSearchTile(engine: KnnEngine, matrix: EmbeddingMatrix, tile: SearchTile, k: number): Promise<TopKLists> {
  const dim = matrix.dim;
  const m = tile.queries.length;
  const result = emptyTopK(m, k);
  const corpusBlock = new Float32Array(Math.min(CORPUS_BLOCK, tile.corpus.length) * dim);
  const queryBlock = new Float32Array(Math.min(QUERY_BLOCK, m) * dim);
  for (let c0 = 0; c0 < tile.corpus.length; c0 += CORPUS_BLOCK) {
    const cols = tile.corpus.subarray(c0, Math.min(tile.corpus.length, c0 + CORPUS_BLOCK));
    gatherRows(matrix, cols, corpusBlock);
    for (let q0 = 0; q0 < m; q0 += QUERY_BLOCK) {
      const rows = tile.queries.subarray(q0, Math.min(m, q0 + QUERY_BLOCK));
      gatherRows(matrix, rows, queryBlock);
      const part = await engine.topK(queryBlock, rows.length, corpusBlock, cols.length, dim, k, cols);
      mergeRows(result, q0, part);
    }
  }
  return result;
}

/** Merges `part` (rows q0 .. q0 + part.rows of `into`) into `into`. */
function mergeRows(into: TopKLists, q0: number, part: TopKLists): void {
  const k = into.k;
  const view: TopKLists = { rows: part.rows, k, scores: into.scores.subarray(q0 * k, (q0 + part.rows) * k), ids: into.ids.subarray(q0 * k, (q0 + part.rows) * k) };
  mergeTopK(view, part);
}

/** Writes a tile's top-k ids into the search's lists at the tile's query positions. */
export function storeLists(lists: SearchLists, positions: ArrayLike<number>, topk: TopKLists): void {
  const k = lists.k;
  for (let r = 0; r < topk.rows; r++) lists.ids.set(topk.ids.subarray(r * topk.k, r * topk.k + k), positions[r] * k);
}

export function emptyLists(count: number, k: number): SearchLists {
  return { count, k, ids: new Uint32Array(count * k).fill(EMPTY) };
}

/** Row t's ids, ascending (the order candidate lists are planned in); a copy. */
export function sortedRow(lists: SearchLists, t: number): Uint32Array {
  const row = lists.ids.subarray(t * lists.k, (t + 1) * lists.k);
  const end = row.indexOf(EMPTY);
  return row.slice(0, end < 0 ? row.length : end).sort();
}

/** Every row ascending, as the Uint32Array[] today's planner takes. */
export function sortedLists(lists: SearchLists): Uint32Array[] {
  return Array.from({ length: lists.count }, (_, t) => sortedRow(lists, t));
}
