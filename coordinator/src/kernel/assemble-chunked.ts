import { ChunkedKernelAssembler, defaultChunkColumns, writeChunkedKernel, type ChunkedIndex, type CscKernel, type TileOutput } from "../../../common/src/mod.js";
import { columnRows, type TileSpec } from "../plan/tile-spec.js";
import type { KernelAxes } from "./assemble-kernel.js";

export type ChunkedAssembly = { index: ChunkedIndex; baseline: Float32Array; truncated: { baseline: number; pairs: number }; peakBucketEntries: number };

export type ChunkedAssemblyOptions = {
  /** Row and column sample ids (the chunked format's side files). */
  rowIds?: string[];
  colIds?: string[];
  metadata?: Record<string, unknown>;
  spillBytes?: number;
  signal?: AbortSignal;
  /** Progress: pair tiles read ("tiles"), then chunks built ("chunks"). */
  onProgress?: (step: "tiles" | "chunks", done: number, total: number) => void;
};

/**
 * assembleKernel out of core: UF[i][j] = d0(i) - d1(i | j) written straight into the chunked
 * format in `dir` (chunks as wide as memoryBlocks', baseline.f32 = the d0). Baselines are read
 * first (one float per row), then each pair tile once; its entries go into the assembler's column
 * buckets, so memory is the baselines, one tile and the assembler's bound, never the kernel.
 * The entries, their float32 values and the column order are exactly assembleKernel's.
 */
export async function assembleKernelChunked(
  tiles: TileSpec[],
  axes: KernelAxes,
  read: (tile: TileSpec) => Promise<TileOutput>,
  dir: string,
  options: ChunkedAssemblyOptions = {},
): Promise<ChunkedAssembly> {
  const baseline = new Float32Array(axes.nRows).fill(Number.NaN);
  let baselineTruncated = 0;
  let pairTruncated = 0;
  for (const tile of tiles) {
    if (tile.kind !== "baseline") continue;
    options.signal?.throwIfAborted();
    const out = await read(tile);
    tile.targets.forEach((g, k) => (baseline[axes.rowOf.get(g)!] = out.distances[k]));
    baselineTruncated += out.truncated;
  }
  const missing = baseline.findIndex((v) => Number.isNaN(v));
  if (missing >= 0) throw new Error(`kernel row ${missing} has no baseline distance: a baseline tile is missing`);

  const assembler = await ChunkedKernelAssembler.create(dir, { nRows: axes.nRows, nCols: axes.nCols, chunkColumns: defaultChunkColumns(axes.nCols), spillBytes: options.spillBytes, signal: options.signal, onChunk: (d, t) => options.onProgress?.("chunks", d, t) });
  const pairTiles = tiles.reduce((n, t) => n + (t.kind === "pairs" ? 1 : 0), 0);
  let tilesRead = 0;
  try {
    for (const tile of tiles) {
      if (tile.kind !== "pairs") continue;
      options.signal?.throwIfAborted();
      options.onProgress?.("tiles", tilesRead++, pairTiles);
      const out = await read(tile);
      pairTruncated += out.truncated;
      const d = out.distances;
      let k = 0;
      for (let t = 0; t < tile.columns.length; t++) {
        const col = axes.colOf.get(tile.columns[t])!;
        for (const g of columnRows(tile, t)) {
          const row = axes.rowOf.get(g)!;
          assembler.add(row, col, Math.fround(baseline[row] - d[k++]));
        }
      }
    }
    options.onProgress?.("tiles", pairTiles, pairTiles);
  } catch (err) {
    await assembler.abort();
    throw err;
  }
  const index = await assembler.finish({ baseline, rowIds: options.rowIds, colIds: options.colIds, metadata: options.metadata });
  return { index, baseline, truncated: { baseline: baselineTruncated, pairs: pairTruncated }, peakBucketEntries: assembler.peakBucketEntries };
}

/**
 * An in-memory kernel (the search phase's SE kernel, a reused kernel) into the chunked format,
 * chunks as wide as the assembled ones: the one conversion such kernels go through.
 */
export function stageKernelChunked(dir: string, kernel: CscKernel, baseline: Float32Array | null = null): Promise<ChunkedIndex> {
  return writeChunkedKernel(dir, kernel, { baseline }, { chunkColumns: defaultChunkColumns(kernel.nCols), chunkBytes: Number.MAX_SAFE_INTEGER, durable: false });
}
