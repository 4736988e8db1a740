/**
 * RSS benchmark (issue 7 target: coordinator RSS after 20 consecutive small jobs within 10% of its
 * RSS after the first).
 *
 * A cluster on loopback: nats-server, the coordinator in this process (NATS queue and buckets,
 * gRPC server, as `delift coordinator` wires them), one `delift worker` process. 20 selection jobs
 * in a row, each over another window of 6 GSM8K samples (each computes some tiles, reuses others
 * from the tile store). After each job has ended and released its stream, records and thread, a
 * full GC runs and this process's RSS is read. Baseline: the RSS after the first job.
 *   node --expose-gc dist/bench/runtime/rss.js     (BENCH_JOBS, default 20; nats-server on the PATH)
 */
import { readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { CLUSTER_BUCKET, closeNats, COORDINATOR_KEY, CoordinatorRecord, JOBS_BUCKET, MODELS_BUCKET, NatsBlobStore, NatsKeyValue, NatsTileQueue, silentLogger, WORKER_TTL_MS, WORKERS_BUCKET } from "../../common/src/mod.js";
import { Coordinator, parseJobSpec, startGrpcServer, TileStore } from "../../coordinator/src/mod.js";
import { CliProcess } from "../../test/helpers/cluster.js";
import { NatsServer } from "../../test/helpers/nats-server.js";
import { ROOT } from "../common/paths.js";
import { fmt, row } from "../common/stats.js";

const jobs = Number(process.env.BENCH_JOBS ?? 20);
const TARGET = 1.1;

const gc = (globalThis as { gc?: () => void }).gc;

async function settle(): Promise<number> {
  for (let k = 0; k < 3; k++) {
    gc?.();
    await new Promise((r) => setTimeout(r, 100));
  }
  return process.memoryUsage().rss;
}

async function main(): Promise<void> {
  if (!gc) throw new Error("run with node --expose-gc");
  const dir = await mkdtemp(join(tmpdir(), "delift-bench-rss-"));
  const lines = readFileSync(join(ROOT, "test", "fixtures", "gsm8k-32.jsonl"), "utf8").split("\n").filter(Boolean);
  const nats = await NatsServer.start();
  const nc = await connect({ servers: nats.url });
  const queue = await NatsTileQueue.create(nc);
  const jobsKv = await NatsKeyValue.open(nc, JOBS_BUCKET);
  const clusterKv = await NatsKeyValue.open(nc, CLUSTER_BUCKET);
  const workersKv = await NatsKeyValue.open(nc, WORKERS_BUCKET, WORKER_TTL_MS);
  const log = silentLogger();
  const coordinator = await Coordinator.start({ queue, jobsKv, blobs: await NatsBlobStore.open(nc, MODELS_BUCKET), store: await TileStore.open(join(dir, "tiles")), dataDir: join(dir, "data"), log });
  const server = await startGrpcServer({ coordinator, address: "127.0.0.1:0", token: "bench", workersKv, log });
  await clusterKv.put(COORDINATOR_KEY, CoordinatorRecord.encode({ address: `127.0.0.1:${server.port}`, startedAt: Date.now(), pid: process.pid }));
  const worker = CliProcess.spawn("worker", ["worker", "--nats", nats.url, "--id", "w1", "--threads", "2", "--cache-dir", join(dir, "cache")], { DELIFT_TOKEN: "bench" });
  await worker.waitFor(/worker ready/);
  console.log(`rss bench: ${jobs} consecutive selection jobs of 6 samples (tiny model) on a loopback cluster (nats-server, this process as coordinator, one worker process); load average ${fmt(loadavg()[0])}`);
  const rss: number[] = [];
  const started = performance.now();
  try {
    for (let k = 0; k < jobs; k++) {
      const data = join(dir, `data-${k}.jsonl`);
      const at = (k * 3) % (lines.length - 6);
      writeFileSync(data, lines.slice(at, at + 6).join("\n") + "\n");
      const spec = parseJobSpec({ kind: "select", data, model: join(ROOT, "models", "tiny"), selection: { budget: 2 }, scoring: { tile: { columns: 3, rows: 6 } } }, "bench");
      const id = await coordinator.submit(spec);
      await coordinator.whenSettled(id);
      const state = coordinator.status(id).state;
      if (state !== "done") throw new Error(`job ${k + 1} ended ${state}: ${coordinator.status(id).error}`);
      rss.push(await settle());
    }
  } finally {
    worker.kill("SIGKILL");
    await worker.wait();
    await server.close();
    await coordinator.close();
    await queue.close();
    await closeNats(nc);
    await nats.cleanup();
    await rm(dir, { recursive: true, force: true });
  }
  const mb = (b: number) => `${fmt(b / 2 ** 20, 1)} MiB`;
  const ratio = rss[rss.length - 1] / rss[0];
  row("jobs", `${jobs} in ${fmt((performance.now() - started) / 1000, 1)} s`);
  row("RSS after job 1 (baseline)", mb(rss[0]));
  row(`RSS after job ${jobs}`, mb(rss[rss.length - 1]));
  row("largest RSS after any job", mb(Math.max(...rss)));
  row("after the last / after the first", `${fmt(ratio, 3)} vs <= ${TARGET}: ${ratio <= TARGET ? "met" : "MISSED"}`);
  console.log(JSON.stringify({ bench: "rss", jobs, loadAverage: loadavg()[0], rssBytes: rss, ratio, target: TARGET, met: ratio <= TARGET }));
}

void main().catch((err) => {
  console.error(err);
  process.exit(1);
});
