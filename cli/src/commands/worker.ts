import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { AuthorizationError, connect, type NatsConnection, PermissionViolationError, UserAuthenticationExpiredError } from "@nats-io/transport-node";
import {
  checkDevice,
  closeNats,
  CLUSTER_BUCKET,
  ConfigError,
  createLogger,
  type Logger,
  JOBS_BUCKET,
  MODELS_BUCKET,
  NATS_FLAGS,
  NATS_OPTIONS_HELP,
  natsAccessFrom,
  NatsBlobStore,
  natsConnectionOptions,
  NatsKeyValue,
  NatsTileSource,
  newMetricsRegistry,
  parseLogFormat,
  parseMetricsAddress,
  parseLogLevel,
  WORKER_TTL_MS,
  startMetricsServer,
  WorkerMetrics,
  WORKERS_BUCKET,
} from "../../../common/src/mod.js";
import { CorpusCache, defaultModelCacheDir, GrpcResultSender, ModelCache, ShardService, WorkerLoop } from "../../../worker/src/mod.js";
import { choiceOption, intOption, parseCommand } from "../args.js";

export const WORKER_HELP = `delift worker --nats URL --token T [options]

Runs a worker: pulls tiles of running jobs from NATS JetStream, checks each message's
authentication code, computes them with onnxruntime, streams the results to the coordinator over
gRPC. The model bundle comes from the NATS object store (cached locally), the coordinator's address
from the cluster bucket; the job keys that authenticate tiles only over gRPC, with the token.
Start and stop workers at any time; a job keeps going. SIGTERM finishes (or hands back) the
current tile and leaves; a killed worker's tile is redelivered after the job's ack wait. A worker
that fails on its own (model fetch, provider, memory, a refused token) hands its tile back without
using a delivery, backs off, and after 3 such failures in a row exits with status 1.
While a job's selection runs distributed (delift submit --select-shards N, or a kernel above the
coordinator's --select-memory), the worker also hosts selection shards for it: it reads its column
ranges from the NATS object store and answers the coordinator's rounds (signed with the job's key).

  --token T              the coordinator's bearer token (DELIFT_TOKEN; not needed if the coordinator
                         runs with --publish-token)
  --coordinator-ca FILE  trust this CA for the coordinator's gRPC TLS instead of the published one
  --device cpu|cuda      onnxruntime execution provider (default cpu)
  --concurrency N        tiles computed at once (default 1)
  --threads N            onnxruntime intra-op threads (default: all cores)
  --cache-dir DIR        model bundle cache (default ~/.cache/delift/models)
  --max-models N         model sessions kept loaded at once (default 2; idle ones are unloaded after 10 min)
  --corpus-cache-mb N    memory for the corpus chunks tiles index (default 768; least recently used out)
  --drain-timeout S      on SIGTERM, seconds a running tile may still take (default 60)
  --id NAME              worker id (default HOST-PID-RANDOM)
  --verbose              log every tile started and stored (--log-level debug)
  --metrics HOST:PORT    serve Prometheus metrics on http://HOST:PORT/metrics (tiles, pairs, tile
                         durations, failures, redeliveries, bytes; RSS, event-loop delay)
  --log-format F         pretty (default) | json;  --log-level L  debug | info (default) | warn | error
${NATS_OPTIONS_HELP}`;

export async function workerCommand(argv: string[]): Promise<number> {
  const { values } = parseCommand("worker", argv, {
    ...NATS_FLAGS,
    token: { type: "string" },
    "coordinator-ca": { type: "string" },
    device: { type: "string" },
    concurrency: { type: "string" },
    threads: { type: "string" },
    "cache-dir": { type: "string" },
    "max-models": { type: "string" },
    "corpus-cache-mb": { type: "string" },
    "drain-timeout": { type: "string" },
    id: { type: "string" },
    verbose: { type: "boolean" },
    "log-format": { type: "string" },
    "log-level": { type: "string" },
    metrics: { type: "string" },
  });
  if (values.help) {
    process.stdout.write(WORKER_HELP + "\n");
    return 0;
  }
  const access = natsAccessFrom(values);
  const device = choiceOption(values.device, "device", ["cpu", "cuda"] as const) ?? "cpu";
  checkDevice(device); // a missing CUDA provider is said at start, not after the first tile
  const concurrency = intOption(values.concurrency, "concurrency", 1, 64) ?? 1;
  const threads = intOption(values.threads, "threads", 1, 1024);
  const maxModels = intOption(values["max-models"], "max-models", 1, 64);
  const corpusCacheMb = intOption(values["corpus-cache-mb"], "corpus-cache-mb", 16, 1 << 20);
  const drainMs = (intOption(values["drain-timeout"], "drain-timeout", 0, 86_400) ?? 60) * 1000;
  const workerId = typeof values.id === "string" ? values.id : `${hostname()}-${process.pid}-${randomBytes(2).toString("hex")}`;
  if (!/^[A-Za-z0-9_.@:-]{1,200}$/.test(workerId)) throw new ConfigError(`--id ${workerId}: use letters, digits and _.@:- only`);
  const token = typeof values.token === "string" ? values.token : process.env.DELIFT_TOKEN || undefined;
  let caPem: Buffer | undefined;
  if (typeof values["coordinator-ca"] === "string") {
    try {
      caPem = readFileSync(values["coordinator-ca"]);
    } catch (err) {
      throw new ConfigError(`cannot read --coordinator-ca ${values["coordinator-ca"]}: ${(err as Error).message}`);
    }
  }
  const log = createLogger({ format: parseLogFormat(values["log-format"]), level: parseLogLevel(values["log-level"], values.verbose === true ? "debug" : "info"), base: { worker: workerId } });

  const metricsAt = typeof values.metrics === "string" ? parseMetricsAddress(values.metrics) : null;
  const registry = metricsAt ? newMetricsRegistry({ process: "worker", worker: workerId }) : null;
  const metricsServer = metricsAt && registry ? await startMetricsServer(metricsAt, registry) : null;
  if (metricsServer) log.info({ metrics: metricsServer.url }, `metrics on ${metricsServer.url}`);

  const nc = await connect(natsConnectionOptions({ ...access, name: `delift-worker ${workerId}` }));
  const { jobsKv, workersKv, clusterKv, blobs } = await bindBuckets(nc, log, access.replicas ?? 1);
  const sender = new GrpcResultSender(clusterKv, workerId, { token, caPem });
  const cacheDir = typeof values["cache-dir"] === "string" ? values["cache-dir"] : defaultModelCacheDir();
  const models = new ModelCache(blobs, cacheDir, { device, threads }, { maxModels });
  const corpora = new CorpusCache(blobs, join(cacheDir, "corpus-fetch"), corpusCacheMb === undefined ? {} : { maxBytes: corpusCacheMb * 2 ** 20 });
  const loop = new WorkerLoop({ workerId, source: NatsTileSource.create(nc), jobsKv, workersKv, models, corpora, sender, concurrency, device, log, drainMs, blobs, searchDir: join(cacheDir, "search-fetch"), ...(registry ? { events: new WorkerMetrics(registry, concurrency) } : {}) });
  loop.start();
  const hold = process.env.DELIFT_SELECT_HOLD_ROUND;
  if (hold !== undefined && !/^\d+$/.test(hold)) throw new ConfigError(`DELIFT_SELECT_HOLD_ROUND must be a round number, got "${hold}"`);
  const shards = new ShardService({
    nc,
    jobsKv,
    workerId,
    jobKey: (jobId) => sender.jobKey(jobId),
    openStore: async (bucket) => {
      if (bucket !== MODELS_BUCKET) throw new ConfigError(`a selection kernel in bucket "${bucket}": only ${MODELS_BUCKET} is read`);
      return blobs;
    },
    scratch: join(tmpdir(), `delift-select-${workerId.replace(/[^A-Za-z0-9_-]/g, "-")}`),
    log,
    holdAtRound: hold === undefined ? undefined : Number(hold),
  });
  shards.start();
  log.info({ device, concurrency, nats: access.servers.join(",") }, `worker ready (${device}, concurrency ${concurrency}), NATS ${access.servers.join(",")}`);

  await new Promise<void>((resolve) => {
    process.once("SIGINT", () => resolve());
    process.once("SIGTERM", () => resolve());
    loop.onRetire(() => resolve());
  });
  if (!loop.retired) log.info("stopping: finishing or handing back the current tile");
  await loop.stop();
  await shards.stop();
  await sender.close();
  await models.dispose();
  await closeNats(nc);
  await metricsServer?.close();
  log.info({ tiles: loop.stats.tilesDone }, `stopped after ${loop.stats.tilesDone} tiles`);
  if (loop.retired) {
    process.stderr.write(`delift: ${loop.retired.message}\n`);
    return 1;
  }
  return 0;
}

/**
 * The cluster's buckets: opened (created if need be, with --nats-replicas) like the coordinator
 * does; with a worker's least NATS permissions, which forbid creating streams, bound to the ones the
 * coordinator made instead, waiting for them if the worker started first.
 */
async function bindBuckets(nc: NatsConnection, log: Logger, replicas: number): Promise<{ jobsKv: NatsKeyValue; workersKv: NatsKeyValue; clusterKv: NatsKeyValue; blobs: NatsBlobStore }> {
  try {
    return {
      jobsKv: await NatsKeyValue.open(nc, JOBS_BUCKET, undefined, replicas),
      workersKv: await NatsKeyValue.open(nc, WORKERS_BUCKET, WORKER_TTL_MS, replicas),
      clusterKv: await NatsKeyValue.open(nc, CLUSTER_BUCKET, undefined, replicas),
      blobs: await NatsBlobStore.open(nc, MODELS_BUCKET, replicas),
    };
  } catch (err) {
    if (!(err instanceof PermissionViolationError)) throw err;
  }
  let said = false;
  for (;;) {
    try {
      return {
        jobsKv: await NatsKeyValue.bind(nc, JOBS_BUCKET),
        workersKv: await NatsKeyValue.bind(nc, WORKERS_BUCKET),
        clusterKv: await NatsKeyValue.bind(nc, CLUSTER_BUCKET),
        blobs: await NatsBlobStore.bind(nc, MODELS_BUCKET),
      };
    } catch (err) {
      if (isAuthError(err)) throw err;
      if (!said) log.info({ error: (err as Error).message }, `waiting for the coordinator to create its NATS buckets (${(err as Error).message})`);
      said = true;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

function isAuthError(err: unknown): boolean {
  return err instanceof AuthorizationError || err instanceof PermissionViolationError || err instanceof UserAuthenticationExpiredError;
}
