import { createHash } from "node:crypto";
import { ConfigError } from "../../../common/src/mod.js";
import type { TileSpec } from "./tile-spec.js";

export type TileShape = {
  /** Example columns per pair tile: each column's prefix cache is computed once per tile. */
  columns: number;
  /** Targets per pair tile (and per baseline tile). */
  rows: number;
};

export const DEFAULT_TILE_SHAPE: TileShape = { columns: 8, rows: 256 };

export type DenseKernelRequest = {
  /** Identifies model, prompts and maximum length: part of every tile's key. */
  settingsKey: string;
  /** Per-sample content keys (16 bytes each) over the corpus the indices point into. */
  sampleKeys: Uint8Array;
  /** Global sample indices scored as targets (rows) and used as examples (columns). */
  targets: Uint32Array;
  examples: Uint32Array;
  shape?: TileShape;
  /**
   * Token count (x + y) of every sample and the most tokens one tile may carry: keeps tile
   * messages under the bus's payload limit whatever the sample lengths. Both or neither.
   */
  sampleTokenCounts?: Uint32Array;
  maxTileTokens?: number;
};

/** Candidate lists in one flat array: target t's examples are ids[ptr[t] .. ptr[t + 1]), sorted. */
export type CandidateTable = { ptr: Uint32Array; ids: Uint32Array };

export type SparseKernelRequest = DenseKernelRequest & {
  /** Each target's candidate examples (global indices, sorted), aligned with `targets`. */
  candidates: Uint32Array[] | CandidateTable;
};

/**
 * A kernel's tile plan held compactly (issue 8 item 3): block boundaries, the inverted candidate
 * lists (sparse) and each tile's 32-byte id, instead of a TileSpec object per tile. `tile(t)` makes
 * tile t on demand, equal in content and id to entry t of planDenseKernel / planSparseKernel, so
 * a job can publish tiles as it walks the plan.
 */
export type CompactPlan = {
  readonly count: number;
  /** Scored values: targets of baseline tiles plus pairs of pair tiles. */
  readonly values: number;
  tileId(t: number): string;
  tile(t: number): TileSpec;
  /** Bytes of the typed arrays the plan holds. */
  readonly bytes: number;
};

function checkShape(shape: TileShape): void {
  if (!(shape.columns >= 1 && shape.rows >= 1 && Number.isInteger(shape.columns) && Number.isInteger(shape.rows))) {
    throw new ConfigError(`tile shape must be positive integers, got ${shape.columns} columns x ${shape.rows} rows`);
  }
}

/**
 * Content key of a tile: settings, kind, and the sample keys of its columns and rows (and layout).
 * The bytes hashed are those of the first planner (one update per key there, one per section
 * here: the same SHA-256).
 */
class TileHasher {
  private scratch = new Uint8Array(1 << 16);

  constructor(private readonly settingsKey: string, private readonly sampleKeys: Uint8Array) {}

  digest(kind: string, columns: ArrayLike<number>, rows: ArrayLike<number>, rowPtr?: Uint32Array): Buffer {
    const h = createHash("sha256").update(`delift-tile/1\n${this.settingsKey}\n${kind}\n`);
    h.update(new Uint8Array(new Uint32Array([columns.length, rows.length]).buffer));
    h.update(this.gather(columns));
    if (rowPtr) h.update(new Uint8Array(rowPtr.buffer, rowPtr.byteOffset, rowPtr.byteLength));
    h.update(this.gather(rows));
    return h.digest();
  }

  private gather(indices: ArrayLike<number>): Uint8Array {
    const need = indices.length * 16;
    if (this.scratch.length < need) this.scratch = new Uint8Array(need);
    const keys = this.sampleKeys;
    for (let k = 0; k < indices.length; k++) {
      const at = indices[k] * 16;
      this.scratch.set(keys.subarray(at, at + 16), k * 16);
    }
    return this.scratch.subarray(0, need);
  }
}

/** Block starts over `indices` (consecutive, at most `size` samples and `maxTokens` tokens each); ends with indices.length. */
function blockStarts(indices: Uint32Array, size: number, tokens: Uint32Array | undefined, maxTokens: number): Uint32Array {
  const starts: number[] = [];
  let start = 0;
  let sum = 0;
  for (let at = 0; at < indices.length; at++) {
    const t = tokens ? tokens[indices[at]] : 0;
    if (at > start && (at - start >= size || sum + t > maxTokens)) {
      starts.push(start);
      start = at;
      sum = 0;
    }
    sum += t;
  }
  if (start < indices.length) starts.push(start);
  starts.push(indices.length);
  return Uint32Array.from(starts);
}

function hexAt(ids: Uint8Array, t: number): string {
  return Buffer.from(ids.buffer, ids.byteOffset + t * 32, 32).toString("hex");
}

/** Dense plan: baseline tiles of row blocks, then for each column block every row block. */
export function compactDensePlan(request: DenseKernelRequest): CompactPlan {
  const shape = request.shape ?? DEFAULT_TILE_SHAPE;
  checkShape(shape);
  const half = request.maxTileTokens !== undefined ? request.maxTileTokens / 2 : Infinity;
  const tokens = request.sampleTokenCounts;
  const rowStarts = blockStarts(request.targets, shape.rows, tokens, half);
  const colStarts = blockStarts(request.examples, shape.columns, tokens, half);
  const nRow = rowStarts.length - 1;
  const nCol = colStarts.length - 1;
  const count = nRow + nCol * nRow;
  const rowsOf = (b: number) => request.targets.slice(rowStarts[b], rowStarts[b + 1]);
  const colsOf = (b: number) => request.examples.slice(colStarts[b], colStarts[b + 1]);
  const hasher = new TileHasher(request.settingsKey, request.sampleKeys);
  const ids = new Uint8Array(count * 32);
  const empty = new Uint32Array(0);
  for (let b = 0; b < nRow; b++) ids.set(hasher.digest("baseline", empty, request.targets.subarray(rowStarts[b], rowStarts[b + 1])), b * 32);
  for (let c = 0; c < nCol; c++) {
    const cols = request.examples.subarray(colStarts[c], colStarts[c + 1]);
    for (let b = 0; b < nRow; b++) ids.set(hasher.digest("pairs", cols, request.targets.subarray(rowStarts[b], rowStarts[b + 1])), (nRow + c * nRow + b) * 32);
  }
  let values = request.targets.length;
  values += request.examples.length * request.targets.length;
  return {
    count,
    values,
    bytes: rowStarts.byteLength + colStarts.byteLength + ids.byteLength,
    tileId: (t) => hexAt(ids, t),
    tile: (t) => {
      if (t < nRow) return { kind: "baseline", id: hexAt(ids, t), targets: rowsOf(t) };
      const c = Math.floor((t - nRow) / nRow);
      return { kind: "pairs", id: hexAt(ids, t), columns: colsOf(c), rows: rowsOf((t - nRow) % nRow) };
    },
  };
}

/** rows(j) = the targets whose candidate list holds example j, in target order. */
export function invertCandidates(targets: Uint32Array, candidates: Uint32Array[] | CandidateTable, nSamples: number): { ptr: Uint32Array; rows: Uint32Array } {
  const lists = Array.isArray(candidates) ? null : candidates;
  const listOf = (t: number): Uint32Array => (lists ? lists.ids.subarray(lists.ptr[t], lists.ptr[t + 1]) : (candidates as Uint32Array[])[t]);
  const counts = new Uint32Array(nSamples + 1);
  for (let t = 0; t < targets.length; t++) for (const j of listOf(t)) counts[j + 1]++;
  for (let j = 0; j < nSamples; j++) counts[j + 1] += counts[j];
  const rows = new Uint32Array(counts[nSamples]);
  const fill = counts.slice(0, nSamples);
  for (let t = 0; t < targets.length; t++) for (const j of listOf(t)) rows[fill[j]++] = targets[t];
  return { ptr: counts, rows };
}

/**
 * Sparse plan (DESIGN.md §2): baseline tiles as in dense mode; pair tiles are runs of consecutive
 * example columns, each with the targets that have it as a candidate, cut at shape.columns x
 * shape.rows pairs (and the token budget). Holds the inverted lists (4 bytes a pair), the column
 * run boundaries and the ids.
 */
export function compactSparsePlan(request: SparseKernelRequest): CompactPlan {
  const shape = request.shape ?? DEFAULT_TILE_SHAPE;
  checkShape(shape);
  const nLists = Array.isArray(request.candidates) ? request.candidates.length : request.candidates.ptr.length - 1;
  if (nLists !== request.targets.length) throw new ConfigError("one candidate list per target is needed");
  const tokens = request.sampleTokenCounts;
  const maxTokens = request.maxTileTokens ?? Infinity;
  const rowStarts = blockStarts(request.targets, shape.rows, tokens, maxTokens / 2);
  const nRow = rowStarts.length - 1;
  const { ptr, rows } = invertCandidates(request.targets, request.candidates, request.sampleKeys.length / 16);
  const examples = request.examples;
  const budget = shape.columns * shape.rows;
  // Pair tile p covers example positions [runStarts[p], runStarts[p + 1]) (columns without rows skipped).
  const runStarts: number[] = [];
  let columns = 0;
  let pairs = 0;
  let tileTokens = 0;
  for (let e = 0; e < examples.length; e++) {
    const j = examples[e];
    const n = ptr[j + 1] - ptr[j];
    if (n === 0) continue;
    let t = tokens ? tokens[j] : 0;
    if (tokens) for (let k = ptr[j]; k < ptr[j + 1]; k++) t += tokens[rows[k]];
    if (columns === 0) runStarts.push(e);
    else if (pairs + n > budget || tileTokens + t > maxTokens) {
      runStarts.push(e);
      columns = 0;
      pairs = 0;
      tileTokens = 0;
    }
    columns++;
    pairs += n;
    tileTokens += t;
  }
  runStarts.push(examples.length);
  const runs = Uint32Array.from(runStarts);
  const nPair = runs.length - 1;
  const pairTile = (p: number): Extract<TileSpec, { kind: "pairs" }> & { id: "" } => {
    const cols: number[] = [];
    let total = 0;
    for (let e = runs[p]; e < runs[p + 1]; e++) {
      const j = examples[e];
      const n = ptr[j + 1] - ptr[j];
      if (n === 0) continue;
      cols.push(j);
      total += n;
    }
    const rowPtr = new Uint32Array(cols.length + 1);
    const all = new Uint32Array(total);
    cols.forEach((j, k) => {
      all.set(rows.subarray(ptr[j], ptr[j + 1]), rowPtr[k]);
      rowPtr[k + 1] = rowPtr[k] + ptr[j + 1] - ptr[j];
    });
    return { kind: "pairs", id: "", columns: Uint32Array.from(cols), rows: all, rowPtr };
  };
  const hasher = new TileHasher(request.settingsKey, request.sampleKeys);
  const ids = new Uint8Array((nRow + nPair) * 32);
  const empty = new Uint32Array(0);
  for (let b = 0; b < nRow; b++) ids.set(hasher.digest("baseline", empty, request.targets.subarray(rowStarts[b], rowStarts[b + 1])), b * 32);
  for (let p = 0; p < nPair; p++) {
    const tile = pairTile(p);
    ids.set(hasher.digest("pairs-sparse", tile.columns, tile.rows, tile.rowPtr), (nRow + p) * 32);
  }
  return {
    count: nRow + nPair,
    values: request.targets.length + rows.length,
    bytes: rowStarts.byteLength + ptr.byteLength + rows.byteLength + runs.byteLength + ids.byteLength,
    tileId: (t) => hexAt(ids, t),
    tile: (t) => {
      if (t < nRow) return { kind: "baseline", id: hexAt(ids, t), targets: request.targets.slice(rowStarts[t], rowStarts[t + 1]) };
      return { ...pairTile(t - nRow), id: hexAt(ids, t) };
    },
  };
}

/** Every tile of a compact plan, in plan order. */
export function materializePlan(plan: CompactPlan): TileSpec[] {
  return Array.from({ length: plan.count }, (_, t) => plan.tile(t));
}
