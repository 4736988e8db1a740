/**
 * The bus's overhead: the same dense kernel job (a) on the embedded default (one process: one tile
 * at a time on 2 onnxruntime threads, and two tiles at a time on 1 thread each; the faster is the
 * baseline) and (b) on a cluster on loopback (nats-server, a coordinator process, 2 worker
 * processes with 1 thread each), in one invocation on the same 2 cores. Each run
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

    // The embedded default in both shapes the cluster could be compared with; the faster one is the baseline.
    const embeddedRun = (name: string, args: string[]) => {
      const r = spawnSync(process.execPath, [join(ROOT, "bin", "delift.js"), "kernel", "--data", data, "--model", MODEL, "--out", join(dir.path, `k-${name}`), "--store", join(dir.path, `tiles-${name}`), ...args, "--quiet"], { encoding: "utf8" });
      const m = /(\d+) prompts scored in ([\d.]+) s/.exec(r.stderr);
      if (r.status !== 0 || !m) throw new Error(`embedded run failed:\n${r.stderr}`);
      return Number(m[2]);
    };
    const oneByTwo = embeddedRun("embedded", ["--threads", "2", "--concurrency", "1"]);
    const twoByOne = embeddedRun("embedded-2x1", ["--threads", "1", "--concurrency", "2"]);
    const embeddedSeconds = Math.min(oneByTwo, twoByOne);

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
    row("embedded: 1 tile at a time x 2 threads", `${fmt(oneByTwo, 1)} s, ${fmt(pairs / oneByTwo, 1)} pairs/s`);
    row("embedded: 2 tiles at a time x 1 thread", `${fmt(twoByOne, 1)} s, ${fmt(pairs / twoByOne, 1)} pairs/s`);
    row("cluster: NATS + gRPC, 2 workers x 1 thread", `${fmt(clusterSeconds, 1)} s, ${fmt(clusterRate, 1)} pairs/s`);
    row("ratio cluster / faster embedded (target >= 0.95)", fmt(clusterRate / embeddedRate, 3));
    row("tile messages out, bytes per pair", fmt(status.tileBytes / pairs, 0));
    row("results in, bytes per pair", fmt(status.resultBytes / pairs, 1));
    console.log(JSON.stringify({ bench: "cluster", samples: SAMPLES, embeddedPairsPerSecond: embeddedRate, clusterPairsPerSecond: clusterRate, ratio: clusterRate / embeddedRate, tileBytesPerPair: status.tileBytes / pairs, resultBytesPerPair: status.resultBytes / pairs }));
  } finally {
    dir.cleanup();
  }
}

await main();
