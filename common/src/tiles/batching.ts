import type { BatchLimits } from "./types.js";

export type { BatchLimits };

/**
 * Groups sequences into model runs. Sequences are sorted longest first, then cut into runs that
 * minimise padded tokens plus a fixed cost per run (dynamic programming over the cut points),
 * each run within the limits. Deterministic for a given input, so a tile always runs in the same
 * batches and gives the same bytes.
 */
export function planBatches(lengths: ArrayLike<number>, limits: BatchLimits): number[][] {
  const n = lengths.length;
  const order = Array.from({ length: n }, (_, k) => k).sort((a, b) => lengths[b] - lengths[a] || a - b);
  const runCost = limits.runCostTokens ?? 64;
  // best[i]: cheapest way to run order[i..n); cut[i]: where the first run from i ends.
  const best = new Float64Array(n + 1);
  const cut = new Int32Array(n + 1);
  for (let i = n - 1; i >= 0; i--) {
    const width = Math.max(1, lengths[order[i]]);
    best[i] = Infinity;
    for (let j = i + 1; j <= n && j - i <= limits.maxBatch; j++) {
      if (j - i > 1 && width * (j - i) > limits.maxTokens) break;
      const cost = width * (j - i) + runCost + best[j];
      if (cost < best[i]) {
        best[i] = cost;
        cut[i] = j;
      }
    }
  }
  const batches: number[][] = [];
  for (let i = 0; i < n; i = cut[i]) batches.push(order.slice(i, cut[i]));
  return batches;
}
