import { createHash } from "node:crypto";
import { ConfigError } from "../../../common/src/mod.js";
import type { TileSpec } from "./tile-spec.js";
import { invertCandidates } from "./candidates.js";

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

/**
 * Cuts the kernel targets x examples into tiles: baseline tiles of `rows` targets and pair
 * tiles of `columns` examples x `rows` targets, in data order. New samples appended to a data
 * set leave the old blocks (and so their content keys) unchanged, which is what lets a later
 * job reuse stored tiles.
 */
export function planDenseKernel(request: DenseKernelRequest): TileSpec[] {
  const shape = request.shape ?? DEFAULT_TILE_SHAPE;
  checkShape(shape);
  const key = tileKey(request.settingsKey, request.sampleKeys);
  const tiles: TileSpec[] = [];
  const half = request.maxTileTokens !== undefined ? request.maxTileTokens / 2 : Infinity;
  const tokens = request.sampleTokenCounts;
  const rowBlocks = blocks(request.targets, shape.rows, tokens, half);
  for (const rows of rowBlocks) tiles.push({ kind: "baseline", id: key("baseline", new Uint32Array(0), rows), targets: rows });
  for (const columns of blocks(request.examples, shape.columns, tokens, half)) {
    for (const rows of rowBlocks) tiles.push({ kind: "pairs", id: key("pairs", columns, rows), columns, rows });
  }
  return tiles;
}

export type SparseKernelRequest = DenseKernelRequest & {
  /** Each target's candidate examples (global indices, sorted), aligned with `targets`. */
  candidates: Uint32Array[];
};

/**
 * Sparse mode (DESIGN.md §2): each target is scored only against its candidates. Baseline tiles
 * as in dense mode; pair tiles are runs of consecutive example columns, each with the targets that
 * have it as a candidate, cut at shape.columns x shape.rows pairs (and the token budget).
 */
export function planSparseKernel(request: SparseKernelRequest): TileSpec[] {
  const shape = request.shape ?? DEFAULT_TILE_SHAPE;
  checkShape(shape);
  if (request.candidates.length !== request.targets.length) throw new ConfigError("one candidate list per target is needed");
  const key = tileKey(request.settingsKey, request.sampleKeys);
  const tokens = request.sampleTokenCounts;
  const maxTokens = request.maxTileTokens ?? Infinity;
  const tiles: TileSpec[] = [];
  for (const rows of blocks(request.targets, shape.rows, tokens, maxTokens / 2)) tiles.push({ kind: "baseline", id: key("baseline", new Uint32Array(0), rows), targets: rows });

  const { ptr, rows } = invertCandidates(request.targets, request.candidates, request.sampleKeys.length / 16);
  const budget = shape.columns * shape.rows;
  let columns: number[] = [];
  let parts: Uint32Array[] = [];
  let pairs = 0;
  let tileTokens = 0;
  const flush = () => {
    if (columns.length === 0) return;
    const rowPtr = new Uint32Array(columns.length + 1);
    parts.forEach((p, k) => (rowPtr[k + 1] = rowPtr[k] + p.length));
    const all = new Uint32Array(pairs);
    parts.forEach((p, k) => all.set(p, rowPtr[k]));
    const cols = Uint32Array.from(columns);
    tiles.push({ kind: "pairs", id: key("pairs-sparse", cols, all, rowPtr), columns: cols, rows: all, rowPtr });
    columns = [];
    parts = [];
    pairs = 0;
    tileTokens = 0;
  };
  for (const j of request.examples) {
    const r = rows.subarray(ptr[j], ptr[j + 1]);
    if (r.length === 0) continue;
    let t = tokens ? tokens[j] : 0;
    if (tokens) for (const i of r) t += tokens[i];
    if (columns.length > 0 && (pairs + r.length > budget || tileTokens + t > maxTokens)) flush();
    columns.push(j);
    parts.push(r);
    pairs += r.length;
    tileTokens += t;
  }
  flush();
  return tiles;
}

function checkShape(shape: TileShape): void {
  if (!(shape.columns >= 1 && shape.rows >= 1 && Number.isInteger(shape.columns) && Number.isInteger(shape.rows))) {
    throw new ConfigError(`tile shape must be positive integers, got ${shape.columns} columns x ${shape.rows} rows`);
  }
}

/** Content key of a tile: settings, kind, and the sample keys of its columns and rows (and layout). */
function tileKey(settingsKey: string, sampleKeys: Uint8Array) {
  return (kind: string, columns: Uint32Array, rows: Uint32Array, rowPtr?: Uint32Array): string => {
    const h = createHash("sha256").update(`delift-tile/1\n${settingsKey}\n${kind}\n`);
    h.update(new Uint8Array(new Uint32Array([columns.length, rows.length]).buffer));
    for (const c of columns) h.update(sampleKeys.subarray(c * 16, c * 16 + 16));
    if (rowPtr) h.update(new Uint8Array(rowPtr.buffer, rowPtr.byteOffset, rowPtr.byteLength));
    for (const r of rows) h.update(sampleKeys.subarray(r * 16, r * 16 + 16));
    return h.digest("hex");
  };
}

/** Consecutive blocks of at most `size` samples and (when counts are given) `maxTokens` tokens. */
function blocks(indices: Uint32Array, size: number, tokens: Uint32Array | undefined, maxTokens: number): Uint32Array[] {
  const out: Uint32Array[] = [];
  let start = 0;
  let sum = 0;
  for (let at = 0; at < indices.length; at++) {
    const t = tokens ? tokens[indices[at]] : 0;
    if (at > start && (at - start >= size || sum + t > maxTokens)) {
      out.push(indices.slice(start, at));
      start = at;
      sum = 0;
    }
    sum += t;
  }
  if (start < indices.length) out.push(indices.slice(start));
  return out;
}
