/**
 * A planned tile, as the coordinator keeps it: sample positions are global (indices into the
 * job's corpus). `id` is a content key over the model, prompt settings and the token ids of
 * every sample in the tile, so the same work gets the same id in any job.
 *
 * Pair tiles are a block (dense mode: every column scores the same `rows`) or, when `rowPtr` is
 * present, column-compressed (sparse mode: column c scores rows[rowPtr[c] .. rowPtr[c + 1])).
 */
export type TileSpec =
  | { kind: "baseline"; id: string; targets: Uint32Array }
  | { kind: "pairs"; id: string; columns: Uint32Array; rows: Uint32Array; rowPtr?: Uint32Array };

export function tilePairCount(tile: TileSpec): number {
  if (tile.kind === "baseline") return tile.targets.length;
  return tile.rowPtr ? tile.rows.length : tile.columns.length * tile.rows.length;
}

/** The target rows of column k of a pair tile. */
export function columnRows(tile: Extract<TileSpec, { kind: "pairs" }>, k: number): Uint32Array {
  return tile.rowPtr ? tile.rows.subarray(tile.rowPtr[k], tile.rowPtr[k + 1]) : tile.rows;
}
