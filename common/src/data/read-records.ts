import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import { createGunzip } from "node:zlib";
import { extname } from "node:path";
import { asyncBufferFromFile, parquetReadObjects } from "hyparquet";
import { compressors } from "hyparquet-compressors";
import { InputError } from "../errors.js";

/** A raw record with its 1-based line (JSONL) or row (Parquet) number. */
export type RawRecord = { line: number; value: unknown } | { line: number; parseError: string };

export type DataFormat = "jsonl" | "parquet";

export function detectFormat(file: string): DataFormat {
  const lower = file.toLowerCase();
  if (lower.endsWith(".parquet") || lower.endsWith(".pq")) return "parquet";
  if (lower.endsWith(".jsonl") || lower.endsWith(".jsonl.gz") || lower.endsWith(".json") || lower.endsWith(".ndjson")) {
    return "jsonl";
  }
  throw new InputError({ file }, `unknown data format "${extname(file)}": expected .jsonl, .jsonl.gz, .ndjson or .parquet`);
}

/** Reads records one by one; blank JSONL lines are skipped, numbering stays true to the file. */
export async function* readRecords(file: string): AsyncGenerator<RawRecord> {
  const format = detectFormat(file);
  if (format === "parquet") {
    yield* readParquet(file);
  } else {
    yield* readJsonl(file);
  }
}

async function* readJsonl(file: string): AsyncGenerator<RawRecord> {
  const raw = createReadStream(file);
  const opened = new Promise<void>((resolve, reject) => {
    raw.once("open", () => resolve());
    raw.once("error", reject);
  });
  try {
    await opened;
  } catch (err) {
    throw new InputError({ file }, `cannot open: ${(err as Error).message}`, { cause: err });
  }
  const stream = file.toLowerCase().endsWith(".gz") ? raw.pipe(createGunzip()) : raw;
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  let line = 0;
  try {
    for await (const text of lines) {
      line++;
      if (text.trim() === "") continue;
      try {
        yield { line, value: JSON.parse(text) };
      } catch (err) {
        yield { line, parseError: `invalid JSON (${(err as Error).message})` };
      }
    }
  } catch (err) {
    throw new InputError({ file, line: line + 1 }, `cannot read: ${(err as Error).message}`, { cause: err });
  }
}

async function* readParquet(file: string): AsyncGenerator<RawRecord> {
  let rows: Record<string, unknown>[];
  try {
    const buffer = await asyncBufferFromFile(file);
    rows = (await parquetReadObjects({ file: buffer, compressors })) as Record<string, unknown>[];
  } catch (err) {
    throw new InputError({ file }, `cannot read Parquet: ${(err as Error).message}`, { cause: err });
  }
  for (let i = 0; i < rows.length; i++) yield { line: i + 1, value: rows[i] };
}
