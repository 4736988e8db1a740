import { ConfigError } from "../errors.js";
import { prepareSelection, emptyResult } from "./prepare.js";
import { Xoshiro128 } from "./prng.js";
import type { CscKernel, SelectionResult, StochasticGreedyOptions } from "./types.js";

/**
 * Stochastic greedy (Mirzasoleiman et al. 2015): each step evaluates a uniform sample, without
 * replacement, of ceil((n / k) * ln(1 / epsilon)) unselected columns (all of them once fewer
 * remain) and picks the best, ties to the lower index. Expected f >= (1 - 1/e - epsilon) * OPT.
 */
export function stochasticGreedy(kernel: CscKernel, options: StochasticGreedyOptions): SelectionResult {
  const state = prepareSelection(kernel, options);
  const { k } = options;
  const epsilon = options.epsilon ?? 0.01;
  const seed = options.seed ?? 0;
  if (!(epsilon > 0 && epsilon < 1)) {
    throw new ConfigError(`epsilon must satisfy 0 < epsilon < 1, got ${epsilon}`);
  }
  if (!Number.isInteger(seed)) throw new ConfigError(`seed must be an integer, got ${seed}`);

  const n = kernel.nCols;
  const sampleSize = stochasticSampleSize(n, k, epsilon);
  const rng = new Xoshiro128(seed);
  const { order, gains } = emptyResult(k);
  // remaining[0..left) holds the unselected columns; each step's sample is drawn into its front
  // by a partial Fisher-Yates shuffle.
  const remaining = new Uint32Array(n);
  for (let j = 0; j < n; j++) remaining[j] = j;
  let left = n;
  let evaluations = 0;

  for (let t = 0; t < k; t++) {
    const draws = sampleSize < left ? sampleSize : left;
    let bestPos = -1;
    let bestColumn = -1;
    let bestGain = -1;
    for (let s = 0; s < draws; s++) {
      if (draws < left) {
        const pick = s + rng.nextBelow(left - s);
        const tmp = remaining[s];
        remaining[s] = remaining[pick];
        remaining[pick] = tmp;
      }
      const j = remaining[s];
      const g = state.gain(j);
      if (g > bestGain || (g === bestGain && j < bestColumn)) {
        bestGain = g;
        bestColumn = j;
        bestPos = s;
      }
    }
    evaluations += draws;
    state.add(bestColumn);
    order[t] = bestColumn;
    gains[t] = bestGain;
    remaining[bestPos] = remaining[--left];
  }
  return { order, gains, value: state.value(), evaluations };
}

/** Candidates evaluated per step: ceil((n / k) * ln(1 / epsilon)), at least 1. */
export function stochasticSampleSize(n: number, k: number, epsilon: number): number {
  return Math.max(1, Math.ceil((n / k) * Math.log(1 / epsilon)));
}
