import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as grpc from "@grpc/grpc-js";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { connectCoordinator, type CoordinatorClient } from "../../common/src/rpc/client.js";
import type { JobStatusMessage, ResultFileChunk } from "../../common/src/rpc/types.js";
import { CliProcess } from "../helpers/cluster.js";
import { freePort } from "../helpers/nats-server.js";
import { NatsCluster } from "../helpers/nats-cluster.js";
import { FIXTURES, TINY_MODEL, tempDir } from "../helpers/paths.js";

const Clustered = suite("clustered JetStream: three nats-servers, R3, one SIGKILLed mid-job");
const scratch = tempDir("delift-ops-cluster-");
const DATA = join(scratch.path, "gsm8k-16.jsonl");
writeFileSync(DATA, readFileSync(join(FIXTURES, "gsm8k-32.jsonl"), "utf8").split("\n").slice(0, 16).join("\n") + "\n");
const TILE = { columns: 2, rows: 4 };
const TOKEN = "ops-cluster-token";

Clustered.after(() => scratch.cleanup());

/** The same kernel computed by the embedded default (no NATS at all), with its own empty tile store. */
async function embeddedKernel(): Promise<Buffer> {
  const out = join(scratch.path, "embedded");
  const p = CliProcess.spawn("embedded", ["kernel", "--data", DATA, "--model", TINY_MODEL, "--out", out, "--store", join(scratch.path, "embedded-store"), "--tile-columns", String(TILE.columns), "--tile-rows", String(TILE.rows), "--threads", "1", "--quiet"]);
  const code = await p.wait();
  assert.is(code, 0, p.log);
  return readFileSync(join(out, "kernel.bin"));
}

async function withClient<T>(port: number, fn: (c: CoordinatorClient) => Promise<T>): Promise<T> {
  const c = connectCoordinator({ address: `127.0.0.1:${port}`, token: TOKEN });
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}

async function jobStatus(port: number, jobId: string): Promise<JobStatusMessage | null> {
  try {
    const { jobs } = await withClient(port, (c) => c.unary<{ jobs: JobStatusMessage[] }>("listJobs", {}, 5000));
    return jobs.find((j) => j.jobId === jobId) ?? null;
  } catch {
    return null; // the coordinator is briefly unreachable (it is talking to a new leader)
  }
}

async function waitForJob(port: number, jobId: string, until: (s: JobStatusMessage) => boolean, what: string, logs: () => string, timeoutMs = 90_000): Promise<JobStatusMessage> {
  const deadline = Date.now() + timeoutMs;
  let last: JobStatusMessage | null = null;
  while (Date.now() < deadline) {
    last = (await jobStatus(port, jobId)) ?? last;
    if (last && until(last)) return last;
    if (last && ["failed", "cancelled"].includes(last.state)) break;
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`job ${jobId}: ${what} did not happen; last status ${JSON.stringify(last)}\n${logs()}`);
}

async function resultFile(port: number, jobId: string, name: string): Promise<Buffer> {
  return withClient(port, (c) =>
    new Promise<Buffer>((resolve, reject) => {
      const parts: Buffer[] = [];
      const stream = (c.raw.getResult as (req: object, md: grpc.Metadata) => grpc.ClientReadableStream<ResultFileChunk>).call(c.raw, { jobId }, c.metadata());
      stream.on("data", (chunk: ResultFileChunk) => chunk.name === name && parts.push(Buffer.from(chunk.data)));
      stream.on("error", reject);
      stream.on("end", () => resolve(Buffer.concat(parts)));
    }),
  );
}

Clustered("a job survives the SIGKILL of its stream's leader; the kernel is byte-identical to the embedded run", async () => {
  const reference = await embeddedKernel();
  const nats = await NatsCluster.start(3);
  const grpcPort = await freePort();
  const dataDir = join(scratch.path, "coordinator");
  const procs: CliProcess[] = [];
  const logs = () => [...procs.map((p) => `--- ${p.name}\n${p.log.slice(-3000)}`), nats.logs()].join("\n");
  try {
    const natsArgs = ["--nats", nats.urls, "--nats-replicas", "3"];
    const coordinator = CliProcess.spawn("coordinator", ["coordinator", "--grpc", `127.0.0.1:${grpcPort}`, "--data-dir", dataDir, ...natsArgs], { DELIFT_TOKEN: TOKEN });
    procs.push(coordinator);
    await coordinator.waitFor(/coordinator ready/, 30_000);
    for (const id of ["w1", "w2"]) {
      const w = CliProcess.spawn(id, ["worker", ...natsArgs, "--id", id, "--threads", "1", "--verbose", "--cache-dir", join(scratch.path, `cache-${id}`)], { DELIFT_TOKEN: TOKEN });
      procs.push(w);
      await w.waitFor(/worker ready/, 30_000);
    }

    // Every bucket and the object store were created with three replicas.
    for (const stream of ["KV_delift_jobs", "KV_delift_workers", "KV_delift_cluster", "OBJ_delift_models"]) {
      assert.is((await nats.streamInfo(stream)).replicas, 3, `${stream} replicas`);
    }

    const spec = { kind: "kernel", data: DATA, model: TINY_MODEL, scoring: { tile: TILE }, queue: { ackWaitSeconds: 3, maxDeliver: 5 } };
    const jobId = (await withClient(grpcPort, (c) => c.unary<{ jobId: string }>("submitJob", { specJson: JSON.stringify(spec) }))).jobId;
    const stream = `DELIFT_TILES_${jobId}`;
    const started = await waitForJob(grpcPort, jobId, (s) => s.tilesDone >= 2, "two stored tiles", logs);
    assert.ok(started.tilesTotal > started.tilesDone + 4, `the job is too short to kill a server mid-job: ${JSON.stringify(started)}`);

    const before = await nats.streamInfo(stream);
    assert.is(before.replicas, 3, "job stream replicas");
    await nats.kill(before.leader);
    const atKill = await waitForJob(grpcPort, jobId, () => true, "a status", logs);
    assert.ok(atKill.state === "scoring", `the job is not scoring at the kill: ${atKill.state}`);

    // With one of three servers gone the job goes on: another server leads the stream, and more
    // tiles are stored than the two the workers held at the kill, so tiles were delivered after it.
    // (The consumer can deliver from its own replica while the stream elects its leader, so the
    // job may even end meanwhile; its stream is then released, which reads as no leader.)
    const failover = await nats.streamInfo(stream).catch(async (err: Error) => {
      throw new Error(`${err.message}\njob at that point: ${JSON.stringify(await jobStatus(grpcPort, jobId))}`);
    });
    assert.ok(failover.leader !== before.leader, `no new leader: ${failover.leader}`);
    const during = await waitForJob(grpcPort, jobId, (s) => s.tilesDone >= atKill.tilesDone + 3, "tiles delivered after the kill", logs);
    assert.not.ok(nats.running(before.leader), "the killed server is back too early");
    assert.ok(during.tilesDone > atKill.tilesDone + 2);

    await nats.start(before.leader);
    const done = await waitForJob(grpcPort, jobId, (s) => s.state === "done", "the job's end", logs);
    assert.is(done.tilesDone, done.tilesTotal);
    const kernel = await resultFile(grpcPort, jobId, "kernel.bin");
    assert.ok(kernel.length > 0, "no kernel.bin in the result");
    assert.ok(Buffer.compare(kernel, reference) === 0, "the cluster's kernel differs from the embedded run's");
  } finally {
    for (const p of procs) p.kill("SIGKILL");
    await Promise.all(procs.map((p) => p.wait()));
    await nats.cleanup();
  }
});

Clustered("--nats-replicas beyond what the servers can hold is refused with the server's reason and the flag to change", async () => {
  const nats = await NatsCluster.start(3);
  try {
    const w = CliProcess.spawn("worker", ["worker", "--nats", nats.urls, "--nats-replicas", "5", "--id", "r5", "--cache-dir", join(scratch.path, "cache-r5")]);
    const code = await w.wait();
    assert.is(code, 2, w.log);
    assert.match(w.log, /NATS refused to create KV bucket delift_jobs with 5 replicas: no suitable peers for placement/);
    assert.match(w.log, /--nats-replicas must not exceed the number of JetStream servers/);
    assert.not.match(w.log, /\n\s+at /, "a stack trace");

    const bad = CliProcess.spawn("coordinator", ["coordinator", "--grpc", "127.0.0.1:0", "--data-dir", join(scratch.path, "bad"), "--nats", nats.urls, "--nats-replicas", "7"]);
    assert.is(await bad.wait(), 2, bad.log);
    assert.match(bad.log, /--nats-replicas 7: expected a whole number from 1 to 5/);

    // delift doctor asks the same servers before anything is deployed.
    const three = CliProcess.spawn("doctor", ["doctor", "--nats", nats.urls, "--nats-replicas", "3"]);
    const five = CliProcess.spawn("doctor", ["doctor", "--nats", nats.urls, "--nats-replicas", "5"]);
    await Promise.all([three.wait(), five.wait()]);
    assert.match(three.log, /^ok\s+replicas\s+the cluster placed a stream with 3 replicas$/m, three.log);
    assert.match(three.log, /cluster "delift-test"/);
    assert.match(five.log, /^FAIL\s+replicas\s+the servers refuse 5 replicas: no suitable peers for placement/m, five.log);
  } finally {
    await nats.cleanup();
  }
});

Clustered.run();
