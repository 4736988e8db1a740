import { AbortedError } from "../errors.js";
import type { Device } from "../onnx/session-options.js";
import type { EmbeddingMatrix } from "../embeddings/embedding-matrix.js";
import { KnnEngine } from "./knn-engine.js";
import { emptyLists, runSearchTile, storeLists, type SearchLists, type SearchTile } from "./search-tile.js";
import { emptyTopK, mergeTopK } from "./top-k.js";

export type SearchProgress = { phase: "candidates"; method: string; step: string; done: number; total: number; elapsedSeconds: number };

export type SearchOptions = {
  /** An engine to reuse (else one is created and released). */
  engine?: KnnEngine;
  device?: Device;
  threads?: number;
  signal?: AbortSignal;
  onProgress?: (p: SearchProgress) => void;
  /** Exact search's tile shape (query rows x corpus rows); defaults 2,048 x 65,536. */
  queryRows?: number;
  corpusRows?: number;
};

/** Exact search's tiles: query blocks x corpus blocks, in query-block-major order. */
export function planExactTiles(queries: Uint32Array, examples: Uint32Array, queryRows = 2048, corpusRows = 65_536): SearchTile[][] {
  if (queries.length === 0) return [];
  const out: SearchTile[][] = [];
  for (let q0 = 0; q0 < queries.length; q0 += queryRows) {
    const q = queries.subarray(q0, Math.min(queries.length, q0 + queryRows));
    const row: SearchTile[] = [];
    for (let c0 = 0; c0 < examples.length; c0 += corpusRows) row.push({ queries: q, corpus: examples.subarray(c0, Math.min(examples.length, c0 + corpusRows)) });
    out.push(row);
  }
  return out;
}

/**
 * Exact cosine top-k of every query among the examples: every (query block, corpus block) tile,
 * merged per query block. Cost grows with queries x examples x dim (about an hour at 10^6 on two
 * CPU cores; minutes on GPU workers); memory is one query block's lists plus the tile blocks.
 */
export async function exactSearch(matrix: EmbeddingMatrix, queries: Uint32Array, examples: Uint32Array, k: number, options: SearchOptions = {}): Promise<SearchLists> {
  if (examples.length === 0 || k <= 0) return emptyLists(queries.length, 0);
  const engine = options.engine ?? (await KnnEngine.create({ device: options.device, threads: options.threads }));
  const started = performance.now();
  try {
    const plan = planExactTiles(queries, examples, options.queryRows, options.corpusRows);
    const total = plan.reduce((n, row) => n + row.length, 0);
    const lists = emptyLists(queries.length, Math.min(k, examples.length));
    let done = 0;
    let q0 = 0;
    for (const row of plan) {
      const merged = emptyTopK(row[0].queries.length, lists.k);
      for (const tile of row) {
        if (options.signal?.aborted) throw new AbortedError("the candidate search was cancelled");
        mergeTopK(merged, await runSearchTile(engine, matrix, tile, lists.k));
        options.onProgress?.({ phase: "candidates", method: "exact", step: "search", done: ++done, total, elapsedSeconds: (performance.now() - started) / 1000 });
      }
      storeLists(lists, indexRange(q0, merged.rows), merged);
      q0 += merged.rows;
    }
    return lists;
  } finally {
    if (!options.engine) await engine.release();
  }
}

function indexRange(start: number, count: number): ArrayLike<number> {
  const out = new Uint32Array(count);
  for (let k = 0; k < count; k++) out[k] = start + k;
  return out;
}
