import { z } from "zod";
import { ProtocolError } from "../errors.js";

/**
 * Every record delift keeps in a NATS KV bucket has one codec here: JSON validated by a schema,
 * so a record another program wrote (or garbage) is refused with a ProtocolError naming the
 * record and the field, never half-read. Readers log and ignore what does not decode.
 */
export type RecordCodec<T> = {
  readonly name: string;
  encode(value: T): Uint8Array;
  /** Decodes and validates; ProtocolError when the bytes are not this record. */
  decode(bytes: Uint8Array, key?: string): T;
};

function codec<T>(name: string, schema: z.ZodType<T>): RecordCodec<T> {
  return {
    name,
    encode: (value) => new TextEncoder().encode(JSON.stringify(schema.parse(value))),
    decode: (bytes, key) => {
      const where = `${name} record${key ? ` "${key}"` : ""}`;
      if (bytes.byteLength > MAX_RECORD_BYTES) throw new ProtocolError(`${where}: ${bytes.byteLength} bytes, more than ${MAX_RECORD_BYTES}`);
      let raw: unknown;
      try {
        raw = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
      } catch (err) {
        throw new ProtocolError(`${where} is not JSON: ${(err as Error).message}`);
      }
      const parsed = schema.safeParse(raw);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new ProtocolError(`${where}: ${issue.path.length ? `field "${issue.path.join(".")}": ` : ""}${issue.message}`);
      }
      return parsed.data;
    },
  };
}

const MAX_RECORD_BYTES = 8 << 20;
export const JOB_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
const jobId = z.string().regex(JOB_ID_PATTERN, "expected a job id");
const count = z.number().int().min(0);
const time = z.number().finite().min(0);
const shortText = (max = 1000) => z.string().max(max);
const ids = z.array(z.number().int().min(0).max(0x7fffffff)).max(1 << 20);

/** The ids of the jobs whose tiles workers should pull (jobs bucket, key "active"). */
export const ActiveJobsRecord = codec("active jobs", z.array(jobId).max(100_000));

/** Where the coordinator's gRPC service is (cluster bucket, key "coordinator"). */
export type CoordinatorEndpointRecord = { address: string; token?: string; caPem?: string; startedAt: number; pid: number; instance?: string };
export const CoordinatorRecord = codec<CoordinatorEndpointRecord>(
  "coordinator endpoint",
  z.object({
    address: z.string().regex(/^[^\s]+:\d{1,5}$/, "expected HOST:PORT"),
    token: shortText(4096).optional(),
    caPem: shortText(1 << 20).optional(),
    startedAt: time,
    pid: count,
    instance: shortText(200).optional(),
  }),
);

/** A worker's heartbeat (workers bucket, key = worker id; the bucket's TTL expires it). */
export type WorkerHeartbeat = {
  workerId: string;
  host: string;
  pid: number;
  device: string;
  concurrency: number;
  state: "idle" | "busy" | "draining" | "retiring";
  tilesDone: number;
  pairsDone: number;
  currentTiles: string[];
  startedAt: number;
  at: number;
};
export const HeartbeatRecord = codec<WorkerHeartbeat>(
  "worker heartbeat",
  z.object({
    workerId: z.string().regex(/^[A-Za-z0-9_.@:-]{1,200}$/, "expected a worker id"),
    host: shortText(255),
    pid: count,
    device: z.enum(["cpu", "cuda"]),
    concurrency: z.number().int().min(1).max(1024),
    state: z.enum(["idle", "busy", "draining", "retiring"]),
    tilesDone: count,
    pairsDone: count,
    currentTiles: z.array(shortText(200)).max(1024),
    startedAt: time,
    at: time,
  }),
);

/** The coordinator lease (cluster bucket): which coordinator may run, renewed while it lives. */
export type CoordinatorLease = { holder: string; instance: string; host: string; pid: number; address: string; ttlMs: number; renewedAt: number };
export const LeaseRecord = codec<CoordinatorLease>(
  "coordinator lease",
  z.object({
    holder: shortText(200),
    instance: shortText(200),
    host: shortText(255),
    pid: count,
    address: shortText(300),
    ttlMs: z.number().int().min(100).max(3_600_000),
    renewedAt: time,
  }),
);

const promptPiece = z.union([z.object({ kind: z.literal("ids"), ids }), z.object({ kind: z.literal("field"), field: z.enum(["example_x", "example_y", "x", "y"]) })]);
const template = z.object({ header: ids, example: z.array(promptPiece).max(1000), target: z.array(promptPiece).max(1000) });

/** What a worker needs to compute a job's tiles (jobs bucket, key "<job>.work"). */
export const WorkSpecSchema = z.object({
  jobId,
  modelHash: z.string().regex(/^[0-9a-f]{64}$/, "expected a sha256 hex digest"),
  modelFiles: z
    .array(z.string().min(1).max(500).refine((f) => !f.includes("..") && !f.startsWith("/") && !f.includes("\\"), "a bundle file name must stay inside the bundle"))
    .min(1)
    .max(100),
  prompts: z.object({ baseline: template, example: template, eosId: z.number().int().min(0), maxLength: z.number().int().min(1).max(1 << 24) }),
  batch: z.object({ maxBatch: z.number().int().min(1).max(1 << 16), maxTokens: z.number().int().min(1).max(1 << 30), runCostTokens: z.number().min(0).max(1 << 24).optional() }),
  ackWaitMs: z.number().int().min(100).max(86_400_000),
  maxDeliver: z.number().int().min(1).max(1000),
  vocabSize: z.number().int().min(1).nullable(),
  kernel: z.enum(["utility", "se"]).optional(),
});

/** A job's status as the coordinator publishes it while the job runs (jobs bucket, key "<job>.status"). */
export const JobStatusRecord = codec(
  "job status",
  z.object({
    jobId,
    state: z.enum(["planning", "embedding", "searching", "candidates", "scoring", "selecting", "writing", "cancelling", "done", "failed", "cancelled"]),
    tilesTotal: count,
    tilesDone: count,
    tilesReused: count,
    pairsTotal: count,
    pairsDone: count,
    pairsPerSecond: z.number().finite().min(0),
    etaSeconds: z.number().finite(),
    redeliveries: count,
    workers: z.array(z.object({ workerId: shortText(200), tiles: count, pairs: count, pairsPerSecond: z.number().finite().min(0) })).max(10_000),
    error: shortText(100_000),
    elapsedSeconds: z.number().finite().min(0),
    stage: shortText(40),
    createdAt: shortText(40),
    tileBytes: count,
    resultBytes: count,
    failedDuring: shortText(40),
    phase: z
      .object({
        name: shortText(40),
        step: shortText(40),
        done: z.number().finite().min(0),
        total: z.number().finite().min(0),
        unit: shortText(40),
        elapsedSeconds: z.number().finite().min(0),
        rate: z.number().finite().min(0),
        etaSeconds: z.number().finite(),
      })
      .nullable()
      .optional(),
  }),
);
