import * as grpc from "@grpc/grpc-js";
import { connectCoordinator, COORDINATOR_KEY, type CoordinatorClient, type CoordinatorEndpoint, isGrpcStatus, type KeyValueBucket, type TileOutput } from "../../../common/src/mod.js";
import { JobGoneError, ResultRejectedError, type ResultSender } from "../runtime/result-sender.js";

const CHUNK_VALUES = 1 << 18;

/**
 * Results over gRPC to the coordinator whose endpoint (address, token, CA) the cluster bucket
 * holds: a worker needs only NATS to find it, and follows it when the coordinator restarts.
 */
export class GrpcResultSender implements ResultSender {
  private client: { endpoint: string; client: CoordinatorClient } | null = null;

  constructor(private readonly clusterKv: KeyValueBucket, private readonly workerId: string, private readonly override?: CoordinatorEndpoint) {}

  async started(jobId: string, tileId: string, attempt: number): Promise<{ wanted: boolean }> {
    return this.call(async (c) => c.unary<{ wanted: boolean }>("reportTileStarted", { jobId, tileId, attempt, workerId: this.workerId }, 10_000));
  }

  async failed(jobId: string, tileId: string, attempt: number, error: string, final: boolean): Promise<void> {
    await this.call((c) => c.unary("reportTileFailure", { jobId, tileId, attempt, workerId: this.workerId, error, final }, 10_000));
  }

  async upload(jobId: string, tileId: string, attempt: number, output: TileOutput, computeSeconds: number): Promise<"stored" | "duplicate"> {
    return this.call(
      (c) =>
        new Promise<"stored" | "duplicate">((resolve, reject) => {
          const stream = (c.raw.uploadTileResult as (md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: { outcome: "stored" | "duplicate" }) => void) => grpc.ClientWritableStream<object>).call(
            c.raw,
            c.metadata(),
            { deadline: Date.now() + 120_000 },
            (err, res) => {
              if (err && isGrpcStatus(err, grpc.status.ALREADY_EXISTS)) return resolve("duplicate");
              return err ? reject(err) : resolve(res.outcome);
            },
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
      if (isGrpcStatus(err, grpc.status.NOT_FOUND)) throw new JobGoneError((err as Error).message);
      if (isGrpcStatus(err, grpc.status.INVALID_ARGUMENT)) throw new ResultRejectedError((err as Error).message);
      if (isGrpcStatus(err, grpc.status.UNAVAILABLE) || isGrpcStatus(err, grpc.status.UNAUTHENTICATED)) {
        // The coordinator may have restarted elsewhere or with a new token: look it up again next time.
        await this.close();
      }
      throw err;
    }
  }

  private async connect(): Promise<CoordinatorClient> {
    const endpoint = this.override ?? (await this.lookup());
    const key = `${endpoint.address}|${endpoint.token ?? ""}|${endpoint.caPem ? "tls" : ""}`;
    if (this.client?.endpoint !== key) {
      this.client?.client.close();
      this.client = { endpoint: key, client: connectCoordinator(endpoint) };
    }
    return this.client.client;
  }

  private async lookup(): Promise<CoordinatorEndpoint> {
    const raw = await this.clusterKv.get(COORDINATOR_KEY);
    if (!raw) throw new Error("no coordinator has registered in the cluster bucket yet");
    const info = JSON.parse(new TextDecoder().decode(raw)) as { address: string; token?: string; caPem?: string };
    return { address: info.address, token: info.token || undefined, caPem: info.caPem || undefined };
  }
}
