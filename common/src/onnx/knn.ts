import { exactSearch } from "../candidates/exact-search.js";
import { sortedLists } from "../candidates/search-tile.js";
import type { EmbeddingMatrix } from "../embeddings/embedding-matrix.js";
import type { Device } from "./session-options.js";

/**
 * k nearest neighbours by cosine similarity of L2-normalised embeddings, exact, for sparse mode
 * (DESIGN.md §2): each query's list, ascending. The work is exact search's tiles (query blocks x
 * corpus blocks, Gemm + TopK in onnxruntime, merged per query; common/src/candidates), so memory
 * stays bounded by the block sizes. Ties go to the lower sample index.
 */
export type KnnOptions = { device?: Device; threads?: number; blockRows?: number; blockCols?: number };

export async function nearestNeighbours(
  embeddings: Float32Array,
  dim: number,
  queries: Uint32Array,
  candidates: Uint32Array,
  k: number,
  options: KnnOptions = {},
): Promise<Uint32Array[]> {
  // The rows are unit vectors already: used as they are (no renormalising rounding).
  const count = embeddings.length / dim;
  const matrix: EmbeddingMatrix = { count, dim, dtype: "float32", data: embeddings, invNorms: new Float32Array(count).fill(1) };
  const lists = await exactSearch(matrix, queries, candidates, k, { device: options.device, threads: options.threads, queryRows: options.blockRows, corpusRows: options.blockCols });
  return sortedLists(lists);
}
