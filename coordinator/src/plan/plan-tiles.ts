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

/**
 * Cuts the kernel targets x examples into tiles: baseline tiles of `rows` targets and pair
 * tiles of `columns` examples x `rows` targets, in data order. New samples appended to a data
 * set leave the old blocks (and so their content keys) unchanged, which is what lets a later
 * job reuse stored tiles.
 */
export function planDenseKernel(request: DenseKernelRequest): TileSpec[] {
  const shape = request.shape ?? DEFAULT_TILE_SHAPE;
  if (!(shape.columns >= 1 && shape.rows >= 1 && Number.isInteger(shape.columns) && Number.isInteger(shape.rows))) {
    throw new ConfigError(`tile shape must be positive integers, got ${shape.columns} columns x ${shape.rows} rows`);
  }
  const key = (kind: string, columns: Uint32Array, rows: Uint32Array) => {
    const h = createHash("sha256").update(`delift-tile/1\n${request.settingsKey}\n${kind}\n`);
    h.update(new Uint8Array(new Uint32Array([columns.length, rows.length]).buffer));
    for (const c of columns) h.update(request.sampleKeys.subarray(c * 16, c * 16 + 16));
    for (const r of rows) h.update(request.sampleKeys.subarray(r * 16, r * 16 + 16));
    return h.digest("hex");
  };
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
