import { readFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { hostname } from "node:os";
import { join, resolve } from "node:path";
import { connect } from "@nats-io/transport-node";
import {
  closeNats,
  CLUSTER_BUCKET,
  ConfigError,
  COORDINATOR_KEY,
  CoordinatorRecord,
  createLogger,
  errorFields,
  JOBS_BUCKET,
  MODELS_BUCKET,
  NATS_FLAGS,
  NATS_OPTIONS_HELP,
  natsAccessFrom,
  NatsBlobStore,
  natsConnectionOptions,
  NatsKeyValue,
  NatsTileQueue,
  natsQueueDepth,
  newMetricsRegistry,
  parseLogFormat,
  parseMetricsAddress,
  parseLogLevel,
  WORKER_TTL_MS,
  startMetricsServer,
  WORKERS_BUCKET,
} from "../../../common/src/mod.js";
import { acquireCoordinatorLease, Coordinator, JobMetrics, dataDirIdentity, DEFAULT_CONFLICT_TOLERANCE, NatsSelectionHosts, startGrpcServer, TileStore } from "../../../coordinator/src/mod.js";
import { numberOption, parseCommand, requireString } from "../args.js";

export const COORDINATOR_HELP = `delift coordinator --nats URL --grpc HOST:PORT --data-dir DIR [options]

Runs the coordinator: accepts jobs (delift submit), publishes their tiles on NATS JetStream,
receives results from workers over gRPC, stores them under DIR, runs the selection. Restart it with
the same --data-dir and it resumes unfinished jobs, recomputing only tiles it had not stored.
One coordinator runs per NATS cluster: it holds a lease in the cluster bucket; a second one
refuses to start, or with --standby waits and takes over when the first stops renewing it.

  --grpc HOST:PORT       where the gRPC service listens (workers upload there; the CLI calls it)
  --advertise HOST:PORT  the address workers should dial (default: --grpc, with this host's name for 0.0.0.0)
  --data-dir DIR         job specs, states, stories, results and the tile store (DIR/tiles)
  --store DIR            a tile store elsewhere (shared by several data dirs, say)
  --token T              bearer token every gRPC call must carry (DELIFT_TOKEN); give workers the same
  --publish-token        also publish the token in the cluster bucket, so workers need only NATS (then
                         NATS credentials alone are enough to forge tiles: trusted clusters only)
  --grpc-tls-cert FILE / --grpc-tls-key FILE   serve gRPC over TLS
  --grpc-tls-ca FILE     CA that workers should trust (default: the certificate itself, for self-signed)
  --standby              wait for the running coordinator's lease to expire, then take over
  --lease-ttl S          seconds a coordinator lease lives without renewal (default 15)
  --conflict-tolerance X largest difference between two results of one tile (float differences between
                         devices) that still counts as the same: the stored values are kept and the
                         difference logged; beyond it the job fails (default ${DEFAULT_CONFLICT_TOLERANCE})
  --search-on W          coordinator (default) | workers: where the SE kernel's candidate search runs
                         (search tiles on the workers: exact tiles, or per-cell tiles after the
                         k-means and probe tuning here; or all of it in the job's thread here)
  --metrics HOST:PORT    serve Prometheus metrics on http://HOST:PORT/metrics (jobs' tiles by state,
                         pairs, queue depth, tile durations, bytes, tasks; RSS, event-loop delay)
  --log-format F         pretty (default) | json;  --log-level L  debug | info (default) | warn | error
${NATS_OPTIONS_HELP}`;

export async function coordinatorCommand(argv: string[]): Promise<number> {
  const { values } = parseCommand("coordinator", argv, {
    ...NATS_FLAGS,
    grpc: { type: "string" },
    advertise: { type: "string" },
    "data-dir": { type: "string" },
    store: { type: "string" },
    token: { type: "string" },
    "publish-token": { type: "boolean" },
    "grpc-tls-cert": { type: "string" },
    "grpc-tls-key": { type: "string" },
    "grpc-tls-ca": { type: "string" },
    standby: { type: "boolean" },
    "lease-ttl": { type: "string" },
    "conflict-tolerance": { type: "string" },
    "search-on": { type: "string" },
    "log-format": { type: "string" },
    "log-level": { type: "string" },
    metrics: { type: "string" },
  });
  if (values.help) {
    process.stdout.write(COORDINATOR_HELP + "\n");
    return 0;
  }
  const grpcAddress = requireString(values.grpc, "grpc", "coordinator");
  const dataDir = resolve(requireString(values["data-dir"], "data-dir", "coordinator"));
  const token = typeof values.token === "string" ? values.token : process.env.DELIFT_TOKEN || undefined;
  const access = natsAccessFrom(values);
  const log = createLogger({ format: parseLogFormat(values["log-format"]), level: parseLogLevel(values["log-level"], "info") });
  const tls = { certFile: values["grpc-tls-cert"] as string | undefined, keyFile: values["grpc-tls-key"] as string | undefined };
  const caFile = (values["grpc-tls-ca"] as string | undefined) ?? tls.certFile;
  const caPem = caFile ? readFileSync(caFile, "utf8") : undefined;
  const leaseTtlMs = Math.round((numberOption(values["lease-ttl"], "lease-ttl", 0.5, 3600) ?? 15) * 1000);
  const conflictTolerance = numberOption(values["conflict-tolerance"], "conflict-tolerance", 0, 1) ?? DEFAULT_CONFLICT_TOLERANCE;
  const searchOn = (values["search-on"] as string | undefined) ?? "coordinator";
  if (searchOn !== "workers" && searchOn !== "coordinator") throw new ConfigError(`--search-on ${searchOn}: expected workers or coordinator`);
  if (values["publish-token"] && !token) throw new ConfigError("--publish-token needs --token (or DELIFT_TOKEN)");

  const metricsAt = typeof values.metrics === "string" ? parseMetricsAddress(values.metrics) : null;
  const registry = metricsAt ? newMetricsRegistry({ process: "coordinator" }) : null;
  // Bound first: a bad --metrics address is said before anything else starts.
  const metricsServer = metricsAt && registry ? await startMetricsServer(metricsAt, registry) : null;
  if (metricsServer) log.info({ metrics: metricsServer.url }, `metrics on ${metricsServer.url}`);

  await mkdir(dataDir, { recursive: true });
  const holder = await dataDirIdentity(dataDir);
  const nc = await connect(natsConnectionOptions({ ...access, name: `delift-coordinator@${hostname()}` }));
  const clusterKv = await NatsKeyValue.open(nc, CLUSTER_BUCKET, undefined, access.replicas);
  const stopping = new AbortController();
  const onSignal = () => stopping.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  let lease;
  try {
    lease = await acquireCoordinatorLease({ kv: clusterKv, holder, address: grpcAddress, ttlMs: leaseTtlMs, standby: values.standby === true, log, signal: stopping.signal });
  } catch (err) {
    await closeNats(nc);
    await metricsServer?.close();
    if (stopping.signal.aborted) return 0;
    throw err;
  }
  const jobsKv = await NatsKeyValue.open(nc, JOBS_BUCKET, undefined, access.replicas);
  const workersKv = await NatsKeyValue.open(nc, WORKERS_BUCKET, WORKER_TTL_MS, access.replicas);
  const queue = await NatsTileQueue.create(nc, access.replicas);
  const store = await TileStore.open(typeof values.store === "string" ? resolve(values.store) : join(dataDir, "tiles"));
  const blobs = await NatsBlobStore.open(nc, MODELS_BUCKET, access.replicas);
  // Distributed selections (--select-shards, or a kernel above --select-memory) run on the workers.
  const selectionHosts = new NatsSelectionHosts({ nc, jobsKv, workersKv, blobs });
  await selectionHosts.reset().catch((err) => log.warn({ ...errorFields(err) }, `clearing earlier distributed selections failed: ${(err as Error).message}`));
  const coordinator = await Coordinator.start({ queue, jobsKv, blobs, store, dataDir, log, conflictTolerance, selectionHosts, searchOnWorkers: searchOn === "workers" });
  if (registry) {
    const metrics = new JobMetrics(registry, { statuses: () => coordinator.list(), queueDepth: natsQueueDepth(nc) });
    coordinator.onStory((e) => metrics.observe(e));
    metrics.seed(coordinator.list().map((s) => coordinator.record(s.jobId)));
  }
  const server = await startGrpcServer({ coordinator, address: grpcAddress, token, tls, workersKv, log });
  const advertise = typeof values.advertise === "string" ? values.advertise : advertisedAddress(grpcAddress, server.port);
  const publishEndpoint = () =>
    clusterKv
      .put(COORDINATOR_KEY, CoordinatorRecord.encode({ address: advertise, ...(values["publish-token"] && token ? { token } : {}), ...(caPem ? { caPem } : {}), startedAt: Date.now(), pid: process.pid, instance: lease.lease.instance }))
      .catch((err) => log.warn({ ...errorFields(err) }, `publishing the coordinator endpoint failed: ${(err as Error).message}`));
  await publishEndpoint();
  const republish = setInterval(publishEndpoint, 15_000);
  let exitCode = 0;
  lease.onLost((by) => {
    log.error({ by }, `another coordinator took the cluster lease (${by}): stopping at once`);
    exitCode = 1;
    stopping.abort();
  });
  log.info({ port: server.port, advertise, nats: access.servers.join(","), dataDir }, `coordinator ready: gRPC on port ${server.port} (workers dial ${advertise}), NATS ${access.servers.join(",")}, data in ${dataDir}`);

  await new Promise<void>((resolveStop) => {
    if (stopping.signal.aborted) resolveStop();
    stopping.signal.addEventListener("abort", () => resolveStop(), { once: true });
  });
  log.info("coordinator stopping");
  clearInterval(republish);
  await server.close();
  await coordinator.close();
  await queue.close();
  if (exitCode === 0) await lease.release();
  await closeNats(nc);
  await metricsServer?.close();
  return exitCode;
}

function advertisedAddress(listen: string, port: number): string {
  const colon = listen.lastIndexOf(":");
  if (colon < 0) throw new ConfigError(`--grpc ${listen}: expected HOST:PORT`);
  const host = listen.slice(0, colon);
  const name = host === "0.0.0.0" || host === "[::]" || host === "" ? hostname() : host;
  return `${name}:${port}`;
}
