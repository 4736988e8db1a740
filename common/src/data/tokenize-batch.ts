import { ModelError } from "../errors.js";
import { responseLength } from "../prompt/lengths.js";
import type { TokenizedPrompts } from "../prompt/tokenized-prompt.js";
import type { TextTokenizer } from "../tokenizer/text-tokenizer.js";
import { Growable } from "./growable.js";
import type { FieldMap } from "./types.js";
import { validateRecord } from "./validate-record.js";

/**
 * One batch of the streamed reader, parsed, validated and tokenized (in a worker thread or in
 * process): the same checks and messages as `loadDataset` + `prepareCorpus`, with positions
 * relative to the batch (the reader makes them absolute when it merges batches in order).
 */
export type BatchInput =
  /** Complete JSONL lines (the last one may lack its newline); `bytes` is transferred. */
  | { kind: "lines"; bytes: Uint8Array }
  /** Parquet rows as objects. */
  | { kind: "rows"; rows: unknown[] };

export type BatchProblem = { record: number; line: number; field?: string; reason: string; id?: string };

export type BatchResult = {
  /** Lines (JSONL, blank ones included) or rows in the batch: how far the next batch's numbering starts. */
  lines: number;
  /** Records (non-blank lines, or rows) in the batch, valid or not: the embeddings file's rows. */
  records: number;
  /** Per validated sample (too-long ones included): record ordinal and line within the batch (line 1-based). */
  sampleRecord: Uint32Array;
  sampleLine: Uint32Array;
  /** JSONL: where the sample's line starts in the batch, and its length in bytes (without the newline). */
  byteStart: Uint32Array;
  byteLength: Uint32Array;
  /** x and y token counts, two per sample; tokens of too-long samples are left out of `tokens`. */
  lengths: Uint32Array;
  tokens: Uint16Array | Uint32Array;
  /** The id field as text, or null where it is absent (the reader uses the line number). */
  ids: (string | null)[];
  sources: string[];
  /** Samples whose response cannot be scored within the maximum length, with prepareCorpus's reason. */
  tooLong: { sample: number; reason: string }[];
  problems: BatchProblem[];
};

export type BatchContext = {
  tokenizer: TextTokenizer;
  fields: FieldMap;
  prompts: TokenizedPrompts | null;
  /** Token ids fit two bytes (vocabulary of at most 65,536). */
  narrow: boolean;
  /** False: validate only (the read already failed; only the list of bad records is still wanted). */
  tokenize: boolean;
};

const decoder = new TextDecoder();
/** Address space reserved per array of one batch (batches are a few MiB; past this they grow by copying). */
const BATCH_RESERVE = 1 << 28;

export function tokenizeBatch(input: BatchInput, ctx: BatchContext): BatchResult {
  const sampleRecord = new Growable(Uint32Array, 1024, BATCH_RESERVE);
  const sampleLine = new Growable(Uint32Array, 1024, BATCH_RESERVE);
  const byteStart = new Growable(Uint32Array, 1024, BATCH_RESERVE);
  const byteLength = new Growable(Uint32Array, 1024, BATCH_RESERVE);
  const lengths = new Growable(Uint32Array, 2048, BATCH_RESERVE);
  const tokens = ctx.narrow ? new Growable(Uint16Array, 1 << 16, BATCH_RESERVE) : new Growable(Uint32Array, 1 << 16, BATCH_RESERVE);
  const ids: (string | null)[] = [];
  const sources: string[] = [];
  const tooLong: BatchResult["tooLong"] = [];
  const problems: BatchProblem[] = [];
  let records = 0;

  const take = (value: unknown, line: number, start: number, length: number) => {
    const record = records++;
    const checked = validateRecord(value, ctx.fields);
    if (!checked.ok) {
      problems.push({ record, line, field: checked.problem.field, reason: checked.problem.reason, id: idText(value, ctx.fields) });
      return;
    }
    const sample = ids.length;
    ids.push(checked.record.id ?? null);
    sources.push(checked.record.source ?? "");
    sampleRecord.push(record);
    sampleLine.push(line);
    byteStart.push(start);
    byteLength.push(length);
    if (!ctx.tokenize) {
      lengths.push(0);
      lengths.push(0);
      return;
    }
    const x = ctx.tokenizer.encode(checked.record.x);
    const y = ctx.tokenizer.encode(checked.record.y);
    if (ctx.narrow) checkNarrow(x, y);
    lengths.push(x.length);
    lengths.push(y.length);
    const reason = ctx.prompts ? tooLongReason(ctx.prompts, x.length, y.length) : null;
    if (reason) {
      tooLong.push({ sample, reason });
      return;
    }
    tokens.append(x);
    tokens.append(y);
  };

  let lines = 0;
  if (input.kind === "rows") {
    for (const row of input.rows) take(row, ++lines, 0, 0);
  } else {
    const bytes = input.bytes;
    let start = 0;
    while (start < bytes.length) {
      let end = bytes.indexOf(10, start);
      if (end < 0) end = bytes.length;
      lines++;
      const contentEnd = end > start && bytes[end - 1] === 13 ? end - 1 : end;
      const text = decoder.decode(bytes.subarray(start, contentEnd));
      if (text.trim() !== "") {
        let value: unknown;
        let parsed = true;
        try {
          value = JSON.parse(text);
        } catch (err) {
          parsed = false;
          problems.push({ record: records++, line: lines, reason: `invalid JSON (${(err as Error).message})` });
        }
        if (parsed) take(value, lines, start, contentEnd - start);
      }
      start = end + 1;
    }
  }
  return {
    lines,
    records,
    sampleRecord: sampleRecord.finish(),
    sampleLine: sampleLine.finish(),
    byteStart: byteStart.finish(),
    byteLength: byteLength.finish(),
    lengths: lengths.finish(),
    tokens: tokens.finish(),
    ids,
    sources,
    tooLong,
    problems,
  };
}

function checkNarrow(x: number[], y: number[]): void {
  for (const id of x) if (id > 0xffff) throw new ModelError(`token id ${id} does not fit two bytes, though the tokenizer's vocabulary has at most 65,536 entries`);
  for (const id of y) if (id > 0xffff) throw new ModelError(`token id ${id} does not fit two bytes, though the tokenizer's vocabulary has at most 65,536 entries`);
}

/** prepareCorpus's rule: the response (with the closing EOS) plus one context token must fit. */
function tooLongReason(prompts: TokenizedPrompts, x: number, y: number): string | null {
  const lengths = { x, y };
  const need = Math.max(responseLength(prompts.baseline, lengths), responseLength(prompts.example, lengths)) + 1;
  if (need <= prompts.maxLength) return null;
  return `response has ${y} tokens; with the closing EOS and one context token it needs ${need}, more than the maximum length ${prompts.maxLength}`;
}

/** The record's id as text when it has a usable one (for matching embeddings rows of skipped records). */
function idText(value: unknown, fields: FieldMap): string | undefined {
  if (value === null || typeof value !== "object") return undefined;
  const raw = (value as Record<string, unknown>)[fields.id];
  if (typeof raw === "string" && raw.length > 0) return raw;
  if (typeof raw === "number" && Number.isFinite(raw)) return String(raw);
  if (typeof raw === "bigint") return raw.toString();
  return undefined;
}

/** Arrays of a result to transfer rather than copy between threads. */
export function transferablesOf(r: BatchResult): ArrayBuffer[] {
  return [r.sampleRecord, r.sampleLine, r.byteStart, r.byteLength, r.lengths, r.tokens].map((a) => a.buffer as ArrayBuffer);
}
