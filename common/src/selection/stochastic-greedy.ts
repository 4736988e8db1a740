import { ConfigError } from "../errors.js";
import { prepareSelection, emptyResult } from "./prepare.js";
import { touchColumnList } from "./prefetch.js";
import { Xoshiro128 } from "./prng.js";
import type { CscKernel, SelectionResult, StochasticGreedyOptions } from "./types.js";

/** Above this sample size the sample is scanned in draw order instead of sorted by bound. */
const SORTED_SAMPLE_LIMIT = 64;

/**
 * Stochastic greedy (Mirzasoleiman et al. 2015): each step evaluates a uniform sample, without
 * replacement, of ceil((n / k) * ln(1 / epsilon)) unselected columns (all of them once fewer
 * remain) and picks the best, ties to the lower index. Expected f >= (1 - 1/e - epsilon) * OPT.
 *
 * With lazyEvaluation (the default) each column keeps an upper bound on its gain (its singleton
 * gain, then its last computed gain; valid by submodularity), and a sampled column whose bound
 * cannot beat the best gain found so far in the step is not evaluated. The sample, the pick and
 * so the whole run are the same as without it; only the evaluation count drops.
 */
export function stochasticGreedy(kernel: CscKernel, options: StochasticGreedyOptions): SelectionResult {
  const state = prepareSelection(kernel, options);
  const { k } = options;
  const epsilon = options.epsilon ?? 0.01;
  const seed = options.seed ?? 0;
  const lazy = options.lazyEvaluation ?? true;
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

  // A sequential pass over the columns costs a fraction of the same evaluations in random order.
  const bound = lazy ? new Float64Array(n) : null;
  if (bound !== null) {
    for (let j = 0; j < n; j++) bound[j] = state.gain(j);
    evaluations += n;
  }
  const byBound = new Uint32Array(Math.min(sampleSize, SORTED_SAMPLE_LIMIT));

  for (let t = 0; t < k; t++) {
    const draws = sampleSize < left ? sampleSize : left;
    if (draws < left) {
      for (let s = 0; s < draws; s++) {
        const pick = s + rng.nextBelow(left - s);
        const tmp = remaining[s];
        remaining[s] = remaining[pick];
        remaining[pick] = tmp;
      }
    }
    touchColumnList(kernel, remaining, draws);
    let bestPos = -1;
    let bestColumn = -1;
    let bestGain = -1;
    if (bound === null) {
      for (let s = 0; s < draws; s++) {
        const j = remaining[s];
        const g = state.gain(j);
        if (g > bestGain || (g === bestGain && j < bestColumn)) {
          bestGain = g;
          bestColumn = j;
          bestPos = s;
        }
      }
      evaluations += draws;
    } else {
      // Visit the sample by bound, largest first (or in draw order when it is large), and skip
      // every column that cannot beat the best fresh gain: its bound is lower, or equal with a
      // higher index.
      const sorted = draws <= SORTED_SAMPLE_LIMIT;
      if (sorted) sortPositionsByBound(byBound, draws, remaining, bound);
      for (let s = 0; s < draws; s++) {
        const pos = sorted ? byBound[s] : s;
        const j = remaining[pos];
        const b = bound[j];
        if (b < bestGain || (b === bestGain && j > bestColumn)) {
          if (sorted) break;
          continue;
        }
        const g = state.gain(j);
        evaluations++;
        bound[j] = g;
        if (g > bestGain || (g === bestGain && j < bestColumn)) {
          bestGain = g;
          bestColumn = j;
          bestPos = pos;
        }
      }
    }
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

/** positions[0..count) = 0..count-1 ordered by bound of remaining[pos] descending, column ascending. */
function sortPositionsByBound(positions: Uint32Array, count: number, remaining: Uint32Array, bound: Float64Array): void {
  for (let s = 0; s < count; s++) {
    const j = remaining[s];
    const b = bound[j];
    let q = s - 1;
    while (q >= 0) {
      const other = remaining[positions[q]];
      const ob = bound[other];
      if (ob > b || (ob === b && other < j)) break;
      positions[q + 1] = positions[q];
      q--;
    }
    positions[q + 1] = s;
  }
}
