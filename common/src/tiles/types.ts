import { packPieces, type TokenizedCorpus } from "../data/tokenized-corpus.js";
import type { SampleTokens } from "../prompt/compose.js";

/**
 * A tile as a worker computes it (DESIGN.md §3), resolved: samples are referenced by their
 * position in the tile's own token table. On the wire a tile carries global sample indices
 * (`IndexedTileWork`); the worker resolves them against the job's corpus (`resolveTileWork`).
 *
 * - pairs: for each column, the example sample and the target samples scored with it (P1);
 *   results come back column by column, rows in the order given.
 * - baseline: P0 distances of the given targets.
 */
export type PairTileWork = {
  kind: "pairs";
  samples: TokenizedCorpus;
  columns: { example: number; rows: Uint32Array }[];
};

export type BaselineTileWork = {
  kind: "baseline";
  samples: TokenizedCorpus;
  targets: Uint32Array;
};

export type TileWork = PairTileWork | BaselineTileWork;

/** A tile as it travels (issue 8 item 4): global sample indices into the job's corpus, no tokens. */
export type IndexedTileWork =
  | { kind: "pairs"; columns: { example: number; rows: Uint32Array }[] }
  | { kind: "baseline"; targets: Uint32Array };

/**
 * The self-contained work of an indexed tile: a token table of the samples it names, in first-use
 * order (baseline targets; pairs column by column, example then rows), and local positions. The
 * same table and positions the coordinator built for the self-contained tiles of before, so the
 * engine sees the same prompts and gives the same bytes.
 */
export function resolveTileWork(work: IndexedTileWork, sample: (i: number) => SampleTokens): TileWork {
  const local = new Map<number, number>();
  const pieces: ArrayLike<number>[] = [];
  let total = 0;
  const slot = (g: number) => {
    let s = local.get(g);
    if (s === undefined) {
      s = local.size;
      local.set(g, s);
      const t = sample(g);
      pieces.push(t.x, t.y);
      total += t.x.length + t.y.length;
    }
    return s;
  };
  if (work.kind === "baseline") {
    const targets = Uint32Array.from(work.targets, slot);
    return { kind: "baseline", samples: packPieces(pieces, total), targets };
  }
  const first = work.columns[0]?.rows;
  if (first && work.columns.every((c) => c.rows === first)) {
    // A block (dense mode): one shared row list, its samples first, as the coordinator laid them out.
    const rows = Uint32Array.from(first, slot);
    const columns = work.columns.map((c) => ({ example: slot(c.example), rows }));
    return { kind: "pairs", samples: packPieces(pieces, total), columns };
  }
  const columns = work.columns.map((c) => ({ example: slot(c.example), rows: Uint32Array.from(c.rows, slot) }));
  return { kind: "pairs", samples: packPieces(pieces, total), columns };
}

/** What a worker returns for a tile: one distance d per scored (example, target) or target. */
export type TileOutput = {
  distances: Float32Array;
  /** How many of the tile's prompts were left-truncated to the maximum length. */
  truncated: number;
};

export function tileValueCount(work: TileWork | IndexedTileWork): number {
  if (work.kind === "baseline") return work.targets.length;
  let n = 0;
  for (const c of work.columns) n += c.rows.length;
  return n;
}

/** How a worker batches a tile's prompts into model runs; part of every job's spec. */
export type BatchLimits = {
  /** Most sequences in one model run. */
  maxBatch: number;
  /** Most (padded) tokens in one run: bounds the logits memory, whatever n is. */
  maxTokens: number;
  /**
   * What one extra model run costs, in padded tokens: small on CPU (runs are cheap, padding is
   * not), larger on a GPU (launch overhead). Default 64.
   */
  runCostTokens?: number;
};
