import { readFileSync } from "node:fs";
import { credsAuthenticator, type NodeConnectionOptions } from "@nats-io/transport-node";
import { ConfigError } from "../errors.js";

/** How a delift process reaches NATS: servers, one way to authenticate, optional TLS. */
export type NatsAccess = {
  servers: string[];
  user?: string;
  password?: string;
  token?: string;
  credsFile?: string;
  tlsCaFile?: string;
  tlsCertFile?: string;
  tlsKeyFile?: string;
  name?: string;
  /** Copies of each stream, consumer, KV bucket and object store this process creates (--nats-replicas). */
  replicas?: number;
};

export const MAX_NATS_REPLICAS = 5;

export const NATS_OPTIONS_HELP = `NATS access (flags, or DELIFT_NATS_* environment variables):
  --nats URL[,URL]       server(s) (DELIFT_NATS_URL)
  --nats-user U / --nats-password P   user and password (DELIFT_NATS_USER, DELIFT_NATS_PASSWORD)
  --nats-token T         token (DELIFT_NATS_TOKEN)
  --nats-creds FILE      JWT/NKey credentials file (DELIFT_NATS_CREDS)
  --nats-tls-ca FILE     CA to verify the server (TLS); --nats-tls-cert/--nats-tls-key for client certificates
  --nats-replicas N      JetStream replicas of what this process creates: job streams and consumers, KV
                         buckets, object store (DELIFT_NATS_REPLICAS; default 1, 3 on a three-server cluster)`;

export const NATS_FLAGS = {
  nats: { type: "string" },
  "nats-user": { type: "string" },
  "nats-password": { type: "string" },
  "nats-token": { type: "string" },
  "nats-creds": { type: "string" },
  "nats-tls-ca": { type: "string" },
  "nats-tls-cert": { type: "string" },
  "nats-tls-key": { type: "string" },
  "nats-replicas": { type: "string" },
} as const;

export function natsAccessFrom(values: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): NatsAccess {
  const pick = (flag: string, name: string) => (typeof values[flag] === "string" ? (values[flag] as string) : env[name] || undefined);
  const url = pick("nats", "DELIFT_NATS_URL");
  if (!url) throw new ConfigError("--nats URL is required (or DELIFT_NATS_URL)");
  const access: NatsAccess = {
    servers: url.split(",").map((s) => s.trim()).filter(Boolean),
    user: pick("nats-user", "DELIFT_NATS_USER"),
    password: pick("nats-password", "DELIFT_NATS_PASSWORD"),
    token: pick("nats-token", "DELIFT_NATS_TOKEN"),
    credsFile: pick("nats-creds", "DELIFT_NATS_CREDS"),
    tlsCaFile: pick("nats-tls-ca", "DELIFT_NATS_TLS_CA"),
    tlsCertFile: pick("nats-tls-cert", "DELIFT_NATS_TLS_CERT"),
    tlsKeyFile: pick("nats-tls-key", "DELIFT_NATS_TLS_KEY"),
    replicas: replicasFrom(pick("nats-replicas", "DELIFT_NATS_REPLICAS")),
  };
  const ways = [access.user || access.password ? "user" : null, access.token ? "token" : null, access.credsFile ? "creds" : null].filter(Boolean);
  if (ways.length > 1) throw new ConfigError(`give one NATS authentication (user/password, token or creds), not ${ways.join(" + ")}`);
  if ((access.user && !access.password) || (!access.user && access.password)) throw new ConfigError("--nats-user and --nats-password go together");
  return access;
}

function replicasFrom(text: string | undefined): number {
  if (text === undefined) return 1;
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || n < 1 || n > MAX_NATS_REPLICAS) {
    throw new ConfigError(`--nats-replicas ${text}: expected a whole number from 1 to ${MAX_NATS_REPLICAS} (JetStream's limit; at most the number of servers in the cluster)`);
  }
  return n;
}

/** Connection options: reconnect forever (a NATS restart is an outage, not an end). */
export function natsConnectionOptions(access: NatsAccess): NodeConnectionOptions {
  const options: NodeConnectionOptions = {
    servers: access.servers,
    name: access.name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    waitOnFirstConnect: false,
  };
  if (access.user) {
    options.user = access.user;
    options.pass = access.password;
  }
  if (access.token) options.token = access.token;
  if (access.credsFile) {
    let creds: Uint8Array;
    try {
      creds = readFileSync(access.credsFile);
    } catch (err) {
      throw new ConfigError(`cannot read --nats-creds ${access.credsFile}: ${(err as Error).message}`);
    }
    options.authenticator = credsAuthenticator(creds);
  }
  if (access.tlsCaFile || access.tlsCertFile || access.tlsKeyFile) {
    options.tls = { caFile: access.tlsCaFile, certFile: access.tlsCertFile, keyFile: access.tlsKeyFile };
  }
  return options;
}

/**
 * Drains a connection (flushing what is pending) but gives up after `ms`: with the server gone a
 * drain waits for a reconnect that may never come, and a stopping process must still exit.
 */
export async function closeNats(nc: { drain(): Promise<void>; close(): Promise<void> }, ms = 3000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), ms)));
  const outcome = await Promise.race([nc.drain().then(() => "drained" as const, () => "failed" as const), gaveUp]);
  clearTimeout(timer);
  if (outcome !== "drained") await nc.close().catch(() => undefined);
}
