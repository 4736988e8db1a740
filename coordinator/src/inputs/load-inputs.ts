import {
  loadDataset,
  loadTokenizer,
  openBundle,
  prepareCorpus,
  tokenizePrompts,
  type ModelBundle,
  type PreparedCorpus,
  type TextTokenizer,
  type TokenizedPrompts,
} from "../../../common/src/mod.js";
import { ensureMaxLength, type RunConfig } from "./run-config.js";

export type ModelInputs = { bundle: ModelBundle; tokenizer: TextTokenizer; prompts: TokenizedPrompts };

export async function loadModelInputs(modelDir: string, config: RunConfig): Promise<ModelInputs> {
  const bundle = await openBundle(modelDir);
  const tokenizer = await loadTokenizer(bundle.tokenizerPath);
  const maxLength = ensureMaxLength(config.maxLength, bundle.manifest.maxLength);
  const prompts = tokenizePrompts(config.templates, tokenizer, bundle.manifest.eosId, maxLength);
  return { bundle, tokenizer, prompts };
}

export async function loadCorpus(file: string, inputs: ModelInputs, config: RunConfig): Promise<PreparedCorpus> {
  const dataset = await loadDataset(file, { fields: config.fields, skipInvalid: config.skipInvalid });
  return prepareCorpus(dataset, inputs.tokenizer, inputs.prompts, { skipInvalid: config.skipInvalid });
}
