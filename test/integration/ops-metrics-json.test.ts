import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawn } from "node:child_process";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import type { JobStatusMessage, WorkerInfo } from "../../common/src/rpc/types.js";
import { CliProcess, TestCluster } from "../helpers/cluster.js";
import { writeSamples } from "../helpers/kernels.js";
import { freePort } from "../helpers/nats-server.js";
import { ROOT, TINY_MODEL, tempDir } from "../helpers/paths.js";

/**
 * Issue 11 items 3 and 6 against a real cluster (nats-server, a coordinator and two worker
 * processes): Prometheus metrics scraped during a job and after it match the job's own tile
 * counts (coordinator and workers), a bad --metrics address is a clear error, and submit, watch,
 * jobs, workers, result and cancel with --json print parseable, documented objects, errors as one
 * JSON object on stderr, with the usual exit codes.
 */
const dir = tempDir("delift-ops-metrics-");
const DATA = writeSamples(join(dir.path, "samples-12.jsonl"), 12);
const OTHER = writeSamples(join(dir.path, "samples-10.jsonl"), 10);
const TILES = ["--tile-columns", "2", "--tile-rows", "4"];

test.after(() => dir.cleanup());

type Run = { code: number | null; stdout: string; stderr: string };

/** The CLI with stdout and stderr apart (JSON goes to one, errors and notices to the other). */
function delift(args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [join(ROOT, "bin", "delift.js"), ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    p.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

type Sample = { name: string; labels: Record<string, string>; value: number };

/** The Prometheus text format, parsed (one sample a line; HELP/TYPE lines skipped). */
function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

async function scrape(port: number): Promise<Sample[]> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.is(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /text\/plain/);
  return parseMetrics(await res.text());
}

/** The value of one series (labels must all match); undefined when absent. */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

function sum(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
}

const TILE_STATES = ["planned", "queued", "running", "stored", "failed"];

function tilesOf(samples: Sample[], job: string): Record<string, number> {
  return Object.fromEntries(TILE_STATES.map((s) => [s, value(samples, "delift_job_tiles", { job, state: s }) ?? 0]));
}

const lines = (text: string) => text.trim().split("\n").filter((l) => l !== "");

test("--metrics with a bad address: a clear error naming the flag, exit 2, nothing started", async () => {
  const nats = ["--nats", "nats://127.0.0.1:1"];
  const bad = await delift(["worker", ...nats, "--metrics", "not-an-address"], {});
  assert.is(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /--metrics not-an-address: expected HOST:PORT/);
  const range = await delift(["coordinator", ...nats, "--grpc", "127.0.0.1:0", "--data-dir", join(dir.path, "unused"), "--metrics", "127.0.0.1:70000"], {});
  assert.is(range.code, 2, range.stderr);
  assert.match(range.stderr, /--metrics 127\.0\.0\.1:70000: port 70000 is out of range/);
  const taken = createServer();
  await new Promise<void>((r) => taken.listen(0, "127.0.0.1", () => r()));
  const port = (taken.address() as { port: number }).port;
  try {
    const inUse = await delift(["worker", ...nats, "--metrics", `127.0.0.1:${port}`], {});
    assert.is(inUse.code, 2, inUse.stderr);
    assert.match(inUse.stderr, new RegExp(`--metrics 127\\.0\\.0\\.1:${port}: cannot serve metrics there: the address is already in use`));
    assert.not.match(inUse.stderr, /\n\s+at /, "a stack trace for a bad flag");
  } finally {
    taken.close();
  }
});

test("metrics during and after a job match its tile counts; --json on submit, watch, jobs, workers, result, cancel; JSON errors", async () => {
  const coordinatorPort = await freePort();
  const cluster = await TestCluster.start({ workers: 0, coordinatorArgs: ["--metrics", `127.0.0.1:${coordinatorPort}`] });
  const workerPorts = [await freePort(), await freePort()];
  const env = { DELIFT_COORDINATOR: `127.0.0.1:${cluster.grpcPort}`, DELIFT_TOKEN: cluster.token };
  try {
    await cluster.startWorker("w1", ["--metrics", `127.0.0.1:${workerPorts[0]}`]);
    await cluster.startWorker("w2", ["--metrics", `127.0.0.1:${workerPorts[1]}`]);

    // submit --detach --json: one object, the job's status.
    const submitted = await delift(["submit", "--detach", "--json", "--data", DATA, "--model", TINY_MODEL, "--budget", "0.5", ...TILES], env);
    assert.is(submitted.code, 0, submitted.stderr);
    assert.is(lines(submitted.stdout).length, 1, submitted.stdout);
    const first = JSON.parse(submitted.stdout) as JobStatusMessage;
    const job = first.jobId;
    assert.match(job, /^j[0-9a-z]+$/);
    assert.ok(["planning", "scoring", "selecting", "writing", "done"].includes(first.state), first.state);

    // watch --json while scraping: every scrape is consistent with the plan.
    const watching = delift(["watch", job, "--json"], env);
    let ended = false;
    void watching.then(() => (ended = true));
    let midJob = 0;
    while (!ended) {
      const m = await scrape(coordinatorPort);
      const total = value(m, "delift_job_tiles_planned_total", { job });
      if (total !== undefined && total > 0) {
        const t = tilesOf(m, job);
        const inPlay = Object.values(t).reduce((a, b) => a + b, 0);
        if (value(m, "delift_job_state", { job, state: "scoring" }) === 1) {
          assert.is(inPlay, total, `tiles by state ${JSON.stringify(t)} do not add up to the plan's ${total}`);
          if (t.stored > 0 && t.stored < total) midJob++;
        }
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    const watched = await watching;
    assert.is(watched.code, 0, watched.stderr);
    const updates = lines(watched.stdout).map((l) => JSON.parse(l) as JobStatusMessage);
    assert.ok(updates.length >= 1);
    for (const u of updates) assert.is(u.jobId, job);
    for (let k = 1; k < updates.length; k++) assert.ok(updates[k].tilesDone >= updates[k - 1].tilesDone, "tilesDone went down between updates");
    const final = updates[updates.length - 1];
    assert.is(final.state, "done");
    assert.is(final.tilesDone, final.tilesTotal);
    for (const key of ["jobId", "state", "stage", "tilesTotal", "tilesDone", "tilesReused", "pairsTotal", "pairsDone", "pairsPerSecond", "etaSeconds", "redeliveries", "workers", "error", "elapsedSeconds", "createdAt", "tileBytes", "resultBytes", "failedDuring"]) {
      assert.ok(key in final, `watch --json lacks the documented field ${key}`);
    }

    // After the job: the coordinator's metrics are the job's counts.
    const status = await cluster.status(job);
    const computed = status.tilesTotal - status.tilesReused;
    assert.ok(computed > 0);
    const after = await scrape(coordinatorPort);
    assert.equal(tilesOf(after, job), { planned: 0, queued: 0, running: 0, stored: status.tilesTotal, failed: 0 });
    assert.is(value(after, "delift_job_tiles_planned_total", { job }), status.tilesTotal);
    assert.is(value(after, "delift_job_pairs_planned_total", { job }), status.pairsTotal);
    assert.is(value(after, "delift_job_pairs_done", { job }), status.pairsDone);
    assert.is(value(after, "delift_job_state", { job, state: "done" }), 1);
    assert.is(value(after, "delift_job_state", { job, state: "scoring" }), 0);
    assert.is(value(after, "delift_tiles_stored_total"), computed);
    assert.is(value(after, "delift_tile_seconds_count"), computed);
    assert.is(value(after, "delift_tile_transitions_total", { from: "running", to: "stored" }), computed);
    assert.is(value(after, "delift_bytes_total", { direction: "down" }), status.tileBytes);
    assert.is(value(after, "delift_bytes_total", { direction: "up" }), status.resultBytes);
    assert.is(value(after, "delift_job_redeliveries", { job }), status.redeliveries);
    assert.is(value(after, "delift_task_seconds_count", { kind: "select" }), 1);
    assert.is(value(after, "delift_tasks_running", { kind: "select" }), 0);
    assert.ok((value(after, "process_resident_memory_bytes", { process: "coordinator" }) ?? 0) > 0, "no RSS");
    assert.ok(value(after, "nodejs_eventloop_lag_p99_seconds") !== undefined, "no event-loop delay");
    // ... and the workers' metrics add up to the same tiles and pairs.
    const workerMetrics = await Promise.all(workerPorts.map(scrape));
    assert.is(workerMetrics.reduce((a, m) => a + sum(m, "delift_worker_tiles_total", { outcome: "stored" }), 0), computed);
    assert.is(status.tilesReused, 0, "a fresh tile store reused tiles");
    assert.is(workerMetrics.reduce((a, m) => a + sum(m, "delift_worker_pairs_total"), 0), status.pairsDone);
    assert.is(workerMetrics.reduce((a, m) => a + sum(m, "delift_worker_bytes_total", { direction: "up" }), 0), status.resultBytes);
    for (const [k, m] of workerMetrics.entries()) {
      assert.is(value(m, "delift_worker_tiles_running"), 0);
      assert.is(value(m, "delift_worker_slots"), 1);
      assert.ok(m.every((s) => s.name.startsWith("delift_worker_") || s.labels.worker === `w${k + 1}`), "a worker's series carry its id");
    }
    process.stdout.write(`  metrics: ${midJob} scrapes caught the job mid-scoring\n`);

    // jobs --json and workers --json: arrays of the documented objects.
    const jobs = await delift(["jobs", "--json"], env);
    assert.is(jobs.code, 0, jobs.stderr);
    const listed = (JSON.parse(jobs.stdout) as JobStatusMessage[]).find((j) => j.jobId === job);
    assert.is(listed?.state, "done");
    assert.is(listed?.tilesDone, status.tilesTotal);
    const workers = await delift(["workers", "--json"], env);
    assert.is(workers.code, 0, workers.stderr);
    assert.equal((JSON.parse(workers.stdout) as WorkerInfo[]).map((w) => w.workerId).sort(), ["w1", "w2"]);

    // result --json: the files written, with their sizes.
    const out = join(dir.path, "result");
    const result = await delift(["result", job, "--out", out, "--json"], env);
    assert.is(result.code, 0, result.stderr);
    const r = JSON.parse(result.stdout) as { jobId: string; out: string; files: { name: string; bytes: number }[] };
    assert.is(r.jobId, job);
    assert.is(r.out, out);
    const selected = r.files.find((f) => f.name === "selected.jsonl");
    assert.ok(selected, JSON.stringify(r.files));
    assert.is(selected.bytes, statSync(join(out, "selected.jsonl")).size);
    assert.is(readFileSync(join(out, "selected.jsonl"), "utf8").trim().split("\n").length, 6);

    // Errors in --json mode: one object on stderr, nothing on stdout, the usual exit codes.
    const unknown = await delift(["watch", "jnosuchjob", "--json"], env);
    assert.is(unknown.code, 2, unknown.stderr);
    assert.is(unknown.stdout, "");
    assert.is((JSON.parse(unknown.stderr) as { error: { code: string; exitCode: number } }).error.code, "unknown-job");
    const refused = await delift(["jobs", "--json"], { ...env, DELIFT_TOKEN: "wrong-token" });
    assert.is(refused.code, 2, refused.stderr);
    const refusal = JSON.parse(refused.stderr) as { error: { code: string; message: string; exitCode: number } };
    assert.equal([refusal.error.code, refusal.error.exitCode], ["unauthenticated", 2]);
    const badInput = await delift(["submit", "--json", "--data", join(dir.path, "missing.jsonl"), "--model", TINY_MODEL], env);
    assert.is(badInput.code, 2, badInput.stderr);
    assert.match((JSON.parse(badInput.stderr) as { error: { code: string } }).error.code, /^invalid-/);
    // A job whose input the coordinator refuses while planning: its failed status on stdout, job-refused, exit 2.
    const broken = join(dir.path, "broken.jsonl");
    writeFileSync(broken, "{not json\n");
    const refusedJob = await delift(["submit", "--json", "--data", broken, "--model", TINY_MODEL, "--budget", "0.5"], env);
    assert.is(refusedJob.code, 2, refusedJob.stderr);
    const refusedStatus = JSON.parse(refusedJob.stdout) as JobStatusMessage;
    assert.equal([refusedStatus.state, refusedStatus.failedDuring], ["failed", "planning"]);
    const refusedError = JSON.parse(refusedJob.stderr) as { error: { code: string; message: string; exitCode: number } };
    assert.equal([refusedError.error.code, refusedError.error.exitCode], ["job-refused", 2]);
    assert.match(refusedError.error.message, /broken\.jsonl/);

    // During a job, held at scoring (its first result on disk, not yet counted): the metrics are
    // the job's plan, nothing stored yet; the finished job's counts survive the coordinator restart.
    await cluster.stopCoordinator();
    await cluster.startCoordinator({ env: { DELIFT_HOLD_AT: "scoring" } });
    const held = await delift(["submit", "--json", "--data", OTHER, "--model", TINY_MODEL, "--budget", "0.5", ...TILES], env);
    assert.is(held.code, 0, held.stderr);
    const heldJob = (JSON.parse(held.stdout) as JobStatusMessage).jobId;
    await cluster.coordinator!.waitFor(/delift: holding at scoring/, 120_000);
    const heldStatus = await cluster.status(heldJob);
    const during = await scrape(coordinatorPort);
    const t = tilesOf(during, heldJob);
    assert.is(value(during, "delift_job_state", { job: heldJob, state: "scoring" }), 1);
    assert.is(value(during, "delift_job_tiles_planned_total", { job: heldJob }), heldStatus.tilesTotal);
    assert.is(t.planned + t.queued + t.running + t.stored + t.failed, heldStatus.tilesTotal);
    assert.is(t.stored, heldStatus.tilesDone);
    assert.ok(t.running >= 1, `no tile running while the first result waits: ${JSON.stringify(t)}`);
    assert.ok(value(during, "delift_queue_pending", { job: heldJob }) !== undefined, "no queue depth for the scoring job");
    assert.ok(value(during, "delift_queue_ack_pending", { job: heldJob }) !== undefined);
    assert.equal(tilesOf(during, job), { planned: 0, queued: 0, running: 0, stored: status.tilesTotal, failed: 0 });
    assert.is(value(during, "delift_job_state", { job, state: "done" }), 1);

    const cancelled = await delift(["cancel", heldJob, "--json"], env);
    assert.is(cancelled.code, 0, cancelled.stderr);
    assert.equal(JSON.parse(cancelled.stdout), { jobId: heldJob, state: "cancelled" });
    const end = await scrape(coordinatorPort);
    assert.is(value(end, "delift_job_state", { job: heldJob, state: "cancelled" }), 1);
    assert.is(tilesOf(end, heldJob).running + tilesOf(end, heldJob).queued + tilesOf(end, heldJob).planned, 0);
    assert.is(value(end, "delift_queue_pending", { job: heldJob }), undefined, "a cancelled job's queue depth is still reported");
  } catch (err) {
    process.stderr.write(cluster.logs() + "\n");
    throw err;
  } finally {
    await cluster.stop();
  }
});

test("the embedded default: delift kernel --metrics serves the job's metrics while it runs (held at scoring), then Ctrl-C", async () => {
  const port = await freePort();
  const data = writeSamples(join(dir.path, "embedded-6.jsonl"), 6);
  const p = CliProcess.spawn("kernel", ["kernel", "--data", data, "--model", TINY_MODEL, ...TILES, "--threads", "1", "--store", join(dir.path, "embedded-store"), "--out", join(dir.path, "embedded-out"), "--metrics", `127.0.0.1:${port}`], { DELIFT_HOLD_AT: "scoring" });
  try {
    await p.waitFor(/delift: holding at scoring/, 120_000);
    const m = await scrape(port);
    const job = m.find((s) => s.name === "delift_job_state" && s.value === 1)?.labels.job;
    assert.ok(job, "no job state series");
    assert.is(value(m, "delift_job_state", { job, state: "scoring" }), 1);
    const t = tilesOf(m, job);
    const planned = value(m, "delift_job_tiles_planned_total", { job }) ?? 0;
    assert.ok(planned > 0);
    assert.is(t.planned + t.queued + t.running + t.stored + t.failed, planned);
    assert.is(value(m, "delift_worker_slots", { process: "embedded" }), 1);
    assert.ok((value(m, "process_resident_memory_bytes", { process: "embedded" }) ?? 0) > 0);
    p.kill("SIGINT");
    assert.is(await p.wait(), 130, p.log);
  } finally {
    p.kill("SIGKILL");
  }
  const gone = await fetch(`http://127.0.0.1:${port}/metrics`).then(() => "served", () => "closed");
  assert.is(gone, "closed", "the metrics endpoint outlived the command");
});

test.run();
