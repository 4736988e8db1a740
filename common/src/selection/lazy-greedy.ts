import { BoundHeap } from "./bound-heap.js";
import { prepareSelection, emptyResult } from "./prepare.js";
import { touchColumn } from "./prefetch.js";
import type { CscKernel, GreedyOptions, SelectionResult } from "./types.js";

/**
 * Lazy greedy (Minoux 1978): by submodularity a column's last computed gain bounds its current
 * gain, so only the heap's top is re-evaluated until the top is fresh. The top of the heap is
 * the lowest-index column among the largest bounds, so a fresh top is exactly the column naive
 * greedy would pick, and both return the same order.
 */
export function lazyGreedy(kernel: CscKernel, options: GreedyOptions): SelectionResult {
  const state = prepareSelection(kernel, options);
  const { k } = options;
  const n = kernel.nCols;
  const { order, gains } = emptyResult(k);

  const bounds = new Float64Array(n);
  for (let j = 0; j < n; j++) bounds[j] = state.gain(j);
  let evaluations = n;
  const heap = new BoundHeap(bounds);
  // evaluatedAt[j] = number of picks made when column j's bound was last computed.
  const evaluatedAt = new Uint32Array(n);

  for (let t = 0; t < k; t++) {
    let j = heap.topColumn();
    // A top bound of 0 means every remaining gain is exactly 0; no evaluation can change the pick.
    while (evaluatedAt[j] !== t && heap.topBound() > 0) {
      // Unless the top stays on top, the runner-up is evaluated next: start loading its column.
      touchColumn(kernel, heap.runnerUpColumn());
      evaluatedAt[j] = t;
      heap.lowerTop(state.gain(j));
      evaluations++;
      j = heap.topColumn();
    }
    gains[t] = heap.topBound();
    order[t] = j;
    heap.removeTop();
    state.add(j);
  }
  return { order, gains, value: state.value(), evaluations };
}
