import * as grpc from "@grpc/grpc-js";
import { timingSafeEqual } from "node:crypto";
import { readdir, readFile, stat } from "node:fs/promises";
import { join, relative } from "node:path";
import { type GrpcTlsFiles, InputError, type JobStatusMessage, type KeyValueBucket, loadServices, ProtocolError, serverCredentials, type TileResultChunk, type WorkerInfo } from "../../../common/src/mod.js";
import { parseJobSpec } from "../jobs/job-spec.js";
import { TERMINAL_JOB_STATES, type JobState } from "../jobs/job-state.js";
import type { Coordinator } from "../runtime/coordinator.js";
import { JobNotReadyError, UnknownJobError } from "../runtime/errors.js";
import { TileConflictError } from "../store/errors.js";

export type GrpcServerOptions = {
  coordinator: Coordinator;
  /** HOST:PORT to listen on (port 0: any free port). */
  address: string;
  /** Bearer token every call must carry (except health checks); undefined: no authentication. */
  token?: string;
  tls?: GrpcTlsFiles;
  workersKv?: KeyValueBucket | null;
  log?: (line: string) => void;
};

/** Largest result one upload may carry (values), so a hostile stream cannot exhaust memory. */
const MAX_RESULT_VALUES = 1 << 24;
const RESULT_CHUNK_BYTES = 1 << 20;
const WATCH_INTERVAL_MS = 250;

/** The coordinator's gRPC face: result uploads from workers, the CLI's job calls, health. */
export async function startGrpcServer(o: GrpcServerOptions): Promise<{ port: number; close(): Promise<void> }> {
  const services = loadServices();
  const server = new grpc.Server({ "grpc.max_receive_message_length": 8 << 20 });
  const log = o.log ?? (() => undefined);
  const c = o.coordinator;
  const authorized = (call: { metadata: grpc.Metadata }) => checkToken(call.metadata, o.token);

  const unary = <Req, Res>(handler: (req: Req) => Promise<Res> | Res) =>
    (call: grpc.ServerUnaryCall<Req, Res>, callback: grpc.sendUnaryData<Res>) => {
      if (!authorized(call)) return callback(unauthenticated());
      Promise.resolve()
        .then(() => handler(call.request))
        .then((res) => callback(null, res), (err) => callback(toStatus(err, log)));
    };

  server.addService(services.coordinator.service, {
    uploadTileResult: (call: grpc.ServerReadableStream<TileResultChunk, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      if (!authorized(call)) return callback(unauthenticated());
      collectUpload(call).then(
        (upload) => c.acceptResult(upload).then((outcome) => callback(null, { outcome }), (err) => callback(toStatus(err, log))),
        (err) => callback(toStatus(err, log)),
      );
    },
    reportTileFailure: unary((r: { jobId: string; tileId: string; attempt: number; workerId: string; error: string; final: boolean }) => {
      c.tileFailed(r.jobId, r.tileId, r.workerId, r.attempt, String(r.error).slice(0, 4000), r.final);
      return {};
    }),
    reportTileStarted: unary((r: { jobId: string; tileId: string; attempt: number; workerId: string }) => c.tileStarted(r.jobId, r.tileId, r.workerId, r.attempt)),
    submitJob: unary(async (r: { specJson: string }) => {
      let raw: unknown;
      try {
        raw = JSON.parse(r.specJson);
      } catch (err) {
        throw new InputError({ file: "submit request" }, `spec is not JSON: ${(err as Error).message}`);
      }
      return { jobId: await c.submit(parseJobSpec(raw, "submit request")) };
    }),
    watchJob: (call: grpc.ServerWritableStream<{ jobId: string }, JobStatusMessage>) => {
      if (!authorized(call)) return call.emit("error", unauthenticated());
      let last = 0;
      let pending: JobStatusMessage | null = null;
      let timer: NodeJS.Timeout | null = null;
      let stop: (() => void) | null = null;
      const flush = () => {
        timer = null;
        if (!pending) return;
        const s = pending;
        pending = null;
        last = Date.now();
        call.write(s);
        if (TERMINAL_JOB_STATES.has(s.state as JobState)) {
          stop?.();
          call.end();
        }
      };
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
        call.emit("error", toStatus(err, log));
        return;
      }
      // A running job whose status does not change still gets a fresh rate/ETA every second.
      const tick = setInterval(() => {
        try {
          pending = c.status(call.request.jobId);
          flush();
        } catch {
          clearInterval(tick);
        }
      }, 1000);
      call.on("cancelled", () => {
        clearInterval(tick);
        stop?.();
      });
      call.on("close", () => {
        clearInterval(tick);
        stop?.();
      });
    },
    listJobs: unary(() => ({ jobs: c.list() })),
    listWorkers: unary(async () => ({ workers: await listWorkers(o.workersKv ?? null) })),
    cancelJob: unary((r: { jobId: string }) => ({ state: c.cancel(r.jobId) })),
    getResult: (call: grpc.ServerWritableStream<{ jobId: string }, unknown>) => {
      if (!authorized(call)) return call.emit("error", unauthenticated());
      streamResult(c, call).catch((err) => call.emit("error", toStatus(err, log)));
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

async function collectUpload(call: grpc.ServerReadableStream<TileResultChunk, unknown>) {
  let head: TileResultChunk | null = null;
  let values: Float32Array | null = null;
  let filled = 0;
  for await (const chunk of call as AsyncIterable<TileResultChunk>) {
    if (!head) {
      head = chunk;
      if (!Number.isInteger(chunk.totalValues) || chunk.totalValues < 0 || chunk.totalValues > MAX_RESULT_VALUES) {
        throw new ProtocolError(`upload: total_values ${chunk.totalValues} out of range`);
      }
      values = new Float32Array(chunk.totalValues);
    } else if (chunk.jobId !== head.jobId || chunk.tileId !== head.tileId || chunk.attempt !== head.attempt) {
      throw new ProtocolError("upload: chunks of one upload must name the same job, tile and attempt");
    }
    const bytes = chunk.payload ?? new Uint8Array(0);
    if (bytes.byteLength % 4 !== 0) throw new ProtocolError("upload: payload length is not a multiple of 4");
    if (chunk.offset !== filled) throw new ProtocolError(`upload: chunk at offset ${chunk.offset}, expected ${filled}`);
    const n = bytes.byteLength / 4;
    if (filled + n > values!.length) throw new ProtocolError("upload: more values than total_values");
    new Uint8Array(values!.buffer, filled * 4, bytes.byteLength).set(bytes);
    filled += n;
  }
  if (!head || !values) throw new ProtocolError("upload: empty stream");
  if (filled !== values.length) throw new ProtocolError(`upload: ${filled} of ${values.length} values arrived`);
  if (typeof head.jobId !== "string" || typeof head.tileId !== "string" || !/^[0-9a-f]{64}$/.test(head.tileId)) {
    throw new ProtocolError("upload: bad job or tile id");
  }
  return {
    jobId: head.jobId,
    tileId: head.tileId,
    attempt: head.attempt,
    workerId: String(head.workerId || "unknown").slice(0, 200),
    output: { distances: values, truncated: head.truncated },
    computeSeconds: Number.isFinite(head.computeSeconds) ? head.computeSeconds : 0,
  };
}

async function streamResult(c: Coordinator, call: grpc.ServerWritableStream<{ jobId: string }, unknown>): Promise<void> {
  const r = c.result(call.request.jobId);
  if (r.state !== "done") throw new ProtocolError(`job ${call.request.jobId} is ${r.state}${r.error ? ` (${r.error})` : ""}: it has no result`);
  for (const path of await listFiles(r.dir)) {
    const name = relative(r.dir, path);
    const data = await readFile(path);
    for (let at = 0; at < data.length || at === 0; at += RESULT_CHUNK_BYTES) {
      const last = at + RESULT_CHUNK_BYTES >= data.length;
      const ok = call.write({ name, data: data.subarray(at, at + RESULT_CHUNK_BYTES), last });
      if (!ok) await new Promise<void>((resolve) => call.once("drain", () => resolve()));
      if (last) break;
    }
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

async function listWorkers(kv: KeyValueBucket | null): Promise<WorkerInfo[]> {
  if (!kv) return [];
  const out: WorkerInfo[] = [];
  for (const key of await kv.keys()) {
    const raw = await kv.get(key);
    if (!raw) continue;
    try {
      const b = JSON.parse(new TextDecoder().decode(raw)) as Record<string, unknown>;
      out.push({
        workerId: String(b.workerId ?? key),
        host: String(b.host ?? ""),
        device: String(b.device ?? ""),
        concurrency: Number(b.concurrency ?? 0),
        state: String(b.state ?? ""),
        tilesDone: Number(b.tilesDone ?? 0),
        pairsDone: Number(b.pairsDone ?? 0),
        lastSeenSecondsAgo: (Date.now() - Number(b.at ?? 0)) / 1000,
        currentTiles: Array.isArray(b.currentTiles) ? b.currentTiles.map(String) : [],
      });
    } catch {
      // A heartbeat that is not JSON is not from a delift worker.
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

function unauthenticated(): Partial<grpc.StatusObject> {
  return { code: grpc.status.UNAUTHENTICATED, details: "missing or wrong bearer token" };
}

function toStatus(err: unknown, log: (line: string) => void): Partial<grpc.StatusObject> {
  const message = (err as Error)?.message ?? String(err);
  if (err instanceof UnknownJobError) return { code: grpc.status.NOT_FOUND, details: message };
  if (err instanceof JobNotReadyError) return { code: grpc.status.UNAVAILABLE, details: message };
  if (err instanceof ProtocolError || err instanceof InputError) return { code: grpc.status.INVALID_ARGUMENT, details: message };
  if (err instanceof TileConflictError) {
    log(`CONFLICT: ${message}`);
    return { code: grpc.status.ALREADY_EXISTS, details: message };
  }
  if ((err as Error)?.name === "ConfigError") return { code: grpc.status.INVALID_ARGUMENT, details: message };
  log(`internal error: ${(err as Error)?.stack ?? message}`);
  return { code: grpc.status.INTERNAL, details: message };
}
