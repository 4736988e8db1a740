/**
 * Streaming writer of the chunked kernel format: columns are appended in order and buffered up to
 * one chunk, which is then written (with its sha256) while the next one fills, so memory stays at
 * about two chunks whatever the kernel's size. Everything goes into a temporary sibling directory
 * that is renamed into place by finish(); an aborted or failed write leaves nothing behind.
 */
import { createHash } from "node:crypto";
import { mkdir, open, readdir, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { randomUUID } from "node:crypto";
import { ConfigError } from "../errors.js";
import type { CscKernel } from "../selection/types.js";
import { assertReplaceable } from "../util/output-dir.js";
import {
  BASELINE_FILE,
  CHUNKED_FORMAT,
  CHUNKED_INDEX_FILE,
  COL_IDS_FILE,
  ROW_IDS_FILE,
  chunkFileName,
  chunkLayout,
  encodeChunkHeader,
  requireLittleEndian,
  type ChunkEntry,
  type ChunkedIndex,
  type SideFile,
} from "./chunked-format.js";

export type ChunkedWriterOptions = {
  nRows: number;
  /** Bytes of rowIdx + values per chunk before it is sealed (default 64 MiB). */
  chunkBytes?: number;
  /** Columns per chunk at most (bounds colPtr when columns are nearly empty); default 2^22. */
  chunkColumns?: number;
  /**
   * fsync every file and the directory (default true). False for a kernel staged for one job's
   * selection: it is rebuilt from the stored tiles after a crash, never read back as a result.
   */
  durable?: boolean;
};

export type ChunkedFinish = {
  baseline?: Float32Array;
  rowIds?: Iterable<string>;
  colIds?: Iterable<string>;
  metadata?: Record<string, unknown>;
};

/** Every name the format writes (a directory holding only these may be replaced). */
export function chunkedFileNames(index: Pick<ChunkedIndex, "chunks">): string[] {
  return [CHUNKED_INDEX_FILE, BASELINE_FILE, ROW_IDS_FILE, COL_IDS_FILE, ...index.chunks.map((c) => c.file)];
}

const CHUNK_NAME = /^chunk-\d{6}\.bin$/;
const OWNED = [CHUNKED_INDEX_FILE, BASELINE_FILE, ROW_IDS_FILE, COL_IDS_FILE];

type Sealed = { entry: Omit<ChunkEntry, "bytes" | "sha256">; colPtr: Uint32Array; rowIdx: Uint32Array; values: Float32Array };

export class ChunkedKernelWriter {
  private readonly nRows: number;
  private readonly chunkEntries: number;
  private readonly chunkColumns: number;
  private readonly durable: boolean;
  private colPtr: Uint32Array;
  private rowIdx: Uint32Array;
  private values: Float32Array;
  private cols = 0;
  private nnz = 0;
  private colStart = 0;
  private totalNnz = 0;
  private min = Infinity;
  private max = -Infinity;
  private readonly chunks: ChunkEntry[] = [];
  private writing: Promise<void> = Promise.resolve();
  private pending = 0;
  private sealedCount = 0;
  private failure: unknown = null;
  private closed = false;

  private constructor(
    readonly dir: string,
    private readonly tmp: string,
    options: ChunkedWriterOptions,
  ) {
    this.nRows = options.nRows;
    this.chunkEntries = Math.max(1, Math.floor((options.chunkBytes ?? 64 * 1024 * 1024) / 8));
    this.chunkColumns = Math.max(1, options.chunkColumns ?? 1 << 22);
    this.durable = options.durable ?? true;
    this.colPtr = new Uint32Array(1024);
    this.rowIdx = new Uint32Array(Math.min(this.chunkEntries, 1 << 16));
    this.values = new Float32Array(this.rowIdx.length);
  }

  /** Opens a writer for `dir`; an existing dir is replaced at finish() only if it holds nothing but kernel files. */
  static async create(dir: string, options: ChunkedWriterOptions): Promise<ChunkedKernelWriter> {
    requireLittleEndian();
    const { nRows } = options;
    if (!Number.isInteger(nRows) || nRows < 1 || nRows > 0xffffffff) throw new ConfigError(`nRows must be an integer in [1, 2^32 - 1], got ${nRows}`);
    const target = resolve(dir);
    await assertReplaceableKernelDir(target);
    await mkdir(dirname(target), { recursive: true });
    const tmp = join(dirname(target), `.${basename(target)}.tmp-${randomUUID().slice(0, 8)}`);
    await mkdir(tmp);
    return new ChunkedKernelWriter(target, tmp, options);
  }

  /** Columns appended so far. */
  get columns(): number {
    return this.colStart + this.cols;
  }

  /**
   * Appends the next column (rows strictly ascending, below nRows; finite values). Returns false
   * when a sealed chunk is still being written: await drain() before appending more, as with a
   * stream, to keep memory bounded.
   */
  appendColumn(rows: Uint32Array, values: Float32Array): boolean {
    this.checkOpen();
    const n = rows.length;
    if (values.length !== n) throw new ConfigError(`column ${this.columns}: ${n} rows but ${values.length} values`);
    for (let p = 0; p < n; p++) {
      const r = rows[p];
      if (r >= this.nRows || (p > 0 && r <= rows[p - 1])) this.failOnRow(rows, p);
      const v = values[p];
      if (!Number.isFinite(v)) throw new ConfigError(`column ${this.columns}, row ${r}: value ${v} is not finite`);
      if (v < this.min) this.min = v;
      if (v > this.max) this.max = v;
    }
    if (this.nnz + n > this.rowIdx.length) this.growEntries(this.nnz + n);
    if (this.cols + 2 > this.colPtr.length) {
      const grown = new Uint32Array(this.colPtr.length * 2);
      grown.set(this.colPtr);
      this.colPtr = grown;
    }
    this.rowIdx.set(rows, this.nnz);
    this.values.set(values, this.nnz);
    this.nnz += n;
    this.cols++;
    this.colPtr[this.cols] = this.nnz;
    if (this.nnz >= this.chunkEntries || this.cols >= this.chunkColumns) this.seal();
    return this.pending === 0;
  }

  /** Appends every column of a CSC block, in order. */
  async appendKernel(kernel: CscKernel): Promise<void> {
    if (kernel.nRows !== this.nRows) throw new ConfigError(`block has ${kernel.nRows} rows, the kernel ${this.nRows}`);
    for (let j = 0; j < kernel.nCols; j++) {
      const a = kernel.colPtr[j];
      const b = kernel.colPtr[j + 1];
      if (!this.appendColumn(kernel.rowIdx.subarray(a, b), kernel.values.subarray(a, b))) await this.drain();
    }
  }

  /** Resolves when no sealed chunk is waiting to be written. */
  async drain(): Promise<void> {
    await this.writing;
    if (this.failure) throw this.failure;
  }

  /** Writes the last chunk, the side files and the index, then moves the directory into place. */
  async finish(extra: ChunkedFinish = {}): Promise<ChunkedIndex> {
    this.checkOpen();
    try {
      if (this.cols > 0) this.seal();
      await this.drain();
      const nCols = this.colStart;
      if (nCols === 0) throw new ConfigError("a kernel needs at least one column");
      const baseline = extra.baseline ? await this.writeBaseline(extra.baseline) : null;
      const rowIds = extra.rowIds ? await this.writeIds(ROW_IDS_FILE, extra.rowIds, this.nRows, "row") : null;
      const colIds = extra.colIds ? await this.writeIds(COL_IDS_FILE, extra.colIds, nCols, "column") : null;
      const index: ChunkedIndex = {
        format: CHUNKED_FORMAT,
        nRows: this.nRows,
        nCols,
        nnz: this.totalNnz,
        valueRange: this.totalNnz === 0 ? { min: 0, max: 0 } : { min: this.min, max: this.max },
        chunks: this.chunks,
        baseline,
        rowIds,
        colIds,
        metadata: extra.metadata ?? {},
      };
      await writeSynced(join(this.tmp, CHUNKED_INDEX_FILE), [Buffer.from(JSON.stringify(index, null, 1) + "\n")], this.durable);
      if (this.durable) await syncDir(this.tmp);
      this.closed = true;
      await assertReplaceableKernelDir(this.dir);
      const old = join(dirname(this.dir), `.${basename(this.dir)}.old-${randomUUID().slice(0, 8)}`);
      const exists = await stat(this.dir).then(() => true, () => false);
      if (exists) await rename(this.dir, old);
      await rename(this.tmp, this.dir);
      if (this.durable) await syncDir(dirname(this.dir));
      if (exists) await rm(old, { recursive: true, force: true });
      return index;
    } catch (err) {
      await this.abort();
      throw err;
    }
  }

  /** Stops and removes everything written so far. */
  async abort(): Promise<void> {
    this.closed = true;
    await this.writing.catch(() => undefined);
    await rm(this.tmp, { recursive: true, force: true });
  }

  private checkOpen(): void {
    if (this.closed) throw new ConfigError("the kernel writer is closed");
    if (this.failure) throw this.failure;
  }

  private failOnRow(rows: Uint32Array, p: number): never {
    const r = rows[p];
    if (r >= this.nRows) throw new ConfigError(`column ${this.columns}: row ${r} out of range (the kernel has ${this.nRows} rows)`);
    throw new ConfigError(`column ${this.columns}: rows must be strictly ascending (row ${r} after ${rows[p - 1]})`);
  }

  private growEntries(need: number): void {
    let size = this.rowIdx.length;
    while (size < need) size *= 2;
    const rowIdx = new Uint32Array(size);
    rowIdx.set(this.rowIdx.subarray(0, this.nnz));
    const values = new Float32Array(size);
    values.set(this.values.subarray(0, this.nnz));
    this.rowIdx = rowIdx;
    this.values = values;
  }

  /** Hands the buffered columns to the write chain and starts a fresh buffer. */
  private seal(): void {
    const k = this.sealedCount++;
    const sealed: Sealed = {
      entry: { file: chunkFileName(k), colStart: this.colStart, colEnd: this.colStart + this.cols, nnz: this.nnz },
      colPtr: this.colPtr.subarray(0, this.cols + 1),
      rowIdx: this.rowIdx.subarray(0, this.nnz),
      values: this.values.subarray(0, this.nnz),
    };
    if (this.totalNnz + this.nnz > Number.MAX_SAFE_INTEGER) throw new ConfigError("kernel too large");
    this.totalNnz += this.nnz;
    this.colStart += this.cols;
    this.cols = 0;
    this.nnz = 0;
    this.colPtr = new Uint32Array(1024);
    this.rowIdx = new Uint32Array(Math.min(this.chunkEntries, 1 << 16));
    this.values = new Float32Array(this.rowIdx.length);
    this.pending++;
    this.writing = this.writing.then(async () => {
      try {
        if (!this.failure) this.chunks.push(await this.writeChunk(sealed));
      } catch (err) {
        this.failure ??= err;
      } finally {
        this.pending--;
      }
    });
  }

  private async writeChunk(s: Sealed): Promise<ChunkEntry> {
    const cols = s.entry.colEnd - s.entry.colStart;
    const header = encodeChunkHeader(s.entry.colStart, cols, s.entry.nnz, this.nRows);
    const parts = [header, s.colPtr, s.rowIdx, s.values].map((a) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    const sha256 = await writeSynced(join(this.tmp, s.entry.file), parts, this.durable);
    return { ...s.entry, bytes: chunkLayout(cols, s.entry.nnz).bytes, sha256 };
  }

  private async writeBaseline(baseline: Float32Array): Promise<SideFile> {
    if (baseline.length !== this.nRows) throw new ConfigError(`baseline has ${baseline.length} values, the kernel ${this.nRows} rows`);
    const bytes = new Uint8Array(baseline.buffer, baseline.byteOffset, baseline.byteLength);
    const sha256 = await writeSynced(join(this.tmp, BASELINE_FILE), [bytes], this.durable);
    return { file: BASELINE_FILE, bytes: bytes.byteLength, sha256 };
  }

  private async writeIds(file: string, ids: Iterable<string>, expected: number, what: string): Promise<SideFile & { count: number }> {
    const handle = await open(join(this.tmp, file), "w");
    const hash = createHash("sha256");
    let count = 0;
    let bytes = 0;
    let batch: string[] = [];
    const flush = async () => {
      const buf = Buffer.from(batch.join(""));
      batch = [];
      hash.update(buf);
      bytes += buf.byteLength;
      await handle.write(buf);
    };
    try {
      for (const id of ids) {
        if (typeof id !== "string") throw new ConfigError(`${what} id ${count} is not a string`);
        batch.push(JSON.stringify(id) + "\n");
        count++;
        if (batch.length >= 8192) await flush();
      }
      await flush();
      if (this.durable) await handle.sync();
    } finally {
      await handle.close();
    }
    if (count !== expected) throw new ConfigError(`${count} ${what} ids for ${expected} ${what}s`);
    return { file, bytes, sha256: hash.digest("hex"), count };
  }
}

/** Writes the parts into a new file, fsyncs it and returns the sha256 of its bytes. */
async function writeSynced(path: string, parts: Uint8Array[], durable = true): Promise<string> {
  const hash = createHash("sha256");
  const handle = await open(path, "w");
  try {
    for (const part of parts) {
      hash.update(part);
      let done = 0;
      while (done < part.byteLength) {
        const { bytesWritten } = await handle.write(part, done, Math.min(part.byteLength - done, 1 << 26));
        done += bytesWritten;
      }
    }
    if (durable) await handle.sync();
  } finally {
    await handle.close();
  }
  return hash.digest("hex");
}

async function syncDir(path: string): Promise<void> {
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** A directory may be replaced when it holds only the chunked format's files. */
async function assertReplaceableKernelDir(dir: string): Promise<void> {
  const entries = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return [] as string[];
    throw err;
  });
  await assertReplaceable(dir, [...OWNED, ...entries.filter((e) => CHUNK_NAME.test(e))]);
}
