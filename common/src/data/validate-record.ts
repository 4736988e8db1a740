import type { FieldMap } from "./types.js";

export type RecordProblem = { field?: string; reason: string };

export type ValidRecord = {
  id: string | undefined;
  x: string;
  y: string;
  source: string | undefined;
};

/**
 * Checks one parsed record against the field map. Returns the normalised fields, or the
 * first problem found (which field, what was expected).
 */
export function validateRecord(
  value: unknown,
  fields: FieldMap,
): { ok: true; record: ValidRecord } | { ok: false; problem: RecordProblem } {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return { ok: false, problem: { reason: `expected a JSON object, got ${describe(value)}` } };
  }
  const obj = value as Record<string, unknown>;

  const instruction = obj[fields.instruction];
  if (typeof instruction !== "string") {
    return fail(fields.instruction, `expected a string, got ${describe(instruction)}`);
  }
  const input = obj[fields.input];
  if (input !== undefined && input !== null && typeof input !== "string") {
    return fail(fields.input, `expected a string (or absent), got ${describe(input)}`);
  }
  const output = obj[fields.output];
  if (typeof output !== "string") {
    return fail(fields.output, `expected a string, got ${describe(output)}`);
  }
  const rawId = obj[fields.id];
  let id: string | undefined;
  if (typeof rawId === "string" && rawId.length > 0) id = rawId;
  else if (typeof rawId === "number" && Number.isFinite(rawId)) id = String(rawId);
  else if (typeof rawId === "bigint") id = rawId.toString();
  else if (rawId !== undefined && rawId !== null) {
    return fail(fields.id, `expected a non-empty string or a number, got ${describe(rawId)}`);
  }
  if (instruction.trim() === "") return fail(fields.instruction, "is empty");
  if (output.trim() === "") return fail(fields.output, "is empty (the response is what DELIFT scores)");

  const rawSource = obj[fields.source];
  const source = typeof rawSource === "string" && rawSource !== "" ? rawSource : undefined;
  const x = typeof input === "string" && input !== "" ? `${instruction}\n${input}` : instruction;
  return { ok: true, record: { id, x, y: output, source } };
}

function fail(field: string, reason: string): { ok: false; problem: RecordProblem } {
  return { ok: false, problem: { field, reason } };
}

function describe(value: unknown): string {
  if (value === undefined) return "nothing (field missing)";
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") return value === "" ? "an empty string" : "a string";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}
