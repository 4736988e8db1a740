import { ConfigError } from "../errors.js";
import type { CoverageState } from "./coverage-state.js";
import { prepareSelection, emptyResult } from "./prepare.js";
import { touchColumn, touchColumnList, touchColumnsAt } from "./prefetch.js";
import { Xoshiro128 } from "./prng.js";
import type { CscKernel, SelectionResult, StochasticGreedyOptions } from "./types.js";

/** Above this sample size the sample is scanned in draw order instead of sorted by bound. */
const SORTED_SAMPLE_LIMIT = 64;
/** How many columns ahead of the one being evaluated are prefetched. */
const PREFETCH_AHEAD = 4;

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
  if (!(epsilon > 0 && epsilon < 1)) {
    throw new ConfigError(`epsilon must satisfy 0 < epsilon < 1, got ${epsilon}`);
  }
  if (!Number.isInteger(seed)) throw new ConfigError(`seed must be an integer, got ${seed}`);

  const n = kernel.nCols;
  const sampleSize = stochasticSampleSize(n, k, epsilon);
  const rng = new Xoshiro128(seed);
  const { order, gains } = emptyResult(k);
  // remaining[0..left) holds the unselected columns; each step's sample is drawn into its front.
  const remaining = new Uint32Array(n);
  for (let j = 0; j < n; j++) remaining[j] = j;
  let left = n;
  let evaluations = 0;

  let scan: SampleScan;
  if (options.lazyEvaluation ?? true) {
    // One sequential pass costs a fraction of the same evaluations in random order.
    const bound = new Float64Array(n);
    for (let j = 0; j < n; j++) bound[j] = state.gain(j);
    evaluations += n;
    scan = new BoundedScan(kernel, state, bound, Math.min(sampleSize, SORTED_SAMPLE_LIMIT));
  } else {
    scan = new FullScan(kernel, state);
  }

  // Step t + 1's random positions do not depend on step t's pick, so they are drawn one step
  // early and their columns prefetched while step t is evaluated: memory and arithmetic overlap.
  // The generator is consumed in the same order as drawing each step's sample on the spot.
  const pickCapacity = Math.min(sampleSize, n);
  let picks = new Uint32Array(pickCapacity);
  let nextPicks = new Uint32Array(pickCapacity);
  drawPicks(rng, picks, left, sampleSize);
  for (let t = 0; t < k; t++) {
    const draws = sampleSize < left ? sampleSize : left;
    applyPicks(remaining, picks, left, draws);
    if (t + 1 < k) {
      drawPicks(rng, nextPicks, left - 1, sampleSize);
      prefetchPicks(kernel, remaining, nextPicks, left - 1, sampleSize);
    }
    scan.run(remaining, draws);
    evaluations += scan.evaluations;
    state.add(scan.bestColumn);
    order[t] = scan.bestColumn;
    gains[t] = scan.bestGain;
    remaining[scan.bestPos] = remaining[--left];
    const spent = picks;
    picks = nextPicks;
    nextPicks = spent;
  }
  return { order, gains, value: state.value(), evaluations };
}

/** Candidates evaluated per step: ceil((n / k) * ln(1 / epsilon)), at least 1. */
export function stochasticSampleSize(n: number, k: number, epsilon: number): number {
  return Math.max(1, Math.ceil((n / k) * Math.log(1 / epsilon)));
}

/**
 * Random positions of a partial Fisher-Yates shuffle of remaining[0..left) (picks[s] in
 * [s, left)), for a step drawing min(sampleSize, left) columns; none when that is all of them.
 */
function drawPicks(rng: Xoshiro128, picks: Uint32Array, left: number, sampleSize: number): void {
  if (sampleSize >= left) return;
  for (let s = 0; s < sampleSize; s++) picks[s] = s + rng.nextBelow(left - s);
}

/** The shuffle itself: a uniform sample without replacement moves into remaining[0..draws). */
function applyPicks(remaining: Uint32Array, picks: Uint32Array, left: number, draws: number): void {
  if (draws >= left) return;
  for (let s = 0; s < draws; s++) {
    const pick = picks[s];
    const tmp = remaining[s];
    remaining[s] = remaining[pick];
    remaining[pick] = tmp;
  }
}

/**
 * Prefetches the columns the next step will most likely sample: those now at its pick positions.
 * This step's removal and the next step's own swaps can change a few of them; a wrong guess
 * only costs the load.
 */
function prefetchPicks(kernel: CscKernel, remaining: Uint32Array, picks: Uint32Array, left: number, sampleSize: number): void {
  if (sampleSize >= left) return;
  touchColumnsAt(kernel, remaining, picks, sampleSize);
}

/** Finds the best of sample[0..count): largest gain, ties to the lower column. */
type SampleScan = {
  run(sample: Uint32Array, count: number): void;
  bestPos: number;
  bestColumn: number;
  bestGain: number;
  /** Gain evaluations made by the last run. */
  evaluations: number;
};

class FullScan implements SampleScan {
  bestPos = -1;
  bestColumn = -1;
  bestGain = -1;
  evaluations = 0;

  constructor(
    private readonly kernel: CscKernel,
    private readonly state: CoverageState,
  ) {}

  run(sample: Uint32Array, count: number): void {
    touchColumnList(this.kernel, sample, count);
    let bestPos = -1;
    let bestColumn = -1;
    let bestGain = -1;
    for (let s = 0; s < count; s++) {
      const j = sample[s];
      const g = this.state.gain(j);
      if (g > bestGain || (g === bestGain && j < bestColumn)) {
        bestGain = g;
        bestColumn = j;
        bestPos = s;
      }
    }
    this.bestPos = bestPos;
    this.bestColumn = bestColumn;
    this.bestGain = bestGain;
    this.evaluations = count;
  }
}

/**
 * Visits the sample by bound, largest first (in draw order when the sample is large), and skips
 * every column that cannot beat the best fresh gain: its bound is lower, or equal with a higher
 * index. Only columns about to be evaluated are prefetched.
 */
class BoundedScan implements SampleScan {
  bestPos = -1;
  bestColumn = -1;
  bestGain = -1;
  evaluations = 0;
  private readonly byBound: Uint32Array;

  constructor(
    private readonly kernel: CscKernel,
    private readonly state: CoverageState,
    private readonly bound: Float64Array,
    sortedCapacity: number,
  ) {
    this.byBound = new Uint32Array(sortedCapacity);
  }

  run(sample: Uint32Array, count: number): void {
    const { kernel, state, bound, byBound } = this;
    const sorted = count <= byBound.length;
    if (sorted) {
      sortPositionsByBound(byBound, count, sample, bound);
      for (let s = 0; s < count && s < PREFETCH_AHEAD; s++) touchColumn(kernel, sample[byBound[s]]);
    } else {
      touchColumnList(kernel, sample, count);
    }
    let bestPos = -1;
    let bestColumn = -1;
    let bestGain = -1;
    let evaluations = 0;
    for (let s = 0; s < count; s++) {
      const pos = sorted ? byBound[s] : s;
      const j = sample[pos];
      const b = bound[j];
      if (b < bestGain || (b === bestGain && j > bestColumn)) {
        if (sorted) break;
        continue;
      }
      if (sorted && s + PREFETCH_AHEAD < count) {
        const ahead = sample[byBound[s + PREFETCH_AHEAD]];
        if (bound[ahead] >= bestGain) touchColumn(kernel, ahead);
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
    this.bestPos = bestPos;
    this.bestColumn = bestColumn;
    this.bestGain = bestGain;
    this.evaluations = evaluations;
  }
}

/** positions[0..count) = 0..count-1 ordered by bound of sample[pos] descending, column ascending. */
function sortPositionsByBound(positions: Uint32Array, count: number, sample: Uint32Array, bound: Float64Array): void {
  for (let s = 0; s < count; s++) {
    const j = sample[s];
    const b = bound[j];
    let q = s - 1;
    while (q >= 0) {
      const other = sample[positions[q]];
      const ob = bound[other];
      if (ob > b || (ob === b && other < j)) break;
      positions[q + 1] = positions[q];
      q--;
    }
    positions[q + 1] = s;
  }
}
