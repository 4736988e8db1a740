import { suite } from "uvu";
import * as assert from "uvu/assert";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect, headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { decodeTileMessage, encodeTileMessage, statusKey, workKey } from "../../common/src/mod.js";
import { parseJobSpec } from "../../coordinator/src/mod.js";
import { runEmbeddedJob } from "../../cli/src/embedded/run-embedded-job.js";
import { CliProcess, TestCluster, workerRestrictedAuth } from "../helpers/cluster.js";
import { FIXTURES, TINY_MODEL, tempDir } from "../helpers/paths.js";

const Cluster = suite("runtime on a real cluster: cancel anywhere, trusted messages, validated records, fencing, clients through restarts");
const scratch = tempDir("delift-runtime-cluster-");
const lines = readFileSync(join(FIXTURES, "gsm8k-32.jsonl"), "utf8").split("\n").filter(Boolean);
const data = (n: number, name: string) => {
  const path = join(scratch.path, name);
  writeFileSync(path, lines.slice(0, n).join("\n") + "\n");
  return path;
};
const DATA4 = data(4, "four.jsonl");
const DATA6 = data(6, "six.jsonl");
const job = (extra: object = {}) => ({ kind: "kernel", data: DATA4, model: TINY_MODEL, scoring: { tile: { columns: 2, rows: 4 } }, queue: { ackWaitSeconds: 3, maxDeliver: 3 }, ...extra });

Cluster.after(() => scratch.cleanup());
if (process.env.DELIFT_TEST_TIMES) {
  Cluster.before.each((ctx) => void ((ctx as Record<string, unknown>).started = Date.now()));
  Cluster.after.each((ctx) => void process.stderr.write(`  ${((Date.now() - ((ctx as Record<string, unknown>).started as number)) / 1000).toFixed(1)} s\n`));
}

async function cli(cluster: TestCluster, args: string[]): Promise<{ code: number | null; log: string }> {
  const p = CliProcess.spawn("cli", args, { DELIFT_COORDINATOR: `127.0.0.1:${cluster.grpcPort}`, DELIFT_TOKEN: cluster.token });
  return { code: await p.wait(), log: p.log };
}

/** Waits for a condition (a state of NATS, say), with a deadline. */
async function until(check: () => Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; ) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.unreachable(`not within ${timeoutMs} ms: ${what}`);
}

async function streamExists(nc: NatsConnection, jobId: string): Promise<boolean> {
  const jsm = await jetstreamManager(nc);
  return jsm.streams.info(`DELIFT_TILES_${jobId}`).then(() => true, () => false);
}

Cluster("cancel in each state (planning, scoring, selecting, writing): the task stops, nothing is written, stream and KV entries are released", async () => {
  const cluster = await TestCluster.start({ workers: 1 });
  const nc = await connect({ servers: cluster.nats.url });
  try {
    const jobs = await new Kvm(nc).open("delift_jobs");
    for (const point of ["planning", "scoring", "selecting", "writing"]) {
      if (cluster.coordinator) await cluster.stopCoordinator();
      await cluster.startCoordinator({ env: { DELIFT_HOLD_AT: point } });
      const id = await cluster.submit({ ...job({ kind: "select", selection: { budget: 2 } }) });
      await cluster.coordinator!.waitFor(new RegExp(`delift: holding at ${point}`), 60_000);
      if (point === "planning") assert.ok(await streamExists(nc, id), "the job's stream exists while it plans");
      const c = cluster.client();
      await c.unary("cancelJob", { jobId: id });
      c.close();
      const s = await cluster.waitForJob(id, (x) => x.state === "cancelled", 60_000);
      assert.is(s.error, "cancelled by user");
      const jobDir = join(cluster.dataDir, "jobs", id);
      assert.not.ok(existsSync(join(jobDir, "result")), `${point}: no result`);
      // The release task follows the cancelled state: wait for it to have run.
      await until(async () => !(await streamExists(nc, id)), `${point}: stream deleted`);
      await until(async () => (await jobs.get(workKey(id)))?.operation !== "PUT", `${point}: work spec deleted`);
      await until(async () => (await jobs.get(statusKey(id)))?.operation !== "PUT", `${point}: status record deleted`);
      const story = await cli(cluster, ["story", id]);
      assert.is(story.code, 0, story.log);
      assert.match(story.log, /task (plan|store|select|write)-\d+ aborted/);
      assert.match(story.log, /job cancelling -> cancelled/);
    }
  } finally {
    await nc.close();
    await cluster.stop();
  }
});

Cluster("workers with least NATS permissions (cannot publish tiles): forged, altered, cross-job and garbage messages are removed at first delivery (2.9.10 too); the kernel is the embedded run's, byte for byte", async () => {
  const outDir = join(scratch.path, "embedded-kernel");
  const embedded = await runEmbeddedJob(parseJobSpec(job({ data: DATA6 }), "test"), { out: outDir, storeDir: join(scratch.path, "embedded-tiles"), device: "cpu" });
  assert.is(embedded.status.state, "done");
  const reference = readFileSync(join(outDir, "kernel.bin"));

  const auth = workerRestrictedAuth();
  const cluster = await TestCluster.start({ workers: 1, natsConfig: auth.config, coordinatorArgs: auth.coordinatorArgs, workerArgs: auth.workerArgs });
  const nc = await connect({ servers: cluster.nats.url, ...auth.admin });
  try {
    // One tile in the queue at a time, so everything injected is delivered before the job ends.
    const victim = await cluster.submit(job({ data: DATA6, queue: { ackWaitSeconds: 3, maxDeliver: 3, maxQueued: 1 } }));
    const donor = await cluster.submit(job({ data: DATA4, queue: { ackWaitSeconds: 3, maxDeliver: 3, maxQueued: 1 } }));
    const jsm = await jetstreamManager(nc);
    // By sequence, not last_by_subj: nats-server 2.9.10 crashed (SIGSEGV in jsMsgGetRequest) on
    // last_by_subj gets polled while the worker acked messages off the work queue.
    const first = async (jobId: string) => {
      const stream = `DELIFT_TILES_${jobId}`;
      for (const deadline = Date.now() + 60_000; Date.now() < deadline; ) {
        const info = await jsm.streams.info(stream).catch(() => null);
        if (info && info.state.messages > 0) {
          const m = await jsm.streams.getMessage(stream, { seq: info.state.first_seq }).catch(() => null);
          if (m) return m;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`no message of job ${jobId} seen in its stream\n${cluster.logs()}`);
    };
    const real = await first(victim);
    const other = await first(donor);
    const tileId = real.header!.get("Delift-Tile");
    const js = jetstream(nc);
    const publish = (body: Uint8Array, tile: string, mac: string) => {
      const h = natsHeaders();
      h.set("Delift-Tile", tile);
      h.set("Delift-Mac", mac);
      return js.publish(`delift.tiles.${victim}`, body, { headers: h });
    };
    for (let k = 0; k < 5; k++) await publish(new TextEncoder().encode(`garbage ${k}`), tileId, "ab".repeat(32));
    const msg = decodeTileMessage(real.data);
    // Other samples of the same corpus: the forged copy (a made-up code), the altered one (the real code).
    const nextSample = (i: number) => (i + 1) % msg.corpus.count;
    const shifted = (): typeof msg.work => (msg.work.kind === "baseline" ? { kind: "baseline", targets: msg.work.targets.map(nextSample) } : { kind: "pairs", columns: msg.work.columns.map((c) => ({ example: nextSample(c.example), rows: c.rows })) });
    const forged = encodeTileMessage({ ...msg, work: shifted() });
    await publish(forged, tileId, "cd".repeat(32));
    const altered = encodeTileMessage({ ...msg, work: shifted() });
    await publish(altered, tileId, real.header!.get("Delift-Mac"));
    await publish(other.data, other.header!.get("Delift-Tile"), other.header!.get("Delift-Mac"));

    // The worker's own credentials cannot put a tile on the queue.
    const asWorker = await connect({ servers: cluster.nats.url, user: "delift-worker", pass: "worker-pw" });
    const refused = await jetstream(asWorker).publish(`delift.tiles.${victim}`, new Uint8Array(4)).then(() => null, (e: Error) => e);
    await asWorker.close();
    assert.match(String(refused?.message), /Permissions Violation|timeout|no responders/i);

    const s = await cluster.waitForJob(victim, (x) => x.state === "done", 120_000);
    assert.is(s.tilesDone, s.tilesTotal);
    await cluster.waitForJob(donor, (x) => x.state === "done", 120_000);
    assert.ok(Buffer.compare((await cluster.result(victim)).get("kernel.bin")!, reference) === 0, "kernel differs from the embedded run");
    const log = cluster.workers.get("w1")!.log;
    assert.is((log.match(/dropped a malformed tile message/g) ?? []).length, 5, "each garbage message dropped once, never redelivered");
    assert.is((log.match(/dropped a forged or altered tile message/g) ?? []).length, 3, "forged, altered and cross-job copies dropped once each");
  } finally {
    await nc.close();
    await cluster.stop();
  }
});

Cluster("invalid KV records are logged and ignored, never listed as workers; refused calls are logged once with peer, method and reason", async () => {
  const cluster = await TestCluster.start({ workers: 1 });
  const nc = await connect({ servers: cluster.nats.url });
  try {
    const workers = await new Kvm(nc).open("delift_workers");
    await workers.put("garbage", new TextEncoder().encode("not json at all"));
    await workers.put("half", new TextEncoder().encode(JSON.stringify({ workerId: "half", host: 3 })));
    const listed = await cli(cluster, ["workers", "--json"]);
    assert.is(listed.code, 0, listed.log);
    assert.equal((JSON.parse(listed.log) as { workerId: string }[]).map((w) => w.workerId), ["w1"]);
    await cluster.coordinator!.waitFor(/ignored an invalid record in the workers bucket: worker heartbeat record "half"/);
    const wrong = cluster.client("wrong-token");
    for (let k = 0; k < 5; k++) await wrong.unary("listJobs", {}).catch(() => undefined);
    wrong.close();
    await cluster.coordinator!.waitFor(/refused ListJobs from .*127\.0\.0\.1.*UNAUTHENTICATED: missing or wrong bearer token/);
    assert.is((cluster.coordinator!.log.match(/refused ListJobs/g) ?? []).length, 1, "rate-limited: one line for five refusals");
  } finally {
    await nc.close();
    await cluster.stop();
  }
});

Cluster("fencing: a second coordinator refuses to start; a standby takes over when the lease holder dies", async () => {
  const cluster = await TestCluster.start({ workers: 0, coordinatorArgs: ["--lease-ttl", "2"] });
  try {
    const refused = CliProcess.spawn("second", ["coordinator", "--nats", cluster.nats.url, "--grpc", "127.0.0.1:0", "--data-dir", join(scratch.path, "second"), "--lease-ttl", "2"], { DELIFT_TOKEN: cluster.token });
    assert.is(await refused.wait(), 1, refused.log);
    assert.match(refused.log, /another coordinator holds this cluster's lease: .* pid \d+ \(gRPC 127\.0\.0\.1:\d+\); stop it first, or start this one with --standby/);
    const standby = CliProcess.spawn("standby", ["coordinator", "--nats", cluster.nats.url, "--grpc", `127.0.0.1:${cluster.grpcPort}`, "--data-dir", cluster.dataDir, "--lease-ttl", "2", "--standby"], { DELIFT_TOKEN: cluster.token });
    try {
      await standby.waitFor(/standby: another coordinator holds the lease/, 30_000);
      assert.not.ok(/coordinator ready/.test(standby.log));
      cluster.coordinator!.kill("SIGKILL");
      await cluster.coordinator!.wait();
      await standby.waitFor(/was not renewed for 2000 ms: taking over/, 30_000);
      await standby.waitFor(/coordinator ready/, 30_000);
      const c = cluster.client();
      assert.ok(Array.isArray((await c.unary<{ jobs: unknown[] }>("listJobs", {})).jobs));
      c.close();
    } finally {
      standby.kill("SIGKILL");
      await standby.wait();
    }
  } finally {
    await cluster.stop();
  }
});

Cluster("watch and jobs ride out a coordinator restart: they say so, reconnect, and exit with the job's final status", async () => {
  const cluster = await TestCluster.start({ workers: 1 });
  try {
    await cluster.stopCoordinator();
    await cluster.startCoordinator({ env: { DELIFT_HOLD_AT: "scoring" } });
    const id = await cluster.submit(job());
    const env = { DELIFT_COORDINATOR: `127.0.0.1:${cluster.grpcPort}`, DELIFT_TOKEN: cluster.token };
    const watch = CliProcess.spawn("watch", ["watch", id, "--plain"], env);
    await cluster.coordinator!.waitFor(/delift: holding at scoring/, 60_000);
    await watch.waitFor(/scoring/, 30_000);
    cluster.coordinator!.kill("SIGKILL");
    await cluster.coordinator!.wait();
    await watch.waitFor(/lost the coordinator/, 30_000);
    const jobs = CliProcess.spawn("jobs", ["jobs"], env);
    await jobs.waitFor(/lost the coordinator while listing jobs/, 30_000);
    await cluster.startCoordinator();
    assert.is(await watch.wait(), 0, watch.log);
    assert.match(watch.log, /reconnected to the coordinator/);
    assert.match(watch.log, new RegExp(`job ${id} done`));
    assert.not.match(watch.log, /at .*\.js:\d+/, "no stack trace");
    assert.is(await jobs.wait(), 0, jobs.log);
    assert.match(jobs.log, new RegExp(`${id}\\s+(scoring|done|planning)`));
  } finally {
    await cluster.stop();
  }
});

Cluster.run();
