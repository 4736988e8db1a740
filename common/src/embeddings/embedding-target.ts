import type { CorpusRead } from "../data/read-corpus.js";
import type { EmbeddingTarget } from "./read-embeddings.js";

/** What given embeddings must cover, from a compact read of the data set. */
export function embeddingTargetOf(read: CorpusRead): EmbeddingTarget {
  const { corpus, records } = read;
  return {
    count: corpus.count,
    ordinals: records.ordinals,
    recordCount: records.recordCount,
    idOf: (i) => corpus.sampleIds.get(i),
    indexOfId: (id) => corpus.sampleIds.indexOf(id),
    lineOf: (i) => records.lines[i],
    skippedIds: new Set(read.skipped.flatMap((s) => (s.id !== undefined ? [s.id] : []))),
    dataFile: read.file,
  };
}
