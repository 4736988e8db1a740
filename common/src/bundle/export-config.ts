import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { ModelError } from "../errors.js";

/** What delift needs to know about a model that a plain Hugging Face / optimum export says in its JSON files. */
export type ExportSettings = {
  eosId: number;
  padId: number;
  maxLength: number;
  vocabSize: number | undefined;
  /** Where each value came from, e.g. `eosId: "config.json eos_token_id"`, for messages and the written manifest. */
  sources: Record<string, string>;
  /** The JSON files that were read (part of the bundle's identity). */
  files: string[];
};

/** Context-length fields of the common model families' configs, in the order they are tried. */
export const CONTEXT_LENGTH_FIELDS = ["max_position_embeddings", "n_positions", "n_ctx", "seq_length", "max_seq_len", "max_sequence_length"] as const;
const MIN_LENGTH = 8;

type Json = Record<string, unknown>;

/**
 * Reads eos, pad, context length and vocabulary size from an export directory: config.json (or its
 * `text_config`), then generation_config.json, then tokenizer_config.json's eos_token looked up in
 * tokenizer.json. Explicit values (flags) win over the files.
 */
export async function readExportSettings(dir: string, tokenizerFile: string, overrides: { eosId?: number; maxLength?: number } = {}): Promise<ExportSettings> {
  const files: string[] = [];
  const config = await readJson(dir, "config.json", files);
  const generation = await readJson(dir, "generation_config.json", files);
  const sources: Record<string, string> = {};
  if (!config && (overrides.eosId === undefined || overrides.maxLength === undefined)) {
    throw new ModelError(
      `${dir}: neither manifest.json nor config.json: delift needs the eos token id and the context length ` +
        `(write a manifest.json, or run "delift model prepare --model ${dir} --out DIR --eos-id N --max-length N")`,
    );
  }
  const sections = config ? [config, ...(isObject(config.text_config) ? [config.text_config as Json] : [])] : [];
  const pick = (key: string): [unknown, string] | undefined => {
    for (const [k, s] of sections.entries()) if (s[key] !== undefined && s[key] !== null) return [s[key], k === 0 ? `config.json ${key}` : `config.json text_config.${key}`];
    return undefined;
  };

  let maxLength = overrides.maxLength;
  if (maxLength !== undefined) sources.maxLength = "--max-length";
  for (const key of CONTEXT_LENGTH_FIELDS) {
    if (maxLength !== undefined) break;
    const found = pick(key);
    if (!found) continue;
    if (!Number.isInteger(found[0]) || (found[0] as number) < MIN_LENGTH) throw new ModelError(`${join(dir, "config.json")}: field "${key}": expected an integer of at least ${MIN_LENGTH}, got ${JSON.stringify(found[0])}`);
    maxLength = found[0] as number;
    sources.maxLength = found[1];
  }
  if (maxLength === undefined) {
    throw new ModelError(`${join(dir, "config.json")}: no context length (expected one of ${CONTEXT_LENGTH_FIELDS.join(", ")}); give it with "delift model prepare --max-length N"`);
  }

  const vocabRaw = pick("vocab_size");
  const vocabSize = vocabRaw && Number.isInteger(vocabRaw[0]) && (vocabRaw[0] as number) > 0 ? (vocabRaw[0] as number) : undefined;

  let eosId = overrides.eosId;
  if (eosId !== undefined) sources.eosId = "--eos-id";
  const tokenId = (value: unknown, source: string): number | undefined => {
    const first = Array.isArray(value) ? value[0] : value;
    if (first === undefined || first === null) return undefined;
    if (!Number.isInteger(first) || (first as number) < 0) throw new ModelError(`${dir}: ${source}: expected a token id (or a list of them), got ${JSON.stringify(value)}`);
    return first as number;
  };
  if (eosId === undefined) {
    const fromConfig = pick("eos_token_id");
    if (fromConfig) {
      eosId = tokenId(fromConfig[0], fromConfig[1]);
      if (eosId !== undefined) sources.eosId = fromConfig[1] + (Array.isArray(fromConfig[0]) ? " (first of the list)" : "");
    }
  }
  if (eosId === undefined && generation) {
    eosId = tokenId(generation.eos_token_id, "generation_config.json eos_token_id");
    if (eosId !== undefined) sources.eosId = "generation_config.json eos_token_id" + (Array.isArray(generation.eos_token_id) ? " (first of the list)" : "");
  }
  if (eosId === undefined) {
    const fromTokenizer = await eosFromTokenizerConfig(dir, tokenizerFile, files);
    if (fromTokenizer !== undefined) {
      eosId = fromTokenizer;
      sources.eosId = "tokenizer_config.json eos_token";
    }
  }
  if (eosId === undefined) {
    throw new ModelError(`${dir}: no eos token id in config.json, generation_config.json or tokenizer_config.json; give it with "delift model prepare --eos-id N"`);
  }
  if (vocabSize !== undefined && eosId >= vocabSize) throw new ModelError(`${dir}: eos token id ${eosId} (${sources.eosId}) is not below the vocabulary size ${vocabSize}`);

  let padId = eosId;
  const padConfig = pick("pad_token_id");
  const pad = padConfig ? tokenId(padConfig[0], padConfig[1]) : tokenId(generation?.pad_token_id, "generation_config.json pad_token_id");
  if (pad !== undefined && (vocabSize === undefined || pad < vocabSize)) padId = pad;

  return { eosId, padId, maxLength, vocabSize, sources, files };
}

async function readJson(dir: string, name: string, files: string[]): Promise<Json | null> {
  let text: string;
  try {
    text = await readFile(join(dir, name), "utf8");
  } catch {
    return null;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ModelError(`${join(dir, name)}: not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (!isObject(value)) throw new ModelError(`${join(dir, name)}: expected a JSON object`);
  files.push(name);
  return value as Json;
}

function isObject(v: unknown): boolean {
  return !!v && typeof v === "object" && !Array.isArray(v);
}

/** tokenizer_config.json's eos_token (a string or {content}) as an id of tokenizer.json. */
async function eosFromTokenizerConfig(dir: string, tokenizerFile: string, files: string[]): Promise<number | undefined> {
  const tokenizerConfig = await readJson(dir, "tokenizer_config.json", files);
  const raw = tokenizerConfig?.eos_token;
  const content = typeof raw === "string" ? raw : isObject(raw) && typeof (raw as Json).content === "string" ? ((raw as Json).content as string) : undefined;
  if (content === undefined) return undefined;
  let tokenizer: Json;
  try {
    tokenizer = JSON.parse(await readFile(join(dir, tokenizerFile), "utf8")) as Json;
  } catch {
    return undefined;
  }
  const added = Array.isArray(tokenizer.added_tokens) ? (tokenizer.added_tokens as Json[]) : [];
  const hit = added.find((t) => t.content === content);
  if (hit && Number.isInteger(hit.id)) return hit.id as number;
  const vocab = isObject(tokenizer.model) ? ((tokenizer.model as Json).vocab as Json | undefined) : undefined;
  const id = vocab && !Array.isArray(vocab) ? vocab[content] : undefined;
  if (Number.isInteger(id)) return id as number;
  throw new ModelError(`${join(dir, "tokenizer_config.json")}: eos_token ${JSON.stringify(content)} is not a token of ${tokenizerFile}`);
}
