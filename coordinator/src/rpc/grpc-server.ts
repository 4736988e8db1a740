import * as grpc from "@grpc/grpc-js";
import { timingSafeEqual } from "node:crypto";
import { createReadStream } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { join, relative } from "node:path";
import { createInterface } from "node:readline";
import {
  errorFields,
  type GrpcTlsFiles,
  HeartbeatRecord,
  InputError,
  InvalidRequestError,
  JobStateError,
  type JobStatusMessage,
  type KeyValueBucket,
  loadServices,
  type Logger,
  serverCredentials,
  silentLogger,
  statusOf,
  type TileResultChunk,
  UnauthenticatedError,
  type WorkerInfo,
} from "../../../common/src/mod.js";
import { parseJobSpec } from "../jobs/job-spec.js";
import { TERMINAL_JOB_STATES, type FailureKind, type JobState } from "../jobs/job-state.js";
import type { Coordinator, ResultUpload } from "../runtime/coordinator.js";

export type GrpcServerOptions = {
  coordinator: Coordinator;
  /** HOST:PORT to listen on (port 0: any free port). */
  address: string;
  /** Bearer token every call must carry (except health checks); undefined: no authentication. */
  token?: string;
  tls?: GrpcTlsFiles;
  workersKv?: KeyValueBucket | null;
  log?: Logger;
};

/** Largest result one upload may carry (values), so a hostile stream cannot exhaust memory. */
const MAX_RESULT_VALUES = 1 << 24;
const RESULT_CHUNK_BYTES = 1 << 20;
const WATCH_INTERVAL_MS = 250;
const REFUSAL_LOG_WINDOW_MS = 10_000;
const FAILURE_KINDS: readonly FailureKind[] = ["tile", "model", "health"];

/** The coordinator's gRPC face: result uploads from workers, the CLI's job calls, health. */
export async function startGrpcServer(o: GrpcServerOptions): Promise<{ port: number; close(): Promise<void> }> {
  const services = loadServices();
  const server = new grpc.Server({ "grpc.max_receive_message_length": 8 << 20 });
  const log = o.log ?? silentLogger();
  const c = o.coordinator;
  const refusals = new RefusalLog(log);

  /** Checks the token; on refusal logs it (rate-limited) and returns the status to send. */
  const admit = (call: { metadata: grpc.Metadata; getPeer(): string }, method: string): Partial<grpc.StatusObject> | null => {
    if (checkToken(call.metadata, o.token)) return null;
    return refusals.status(call.getPeer(), method, new UnauthenticatedError("missing or wrong bearer token"));
  };
  const fail = (call: { getPeer(): string }, method: string, err: unknown) => refusals.status(call.getPeer(), method, err);

  const unary = <Req, Res>(method: string, handler: (req: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res> | Res) =>
    (call: grpc.ServerUnaryCall<Req, Res>, callback: grpc.sendUnaryData<Res>) => {
      const refused = admit(call, method);
      if (refused) return callback(refused);
      Promise.resolve()
        .then(() => handler(call.request, call))
        .then((res) => callback(null, res), (err) => callback(fail(call, method, err)));
    };

  server.addService(services.coordinator.service, {
    uploadTileResult: (call: grpc.ServerReadableStream<TileResultChunk, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      const refused = admit(call, "UploadTileResult");
      if (refused) return callback(refused);
      collectUpload(call)
        .then((upload) => c.acceptResult(upload))
        .then((outcome) => callback(null, { outcome, message: outcome }), (err) => callback(fail(call, "UploadTileResult", err)));
    },
    reportTileFailure: unary("ReportTileFailure", async (r: { jobId: string; tileId: string; attempt: number; workerId: string; error: string; kind: string }) => {
      const kind = (FAILURE_KINDS as string[]).includes(r.kind) ? (r.kind as FailureKind) : "tile";
      return c.tileFailed(String(r.jobId), String(r.tileId), workerIdOf(r.workerId), r.attempt, String(r.error).slice(0, 4000), kind);
    }),
    reportTileStarted: unary("ReportTileStarted", (r: { jobId: string; tileId: string; attempt: number; workerId: string }) => c.tileStarted(r.jobId, r.tileId, workerIdOf(r.workerId), r.attempt)),
    reportTileProgress: unary("ReportTileProgress", (r: { jobId: string; tileId: string; attempt: number; workerId: string }) => c.tileProgress(r.jobId, r.tileId, workerIdOf(r.workerId), r.attempt)),
    getJobKey: unary("GetJobKey", (r: { jobId: string }) => ({ key: c.jobKey(r.jobId) })),
    submitJob: unary("SubmitJob", async (r: { specJson: string }) => {
      let raw: unknown;
      try {
        raw = JSON.parse(r.specJson);
      } catch (err) {
        throw new InputError({ file: "submit request" }, `spec is not JSON: ${(err as Error).message}`);
      }
      return { jobId: await c.submit(parseJobSpec(raw, "submit request")) };
    }),
    watchJob: (call: grpc.ServerWritableStream<{ jobId: string }, JobStatusMessage>) => {
      const refused = admit(call, "WatchJob");
      if (refused) return call.emit("error", refused);
      let last = 0;
      let pending: JobStatusMessage | null = null;
      let timer: NodeJS.Timeout | null = null;
      let stop: (() => void) | null = null;
      let ended = false;
      const end = () => {
        if (ended) return;
        ended = true;
        clearInterval(tick);
        if (timer) clearTimeout(timer);
        stop?.();
      };
      const flush = () => {
        timer = null;
        if (!pending || ended) return;
        const s = pending;
        pending = null;
        last = Date.now();
        call.write(s);
        if (TERMINAL_JOB_STATES.has(s.state as JobState)) {
          end();
          call.end();
        }
      };
      // A running job whose status does not change still gets a fresh rate/ETA every second.
      const tick = setInterval(() => {
        try {
          pending = c.status(call.request.jobId);
          flush();
        } catch {
          end();
        }
      }, 1000);
      try {
        stop = c.watch(call.request.jobId, (s) => {
          pending = s;
          const terminal = TERMINAL_JOB_STATES.has(s.state as JobState);
          if (terminal || Date.now() - last >= WATCH_INTERVAL_MS) {
            if (timer) clearTimeout(timer);
            queueMicrotask(flush);
          } else if (!timer) {
            timer = setTimeout(flush, WATCH_INTERVAL_MS - (Date.now() - last));
          }
        });
      } catch (err) {
        end();
        call.emit("error", fail(call, "WatchJob", err));
        return;
      }
      call.on("cancelled", end);
      call.on("close", end);
    },
    listJobs: unary("ListJobs", () => ({ jobs: c.list() })),
    listWorkers: unary("ListWorkers", async () => ({ workers: await listWorkers(o.workersKv ?? null, refusals) })),
    cancelJob: unary("CancelJob", (r: { jobId: string }) => ({ state: c.cancel(r.jobId) })),
    getResult: (call: grpc.ServerWritableStream<{ jobId: string }, unknown>) => {
      const refused = admit(call, "GetResult");
      if (refused) return call.emit("error", refused);
      streamResult(c, call).catch((err) => call.emit("error", fail(call, "GetResult", err)));
    },
    getJobStory: (call: grpc.ServerWritableStream<{ jobId: string }, unknown>) => {
      const refused = admit(call, "GetJobStory");
      if (refused) return call.emit("error", refused);
      streamStory(c, call).catch((err) => call.emit("error", fail(call, "GetJobStory", err)));
    },
  });
  server.addService(services.health.service, {
    check: (_call: unknown, callback: grpc.sendUnaryData<{ status: string }>) => callback(null, { status: "SERVING" }),
  });

  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(o.address, serverCredentials(o.tls ?? {}), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        const force = setTimeout(() => server.forceShutdown(), 2000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      }),
  };
}

/**
 * Every refused or failed call is logged with peer, method and reason, once per peer, method and
 * status within a window (a client retrying with a wrong token does not flood the log); the next
 * line says how many were not logged.
 */
class RefusalLog {
  private readonly seen = new Map<string, { at: number; suppressed: number }>();
  constructor(private readonly log: Logger) {}

  status(peer: string, method: string, err: unknown): Partial<grpc.StatusObject> {
    const s = statusOf(err);
    const key = `${peer}|${method}|${s.code}`;
    const now = Date.now();
    const last = this.seen.get(key);
    if (last && now - last.at < REFUSAL_LOG_WINDOW_MS) {
      last.suppressed++;
    } else {
      if (this.seen.size > 10_000) this.seen.clear();
      this.seen.set(key, { at: now, suppressed: 0 });
      const fields = { peer, method, code: grpc.status[s.code], reason: s.details, ...(last?.suppressed ? { notLogged: last.suppressed } : {}) };
      const text = `refused ${method} from ${peer}: ${grpc.status[s.code]}: ${s.details}`;
      if (s.code === grpc.status.INTERNAL) this.log.error({ ...fields, ...errorFields(err) }, text);
      else if (s.code === grpc.status.UNAUTHENTICATED || s.code === grpc.status.INVALID_ARGUMENT || s.code === grpc.status.PERMISSION_DENIED) this.log.warn(fields, text);
      else if (s.code === grpc.status.UNAVAILABLE) this.log.debug(fields, text);
      else this.log.info(fields, text);
    }
    return { code: s.code, details: s.details };
  }

  /** A record in a bucket that does not decode: logged like a refusal (once per key and window). */
  badRecord(bucket: string, key: string, err: unknown): void {
    const now = Date.now();
    const k = `record|${bucket}|${key}`;
    const last = this.seen.get(k);
    if (last && now - last.at < REFUSAL_LOG_WINDOW_MS) return;
    this.seen.set(k, { at: now, suppressed: 0 });
    this.log.warn({ bucket, key, reason: (err as Error).message }, `ignored an invalid record in ${bucket}: ${(err as Error).message}`);
  }
}

function workerIdOf(raw: unknown): string {
  const id = String(raw || "unknown").slice(0, 200);
  return /^[\x21-\x7e]+$/.test(id) ? id : "unknown";
}

async function collectUpload(call: grpc.ServerReadableStream<TileResultChunk, unknown>): Promise<ResultUpload> {
  let head: TileResultChunk | null = null;
  let values: Float32Array | null = null;
  let filled = 0;
  for await (const chunk of call as AsyncIterable<TileResultChunk>) {
    if (!head) {
      head = chunk;
      if (!Number.isInteger(chunk.totalValues) || chunk.totalValues < 0 || chunk.totalValues > MAX_RESULT_VALUES) {
        throw new InvalidRequestError(`upload: total_values ${chunk.totalValues} out of range`);
      }
      values = new Float32Array(chunk.totalValues);
    } else if (chunk.jobId !== head.jobId || chunk.tileId !== head.tileId || chunk.attempt !== head.attempt) {
      throw new InvalidRequestError("upload: chunks of one upload must name the same job, tile and attempt");
    }
    const bytes = chunk.payload ?? new Uint8Array(0);
    if (bytes.byteLength % 4 !== 0) throw new InvalidRequestError("upload: payload length is not a multiple of 4");
    if (chunk.offset !== filled) throw new InvalidRequestError(`upload: chunk at offset ${chunk.offset}, expected ${filled}`);
    const n = bytes.byteLength / 4;
    if (filled + n > values!.length) throw new InvalidRequestError("upload: more values than total_values");
    new Uint8Array(values!.buffer, filled * 4, bytes.byteLength).set(bytes);
    filled += n;
  }
  if (!head || !values) throw new InvalidRequestError("upload: empty stream");
  if (filled !== values.length) throw new InvalidRequestError(`upload: ${filled} of ${values.length} values arrived`);
  if (typeof head.jobId !== "string" || typeof head.tileId !== "string" || !/^[0-9a-f]{64}$/.test(head.tileId)) {
    throw new InvalidRequestError("upload: bad job or tile id");
  }
  if (typeof head.tileMac !== "string" || !/^[0-9a-f]{64}$/.test(head.tileMac)) throw new InvalidRequestError("upload: missing or malformed tile_mac");
  return {
    jobId: head.jobId,
    tileId: head.tileId,
    attempt: head.attempt,
    workerId: workerIdOf(head.workerId),
    mac: head.tileMac,
    output: { distances: values, truncated: head.truncated },
    computeSeconds: Number.isFinite(head.computeSeconds) ? head.computeSeconds : 0,
  };
}

/** Streams a done job's files from disk, chunk by chunk, with back-pressure (never whole in memory). */
async function streamResult(c: Coordinator, call: grpc.ServerWritableStream<{ jobId: string }, unknown>): Promise<void> {
  const r = c.result(call.request.jobId);
  if (r.state !== "done") throw new JobStateError(`job ${call.request.jobId} is ${r.state}${r.error ? ` (${r.error})` : ""}: it has no result`);
  const send = async (chunk: object) => {
    if (!call.write(chunk)) await new Promise<void>((resolve) => call.once("drain", () => resolve()));
  };
  for (const path of await listFiles(r.dir)) {
    const name = relative(r.dir, path);
    for await (const data of createReadStream(path, { highWaterMark: RESULT_CHUNK_BYTES })) {
      if (call.cancelled) return;
      await send({ name, data, last: false });
    }
    await send({ name, data: new Uint8Array(0), last: true });
  }
  call.end();
}

async function streamStory(c: Coordinator, call: grpc.ServerWritableStream<{ jobId: string }, unknown>): Promise<void> {
  const path = await c.story(call.request.jobId);
  const lines = createInterface({ input: createReadStream(path, { encoding: "utf8" }).on("error", () => undefined), crlfDelay: Infinity });
  try {
    for await (const line of lines) {
      if (call.cancelled) return;
      if (line.trim() === "") continue;
      if (!call.write({ json: line })) await new Promise<void>((resolve) => call.once("drain", () => resolve()));
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  call.end();
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const name of (await readdir(dir)).sort()) {
    const path = join(dir, name);
    if ((await stat(path)).isDirectory()) out.push(...(await listFiles(path)));
    else out.push(path);
  }
  return out;
}

async function listWorkers(kv: KeyValueBucket | null, refusals: RefusalLog): Promise<WorkerInfo[]> {
  if (!kv) return [];
  const out: WorkerInfo[] = [];
  for (const key of await kv.keys()) {
    const raw = await kv.get(key);
    if (!raw) continue;
    try {
      const b = HeartbeatRecord.decode(raw, key);
      if (b.workerId !== key) throw new InvalidRequestError(`worker heartbeat "${key}" names worker "${b.workerId}"`);
      out.push({
        workerId: b.workerId,
        host: b.host,
        device: b.device,
        concurrency: b.concurrency,
        state: b.state,
        tilesDone: b.tilesDone,
        pairsDone: b.pairsDone,
        lastSeenSecondsAgo: Math.max(0, (Date.now() - b.at) / 1000),
        currentTiles: b.currentTiles,
      });
    } catch (err) {
      refusals.badRecord("the workers bucket", key, err);
    }
  }
  return out.sort((a, b) => a.workerId.localeCompare(b.workerId));
}

function checkToken(metadata: grpc.Metadata, token: string | undefined): boolean {
  if (!token) return true;
  const given = String(metadata.get("authorization")[0] ?? "");
  const expected = `Bearer ${token}`;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}
