import { readFile } from "node:fs/promises";
import { Tokenizer } from "@huggingface/tokenizers";
import { ModelError } from "../errors.js";

/** The tokenizer as delift uses it: plain ids, never any added special tokens. */
export type TextTokenizer = {
  encode(text: string): number[];
  decode(ids: ArrayLike<number>): string;
  readonly vocabSize: number;
};

/** Loads a Hugging Face `tokenizer.json` (the same file Python `tokenizers` reads). */
export async function loadTokenizer(path: string): Promise<TextTokenizer> {
  let json: object;
  try {
    json = JSON.parse(await readFile(path, "utf8")) as object;
  } catch (err) {
    throw new ModelError(`cannot read tokenizer ${path}: ${(err as Error).message}`, { cause: err });
  }
  return tokenizerFromJson(json, path);
}

export function tokenizerFromJson(json: object, label = "tokenizer.json"): TextTokenizer {
  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(json, {});
  } catch (err) {
    throw new ModelError(`cannot load tokenizer ${label}: ${(err as Error).message}`, { cause: err });
  }
  const vocabSize = tokenizer.get_vocab(true).size;
  return {
    vocabSize,
    encode: (text) => tokenizer.encode(text, { add_special_tokens: false }).ids,
    decode: (ids) =>
      tokenizer.decode(Array.from(ids), { skip_special_tokens: false, clean_up_tokenization_spaces: false }),
  };
}
