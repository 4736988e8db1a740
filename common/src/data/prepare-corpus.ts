import { InputError } from "../errors.js";
import type { TokenizedPrompts } from "../prompt/tokenized-prompt.js";
import { prefixLength, responseLength, targetLength } from "../prompt/lengths.js";
import type { TextTokenizer } from "../tokenizer/text-tokenizer.js";
import { percentiles } from "../util/percentiles.js";
import { invalidRecordsError } from "./load-dataset.js";
import { sampleLengths, tokenizeTexts, type TokenizedCorpus } from "./tokenized-corpus.js";
import type { Dataset, Sample, SkippedRecord } from "./types.js";

export type PreparedCorpus = {
  file: string;
  samples: Sample[];
  tokens: TokenizedCorpus;
  skipped: SkippedRecord[];
};

/**
 * Tokenizes a loaded data set and rejects samples whose response cannot be scored within the
 * maximum length (the response is never truncated; at least one context token must remain).
 */
export function prepareCorpus(
  dataset: Dataset,
  tokenizer: TextTokenizer,
  prompts: TokenizedPrompts,
  options: { skipInvalid?: boolean } = {},
): PreparedCorpus {
  const tokens = tokenizeTexts(dataset.samples, tokenizer);
  const tooLong: SkippedRecord[] = [];
  const keep: number[] = [];
  for (let i = 0; i < dataset.samples.length; i++) {
    const lengths = sampleLengths(tokens, i);
    const need = Math.max(responseLength(prompts.baseline, lengths), responseLength(prompts.example, lengths)) + 1;
    if (need > prompts.maxLength) {
      const s = dataset.samples[i];
      tooLong.push({
        file: s.file,
        line: s.line,
        field: "output",
        reason: `response has ${lengths.y} tokens; with the closing EOS and one context token it needs ${need}, more than the maximum length ${prompts.maxLength}`,
      });
    } else {
      keep.push(i);
    }
  }
  if (tooLong.length > 0 && !options.skipInvalid) throw invalidRecordsError(tooLong);
  if (keep.length === 0) throw new InputError({ file: dataset.file }, "no sample fits the maximum length");
  if (keep.length === dataset.samples.length) {
    return { file: dataset.file, samples: dataset.samples, tokens, skipped: dataset.skipped };
  }
  const samples = keep.map((i, index) => ({ ...dataset.samples[i], index }));
  return {
    file: dataset.file,
    samples,
    tokens: tokenizeTexts(samples, tokenizer),
    skipped: [...dataset.skipped, ...tooLong],
  };
}

export type CorpusSummary = {
  samples: number;
  skipped: number;
  xTokens: number[];
  yTokens: number[];
  baselineTokens: number[];
  /** The percentile points of the three lists above. */
  percentilesOf: number[];
  baselineTruncated: number;
  pairTruncated: number;
  pairs: number;
  maxLength: number;
};

const PCTS = [50, 90, 99, 100];

/**
 * Counts, token length percentiles and how many prompts left truncation will shorten (exact).
 * Takes a PreparedCorpus or a compact read's `{ tokens: read.corpus, skipped: read.skipped }`.
 */
export function summarizeCorpus(
  corpus: { tokens: Pick<TokenizedCorpus, "count" | "offsets">; skipped: SkippedRecord[] },
  prompts: TokenizedPrompts,
  pairs: { examples: ArrayLike<number>; targets: ArrayLike<number> } | null,
): CorpusSummary {
  const n = corpus.tokens.count;
  const xs = new Float64Array(n);
  const ys = new Float64Array(n);
  const p0 = new Float64Array(n);
  let baselineTruncated = 0;
  for (let i = 0; i < n; i++) {
    const l = sampleLengths(corpus.tokens, i);
    xs[i] = l.x;
    ys[i] = l.y;
    p0[i] = prefixLength(prompts.baseline, null) + targetLength(prompts.baseline, l);
    if (p0[i] > prompts.maxLength) baselineTruncated++;
  }
  let pairTruncated = 0;
  let pairCount = 0;
  if (pairs) {
    const pre = Array.from(pairs.examples, (j) => prefixLength(prompts.example, sampleLengths(corpus.tokens, j))).sort((a, b) => a - b);
    for (let k = 0; k < pairs.targets.length; k++) {
      const need = prompts.maxLength - targetLength(prompts.example, sampleLengths(corpus.tokens, pairs.targets[k]));
      pairTruncated += pre.length - upperBound(pre, need);
    }
    pairCount = pairs.examples.length * pairs.targets.length;
  }
  return {
    samples: n,
    skipped: corpus.skipped.length,
    xTokens: percentiles(xs, PCTS),
    yTokens: percentiles(ys, PCTS),
    baselineTokens: percentiles(p0, PCTS),
    percentilesOf: PCTS,
    baselineTruncated,
    pairTruncated,
    pairs: pairCount,
    maxLength: prompts.maxLength,
  };
}

function upperBound(sorted: number[], value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] <= value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export function formatSummary(s: CorpusSummary): string {
  const p = (v: number[]) => s.percentilesOf.map((q, k) => `p${q}=${v[k]}`).join(" ");
  const lines = [
    `samples: ${s.samples}${s.skipped ? ` (${s.skipped} skipped)` : ""}`,
    `tokens x (query): ${p(s.xTokens)}`,
    `tokens y (response): ${p(s.yTokens)}`,
    `baseline prompt tokens: ${p(s.baselineTokens)}`,
    s.pairs > 0
      ? `max length ${s.maxLength}: ${s.baselineTruncated} baseline prompt(s) and ${s.pairTruncated} of ${s.pairs} pair prompt(s) will be left-truncated`
      : `max length ${s.maxLength}: ${s.baselineTruncated} baseline prompt(s) will be left-truncated`,
  ];
  return lines.join("\n");
}
