import { test } from "uvu";
import * as assert from "uvu/assert";
import {
  lazyGreedy,
  objectiveValue,
  randomSparseKernel,
  rowMaxima,
  stochasticGreedy,
  stochasticSampleSize,
} from "../../common/src/selection/mod.js";
import type { Objective } from "../../common/src/selection/mod.js";

const n = 2000;
const k = 600; // 30%
const kernel = randomSparseKernel({ nRows: n, nCols: n, perColumn: 32, seed: 11 });
// About one stored entry per row: Q / E cover V the way a nearest-neighbour kernel would.
const existing = randomSparseKernel({ nRows: n, nCols: 50, perColumn: 40, seed: 12 });
const objectives: Record<string, Objective> = {
  fl: { kind: "fl" },
  flmi: { kind: "flmi", targetMax: rowMaxima(existing) },
  flcg: { kind: "flcg", existingMax: rowMaxima(existing) },
};

for (const [name, objective] of Object.entries(objectives)) {
  test(`stochastic greedy reaches >= 0.98 of lazy greedy (${name}, n = ${n}, 32 per column, k = 30%)`, () => {
    const lazy = lazyGreedy(kernel, { k, objective });
    for (const seed of [1, 2, 3]) {
      const stochastic = stochasticGreedy(kernel, { k, objective, epsilon: 0.01, seed });
      const ratio = stochastic.value / lazy.value;
      assert.ok(ratio >= 0.98, `${name} seed ${seed}: ratio ${ratio}`);
      assert.ok(Math.abs(objectiveValue(kernel, stochastic.order, objective) - stochastic.value) < 1e-6);
      assert.is(new Set(stochastic.order).size, k);
    }
  });
}

test("stochastic greedy: same seed same run, different seed a different order", () => {
  const options = { k: 200, epsilon: 0.05 };
  const a = stochasticGreedy(kernel, { ...options, seed: 5 });
  const b = stochasticGreedy(kernel, { ...options, seed: 5 });
  assert.equal(Array.from(a.order), Array.from(b.order));
  assert.equal(Array.from(a.gains), Array.from(b.gains));
  assert.is(a.evaluations, b.evaluations);
  let differing = 0;
  for (const seed of [6, 7, 8, 9]) {
    const c = stochasticGreedy(kernel, { ...options, seed });
    if (Array.from(c.order).join() !== Array.from(a.order).join()) differing++;
  }
  assert.is(differing, 4);
});

test("stochastic greedy evaluates ceil((n / k) ln(1 / epsilon)) candidates per step", () => {
  const small = randomSparseKernel({ nRows: 300, nCols: 300, perColumn: 8, seed: 2 });
  const sample = stochasticSampleSize(300, 30, 0.1);
  assert.is(sample, Math.ceil(10 * Math.log(10)));
  const result = stochasticGreedy(small, { k: 30, epsilon: 0.1, seed: 4, lazyEvaluation: false });
  assert.is(result.evaluations, 30 * sample);
  const gains = Array.from(result.gains);
  assert.ok(Math.abs(gains.reduce((s, g) => s + g, 0) - result.value) < 1e-6);
});

test("lazy evaluation changes only the evaluation count, never the run", () => {
  for (const [name, objective] of Object.entries(objectives)) {
    for (const [kSmall, epsilon, seed] of [[600, 0.01, 1], [50, 0.2, 2], [1999, 0.5, 3]] as const) {
      const options = { k: kSmall, objective, epsilon, seed };
      const plain = stochasticGreedy(kernel, { ...options, lazyEvaluation: false });
      const lazy = stochasticGreedy(kernel, options);
      assert.equal(Array.from(lazy.order), Array.from(plain.order), `${name} k ${kSmall}`);
      assert.equal(Array.from(lazy.gains), Array.from(plain.gains));
      assert.is(lazy.value, plain.value);
      assert.ok(lazy.evaluations <= plain.evaluations + n, `${name}: ${lazy.evaluations} vs ${plain.evaluations}`);
    }
  }
});

test.run();
