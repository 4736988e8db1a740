import type { TokenizedCorpus } from "../data/tokenized-corpus.js";

/**
 * A tile as a worker computes it (DESIGN.md §3). Samples are referenced by their position in
 * the tile's own token table, so a tile is self-contained: a worker needs only the model.
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

/** What a worker returns for a tile: one distance d per scored (example, target) or target. */
export type TileOutput = {
  distances: Float32Array;
  /** How many of the tile's prompts were left-truncated to the maximum length. */
  truncated: number;
};

export function tileValueCount(work: TileWork): number {
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
