import * as grpc from "@grpc/grpc-js";
import { readFileSync } from "node:fs";
import { ConfigError } from "../errors.js";

export type GrpcTlsFiles = { certFile?: string; keyFile?: string; caFile?: string };

export function serverCredentials(tls: GrpcTlsFiles): grpc.ServerCredentials {
  if (!tls.certFile && !tls.keyFile) return grpc.ServerCredentials.createInsecure();
  if (!tls.certFile || !tls.keyFile) throw new ConfigError("gRPC TLS needs both --grpc-tls-cert and --grpc-tls-key");
  return grpc.ServerCredentials.createSsl(null, [{ cert_chain: read(tls.certFile), private_key: read(tls.keyFile) }], false);
}

/** TLS when a CA (file or PEM text) is given; plaintext otherwise (loopback, trusted networks). */
export function channelCredentials(caPem: string | Buffer | undefined): grpc.ChannelCredentials {
  return caPem ? grpc.credentials.createSsl(typeof caPem === "string" ? Buffer.from(caPem) : caPem) : grpc.credentials.createInsecure();
}

/** Adds "authorization: Bearer <token>" to every call. */
export function bearerMetadata(token: string | undefined): grpc.Metadata {
  const md = new grpc.Metadata();
  if (token) md.set("authorization", `Bearer ${token}`);
  return md;
}

function read(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ConfigError(`cannot read ${file}: ${(err as Error).message}`);
  }
}
