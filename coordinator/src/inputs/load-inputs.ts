import {
  ConfigError,
  loadTokenizer,
  openBundle,
  readCorpus,
  toPreparedCorpus,
  tokenizePrompts,
  type ModelBundle,
  type PreparedCorpus,
  type TextTokenizer,
  type TokenizedPrompts,
} from "../../../common/src/mod.js";
import type { JobSpec, ScoringSettings } from "../jobs/job-spec.js";
import { combineSets, resolveIdList, type SampleSets } from "./sample-sets.js";

export type ModelInputs = { bundle: ModelBundle; tokenizer: TextTokenizer; prompts: TokenizedPrompts };

export async function loadModelInputs(modelDir: string, scoring: ScoringSettings): Promise<ModelInputs> {
  const bundle = await openBundle(modelDir);
  const tokenizer = await loadTokenizer(bundle.tokenizerPath);
  const modelMax = bundle.manifest.maxLength;
  if (scoring.maxLength !== null && scoring.maxLength > modelMax) {
    throw new ConfigError(`max length ${scoring.maxLength} exceeds the model's maximum length ${modelMax}`);
  }
  const prompts = tokenizePrompts(scoring.templates, tokenizer, bundle.manifest.eosId, scoring.maxLength ?? modelMax);
  return { bundle, tokenizer, prompts };
}

/**
 * Reads and tokenizes a data set: streamed, in worker threads, into the compact corpus, then (until
 * the job flow takes the compact form) adapted to today's PreparedCorpus: the same samples, token
 * ids and errors as loadDataset + prepareCorpus.
 */
export async function loadCorpus(file: string, inputs: ModelInputs, scoring: ScoringSettings, signal?: AbortSignal): Promise<PreparedCorpus> {
  const read = await readCorpus(file, { tokenizer: inputs.bundle.tokenizerPath, prompts: inputs.prompts, fields: scoring.fields, skipInvalid: scoring.skipInvalid, signal });
  return toPreparedCorpus(read, scoring.fields);
}

/** Candidates V and, for the task and continual stages, Q or E (a data file, or ids of samples of the data). */
export async function loadJobSets(spec: JobSpec, inputs: ModelInputs, signal?: AbortSignal): Promise<{ sets: SampleSets; skipped: PreparedCorpus["skipped"] }> {
  const corpus = await loadCorpus(spec.data, inputs, spec.scoring, signal);
  const otherFile = spec.selection.stage === "task" ? spec.target : spec.selection.stage === "continual" ? spec.existing : null;
  const idFile = spec.selection.stage === "task" ? spec.targetIds : spec.selection.stage === "continual" ? spec.existingIds : null;
  if (otherFile) {
    const other = await loadCorpus(otherFile, inputs, spec.scoring, signal);
    return { sets: combineSets(corpus, other), skipped: [...corpus.skipped, ...other.skipped] };
  }
  if (idFile) {
    const other = await resolveIdList(idFile, corpus);
    const taken = new Set(other);
    return {
      sets: combineSets(corpus, null, corpus.samples.map((_, i) => i).filter((i) => !taken.has(i)), other),
      skipped: corpus.skipped,
    };
  }
  return { sets: combineSets(corpus, null), skipped: corpus.skipped };
}
