/**
 * An independent oracle for the selection: FL, FLMI and FLCG written out from their definitions
 * (DESIGN.md §1) over dense float64 matrices, a plain greedy loop that recomputes f(A + j) - f(A)
 * for every candidate, a plain stochastic greedy with its own xoshiro128** generator, and brute
 * force over every subset. Nothing here comes from common/src/selection/ except the optimisers
 * under test and the CscKernel shape they take; the CSC input is built here too.
 *
 * Instances are continuous (values from 2^20 levels) or coarse (2, 3 or 5 levels, so ties are
 * everywhere). Every value is a multiple of 2^-20 and every eta / nu a multiple of 1/4, so float32
 * storage, the optimisers' float32 per-row state and every float64 sum are exact: the oracle and
 * the optimisers must agree exactly, and any difference is a bug, not rounding.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import fc from "fast-check";
import { lazyGreedy, naiveGreedy, objectiveValue, stochasticGreedy } from "../../common/src/selection/mod.js";
import type { CscKernel, Objective, SelectionResult } from "../../common/src/selection/mod.js";

type Kind = "fl" | "flmi" | "flcg";

/** A selection instance in plain form: s[i][j] over V x V (0 where not stored), t[i][q] over V x (Q or E). */
type Instance = { n: number; kind: Kind; factor: number; s: number[][]; stored: boolean[][]; t: number[][]; k: number };

const LEVELS = 2 ** 20;

const instances = (maxN: number) =>
  fc
    .record({
      n: fc.integer({ min: 1, max: maxN }),
      m: fc.integer({ min: 1, max: 4 }),
      kind: fc.constantFrom<Kind>("fl", "flmi", "flcg"),
      factor: fc.constantFrom(1, 1, 0.5, 0.75, 1.25, 1.5),
      coarse: fc.constantFrom(0, 0, 0, 2, 3, 5),
      density: fc.constantFrom(1, 1, 0.7, 0.4),
      kFraction: fc.double({ min: 0, max: 1, noNaN: true }),
      seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
    })
    .map(({ n, m, kind, factor, coarse, density, kFraction, seed }): Instance => {
      const draw = mulberry32(seed);
      const value = () => (coarse === 0 ? Math.floor(draw() * (LEVELS + 1)) / LEVELS : Math.floor(draw() * coarse) / (coarse - 1));
      const s: number[][] = [];
      const stored: boolean[][] = [];
      for (let i = 0; i < n; i++) {
        s.push([]);
        stored.push([]);
        for (let j = 0; j < n; j++) {
          const keep = density === 1 || draw() < density;
          stored[i].push(keep);
          s[i].push(keep ? value() : 0);
        }
      }
      const t = Array.from({ length: n }, () => Array.from({ length: m }, value));
      return { n, kind, factor, s, stored, t, k: Math.min(n, 1 + Math.floor(kFraction * n)) };
    });

/** A small seeded generator for instance values (mulberry32), so an instance is one integer. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

// ---- the oracle: definitions, nothing clever ------------------------------------------------------

function rowMax(row: number[]): number {
  let best = 0;
  for (const v of row) if (v > best) best = v;
  return best;
}

/** f(A) from DESIGN.md §1, for any set of candidate columns. */
function f(inst: Instance, set: number[]): number {
  let total = 0;
  for (let i = 0; i < inst.n; i++) {
    let covered = 0;
    for (const j of set) if (inst.s[i][j] > covered) covered = inst.s[i][j];
    const other = inst.factor * rowMax(inst.t[i]);
    if (inst.kind === "fl") total += covered;
    else if (inst.kind === "flmi") total += Math.min(covered, other);
    else total += Math.max(covered - other, 0);
  }
  return total;
}

/** Plain greedy: every step, every remaining candidate's f(A + j) - f(A); the largest wins, ties to the lower index. */
function oracleGreedy(inst: Instance): { order: number[]; gains: number[] } {
  const order: number[] = [];
  const gains: number[] = [];
  for (let step = 0; step < inst.k; step++) {
    const now = f(inst, order);
    let best = -1;
    let bestGain = -Infinity;
    for (let j = 0; j < inst.n; j++) {
      if (order.includes(j)) continue;
      const g = f(inst, [...order, j]) - now;
      if (g > bestGain) [best, bestGain] = [j, g];
    }
    order.push(best);
    gains.push(bestGain);
  }
  return { order, gains };
}

/**
 * Plain stochastic greedy (Mirzasoleiman et al. 2015) as DESIGN.md §1 and the optimiser's contract
 * describe it: each step draws ceil((n / k) ln(1 / epsilon)) of the remaining candidates by a
 * partial Fisher-Yates shuffle (all of them once fewer remain), takes the best gain, ties to the
 * lower index, and removes the pick by moving the last remaining candidate into its place.
 */
function oracleStochastic(inst: Instance, epsilon: number, seed: number): { order: number[]; gains: number[] } {
  const rng = new PlainXoshiro128(seed);
  const sampleSize = Math.max(1, Math.ceil((inst.n / inst.k) * Math.log(1 / epsilon)));
  const remaining = Array.from({ length: inst.n }, (_, j) => j);
  const order: number[] = [];
  const gains: number[] = [];
  for (let step = 0; step < inst.k; step++) {
    const left = remaining.length;
    const draws = Math.min(sampleSize, left);
    if (draws < left) {
      for (let s = 0; s < draws; s++) {
        const pick = s + rng.below(left - s);
        [remaining[s], remaining[pick]] = [remaining[pick], remaining[s]];
      }
    }
    const now = f(inst, order);
    let bestPos = -1;
    let bestGain = -Infinity;
    for (let s = 0; s < draws; s++) {
      const g = f(inst, [...order, remaining[s]]) - now;
      if (g > bestGain || (g === bestGain && remaining[s] < remaining[bestPos])) [bestPos, bestGain] = [s, g];
    }
    order.push(remaining[bestPos]);
    gains.push(bestGain);
    remaining[bestPos] = remaining[left - 1];
    remaining.pop();
  }
  return { order, gains };
}

/**
 * xoshiro128** (Blackman & Vigna) with splitmix32-style seeding and rejection sampling for a
 * uniform integer below a bound: the generator the optimiser's seed is documented to drive,
 * written out again from the algorithm.
 */
class PlainXoshiro128 {
  private s = new Uint32Array(4);

  constructor(seed: number) {
    let x = seed >>> 0;
    for (let w = 0; w < 4; w++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[w] = (z ^ (z >>> 16)) >>> 0;
    }
  }

  next(): number {
    const s = this.s;
    const rotl = (v: number, r: number) => ((v << r) | (v >>> (32 - r))) >>> 0;
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  below(bound: number): number {
    const reject = 2 ** 32 % bound;
    let x = this.next();
    while (x < reject) x = this.next();
    return x % bound;
  }
}

function subsets(n: number, size: number): number[][] {
  const out: number[][] = [];
  const pick = (from: number, chosen: number[]) => {
    if (chosen.length === size) return void out.push([...chosen]);
    for (let j = from; j <= n - (size - chosen.length); j++) {
      chosen.push(j);
      pick(j + 1, chosen);
      chosen.pop();
    }
  };
  pick(0, []);
  return out;
}

// ---- the optimisers' inputs, built here -----------------------------------------------------------

function cscOf(inst: Instance): CscKernel {
  const colPtr = new Uint32Array(inst.n + 1);
  const rows: number[] = [];
  const values: number[] = [];
  for (let j = 0; j < inst.n; j++) {
    for (let i = 0; i < inst.n; i++) {
      if (!inst.stored[i][j]) continue;
      rows.push(i);
      values.push(inst.s[i][j]);
    }
    colPtr[j + 1] = rows.length;
  }
  return { nRows: inst.n, nCols: inst.n, colPtr, rowIdx: Uint32Array.from(rows), values: Float32Array.from(values) };
}

function objectiveOf(inst: Instance): Objective {
  const maxima = Float32Array.from(inst.t, rowMax);
  if (inst.kind === "fl") return { kind: "fl" };
  if (inst.kind === "flmi") return { kind: "flmi", targetMax: maxima, eta: inst.factor };
  return { kind: "flcg", existingMax: maxima, nu: inst.factor };
}

function describe(inst: Instance): string {
  return `${inst.kind.toUpperCase()} n=${inst.n} k=${inst.k} factor=${inst.factor}`;
}

function assertSameRun(got: SelectionResult, want: { order: number[]; gains: number[] }, inst: Instance, who: string): void {
  assert.equal(Array.from(got.order), want.order, `${who}: picks of ${describe(inst)}`);
  for (let t = 0; t < inst.k; t++) {
    assert.ok(Math.abs(got.gains[t] - want.gains[t]) <= 1e-12, `${who}: gain of pick ${t} is ${got.gains[t]}, the oracle's ${want.gains[t]} (${describe(inst)})`);
  }
  const value = f(inst, want.order);
  assert.ok(Math.abs(got.value - value) <= 1e-12, `${who}: f(A) = ${got.value}, the oracle's ${value} (${describe(inst)})`);
}

test("naive and lazy greedy make the plain greedy's exact picks, gains and f(A) (FL, FLMI, FLCG; n <= 14; 1,500 instances)", () => {
  fc.assert(
    fc.property(instances(14), (inst) => {
      const kernel = cscOf(inst);
      const options = { k: inst.k, objective: objectiveOf(inst) };
      const want = oracleGreedy(inst);
      assertSameRun(naiveGreedy(kernel, options), want, inst, "naive greedy");
      assertSameRun(lazyGreedy(kernel, options), want, inst, "lazy greedy");
    }),
    { numRuns: 1500 },
  );
});

test("stochastic greedy makes the plain stochastic greedy's exact picks for its seed, and the plain greedy's with a full sample (n <= 14; 1,500 instances)", () => {
  fc.assert(
    fc.property(instances(14), fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.constantFrom(0.5, 0.2, 0.05, 0.01), (inst, seed, epsilon) => {
      const kernel = cscOf(inst);
      const objective = objectiveOf(inst);
      const got = stochasticGreedy(kernel, { k: inst.k, objective, epsilon, seed });
      assertSameRun(got, oracleStochastic(inst, epsilon, seed), inst, `stochastic greedy (epsilon ${epsilon}, seed ${seed})`);
      // ln(1 / 1e-300) ~ 690 >= n: every step samples every remaining candidate.
      const full = stochasticGreedy(kernel, { k: inst.k, objective, epsilon: 1e-300, seed });
      assertSameRun(full, oracleGreedy(inst), inst, "stochastic greedy with a full sample");
    }),
    { numRuns: 1500 },
  );
});

test("objectiveValue is f(A) from the definition on every subset of up to 14 candidates' instances (sampled subsets above 10)", () => {
  fc.assert(
    fc.property(instances(14), fc.integer({ min: 0, max: 2 ** 31 - 1 }), (inst, seed) => {
      const kernel = cscOf(inst);
      const objective = objectiveOf(inst);
      const draw = mulberry32(seed);
      const sets: number[][] = [];
      if (inst.n <= 10) {
        for (let size = 0; size <= inst.n; size++) sets.push(...subsets(inst.n, size));
      } else {
        for (let r = 0; r < 300; r++) sets.push(Array.from({ length: inst.n }, (_, j) => j).filter(() => draw() < 0.5));
      }
      for (const set of sets) {
        const got = objectiveValue(kernel, set, objective);
        assert.ok(Math.abs(got - f(inst, set)) <= 1e-12, `f(${set.join(",")}) = ${got}, the definition gives ${f(inst, set)} (${describe(inst)})`);
      }
    }),
    { numRuns: 200 },
  );
});

test("greedy keeps (1 - 1/e) of the brute-force optimum over every k-subset (n <= 14; 300 instances)", () => {
  fc.assert(
    fc.property(instances(14), (inst) => {
      const kernel = cscOf(inst);
      const objective = objectiveOf(inst);
      let optimum = 0;
      for (const set of subsets(inst.n, inst.k)) optimum = Math.max(optimum, f(inst, set));
      for (const [who, result] of [
        ["lazy", lazyGreedy(kernel, { k: inst.k, objective })],
        ["stochastic, full sample", stochasticGreedy(kernel, { k: inst.k, objective, epsilon: 1e-300 })],
      ] as const) {
        const value = f(inst, Array.from(result.order));
        assert.ok(value >= (1 - 1 / Math.E) * optimum - 1e-12, `${who}: f(A) = ${value} < (1 - 1/e) x optimum ${optimum} (${describe(inst)})`);
        assert.ok(value <= optimum + 1e-12, `${who}: f(A) = ${value} above the optimum ${optimum}`);
      }
    }),
    { numRuns: 300 },
  );
});

test("the oracle itself: worked examples of FL, FLMI and FLCG by hand", () => {
  // 2 targets x 2 candidates; Q / E row maxima 0.5 and 0.25.
  const inst: Instance = {
    n: 2,
    kind: "fl",
    factor: 1,
    s: [
      [0.5, 1],
      [0.75, 0],
    ],
    stored: [
      [true, true],
      [true, true],
    ],
    t: [[0.5], [0.25]],
    k: 1,
  };
  assert.is(f(inst, []), 0);
  assert.is(f(inst, [0]), 1.25);
  assert.is(f(inst, [1]), 1);
  assert.is(f(inst, [0, 1]), 1.75);
  assert.is(f({ ...inst, kind: "flmi" }, [0, 1]), 0.5 + 0.25);
  assert.is(f({ ...inst, kind: "flmi", factor: 0.5 }, [1]), 0.25 + 0);
  assert.is(f({ ...inst, kind: "flcg" }, [0]), 0 + 0.5);
  assert.is(f({ ...inst, kind: "flcg" }, [0, 1]), 0.5 + 0.5);
  assert.equal(oracleGreedy({ ...inst, k: 2 }).order, [0, 1]);
  // FLCG: both candidates gain 0.5 first; the tie goes to the lower index.
  assert.equal(oracleGreedy({ ...inst, kind: "flcg", k: 2 }).order, [0, 1]);
  assert.equal(oracleGreedy({ ...inst, kind: "flcg", k: 2 }).gains, [0.5, 0.5]);
});

test.run();
