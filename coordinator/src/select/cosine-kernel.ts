import type { CscKernel } from "../../../common/src/mod.js";

/**
 * DELIFT (SE): s[r][c] = (cos(e_r, e_c) + 1) / 2 for every row sample r and column sample c,
 * from L2-normalised embeddings (row k at k * dim). Dense, in CSC form.
 */
export function cosineKernel(embeddings: Float32Array, dim: number, rows: Uint32Array, cols: Uint32Array): CscKernel {
  const nRows = rows.length;
  const nCols = cols.length;
  const colPtr = new Uint32Array(nCols + 1);
  const rowIdx = new Uint32Array(nRows * nCols);
  const values = new Float32Array(nRows * nCols);
  for (let c = 0; c < nCols; c++) {
    colPtr[c + 1] = (c + 1) * nRows;
    const cb = cols[c] * dim;
    for (let r = 0; r < nRows; r++) {
      const rb = rows[r] * dim;
      let dot = 0;
      for (let d = 0; d < dim; d++) dot += embeddings[rb + d] * embeddings[cb + d];
      rowIdx[c * nRows + r] = r;
      values[c * nRows + r] = (Math.min(1, Math.max(-1, dot)) + 1) / 2;
    }
  }
  return { nRows, nCols, colPtr, rowIdx, values };
}
