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

/** rows(j) = the targets whose candidate list holds example j, in target order. */
export function invertCandidates(targets: Uint32Array, candidates: Uint32Array[], nSamples: number): { ptr: Uint32Array; rows: Uint32Array } {
  const counts = new Uint32Array(nSamples + 1);
  for (const list of candidates) for (const j of list) counts[j + 1]++;
  for (let j = 0; j < nSamples; j++) counts[j + 1] += counts[j];
  const rows = new Uint32Array(counts[nSamples]);
  const fill = counts.slice(0, nSamples);
  candidates.forEach((list, t) => {
    for (const j of list) rows[fill[j]++] = targets[t];
  });
  return { ptr: counts, rows };
}
