import { test } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { npyHeader } from "../../common/src/mod.js";
import { runCli } from "../helpers/cli.js";
import { TestCluster } from "../helpers/cluster.js";
import { assertSameBytes, writeSamples } from "../helpers/kernels.js";
import { TINY_MODEL, tempDir } from "../helpers/paths.js";

/**
 * `--embeddings` through a real cluster (nats-server, coordinator and two worker processes on
 * loopback) against the embedded default: the SE kernel on given embeddings (planning ->
 * searching -> selecting, seen by watch and jobs) selects the same records byte for byte; and a
 * sparse utility kernel whose candidates come from given embeddings is computed by the workers'
 * tiles and equals the embedded one byte for byte. Without given embeddings, the SE kernel's samples
 * are embedded by the workers (planning -> embedding -> searching), survive a worker SIGKILLed in
 * the middle of it and select the same records as the embedded default. The exact candidate
 * search runs on the workers (the coordinator's --search-on workers) as search tiles:
 * searching -> candidates -> selecting, the same selection as the embedded default's in-thread search.
 */
const dir = tempDir("delift-scale-cluster-");
test.after(() => dir.cleanup());

const N = 32;
const DIM = 16;
const DATA = writeSamples(join(dir.path, "data.jsonl"), N);
const EMB = join(dir.path, "e.npy");
{
  const values = Float32Array.from({ length: N * DIM }, (_, k) => Math.sin(1.3 * Math.floor(k / DIM) * ((k % DIM) + 1)) + ((k % DIM) === Math.floor(k / DIM) % 5 ? 1.5 : 0));
  writeFileSync(EMB, Buffer.concat([npyHeader("<f4", [N, DIM]), Buffer.from(values.buffer)]));
}
const TILES = ["--tile-columns", "4", "--tile-rows", "8"];

const jobIdOf = (log: string) => {
  const id = log.trim().split("\n")[0];
  assert.match(id, /^j[0-9a-z]+$/, log);
  return id;
};

test("given embeddings on a cluster: the SE selection (searching phase in watch and jobs) and a sparse kernel with searched candidates equal the embedded runs byte for byte; the workers' embeddings stage survives a SIGKILL", async () => {
  const se = ["--data", DATA, "--model", TINY_MODEL, "--kernel-type", "se", "--embeddings", EMB, "--neighbors", "6", "--budget", "0.3", "--optimizer", "lazy"];
  const local = join(dir.path, "embedded-se");
  const embedded = await runCli(["select", ...se, "--out", local, "--quiet", "--store", join(dir.path, "store-se")]);
  assert.is(embedded.code, 0, embedded.log);

  const sparse = ["--data", DATA, "--model", TINY_MODEL, "--embeddings", EMB, "--neighbors", "3", ...TILES];
  const localKernel = join(dir.path, "embedded-kernel");
  const k = await runCli(["kernel", ...sparse, "--out", localKernel, "--quiet", "--store", join(dir.path, "store-k")]);
  assert.is(k.code, 0, k.log);

  const encoded = ["--data", DATA, "--model", TINY_MODEL, "--kernel-type", "se", "--neighbors", "6", "--budget", "0.3", "--optimizer", "lazy", "--embed-tile-tokens", "512"];
  const localEncoded = join(dir.path, "embedded-encoded");
  const e = await runCli(["select", ...encoded, "--out", localEncoded, "--quiet", "--store", join(dir.path, "store-enc")]);
  assert.is(e.code, 0, e.log);

  const cluster = await TestCluster.start({ workers: 2, coordinatorArgs: ["--search-on", "workers"] });
  try {
    const env = { DELIFT_COORDINATOR: `127.0.0.1:${cluster.grpcPort}`, DELIFT_TOKEN: cluster.token };
    const submitted = await runCli(["submit", ...se], env);
    assert.is(submitted.code, 0, submitted.log);
    const job = jobIdOf(submitted.log);
    const watched = await runCli(["watch", job, "--plain"], env);
    assert.is(watched.code, 0, watched.log);
    assert.match(watched.log, new RegExp(`job ${job} done`));
    const jobs = await runCli(["jobs"], env);
    assert.match(jobs.log, /JOB\s+STATE\s+STAGE\s+TILES\s+PHASE/);
    // The exact search ran on the workers as one search tile (32 queries x 32 rows).
    assert.match(jobs.log, new RegExp(`${job}\\s+done\\s+instruction\\s+1/1\\s+-`));
    const out = join(dir.path, "cluster-se");
    assert.is((await runCli(["result", job, "--out", out], env)).code, 0);
    assertSameBytes(readFileSync(join(out, "selected.jsonl")), readFileSync(join(local, "selected.jsonl")), "cluster vs embedded SE selection");
    const story = await runCli(["story", job], env);
    assert.match(story.log, /planning -> searching/);
    assert.match(story.log, /searching -> candidates/);
    assert.match(story.log, /candidates -> selecting/);
    assert.ok((await cluster.status(job)).workers.reduce((n, w) => n + w.tiles, 0) === 1, "a worker computed the search tile");

    const kernelJob = await runCli(["submit", "--kernel-only", "--wait", ...sparse], env);
    assert.is(kernelJob.code, 0, kernelJob.log);
    const kernelOut = join(dir.path, "cluster-kernel");
    assert.is((await runCli(["result", jobIdOf(kernelJob.log), "--out", kernelOut], env)).code, 0);
    assertSameBytes(readFileSync(join(kernelOut, "kernel.bin")), readFileSync(join(localKernel, "kernel.bin")), "cluster vs embedded sparse kernel (candidates from given embeddings)");
    const workers = (await cluster.status(jobIdOf(kernelJob.log))).workers;
    assert.ok(workers.reduce((n, w) => n + w.tiles, 0) > 0, "the workers computed the kernel's tiles");

    // The encoder on the workers: w1 is SIGKILLed as soon as it starts an embed tile; its tile comes back after the ack wait.
    const sub = await runCli(["submit", ...encoded, "--ack-wait", "3"], env);
    assert.is(sub.code, 0, sub.log);
    const encJob = jobIdOf(sub.log);
    await cluster.workers.get("w1")!.waitFor(new RegExp(`job ${encJob}: tile [0-9a-f]{12} started`), 60_000);
    cluster.workers.get("w1")!.kill("SIGKILL");
    const done = await cluster.waitForJob(encJob, (s) => s.state === "done" || s.state === "failed");
    assert.is(done.state, "done", done.error);
    // Embed tiles over the N samples, then the search tile's N queries.
    assert.ok(done.tilesTotal > 3 && done.pairsTotal === 2 * N, `embed tiles over the ${N} samples and a search tile (${done.tilesTotal} tiles, ${done.pairsTotal} samples)`);
    const encOut = join(dir.path, "cluster-encoded");
    assert.is((await runCli(["result", encJob, "--out", encOut], env)).code, 0);
    assertSameBytes(readFileSync(join(encOut, "selected.jsonl")), readFileSync(join(localEncoded, "selected.jsonl")), "cluster (workers' embeddings) vs embedded SE selection");
    const encStory = await runCli(["story", encJob], env);
    assert.match(encStory.log, /planning -> embedding/);
    assert.match(encStory.log, /embedding -> searching/);
    assert.match(encStory.log, /searching -> candidates/);
    assert.match(encStory.log, /worker w2/);
  } finally {
    await cluster.stop();
  }
});

test.run();
