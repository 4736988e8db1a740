import { cscFromTriplets, type CscKernel } from "../../../common/src/mod.js";

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

/**
 * The SE kernel in sparse mode: s[r][c] only for each row sample's candidate columns (global
 * indices, e.g. its nearest neighbours), CSC over positions in `rows` and `cols`.
 */
export function sparseCosineKernel(embeddings: Float32Array, dim: number, rows: Uint32Array, cols: Uint32Array, candidates: Uint32Array[]): CscKernel {
  const colOf = new Map(Array.from(cols, (g, k) => [g, k]));
  let nnz = 0;
  for (const list of candidates) nnz += list.length;
  const row = new Uint32Array(nnz);
  const col = new Uint32Array(nnz);
  const value = new Float32Array(nnz);
  let p = 0;
  candidates.forEach((list, r) => {
    const rb = rows[r] * dim;
    for (const g of list) {
      const c = colOf.get(g);
      if (c === undefined) throw new Error(`candidate ${g} is not a column of the kernel`);
      let dot = 0;
      for (let d = 0; d < dim; d++) dot += embeddings[rb + d] * embeddings[g * dim + d];
      row[p] = r;
      col[p] = c;
      value[p++] = (Math.min(1, Math.max(-1, dot)) + 1) / 2;
    }
  });
  return cscFromTriplets({ nRows: rows.length, nCols: cols.length, row, col, value });
}
