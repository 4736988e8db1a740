import type { EmbeddingMatrix } from "../embeddings/embedding-matrix.js";
import { cellProbeSearch, type CellProbeOptions } from "./cell-probe.js";
import { exactSearch } from "./exact-search.js";
import type { SearchLists } from "./search-tile.js";

export type SearchMethod = "exact" | "cells";

/**
 * Exact search while it is cheap: up to this many multiply-adds (queries x examples x dim), about
 * 25 s on two CPU cores at the ~39 GFLOP/s measured here (50,000 x 50,000 samples at 128
 * dimensions, 28,000 at 384). Past it, cell-probe search (see README "Candidate search at scale" for the measurements
 * behind the choice).
 */
export const EXACT_MAX_MULTIPLY_ADDS = 5e11;

export function chooseSearchMethod(queries: number, examples: number, dim: number): SearchMethod {
  return queries * examples * dim <= EXACT_MAX_MULTIPLY_ADDS ? "exact" : "cells";
}

export type CandidateSearch = { lists: SearchLists; method: SearchMethod; probes: number | null; cells: number | null; sampledRecall: number | null };

/** Each query's k nearest examples by cosine, exact or by cell probes as the rule above says (or as asked). */
export async function searchCandidates(
  matrix: EmbeddingMatrix,
  queries: Uint32Array,
  examples: Uint32Array,
  k: number,
  options: CellProbeOptions & { method?: SearchMethod } = {},
): Promise<CandidateSearch> {
  const method = options.method ?? chooseSearchMethod(queries.length, examples.length, matrix.dim);
  if (method === "exact") return { lists: await exactSearch(matrix, queries, examples, k, options), method, probes: null, cells: null, sampledRecall: null };
  const r = await cellProbeSearch(matrix, queries, examples, k, options);
  return { lists: r.lists, method, probes: r.probes, cells: r.cells, sampledRecall: r.sampledRecall };
}
