import { open, type FileHandle } from "node:fs/promises";
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema } from "hyparquet";
import { compressors } from "hyparquet-compressors";
import { AbortedError, InputError } from "../errors.js";
import { computeInvNorms, type EmbeddingMatrix } from "./embedding-matrix.js";
import { isHalfNonFinite } from "./float16.js";
import { NpyHeaderError, parseNpyHeader } from "./npy-format.js";

/** The samples the embeddings must cover, as the compact reader describes them. */
export type EmbeddingTarget = {
  count: number;
  /** Sample i's record position in the data file (the .npy row). */
  ordinals: Uint32Array;
  /** Records in the data file: the .npy row count. */
  recordCount: number;
  /** Sample i's id, and the sample of an id (Parquet files are matched by id). */
  idOf(i: number): string;
  indexOfId(id: string): number;
  /** Sample i's line in the data file, for messages. */
  lineOf(i: number): number;
  /** Ids of records skipped on load (--skip-invalid): their rows may be there and are ignored. */
  skippedIds?: ReadonlySet<string>;
  /** The data file, for messages. */
  dataFile: string;
};

export type ReadEmbeddingsOptions = {
  signal?: AbortSignal;
  idColumn?: string;
  vectorColumn?: string;
  /** .npy: bytes of values read so far, of all to read (a bar for the embeddings phase). */
  onProgress?: (bytesDone: number, bytesTotal: number) => void;
};

const MAX_LISTED = 5;

/**
 * `--embeddings FILE` (issue 8 item 1): a `.npy` of float32 or float16, shape [records, dim], one
 * row per record of the data file in data order; or Parquet with an id column and a list column
 * of `dim` numbers per row, matched to the samples by id (any order). Checked for shape, dtype,
 * ids (missing, unknown, repeated) and finite, non-zero rows, with the file, row (and the data's
 * line and id) of each problem. Streamed: values go straight into the one matrix kept (float16
 * stays float16), rows of skipped records are never kept.
 */
export async function readEmbeddings(file: string, target: EmbeddingTarget, options: ReadEmbeddingsOptions = {}): Promise<EmbeddingMatrix> {
  const lower = file.toLowerCase();
  if (lower.endsWith(".npy")) return readNpy(file, target, options.signal, options.onProgress);
  if (lower.endsWith(".parquet") || lower.endsWith(".pq")) return readParquetEmbeddings(file, target, options);
  throw new InputError({ file }, "unknown embeddings format: expected .npy (float32 or float16, shape [n, dim]) or .parquet (an id column and a list column)");
}

async function readNpy(file: string, target: EmbeddingTarget, signal: AbortSignal | undefined, onProgress?: (done: number, total: number) => void): Promise<EmbeddingMatrix> {
  let fh: FileHandle;
  try {
    fh = await open(file, "r");
  } catch (err) {
    throw new InputError({ file }, `cannot open: ${(err as Error).message}`, { cause: err });
  }
  try {
    const size = (await fh.stat()).size;
    let head = new Uint8Array(Math.min(size, 4096));
    await readFully(fh, head, 0, file);
    let parsed;
    try {
      parsed = parseNpyHeader(head);
      if ("needed" in parsed && parsed.needed <= size) {
        head = new Uint8Array(parsed.needed);
        await readFully(fh, head, 0, file);
        parsed = parseNpyHeader(head);
      }
    } catch (err) {
      if (err instanceof NpyHeaderError) throw new InputError({ file }, err.message);
      throw err;
    }
    if ("needed" in parsed) throw new InputError({ file }, "truncated .npy header");
    const { descr, fortranOrder, shape, dataOffset } = parsed;
    const dtype = descr === "<f4" || descr === "=f4" ? "float32" : descr === "<f2" || descr === "=f2" ? "float16" : null;
    if (!dtype) throw new InputError({ file, field: "descr" }, `dtype '${descr}': expected little-endian float32 ('<f4') or float16 ('<f2')`);
    if (fortranOrder) throw new InputError({ file, field: "fortran_order" }, "Fortran-ordered array: save it C-ordered (numpy.ascontiguousarray)");
    if (shape.length !== 2) throw new InputError({ file, field: "shape" }, `shape (${shape.join(", ")}): expected two dimensions [records, dim]`);
    const [rows, dim] = shape;
    if (dim < 1) throw new InputError({ file, field: "shape" }, "dim is 0");
    if (rows !== target.recordCount) {
      throw new InputError({ file, field: "shape" }, `${rows} rows, but ${target.dataFile} has ${target.recordCount} records: one row per record, in data order`);
    }
    const width = dtype === "float32" ? 4 : 2;
    const expected = dataOffset + rows * dim * width;
    if (size !== expected) throw new InputError({ file }, `${size} bytes, expected ${expected} for shape (${rows}, ${dim}) of ${descr}: truncated or padded`);

    const data = dtype === "float32" ? new Float32Array(target.count * dim) : new Uint16Array(target.count * dim);
    const bytes = new Uint8Array(data.buffer);
    const rowBytes = dim * width;
    const identity = target.count === rows && target.ordinals.every((o, i) => o === i);
    if (identity) {
      // Straight into the matrix, in slices (one read is limited to 2 GiB; 64 MiB keeps the bar moving).
      for (let at = 0; at < bytes.length; at += 1 << 26) {
        throwIfAborted(signal);
        await readFully(fh, bytes.subarray(at, Math.min(bytes.length, at + (1 << 26))), dataOffset + at, file);
        onProgress?.(Math.min(bytes.length, at + (1 << 26)), bytes.length);
      }
    } else {
      // Runs of consecutive ordinals are read at once; rows of skipped records are never read.
      for (let i = 0; i < target.count; ) {
        throwIfAborted(signal);
        let j = i + 1;
        while (j < target.count && target.ordinals[j] === target.ordinals[j - 1] + 1 && j - i < 65536) j++;
        await readFully(fh, bytes.subarray(i * rowBytes, j * rowBytes), dataOffset + target.ordinals[i] * rowBytes, file);
        i = j;
        onProgress?.(i * rowBytes, bytes.length);
      }
    }
    const m: EmbeddingMatrix = { count: target.count, dim, dtype, data, invNorms: new Float32Array(target.count) };
    checkValues(m, target, file, (i) => `row ${target.ordinals[i]}`);
    return m;
  } finally {
    await fh.close();
  }
}

async function readFully(fh: FileHandle, into: Uint8Array, position: number, file: string): Promise<void> {
  for (let got = 0; got < into.length; ) {
    const { bytesRead } = await fh.read(into, got, into.length - got, position + got);
    if (bytesRead === 0) throw new InputError({ file }, "unexpected end of file");
    got += bytesRead;
  }
}

/** Finite values and a non-zero norm in every row kept; every problem row is counted, the first few listed. */
function checkValues(m: EmbeddingMatrix, target: EmbeddingTarget, file: string, rowName: (i: number) => string): void {
  const { dim, data } = m;
  const bad: string[] = [];
  let badCount = 0;
  for (let i = 0; i < m.count; i++) {
    const base = i * dim;
    let col = -1;
    if (m.dtype === "float16") {
      for (let d = 0; d < dim; d++) if (isHalfNonFinite((data as Uint16Array)[base + d])) { col = d; break; }
    } else {
      for (let d = 0; d < dim; d++) if (!Number.isFinite((data as Float32Array)[base + d])) { col = d; break; }
    }
    if (col >= 0) {
      badCount++;
      if (bad.length < MAX_LISTED) bad.push(`${rowName(i)} (sample "${target.idOf(i)}", ${target.dataFile}:${target.lineOf(i)}): value ${col} is ${describeValue(m, base + col)}`);
    }
  }
  if (badCount > 0) throw new InputError({ file }, `${badCount} row(s) with non-finite values:\n  ${bad.join("\n  ")}${badCount > bad.length ? `\n  ... and ${badCount - bad.length} more` : ""}`);
  const zero = computeInvNorms(m, 0, m.count);
  if (zero >= 0) throw new InputError({ file }, `${rowName(zero)} (sample "${target.idOf(zero)}", ${target.dataFile}:${target.lineOf(zero)}) is all zeros: cosine similarity needs a non-zero vector`);
}

function describeValue(m: EmbeddingMatrix, k: number): string {
  if (m.dtype === "float16") {
    const h = (m.data as Uint16Array)[k];
    return (h & 0x3ff) !== 0 ? "NaN" : h & 0x8000 ? "-Infinity" : "Infinity";
  }
  return String((m.data as Float32Array)[k]);
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortedError("reading the embeddings was cancelled");
}

async function readParquetEmbeddings(file: string, target: EmbeddingTarget, options: ReadEmbeddingsOptions): Promise<EmbeddingMatrix> {
  let buffer;
  let metadata;
  try {
    buffer = await asyncBufferFromFile(file);
    metadata = await parquetMetadataAsync(buffer);
  } catch (err) {
    throw new InputError({ file }, `cannot read Parquet: ${(err as Error).message}`, { cause: err });
  }
  const idColumn = options.idColumn ?? "id";
  const top = parquetSchema(metadata).children;
  const names = top.map((c) => c.element.name);
  if (!names.includes(idColumn)) throw new InputError({ file, field: idColumn }, `no id column "${idColumn}" (columns: ${names.join(", ")})`);
  const lists = top.filter((c) => c.element.name !== idColumn && (c.element.converted_type === "LIST" || c.element.logical_type?.type === "LIST" || c.children.length > 0));
  const vectorColumn = options.vectorColumn ?? (lists.length === 1 ? lists[0].element.name : null);
  if (!vectorColumn || !names.includes(vectorColumn)) {
    throw new InputError({ file }, `expected one list column of embedding values besides "${idColumn}", found ${lists.length ? lists.map((c) => `"${c.element.name}"`).join(", ") : "none"} (columns: ${names.join(", ")})`);
  }
  const firstRow = new Int32Array(target.count).fill(-1);
  let dim = 0;
  let data: Float32Array | null = null;
  const bad: string[] = [];
  let badCount = 0;
  const problem = (text: string) => {
    badCount++;
    if (bad.length < MAX_LISTED) bad.push(text);
  };
  let rowStart = 0;
  for (const group of metadata.row_groups) {
    throwIfAborted(options.signal);
    const rowEnd = rowStart + Number(group.num_rows);
    let rows: Record<string, unknown>[];
    try {
      rows = (await parquetReadObjects({ file: buffer, metadata, rowStart, rowEnd, columns: [idColumn, vectorColumn], compressors })) as Record<string, unknown>[];
    } catch (err) {
      throw new InputError({ file, line: rowStart + 1 }, `cannot read Parquet row group: ${(err as Error).message}`, { cause: err });
    }
    for (let k = 0; k < rows.length; k++) {
      const row = rowStart + k;
      const rawId = rows[k][idColumn];
      const id = typeof rawId === "string" ? rawId : typeof rawId === "number" || typeof rawId === "bigint" ? String(rawId) : null;
      if (id === null) {
        problem(`row ${row}: id is ${rawId === null || rawId === undefined ? "missing" : `a ${typeof rawId}`}`);
        continue;
      }
      const i = target.indexOfId(id);
      if (i < 0) {
        if (!target.skippedIds?.has(id)) problem(`row ${row}: id "${id}" is not a sample of ${target.dataFile}`);
        continue;
      }
      if (firstRow[i] >= 0) {
        problem(`row ${row}: id "${id}" again (first on row ${firstRow[i]})`);
        continue;
      }
      firstRow[i] = row;
      const v = rows[k][vectorColumn];
      const values = Array.isArray(v) || ArrayBuffer.isView(v) ? (v as ArrayLike<unknown>) : null;
      if (!values) {
        problem(`row ${row} (id "${id}"): ${vectorColumn} is ${v === null || v === undefined ? "missing" : "not a list"}`);
        continue;
      }
      if (!data) {
        dim = values.length;
        if (dim === 0) throw new InputError({ file, line: row, field: vectorColumn }, "the first row's list is empty");
        data = new Float32Array(target.count * dim);
      }
      if (values.length !== dim) {
        problem(`row ${row} (id "${id}"): ${values.length} values, the first row had ${dim}`);
        continue;
      }
      const base = i * dim;
      for (let d = 0; d < dim; d++) {
        const x = values[d];
        data[base + d] = typeof x === "number" ? x : typeof x === "bigint" ? Number(x) : NaN;
      }
    }
    rowStart = rowEnd;
  }
  if (badCount > 0) throw new InputError({ file }, `${badCount} bad row(s):\n  ${bad.join("\n  ")}${badCount > bad.length ? `\n  ... and ${badCount - bad.length} more` : ""}`);
  const missing: string[] = [];
  let missingCount = 0;
  for (let i = 0; i < target.count; i++) {
    if (firstRow[i] >= 0) continue;
    missingCount++;
    if (missing.length < MAX_LISTED) missing.push(`"${target.idOf(i)}" (${target.dataFile}:${target.lineOf(i)})`);
  }
  if (missingCount > 0 || !data) {
    throw new InputError({ file, field: idColumn }, `no embedding for ${missingCount} sample(s): ${missing.join(", ")}${missingCount > missing.length ? `, ... and ${missingCount - missing.length} more` : ""}`);
  }
  const m: EmbeddingMatrix = { count: target.count, dim, dtype: "float32", data, invNorms: new Float32Array(target.count) };
  checkValues(m, target, file, (i) => `row ${firstRow[i]}`);
  return m;
}
