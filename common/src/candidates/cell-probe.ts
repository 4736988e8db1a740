import { AbortedError, ConfigError } from "../errors.js";
import { gatherRows, type EmbeddingMatrix } from "../embeddings/embedding-matrix.js";
import { Xoshiro128 } from "../selection/prng.js";
import type { SearchOptions } from "./exact-search.js";
import { KnnEngine } from "./knn-engine.js";
import { emptyLists, runSearchTile, storeLists, QUERY_BLOCK, type SearchLists, type SearchTile } from "./search-tile.js";
import { EMPTY, emptyTopK, mergeTopK, type TopKLists } from "./top-k.js";

/** Queries whose lists are built at a time (their top-k lists are held while the cells are searched). */
const QUERY_CHUNK = 65_536;

/**
 * Cell-probe search (an inverted file, as faiss's IVF-Flat): spherical k-means cuts the examples
 * into cells; each query is searched exactly among the members of the cells whose centroids are
 * nearest to it. The tiles are per cell: the queries (of a chunk) that probe the cell against the
 * cell's members, dense GEMM + TopK that workers can run; a query's lists merge over its probes.
 *
 * The number of probes is chosen by measurement unless given: exact top-k of a seeded sample of
 * queries, and the least probe count whose recall on that sample reaches `targetRecall` (0.97 by
 * default: two standard errors of a 256-query sample above the 0.95 the issue asks for).
 */
export type CellProbeOptions = SearchOptions & {
  seed?: number;
  /** Cells; default about 2 x sqrt(examples). */
  cells?: number;
  /** Examples k-means trains on; default 64 per cell. */
  trainPoints?: number;
  iterations?: number;
  /** Probed cells per query, or "auto" (default) for the smallest count that meets targetRecall on a sample. */
  probes?: number | "auto";
  targetRecall?: number;
  sampleQueries?: number;
};

export type CellProbeResult = {
  lists: SearchLists;
  cells: number;
  probes: number;
  /** Recall@k of the sample against exact search with `probes` (null when probes were given). */
  sampledRecall: number | null;
  /** Average examples searched per query, as a fraction of all examples. */
  searchedFraction: number;
  seconds: { train: number; assign: number; tune: number; search: number };
};

export const DEFAULT_TARGET_RECALL = 0.97;

export async function cellProbeSearch(matrix: EmbeddingMatrix, queries: Uint32Array, examples: Uint32Array, k: number, options: CellProbeOptions = {}): Promise<CellProbeResult> {
  const engine = options.engine ?? (await KnnEngine.create({ device: options.device, threads: options.threads }));
  const started = performance.now();
  const lap = (() => {
    let t = performance.now();
    return () => {
      const now = performance.now();
      const s = (now - t) / 1000;
      t = now;
      return s;
    };
  })();
  const progress = (step: string, done: number, total: number) =>
    options.onProgress?.({ phase: "candidates", method: "cells", step, done, total, elapsedSeconds: (performance.now() - started) / 1000 });
  const check = () => {
    if (options.signal?.aborted) throw new AbortedError("the candidate search was cancelled");
  };
  try {
    const kk = Math.min(k, examples.length);
    const nCells = Math.max(1, Math.min(options.cells ?? Math.round(2 * Math.sqrt(examples.length)), examples.length, 1 << 16));
    const seed = options.seed ?? 0;
    progress("cells", 0, 1);
    const centroids = await trainCentroids(engine, matrix, examples, nCells, options.trainPoints ?? 64 * nCells, options.iterations ?? 10, seed, check);
    const train = lap();
    progress("cells", 1, 1);
    progress("assign", 0, 1);
    const cellOf = await nearestCells(engine, matrix, examples, centroids, nCells, check);
    const cells = cellLists(cellOf, examples, nCells);
    const assign = lap();

    let probes: number;
    let sampledRecall: number | null = null;
    progress("assign", 1, 1);
    if (options.probes === undefined || options.probes === "auto") {
      progress("tune", 0, 1);
      const tuned = await tuneProbes(engine, matrix, queries, examples, kk, centroids, nCells, cellOf, options.targetRecall ?? DEFAULT_TARGET_RECALL, options.sampleQueries ?? 256, seed);
      probes = tuned.probes;
      sampledRecall = tuned.recall;
      progress("tune", 1, 1);
    } else {
      if (!(Number.isInteger(options.probes) && options.probes >= 1)) throw new ConfigError(`probes must be a positive integer, got ${options.probes}`);
      probes = Math.min(options.probes, nCells);
    }
    const tune = lap();

    // Queries in chunks, so the per-query top-k lists being merged stay bounded (chunk x k).
    const lists = emptyLists(queries.length, kk);
    let searched = 0;
    const chunks = Math.ceil(queries.length / QUERY_CHUNK);
    for (let q0 = 0, chunk = 0; q0 < queries.length; q0 += QUERY_CHUNK, chunk++) {
      const positions = Uint32Array.from({ length: Math.min(QUERY_CHUNK, queries.length - q0) }, (_, t) => q0 + t);
      const chunkQueries = Uint32Array.from(positions, (t) => queries[t]);
      const probing = await probeLists(engine, matrix, chunkQueries, centroids, nCells, cells, probes, kk, check);
      const merged = emptyTopK(chunkQueries.length, kk);
      for (let c = 0; c < nCells; c++) {
        check();
        const local = probing.members.subarray(probing.ptr[c], probing.ptr[c + 1]);
        const corpus = cells.members.subarray(cells.ptr[c], cells.ptr[c + 1]);
        if (local.length === 0 || corpus.length === 0) continue;
        const tile: SearchTile = { queries: Uint32Array.from(local, (t) => chunkQueries[t]), corpus };
        scatterMerge(merged, local, await runSearchTile(engine, matrix, tile, kk));
        searched += local.length * corpus.length;
        progress("search", chunk * nCells + c + 1, chunks * nCells);
      }
      storeLists(lists, positions, merged);
      progress("search", (chunk + 1) * nCells, chunks * nCells);
    }
    const search = lap();
    return { lists, cells: nCells, probes, sampledRecall, searchedFraction: searched / Math.max(1, queries.length * examples.length), seconds: { train, assign, tune, search } };
  } finally {
    if (!options.engine) await engine.release();
  }
}

/**
 * Cell-probe search cut into its tiles without running them (search tiles for workers): the
 * k-means, the cell assignment and the probe tuning run here, as cellProbeSearch runs them; then,
 * per query chunk, each probed cell's tile (queries of the chunk that probe it x the cell's
 * members) with the chunk positions of its queries. Merging each chunk's tile lists in cell order
 * (mergeCellTile) gives cellProbeSearch's lists byte for byte.
 */
export type CellProbePlan = {
  k: number;
  cells: number;
  probes: number;
  sampledRecall: number | null;
  searchedFraction: number;
  chunks: { positions: Uint32Array; tiles: { local: Uint32Array; tile: SearchTile }[] }[];
};

export async function planCellProbeTiles(matrix: EmbeddingMatrix, queries: Uint32Array, examples: Uint32Array, k: number, options: CellProbeOptions = {}): Promise<CellProbePlan> {
  const engine = options.engine ?? (await KnnEngine.create({ device: options.device, threads: options.threads }));
  const check = () => {
    if (options.signal?.aborted) throw new AbortedError("the candidate search was cancelled");
  };
  try {
    const kk = Math.min(k, examples.length);
    const nCells = Math.max(1, Math.min(options.cells ?? Math.round(2 * Math.sqrt(examples.length)), examples.length, 1 << 16));
    const seed = options.seed ?? 0;
    const centroids = await trainCentroids(engine, matrix, examples, nCells, options.trainPoints ?? 64 * nCells, options.iterations ?? 10, seed, check);
    const cellOf = await nearestCells(engine, matrix, examples, centroids, nCells, check);
    const cells = cellLists(cellOf, examples, nCells);
    let probes: number;
    let sampledRecall: number | null = null;
    if (options.probes === undefined || options.probes === "auto") {
      const tuned = await tuneProbes(engine, matrix, queries, examples, kk, centroids, nCells, cellOf, options.targetRecall ?? DEFAULT_TARGET_RECALL, options.sampleQueries ?? 256, seed);
      probes = tuned.probes;
      sampledRecall = tuned.recall;
    } else {
      if (!(Number.isInteger(options.probes) && options.probes >= 1)) throw new ConfigError(`probes must be a positive integer, got ${options.probes}`);
      probes = Math.min(options.probes, nCells);
    }
    const chunks: CellProbePlan["chunks"] = [];
    let searched = 0;
    for (let q0 = 0; q0 < queries.length; q0 += QUERY_CHUNK) {
      const positions = Uint32Array.from({ length: Math.min(QUERY_CHUNK, queries.length - q0) }, (_, t) => q0 + t);
      const chunkQueries = Uint32Array.from(positions, (t) => queries[t]);
      const probing = await probeLists(engine, matrix, chunkQueries, centroids, nCells, cells, probes, kk, check);
      const tiles: CellProbePlan["chunks"][number]["tiles"] = [];
      for (let c = 0; c < nCells; c++) {
        const local = probing.members.slice(probing.ptr[c], probing.ptr[c + 1]);
        const corpus = cells.members.slice(cells.ptr[c], cells.ptr[c + 1]);
        if (local.length === 0 || corpus.length === 0) continue;
        tiles.push({ local, tile: { queries: Uint32Array.from(local, (t) => chunkQueries[t]), corpus } });
        searched += local.length * corpus.length;
      }
      chunks.push({ positions, tiles });
    }
    return { k: kk, cells: nCells, probes, sampledRecall, searchedFraction: searched / Math.max(1, queries.length * examples.length), chunks };
  } finally {
    if (!options.engine) await engine.release();
  }
}

/** Merges one cell tile's lists (row r = chunk query local[r]) into its chunk's lists, as cellProbeSearch does. */
export function mergeCellTile(into: TopKLists, local: Uint32Array, part: TopKLists): void {
  scatterMerge(into, local, part);
}

/** Spherical k-means (Lloyd) on a seeded sample of the examples; centroids are unit rows. */
async function trainCentroids(engine: KnnEngine, matrix: EmbeddingMatrix, examples: Uint32Array, nCells: number, trainPoints: number, iterations: number, seed: number, check: () => void): Promise<Float32Array> {
  const dim = matrix.dim;
  const rng = new Xoshiro128((seed ^ 0x6b6d) >>> 0);
  const pool = examples.slice();
  const take = Math.min(pool.length, Math.max(nCells, trainPoints));
  for (let i = 0; i < take; i++) {
    const j = i + rng.nextBelow(pool.length - i);
    const t = pool[i];
    pool[i] = pool[j];
    pool[j] = t;
  }
  const sample = pool.subarray(0, take).slice().sort();
  const points = gatherRows(matrix, sample);
  // Initial centroids: nCells distinct sample points, in a seeded order.
  const centroids = new Float32Array(nCells * dim);
  const order = Uint32Array.from({ length: take }, (_, i) => i);
  for (let i = 0; i < nCells; i++) {
    const j = i + rng.nextBelow(take - i);
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
    centroids.set(points.subarray(order[i] * dim, order[i] * dim + dim), i * dim);
  }
  const sums = new Float64Array(nCells * dim);
  const counts = new Uint32Array(nCells);
  const ids = Uint32Array.from({ length: nCells }, (_, c) => c);
  for (let it = 0; it < iterations; it++) {
    check();
    sums.fill(0);
    counts.fill(0);
    for (let p0 = 0; p0 < take; p0 += QUERY_BLOCK) {
      const rows = Math.min(QUERY_BLOCK, take - p0);
      const best = await engine.topK(points.subarray(p0 * dim, (p0 + rows) * dim), rows, centroids, nCells, dim, 1, ids);
      for (let r = 0; r < rows; r++) {
        const c = best.ids[r];
        counts[c]++;
        const base = (p0 + r) * dim;
        for (let d = 0; d < dim; d++) sums[c * dim + d] += points[base + d];
      }
    }
    for (let c = 0; c < nCells; c++) {
      if (counts[c] === 0) {
        // An empty cell restarts at a random sample point.
        const p = rng.nextBelow(take);
        centroids.set(points.subarray(p * dim, p * dim + dim), c * dim);
        continue;
      }
      let norm = 0;
      for (let d = 0; d < dim; d++) norm += sums[c * dim + d] ** 2;
      const inv = norm > 0 ? 1 / Math.sqrt(norm) : 0;
      for (let d = 0; d < dim; d++) centroids[c * dim + d] = sums[c * dim + d] * inv;
    }
  }
  return centroids;
}

/** The nearest centroid of each row (ties to the lower cell). */
async function nearestCells(engine: KnnEngine, matrix: EmbeddingMatrix, rows: Uint32Array, centroids: Float32Array, nCells: number, check: () => void): Promise<Uint32Array> {
  const dim = matrix.dim;
  const out = new Uint32Array(rows.length);
  const block = new Float32Array(QUERY_BLOCK * dim);
  const ids = Uint32Array.from({ length: nCells }, (_, c) => c);
  for (let r0 = 0; r0 < rows.length; r0 += QUERY_BLOCK) {
    check();
    const part = rows.subarray(r0, Math.min(rows.length, r0 + QUERY_BLOCK));
    gatherRows(matrix, part, block);
    const best = await engine.topK(block, part.length, centroids, nCells, dim, 1, ids);
    out.set(best.ids.subarray(0, part.length), r0);
  }
  return out;
}

/** Members of each cell (CSR), in the order of `items`. */
function cellLists(cellOf: Uint32Array, items: Uint32Array, nCells: number): { ptr: Uint32Array; members: Uint32Array } {
  const ptr = new Uint32Array(nCells + 1);
  for (const c of cellOf) ptr[c + 1]++;
  for (let c = 0; c < nCells; c++) ptr[c + 1] += ptr[c];
  const fill = ptr.slice(0, nCells);
  const members = new Uint32Array(items.length);
  for (let i = 0; i < items.length; i++) members[fill[cellOf[i]]++] = items[i];
  return { ptr, members };
}

/**
 * Which queries probe each cell (CSR over cells, query positions ascending): each query's `probes`
 * nearest cells, more where those hold fewer than k examples (so every list can fill).
 */
async function probeLists(engine: KnnEngine, matrix: EmbeddingMatrix, chunkQueries: Uint32Array, centroids: Float32Array, nCells: number, cells: { ptr: Uint32Array }, probes: number, k: number, check: () => void): Promise<{ ptr: Uint32Array; members: Uint32Array }> {
  const dim = matrix.dim;
  const ids = Uint32Array.from({ length: nCells }, (_, c) => c);
  // Enough cells that the smallest `want` of them surely hold k examples.
  const sizes = Array.from({ length: nCells }, (_, c) => cells.ptr[c + 1] - cells.ptr[c]).sort((a, b) => a - b);
  let want = probes;
  for (let held = sizes.slice(0, want).reduce((a, b) => a + b, 0); held < k && want < nCells; want++) held += sizes[want];
  const pairs: number[][] = Array.from({ length: nCells }, () => []);
  const block = new Float32Array(Math.min(QUERY_BLOCK, chunkQueries.length) * dim);
  for (let r0 = 0; r0 < chunkQueries.length; r0 += QUERY_BLOCK) {
    check();
    const part = chunkQueries.subarray(r0, Math.min(chunkQueries.length, r0 + QUERY_BLOCK));
    gatherRows(matrix, part, block);
    const best = await engine.topK(block, part.length, centroids, nCells, dim, want, ids);
    for (let r = 0; r < part.length; r++) for (let t = 0; t < want; t++) pairs[best.ids[r * want + t]].push(r0 + r);
  }
  const ptr = new Uint32Array(nCells + 1);
  for (let c = 0; c < nCells; c++) ptr[c + 1] = ptr[c] + pairs[c].length;
  const members = new Uint32Array(ptr[nCells]);
  for (let c = 0; c < nCells; c++) members.set(pairs[c], ptr[c]);
  return { ptr, members };
}

/** Merges a tile's lists (row r = chunk query local[r]) into the chunk's lists. */
function scatterMerge(into: TopKLists, local: Uint32Array, part: TopKLists): void {
  const k = into.k;
  for (let r = 0; r < local.length; r++) {
    const at = local[r] * k;
    const view: TopKLists = { rows: 1, k, scores: into.scores.subarray(at, at + k), ids: into.ids.subarray(at, at + k) };
    mergeTopK(view, { rows: 1, k: part.k, scores: part.scores.subarray(r * part.k, (r + 1) * part.k), ids: part.ids.subarray(r * part.k, (r + 1) * part.k) });
  }
}

/** The least probe count whose recall on a seeded sample of queries meets the target. */
async function tuneProbes(
  engine: KnnEngine,
  matrix: EmbeddingMatrix,
  queries: Uint32Array,
  examples: Uint32Array,
  k: number,
  centroids: Float32Array,
  nCells: number,
  cellOfExample: Uint32Array,
  target: number,
  sampleSize: number,
  seed: number,
): Promise<{ probes: number; recall: number }> {
  const rng = new Xoshiro128((seed ^ 0x7a11) >>> 0);
  const picks = new Set<number>();
  const want = Math.min(sampleSize, queries.length);
  while (picks.size < want) picks.add(rng.nextBelow(queries.length));
  const sample = Uint32Array.from([...picks].sort((a, b) => a - b), (t) => queries[t]);
  const exact = await runSearchTile(engine, matrix, { queries: sample, corpus: examples }, k);
  const maxProbes = Math.min(nCells, 256);
  const ranking = await engine.topK(gatherRows(matrix, sample), sample.length, centroids, nCells, matrix.dim, maxProbes, Uint32Array.from({ length: nCells }, (_, c) => c));
  // The cell of each example, by row of the matrix.
  const cellOfRow = new Uint32Array(matrix.count).fill(EMPTY);
  examples.forEach((g, i) => (cellOfRow[g] = cellOfExample[i]));
  // hits[p] = exact neighbours found in the query's first p + 1 probed cells, over the sample.
  const hits = new Float64Array(maxProbes);
  let total = 0;
  for (let r = 0; r < sample.length; r++) {
    const rank = new Int32Array(nCells).fill(-1);
    for (let t = 0; t < maxProbes; t++) rank[ranking.ids[r * maxProbes + t]] = t;
    for (let t = 0; t < k; t++) {
      const id = exact.ids[r * k + t];
      if (id === EMPTY) continue;
      total++;
      const cr = rank[cellOfRow[id]];
      if (cr >= 0) hits[cr]++;
    }
  }
  for (let p = 1; p < maxProbes; p++) hits[p] += hits[p - 1];
  // The least probes that reach the target on the sample (search cost is linear in probes).
  let probes = 1;
  while (probes < maxProbes && hits[probes - 1] / Math.max(1, total) < target) probes++;
  return { probes, recall: hits[probes - 1] / Math.max(1, total) };
}
