import { test } from "uvu";
import * as assert from "uvu/assert";
import fc from "fast-check";
import { ConfigError } from "../../common/src/errors.js";
import {
  Xoshiro128,
  cscFromDense,
  cscFromTriplets,
  kernelBytes,
  parseBudget,
  randomSparseKernel,
  rowMaxima,
  scaleKernelInPlace,
  validateKernel,
} from "../../common/src/selection/mod.js";
import type { CscKernel } from "../../common/src/selection/mod.js";

function toDense(kernel: CscKernel): Float64Array {
  const dense = new Float64Array(kernel.nRows * kernel.nCols);
  for (let j = 0; j < kernel.nCols; j++) {
    for (let p = kernel.colPtr[j]; p < kernel.colPtr[j + 1]; p++) {
      dense[kernel.rowIdx[p] * kernel.nCols + j] = kernel.values[p];
    }
  }
  return dense;
}

function throwsConfig(fn: () => unknown, pattern: RegExp): void {
  try {
    fn();
  } catch (err) {
    assert.instance(err, ConfigError);
    assert.match((err as Error).message, pattern);
    return;
  }
  assert.unreachable(`expected a ConfigError matching ${pattern}`);
}

test("cscFromTriplets: any order gives the same matrix, rows ascending per column", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 12 }),
      fc.integer({ min: 1, max: 12 }),
      fc.integer({ min: 0, max: 2 ** 31 }),
      fc.double({ min: 0, max: 1, noNaN: true }),
      (nRows, nCols, seed, density) => {
        const rng = new Xoshiro128(seed);
        const cells: number[] = [];
        for (let c = 0; c < nRows * nCols; c++) if (rng.nextUint32() / 2 ** 32 < density) cells.push(c);
        for (let a = cells.length - 1; a > 0; a--) {
          const b = rng.nextBelow(a + 1);
          [cells[a], cells[b]] = [cells[b], cells[a]];
        }
        const expected = new Float64Array(nRows * nCols);
        const row = new Uint32Array(cells.length);
        const col = new Uint32Array(cells.length);
        const value = new Float32Array(cells.length);
        cells.forEach((cell, t) => {
          row[t] = Math.floor(cell / nCols);
          col[t] = cell % nCols;
          value[t] = (rng.nextUint32() % 1000) / 7 - 50;
          expected[cell] = value[t];
        });
        const kernel = cscFromTriplets({ nRows, nCols, row, col, value });
        validateKernel(kernel);
        assert.equal(kernel.rowIdx.length, cells.length);
        assert.equal(Array.from(toDense(kernel)), Array.from(expected));
      },
    ),
    { numRuns: 200 },
  );
});

test("cscFromDense stores every entry, transposed from row-major", () => {
  const data = Float32Array.from([1, 2, 3, 4, 5, 6]); // 2 x 3
  const kernel = cscFromDense(data, 2, 3);
  assert.equal(Array.from(kernel.colPtr), [0, 2, 4, 6]);
  assert.equal(Array.from(kernel.rowIdx), [0, 1, 0, 1, 0, 1]);
  assert.equal(Array.from(kernel.values), [1, 4, 2, 5, 3, 6]);
  assert.is(kernelBytes(kernel), 4 * 4 + 6 * 4 + 6 * 4);
});

test("cscFromTriplets: a duplicate (row, col) is an error naming it", () => {
  throwsConfig(
    () =>
      cscFromTriplets({
        nRows: 4,
        nCols: 3,
        row: Uint32Array.from([0, 3, 1, 3]),
        col: Uint32Array.from([2, 1, 0, 1]),
        value: Float32Array.from([0.1, 0.2, 0.3, 0.4]),
      }),
    /duplicate kernel entry at row 3, column 1/,
  );
});

test("cscFromTriplets: out-of-range indices, mismatched lengths and NaN are errors", () => {
  const base = { nRows: 2, nCols: 2, col: Uint32Array.from([0]), value: Float32Array.from([1]) };
  throwsConfig(() => cscFromTriplets({ ...base, row: Uint32Array.from([2]) }), /triplet 0: row 2 out of range \(kernel has 2 rows\)/);
  throwsConfig(
    () => cscFromTriplets({ ...base, row: Uint32Array.from([1]), col: Uint32Array.from([5]) }),
    /column 5 out of range/,
  );
  throwsConfig(() => cscFromTriplets({ ...base, row: Uint32Array.from([0, 1]) }), /differ in length/);
  throwsConfig(
    () => cscFromTriplets({ ...base, row: Uint32Array.from([0]), value: Float32Array.from([NaN]) }),
    /not finite/,
  );
  throwsConfig(() => cscFromDense(new Float32Array(5), 2, 3), /expected 2 x 3 = 6/);
});

test("empty kernels are rejected", () => {
  const none = { row: new Uint32Array(0), col: new Uint32Array(0), value: new Float32Array(0) };
  throwsConfig(() => cscFromTriplets({ nRows: 5, nCols: 0, ...none }), /empty kernel \(5 rows x 0 columns\)/);
  throwsConfig(() => cscFromDense(new Float32Array(0), 0, 0), /empty kernel/);
});

test("validateKernel catches unsorted rows, duplicates and bad offsets", () => {
  const good = () => ({
    nRows: 3,
    nCols: 2,
    colPtr: Uint32Array.from([0, 2, 3]),
    rowIdx: Uint32Array.from([0, 2, 1]),
    values: Float32Array.from([0.5, 0.5, 0.5]),
  });
  validateKernel(good());
  throwsConfig(() => validateKernel({ ...good(), rowIdx: Uint32Array.from([2, 0, 1]) }), /not in ascending order/);
  throwsConfig(() => validateKernel({ ...good(), rowIdx: Uint32Array.from([2, 2, 1]) }), /duplicate kernel entry at row 2, column 0/);
  throwsConfig(() => validateKernel({ ...good(), rowIdx: Uint32Array.from([0, 2, 3]) }), /row 3 out of range/);
  throwsConfig(() => validateKernel({ ...good(), colPtr: Uint32Array.from([0, 2, 4]) }), /inconsistent kernel arrays/);
});

test("min-max scaling maps the stored range onto [0, 1]; unstored entries stay 0", () => {
  const kernel = cscFromTriplets({
    nRows: 3,
    nCols: 2,
    row: Uint32Array.from([0, 1, 2]),
    col: Uint32Array.from([0, 0, 1]),
    value: Float32Array.from([-2, 6, 2]),
  });
  const report = scaleKernelInPlace(kernel);
  assert.equal(report, { scaling: "min-max", min: -2, max: 6 });
  assert.equal(Array.from(kernel.values), [0, 1, 0.5]);
  assert.equal(Array.from(toDense(kernel)), [0, 0, 1, 0, 0, 0.5]);
});

test("min-max scaling of equal values makes them all 0", () => {
  const kernel = cscFromDense(Float32Array.from([0.7, 0.7, 0.7, 0.7]), 2, 2);
  scaleKernelInPlace(kernel, "min-max");
  assert.equal(Array.from(kernel.values), [0, 0, 0, 0]);
});

test("clip-at-zero scaling keeps positives and zeroes negatives", () => {
  const kernel = cscFromDense(Float32Array.from([-0.5, 0.25, 3, -1]), 2, 2);
  const report = scaleKernelInPlace(kernel, "clip-at-zero");
  assert.equal(report, { scaling: "clip-at-zero", min: -1, max: 3 });
  assert.equal(Array.from(kernel.values), [0, 3, 0.25, 0]);
});

test("rowMaxima: maximum stored value per row, 0 where nothing positive is stored", () => {
  const kernel = cscFromTriplets({
    nRows: 4,
    nCols: 3,
    row: Uint32Array.from([0, 0, 1, 3, 3]),
    col: Uint32Array.from([0, 2, 1, 0, 1]),
    value: Float32Array.from([0.25, 0.75, 0.5, 0.125, 0.0625]),
  });
  assert.equal(Array.from(rowMaxima(kernel)), [0.75, 0.5, 0, 0.125]);
});

test("parseBudget: fractions, percentages and counts", () => {
  assert.is(parseBudget("0.3", 1000), 300);
  assert.is(parseBudget("30%", 1000), 300);
  assert.is(parseBudget(" 30% ", 1_000_000), 300_000);
  assert.is(parseBudget("0.3", 1_000_000), 300_000);
  assert.is(parseBudget("0.5", 3), 2);
  assert.is(parseBudget("0.001", 10), 1);
  assert.is(parseBudget("100%", 7), 7);
  assert.is(parseBudget("12.5%", 8), 1);
  assert.is(parseBudget("1", 5), 1);
  assert.is(parseBudget("5", 5), 5);
});

test("parseBudget: out-of-range and malformed budgets and empty data are clear errors", () => {
  throwsConfig(() => parseBudget("6", 5), /budget 6 out of range: a count must be between 1 and 5/);
  throwsConfig(() => parseBudget("0", 5), /budget 0 out of range/);
  throwsConfig(() => parseBudget("1.0", 5), /fraction must satisfy 0 < b < 1/);
  throwsConfig(() => parseBudget("0.0", 5), /fraction must satisfy 0 < b < 1/);
  throwsConfig(() => parseBudget("0%", 5), /percentage must be above 0%/);
  throwsConfig(() => parseBudget("150%", 5), /at most 100%/);
  throwsConfig(() => parseBudget("-3", 5), /not understood/);
  throwsConfig(() => parseBudget("", 5), /not understood/);
  throwsConfig(() => parseBudget("lots", 5), /not understood/);
  throwsConfig(() => parseBudget("0.3", 0), /empty data/);
});

test("Xoshiro128 matches the reference C xoshiro128** with the same splitmix32 seeding", () => {
  const expected: Record<number, number[]> = {
    0: [3809008728, 1133695204, 53579671, 2891528803, 139681546],
    42: [2837322924, 544945897, 479756282, 3500138142, 339756180],
  };
  for (const [seed, outputs] of Object.entries(expected)) {
    const rng = new Xoshiro128(Number(seed));
    assert.equal(outputs.map(() => rng.nextUint32()), outputs);
  }
});

test("Xoshiro128.nextBelow is roughly uniform (chi-square over 10 buckets)", () => {
  const rng = new Xoshiro128(7);
  const counts = new Array(10).fill(0);
  const draws = 100_000;
  for (let t = 0; t < draws; t++) counts[rng.nextBelow(10)]++;
  const expected = draws / 10;
  const chi2 = counts.reduce((sum, c) => sum + (c - expected) ** 2 / expected, 0);
  assert.ok(chi2 < 27.9, `chi-square ${chi2} (p < 0.001 cut-off for 9 dof is 27.9)`);
});

test("randomSparseKernel: valid, seeded, perColumn distinct rows", () => {
  const a = randomSparseKernel({ nRows: 50, nCols: 40, perColumn: 32, seed: 3 });
  const b = randomSparseKernel({ nRows: 50, nCols: 40, perColumn: 32, seed: 3 });
  const c = randomSparseKernel({ nRows: 50, nCols: 40, perColumn: 32, seed: 4 });
  validateKernel(a);
  assert.is(a.rowIdx.length, 40 * 32);
  assert.equal(Array.from(a.rowIdx), Array.from(b.rowIdx));
  assert.equal(Array.from(a.values), Array.from(b.values));
  assert.not.equal(Array.from(a.values), Array.from(c.values));
  const full = randomSparseKernel({ nRows: 9, nCols: 2, perColumn: 9, seed: 1 });
  assert.equal(Array.from(full.rowIdx), [0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
});

test.run();
