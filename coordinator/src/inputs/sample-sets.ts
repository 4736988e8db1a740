import { readFile } from "node:fs/promises";
import { ConfigError, type EmbeddingMatrix, InputError, packPieces, type RecordIndex, sampleTokens, type PreparedCorpus, type Sample, type TokenizedCorpus } from "../../../common/src/mod.js";

/**
 * The samples of a selection: candidates V (which may be picked) and, for the task and continual
 * stages, the set Q or E (never picked). All share one global index space: V first, then the
 * other set, which is how the kernels refer to them.
 */
export type SampleSets = {
  tokens: TokenizedCorpus;
  ids: string[];
  candidates: Sample[];
  other: Sample[];
  /** Global indices. */
  v: Uint32Array;
  o: Uint32Array;
  /** Records skipped on load (--skip-invalid), over both files. */
  skipped: number;
  /**
   * When every sample comes from the data file: global index -> the sample's position in that
   * file's corpus (the row of given embeddings). Null when a second file is part of the sets.
   */
  corpusIndex: Uint32Array | null;
  /** Given embeddings (--embeddings), rows by corpus sample (corpusIndex), or null. */
  embeddings: EmbeddingMatrix | null;
  /**
   * Lean sets (SE kernel on given embeddings): the corpus was not tokenized (tokens are empty), the
   * samples carry no record and no x/y text; outputs re-read their records from here.
   */
  records: RecordIndex | null;
};

export function combineSets(candidates: PreparedCorpus, otherCorpus: PreparedCorpus | null, candidateIdx?: number[], otherIdx?: number[]): SampleSets {
  const vIdx = candidateIdx ?? candidates.samples.map((_, i) => i);
  const oSource = otherCorpus ?? candidates;
  const oIdx = otherIdx ?? (otherCorpus ? otherCorpus.samples.map((_, i) => i) : []);
  const pieces: ArrayLike<number>[] = [];
  let total = 0;
  const add = (corpus: TokenizedCorpus, i: number) => {
    const t = sampleTokens(corpus, i);
    pieces.push(t.x, t.y);
    total += t.x.length + t.y.length;
  };
  vIdx.forEach((i) => add(candidates.tokens, i));
  oIdx.forEach((i) => add(oSource.tokens, i));
  const v = Uint32Array.from(vIdx, (_, k) => k);
  const o = Uint32Array.from(oIdx, (_, k) => vIdx.length + k);
  const cand = vIdx.map((i, k) => ({ ...candidates.samples[i], index: k }));
  const other = oIdx.map((i, k) => ({ ...oSource.samples[i], index: k }));
  return {
    tokens: packPieces(pieces, total),
    ids: [...cand.map((s) => s.id), ...other.map((s) => s.id)],
    candidates: cand,
    other,
    v,
    o,
    skipped: candidates.skipped.length + (otherCorpus?.skipped.length ?? 0),
    corpusIndex: otherCorpus ? null : Uint32Array.from([...vIdx, ...oIdx]),
    embeddings: null,
    records: null,
  };
}

/** The samples an id list can name: a data file's, by id. */
export type IdLookup = { file: string; count: number; indexOf(id: string): number };

export function idLookupOf(corpus: PreparedCorpus): IdLookup {
  const byId = new Map(corpus.samples.map((s, i) => [s.id, i]));
  return { file: corpus.file, count: corpus.samples.length, indexOf: (id) => byId.get(id) ?? -1 };
}

/** Reads an id list (one per line; blank lines and # comments ignored) and finds each id in the data. */
export async function resolveIdList(file: string, source: PreparedCorpus | IdLookup): Promise<number[]> {
  const corpus = "samples" in source ? idLookupOf(source) : source;
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new InputError({ file }, `cannot read id list: ${(err as Error).message}`);
  }
  const out: number[] = [];
  const seen = new Set<number>();
  text.split(/\r?\n/).forEach((raw, k) => {
    const id = raw.trim();
    if (id === "" || id.startsWith("#")) return;
    const i = corpus.indexOf(id);
    if (i < 0) throw new InputError({ file, line: k + 1 }, `unknown id "${id}": no sample of ${corpus.file} has it`);
    if (seen.has(i)) throw new InputError({ file, line: k + 1 }, `id "${id}" listed twice`);
    seen.add(i);
    out.push(i);
  });
  if (out.length === 0) throw new InputError({ file }, "the id list is empty");
  if (out.length === corpus.count) throw new ConfigError(`${file} lists every sample of ${corpus.file}: nothing is left to select from`);
  return out;
}
