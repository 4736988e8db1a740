/**
 * Between the chunked format and the whole-kernel forms: an in-memory kernel written as chunks,
 * a chunked kernel read back whole (for kernels that fit), and today's kernel.bin converted.
 */
import { InputError } from "../errors.js";
import type { CscKernel } from "../selection/types.js";
import { ChunkedKernel } from "./chunked-reader.js";
import { ChunkedKernelWriter, type ChunkedWriterOptions } from "./chunked-writer.js";
import type { ChunkedIndex } from "./chunked-format.js";

/** What the chunked format carries besides the entries (all optional). */
export type ChunkedExtras = {
  baseline?: Float32Array | null;
  rowIds?: string[] | null;
  colIds?: string[] | null;
  metadata?: Record<string, unknown>;
};

/** Writes an in-memory kernel in the chunked format. */
export async function writeChunkedKernel(
  dir: string,
  csc: CscKernel,
  extras: ChunkedExtras = {},
  options: Omit<ChunkedWriterOptions, "nRows"> = {},
): Promise<ChunkedIndex> {
  const writer = await ChunkedKernelWriter.create(dir, { ...options, nRows: csc.nRows });
  try {
    await writer.appendKernel(csc);
  } catch (err) {
    await writer.abort();
    throw err;
  }
  return writer.finish({
    baseline: extras.baseline ?? undefined,
    rowIds: extras.rowIds ?? undefined,
    colIds: extras.colIds ?? undefined,
    metadata: extras.metadata,
  });
}

/** A chunked kernel read whole, with what it carries besides the entries. */
export async function readChunkedKernel(dir: string): Promise<{ csc: CscKernel; index: ChunkedIndex; baseline: Float32Array | null; rowIds: string[] | null; colIds: string[] | null }> {
  const kernel = await ChunkedKernel.open(dir);
  const csc = await kernel.readAll();
  if (csc.rowIdx.length !== kernel.index.nnz) throw new InputError({ file: dir }, `read ${csc.rowIdx.length} entries, the index says ${kernel.index.nnz}`);
  return { csc, index: kernel.index, baseline: await kernel.readBaseline(), rowIds: await kernel.readIds("rows"), colIds: await kernel.readIds("cols") };
}

/** The metadata fields kernel.json keeps next to shape and ids. */
type UtilityLike = { csc: CscKernel; baseline: Float32Array; metadata: { rowIds: string[]; colIds: string[]; [key: string]: unknown } };

/** Writes a utility kernel (as readKernel returns it, e.g. from kernel.bin) in the chunked format. */
export async function utilityKernelToChunked(dir: string, kernel: UtilityLike, options: Omit<ChunkedWriterOptions, "nRows"> = {}): Promise<ChunkedIndex> {
  const { rowIds, colIds, nRows: _r, nCols: _c, nnz: _n, ...rest } = kernel.metadata;
  return writeChunkedKernel(dir, kernel.csc, { baseline: kernel.baseline, rowIds, colIds, metadata: rest }, options);
}

/**
 * A chunked kernel as a whole utility kernel (readKernel's shape): it must carry the P0
 * baseline and both id lists, as kernels written by delift do.
 */
export async function readChunkedUtilityKernel<M>(dir: string): Promise<{ csc: CscKernel; baseline: Float32Array; metadata: M }> {
  const r = await readChunkedKernel(dir);
  if (!r.baseline || !r.rowIds || !r.colIds) {
    throw new InputError({ file: dir }, "this chunked kernel has no baseline or sample ids; it can be selected from directly (delift select --kernel DIR without --model) but not reused for a data set");
  }
  const metadata = { ...r.index.metadata, nRows: r.index.nRows, nCols: r.index.nCols, nnz: r.index.nnz, rowIds: r.rowIds, colIds: r.colIds } as M;
  return { csc: r.csc, baseline: r.baseline, metadata };
}
