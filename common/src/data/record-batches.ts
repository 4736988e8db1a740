import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { pipeline, Transform } from "node:stream";
import { stat } from "node:fs/promises";
import { createGunzip } from "node:zlib";
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } from "hyparquet";
import { compressors } from "hyparquet-compressors";
import { InputError } from "../errors.js";
import { detectFormat, type DataFormat } from "./read-records.js";
import type { BatchInput } from "./tokenize-batch.js";

/** A batch of whole records and where it starts: byte offset (JSONL, in the decompressed stream) or row. */
export type RecordBatch = { input: BatchInput; byteOffset: number };

/** What is known about the file while and after it is read. */
export type SourceFacts = {
  format: DataFormat;
  gzip: boolean;
  /** File size on disk (compressed, for .gz) and how much of it has been consumed. */
  bytes: number;
  bytesDone: number;
  mtimeMs: number;
  /** Parquet: rows in the file (known up front); JSONL: null. */
  rowsTotal: number | null;
  /** SHA-256 of the file's bytes as stored, once the read is complete. */
  sha256: string | null;
};

export type BatchSource = { facts: SourceFacts; batches: AsyncGenerator<RecordBatch> };

/**
 * The file as a stream of batches of complete records, never held whole: JSONL (.gz too) in
 * chunks of about `batchBytes` cut at line ends; Parquet row group by row group, in batches of
 * at most `batchRows` rows.
 */
export async function openBatches(file: string, options: { batchBytes: number; batchRows: number }): Promise<BatchSource> {
  const format = detectFormat(file);
  let info;
  try {
    info = await stat(file);
  } catch (err) {
    throw new InputError({ file }, `cannot open: ${(err as Error).message}`, { cause: err });
  }
  const gzip = file.toLowerCase().endsWith(".gz");
  const facts: SourceFacts = { format, gzip, bytes: info.size, bytesDone: 0, mtimeMs: info.mtimeMs, rowsTotal: null, sha256: null };
  if (format === "parquet") return { facts, batches: parquetBatches(file, facts, options.batchRows) };
  return { facts, batches: jsonlBatches(file, facts, options.batchBytes) };
}

async function* jsonlBatches(file: string, facts: SourceFacts, batchBytes: number): AsyncGenerator<RecordBatch> {
  const raw = createReadStream(file, { highWaterMark: Math.min(batchBytes, 1 << 20) });
  const hash: Hash = createHash("sha256");
  // Hash and count the bytes as stored (compressed, for .gz): the progress and the file's identity.
  const hasher = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      facts.bytesDone += chunk.length;
      done(null, chunk);
    },
  });
  const stream = facts.gzip ? pipeline(raw, hasher, createGunzip(), () => {}) : pipeline(raw, hasher, () => {});
  let parts: Buffer[] = [];
  let held = 0;
  let offset = 0;
  const cut = (upTo: number): RecordBatch => {
    // One owned buffer per batch, so it can be transferred to a worker thread.
    const bytes = new Uint8Array(upTo);
    let at = 0;
    const rest: Buffer[] = [];
    for (const p of parts) {
      if (at >= upTo) rest.push(p);
      else if (at + p.length <= upTo) {
        bytes.set(p, at);
        at += p.length;
      } else {
        bytes.set(p.subarray(0, upTo - at), at);
        rest.push(p.subarray(upTo - at));
        at = upTo;
      }
    }
    parts = rest;
    held -= upTo;
    const batch = { input: { kind: "lines" as const, bytes }, byteOffset: offset };
    offset += upTo;
    return batch;
  };
  try {
    for await (const chunk of stream) {
      const buf = chunk as Buffer;
      parts.push(buf);
      held += buf.length;
      if (held < batchBytes) continue;
      const nl = buf.lastIndexOf(10);
      if (nl < 0) continue; // a line longer than the batch: keep reading until it ends
      yield cut(held - (buf.length - nl - 1));
    }
  } catch (err) {
    if (err instanceof InputError) throw err;
    throw new InputError({ file }, `cannot read: ${(err as Error).message}`, { cause: err });
  }
  if (held > 0) yield cut(held);
  facts.sha256 = hash.digest("hex");
}

async function* parquetBatches(file: string, facts: SourceFacts, batchRows: number): AsyncGenerator<RecordBatch> {
  let buffer;
  let metadata;
  try {
    buffer = await asyncBufferFromFile(file);
    metadata = await parquetMetadataAsync(buffer);
  } catch (err) {
    throw new InputError({ file }, `cannot read Parquet: ${(err as Error).message}`, { cause: err });
  }
  facts.rowsTotal = Number(metadata.num_rows);
  let rowStart = 0;
  for (const group of metadata.row_groups) {
    const rowEnd = rowStart + Number(group.num_rows);
    let rows: unknown[];
    try {
      rows = (await parquetReadObjects({ file: buffer, metadata, rowStart, rowEnd, compressors })) as unknown[];
    } catch (err) {
      throw new InputError({ file, line: rowStart + 1 }, `cannot read Parquet row group: ${(err as Error).message}`, { cause: err });
    }
    for (let k = 0; k < rows.length; k += batchRows) {
      yield { input: { kind: "rows", rows: rows.slice(k, k + batchRows) }, byteOffset: rowStart + k };
    }
    facts.bytesDone = Math.round((facts.bytes * rowEnd) / Math.max(1, facts.rowsTotal));
    rowStart = rowEnd;
  }
  facts.sha256 = null;
}
