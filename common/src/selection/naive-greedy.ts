import { prepareSelection, emptyResult } from "./prepare.js";
import type { CscKernel, GreedyOptions, SelectionResult } from "./types.js";

/**
 * Plain greedy: every step recomputes the gain of every unselected column and picks the
 * largest, ties to the lower column index. O(k * nnz); the reference the fast optimisers are
 * tested against.
 */
export function naiveGreedy(kernel: CscKernel, options: GreedyOptions): SelectionResult {
  const state = prepareSelection(kernel, options);
  const { k } = options;
  const { order, gains } = emptyResult(k);
  const selected = new Uint8Array(kernel.nCols);
  let evaluations = 0;
  for (let t = 0; t < k; t++) {
    let best = -1;
    let bestGain = -1;
    for (let j = 0; j < kernel.nCols; j++) {
      if (selected[j] === 1) continue;
      const g = state.gain(j);
      evaluations++;
      if (g > bestGain) {
        bestGain = g;
        best = j;
      }
    }
    selected[best] = 1;
    state.add(best);
    order[t] = best;
    gains[t] = bestGain;
  }
  return { order, gains, value: state.value(), evaluations };
}
