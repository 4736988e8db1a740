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
};

export function encodeWorkSpec(spec: WorkSpec): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(spec));
}

export function decodeWorkSpec(bytes: Uint8Array): WorkSpec {
  let v: Partial<WorkSpec>;
  try {
    v = JSON.parse(new TextDecoder().decode(bytes)) as Partial<WorkSpec>;
  } catch (err) {
    throw new ProtocolError(`work spec is not JSON: ${(err as Error).message}`);
  }
  const ok =
    typeof v.jobId === "string" &&
    typeof v.modelHash === "string" &&
    /^[0-9a-f]{64}$/.test(v.modelHash) &&
    Array.isArray(v.modelFiles) &&
    v.modelFiles.every((f) => typeof f === "string" && !f.includes("..") && !f.startsWith("/")) &&
    !!v.prompts &&
    typeof v.prompts.maxLength === "number" &&
    !!v.batch &&
    typeof v.batch.maxBatch === "number" &&
    typeof v.ackWaitMs === "number" &&
    typeof v.maxDeliver === "number";
  if (!ok) throw new ProtocolError("work spec is missing fields");
  return v as WorkSpec;
}
