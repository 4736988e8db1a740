/**
 * DELIFT (SE) on given embeddings, out of core: the search phase's output (each kernel row's
 * candidate columns, as a table over embedding-matrix rows) becomes the chunked kernel without the
 * CSC ever being whole in memory. Rows are taken in blocks; each block's similarities come from the
 * same functions the in-memory kernel uses (sparseSimilarityKernel / denseSimilarityKernel on the
 * block's rows, entry for entry the same float32 values) and go into the assembler's column buckets.
 */
import { ConfigError } from "../../../common/src/errors.js";
import { ChunkedKernelAssembler, MAX_DENSE_ENTRIES, defaultChunkColumns, denseSimilarityKernel, sparseSimilarityKernel, type ChunkedIndex, type CscKernel, type EmbeddingMatrix } from "../../../common/src/mod.js";
import type { CandidateTable } from "../plan/compact-plan.js";

/** What the search phase hands the selection for one kernel: rows and columns as matrix rows, and the candidates (null: dense). */
export type SearchedKernel = { rows: Uint32Array; cols: Uint32Array; table: CandidateTable | null };

/** Entries built per block of rows (bounds the block's CSC at about 8 MB). */
const BLOCK_ENTRIES = 1_000_000;

export async function stageSimilarityChunked(
  matrix: EmbeddingMatrix,
  kernel: SearchedKernel,
  dir: string,
  options: { signal?: AbortSignal; onRows?: (done: number, total: number) => void; onChunk?: (done: number, total: number) => void; spillBytes?: number; blockEntries?: number } = {},
): Promise<ChunkedIndex> {
  const { rows, cols, table } = kernel;
  const nRows = rows.length;
  if (!table && nRows * cols.length > MAX_DENSE_ENTRIES) {
    throw new ConfigError(`a dense ${nRows} x ${cols.length} SE kernel has more than ${MAX_DENSE_ENTRIES} entries: use sparse mode (--neighbors K)`);
  }
  const assembler = await ChunkedKernelAssembler.create(dir, { nRows, nCols: cols.length, chunkColumns: defaultChunkColumns(cols.length), signal: options.signal, spillBytes: options.spillBytes, onChunk: options.onChunk });
  try {
    const perRow = table ? Math.max(1, table.ptr[nRows] / nRows) : cols.length;
    const block = Math.max(1, Math.floor((options.blockEntries ?? BLOCK_ENTRIES) / perRow));
    for (let a = 0; a < nRows; a += block) {
      options.signal?.throwIfAborted();
      options.onRows?.(a, nRows);
      const b = Math.min(nRows, a + block);
      const part = table ? sparseSimilarityKernel(matrix, rows.subarray(a, b), cols, subTable(table, a, b)) : denseSimilarityKernel(matrix, rows.subarray(a, b), cols);
      addBlock(assembler, part, a);
    }
    options.onRows?.(nRows, nRows);
  } catch (err) {
    await assembler.abort();
    throw err;
  }
  return assembler.finish();
}

/** Rows [a, b) of a candidate table, offsets from 0. */
function subTable(table: CandidateTable, a: number, b: number): CandidateTable {
  const base = table.ptr[a];
  const ptr = new Uint32Array(b - a + 1);
  for (let r = a; r <= b; r++) ptr[r - a] = table.ptr[r] - base;
  return { ptr, ids: table.ids.subarray(base, table.ptr[b]) };
}

function addBlock(assembler: ChunkedKernelAssembler, part: CscKernel, rowOffset: number): void {
  for (let c = 0; c < part.nCols; c++) {
    for (let p = part.colPtr[c]; p < part.colPtr[c + 1]; p++) assembler.add(rowOffset + part.rowIdx[p], c, part.values[p]);
  }
}
