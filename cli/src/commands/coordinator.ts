import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { join, resolve } from "node:path";
import { connect } from "@nats-io/transport-node";
import { closeNats, CLUSTER_BUCKET, ConfigError, COORDINATOR_KEY, JOBS_BUCKET, MODELS_BUCKET, NATS_FLAGS, NATS_OPTIONS_HELP, natsAccessFrom, NatsBlobStore, natsConnectionOptions, NatsKeyValue, NatsTileQueue, WORKER_TTL_MS, WORKERS_BUCKET } from "../../../common/src/mod.js";
import { Coordinator, startGrpcServer, TileStore } from "../../../coordinator/src/mod.js";
import { parseCommand, requireString } from "../args.js";

export const COORDINATOR_HELP = `delift coordinator --nats URL --grpc HOST:PORT --data-dir DIR [options]

Runs the coordinator: accepts jobs (delift submit), publishes their tiles on NATS JetStream,
receives results from workers over gRPC, stores them under DIR, runs the selection. Restart it with
the same --data-dir and it resumes unfinished jobs, recomputing only tiles it had not stored.

  --grpc HOST:PORT       where the gRPC service listens (workers upload there; the CLI calls it)
  --advertise HOST:PORT  the address workers should dial (default: --grpc, with this host's name for 0.0.0.0)
  --data-dir DIR         job specs, states, results and the tile store (DIR/tiles)
  --store DIR            a tile store elsewhere (shared by several data dirs, say)
  --token T              bearer token every gRPC call must carry (DELIFT_TOKEN); published to workers
                         through the cluster bucket, so NATS credentials are the root of trust
  --grpc-tls-cert FILE / --grpc-tls-key FILE   serve gRPC over TLS
  --grpc-tls-ca FILE     CA that workers should trust (default: the certificate itself, for self-signed)
${NATS_OPTIONS_HELP}`;

export async function coordinatorCommand(argv: string[]): Promise<number> {
  const { values } = parseCommand("coordinator", argv, {
    ...NATS_FLAGS,
    grpc: { type: "string" },
    advertise: { type: "string" },
    "data-dir": { type: "string" },
    store: { type: "string" },
    token: { type: "string" },
    "grpc-tls-cert": { type: "string" },
    "grpc-tls-key": { type: "string" },
    "grpc-tls-ca": { type: "string" },
  });
  if (values.help) {
    process.stdout.write(COORDINATOR_HELP + "\n");
    return 0;
  }
  const grpcAddress = requireString(values.grpc, "grpc", "coordinator");
  const dataDir = resolve(requireString(values["data-dir"], "data-dir", "coordinator"));
  const token = typeof values.token === "string" ? values.token : process.env.DELIFT_TOKEN || undefined;
  const access = natsAccessFrom(values);
  const log = (line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);
  const tls = { certFile: values["grpc-tls-cert"] as string | undefined, keyFile: values["grpc-tls-key"] as string | undefined };
  const caFile = (values["grpc-tls-ca"] as string | undefined) ?? tls.certFile;
  const caPem = caFile ? readFileSync(caFile, "utf8") : undefined;

  const nc = await connect(natsConnectionOptions({ ...access, name: `delift-coordinator@${hostname()}` }));
  const jobsKv = await NatsKeyValue.open(nc, JOBS_BUCKET, undefined, access.replicas);
  const workersKv = await NatsKeyValue.open(nc, WORKERS_BUCKET, WORKER_TTL_MS, access.replicas);
  const clusterKv = await NatsKeyValue.open(nc, CLUSTER_BUCKET, undefined, access.replicas);
  const queue = await NatsTileQueue.create(nc, access.replicas);
  const store = await TileStore.open(typeof values.store === "string" ? resolve(values.store) : join(dataDir, "tiles"));
  const coordinator = await Coordinator.start({ queue, jobsKv, blobs: await NatsBlobStore.open(nc, MODELS_BUCKET, access.replicas), store, dataDir, log });
  const server = await startGrpcServer({ coordinator, address: grpcAddress, token, tls, workersKv, log });
  const advertise = typeof values.advertise === "string" ? values.advertise : advertisedAddress(grpcAddress, server.port);
  const publishEndpoint = () =>
    clusterKv
      .put(COORDINATOR_KEY, new TextEncoder().encode(JSON.stringify({ address: advertise, token: token ?? "", caPem: caPem ?? "", startedAt: Date.now(), pid: process.pid })))
      .catch((err) => log(`publishing the coordinator endpoint: ${(err as Error).message}`));
  await publishEndpoint();
  const republish = setInterval(publishEndpoint, 15_000);
  log(`coordinator ready: gRPC on port ${server.port} (workers dial ${advertise}), NATS ${access.servers.join(",")}, data in ${dataDir}`);

  await new Promise<void>((resolveStop) => {
    const stop = () => resolveStop();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  log("coordinator stopping");
  clearInterval(republish);
  await server.close();
  await coordinator.close();
  await queue.close();
  await closeNats(nc);
  return 0;
}

function advertisedAddress(listen: string, port: number): string {
  const colon = listen.lastIndexOf(":");
  if (colon < 0) throw new ConfigError(`--grpc ${listen}: expected HOST:PORT`);
  const host = listen.slice(0, colon);
  const name = host === "0.0.0.0" || host === "[::]" || host === "" ? hostname() : host;
  return `${name}:${port}`;
}
