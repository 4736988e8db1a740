/**
 * The bus's overhead: the same dense kernel job (a) on the embedded default (one process, one
 * worker with 2 onnxruntime threads) and (b) on a cluster on loopback (nats-server, a coordinator
 * process, 2 worker processes with 1 thread each), in one invocation on the same 2 cores. Each run
 * starts from an empty tile store. Prints both rates (pairs/s over the job's elapsed time) and
 * their ratio, and the payload bytes crossing the bus per pair (tile messages out, results in).
 */
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TestCluster } from "../../test/helpers/cluster.js";
import { tempDir } from "../../test/helpers/paths.js";
import { ROOT } from "../common/paths.js";
import { fmt, row } from "../common/stats.js";

const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 32);
const MODEL = join(ROOT, "models", "tiny");

async function main(): Promise<void> {
  const dir = tempDir("delift-bench-cluster-");
  try {
    const data = join(dir.path, "data.jsonl");
    writeFileSync(data, readFileSync(join(ROOT, "test", "fixtures", "gsm8k-32.jsonl"), "utf8").split("\n").filter(Boolean).slice(0, SAMPLES).join("\n") + "\n");
    const pairs = SAMPLES * SAMPLES;

    const embedded = spawnSync(process.execPath, [join(ROOT, "bin", "delift.js"), "kernel", "--data", data, "--model", MODEL, "--out", join(dir.path, "k-embedded"), "--store", join(dir.path, "tiles-embedded"), "--threads", "2", "--quiet"], { encoding: "utf8" });
    const m = /(\d+) prompts scored in ([\d.]+) s/.exec(embedded.stderr);
    if (embedded.status !== 0 || !m) throw new Error(`embedded run failed:\n${embedded.stderr}`);
    const embeddedSeconds = Number(m[2]);

    const cluster = await TestCluster.start({ workers: 0 });
    let status;
    try {
      await Promise.all([cluster.startWorker("w1"), cluster.startWorker("w2")]);
      const job = await cluster.submit({ kind: "kernel", data, model: MODEL });
      status = await cluster.waitForJob(job, (s) => s.state === "done", 3_600_000);
      const embeddedKernel = readFileSync(join(dir.path, "k-embedded", "kernel.bin"));
      const clusterKernel = (await cluster.result(job)).get("kernel.bin")!;
      row("kernels byte-identical (embedded vs cluster)", String(Buffer.compare(embeddedKernel, clusterKernel) === 0));
    } finally {
      await cluster.stop();
    }
    const clusterSeconds = status.elapsedSeconds;
    const embeddedRate = pairs / embeddedSeconds;
    const clusterRate = pairs / clusterSeconds;
    console.log(`cluster: ${SAMPLES} samples (${pairs} pairs + ${SAMPLES} baselines), dense kernel job, same 2 cores, empty tile stores`);
    row("embedded: 1 worker x 2 threads", `${fmt(embeddedSeconds, 1)} s, ${fmt(embeddedRate, 1)} pairs/s`);
    row("cluster: NATS + gRPC, 2 workers x 1 thread", `${fmt(clusterSeconds, 1)} s, ${fmt(clusterRate, 1)} pairs/s`);
    row("ratio cluster / embedded pairs/s (target >= 0.95)", fmt(clusterRate / embeddedRate, 3));
    row("tile messages out, bytes per pair", fmt(status.tileBytes / pairs, 0));
    row("results in, bytes per pair", fmt(status.resultBytes / pairs, 1));
    console.log(JSON.stringify({ bench: "cluster", samples: SAMPLES, embeddedPairsPerSecond: embeddedRate, clusterPairsPerSecond: clusterRate, ratio: clusterRate / embeddedRate, tileBytesPerPair: status.tileBytes / pairs, resultBytesPerPair: status.resultBytes / pairs }));
  } finally {
    dir.cleanup();
  }
}

await main();
