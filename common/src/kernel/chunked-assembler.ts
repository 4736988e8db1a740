/**
 * Out-of-core assembly of a kernel into the chunked format from entries that arrive in any order
 * (tiles in the order they were stored, a search's lists in row order). Entries are spilled into
 * one bucket file per chunk-wide column range (external bucketing by column); finish() then turns
 * each bucket, in column order, into the CSC columns of one chunk (rows ascending, a duplicate
 * (row, column) an error) and hands them to ChunkedKernelWriter. Memory is bounded by the spill
 * buffers (`spillBytes`, 32 MiB by default) plus about 40 bytes per entry of one bucket, whatever
 * the kernel's size. Everything lives in temporary siblings of the target until the writer renames
 * its directory into place; abort() (or any failure) removes all of it.
 */
import { closeSync, mkdirSync, openSync, readSync, rmSync, statSync, writeSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { basename, dirname, join, resolve } from "node:path";
import { ConfigError } from "../errors.js";
import { ChunkedKernelWriter, type ChunkedFinish } from "./chunked-writer.js";
import type { ChunkedIndex } from "./chunked-format.js";

export type ChunkedAssemblerOptions = {
  nRows: number;
  nCols: number;
  /** Columns per chunk (and per spill bucket). */
  chunkColumns: number;
  /** Bytes of all spill buffers together (default 32 MiB). */
  spillBytes?: number;
  /** fsync the chunks (default false: an assembled kernel is staging, rebuilt from its sources after a crash). */
  durable?: boolean;
  /** Checked between buckets: an aborted assembly stops and removes what it wrote. */
  signal?: AbortSignal;
  /** Chunks built so far of all, while finish() runs. */
  onChunk?: (done: number, total: number) => void;
};

/** The column width of chunks that matches memoryBlocks (the distributed layout of an in-memory kernel). */
export function defaultChunkColumns(nCols: number): number {
  return Math.min(4096, Math.max(1, Math.ceil(nCols / 256)));
}

const ENTRY_WORDS = 3;

export class ChunkedKernelAssembler {
  private readonly width: number;
  private readonly buckets: number;
  private readonly capacity: number;
  private readonly buffers: Uint32Array[];
  private readonly fill: Uint32Array;
  private readonly spilled: Float64Array;
  private readonly floatView: Float32Array[];
  private entries = 0;
  private closed = false;
  /** Bytes held by the largest bucket's build (for the memory bound, measured). */
  peakBucketEntries = 0;

  private constructor(
    readonly dir: string,
    private readonly spillDir: string,
    private readonly options: ChunkedAssemblerOptions,
  ) {
    const { nCols, chunkColumns } = options;
    this.width = chunkColumns;
    this.buckets = Math.ceil(nCols / chunkColumns);
    const spillBytes = options.spillBytes ?? 32 * 1024 * 1024;
    this.capacity = Math.max(1024, Math.floor(spillBytes / (4 * ENTRY_WORDS) / this.buckets));
    this.buffers = new Array<Uint32Array>(this.buckets);
    this.floatView = new Array<Float32Array>(this.buckets);
    this.fill = new Uint32Array(this.buckets);
    this.spilled = new Float64Array(this.buckets);
  }

  static async create(dir: string, options: ChunkedAssemblerOptions): Promise<ChunkedKernelAssembler> {
    const { nRows, nCols, chunkColumns } = options;
    for (const [name, v] of [["nRows", nRows], ["nCols", nCols], ["chunkColumns", chunkColumns]] as const) {
      if (!Number.isInteger(v) || v < 1 || v > 0xffffffff) throw new ConfigError(`${name} must be an integer in [1, 2^32 - 1], got ${v}`);
    }
    const target = resolve(dir);
    const spillDir = join(dirname(target), `.${basename(target)}.spill-${randomUUID().slice(0, 8)}`);
    mkdirSync(spillDir, { recursive: true });
    return new ChunkedKernelAssembler(target, spillDir, options);
  }

  /** Entries added so far. */
  get count(): number {
    return this.entries;
  }

  /** Adds entry (row, col) = value; rows and columns in range, the value finite (checked). */
  add(row: number, col: number, value: number): void {
    if (this.closed) throw new ConfigError("the kernel assembler is closed");
    if (!(row < this.options.nRows && row >= 0) || !(col < this.options.nCols && col >= 0)) this.failOnIndex(row, col);
    if (!Number.isFinite(value)) this.failOnValue(row, col, value);
    const b = Math.floor(col / this.width);
    let buf = this.buffers[b];
    if (buf === undefined || ENTRY_WORDS * this.fill[b] === buf.length) buf = this.grow(b);
    const at = ENTRY_WORDS * this.fill[b];
    buf[at] = row;
    buf[at + 1] = col - b * this.width;
    this.floatView[b][at + 2] = value;
    if (++this.fill[b] === this.capacity) this.spill(b);
    this.entries++;
  }

  /**
   * Builds the chunks bucket by bucket and writes the side files and the index; the directory is
   * in place when this resolves. On any failure nothing is left behind.
   */
  async finish(extras: ChunkedFinish = {}): Promise<ChunkedIndex> {
    if (this.closed) throw new ConfigError("the kernel assembler is closed");
    this.closed = true;
    let writer: ChunkedKernelWriter | null = null;
    try {
      writer = await ChunkedKernelWriter.create(this.dir, { nRows: this.options.nRows, chunkColumns: this.width, chunkBytes: Number.MAX_SAFE_INTEGER, durable: this.options.durable ?? false });
      for (let b = 0; b < this.buckets; b++) {
        this.options.signal?.throwIfAborted();
        this.options.onChunk?.(b, this.buckets);
        const colStart = b * this.width;
        const cols = Math.min(this.options.nCols, colStart + this.width) - colStart;
        const block = this.bucketColumns(b, cols, colStart);
        for (let c = 0; c < cols; c++) {
          const a = block.colPtr[c];
          const e = block.colPtr[c + 1];
          if (!writer.appendColumn(block.rows.subarray(a, e), block.values.subarray(a, e))) await writer.drain();
        }
      }
      this.options.onChunk?.(this.buckets, this.buckets);
      const index = await writer.finish(extras);
      writer = null;
      return index;
    } catch (err) {
      await writer?.abort();
      throw err;
    } finally {
      this.removeSpill();
    }
  }

  /** Stops and removes everything written so far (spill files; the writer's are removed by finish's failure). */
  async abort(): Promise<void> {
    this.closed = true;
    this.removeSpill();
  }

  /** A bucket's buffer starts small and doubles up to its share of spillBytes (small kernels stay small). */
  private grow(b: number): Uint32Array {
    const old = this.buffers[b];
    const entries = Math.min(this.capacity, old === undefined ? 256 : (2 * old.length) / ENTRY_WORDS);
    const buf = new Uint32Array(ENTRY_WORDS * entries);
    if (old !== undefined) buf.set(old.subarray(0, ENTRY_WORDS * this.fill[b]));
    this.buffers[b] = buf;
    this.floatView[b] = new Float32Array(buf.buffer);
    return buf;
  }

  private removeSpill(): void {
    this.buffers.fill(undefined as unknown as Uint32Array);
    rmSync(this.spillDir, { recursive: true, force: true });
  }

  private bucketFile(b: number): string {
    return join(this.spillDir, `bucket-${b}.bin`);
  }

  private spill(b: number): void {
    const n = this.fill[b];
    if (n === 0) return;
    const fd = openSync(this.bucketFile(b), "a");
    try {
      const bytes = new Uint8Array(this.buffers[b].buffer, 0, 4 * ENTRY_WORDS * n);
      let done = 0;
      while (done < bytes.byteLength) done += writeSync(fd, bytes, done, bytes.byteLength - done);
    } finally {
      closeSync(fd);
    }
    this.spilled[b] += n;
    this.fill[b] = 0;
  }

  /** Bucket b's entries as CSC columns, rows ascending; a (row, column) twice is an error. */
  private bucketColumns(b: number, cols: number, colStart: number): { colPtr: Uint32Array; rows: Uint32Array; values: Float32Array } {
    const inFile = this.spilled[b];
    const inBuffer = this.fill[b];
    const n = inFile + inBuffer;
    this.peakBucketEntries = Math.max(this.peakBucketEntries, n);
    const words = new Uint32Array(ENTRY_WORDS * n);
    if (inFile > 0) {
      const path = this.bucketFile(b);
      const want = 4 * ENTRY_WORDS * inFile;
      if (statSync(path).size !== want) throw new ConfigError(`spill file ${path} has ${statSync(path).size} bytes, expected ${want}`);
      const fd = openSync(path, "r");
      try {
        const bytes = new Uint8Array(words.buffer, 0, want);
        let done = 0;
        while (done < want) {
          const got = readSync(fd, bytes, done, want - done, done);
          if (got === 0) throw new ConfigError(`spill file ${path} ends after ${done} bytes`);
          done += got;
        }
      } finally {
        closeSync(fd);
      }
      rmSync(path, { force: true });
    }
    if (inBuffer > 0) words.set(this.buffers[b].subarray(0, ENTRY_WORDS * inBuffer), ENTRY_WORDS * inFile);
    this.buffers[b] = undefined as unknown as Uint32Array;
    this.fill[b] = 0;
    const floats = new Float32Array(words.buffer);
    // Counting sort by column (stable: arrival order within a column), then rows sorted per column.
    const colPtr = new Uint32Array(cols + 1);
    for (let t = 0; t < n; t++) colPtr[words[ENTRY_WORDS * t + 1] + 1]++;
    for (let c = 0; c < cols; c++) colPtr[c + 1] += colPtr[c];
    const next = colPtr.slice(0, cols);
    const rows = new Uint32Array(n);
    const values = new Float32Array(n);
    for (let t = 0; t < n; t++) {
      const at = next[words[ENTRY_WORDS * t + 1]]++;
      rows[at] = words[ENTRY_WORDS * t];
      values[at] = floats[ENTRY_WORDS * t + 2];
    }
    for (let c = 0; c < cols; c++) sortColumn(rows, values, colPtr[c], colPtr[c + 1], colStart + c);
    return { colPtr, rows, values };
  }

  private failOnIndex(row: number, col: number): never {
    throw new ConfigError(`kernel entry (row ${row}, column ${col}) out of range (the kernel is ${this.options.nRows} x ${this.options.nCols})`);
  }

  private failOnValue(row: number, col: number, value: number): never {
    throw new ConfigError(`kernel entry (row ${row}, column ${col}): value ${value} is not finite`);
  }
}

/** Rows of one column ascending (values alongside); a row twice is an error naming the column. */
function sortColumn(rows: Uint32Array, values: Float32Array, start: number, end: number, column: number): void {
  let sorted = true;
  for (let p = start + 1; p < end; p++) {
    if (rows[p - 1] >= rows[p]) {
      sorted = false;
      break;
    }
  }
  if (sorted) return;
  const order = Uint32Array.from({ length: end - start }, (_, k) => start + k).sort((a, b) => rows[a] - rows[b]);
  const r = Uint32Array.from(order, (p) => rows[p]);
  const v = Float32Array.from(order, (p) => values[p]);
  for (let k = 0; k < r.length; k++) {
    if (k > 0 && r[k] === r[k - 1]) failOnDuplicate(column, r[k]);
    rows[start + k] = r[k];
    values[start + k] = v[k];
  }
}

function failOnDuplicate(column: number, row: number): never {
  throw new ConfigError(`kernel column ${column} has row ${row} twice: overlapping tiles`);
}
