import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import usearch from "usearch";
import { AbortedError } from "../errors.js";
import { gatherRows, type EmbeddingMatrix } from "../embeddings/embedding-matrix.js";
import type { SearchOptions } from "./exact-search.js";
import { emptyLists, type SearchLists } from "./search-tile.js";

/**
 * Approximate search with an HNSW graph from usearch (prebuilt N-API binaries in the npm package:
 * nothing is downloaded or compiled at install or run time). Inner product on normalised rows =
 * cosine. Built with one thread it is deterministic (insertion order and usearch's fixed level
 * generator); built with several, the graph depends on thread timing and so may the lists.
 * A single-process index: it does not cut into worker tiles the way the exact and cell-probe
 * searches do (compared in bench/scale, chosen only by measurement).
 */
export type HnswOptions = SearchOptions & {
  connectivity?: number;
  expansionAdd?: number;
  expansionSearch?: number;
  quantization?: "f32" | "f16" | "i8";
  /** Threads for building and searching; 1 (the default) builds deterministically. */
  buildThreads?: number;
  searchThreads?: number;
};

export type HnswResult = { lists: SearchLists; seconds: { build: number; search: number } };

const BATCH = 8192;

export async function hnswSearch(matrix: EmbeddingMatrix, queries: Uint32Array, examples: Uint32Array, k: number, options: HnswOptions = {}): Promise<HnswResult> {
  const started = performance.now();
  const kk = Math.min(k, examples.length);
  const config = {
    dimensions: matrix.dim,
    metric: "ip" as never,
    quantization: (options.quantization ?? "f16") as never,
    connectivity: options.connectivity ?? 16,
    expansion_add: options.expansionAdd ?? 128,
    expansion_search: Math.max(options.expansionSearch ?? 2 * kk, kk),
    multi: false,
  };
  let index = new usearch.Index(config);
  const buildThreads = options.buildThreads ?? 1;
  const searchThreads = options.searchThreads ?? availableParallelism();
  const progress = (step: string, done: number, total: number) =>
    options.onProgress?.({ phase: "candidates", method: "hnsw", step, done, total, elapsedSeconds: (performance.now() - started) / 1000 });
  const block = new Float32Array(BATCH * matrix.dim);
  for (let a = 0; a < examples.length; ) {
    if (options.signal?.aborted) throw new AbortedError("the candidate search was cancelled");
    const part = examples.subarray(a, Math.min(examples.length, a + BATCH));
    gatherRows(matrix, part, block);
    index.add(BigUint64Array.from(part, (g) => BigInt(g)), block.subarray(0, part.length * matrix.dim), buildThreads);
    a += part.length;
    progress("build", a + part.length, examples.length);
  }
  if (searchThreads > buildThreads) {
    // usearch keeps search contexts for the threads of the last add; a loaded index has them for
    // every core. Saving and loading the (single-threaded, deterministic) graph changes nothing else.
    const dir = mkdtempSync(join(tmpdir(), "delift-hnsw-"));
    try {
      index.save(join(dir, "index.usearch"));
      index = new usearch.Index(config);
      index.load(join(dir, "index.usearch"));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const built = performance.now();
  const lists = emptyLists(queries.length, kk);
  for (let q0 = 0; q0 < queries.length; q0 += BATCH) {
    if (options.signal?.aborted) throw new AbortedError("the candidate search was cancelled");
    const part = queries.subarray(q0, Math.min(queries.length, q0 + BATCH));
    gatherRows(matrix, part, block);
    const found = index.search(block.subarray(0, part.length * matrix.dim), kk, searchThreads) as unknown as { keys: BigUint64Array; distances: Float32Array; counts: BigUint64Array };
    for (let r = 0; r < part.length; r++) {
      const count = Number(found.counts[r]);
      // Best first; equal distances to the lower id, so the lists do not depend on the graph's visiting order for ties.
      const order = Array.from({ length: count }, (_, t) => r * kk + t).sort((x, y) => found.distances[x] - found.distances[y] || Number(found.keys[x] - found.keys[y]));
      order.forEach((at, t) => (lists.ids[(q0 + r) * kk + t] = Number(found.keys[at])));
    }
    progress("search", q0 + part.length, queries.length);
  }
  const done = performance.now();
  return { lists, seconds: { build: (built - started) / 1000, search: (done - built) / 1000 } };
}
