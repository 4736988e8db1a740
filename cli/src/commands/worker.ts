import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { connect } from "@nats-io/transport-node";
import { checkDevice, closeNats, CLUSTER_BUCKET, JOBS_BUCKET, MODELS_BUCKET, NATS_FLAGS, NATS_OPTIONS_HELP, natsAccessFrom, NatsBlobStore, natsConnectionOptions, NatsKeyValue, NatsTileSource, WORKER_TTL_MS, WORKERS_BUCKET } from "../../../common/src/mod.js";
import { defaultModelCacheDir, GrpcResultSender, ModelCache, WorkerLoop } from "../../../worker/src/mod.js";
import { choiceOption, intOption, parseCommand } from "../args.js";

export const WORKER_HELP = `delift worker --nats URL [options]

Runs a worker: pulls tiles of running jobs from NATS JetStream, computes them with onnxruntime,
streams the results to the coordinator over gRPC. It needs only NATS: the model bundle comes from
the NATS object store (cached locally) and the coordinator's address from the cluster bucket.
Start and stop workers at any time; a job keeps going. SIGTERM finishes (or hands back) the
current tile and leaves; a killed worker's tile is redelivered after the job's ack wait.

  --device cpu|cuda      onnxruntime execution provider (default cpu)
  --concurrency N        tiles computed at once (default 1)
  --threads N            onnxruntime intra-op threads (default: all cores)
  --cache-dir DIR        model bundle cache (default ~/.cache/delift/models)
  --drain-timeout S      on SIGTERM, seconds a running tile may still take (default 60)
  --id NAME              worker id (default HOST-PID-RANDOM)
  --verbose              log every tile started and stored
${NATS_OPTIONS_HELP}`;

export async function workerCommand(argv: string[]): Promise<number> {
  const { values } = parseCommand("worker", argv, {
    ...NATS_FLAGS,
    device: { type: "string" },
    concurrency: { type: "string" },
    threads: { type: "string" },
    "cache-dir": { type: "string" },
    "drain-timeout": { type: "string" },
    id: { type: "string" },
    verbose: { type: "boolean" },
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
  const drainMs = (intOption(values["drain-timeout"], "drain-timeout", 0, 86_400) ?? 60) * 1000;
  const workerId = typeof values.id === "string" ? values.id : `${hostname()}-${process.pid}-${randomBytes(2).toString("hex")}`;
  const log = (line: string) => process.stderr.write(`${new Date().toISOString()} [${workerId}] ${line}\n`);

  const nc = await connect(natsConnectionOptions({ ...access, name: `delift-worker ${workerId}` }));
  const jobsKv = await NatsKeyValue.open(nc, JOBS_BUCKET, undefined, access.replicas);
  const workersKv = await NatsKeyValue.open(nc, WORKERS_BUCKET, WORKER_TTL_MS, access.replicas);
  const clusterKv = await NatsKeyValue.open(nc, CLUSTER_BUCKET, undefined, access.replicas);
  const blobs = await NatsBlobStore.open(nc, MODELS_BUCKET, access.replicas);
  const sender = new GrpcResultSender(clusterKv, workerId);
  const models = new ModelCache(blobs, typeof values["cache-dir"] === "string" ? values["cache-dir"] : defaultModelCacheDir(), { device, threads });
  const loop = new WorkerLoop({ workerId, source: NatsTileSource.create(nc), jobsKv, workersKv, models, sender, concurrency, device, log, drainMs, verbose: values.verbose === true });
  loop.start();
  log(`worker ready (${device}, concurrency ${concurrency}), NATS ${access.servers.join(",")}`);

  await new Promise<void>((resolve) => {
    process.once("SIGINT", () => resolve());
    process.once("SIGTERM", () => resolve());
  });
  log("stopping: finishing or handing back the current tile");
  await loop.stop();
  await sender.close();
  await models.dispose();
  await closeNats(nc);
  log(`stopped after ${loop.stats.tilesDone} tiles`);
  return 0;
}
