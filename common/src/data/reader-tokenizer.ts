import { readFile } from "node:fs/promises";
import { Tokenizer } from "@huggingface/tokenizers";
import { ModelError } from "../errors.js";
import type { TextTokenizer } from "../tokenizer/text-tokenizer.js";

/** Words whose BPE result is memoised; past this the memo starts over (a few tens of MB at most). */
const WORD_CACHE_ENTRIES = 1 << 17;

/**
 * The tokenizer as the streamed reader uses it: exactly `loadTokenizer`'s encoding (plain ids, no
 * added special tokens), with the BPE model's per-word memo replaced by a plain bounded map. The
 * library's own memo is a 10,000-entry LRU whose move-to-front costs a Map delete and insert on
 * every hit (a fifth of the encoding time, measured); the memo only caches a pure function, so the
 * ids are the same (tests compare them with `loadTokenizer` on whole corpora).
 */
export async function loadReaderTokenizer(path: string): Promise<TextTokenizer> {
  let json: object;
  try {
    json = JSON.parse(await readFile(path, "utf8")) as object;
  } catch (err) {
    throw new ModelError(`cannot read tokenizer ${path}: ${(err as Error).message}`, { cause: err });
  }
  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(json, {});
  } catch (err) {
    throw new ModelError(`cannot load tokenizer ${path}: ${(err as Error).message}`, { cause: err });
  }
  replaceWordCache(tokenizer);
  const vocabSize = tokenizer.get_vocab(true).size;
  return {
    vocabSize,
    encode: (text) => tokenizer.encode(text, { add_special_tokens: false }).ids,
    decode: (ids) => tokenizer.decode(Array.from(ids), { skip_special_tokens: false, clean_up_tokenization_spaces: false }),
  };
}

type WordCache = { get(key: string): unknown; put(key: string, value: unknown): void; clear(): void };

function replaceWordCache(tokenizer: Tokenizer): void {
  const model = (tokenizer as unknown as { model?: { cache?: Partial<WordCache> } }).model;
  const cache = model?.cache;
  // Only where the model has the memo this was written against (BPE); otherwise leave it be.
  if (!model || !cache || typeof cache.get !== "function" || typeof cache.put !== "function" || typeof cache.clear !== "function") return;
  const memo = new Map<string, unknown>();
  model.cache = {
    get: (key) => memo.get(key),
    put: (key, value) => {
      if (memo.size >= WORD_CACHE_ENTRIES) memo.clear();
      memo.set(key, value);
    },
    clear: () => memo.clear(),
  } satisfies WordCache;
}
