import { test } from "uvu";
import * as assert from "uvu/assert";
import fc from "fast-check";
import { ConfigError } from "../../common/src/errors.js";
import {
  Xoshiro128,
  cscFromDense,
  cscFromTriplets,
  lazyGreedy,
  naiveGreedy,
  objectiveValue,
  randomSparseKernel,
  rowMaxima,
  stochasticGreedy,
} from "../../common/src/selection/mod.js";
import type { CscKernel, Objective } from "../../common/src/selection/mod.js";
import { BoundHeap } from "../../common/src/selection/bound-heap.js";

/** An instance: the V x V kernel plus, for FLMI / FLCG, the second kernel's dense form. */
type Instance = { kernel: CscKernel; dense: Float64Array; objective: Objective; second: Float64Array | null; nSecond: number };

function denseOf(kernel: CscKernel): Float64Array {
  const dense = new Float64Array(kernel.nRows * kernel.nCols);
  for (let j = 0; j < kernel.nCols; j++) {
    for (let p = kernel.colPtr[j]; p < kernel.colPtr[j + 1]; p++) {
      dense[kernel.rowIdx[p] * kernel.nCols + j] = kernel.values[p];
    }
  }
  return dense;
}

/**
 * Random kernel over n samples: sparse (each entry stored with probability density) or dense,
 * values drawn from `levels` steps so that ties are common.
 */
function randomKernel(rng: Xoshiro128, nRows: number, nCols: number, density: number, levels: number): CscKernel {
  const row: number[] = [];
  const col: number[] = [];
  const value: number[] = [];
  for (let i = 0; i < nRows; i++) {
    for (let j = 0; j < nCols; j++) {
      if (density < 1 && rng.nextUint32() / 2 ** 32 >= density) continue;
      row.push(i);
      col.push(j);
      value.push(rng.nextBelow(levels) / (levels - 1));
    }
  }
  return cscFromTriplets({
    nRows,
    nCols,
    row: Uint32Array.from(row),
    col: Uint32Array.from(col),
    value: Float32Array.from(value),
  });
}

const instanceArbitrary = (maxN: number) =>
  fc
    .record({
      n: fc.integer({ min: 1, max: maxN }),
      nSecond: fc.integer({ min: 1, max: 5 }),
      seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
      density: fc.oneof(fc.constant(1), fc.double({ min: 0.05, max: 0.9, noNaN: true })),
      levels: fc.oneof(fc.constant(2), fc.constant(3), fc.constant(5), fc.constant(1000)),
      kind: fc.constantFrom("fl", "flmi", "flcg"),
      factor: fc.constantFrom(1, 0.5, 0.8, 1.5),
      kFraction: fc.double({ min: 0, max: 1, noNaN: true }),
    })
    .map(({ n, nSecond, seed, density, levels, kind, factor, kFraction }) => {
      const rng = new Xoshiro128(seed);
      const kernel = randomKernel(rng, n, n, density, levels);
      let objective: Objective = { kind: "fl" };
      let second: CscKernel | null = null;
      if (kind !== "fl") {
        second = randomKernel(rng, n, nSecond, Math.max(density, 0.3), levels);
        objective =
          kind === "flmi"
            ? { kind: "flmi", targetMax: rowMaxima(second), eta: factor }
            : { kind: "flcg", existingMax: rowMaxima(second), nu: factor };
      }
      const k = Math.min(n, 1 + Math.floor(kFraction * n));
      const instance: Instance = {
        kernel,
        dense: denseOf(kernel),
        objective,
        second: second && denseOf(second),
        nSecond,
      };
      return { instance, k };
    });

/** f(A) straight from the definitions in DESIGN §1, in float64, from the dense matrices. */
function bruteValue(instance: Instance, set: number[]): number {
  const { kernel, dense, objective, second, nSecond } = instance;
  const n = kernel.nCols;
  let total = 0;
  for (let i = 0; i < kernel.nRows; i++) {
    let best = 0;
    for (const j of set) best = Math.max(best, dense[i * n + j]);
    let other = 0;
    if (second) for (let q = 0; q < nSecond; q++) other = Math.max(other, second[i * nSecond + q]);
    if (objective.kind === "fl") total += best;
    else if (objective.kind === "flmi") total += Math.min(best, (objective.eta ?? 1) * other);
    else total += Math.max(best - (objective.nu ?? 1) * other, 0);
  }
  return total;
}

function subsetsOf(n: number): number[][] {
  const all: number[][] = [];
  for (let mask = 0; mask < 1 << n; mask++) {
    const set: number[] = [];
    for (let j = 0; j < n; j++) if (mask & (1 << j)) set.push(j);
    all.push(set);
  }
  return all;
}

test("BoundHeap pops by bound descending, then column ascending, also after lowering the top", () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 1, maxLength: 60 }),
      fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 20 }),
      (levels, cuts) => {
        const bounds = Float64Array.from(levels);
        const expectedBound = Array.from(levels);
        const heap = new BoundHeap(bounds);
        for (const cut of cuts) {
          // Lower the top's bound by cut (never below 0), as lazy greedy does after re-evaluating it.
          const top = heap.topColumn();
          expectedBound[top] = Math.max(0, heap.topBound() - cut);
          heap.lowerTop(expectedBound[top]);
        }
        const expectedOrder = expectedBound
          .map((b, j) => [b, j])
          .sort((x, y) => y[0] - x[0] || x[1] - y[1])
          .map(([, j]) => j);
        const popped: number[] = [];
        while (heap.length > 0) {
          const second = heap.runnerUpColumn();
          popped.push(heap.topColumn());
          heap.removeTop();
          if (heap.length > 0) assert.is(heap.topColumn(), second);
        }
        assert.equal(popped, expectedOrder);
      },
    ),
    { numRuns: 300 },
  );
});

test("lazy greedy equals naive greedy exactly (dense and sparse, ties, FL / FLMI / FLCG)", () => {
  fc.assert(
    fc.property(instanceArbitrary(40), ({ instance, k }) => {
      const options = { k, objective: instance.objective };
      const naive = naiveGreedy(instance.kernel, options);
      const lazy = lazyGreedy(instance.kernel, options);
      assert.equal(Array.from(lazy.order), Array.from(naive.order));
      for (let t = 0; t < k; t++) assert.ok(Math.abs(lazy.gains[t] - naive.gains[t]) <= 1e-9);
      assert.is(lazy.value, naive.value);
      assert.ok(lazy.evaluations <= naive.evaluations + instance.kernel.nCols);
    }),
    { numRuns: 300 },
  );
});

test("objectiveValue equals the definition on every subset (n <= 8)", () => {
  fc.assert(
    fc.property(instanceArbitrary(8), ({ instance }) => {
      for (const set of subsetsOf(instance.kernel.nCols)) {
        const got = objectiveValue(instance.kernel, set, instance.objective);
        assert.ok(Math.abs(got - bruteValue(instance, set)) < 1e-5, `f(${set}) = ${got}`);
      }
    }),
    { numRuns: 60 },
  );
});

test("greedy picks the best brute-force marginal gain each step and keeps 1 - 1/e of the optimum (n <= 8)", () => {
  fc.assert(
    fc.property(instanceArbitrary(8), ({ instance, k }) => {
      const result = naiveGreedy(instance.kernel, { k, objective: instance.objective });
      const picked: number[] = [];
      for (let t = 0; t < k; t++) {
        const before = bruteValue(instance, picked);
        let bestMarginal = -Infinity;
        for (let j = 0; j < instance.kernel.nCols; j++) {
          if (picked.includes(j)) continue;
          bestMarginal = Math.max(bestMarginal, bruteValue(instance, [...picked, j]) - before);
        }
        const j = result.order[t];
        const marginal = bruteValue(instance, [...picked, j]) - before;
        assert.ok(Math.abs(result.gains[t] - marginal) < 1e-5, `gain of pick ${t}`);
        assert.ok(marginal >= bestMarginal - 1e-5, `pick ${t} is not a best marginal gain`);
        picked.push(j);
      }
      assert.ok(Math.abs(result.value - bruteValue(instance, picked)) < 1e-5);
      let optimum = 0;
      for (const set of subsetsOf(instance.kernel.nCols)) {
        if (set.length === k) optimum = Math.max(optimum, bruteValue(instance, set));
      }
      assert.ok(result.value >= (1 - 1 / Math.E) * optimum - 1e-6);
    }),
    { numRuns: 60 },
  );
});

test("FLMI caps each row at eta * m_Q and FLCG starts each row at nu * m_E (worked example)", () => {
  // 3 targets x 3 candidates.
  const kernel = cscFromDense(Float32Array.from([0.5, 0.25, 0, 0, 1, 0.75, 1, 0, 0.25]), 3, 3);
  const second = cscFromDense(Float32Array.from([0.25, 1, 0]), 3, 1); // m = [0.25, 1, 0]
  const flmi: Objective = { kind: "flmi", targetMax: rowMaxima(second) };
  const flcg: Objective = { kind: "flcg", existingMax: rowMaxima(second) };
  // FLMI, A = {0}: min(0.5, 0.25) + min(0, 1) + min(1, 0) = 0.25.
  assert.is(objectiveValue(kernel, [0], flmi), 0.25);
  // FLMI, A = {1}: min(0.25, 0.25) + min(1, 1) + 0 = 1.25.
  assert.is(objectiveValue(kernel, [1], flmi), 1.25);
  // FLCG, A = {0}: max(0.5 - 0.25, 0) + max(0 - 1, 0) + max(1 - 0, 0) = 1.25.
  assert.is(objectiveValue(kernel, [0], flcg), 1.25);
  // FLCG with nu = 0.5, A = {1, 2}: (0.25 - 0.125) + (1 - 0.5) + 0.25 = 0.875.
  assert.is(objectiveValue(kernel, [1, 2], { ...flcg, nu: 0.5 }), 0.875);
  const greedy = lazyGreedy(kernel, { k: 3, objective: flmi });
  assert.equal(Array.from(greedy.order), [1, 0, 2]);
  assert.equal(Array.from(greedy.gains), [1.25, 0, 0]);
});

test("greedy keeps picking columns of zero gain until k picks, lowest index first", () => {
  const kernel = cscFromTriplets({
    nRows: 3,
    nCols: 5,
    row: Uint32Array.from([0, 1]),
    col: Uint32Array.from([3, 3]),
    value: Float32Array.from([0.5, 0.5]),
  });
  for (const optimiser of [naiveGreedy, lazyGreedy]) {
    const result = optimiser(kernel, { k: 4 });
    assert.equal(Array.from(result.order), [3, 0, 1, 2]);
    assert.equal(Array.from(result.gains), [1, 0, 0, 0]);
    assert.is(result.value, 1);
  }
  const stochastic = stochasticGreedy(kernel, { k: 4, seed: 1 });
  assert.is(stochastic.order.length, 4);
  assert.is(new Set(stochastic.order).size, 4);
});

test("stochastic greedy with a sample covering every candidate equals naive greedy", () => {
  fc.assert(
    fc.property(instanceArbitrary(30), fc.integer({ min: 0, max: 1000 }), ({ instance, k }, seed) => {
      const options = { k, objective: instance.objective };
      // ln(1 / 1e-300) ~ 690 >= k, so each step samples all n - t remaining columns.
      const stochastic = stochasticGreedy(instance.kernel, { ...options, epsilon: 1e-300, seed });
      const naive = naiveGreedy(instance.kernel, options);
      assert.equal(Array.from(stochastic.order), Array.from(naive.order));
      assert.is(stochastic.value, naive.value);
    }),
    { numRuns: 100 },
  );
});

test("optimisers reject a bad k, epsilon, objective vector and negative kernel values", () => {
  const kernel = randomSparseKernel({ nRows: 6, nCols: 6, perColumn: 3, seed: 1 });
  const expectConfig = (fn: () => unknown, pattern: RegExp) => {
    try {
      fn();
    } catch (err) {
      assert.instance(err, ConfigError);
      assert.match((err as Error).message, pattern);
      return;
    }
    assert.unreachable(`expected a ConfigError matching ${pattern}`);
  };
  for (const optimiser of [naiveGreedy, lazyGreedy, stochasticGreedy]) {
    expectConfig(() => optimiser(kernel, { k: 0 }), /budget k = 0 out of range: must be an integer between 1 and 6/);
    expectConfig(() => optimiser(kernel, { k: 7 }), /budget k = 7 out of range/);
    expectConfig(() => optimiser(kernel, { k: 2.5 }), /budget k = 2.5 out of range/);
    expectConfig(
      () => optimiser(kernel, { k: 2, objective: { kind: "flmi", targetMax: new Float32Array(5) } }),
      /targetMax has 5 entries but the kernel has 6 rows/,
    );
    expectConfig(
      () => optimiser(kernel, { k: 2, objective: { kind: "flcg", existingMax: new Float32Array(6), nu: -1 } }),
      /nu must be a finite number >= 0/,
    );
  }
  const badMax = Float32Array.from([0, 0.5, NaN, 0, 0, 0]);
  expectConfig(
    () => lazyGreedy(kernel, { k: 2, objective: { kind: "flmi", targetMax: badMax } }),
    /targetMax\[2\] = NaN: row maxima must be finite and >= 0/,
  );
  expectConfig(() => stochasticGreedy(kernel, { k: 2, epsilon: 0 }), /epsilon must satisfy 0 < epsilon < 1/);
  expectConfig(() => stochasticGreedy(kernel, { k: 2, epsilon: 1 }), /epsilon/);
  const negative = cscFromDense(Float32Array.from([0.5, -0.25]), 1, 2);
  expectConfig(() => lazyGreedy(negative, { k: 1 }), /\(row 0, column 1\): value -0.25 is negative; scale the kernel first/);
  const empty = { nRows: 0, nCols: 0, colPtr: Uint32Array.from([0]), rowIdx: new Uint32Array(0), values: new Float32Array(0) };
  expectConfig(() => lazyGreedy(empty, { k: 1 }), /empty kernel/);
});

test.run();
