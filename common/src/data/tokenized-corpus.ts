import type { SampleTokens } from "../prompt/compose.js";
import type { TextTokenizer } from "../tokenizer/text-tokenizer.js";

/**
 * Token ids of every sample in one flat array: sample i's x is ids[offsets[2i], offsets[2i+1])
 * and its y is ids[offsets[2i+1], offsets[2i+2]). One allocation however many samples.
 */
export type TokenizedCorpus = { count: number; ids: Int32Array; offsets: Uint32Array };

export function tokenizeTexts(texts: { x: string; y: string }[], tokenizer: TextTokenizer): TokenizedCorpus {
  const pieces: number[][] = [];
  let total = 0;
  for (const t of texts) {
    const x = tokenizer.encode(t.x);
    const y = tokenizer.encode(t.y);
    pieces.push(x, y);
    total += x.length + y.length;
  }
  return packPieces(pieces, total);
}

export function packPieces(pieces: ArrayLike<number>[], total: number): TokenizedCorpus {
  const ids = new Int32Array(total);
  const offsets = new Uint32Array(pieces.length + 1);
  let at = 0;
  for (let k = 0; k < pieces.length; k++) {
    offsets[k] = at;
    ids.set(pieces[k], at);
    at += pieces[k].length;
  }
  offsets[pieces.length] = at;
  return { count: pieces.length / 2, ids, offsets };
}

export function sampleTokens(corpus: TokenizedCorpus, i: number): SampleTokens {
  const o = corpus.offsets;
  return { x: corpus.ids.subarray(o[2 * i], o[2 * i + 1]), y: corpus.ids.subarray(o[2 * i + 1], o[2 * i + 2]) };
}

export function sampleLengths(corpus: Pick<TokenizedCorpus, "offsets">, i: number): { x: number; y: number } {
  const o = corpus.offsets;
  return { x: o[2 * i + 1] - o[2 * i], y: o[2 * i + 2] - o[2 * i + 1] };
}

/** A corpus holding only the given samples, in the given order. */
export function selectSamples(corpus: TokenizedCorpus, indices: ArrayLike<number>): TokenizedCorpus {
  const pieces: Int32Array[] = [];
  let total = 0;
  for (let k = 0; k < indices.length; k++) {
    const t = sampleTokens(corpus, indices[k]);
    pieces.push(t.x as Int32Array, t.y as Int32Array);
    total += t.x.length + t.y.length;
  }
  return packPieces(pieces, total);
}
