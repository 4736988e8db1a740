import {
  type CandidateSearch,
  type CscKernel,
  denseSimilarityKernel,
  type EmbeddingMatrix,
  searchCandidates,
  type SearchProgress,
  sparseSimilarityKernel,
} from "../../../common/src/mod.js";
import type { SampleSets } from "../inputs/sample-sets.js";
import { candidateTable, type CandidateSettings } from "./candidates.js";
import type { CandidateTable } from "./compact-plan.js";

export type SearchRunOptions = {
  signal?: AbortSignal;
  onProgress?: (p: SearchProgress) => void;
  /** Rows of the similarity kernel built so far (after the search). */
  onKernelProgress?: (rowsDone: number, rowsTotal: number) => void;
  /** How each search went (method, cells, probes, sampled recall, seconds). */
  onSearched?: (facts: SearchFacts) => void;
};

/** How a job's candidate search went (for the log and the report). */
export type SearchFacts = { method: CandidateSearch["method"]; probes: number | null; cells: number | null; sampledRecall: number | null; seconds: number };

/**
 * Sparse mode on given embeddings: each target's K nearest examples by cosine, searched exactly
 * or by cell probes (the rule of chooseSearchMethod; deterministic for the seed), plus the seeded
 * random columns. The table's ids are rows of the embedding matrix (corpus samples).
 */
export async function searchGivenCandidates(
  matrix: EmbeddingMatrix,
  targetRows: Uint32Array,
  exampleRows: Uint32Array,
  settings: CandidateSettings,
  options: SearchRunOptions = {},
): Promise<{ table: CandidateTable; facts: SearchFacts }> {
  const started = performance.now();
  const search = await searchCandidates(matrix, targetRows, exampleRows, settings.neighbors, { seed: settings.seed, signal: options.signal, onProgress: options.onProgress });
  const table = candidateTable(search.lists, exampleRows, settings);
  return { table, facts: { method: search.method, probes: search.probes, cells: search.cells, sampledRecall: search.sampledRecall, seconds: (performance.now() - started) / 1000 } };
}

/** Rows of the embedding matrix of the given global sample indices. */
export function matrixRowsOf(sets: SampleSets, globals: Uint32Array): Uint32Array {
  const index = sets.corpusIndex;
  if (!index) throw new Error("given embeddings need every sample from the data file");
  return Uint32Array.from(globals, (g) => index[g]);
}

/** A candidate table over matrix rows, as global sample indices (rows stay ascending). */
export function tableToGlobal(sets: SampleSets, table: CandidateTable): CandidateTable {
  const index = sets.corpusIndex!;
  const globalOf = new Uint32Array(sets.embeddings!.count);
  for (let g = 0; g < index.length; g++) globalOf[index[g]] = g;
  const ids = Uint32Array.from(table.ids, (r) => globalOf[r]);
  for (let t = 0; t + 1 < table.ptr.length; t++) ids.subarray(table.ptr[t], table.ptr[t + 1]).sort();
  return { ptr: table.ptr, ids };
}

/**
 * DELIFT (SE) on given embeddings: the kernel of `rows` x `cols` (global indices), dense, or in
 * sparse mode at each row's searched candidates (the entries are the similarities the search ranks by).
 */
export async function givenSimilarityKernel(
  sets: SampleSets,
  rows: Uint32Array,
  cols: Uint32Array,
  sparse: CandidateSettings | null,
  options: SearchRunOptions = {},
): Promise<{ kernel: CscKernel; search: SearchFacts | null }> {
  const matrix = sets.embeddings!;
  const rowM = matrixRowsOf(sets, rows);
  const colM = matrixRowsOf(sets, cols);
  if (!sparse) return { kernel: denseSimilarityKernel(matrix, rowM, colM), search: null };
  const { table, facts } = await searchGivenCandidates(matrix, rowM, colM, sparse, options);
  options.onSearched?.(facts);
  return { kernel: sparseSimilarityKernel(matrix, rowM, colM, table, options.onKernelProgress), search: facts };
}
