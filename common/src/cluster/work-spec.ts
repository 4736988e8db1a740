import type { z } from "zod";
import { WorkSpecSchema } from "./records.js";
import { ProtocolError } from "../errors.js";
import type { TokenizedPrompts } from "../prompt/tokenized-prompt.js";
import type { BatchLimits } from "../tiles/types.js";

/** What a worker needs to compute a job's tiles, published by the coordinator in the jobs bucket. */
export type WorkSpec = {
  jobId: string;
  /** Content hash of the model bundle; its files are in the object store under `<hash>/<file>`. */
  modelHash: string;
  modelFiles: string[];
  prompts: TokenizedPrompts;
  batch: BatchLimits;
  ackWaitMs: number;
  maxDeliver: number;
  /** When known, token ids at or above it make a tile invalid. */
  vocabSize: number | null;
  /** "se": the job's tiles run the bundle's encoder, not its LM (a worker warms the encoder). */
  kernel?: "utility" | "se";
};

// The schema and the type must describe the same record.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const same: Same<z.infer<typeof WorkSpecSchema>, WorkSpec> = true;
void same;

export function encodeWorkSpec(spec: WorkSpec): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(WorkSpecSchema.parse(spec)));
}

/** Decodes and validates every field of a work spec; ProtocolError names the first bad one. */
export function decodeWorkSpec(bytes: Uint8Array): WorkSpec {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    throw new ProtocolError(`work spec is not JSON: ${(err as Error).message}`);
  }
  const parsed = WorkSpecSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ProtocolError(`work spec: ${issue.path.length ? `field "${issue.path.join(".")}": ` : ""}${issue.message}`);
  }
  return parsed.data;
}
