/**
 * A shard host as a process of its own: node dist/common/src/selection/distributed/shard-host-main.js
 *   --nats URL [--nats-user/--nats-password/--nats-token/--nats-creds/--nats-tls-*]
 *   [--pool NAME] [--host-id ID] [--secret-file FILE] [--scratch DIR] [--verbose]
 * It serves selection shards to any coordinator of the pool until SIGTERM/SIGINT, reading their
 * columns from a chunked directory it can see or from the cluster's NATS object store (through
 * --scratch, default a temp directory). Benchmarks and
 * tests start it; later `delift worker` hosts shards the same way (serveShardHost). Prints
 * "delift: shard host ID ready" on stderr once it listens. Test hook: DELIFT_SELECT_HOLD_ROUND=N
 * makes it stop answering at round N (after printing "delift: holding at selection round N").
 */
import { readFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { connect } from "@nats-io/transport-node";
import { NatsBlobStore } from "../../bus/nats-bus.js";
import { closeNats, NATS_FLAGS, natsAccessFrom, natsConnectionOptions } from "../../bus/nats-options.js";
import { ConfigError } from "../../errors.js";
import { HmacAuthenticator, UNSIGNED } from "./auth.js";
import { blobColumnReader } from "./blob-source.js";
import { serveShardHost } from "./nats-shard-host.js";
import { ShardHost, chunkedDirReader } from "./shard-host.js";

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { ...NATS_FLAGS, pool: { type: "string" }, "host-id": { type: "string" }, "secret-file": { type: "string" }, scratch: { type: "string" }, verbose: { type: "boolean" } },
    strict: true,
  });
  const access = natsAccessFrom(values);
  const hostId = values["host-id"] ?? `${hostname().replace(/[^A-Za-z0-9_-]/g, "-").slice(0, 40)}-${process.pid}`;
  const log = values.verbose ? (line: string) => process.stderr.write(`${line}\n`) : undefined;
  const hold = process.env.DELIFT_SELECT_HOLD_ROUND;
  if (hold !== undefined && !/^\d+$/.test(hold)) throw new ConfigError(`DELIFT_SELECT_HOLD_ROUND must be a round number, got "${hold}"`);
  const auth = values["secret-file"] ? new HmacAuthenticator(readFileSync(values["secret-file"])) : UNSIGNED;
  const nc = await connect({ ...natsConnectionOptions({ ...access, name: `delift-shard-host-${hostId}` }), waitOnFirstConnect: true });
  // Kernels come from a directory this machine sees, or from the cluster's object store.
  const stores = new Map<string, Promise<NatsBlobStore>>();
  const openStore = (bucket: string) => {
    if (!stores.has(bucket)) stores.set(bucket, NatsBlobStore.open(nc, bucket));
    return stores.get(bucket)!;
  };
  const scratch = values.scratch ?? join(tmpdir(), `delift-shard-${hostId}`);
  const readColumns = blobColumnReader(openStore, scratch, chunkedDirReader);
  const served = await serveShardHost(nc, { pool: values.pool ?? "default", host: new ShardHost(hostId, { log, readColumns }), auth, log, holdAtRound: hold === undefined ? undefined : Number(hold) });
  process.stderr.write(`delift: shard host ${hostId} ready\n`);
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", resolve);
    process.once("SIGINT", resolve);
  });
  await served.close();
  await closeNats(nc);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`delift shard host: ${(err as Error).message}\n`);
    process.exit(err instanceof ConfigError ? 2 : 1);
  },
);
