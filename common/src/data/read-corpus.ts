import { availableParallelism } from "node:os";
import { AbortedError, InputError } from "../errors.js";
import type { TokenizedPrompts } from "../prompt/tokenized-prompt.js";
import { loadReaderTokenizer } from "./reader-tokenizer.js";
import { sha256File } from "../util/hash.js";
import type { CompactCorpus } from "./compact-corpus.js";
import { Growable } from "./growable.js";
import { invalidRecordsError } from "./load-dataset.js";
import { openBatches, type SourceFacts } from "./record-batches.js";
import type { RecordIndex } from "./record-index.js";
import { StringPoolBuilder } from "./string-pool.js";
import { tokenizeBatch, type BatchContext, type BatchInput, type BatchResult } from "./tokenize-batch.js";
import { TokenizePool, type BatchMode } from "./tokenize-pool.js";
import { DEFAULT_FIELDS, type FieldMap, type SkippedRecord } from "./types.js";

export type ReadProgress = {
  phase: "reading";
  file: string;
  /** Bytes of the file consumed (compressed bytes for .gz) and its size: the bar. */
  bytesDone: number;
  bytesTotal: number;
  records: number;
  samples: number;
  elapsedSeconds: number;
  /** Records per second so far, and the seconds left at that rate (null until it can be told). */
  recordsPerSecond: number;
  etaSeconds: number | null;
};

export type ReadCorpusOptions = {
  /** The bundle's tokenizer.json (each thread loads its own). */
  tokenizer: string;
  fields?: Partial<FieldMap>;
  skipInvalid?: boolean;
  /** When given, prepareCorpus's rule: a response that cannot be scored within the maximum length is a bad record. */
  prompts?: TokenizedPrompts | null;
  /**
   * False: validate and index the records only, no token ids (the corpus has empty samples and no
   * length rule applies): for jobs that never score prompts, such as the SE kernel on given
   * embeddings. Default true.
   */
  tokenize?: boolean;
  /** Tokenizer threads; 0 = on this thread. Default: the machine's cores, or this thread for files under 4 MiB. */
  threads?: number;
  batchBytes?: number;
  batchRows?: number;
  signal?: AbortSignal;
  onProgress?: (p: ReadProgress) => void;
  /** Least time between two progress calls. */
  progressIntervalMs?: number;
};

/** A data set read into compact form: tokens, ids, sources, and where each sample's record is. */
export type CorpusRead = {
  file: string;
  corpus: CompactCorpus;
  records: RecordIndex;
  /** Bad records (with --skip-invalid), as loadDataset + prepareCorpus list them: invalid first, then too long. */
  skipped: SkippedRecord[];
  seconds: number;
};

const SMALL_FILE = 4 << 20;

/**
 * Reads and tokenizes a JSONL (.jsonl.gz) or Parquet data set streamed (never holding the file)
 * and in parallel (worker threads), into a compact corpus (issue 8 item 3). The token ids, sample
 * ids, order, errors and skipped records are those of `loadDataset` followed by `prepareCorpus`:
 * every bad record is listed with file, line and field unless `skipInvalid`; duplicate ids are
 * an error at the first duplicate.
 */
export async function readCorpus(file: string, options: ReadCorpusOptions): Promise<CorpusRead> {
  const started = performance.now();
  const fields: FieldMap = { ...DEFAULT_FIELDS, ...options.fields };
  const tokenize = options.tokenize ?? true;
  const prompts = tokenize ? options.prompts ?? null : null;
  const signal = options.signal;
  throwIfAborted(signal);
  const source = await openBatches(file, { batchBytes: options.batchBytes ?? 1 << 20, batchRows: options.batchRows ?? 2048 });
  const threads = options.threads ?? (source.facts.bytes < SMALL_FILE ? 0 : Math.min(availableParallelism(), 16));

  let runBatch: (seq: number, input: BatchInput, mode: BatchMode) => Promise<BatchResult>;
  let pool: TokenizePool | null = null;
  let vocabSize: number;
  if (threads > 0) {
    pool = await TokenizePool.start(threads, { tokenizerPath: options.tokenizer, fields, prompts });
    vocabSize = pool.vocabSize;
    runBatch = (seq, input, mode) => pool!.run(seq, input, mode);
  } else {
    const tokenizer = await loadReaderTokenizer(options.tokenizer);
    vocabSize = tokenizer.vocabSize;
    runBatch = async (_seq, input, mode) => tokenizeBatch(input, { tokenizer, fields, prompts, ...mode } satisfies BatchContext);
  }
  const merger = new BatchMerger(file, fields, vocabSize <= 0x10000, options.skipInvalid ?? false, tokenize);
  const progress = new ProgressTicker(file, source.facts, merger, started, options.onProgress, options.progressIntervalMs ?? 200);
  const inFlight: Promise<BatchResult & { byteOffset: number; consumed: number }>[] = [];
  const maxInFlight = Math.max(2, 2 * threads);
  let seq = 0;
  try {
    for await (const batch of source.batches) {
      throwIfAborted(signal);
      const consumed = source.facts.bytesDone;
      const p = runBatch(seq++, batch.input, merger.mode()).then((r) => Object.assign(r, { byteOffset: batch.byteOffset, consumed }));
      p.catch(() => {}); // awaited in order below; this only keeps a later failure from being "unhandled"
      inFlight.push(p);
      while (inFlight.length >= maxInFlight) progress.tick(merger.merge(await inFlight.shift()!));
    }
    while (inFlight.length > 0) {
      throwIfAborted(signal);
      progress.tick(merger.merge(await inFlight.shift()!));
    }
  } finally {
    await pool?.close();
  }
  throwIfAborted(signal);
  progress.tick(source.facts.bytes, true);
  const facts = source.facts;
  const sha256 = facts.sha256 ?? (await sha256File(file));
  const { corpus, records, skipped } = merger.finish({ ...facts, sha256 });
  return { file, corpus, records, skipped, seconds: (performance.now() - started) / 1000 };
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortedError("reading the data set was cancelled");
}

/** Appends batch results, in file order, to the corpus arrays; checks ids; collects bad records. */
class BatchMerger {
  readonly ids: StringPoolBuilder = new StringPoolBuilder();
  private readonly tokens: Growable<Uint16Array> | Growable<Uint32Array>;
  private readonly offsets = new Growable(Uint32Array, 1 << 16);
  private readonly lines = new Growable(Uint32Array, 1 << 15);
  private readonly ordinals = new Growable(Uint32Array, 1 << 15);
  private readonly byteOffsets = new Growable(Float64Array, 1 << 15);
  private readonly byteLengths = new Growable(Uint32Array, 1 << 15);
  private readonly sourceCodes = new Growable(Uint32Array, 1 << 15);
  private readonly sourceNames: string[] = [""];
  private readonly sourceCode = new Map<string, number>([["", 0]]);
  /** Ids of samples dropped for length: they still make a later duplicate an error. */
  private readonly droppedIds = new Map<string, number>();
  private readonly problems: SkippedRecord[] = [];
  private readonly tooLong: SkippedRecord[] = [];
  private baseLine = 0;
  records = 0;
  private validated = 0;

  constructor(private readonly file: string, private readonly fields: FieldMap, readonly narrow: boolean, private readonly skipInvalid: boolean, private readonly tokenize = true) {
    this.tokens = narrow ? new Growable(Uint16Array, 1 << 20) : new Growable(Uint32Array, 1 << 20);
    this.offsets.push(0);
  }

  get samples(): number {
    return this.ids.count;
  }

  /** Once a bad record is seen without --skip-invalid the read will fail: later batches need only validation. */
  mode(): BatchMode {
    return { tokenize: this.tokenize && (this.skipInvalid || this.problems.length === 0), narrow: this.narrow };
  }

  /** Merges the next batch in file order; returns how many bytes of the file are now merged (for the bar). */
  merge(r: BatchResult & { byteOffset: number; consumed: number }): number {
    const base = this.baseLine;
    const byteBase = r.byteOffset;
    for (const p of r.problems) {
      this.problems.push({ file: this.file, line: base + p.line, ...(p.field !== undefined ? { field: p.field } : {}), reason: p.reason, ...(p.id !== undefined ? { id: p.id } : {}) });
    }
    let tooLongAt = 0;
    let cursor = 0;
    for (let k = 0; k < r.ids.length; k++) {
      const line = base + r.sampleLine[k];
      const id = r.ids[k] ?? `${line}`;
      this.validated++;
      const seen = this.firstLineOf(id);
      if (seen !== undefined) {
        throw new InputError({ file: this.file, line, field: this.fields.id }, `duplicate id "${id}" (first seen on line ${seen}); ids must be unique`);
      }
      const xLen = r.lengths[2 * k];
      const yLen = r.lengths[2 * k + 1];
      if (tooLongAt < r.tooLong.length && r.tooLong[tooLongAt].sample === k) {
        this.tooLong.push({ file: this.file, line, field: "output", reason: r.tooLong[tooLongAt].reason, id });
        this.droppedIds.set(id, line);
        tooLongAt++;
        continue;
      }
      this.ids.add(id);
      const at = this.tokens.length;
      if (at + xLen + yLen > 0xffffffff) throw new InputError({ file: this.file, line }, "more than 2^32 - 1 tokens in one corpus");
      this.tokens.append(r.tokens.subarray(cursor, cursor + xLen + yLen));
      cursor += xLen + yLen;
      this.offsets.push(at + xLen);
      this.offsets.push(at + xLen + yLen);
      this.lines.push(line);
      this.ordinals.push(this.records + r.sampleRecord[k]);
      this.byteOffsets.push(byteBase + r.byteStart[k]);
      this.byteLengths.push(r.byteLength[k]);
      this.sourceCodes.push(this.codeOf(r.sources[k]));
    }
    this.baseLine += r.lines;
    this.records += r.records;
    return r.consumed;
  }

  private firstLineOf(id: string): number | undefined {
    const i = this.ids.indexOf(id);
    if (i >= 0) return this.lines.at(i);
    return this.droppedIds.get(id);
  }

  private codeOf(source: string): number {
    let code = this.sourceCode.get(source);
    if (code === undefined) {
      code = this.sourceNames.length;
      this.sourceNames.push(source);
      this.sourceCode.set(source, code);
    }
    return code;
  }

  finish(facts: SourceFacts & { sha256: string }): { corpus: CompactCorpus; records: RecordIndex; skipped: SkippedRecord[] } {
    const file = this.file;
    if (this.problems.length > 0 && !this.skipInvalid) throw invalidRecordsError(this.problems);
    if (this.validated === 0) {
      throw new InputError({ file }, this.problems.length > 0 ? "no valid records (all were skipped)" : "no records: the data set is empty");
    }
    if (this.tooLong.length > 0 && !this.skipInvalid) throw invalidRecordsError(this.tooLong);
    if (this.samples === 0) throw new InputError({ file }, "no sample fits the maximum length");
    const count = this.samples;
    const jsonl = facts.format === "jsonl";
    const corpus: CompactCorpus = {
      count,
      ids: this.tokens.finish(),
      offsets: this.offsets.finish(),
      sampleIds: this.ids.finish(),
      sources: { names: this.sourceNames, codes: this.sourceCodes.finish() },
    };
    const records: RecordIndex = {
      file,
      format: facts.format,
      gzip: facts.gzip,
      fileBytes: facts.bytes,
      mtimeMs: facts.mtimeMs,
      sha256: facts.sha256,
      recordCount: this.records,
      lines: this.lines.finish(),
      ordinals: this.ordinals.finish(),
      byteOffsets: jsonl ? this.byteOffsets.finish() : null,
      byteLengths: jsonl ? this.byteLengths.finish() : null,
    };
    return { corpus, records, skipped: [...this.problems, ...this.tooLong] };
  }
}

class ProgressTicker {
  private last = 0;

  constructor(
    private readonly file: string,
    private readonly facts: SourceFacts,
    private readonly merger: BatchMerger,
    private readonly started: number,
    private readonly onProgress: ((p: ReadProgress) => void) | undefined,
    private readonly intervalMs: number,
  ) {}

  /** `merged`: bytes of the file whose records are merged (a batch's bytes count once its tokens are in). */
  tick(merged: number, final = false): void {
    if (!this.onProgress) return;
    const now = performance.now();
    if (!final && now - this.last < this.intervalMs) return;
    this.last = now;
    const elapsed = (now - this.started) / 1000;
    const done = Math.min(merged, this.facts.bytes);
    const fraction = this.facts.bytes > 0 ? done / this.facts.bytes : 1;
    const rate = elapsed > 0 ? this.merger.records / elapsed : 0;
    this.onProgress({
      phase: "reading",
      file: this.file,
      bytesDone: done,
      bytesTotal: this.facts.bytes,
      records: this.merger.records,
      samples: this.merger.samples,
      elapsedSeconds: elapsed,
      recordsPerSecond: rate,
      etaSeconds: final ? 0 : fraction > 0.01 ? (elapsed * (1 - fraction)) / fraction : null,
    });
  }
}

/** One line of progress: `reading data.jsonl [#####.....] 52% 41,230 records/s, ETA 12 s`. */
export function formatReadProgress(p: ReadProgress, width = 24): string {
  const fraction = p.bytesTotal > 0 ? Math.min(1, p.bytesDone / p.bytesTotal) : 1;
  const filled = Math.round(fraction * width);
  const eta = p.etaSeconds === null ? "ETA ?" : `ETA ${Math.ceil(p.etaSeconds)} s`;
  return `${p.phase} ${p.file.split("/").at(-1)} [${"#".repeat(filled)}${".".repeat(width - filled)}] ${(100 * fraction).toFixed(0)}% ` +
    `${p.records.toLocaleString("en-US")} records, ${Math.round(p.recordsPerSecond).toLocaleString("en-US")}/s, ${eta}`;
}
