import {
  ConfigError,
  type CorpusRead,
  embeddingTargetOf,
  loadTokenizer,
  readEmbeddings,
  type Sample,
  sourceOf,
  openBundle,
  readCorpus,
  toPreparedCorpus,
  tokenizePrompts,
  type ModelBundle,
  type PreparedCorpus,
  type ReadProgress,
  type TextTokenizer,
  type TokenizedPrompts,
} from "../../../common/src/mod.js";
import type { JobSpec, ScoringSettings } from "../jobs/job-spec.js";
import { combineSets, resolveIdList, type SampleSets } from "./sample-sets.js";

/** What a lean sample carries instead of its record (outputs re-read records through the record index). */
const NO_RECORD: Record<string, unknown> = Object.freeze({}) as Record<string, unknown>;

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
  return (await loadCorpusRead(file, inputs, scoring, signal)).prepared;
}

async function loadCorpusRead(file: string, inputs: ModelInputs, scoring: ScoringSettings, signal?: AbortSignal, onProgress?: (p: ReadProgress) => void): Promise<{ read: CorpusRead; prepared: PreparedCorpus }> {
  const read = await readCorpus(file, { tokenizer: inputs.bundle.tokenizerPath, prompts: inputs.prompts, fields: scoring.fields, skipInvalid: scoring.skipInvalid, signal, onProgress });
  return { read, prepared: await toPreparedCorpus(read, scoring.fields) };
}

/** True when a job needs no token ids at all: the SE kernel on embeddings given with the data. */
export function isLeanJob(spec: JobSpec): boolean {
  return spec.embeddings !== null && spec.kind === "select" && spec.selection.kernelType === "se";
}

/** Candidates V and, for the task and continual stages, Q or E (a data file, or ids of samples of the data). */
/** Progress of planning's two reads: the data file, then the given embeddings. */
export type LoadProgress = { onRead?: (p: ReadProgress) => void; onEmbeddings?: (bytesDone: number, bytesTotal: number) => void };

export async function loadJobSets(spec: JobSpec, inputs: ModelInputs, signal?: AbortSignal, progress: LoadProgress = {}): Promise<{ sets: SampleSets; skipped: PreparedCorpus["skipped"] }> {
  const onRead = progress.onRead;
  if (isLeanJob(spec)) return loadLeanSets(spec, inputs, signal, progress);
  const { read, prepared: corpus } = await loadCorpusRead(spec.data, inputs, spec.scoring, signal, onRead);
  const loaded = await loadPreparedSets(spec, inputs, corpus, signal);
  if (spec.embeddings) loaded.sets.embeddings = await readEmbeddings(spec.embeddings, embeddingTargetOf(read), { signal, onProgress: progress.onEmbeddings });
  return loaded;
}

async function loadPreparedSets(spec: JobSpec, inputs: ModelInputs, corpus: PreparedCorpus, signal?: AbortSignal): Promise<{ sets: SampleSets; skipped: PreparedCorpus["skipped"] }> {
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

/**
 * The sets of a job that scores no prompts (SE kernel, given embeddings): the data file is read
 * and validated but not tokenized, its records stay on disk (the record index says where), and
 * each sample keeps only its id, source and line; the embeddings are read and checked against it.
 */
async function loadLeanSets(spec: JobSpec, inputs: ModelInputs, signal: AbortSignal | undefined, progress: LoadProgress): Promise<{ sets: SampleSets; skipped: PreparedCorpus["skipped"] }> {
  const read = await readCorpus(spec.data, { tokenizer: inputs.bundle.tokenizerPath, fields: spec.scoring.fields, skipInvalid: spec.scoring.skipInvalid, tokenize: false, signal, onProgress: progress.onRead });
  const embeddings = await readEmbeddings(spec.embeddings!, embeddingTargetOf(read), { signal, onProgress: progress.onEmbeddings });
  const { corpus, records } = read;
  const n = corpus.count;
  const idFile = spec.selection.stage === "task" ? spec.targetIds : spec.selection.stage === "continual" ? spec.existingIds : null;
  let vIdx: Uint32Array;
  let oIdx: Uint32Array;
  if (idFile) {
    oIdx = Uint32Array.from(await resolveIdList(idFile, { file: spec.data, count: n, indexOf: (id) => corpus.sampleIds.indexOf(id) }));
    const taken = new Uint8Array(n);
    for (const i of oIdx) taken[i] = 1;
    vIdx = new Uint32Array(n - oIdx.length);
    for (let i = 0, k = 0; i < n; i++) if (!taken[i]) vIdx[k++] = i;
  } else {
    vIdx = Uint32Array.from({ length: n }, (_, i) => i);
    oIdx = new Uint32Array(0);
  }
  const sample = (i: number, k: number): Sample => ({ index: k, id: corpus.sampleIds.get(i), x: "", y: "", source: sourceOf(corpus, i), record: NO_RECORD, file: spec.data, line: records.lines[i] });
  const candidates = Array.from(vIdx, sample);
  const other = Array.from(oIdx, sample);
  const total = vIdx.length + oIdx.length;
  const sets: SampleSets = {
    tokens: { count: total, ids: new Int32Array(0), offsets: new Uint32Array(2 * total + 1) },
    ids: [...candidates.map((s) => s.id), ...other.map((s) => s.id)],
    candidates,
    other,
    v: Uint32Array.from({ length: vIdx.length }, (_, k) => k),
    o: Uint32Array.from({ length: oIdx.length }, (_, k) => vIdx.length + k),
    skipped: read.skipped.length,
    corpusIndex: Uint32Array.from([...vIdx, ...oIdx]),
    embeddings,
    records,
  };
  return { sets, skipped: read.skipped };
}
