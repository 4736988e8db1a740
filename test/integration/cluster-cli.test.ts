import { test } from "uvu";
import * as assert from "uvu/assert";
import * as grpc from "@grpc/grpc-js";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isGrpcStatus } from "../../common/src/rpc/client.js";
import type { WorkerInfo } from "../../common/src/rpc/types.js";
import { runCli } from "../helpers/cli.js";
import { CliProcess, TestCluster } from "../helpers/cluster.js";
import { holdPointsMissing, waitForHold } from "../helpers/hold-points.js";
import { assertMatchesReference, assertSameBytes, embeddedKernel, writeSamples } from "../helpers/kernels.js";
import { TINY_MODEL, tempDir } from "../helpers/paths.js";

/**
 * The cluster as a user drives it from the CLI (README, "Cluster quick start" and "Commands"):
 * submit and its --wait / --detach / --kernel-only / --job, watch's exit codes, jobs, workers
 * (heartbeats expire), cancel, result, the task and continual stages, and the bearer token on
 * every call.
 */
const dir = tempDir("delift-cluster-cli-");
const DATA = writeSamples(join(dir.path, "gsm8k-8.jsonl"), 8);
const lines = readFileSync(DATA, "utf8").trim().split("\n");
const TILES = ["--tile-columns", "2", "--tile-rows", "4"];

test.after(() => dir.cleanup());

function cli(cluster: TestCluster, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; log: string }> {
  return runCli(args, { DELIFT_COORDINATOR: `127.0.0.1:${cluster.grpcPort}`, DELIFT_TOKEN: cluster.token, ...env });
}

const jobIdOf = (log: string) => {
  const id = log.trim().split("\n")[0];
  assert.match(id, /^j[0-9a-z]+$/);
  return id;
};

async function workers(cluster: TestCluster): Promise<WorkerInfo[]> {
  const c = cluster.client();
  try {
    return (await c.unary<{ workers: WorkerInfo[] }>("listWorkers", {})).workers;
  } finally {
    c.close();
  }
}

const ids = (out: string) => readFileSync(join(out, "selected.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l).id as string);

test("the cluster from the CLI: submit (--wait, --detach, --kernel-only, --job), watch's exit codes, jobs, workers, cancel, result, task and continual stages, the bearer token on every call", async () => {
  const cluster = await TestCluster.start({ workers: 2 });
  try {
    // A worker killed at once: its heartbeat is listed until it expires (30 s), then it is gone.
    const doomed = await cluster.startWorker("doomed");
    await pollUntil(cluster, (list) => list.some((w) => w.workerId === "doomed"), "the doomed worker's first heartbeat");
    doomed.kill("SIGKILL");
    await doomed.wait();
    cluster.workers.delete("doomed");
    const listed = JSON.parse((await cli(cluster, ["workers", "--json"])).log) as WorkerInfo[];
    assert.equal(listed.map((w) => w.workerId).sort(), ["doomed", "w1", "w2"]);

    // submit (waits until planned) + watch: exit 0, progress lines.
    const submitted = await cli(cluster, ["submit", "--data", DATA, "--model", TINY_MODEL, "--budget", "0.5", ...TILES]);
    assert.is(submitted.code, 0, submitted.log);
    const job = jobIdOf(submitted.log);
    const watched = await cli(cluster, ["watch", job, "--plain"]);
    assert.is(watched.code, 0, watched.log);
    assert.match(watched.log, /pairs\/s/);
    assert.match(watched.log, new RegExp(`job ${job} done`));
    const jobs = await cli(cluster, ["jobs"]);
    assert.match(jobs.log, new RegExp(`${job}\\s+done\\s+instruction\\s+10/10`));
    const out = join(dir.path, "result");
    const result = await cli(cluster, ["result", job, "--out", out]);
    assert.is(result.code, 0, result.log);
    assert.is(ids(out).length, 4);
    assert.ok(existsSync(join(out, "report.html")));

    // --kernel-only --wait: exit 0 when the job is done; the result is the kernel, byte for byte the embedded one.
    const kernelJob = await cli(cluster, ["submit", "--kernel-only", "--wait", "--data", DATA, "--model", TINY_MODEL, ...TILES]);
    assert.is(kernelJob.code, 0, kernelJob.log);
    const kernelId = jobIdOf(kernelJob.log);
    assert.is((await cluster.status(kernelId)).state, "done", "--wait returned before the job ended");
    const kernelOut = join(dir.path, "kernel-result");
    assert.is((await cli(cluster, ["result", kernelId, "--out", kernelOut])).code, 0);
    assert.equal(readdirSync(kernelOut).sort(), ["kernel.bin", "kernel.json", "kernel.parquet"]);
    const kernelFiles = new Map(["kernel.bin", "kernel.json"].map((f) => [f, readFileSync(join(kernelOut, f))]));
    assertSameBytes(kernelFiles.get("kernel.bin")!, await embeddedKernel(DATA, { tile: { columns: 2, rows: 4 } }), "cluster vs embedded kernel");
    await assertMatchesReference(kernelFiles, "cluster --kernel-only");

    // The bearer token: result, upload, cancel and submit refused with a wrong or a missing token (CLI and gRPC).
    for (const [what, token] of [["a wrong token", "not-the-token"], ["no token", ""]] as const) {
      const out = join(dir.path, `refused-${token || "none"}`);
      const result = await cli(cluster, ["result", kernelId, "--out", out], { DELIFT_TOKEN: token });
      assert.is.not(result.code, 0, `result with ${what}`);
      assert.match(result.log, /UNAUTHENTICATED|unauthenticated|token/i);
      assert.not.ok(existsSync(out), `result with ${what} wrote ${out}`);
      const cancel = await cli(cluster, ["cancel", kernelId], { DELIFT_TOKEN: token });
      assert.is.not(cancel.code, 0, `cancel with ${what}`);
      const submit = await cli(cluster, ["submit", "--data", DATA, "--model", TINY_MODEL, "--budget", "2"], { DELIFT_TOKEN: token });
      assert.is.not(submit.code, 0, `submit with ${what}`);

      const c = cluster.client(token);
      const upload = await new Promise<unknown>((resolve) => {
        const stream = (c.raw.uploadTileResult as (md: grpc.Metadata, cb: (err: unknown) => void) => grpc.ClientWritableStream<object>).call(c.raw, c.metadata(), (err) => resolve(err));
        stream.write({ jobId: kernelId, tileId: "a".repeat(64), attempt: 1, workerId: "evil", offset: 0, payload: new Uint8Array(8), totalValues: 2 });
        stream.end();
      });
      assert.ok(isGrpcStatus(upload, grpc.status.UNAUTHENTICATED), `upload with ${what}: ${upload}`);
      const cancelled = await c.unary("cancelJob", { jobId: kernelId }).catch((e) => e);
      assert.ok(isGrpcStatus(cancelled, grpc.status.UNAUTHENTICATED), `cancelJob with ${what}: ${cancelled}`);
      c.close();
    }
    assert.is((await cluster.status(kernelId)).state, "done", "the refused calls changed nothing");

    // --job FILE on the cluster, task stage (FLMI): the same selection as delift select with the same job file.
    const target = join(dir.path, "q.jsonl");
    writeFileSync(target, lines.slice(0, 3).map((l) => JSON.stringify({ ...JSON.parse(l), id: `q-${JSON.parse(l).id}` })).join("\n") + "\n");
    const jobFile = join(dir.path, "task-job.json");
    writeFileSync(jobFile, JSON.stringify({ data: DATA, model: TINY_MODEL, target, selection: { stage: "task", budget: "2", seed: 3 }, scoring: { tile: { columns: 2, rows: 4 } } }));
    const task = await cli(cluster, ["submit", "--job", jobFile, "--wait"]);
    assert.is(task.code, 0, task.log);
    const taskOut = join(dir.path, "task-result");
    assert.is((await cli(cluster, ["result", jobIdOf(task.log), "--out", taskOut])).code, 0);
    const taskReport = JSON.parse(readFileSync(join(taskOut, "report.json"), "utf8"));
    assert.is(taskReport.settings.objective, "flmi");
    assert.equal([taskReport.secondKernel.nRows, taskReport.secondKernel.nCols], [3, 8]);
    const taskLocal = join(dir.path, "task-local");
    const local = await runCli(["select", "--job", jobFile, "--out", taskLocal, "--store", join(dir.path, "tiles-local"), "--quiet"]);
    assert.is(local.code, 0, local.log);
    assert.equal(ids(taskOut), ids(taskLocal), "cluster and embedded select the same samples (FLMI)");

    // Continual stage (FLCG) with --existing-ids on the cluster, against the embedded default.
    const used = join(dir.path, "used.txt");
    writeFileSync(used, lines.slice(0, 3).map((l) => JSON.parse(l).id).join("\n") + "\n");
    const continualFlags = ["--data", DATA, "--model", TINY_MODEL, "--stage", "continual", "--existing-ids", used, "--budget", "2", ...TILES];
    const cont = await cli(cluster, ["submit", "--wait", ...continualFlags]);
    assert.is(cont.code, 0, cont.log);
    const contOut = join(dir.path, "continual-result");
    assert.is((await cli(cluster, ["result", jobIdOf(cont.log), "--out", contOut])).code, 0);
    assert.is(JSON.parse(readFileSync(join(contOut, "report.json"), "utf8")).settings.objective, "flcg");
    const contLocal = join(dir.path, "continual-local");
    assert.is((await runCli(["select", ...continualFlags, "--out", contLocal, "--store", join(dir.path, "tiles-local"), "--quiet"])).code, 0);
    assert.equal(ids(contOut), ids(contLocal), "cluster and embedded select the same samples (FLCG)");

    // Bad input: plain submit reports it (exit 2); --detach returns at once (exit 0) and watch then exits 1.
    const bad = await cli(cluster, ["submit", "--data", DATA, "--model", TINY_MODEL, "--budget", "9"]);
    assert.is(bad.code, 2, bad.log);
    assert.match(bad.log, /budget 9 out of range/);
    const detached = await cli(cluster, ["submit", "--detach", "--data", DATA, "--model", TINY_MODEL, "--budget", "9"]);
    assert.is(detached.code, 0, detached.log);
    const failedWatch = await cli(cluster, ["watch", jobIdOf(detached.log), "--plain"]);
    assert.is(failedWatch.code, 1, failedWatch.log);
    assert.match(failedWatch.log, /failed: .*budget 9 out of range/);

    // Cancel a running job: watch exits 3.
    const long = await cli(cluster, ["submit", "--data", DATA, "--model", TINY_MODEL, "--budget", "2", "--tile-columns", "1", "--tile-rows", "2", "--max-deliver", "2"]);
    const longJob = jobIdOf(long.log);
    const cancel = await cli(cluster, ["cancel", longJob]);
    assert.is(cancel.code, 0, cancel.log);
    assert.match(cancel.log, /cancelled/);
    const after = await cli(cluster, ["watch", longJob, "--plain"]);
    assert.is(after.code, 3, after.log);

    // The dead worker's heartbeat expires; the live ones stay.
    const gone = await pollUntil(cluster, (list) => !list.some((w) => w.workerId === "doomed"), "the killed worker's heartbeat to expire");
    assert.equal(gone.map((w) => w.workerId).sort(), ["w1", "w2"]);
    const finalList = JSON.parse((await cli(cluster, ["workers", "--json"])).log) as WorkerInfo[];
    assert.equal(finalList.map((w) => w.workerId).sort(), ["w1", "w2"]);
  } finally {
    await cluster.stop();
  }
});

async function pollUntil(cluster: TestCluster, done: (list: WorkerInfo[]) => boolean, what: string): Promise<WorkerInfo[]> {
  const deadline = Date.now() + 90_000;
  for (;;) {
    const list = await workers(cluster);
    if (done(list)) return list;
    if (Date.now() > deadline) throw new Error(`${what}: not within 90 s; workers ${JSON.stringify(list)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const missing = await holdPointsMissing();
if (missing) process.stdout.write(`\n  NOT RUN (${missing}): delift result held at writing and interrupted; it runs as soon as the build has DELIFT_HOLD_AT.\n`);
(missing ? test.skip : test)("delift result held at writing (DELIFT_HOLD_AT): Ctrl-C gives exit 130, no output directory, no temporary files", async () => {
  const cluster = await TestCluster.start({ workers: 1 });
  try {
    const job = jobIdOf((await cli(cluster, ["submit", "--wait", "--data", DATA, "--model", TINY_MODEL, "--budget", "2", ...TILES])).log);
    const scene = join(dir.path, "result-interrupt");
    const tmp = join(scene, "tmp");
    mkdirSync(tmp, { recursive: true });
    const out = join(scene, "out");
    const p = CliProcess.spawn("result", ["result", job, "--out", out], { DELIFT_COORDINATOR: `127.0.0.1:${cluster.grpcPort}`, DELIFT_TOKEN: cluster.token, DELIFT_HOLD_AT: "writing", TMPDIR: tmp });
    await waitForHold(p, "writing");
    p.kill("SIGINT");
    assert.is(await p.wait(), 130, p.log);
    assert.not.ok(existsSync(out));
    assert.equal(readdirSync(scene).sort(), ["tmp"], "no temporary sibling of the output directory");
    assert.equal(readdirSync(tmp), []);
  } finally {
    await cluster.stop();
  }
});

test.run();
