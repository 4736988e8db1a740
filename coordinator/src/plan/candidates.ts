import { Xoshiro128 } from "../../../common/src/mod.js";

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
  return neighbours.map((list, t) => {
    const chosen = new Set(list);
    const want = Math.min(examples.length, list.length + settings.random);
    const rng = new Xoshiro128((settings.seed ^ Math.imul(t + 1, 0x9e3779b1)) >>> 0);
    while (chosen.size < want) chosen.add(examples[rng.nextBelow(examples.length)]);
    return Uint32Array.from(chosen).sort();
  });
}

export { invertCandidates } from "./compact-plan.js";
