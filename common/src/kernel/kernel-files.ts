import { open, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileWriter, ParquetWriter } from "hyparquet-writer";
import { InputError } from "../errors.js";
import type { CscKernel } from "../selection/types.js";
import { writeOutputDir } from "../util/output-dir.js";
import { readChunkedUtilityKernel } from "./chunked-convert.js";
import { ChunkedKernel, isChunkedKernelDir } from "./chunked-reader.js";

export const KERNEL_FORMAT = "delift-kernel/1";
const MAGIC = "DELIFTK1";
const PARQUET_ROW_GROUP = 1 << 20;

/** What kernel.json records next to the values: enough to check a kernel fits a data set. */
export type KernelMetadata = {
  format: typeof KERNEL_FORMAT;
  /** UF[i][j] = d0(i) - d1(i | example j): rows are targets, columns in-context examples. */
  nRows: number;
  nCols: number;
  nnz: number;
  rowIds: string[];
  colIds: string[];
  modelHash: string;
  settingsKey: string;
  maxLength: number;
  truncated: { baseline: number; pairs: number };
  [other: string]: unknown;
};

/** A utility kernel with its P0 distances (d0 per row) and metadata. */
export type UtilityKernel = { csc: CscKernel; baseline: Float32Array; metadata: KernelMetadata };

/**
 * Writes DIR/kernel.bin (compact CSC), DIR/kernel.parquet (row, col, utility; pandas reads it)
 * and DIR/kernel.json. Everything is written into a temporary sibling directory that is renamed
 * into place at the end, so an interrupted write leaves no half-written kernel.
 */
export async function writeKernel(dir: string, kernel: UtilityKernel, signal?: AbortSignal): Promise<void> {
  await writeOutputDir(dir, KERNEL_FILES, async (tmp) => {
    await writeBinary(join(tmp, "kernel.bin"), kernel);
    signal?.throwIfAborted();
    writeParquet(join(tmp, "kernel.parquet"), kernel.csc);
    signal?.throwIfAborted();
    await writeFile(join(tmp, "kernel.json"), JSON.stringify(kernel.metadata, null, 1) + "\n");
  });
}

export const KERNEL_FILES = ["kernel.bin", "kernel.parquet", "kernel.json"];

/**
 * writeKernel from a chunked kernel on disk (its baseline side file is the P0 distances), chunk
 * by chunk: the same bytes as writeKernel of the kernel read whole, with about one chunk and one
 * Parquet row group in memory.
 */
export async function writeKernelFromChunked(dir: string, chunkedDir: string, metadata: KernelMetadata, signal?: AbortSignal): Promise<void> {
  const kernel = await ChunkedKernel.open(chunkedDir);
  const { nRows, nCols, nnz } = kernel.index;
  if (nnz > 0xffffffff) throw new InputError({ file: chunkedDir }, `${nnz} entries: kernel.bin holds at most 2^32 - 1`);
  const baseline = await kernel.readBaseline();
  if (!baseline) throw new InputError({ file: chunkedDir }, "the chunked kernel has no baseline (P0 distances) to write kernel.bin with");
  await writeOutputDir(dir, KERNEL_FILES, async (tmp) => {
    const header = new Uint8Array(24);
    header.set(Buffer.from(MAGIC, "latin1"));
    const view = new DataView(header.buffer);
    view.setUint32(8, nRows, true);
    view.setUint32(12, nCols, true);
    view.setUint32(16, nnz, true);
    const rowIdxAt = 24 + 4 * (nCols + 1);
    const valuesAt = rowIdxAt + 4 * nnz;
    const bin = await open(join(tmp, "kernel.bin"), "w");
    const parquet = new ParquetGroups(join(tmp, "kernel.parquet"));
    try {
      await writeAt(bin, header, 0);
      let entriesBefore = 0;
      for (let k = 0; k < kernel.index.chunks.length; k++) {
        signal?.throwIfAborted();
        const { colStart, kernel: c } = await kernel.readChunk(k);
        const ptr = new Uint32Array(c.nCols + (k === kernel.index.chunks.length - 1 ? 1 : 0));
        for (let q = 0; q < ptr.length; q++) ptr[q] = entriesBefore + c.colPtr[q];
        await writeAt(bin, ptr, 24 + 4 * colStart);
        await writeAt(bin, c.rowIdx, rowIdxAt + 4 * entriesBefore);
        await writeAt(bin, c.values, valuesAt + 4 * entriesBefore);
        parquet.add(c, colStart);
        entriesBefore += c.rowIdx.length;
      }
      await writeAt(bin, baseline, valuesAt + 4 * nnz);
      await bin.sync();
    } finally {
      await bin.close();
    }
    parquet.finish();
    signal?.throwIfAborted();
    await writeFile(join(tmp, "kernel.json"), JSON.stringify(metadata, null, 1) + "\n");
  });
}

async function writeAt(file: Awaited<ReturnType<typeof open>>, part: Uint8Array | Uint32Array | Float32Array, position: number): Promise<void> {
  const bytes = new Uint8Array(part.buffer, part.byteOffset, part.byteLength);
  let done = 0;
  while (done < bytes.byteLength) {
    const { bytesWritten } = await file.write(bytes, done, Math.min(bytes.byteLength - done, 1 << 26), position + done);
    done += bytesWritten;
  }
}

/** kernel.parquet fed column by column: the same row groups (every PARQUET_ROW_GROUP entries) as writeParquet. */
class ParquetGroups {
  private readonly writer: ParquetWriter;
  private rows = new Int32Array(PARQUET_ROW_GROUP);
  private cols = new Int32Array(PARQUET_ROW_GROUP);
  private values = new Float32Array(PARQUET_ROW_GROUP);
  private fill = 0;

  constructor(path: string) {
    this.writer = new ParquetWriter({ writer: fileWriter(path), schema: PARQUET_SCHEMA });
  }

  add(c: CscKernel, colStart: number): void {
    for (let j = 0; j < c.nCols; j++) {
      for (let p = c.colPtr[j]; p < c.colPtr[j + 1]; p++) {
        this.rows[this.fill] = c.rowIdx[p];
        this.cols[this.fill] = colStart + j;
        this.values[this.fill] = c.values[p];
        if (++this.fill === PARQUET_ROW_GROUP) this.flush();
      }
    }
  }

  finish(): void {
    if (this.fill > 0) this.flush();
    this.writer.finish();
  }

  private flush(): void {
    const n = this.fill;
    this.writer.write({
      columnData: [
        { name: "row", data: this.rows.slice(0, n) },
        { name: "col", data: this.cols.slice(0, n) },
        { name: "utility", data: this.values.slice(0, n) },
      ],
    });
    this.fill = 0;
  }
}

const PARQUET_SCHEMA: ConstructorParameters<typeof ParquetWriter>[0]["schema"] = [
  { name: "root", num_children: 3 },
  { name: "row", type: "INT32", repetition_type: "REQUIRED" },
  { name: "col", type: "INT32", repetition_type: "REQUIRED" },
  { name: "utility", type: "FLOAT", repetition_type: "REQUIRED" },
];

async function writeBinary(path: string, kernel: UtilityKernel): Promise<void> {
  const { csc, baseline } = kernel;
  const header = new Uint8Array(24);
  header.set(Buffer.from(MAGIC, "latin1"));
  const view = new DataView(header.buffer);
  view.setUint32(8, csc.nRows, true);
  view.setUint32(12, csc.nCols, true);
  view.setUint32(16, csc.rowIdx.length, true);
  const file = await open(path, "w");
  try {
    for (const part of [header, csc.colPtr, csc.rowIdx, csc.values, baseline]) {
      await file.write(new Uint8Array(part.buffer, part.byteOffset, part.byteLength));
    }
    await file.sync();
  } finally {
    await file.close();
  }
}

function writeParquet(path: string, csc: CscKernel): void {
  const writer = new ParquetWriter({
    writer: fileWriter(path),
    schema: PARQUET_SCHEMA,
  });
  const nnz = csc.rowIdx.length;
  let col = 0;
  for (let start = 0; start < nnz; start += PARQUET_ROW_GROUP) {
    const end = Math.min(nnz, start + PARQUET_ROW_GROUP);
    const cols = new Int32Array(end - start);
    for (let k = start; k < end; k++) {
      while (csc.colPtr[col + 1] <= k) col++;
      cols[k - start] = col;
    }
    writer.write({
      columnData: [
        { name: "row", data: Int32Array.from(csc.rowIdx.subarray(start, end)) },
        { name: "col", data: cols },
        { name: "utility", data: csc.values.subarray(start, end) },
      ],
    });
  }
  writer.finish();
}

/** Reads a kernel written by writeKernel (or in the chunked format); every size is checked against the file. */
export async function readKernel(dir: string): Promise<UtilityKernel> {
  if (await isChunkedKernelDir(dir)) return readChunkedUtilityKernel<KernelMetadata>(dir);
  const jsonPath = join(dir, "kernel.json");
  const binPath = join(dir, "kernel.bin");
  let metadata: KernelMetadata;
  let bytes: Buffer;
  try {
    metadata = JSON.parse(await readFile(jsonPath, "utf8")) as KernelMetadata;
    bytes = await readFile(binPath);
  } catch (err) {
    throw new InputError({ file: dir }, `cannot read kernel: ${(err as Error).message}`, { cause: err });
  }
  if (metadata.format !== KERNEL_FORMAT) throw new InputError({ file: jsonPath, field: "format" }, `expected "${KERNEL_FORMAT}"`);
  if (bytes.length < 24 || bytes.subarray(0, 8).toString("latin1") !== MAGIC) {
    throw new InputError({ file: binPath }, "not a delift kernel file");
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const nRows = view.getUint32(8, true);
  const nCols = view.getUint32(12, true);
  const nnz = view.getUint32(16, true);
  const expected = 24 + 4 * (nCols + 1) + 8 * nnz + 4 * nRows;
  if (bytes.length !== expected) throw new InputError({ file: binPath }, `size ${bytes.length} bytes, expected ${expected}`);
  if (nRows !== metadata.nRows || nCols !== metadata.nCols || nnz !== metadata.nnz) {
    throw new InputError({ file: jsonPath }, "shape does not match kernel.bin");
  }
  const copy = <T extends Uint32Array | Float32Array>(Ctor: { new (n: number): T }, at: number, n: number): T => {
    const out = new Ctor(n);
    new Uint8Array(out.buffer).set(bytes.subarray(at, at + 4 * n));
    return out;
  };
  let at = 24;
  const colPtr = copy(Uint32Array, at, nCols + 1);
  at += 4 * (nCols + 1);
  const rowIdx = copy(Uint32Array, at, nnz);
  at += 4 * nnz;
  const values = copy(Float32Array, at, nnz);
  at += 4 * nnz;
  const baseline = copy(Float32Array, at, nRows);
  return { csc: { nRows, nCols, colPtr, rowIdx, values }, baseline, metadata };
}
