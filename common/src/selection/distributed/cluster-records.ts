/**
 * What the cluster's shard hosts (the `delift worker` processes) need to know of a distributed
 * selection: which jobs are selecting now (a record in the jobs bucket, key "selecting", written
 * by the coordinator), where a job's kernel lies in the object store, and the key its messages
 * are signed with (derived from the job's tile key, which workers fetch over gRPC only).
 */
import { createHmac } from "node:crypto";
import { ProtocolError } from "../../errors.js";

/** Jobs bucket key of the record listing the jobs whose selection runs on shard hosts now. */
export const SELECTING_JOBS_KEY = "selecting";

const JOB_ID = /^[A-Za-z0-9_-]{1,64}$/;
const MAX_SELECTING = 10_000;

export function encodeSelectingJobs(jobIds: string[]): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ v: 1, jobs: [...jobIds].sort() }));
}

/** The job ids of a "selecting" record; anything malformed is a ProtocolError (the reader ignores the record). */
export function decodeSelectingJobs(data: Uint8Array): string[] {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(data));
  } catch (err) {
    throw new ProtocolError(`selecting-jobs record is not JSON: ${(err as Error).message}`);
  }
  const m = raw as { v?: unknown; jobs?: unknown };
  if (!m || typeof m !== "object" || m.v !== 1 || !Array.isArray(m.jobs) || m.jobs.length > MAX_SELECTING) throw new ProtocolError("selecting-jobs record: expected {v: 1, jobs: [...]}");
  for (const id of m.jobs) if (typeof id !== "string" || !JOB_ID.test(id)) throw new ProtocolError("selecting-jobs record: bad job id");
  return [...new Set(m.jobs as string[])];
}

/** The pool (subject segment) of a job's shard hosts: the job id itself. */
export function selectionPool(jobId: string): string {
  if (!JOB_ID.test(jobId)) throw new ProtocolError(`bad job id "${jobId}"`);
  return jobId;
}

/** Object store prefix of one selection session's chunked kernel. */
export function selectionKernelPrefix(jobId: string, session: string): string {
  return `select/${selectionPool(jobId)}/${session}`;
}

/** The secret a job's selection messages are signed with: HMAC-SHA256 of the job's tile key over a label of its own. */
export function selectionSecret(jobKey: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac("sha256", Buffer.from(jobKey)).update("delift-select-secret/1").digest());
}

/** A shard host id from a worker id (worker ids allow "." "@" ":" and 200 characters; host ids do not). */
export function shardHostId(workerId: string): string {
  const clean = workerId.replace(/[^A-Za-z0-9_-]/g, "-");
  if (clean.length <= 64 && clean === workerId) return clean;
  const digest = createHmac("sha256", "delift-host-id").update(workerId).digest("hex").slice(0, 8);
  return `${clean.slice(0, 55)}-${digest}`;
}
