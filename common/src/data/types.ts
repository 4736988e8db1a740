/** Where each delift field is found in a user's records. */
export type FieldMap = {
  instruction: string;
  input: string;
  output: string;
  id: string;
  /** Optional grouping field (source, task) used by reports. */
  source: string;
};

export const DEFAULT_FIELDS: FieldMap = {
  instruction: "instruction",
  input: "input",
  output: "output",
  id: "id",
  source: "task",
};

/** One training sample, as DELIFT sees it: x (the query) and y (the reference response). */
export type Sample = {
  /** Position in the loaded data set, 0-based; the kernel's row/column index. */
  index: number;
  id: string;
  /** instruction, plus "\n" + input when input is non-empty. */
  x: string;
  y: string;
  source: string | undefined;
  /** The record as read, so outputs can carry the user's original fields. */
  record: Record<string, unknown>;
  /** Where the record came from, for error messages. */
  file: string;
  line: number;
};

export type SkippedRecord = {
  file: string;
  line: number;
  field?: string;
  reason: string;
  /** The record's id when it had a readable one (the streamed reader sets it, so given embeddings can tell these rows). */
  id?: string;
};

export type LoadOptions = {
  fields?: Partial<FieldMap>;
  /** Skip records that fail validation (and report them) instead of failing. */
  skipInvalid?: boolean;
};

export type Dataset = {
  file: string;
  samples: Sample[];
  skipped: SkippedRecord[];
};
