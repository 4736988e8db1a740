export {
  AbortedError,
  ConfigError,
  InputError,
  ModelError,
  ProtocolError,
  formatLocation,
  isAbortedError,
  isConfigError,
  isInputError,
} from "./errors.js";
export type { ErrorOptions, InputLocation } from "./errors.js";

export { DEFAULT_FIELDS } from "./data/types.js";
export type { Dataset, FieldMap, LoadOptions, Sample, SkippedRecord } from "./data/types.js";
export { loadDataset, formatProblem } from "./data/load-dataset.js";
export { detectFormat } from "./data/read-records.js";
export { packPieces, sampleLengths, sampleTokens, selectSamples, tokenizeTexts } from "./data/tokenized-corpus.js";
export type { TokenizedCorpus } from "./data/tokenized-corpus.js";
export { formatSummary, prepareCorpus, summarizeCorpus } from "./data/prepare-corpus.js";
export type { CorpusSummary, PreparedCorpus } from "./data/prepare-corpus.js";

export { DEFAULT_TEMPLATES, parseTemplate, validateTemplate } from "./prompt/template.js";
export type { PromptField, PromptTemplates, TemplateSegment } from "./prompt/template.js";
export { tokenizePrompts } from "./prompt/tokenized-prompt.js";
export type { PromptPiece, SampleField, TokenizedPrompts, TokenizedTemplate } from "./prompt/tokenized-prompt.js";
export { composeExamplePart, composeTargetPart } from "./prompt/compose.js";
export type { SampleTokens, TargetPart } from "./prompt/compose.js";
export { prefixLength, responseLength, targetLength } from "./prompt/lengths.js";

export { loadTokenizer, tokenizerFromJson } from "./tokenizer/text-tokenizer.js";
export type { TextTokenizer } from "./tokenizer/text-tokenizer.js";

export { BUNDLE_FORMAT, readManifest, validateManifest } from "./bundle/manifest.js";
export type { BundleManifest } from "./bundle/manifest.js";
export { openBundle } from "./bundle/open-bundle.js";
export type { ModelBundle } from "./bundle/open-bundle.js";

export { sha256File, sha256Hex } from "./util/hash.js";
export { percentiles } from "./util/percentiles.js";
