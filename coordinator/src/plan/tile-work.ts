import { selectSamples, type TileWork, type TokenizedCorpus } from "../../../common/src/mod.js";
import { columnRows, type TileSpec } from "./tile-spec.js";

/** Builds the self-contained work of a tile: its own token table and local sample positions. */
export function tileWork(tile: TileSpec, corpus: TokenizedCorpus): TileWork {
  const local = new Map<number, number>();
  const order: number[] = [];
  const slot = (g: number) => {
    let s = local.get(g);
    if (s === undefined) {
      s = order.length;
      local.set(g, s);
      order.push(g);
    }
    return s;
  };
  if (tile.kind === "baseline") {
    const targets = Uint32Array.from(tile.targets, slot);
    return { kind: "baseline", samples: selectSamples(corpus, order), targets };
  }
  if (!tile.rowPtr) {
    const rows = Uint32Array.from(tile.rows, slot);
    const columns = Array.from(tile.columns, (c) => ({ example: slot(c), rows }));
    return { kind: "pairs", samples: selectSamples(corpus, order), columns };
  }
  const columns = Array.from(tile.columns, (c, k) => ({ example: slot(c), rows: Uint32Array.from(columnRows(tile, k), slot) }));
  return { kind: "pairs", samples: selectSamples(corpus, order), columns };
}
