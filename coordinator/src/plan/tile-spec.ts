/**
 * A planned tile, as the coordinator keeps it: sample positions are global (indices into the
 * job's corpus). `id` is a content key over the model, prompt settings and the token ids of
 * every sample in the tile, so the same work gets the same id in any job.
 */
export type TileSpec =
  | { kind: "baseline"; id: string; targets: Uint32Array }
  | { kind: "pairs"; id: string; columns: Uint32Array; rows: Uint32Array };

export function tilePairCount(tile: TileSpec): number {
  return tile.kind === "baseline" ? tile.targets.length : tile.columns.length * tile.rows.length;
}
