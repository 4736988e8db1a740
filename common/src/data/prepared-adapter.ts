import { InputError } from "../errors.js";
import { widenTokens } from "./compact-corpus.js";
import type { PreparedCorpus } from "./prepare-corpus.js";
import type { CorpusRead } from "./read-corpus.js";
import { readRecords } from "./read-records.js";
import { DEFAULT_FIELDS, type FieldMap, type Sample } from "./types.js";
import { validateRecord } from "./validate-record.js";

/**
 * Today's `PreparedCorpus` (a Sample object per sample, Int32 token ids) from a compact read, for
 * callers not yet moved to the compact form: one more sequential pass over the file brings back
 * each sample's record, x and y. What `loadDataset` + `prepareCorpus` return, field for field.
 */
export async function toPreparedCorpus(read: CorpusRead, fields: Partial<FieldMap> = {}): Promise<PreparedCorpus> {
  const map: FieldMap = { ...DEFAULT_FIELDS, ...fields };
  const { corpus, records } = read;
  const samples: Sample[] = new Array(corpus.count);
  let next = 0;
  for await (const raw of readRecords(read.file)) {
    if (next >= corpus.count) break;
    if (raw.line !== records.lines[next]) continue;
    const value = "parseError" in raw ? undefined : raw.value;
    const checked = value === undefined ? null : validateRecord(value, map);
    if (!checked || !checked.ok) throw new InputError({ file: read.file, line: raw.line }, "record no longer validates: the file changed since it was read");
    const code = corpus.sources.codes[next];
    samples[next] = {
      index: next,
      id: corpus.sampleIds.get(next),
      x: checked.record.x,
      y: checked.record.y,
      source: code === 0 ? undefined : corpus.sources.names[code],
      record: value as Record<string, unknown>,
      file: read.file,
      line: raw.line,
    };
    next++;
  }
  if (next < corpus.count) throw new InputError({ file: read.file }, "records missing on re-reading: the file changed since it was read");
  return { file: read.file, samples, tokens: widenTokens(corpus), skipped: read.skipped };
}
