/**
 * Reader of the chunked kernel format (chunked-format.ts). A chunk is read into one buffer and
 * handed out as typed-array views of it; a column range is read straight into the arrays of the
 * range's kernel (only a chunk cut by the range's ends passes through a buffer of its own). Every
 * chunk read is checked against the index: size, header, sha256, then its structure (offsets, rows
 * in range and ascending, finite values). Problems are InputErrors naming the file.
 */
import { createHash, type Hash } from "node:crypto";
import { open, readFile, stat, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { ConfigError, InputError } from "../errors.js";
import type { CscKernel } from "../selection/types.js";
import {
  CHUNKED_INDEX_FILE,
  CHUNK_HEADER_BYTES,
  checkChunkHeader,
  chunkLayout,
  parseChunkedIndex,
  requireLittleEndian,
  type ChunkEntry,
  type ChunkedIndex,
} from "./chunked-format.js";

export type ReadOptions = {
  /** Check each chunk's sha256 (default true; a shard reading its range once should). */
  verify?: boolean;
};

/** One chunk: columns [colStart, colEnd) as a kernel of their own (column 0 = colStart). */
export type KernelChunk = { colStart: number; colEnd: number; kernel: CscKernel };

/** Whether DIR holds a chunked kernel (its index file). */
export async function isChunkedKernelDir(dir: string): Promise<boolean> {
  return stat(join(dir, CHUNKED_INDEX_FILE)).then((s) => s.isFile(), () => false);
}

export class ChunkedKernel {
  private constructor(
    readonly dir: string,
    readonly index: ChunkedIndex,
  ) {}

  /**
   * Reads and checks the index, and that every chunk file is there with its full size (a torn
   * write shows here). With partial, only the files present are checked: a copy holding just the
   * chunks one shard reads (each read still checks size and sha256).
   */
  static async open(dir: string, options: { partial?: boolean } = {}): Promise<ChunkedKernel> {
    requireLittleEndian();
    const path = join(dir, CHUNKED_INDEX_FILE);
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch (err) {
      throw new InputError({ file: path }, `cannot read the chunked kernel index: ${(err as Error).message}`, { cause: err });
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw new InputError({ file: path }, `not valid JSON (a torn or foreign file?): ${(err as Error).message}`, { cause: err });
    }
    const index = parseChunkedIndex(raw, path);
    const side = [index.baseline, index.rowIds, index.colIds].filter((s) => s !== null);
    for (const f of [...index.chunks, ...side]) {
      const file = join(dir, f.file);
      const size = await stat(file).then((s) => s.size, (err: NodeJS.ErrnoException) => {
        if (options.partial && err.code === "ENOENT") return f.bytes;
        throw new InputError({ file }, `missing: ${err.code ?? err.message}`, { cause: err });
      });
      if (size !== f.bytes) throw new InputError({ file }, `size ${size} bytes, the index says ${f.bytes} (torn or truncated write?)`);
    }
    return new ChunkedKernel(dir, index);
  }

  get nRows(): number {
    return this.index.nRows;
  }

  get nCols(): number {
    return this.index.nCols;
  }

  /** The chunk holding column j. */
  chunkOf(j: number): number {
    const { chunks } = this.index;
    let lo = 0;
    let hi = chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (chunks[mid].colStart <= j) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /**
   * Splits the columns into `parts` contiguous ranges that start and end on chunk boundaries,
   * balanced by stored entries (fewer ranges when there are fewer chunks).
   */
  chunkAlignedRanges(parts: number): { colStart: number; colEnd: number }[] {
    return balancedRanges(this.index.chunks.map((c) => ({ colStart: c.colStart, colEnd: c.colEnd, weight: c.nnz + (c.colEnd - c.colStart) })), parts);
  }

  /** Reads chunk k into one buffer; the kernel's arrays are views of it. */
  async readChunk(k: number, options: ReadOptions = {}): Promise<KernelChunk> {
    const entry = this.index.chunks[k];
    if (!entry) throw new ConfigError(`chunk ${k} does not exist (the kernel has ${this.index.chunks.length})`);
    const path = join(this.dir, entry.file);
    const buffer = new ArrayBuffer(entry.bytes);
    const bytes = new Uint8Array(buffer);
    await withFile(path, (h) => readExactly(h, bytes, 0, path));
    if (options.verify !== false) checkSha(createHash("sha256").update(bytes), entry, path);
    checkChunkHeader(bytes.subarray(0, CHUNK_HEADER_BYTES), entry, this.nRows, path);
    const cols = entry.colEnd - entry.colStart;
    const layout = chunkLayout(cols, entry.nnz);
    const kernel: CscKernel = {
      nRows: this.nRows,
      nCols: cols,
      colPtr: new Uint32Array(buffer, layout.colPtrAt, cols + 1),
      rowIdx: new Uint32Array(buffer, layout.rowIdxAt, entry.nnz),
      values: new Float32Array(buffer, layout.valuesAt, entry.nnz),
    };
    checkChunkArrays(kernel.colPtr, kernel.rowIdx, kernel.values, this.nRows, path);
    return { colStart: entry.colStart, colEnd: entry.colEnd, kernel };
  }

  /**
   * Columns [colStart, colEnd) as one kernel (column 0 = colStart). Whole chunks are read
   * straight into its arrays; a chunk cut by the range's ends is read whole (to check its sha256)
   * and the part inside copied.
   */
  async readColumns(colStart: number, colEnd: number, options: ReadOptions = {}): Promise<CscKernel> {
    if (!Number.isInteger(colStart) || !Number.isInteger(colEnd) || colStart < 0 || colEnd > this.nCols || colStart >= colEnd) {
      throw new ConfigError(`column range [${colStart}, ${colEnd}) is not inside [0, ${this.nCols})`);
    }
    const first = this.chunkOf(colStart);
    const last = this.chunkOf(colEnd - 1);
    const { chunks } = this.index;
    // Chunks cut by the range: read whole first, to know how many of their entries fall inside.
    const cut = new Map<number, KernelChunk>();
    for (const k of new Set([first, last])) {
      if (chunks[k].colStart < colStart || chunks[k].colEnd > colEnd) cut.set(k, await this.readChunk(k, options));
    }
    const slice = (k: number) => {
      const c = cut.get(k)!;
      const a = Math.max(colStart, c.colStart) - c.colStart;
      const b = Math.min(colEnd, c.colEnd) - c.colStart;
      return { c, a, b, from: c.kernel.colPtr[a], to: c.kernel.colPtr[b] };
    };
    let nnz = 0;
    for (let k = first; k <= last; k++) nnz += cut.has(k) ? slice(k).to - slice(k).from : chunks[k].nnz;
    if (nnz > 0xffffffff) throw new ConfigError(`columns [${colStart}, ${colEnd}) hold ${nnz} entries; one read holds at most 2^32 - 1`);
    const cols = colEnd - colStart;
    const colPtr = new Uint32Array(cols + 1);
    const rowIdx = new Uint32Array(nnz);
    const values = new Float32Array(nnz);
    let at = 0;
    for (let k = first; k <= last; k++) {
      const base = Math.max(colStart, chunks[k].colStart) - colStart;
      if (cut.has(k)) {
        const s = slice(k);
        rowIdx.set(s.c.kernel.rowIdx.subarray(s.from, s.to), at);
        values.set(s.c.kernel.values.subarray(s.from, s.to), at);
        for (let q = s.a; q <= s.b; q++) colPtr[base + q - s.a] = at + s.c.kernel.colPtr[q] - s.from;
        at += s.to - s.from;
        continue;
      }
      const entry = chunks[k];
      const path = join(this.dir, entry.file);
      const chunkCols = entry.colEnd - entry.colStart;
      const layout = chunkLayout(chunkCols, entry.nnz);
      const head = new Uint8Array(layout.rowIdxAt);
      const rowsPart = new Uint8Array(rowIdx.buffer, rowIdx.byteOffset + 4 * at, 4 * entry.nnz);
      const valuesPart = new Uint8Array(values.buffer, values.byteOffset + 4 * at, 4 * entry.nnz);
      await withFile(path, async (h) => {
        await readExactly(h, head, 0, path);
        await readExactly(h, rowsPart, layout.rowIdxAt, path);
        await readExactly(h, valuesPart, layout.valuesAt, path);
      });
      if (options.verify !== false) checkSha(createHash("sha256").update(head).update(rowsPart).update(valuesPart), entry, path);
      checkChunkHeader(head.subarray(0, CHUNK_HEADER_BYTES), entry, this.nRows, path);
      const chunkPtr = new Uint32Array(head.buffer, layout.colPtrAt, chunkCols + 1);
      checkChunkArrays(chunkPtr, rowIdx.subarray(at, at + entry.nnz), values.subarray(at, at + entry.nnz), this.nRows, path);
      for (let q = 0; q <= chunkCols; q++) colPtr[base + q] = at + chunkPtr[q];
      at += entry.nnz;
    }
    return { nRows: this.nRows, nCols: cols, colPtr, rowIdx, values };
  }

  /** The whole kernel in memory (for kernels that fit). */
  readAll(options: ReadOptions = {}): Promise<CscKernel> {
    return this.readColumns(0, this.nCols, options);
  }

  /** The P0 distances, one per row, or null when the kernel has none. */
  async readBaseline(): Promise<Float32Array | null> {
    const side = this.index.baseline;
    if (!side) return null;
    const path = join(this.dir, side.file);
    const out = new Float32Array(this.nRows);
    const bytes = new Uint8Array(out.buffer);
    await withFile(path, (h) => readExactly(h, bytes, 0, path));
    checkSha(createHash("sha256").update(bytes), side, path);
    return out;
  }

  /** Sample ids of the rows or columns, or null when the kernel has none. */
  async readIds(which: "rows" | "cols"): Promise<string[] | null> {
    const side = which === "rows" ? this.index.rowIds : this.index.colIds;
    if (!side) return null;
    const path = join(this.dir, side.file);
    const bytes = await readFile(path);
    checkSha(createHash("sha256").update(bytes), side, path);
    const ids: string[] = [];
    let start = 0;
    const text = bytes.toString("utf8");
    for (let line = 1; start < text.length; line++) {
      const end = text.indexOf("\n", start);
      const part = text.slice(start, end < 0 ? text.length : end);
      start = end < 0 ? text.length : end + 1;
      let id: unknown;
      try {
        id = JSON.parse(part);
      } catch {
        id = undefined;
      }
      if (typeof id !== "string") throw new InputError({ file: path, line }, "expected a JSON string (a sample id)");
      ids.push(id);
    }
    if (ids.length !== side.count) throw new InputError({ file: path }, `${ids.length} ids, the index says ${side.count}`);
    return ids;
  }
}

/**
 * Splits consecutive blocks into at most `parts` contiguous ranges of blocks, each about the
 * same total weight; no range is empty.
 */
export function balancedRanges(blocks: { colStart: number; colEnd: number; weight: number }[], parts: number): { colStart: number; colEnd: number }[] {
  if (!Number.isInteger(parts) || parts < 1) throw new ConfigError(`parts must be a positive integer, got ${parts}`);
  const count = Math.min(parts, blocks.length);
  const total = blocks.reduce((s, b) => s + b.weight, 0);
  const out: { colStart: number; colEnd: number }[] = [];
  let k = 0;
  let acc = 0;
  for (let p = 0; p < count; p++) {
    const start = k;
    const goal = (total * (p + 1)) / count;
    // Leave at least one block for each range still to come.
    while (k < blocks.length - (count - p - 1) && (k === start || acc + blocks[k].weight / 2 <= goal)) acc += blocks[k++].weight;
    if (p === count - 1) while (k < blocks.length) acc += blocks[k++].weight;
    out.push({ colStart: blocks[start].colStart, colEnd: blocks[k - 1].colEnd });
  }
  return out;
}

async function withFile<T>(path: string, fn: (h: FileHandle) => Promise<T>): Promise<T> {
  let handle: FileHandle;
  try {
    handle = await open(path, "r");
  } catch (err) {
    throw new InputError({ file: path }, `cannot open: ${(err as Error).message}`, { cause: err });
  }
  try {
    return await fn(handle);
  } finally {
    await handle.close();
  }
}

async function readExactly(handle: FileHandle, into: Uint8Array, position: number, path: string): Promise<void> {
  let done = 0;
  while (done < into.byteLength) {
    const { bytesRead } = await handle.read(into, done, Math.min(into.byteLength - done, 1 << 30), position + done);
    if (bytesRead === 0) throw new InputError({ file: path }, `ends after ${position + done} bytes (truncated)`);
    done += bytesRead;
  }
}

function checkSha(hash: Hash, entry: { sha256: string }, path: string): void {
  const got = hash.digest("hex");
  if (got !== entry.sha256) throw new InputError({ file: path }, `sha256 ${got.slice(0, 16)}... does not match the index (${entry.sha256.slice(0, 16)}...): the file is corrupt`);
}

/** Offsets from 0 to nnz, non-decreasing; rows below nRows and ascending in each column; finite values. */
function checkChunkArrays(colPtr: Uint32Array, rowIdx: Uint32Array, values: Float32Array, nRows: number, path: string): void {
  const cols = colPtr.length - 1;
  if (colPtr[0] !== 0 || colPtr[cols] !== rowIdx.length) throw new InputError({ file: path, field: "colPtr" }, `must run from 0 to ${rowIdx.length}`);
  for (let j = 0; j < cols; j++) {
    const a = colPtr[j];
    const b = colPtr[j + 1];
    if (b < a) failOnChunk(path, j, "column offsets decrease");
    for (let p = a; p < b; p++) {
      const r = rowIdx[p];
      if (r >= nRows || (p > a && r <= rowIdx[p - 1])) failOnChunk(path, j, `row ${r} out of range or out of order`);
      if (!Number.isFinite(values[p])) failOnChunk(path, j, `value ${values[p]} is not finite`);
    }
  }
}

/** Outside the loop: a throw with a template string inline slows the whole loop in V8. */
function failOnChunk(path: string, column: number, what: string): never {
  throw new InputError({ file: path, field: `column ${column}` }, what);
}

export type { ChunkEntry };
