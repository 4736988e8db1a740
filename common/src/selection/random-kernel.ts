/**
 * Seeded synthetic kernels for benchmarks and tests, written straight into CSC arrays.
 */
import { ConfigError } from "../errors.js";
import { Xoshiro128 } from "./prng.js";
import type { CscKernel } from "./types.js";

export type RandomKernelOptions = {
  nRows: number;
  nCols: number;
  /** Stored entries per column, distinct uniformly random rows; 1..nRows. */
  perColumn: number;
  seed: number;
  /** When set, values are drawn from {0, 1/levels, .., (levels-1)/levels}, which makes ties likely. */
  levels?: number;
};

/** A kernel whose columns each store perColumn random rows with uniform values in [0, 1). */
export function randomSparseKernel(options: RandomKernelOptions): CscKernel {
  const { nRows, nCols, perColumn, seed, levels } = options;
  if (!Number.isInteger(nRows) || !Number.isInteger(nCols) || nRows < 1 || nCols < 1) {
    throw new ConfigError(`random kernel needs at least one row and one column, got ${nRows} x ${nCols}`);
  }
  if (!Number.isInteger(perColumn) || perColumn < 1 || perColumn > nRows) {
    throw new ConfigError(`perColumn must be an integer between 1 and ${nRows}, got ${perColumn}`);
  }
  if (levels !== undefined && (!Number.isInteger(levels) || levels < 1)) {
    throw new ConfigError(`levels must be a positive integer, got ${levels}`);
  }
  const nnz = nCols * perColumn;
  if (nnz > 0xffffffff) throw new ConfigError(`random kernel would have ${nnz} entries, more than 2^32 - 1`);

  const rng = new Xoshiro128(seed);
  const colPtr = new Uint32Array(nCols + 1);
  const rowIdx = new Uint32Array(nnz);
  const values = new Float32Array(nnz);
  const taken = new Uint8Array(nRows);
  for (let j = 0; j < nCols; j++) {
    const start = j * perColumn;
    const end = start + perColumn;
    colPtr[j + 1] = end;
    // Floyd's algorithm: a uniform perColumn-subset of the rows in exactly perColumn draws.
    let p = start;
    for (let top = nRows - perColumn; top < nRows; top++) {
      const candidate = rng.nextBelow(top + 1);
      const row = taken[candidate] === 1 ? top : candidate;
      taken[row] = 1;
      rowIdx[p++] = row;
    }
    sortAscending(rowIdx, start, end);
    for (let q = start; q < end; q++) {
      taken[rowIdx[q]] = 0;
      const u = rng.nextUint32() / 4294967296;
      values[q] = levels === undefined ? u : Math.floor(u * levels) / levels;
    }
  }
  return { nRows, nCols, colPtr, rowIdx, values };
}

function sortAscending(a: Uint32Array, start: number, end: number): void {
  if (end - start > 64) {
    a.subarray(start, end).sort();
    return;
  }
  for (let i = start + 1; i < end; i++) {
    const v = a[i];
    let k = i - 1;
    while (k >= start && a[k] > v) {
      a[k + 1] = a[k];
      k--;
    }
    a[k + 1] = v;
  }
}
