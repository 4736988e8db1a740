import * as grpc from "@grpc/grpc-js";
import { bearerMetadata, channelCredentials } from "./credentials.js";
import { loadServices } from "./load-proto.js";
import { errorOf } from "./status.js";

/** Where the coordinator's gRPC endpoint is and how to reach it. */
export type CoordinatorEndpoint = { address: string; token?: string; caPem?: string | Buffer };

export type CoordinatorClient = {
  raw: grpc.Client & Record<string, (...args: unknown[]) => unknown>;
  metadata: () => grpc.Metadata;
  /** One call; a failure rejects with the error class of its status (rpc/status.ts), which keeps `code`. */
  unary<Res>(method: string, request: object, deadlineMs?: number): Promise<Res>;
  close(): void;
};

export function connectCoordinator(endpoint: CoordinatorEndpoint): CoordinatorClient {
  const { coordinator } = loadServices();
  const raw = new coordinator(endpoint.address, channelCredentials(endpoint.caPem), {
    "grpc.max_receive_message_length": 8 << 20,
    "grpc.keepalive_time_ms": 20_000,
  }) as unknown as CoordinatorClient["raw"];
  const metadata = () => bearerMetadata(endpoint.token);
  return {
    raw,
    metadata,
    unary: <Res>(method: string, request: object, deadlineMs = 30_000) =>
      new Promise<Res>((resolve, reject) => {
        const fn = raw[method] as (req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: Res) => void) => void;
        fn.call(raw, request, metadata(), { deadline: Date.now() + deadlineMs }, (err, res) => (err ? reject(errorOf(err)) : resolve(res)));
      }),
    close: () => raw.close(),
  };
}

export function isGrpcStatus(err: unknown, code: grpc.status): boolean {
  return !!err && typeof err === "object" && (err as { code?: number }).code === code;
}
