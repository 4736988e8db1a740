import { type FieldMap, readRecordsAt, validateRecord } from "../../../common/src/mod.js";
import type { SampleSets } from "./sample-sets.js";

/** The data-file samples (record index positions) of candidates, by their position in V. */
function corpusSamplesOf(sets: SampleSets, columns: ArrayLike<number>): Uint32Array {
  const index = sets.corpusIndex!;
  return Uint32Array.from({ length: columns.length }, (_, k) => index[sets.v[columns[k]]]);
}

/**
 * For lean sets (records not held): a reader of the candidates' records, by V position, in the
 * order asked, re-read from the data file through its record index (the file must be unchanged).
 */
export function leanRecordReader(sets: SampleSets, signal?: AbortSignal): (columns: Uint32Array) => AsyncIterable<Record<string, unknown>> {
  const index = sets.records;
  if (!index) throw new Error("the sets hold their records: no record reader is needed");
  return async function* (columns) {
    for await (const r of readRecordsAt(index, corpusSamplesOf(sets, columns), signal)) yield r.record;
  };
}

/** Gives the lean candidates at these V positions their x text back (the report's preview shows it). */
export async function fillCandidateTexts(sets: SampleSets, columns: Uint32Array, fields: FieldMap, signal?: AbortSignal): Promise<void> {
  if (!sets.records) return;
  let k = 0;
  for await (const record of leanRecordReader(sets, signal)(columns)) {
    const checked = validateRecord(record, fields);
    const s = sets.candidates[columns[k++]];
    if (checked.ok) Object.assign(s, { x: checked.record.x, y: checked.record.y });
  }
}
