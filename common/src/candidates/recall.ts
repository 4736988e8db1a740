import type { SearchLists } from "./search-tile.js";
import { EMPTY } from "./top-k.js";

/**
 * Recall@k of approximate lists against exact ones, averaged over queries: the share of each
 * query's exact k nearest (the first k of `exact`, best first) that the approximate list holds.
 */
export function recallAtK(approx: SearchLists, exact: SearchLists, k = Math.min(approx.k, exact.k)): number {
  if (approx.count !== exact.count) throw new Error(`recall of ${approx.count} lists against ${exact.count}`);
  let found = 0;
  let total = 0;
  const mark = new Set<number>();
  for (let r = 0; r < exact.count; r++) {
    mark.clear();
    for (let t = 0; t < approx.k; t++) {
      const id = approx.ids[r * approx.k + t];
      if (id !== EMPTY) mark.add(id);
    }
    for (let t = 0; t < k; t++) {
      const id = exact.ids[r * exact.k + t];
      if (id === EMPTY) continue;
      total++;
      if (mark.has(id)) found++;
    }
  }
  return total === 0 ? 1 : found / total;
}

/** The first k of each best-first list (exact top-64 gives exact top-16). */
export function truncateLists(lists: SearchLists, k: number): SearchLists {
  if (k >= lists.k) return lists;
  const ids = new Uint32Array(lists.count * k);
  for (let r = 0; r < lists.count; r++) ids.set(lists.ids.subarray(r * lists.k, r * lists.k + k), r * k);
  return { count: lists.count, k, ids };
}
