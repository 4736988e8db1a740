import * as grpc from "@grpc/grpc-js";
import {
  connectCoordinator,
  COORDINATOR_KEY,
  type CoordinatorClient,
  type CoordinatorEndpoint,
  CoordinatorRecord,
  CoordinatorUnavailableError,
  errorOf,
  type KeyValueBucket,
  type TileOutput,
} from "../../../common/src/mod.js";
import type { FailureKindReport, ResultSender, UploadOutcome } from "../runtime/result-sender.js";

const CHUNK_VALUES = 1 << 18;

export type GrpcSenderOptions = {
  /** The bearer token (--token, DELIFT_TOKEN); else the one the coordinator published, if it did. */
  token?: string;
  /** A CA to trust instead of the one in the coordinator's record (pins the coordinator's identity). */
  caPem?: string | Buffer;
  /** A fixed endpoint instead of the cluster bucket's record. */
  endpoint?: CoordinatorEndpoint;
};

/**
 * Results over gRPC to the coordinator whose endpoint the cluster bucket holds: a worker needs only
 * NATS (and the token) to find it, and follows it when the coordinator restarts elsewhere. Errors
 * come back as the classes of common rpc/status.ts.
 */
export class GrpcResultSender implements ResultSender {
  private client: { endpoint: string; client: CoordinatorClient } | null = null;

  constructor(private readonly clusterKv: KeyValueBucket, private readonly workerId: string, private readonly o: GrpcSenderOptions = {}) {}

  async jobKey(jobId: string): Promise<Uint8Array> {
    const r = await this.call((c) => c.unary<{ key: Uint8Array }>("getJobKey", { jobId, workerId: this.workerId }, 10_000));
    return new Uint8Array(r.key);
  }

  async started(jobId: string, tileId: string, attempt: number): Promise<{ wanted: boolean }> {
    return this.call((c) => c.unary<{ wanted: boolean }>("reportTileStarted", { jobId, tileId, attempt, workerId: this.workerId }, 10_000));
  }

  async progress(jobId: string, tileId: string, attempt: number): Promise<{ wanted: boolean }> {
    return this.call((c) => c.unary<{ wanted: boolean }>("reportTileProgress", { jobId, tileId, attempt, workerId: this.workerId }, 10_000));
  }

  async failed(jobId: string, tileId: string, attempt: number, error: string, kind: FailureKindReport): Promise<{ action: "retry" | "drop" }> {
    const r = await this.call((c) => c.unary<{ action: string }>("reportTileFailure", { jobId, tileId, attempt, workerId: this.workerId, error, final: false, kind }, 10_000));
    return { action: r.action === "drop" ? "drop" : "retry" };
  }

  async upload(jobId: string, tileId: string, attempt: number, mac: string, output: TileOutput, computeSeconds: number): Promise<UploadOutcome> {
    return this.call(
      (c) =>
        new Promise<UploadOutcome>((resolve, reject) => {
          const stream = (c.raw.uploadTileResult as (md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: { outcome: UploadOutcome }) => void) => grpc.ClientWritableStream<object>).call(
            c.raw,
            c.metadata(),
            { deadline: Date.now() + 120_000 },
            (err, res) => (err ? reject(err) : resolve(res.outcome)),
          );
          const d = output.distances;
          for (let at = 0; at < d.length || at === 0; at += CHUNK_VALUES) {
            const part = d.subarray(at, at + CHUNK_VALUES);
            stream.write({
              jobId,
              tileId,
              attempt,
              workerId: this.workerId,
              offset: at,
              payload: new Uint8Array(part.buffer, part.byteOffset, part.byteLength),
              totalValues: d.length,
              truncated: output.truncated,
              computeSeconds,
              tileMac: mac,
            });
            if (at + CHUNK_VALUES >= d.length) break;
          }
          stream.end();
        }),
    );
  }

  async close(): Promise<void> {
    this.client?.client.close();
    this.client = null;
  }

  private async call<T>(fn: (c: CoordinatorClient) => Promise<T>): Promise<T> {
    const client = await this.connect();
    try {
      return await fn(client);
    } catch (err) {
      const e = errorOf(err);
      // The coordinator may have restarted elsewhere or with a new certificate: look it up again next time.
      if (e.name === "CoordinatorUnavailableError" || e.name === "UnauthenticatedError") await this.close();
      throw e;
    }
  }

  private async connect(): Promise<CoordinatorClient> {
    const endpoint = this.o.endpoint ?? (await this.lookup());
    const key = `${endpoint.address}|${endpoint.token ?? ""}|${endpoint.caPem ? String(endpoint.caPem).length : ""}`;
    if (this.client?.endpoint !== key) {
      this.client?.client.close();
      this.client = { endpoint: key, client: connectCoordinator(endpoint) };
    }
    return this.client.client;
  }

  private async lookup(): Promise<CoordinatorEndpoint> {
    const raw = await this.clusterKv.get(COORDINATOR_KEY).catch((err) => {
      throw new CoordinatorUnavailableError(`cannot read the coordinator's record: ${(err as Error).message}`, { cause: err });
    });
    if (!raw) throw new CoordinatorUnavailableError("no coordinator has registered in the cluster bucket yet");
    let info;
    try {
      info = CoordinatorRecord.decode(raw, COORDINATOR_KEY);
    } catch (err) {
      throw new CoordinatorUnavailableError(`the coordinator's record is invalid: ${(err as Error).message}`, { cause: err });
    }
    return { address: info.address, token: this.o.token ?? (info.token || undefined), caPem: this.o.caPem ?? (info.caPem || undefined) };
  }
}
