export type BatchLimits = {
  /** Most sequences in one model run. */
  maxBatch: number;
  /** Most (padded) tokens in one run: bounds the logits memory, whatever n is. */
  maxTokens: number;
};

/**
 * Groups sequence indices into runs: longest first so padding stays small, each run within
 * the limits. Deterministic for a given input, so a tile always runs in the same batches.
 */
export function planBatches(lengths: ArrayLike<number>, limits: BatchLimits): number[][] {
  const order = Array.from({ length: lengths.length }, (_, k) => k).sort((a, b) => lengths[b] - lengths[a] || a - b);
  const batches: number[][] = [];
  let current: number[] = [];
  let width = 0;
  for (const k of order) {
    const w = Math.max(width, lengths[k]);
    if (current.length > 0 && (current.length >= limits.maxBatch || w * (current.length + 1) > limits.maxTokens)) {
      batches.push(current);
      current = [];
      width = 0;
    }
    current.push(k);
    width = Math.max(width, lengths[k]);
  }
  if (current.length > 0) batches.push(current);
  return batches;
}
