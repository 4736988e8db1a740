import { ConfigError } from "../errors.js";
import { gatherRows, type EmbeddingMatrix } from "../embeddings/embedding-matrix.js";
import { float16Table } from "../embeddings/float16.js";
import type { CscKernel } from "../selection/types.js";

/** Candidate columns per kernel row: row r's are ids[ptr[r] .. ptr[r + 1]), ascending matrix rows. */
export type SimilarityTable = { ptr: Uint32Array; ids: Uint32Array };

/** Most entries a dense similarity kernel may have (4 GiB of rows and values); past it, sparse mode. */
export const MAX_DENSE_ENTRIES = 2 ** 29;

/**
 * DELIFT (SE) from given embeddings: s = (cos + 1) / 2 for every kernel row against every kernel
 * column, rows and columns given as rows of the matrix (the norms of the matrix apply). CSC.
 */
export function denseSimilarityKernel(matrix: EmbeddingMatrix, rows: Uint32Array, cols: Uint32Array): CscKernel {
  const nRows = rows.length;
  const nCols = cols.length;
  if (nRows * nCols > MAX_DENSE_ENTRIES) {
    throw new ConfigError(`a dense ${nRows} x ${nCols} SE kernel has more than ${MAX_DENSE_ENTRIES} entries: use sparse mode (--neighbors K)`);
  }
  const dim = matrix.dim;
  const rowBlock = gatherRows(matrix, rows);
  const colPtr = new Uint32Array(nCols + 1);
  const rowIdx = new Uint32Array(nRows * nCols);
  const values = new Float32Array(nRows * nCols);
  const col = new Float32Array(dim);
  for (let c = 0; c < nCols; c++) {
    colPtr[c + 1] = (c + 1) * nRows;
    gatherRows(matrix, cols.subarray(c, c + 1), col);
    for (let r = 0; r < nRows; r++) {
      let dot = 0;
      const base = r * dim;
      for (let d = 0; d < dim; d++) dot += rowBlock[base + d] * col[d];
      rowIdx[c * nRows + r] = r;
      values[c * nRows + r] = similarity(dot);
    }
  }
  return { nRows, nCols, colPtr, rowIdx, values };
}

/**
 * The SE kernel in sparse mode: row r's entries at its candidate columns only (the candidate
 * search's lists, plus random columns), s = (cos + 1) / 2. Built straight into CSC in two passes
 * over the table (count per column, then fill), so nothing but the kernel itself is allocated
 * per entry; rows within a column come out ascending because rows are visited in order.
 */
export function sparseSimilarityKernel(
  matrix: EmbeddingMatrix,
  rows: Uint32Array,
  cols: Uint32Array,
  table: SimilarityTable,
  onProgress?: (rowsDone: number, rowsTotal: number) => void,
): CscKernel {
  const nRows = rows.length;
  const nCols = cols.length;
  if (table.ptr.length !== nRows + 1) throw new ConfigError(`candidate table has ${table.ptr.length - 1} rows, the kernel ${nRows}`);
  const colOf = new Int32Array(matrix.count).fill(-1);
  for (let c = 0; c < nCols; c++) colOf[cols[c]] = c;
  const nnz = table.ptr[nRows];
  const colPtr = new Uint32Array(nCols + 1);
  for (let p = 0; p < nnz; p++) {
    const c = colOf[table.ids[p]];
    if (c < 0) throw new ConfigError(`candidate ${table.ids[p]} is not a column of the kernel`);
    colPtr[c + 1]++;
  }
  for (let c = 0; c < nCols; c++) colPtr[c + 1] += colPtr[c];
  const next = colPtr.slice(0, nCols);
  const rowIdx = new Uint32Array(nnz);
  const values = new Float32Array(nnz);
  const dim = matrix.dim;
  const query = new Float32Array(dim);
  const half = matrix.dtype === "float16" ? float16Table() : null;
  for (let r = 0; r < nRows; r++) {
    if (onProgress && r % 4096 === 0) onProgress(r, nRows);
    gatherRows(matrix, rows.subarray(r, r + 1), query);
    for (let p = table.ptr[r]; p < table.ptr[r + 1]; p++) {
      const g = table.ids[p];
      const base = g * dim;
      let dot = 0;
      if (half) {
        const data = matrix.data as Uint16Array;
        for (let d = 0; d < dim; d++) dot += query[d] * half[data[base + d]];
      } else {
        const data = matrix.data as Float32Array;
        for (let d = 0; d < dim; d++) dot += query[d] * data[base + d];
      }
      const at = next[colOf[g]]++;
      rowIdx[at] = r;
      values[at] = similarity(dot * matrix.invNorms[g]);
    }
  }
  onProgress?.(nRows, nRows);
  return { nRows, nCols, colPtr, rowIdx, values };
}

function similarity(cos: number): number {
  return (Math.min(1, Math.max(-1, cos)) + 1) / 2;
}
