/**
 * Building and checking column-compressed (CSC) kernels.
 */
import { ConfigError } from "../errors.js";
import type { CscKernel, KernelTriplets } from "./types.js";

/**
 * Builds a CSC kernel from triplets given in any order. Rows within each column come out
 * ascending. A duplicate (row, col), an index out of range or a non-finite value is a ConfigError.
 */
export function cscFromTriplets(triplets: KernelTriplets): CscKernel {
  const { nRows, nCols, row, col, value } = triplets;
  checkShape(nRows, nCols);
  const nnz = row.length;
  if (col.length !== nnz || value.length !== nnz) {
    throw new ConfigError(
      `triplet arrays differ in length: row ${row.length}, col ${col.length}, value ${value.length}`,
    );
  }
  checkEntryCount(nnz);
  for (let t = 0; t < nnz; t++) {
    if (row[t] >= nRows || col[t] >= nCols || !Number.isFinite(value[t])) failOnTriplet(triplets, t);
  }

  // Two stable counting sorts (by row, then by column) leave each column's rows ascending
  // in O(nnz + nRows + nCols), however the triplets were ordered.
  const byRow = countingOrder(row, nRows);
  const colPtr = new Uint32Array(nCols + 1);
  for (let t = 0; t < nnz; t++) colPtr[col[t] + 1]++;
  for (let j = 0; j < nCols; j++) colPtr[j + 1] += colPtr[j];
  const next = colPtr.slice(0, nCols);
  const rowIdx = new Uint32Array(nnz);
  const values = new Float32Array(nnz);
  for (let p = 0; p < nnz; p++) {
    const t = byRow[p];
    const dest = next[col[t]]++;
    rowIdx[dest] = row[t];
    values[dest] = value[t];
  }
  for (let j = 0; j < nCols; j++) {
    for (let p = colPtr[j] + 1; p < colPtr[j + 1]; p++) {
      if (rowIdx[p] === rowIdx[p - 1]) failOnRow({ nRows, nCols, colPtr, rowIdx, values }, j, p);
    }
  }
  return { nRows, nCols, colPtr, rowIdx, values };
}

/** Builds a CSC kernel that stores every entry of a dense row-major nRows x nCols matrix. */
export function cscFromDense(data: Float32Array, nRows: number, nCols: number): CscKernel {
  checkShape(nRows, nCols);
  if (data.length !== nRows * nCols) {
    throw new ConfigError(`dense kernel has ${data.length} values, expected ${nRows} x ${nCols} = ${nRows * nCols}`);
  }
  const nnz = nRows * nCols;
  checkEntryCount(nnz);
  const colPtr = new Uint32Array(nCols + 1);
  const rowIdx = new Uint32Array(nnz);
  const values = new Float32Array(nnz);
  for (let j = 0; j < nCols; j++) {
    const start = j * nRows;
    colPtr[j + 1] = start + nRows;
    for (let i = 0; i < nRows; i++) {
      const v = data[i * nCols + j];
      if (!Number.isFinite(v)) failOnDenseValue(v, i, j);
      rowIdx[start + i] = i;
      values[start + i] = v;
    }
  }
  return { nRows, nCols, colPtr, rowIdx, values };
}

/** Bytes held by the kernel's three arrays. */
export function kernelBytes(kernel: CscKernel): number {
  return kernel.colPtr.byteLength + kernel.rowIdx.byteLength + kernel.values.byteLength;
}

/**
 * Checks the structural invariants the optimisers rely on (offsets, row range, strictly
 * increasing rows per column, finite values); throws a ConfigError naming the first violation.
 */
export function validateKernel(kernel: CscKernel): void {
  checkKernel(kernel, false);
}

/** validateKernel, and with requireNonNegative also no negative value, in the same single pass. */
export function checkKernel(kernel: CscKernel, requireNonNegative: boolean): void {
  const { nRows, nCols, colPtr, rowIdx, values } = kernel;
  checkShape(nRows, nCols);
  if (colPtr.length !== nCols + 1) {
    throw new ConfigError(`colPtr has length ${colPtr.length}, expected nCols + 1 = ${nCols + 1}`);
  }
  const nnz = rowIdx.length;
  if (values.length !== nnz || colPtr[0] !== 0 || colPtr[nCols] !== nnz) {
    throw new ConfigError(
      `inconsistent kernel arrays: colPtr[0] = ${colPtr[0]}, colPtr[nCols] = ${colPtr[nCols]}, ` +
        `rowIdx ${nnz}, values ${values.length}`,
    );
  }
  for (let j = 0; j < nCols; j++) {
    const start = colPtr[j];
    const end = colPtr[j + 1];
    if (end < start) throw new ConfigError(`colPtr decreases at column ${j}`);
    for (let p = start; p < end; p++) {
      const r = rowIdx[p];
      if (r >= nRows || (p > start && r <= rowIdx[p - 1])) failOnRow(kernel, j, p);
      const v = values[p];
      if (!Number.isFinite(v) || (requireNonNegative && v < 0)) failOnValue(kernel, j, p);
    }
  }
}

// The failOn* helpers build the messages outside the hot loops: a throw with a template string
// inline in a loop makes V8 compile the whole loop several times slower.

function failOnTriplet(triplets: KernelTriplets, t: number): never {
  const { nRows, nCols, row, col, value } = triplets;
  if (row[t] >= nRows) throw new ConfigError(`triplet ${t}: row ${row[t]} out of range (kernel has ${nRows} rows)`);
  if (col[t] >= nCols) {
    throw new ConfigError(`triplet ${t}: column ${col[t]} out of range (kernel has ${nCols} columns)`);
  }
  throw new ConfigError(`triplet ${t} (row ${row[t]}, column ${col[t]}): value ${value[t]} is not finite`);
}

function failOnDenseValue(v: number, i: number, j: number): never {
  throw new ConfigError(`dense kernel entry (row ${i}, column ${j}): value ${v} is not finite`);
}

function failOnRow(kernel: CscKernel, j: number, p: number): never {
  const r = kernel.rowIdx[p];
  if (r >= kernel.nRows) throw new ConfigError(`column ${j}: row ${r} out of range (kernel has ${kernel.nRows} rows)`);
  if (r === kernel.rowIdx[p - 1]) throw new ConfigError(`duplicate kernel entry at row ${r}, column ${j}`);
  throw new ConfigError(`column ${j}: rows not in ascending order at row ${r}`);
}

function failOnValue(kernel: CscKernel, j: number, p: number): never {
  const where = `kernel entry (row ${kernel.rowIdx[p]}, column ${j})`;
  const v = kernel.values[p];
  if (!Number.isFinite(v)) throw new ConfigError(`${where}: value ${v} is not finite`);
  throw new ConfigError(`${where}: value ${v} is negative; scale the kernel first (scaleKernelInPlace)`);
}

function checkShape(nRows: number, nCols: number): void {
  for (const [name, size] of [["rows", nRows], ["columns", nCols]] as const) {
    if (!Number.isInteger(size) || size < 0 || size > 0xffffffff) {
      throw new ConfigError(`kernel ${name} must be a non-negative 32-bit integer, got ${size}`);
    }
  }
  if (nRows === 0 || nCols === 0) {
    throw new ConfigError(`empty kernel (${nRows} rows x ${nCols} columns): nothing to select from`);
  }
}

function checkEntryCount(nnz: number): void {
  if (nnz > 0xffffffff) {
    throw new ConfigError(`kernel has ${nnz} entries; at most 2^32 - 1 fit the 32-bit column offsets`);
  }
}

/** Positions 0..keys.length-1 ordered by key, stable. */
function countingOrder(keys: Uint32Array, keyCount: number): Uint32Array {
  const start = new Uint32Array(keyCount + 1);
  for (let t = 0; t < keys.length; t++) start[keys[t] + 1]++;
  for (let r = 0; r < keyCount; r++) start[r + 1] += start[r];
  const order = new Uint32Array(keys.length);
  for (let t = 0; t < keys.length; t++) order[start[keys[t]]++] = t;
  return order;
}
