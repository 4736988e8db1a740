import { type CscKernel, type TileOutput } from "../../../common/src/mod.js";
import { columnRows, type TileSpec } from "../plan/tile-spec.js";

export type AssembledKernel = { csc: CscKernel; baseline: Float32Array; truncated: { baseline: number; pairs: number } };

export type KernelAxes = {
  /** Global sample index -> kernel row (targets) / column (examples). */
  rowOf: Map<number, number>;
  colOf: Map<number, number>;
  nRows: number;
  nCols: number;
};

/**
 * Builds UF[i][j] = d0(i) - d1(i | j) in CSC form from stored tiles: baselines first (every row's
 * d0), then each pair tile's distances. Tiles are read one at a time, so memory is the kernel
 * plus one tile.
 */
export async function assembleKernel(
  tiles: TileSpec[],
  axes: KernelAxes,
  read: (tile: TileSpec) => Promise<TileOutput>,
): Promise<AssembledKernel> {
  const baseline = new Float32Array(axes.nRows).fill(Number.NaN);
  let baselineTruncated = 0;
  let pairTruncated = 0;
  const counts = new Uint32Array(axes.nCols + 1);
  for (const tile of tiles) {
    if (tile.kind === "baseline") {
      const out = await read(tile);
      tile.targets.forEach((g, k) => (baseline[axes.rowOf.get(g)!] = out.distances[k]));
      baselineTruncated += out.truncated;
    } else {
      tile.columns.forEach((c, k) => (counts[axes.colOf.get(c)! + 1] += columnRows(tile, k).length));
    }
  }
  const missing = baseline.findIndex((v) => Number.isNaN(v));
  if (missing >= 0) throw new Error(`kernel row ${missing} has no baseline distance: a baseline tile is missing`);

  const colPtr = new Uint32Array(axes.nCols + 1);
  for (let c = 0; c < axes.nCols; c++) colPtr[c + 1] = colPtr[c] + counts[c + 1];
  const nnz = colPtr[axes.nCols];
  const rowIdx = new Uint32Array(nnz);
  const values = new Float32Array(nnz);
  const fill = colPtr.slice(0, axes.nCols);
  for (const tile of tiles) {
    if (tile.kind !== "pairs") continue;
    const out = await read(tile);
    pairTruncated += out.truncated;
    let k = 0;
    for (let t = 0; t < tile.columns.length; t++) {
      const col = axes.colOf.get(tile.columns[t])!;
      for (const g of columnRows(tile, t)) {
        const row = axes.rowOf.get(g)!;
        rowIdx[fill[col]] = row;
        values[fill[col]++] = baseline[row] - out.distances[k++];
      }
    }
  }
  sortColumns({ nRows: axes.nRows, nCols: axes.nCols, colPtr, rowIdx, values });
  return { csc: { nRows: axes.nRows, nCols: axes.nCols, colPtr, rowIdx, values }, baseline, truncated: { baseline: baselineTruncated, pairs: pairTruncated } };
}

/** Rows within each column ascending (tiles may arrive in any order); duplicates are a bug. */
function sortColumns(csc: CscKernel): void {
  for (let c = 0; c < csc.nCols; c++) {
    const start = csc.colPtr[c];
    const end = csc.colPtr[c + 1];
    let sorted = true;
    for (let k = start + 1; k < end; k++) if (csc.rowIdx[k - 1] >= csc.rowIdx[k]) sorted = false;
    if (sorted) continue;
    const order = Array.from({ length: end - start }, (_, k) => start + k).sort((a, b) => csc.rowIdx[a] - csc.rowIdx[b]);
    const rows = order.map((k) => csc.rowIdx[k]);
    const vals = order.map((k) => csc.values[k]);
    for (let k = 0; k < rows.length; k++) {
      if (k > 0 && rows[k] === rows[k - 1]) throw new Error(`kernel column ${c} has row ${rows[k]} twice: overlapping tiles`);
      csc.rowIdx[start + k] = rows[k];
      csc.values[start + k] = vals[k];
    }
  }
}
