import { mkdtempSync, rmSync } from "node:fs";
import { open, stat, type FileHandle } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deserialize, serialize } from "node:v8";
import { InputError } from "../errors.js";
import { openBatches } from "./record-batches.js";
import type { DataFormat } from "./read-records.js";

/**
 * Where each sample's original record is in its file, so outputs can re-read just the records
 * they need (the selected ones) instead of holding the corpus: byte offset and length of the
 * line (JSONL; offsets in the decompressed stream for .gz), or the row (Parquet).
 */
export type RecordIndex = {
  file: string;
  format: DataFormat;
  gzip: boolean;
  /** The file as it was read: a re-read checks it has not changed since. */
  fileBytes: number;
  mtimeMs: number;
  sha256: string;
  /** Records in the file (valid or not): the rows given embeddings must have. */
  recordCount: number;
  /** Per sample: its line (JSONL) or row (Parquet), 1-based, for messages. */
  lines: Uint32Array;
  /** Per sample: its record's position among the file's records, 0-based (the embeddings row). */
  ordinals: Uint32Array;
  byteOffsets: Float64Array | null;
  byteLengths: Uint32Array | null;
};

export type RecordAt = { sample: number; record: Record<string, unknown> };

const CHUNK = 4096;

/**
 * The records of the given samples, in the order given, with memory bounded by a chunk of them.
 * Plain JSONL: positional reads. Gzip and Parquet (no random access): one sequential pass spools
 * the wanted records to a temporary file, then positional reads from it; the spool is removed.
 */
export async function* readRecordsAt(index: RecordIndex, samples: ArrayLike<number>, signal?: AbortSignal): AsyncGenerator<RecordAt> {
  await checkUnchanged(index);
  if (index.format === "jsonl" && !index.gzip) {
    const fh = await openFile(index.file);
    try {
      yield* positional(samples, (s) => ({ offset: index.byteOffsets![s], length: index.byteLengths![s] }), fh, (bytes, s) => parseLine(index, s, bytes), signal);
    } finally {
      await fh.close();
    }
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), "delift-records-"));
  try {
    const spool = await spoolRecords(index, samples, join(dir, "records.v8"), signal);
    const fh = await openFile(spool.path);
    try {
      yield* positional(samples, (s) => spool.at(s), fh, (bytes) => deserialize(bytes) as Record<string, unknown>, signal);
    } finally {
      await fh.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function checkUnchanged(index: RecordIndex): Promise<void> {
  let info;
  try {
    info = await stat(index.file);
  } catch (err) {
    throw new InputError({ file: index.file }, `cannot re-read records: ${(err as Error).message}`, { cause: err });
  }
  if (info.size !== index.fileBytes || info.mtimeMs !== index.mtimeMs) {
    throw new InputError({ file: index.file }, `the data file changed since it was read (${index.fileBytes} bytes then, ${info.size} now): its records cannot be matched to the samples`);
  }
}

async function openFile(path: string): Promise<FileHandle> {
  try {
    return await open(path, "r");
  } catch (err) {
    throw new InputError({ file: path }, `cannot open: ${(err as Error).message}`, { cause: err });
  }
}

async function* positional(
  samples: ArrayLike<number>,
  where: (s: number) => { offset: number; length: number },
  fh: FileHandle,
  decode: (bytes: Uint8Array, sample: number) => Record<string, unknown>,
  signal: AbortSignal | undefined,
): AsyncGenerator<RecordAt> {
  for (let c = 0; c < samples.length; c += CHUNK) {
    if (signal?.aborted) throw new InputError({ file: "(records)" }, "cancelled");
    const chunk = Array.from({ length: Math.min(CHUNK, samples.length - c) }, (_, k) => samples[c + k]);
    const byOffset = chunk.map((s, k) => ({ s, k, ...where(s) })).sort((a, b) => a.offset - b.offset);
    const out: Record<string, unknown>[] = new Array(chunk.length);
    for (const r of byOffset) {
      const bytes = new Uint8Array(r.length);
      let got = 0;
      while (got < r.length) {
        const { bytesRead } = await fh.read(bytes, got, r.length - got, r.offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      out[r.k] = decode(bytes.subarray(0, got), r.s);
    }
    for (let k = 0; k < chunk.length; k++) yield { sample: chunk[k], record: out[k] };
  }
}

const decoder = new TextDecoder();

function parseLine(index: RecordIndex, sample: number, bytes: Uint8Array): Record<string, unknown> {
  try {
    return JSON.parse(decoder.decode(bytes)) as Record<string, unknown>;
  } catch (err) {
    throw new InputError({ file: index.file, line: index.lines[sample] }, `record no longer parses (${(err as Error).message}): the file changed since it was read`, { cause: err });
  }
}

/** One pass over the file: each wanted record, v8-serialized (Parquet values such as BigInt survive), into `path`. */
async function spoolRecords(index: RecordIndex, samples: ArrayLike<number>, path: string, signal: AbortSignal | undefined) {
  // Wanted records by line, so the pass can tell them as they stream by.
  const byLine = new Map<number, number[]>();
  for (let k = 0; k < samples.length; k++) {
    const s = samples[k];
    const line = index.lines[s];
    const list = byLine.get(line);
    if (list) list.push(s);
    else byLine.set(line, [s]);
  }
  const offsets = new Map<number, { offset: number; length: number }>();
  const out = await open(path, "w");
  let at = 0;
  try {
    const source = await openBatches(index.file, { batchBytes: 1 << 20, batchRows: 4096 });
    let line = 0;
    for await (const batch of source.batches) {
      if (signal?.aborted) throw new InputError({ file: index.file }, "cancelled");
      const records: { line: number; value: unknown }[] = [];
      if (batch.input.kind === "rows") {
        for (const row of batch.input.rows) {
          line++;
          if (byLine.has(line)) records.push({ line, value: row });
        }
      } else {
        const bytes = batch.input.bytes;
        let start = 0;
        while (start < bytes.length) {
          let end = bytes.indexOf(10, start);
          if (end < 0) end = bytes.length;
          line++;
          if (byLine.has(line)) {
            const contentEnd = end > start && bytes[end - 1] === 13 ? end - 1 : end;
            const text = decoder.decode(bytes.subarray(start, contentEnd));
            try {
              records.push({ line, value: JSON.parse(text) });
            } catch (err) {
              throw new InputError({ file: index.file, line }, `record no longer parses (${(err as Error).message}): the file changed since it was read`, { cause: err });
            }
          }
          start = end + 1;
        }
      }
      for (const r of records) {
        const blob = serialize(r.value);
        await out.write(blob, 0, blob.length, at);
        for (const s of byLine.get(r.line)!) offsets.set(s, { offset: at, length: blob.length });
        at += blob.length;
      }
    }
  } finally {
    await out.close();
  }
  return {
    path,
    at: (s: number) => {
      const o = offsets.get(s);
      if (!o) throw new InputError({ file: index.file, line: index.lines[s] }, "record not found on re-reading: the file changed since it was read");
      return o;
    },
  };
}
