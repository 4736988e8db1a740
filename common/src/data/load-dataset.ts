import { InputError } from "../errors.js";
import { readRecords } from "./read-records.js";
import { validateRecord } from "./validate-record.js";
import { DEFAULT_FIELDS, type Dataset, type FieldMap, type LoadOptions, type Sample, type SkippedRecord } from "./types.js";

const MAX_LISTED_PROBLEMS = 20;

/**
 * Loads a JSONL or Parquet data set. Every invalid record is collected; unless `skipInvalid`
 * is set, the load fails with all of them listed (file, line, field, what was expected).
 * Duplicate ids always fail: a kernel row must name one sample.
 */
export async function loadDataset(file: string, options: LoadOptions = {}): Promise<Dataset> {
  const fields: FieldMap = { ...DEFAULT_FIELDS, ...options.fields };
  const samples: Sample[] = [];
  const problems: SkippedRecord[] = [];
  const firstLineOfId = new Map<string, number>();

  for await (const raw of readRecords(file)) {
    if ("parseError" in raw) {
      problems.push({ file, line: raw.line, reason: raw.parseError });
      continue;
    }
    const checked = validateRecord(raw.value, fields);
    if (!checked.ok) {
      problems.push({ file, line: raw.line, field: checked.problem.field, reason: checked.problem.reason });
      continue;
    }
    const id = checked.record.id ?? `${raw.line}`;
    const seen = firstLineOfId.get(id);
    if (seen !== undefined) {
      throw new InputError(
        { file, line: raw.line, field: fields.id },
        `duplicate id "${id}" (first seen on line ${seen}); ids must be unique`,
      );
    }
    firstLineOfId.set(id, raw.line);
    samples.push({
      index: samples.length,
      id,
      x: checked.record.x,
      y: checked.record.y,
      source: checked.record.source,
      record: raw.value as Record<string, unknown>,
      file,
      line: raw.line,
    });
  }

  if (problems.length > 0 && !options.skipInvalid) throw invalidRecordsError(problems);
  if (samples.length === 0) {
    throw new InputError({ file }, problems.length > 0 ? "no valid records (all were skipped)" : "no records: the data set is empty");
  }
  return { file, samples, skipped: problems };
}

export function invalidRecordsError(problems: SkippedRecord[]): InputError {
  const first = problems[0];
  const listed = problems.slice(0, MAX_LISTED_PROBLEMS).map(formatProblem).join("\n  ");
  const more = problems.length > MAX_LISTED_PROBLEMS ? `\n  ... and ${problems.length - MAX_LISTED_PROBLEMS} more` : "";
  return new InputError(
    { file: first.file, line: first.line, field: first.field },
    `${first.reason}\n${problems.length} invalid record(s) (use --skip-invalid to skip them):\n  ${listed}${more}`,
  );
}

export function formatProblem(p: SkippedRecord): string {
  return `${p.file}:${p.line}${p.field ? ` field "${p.field}"` : ""}: ${p.reason}`;
}
