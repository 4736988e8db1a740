import { type IndexedTileWork, resolveTileWork, sampleTokens, type TileWork, type TokenizedCorpus } from "../../../common/src/mod.js";
import { columnRows, type TileSpec } from "./tile-spec.js";

/** What a tile message carries (issue 8 item 4): the tile's global sample indices, no tokens. */
export function indexedTileWork(tile: TileSpec): IndexedTileWork {
  if (tile.kind === "baseline") return { kind: "baseline", targets: tile.targets };
  if (!tile.rowPtr) return { kind: "pairs", columns: Array.from(tile.columns, (example) => ({ example, rows: tile.rows })) };
  return { kind: "pairs", columns: Array.from(tile.columns, (example, k) => ({ example, rows: columnRows(tile, k) })) };
}

/** The self-contained work of a tile (its own token table and local positions), as a worker resolves it. */
export function tileWork(tile: TileSpec, corpus: TokenizedCorpus): TileWork {
  return resolveTileWork(indexedTileWork(tile), (i) => sampleTokens(corpus, i));
}
