import { EMPTY, Xoshiro128, type SearchLists } from "../../../common/src/mod.js";
import type { CandidateTable } from "./compact-plan.js";

/** Sparse mode (DESIGN.md §2): which examples each target is scored with. */
export type CandidateSettings = {
  /** Nearest examples per target in the embedding space (cosine). */
  neighbors: number;
  /** Extra examples per target drawn at random (seeded), for coverage beyond the neighbourhood. */
  random: number;
  seed: number;
};

/**
 * Adds `random` distinct random examples to each target's neighbour list (those not already in
 * it), from a generator seeded per target, so a target's candidates do not depend on the others.
 * Lists come back sorted.
 */
export function withRandomColumns(neighbours: Uint32Array[], examples: Uint32Array, settings: CandidateSettings): Uint32Array[] {
  if (settings.random <= 0) return neighbours;
  return neighbours.map((list, t) => addRandom(list, t, examples, settings));
}

function addRandom(list: ArrayLike<number>, t: number, examples: Uint32Array, settings: CandidateSettings): Uint32Array {
  const chosen = new Set(Array.from(list));
  const want = Math.min(examples.length, list.length + settings.random);
  const rng = new Xoshiro128((settings.seed ^ Math.imul(t + 1, 0x9e3779b1)) >>> 0);
  while (chosen.size < want) chosen.add(examples[rng.nextBelow(examples.length)]);
  return Uint32Array.from(chosen).sort();
}

/**
 * A search's best-first lists as the flat, sorted candidate table the compact plan takes, with the
 * random columns added as withRandomColumns adds them (the same lists, without an array per target).
 */
export function candidateTable(lists: SearchLists, examples: Uint32Array, settings: CandidateSettings): CandidateTable {
  const n = lists.count;
  const ptr = new Uint32Array(n + 1);
  const rowOf = (t: number) => {
    const row = lists.ids.subarray(t * lists.k, (t + 1) * lists.k);
    const end = row.indexOf(EMPTY);
    return row.slice(0, end < 0 ? row.length : end).sort();
  };
  const width = Math.min(examples.length, lists.k + Math.max(0, settings.random));
  const ids = new Uint32Array(n * width);
  for (let t = 0; t < n; t++) {
    const row = settings.random > 0 ? addRandom(rowOf(t), t, examples, settings) : rowOf(t);
    ids.set(row, ptr[t]);
    ptr[t + 1] = ptr[t] + row.length;
  }
  return { ptr, ids: ids.subarray(0, ptr[n]) };
}

export { invertCandidates } from "./compact-plan.js";
