import type { SampleTokens } from "../prompt/compose.js";
import type { StringPool } from "./string-pool.js";
import { packPieces, type TokenizedCorpus } from "./tokenized-corpus.js";

/** Token ids in the narrowest array the vocabulary allows (ids < 65,536: two bytes each). */
export type TokenIds = Uint16Array | Uint32Array;

/**
 * A tokenized data set in typed arrays, one copy, no per-sample objects (issue 8 item 3):
 * sample i's x is ids[offsets[2i], offsets[2i+1]) and its y ids[offsets[2i+1], offsets[2i+2]),
 * the layout of `TokenizedCorpus`, with ids interned in a string pool and sources as codes into
 * a small table (code 0 = no source).
 */
export type CompactCorpus = {
  count: number;
  ids: TokenIds;
  offsets: Uint32Array;
  sampleIds: StringPool;
  sources: { names: string[]; codes: Uint32Array };
};

export function compactTokens(corpus: Pick<CompactCorpus, "ids" | "offsets">, i: number): SampleTokens {
  const o = corpus.offsets;
  return { x: corpus.ids.subarray(o[2 * i], o[2 * i + 1]), y: corpus.ids.subarray(o[2 * i + 1], o[2 * i + 2]) };
}

export function sourceOf(corpus: CompactCorpus, i: number): string | undefined {
  const code = corpus.sources.codes[i];
  return code === 0 ? undefined : corpus.sources.names[code];
}

/**
 * Int32 token ids of the given samples, in the given order: the self-contained table a tile
 * carries (the same bytes `selectSamples` gives for the widened corpus).
 */
export function selectCompact(corpus: Pick<CompactCorpus, "ids" | "offsets">, indices: ArrayLike<number>): TokenizedCorpus {
  const pieces: ArrayLike<number>[] = [];
  let total = 0;
  for (let k = 0; k < indices.length; k++) {
    const t = compactTokens(corpus, indices[k]);
    pieces.push(t.x, t.y);
    total += t.x.length + t.y.length;
  }
  return packPieces(pieces, total);
}

/** The whole corpus as today's `TokenizedCorpus` (Int32 ids): a widening copy, for callers not yet moved over. */
export function widenTokens(corpus: Pick<CompactCorpus, "count" | "ids" | "offsets">): TokenizedCorpus {
  return { count: corpus.count, ids: Int32Array.from(corpus.ids), offsets: corpus.offsets };
}

/** Bytes held by the corpus's arrays (not counting the JavaScript objects around them). */
export function compactBytes(corpus: CompactCorpus): number {
  return corpus.ids.byteLength + corpus.offsets.byteLength + corpus.sampleIds.bytes.byteLength + corpus.sampleIds.offsets.byteLength + corpus.sources.codes.byteLength;
}
