import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as grpc from "@grpc/grpc-js";
import { cpSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { isGrpcStatus } from "../../common/src/rpc/client.js";
import { CliProcess, TestCluster } from "../helpers/cluster.js";
import { FIXTURES, TINY_MODEL, tempDir } from "../helpers/paths.js";

const Faults = suite("cluster faults (real nats-server, gRPC on loopback, worker processes)");
const scratch = tempDir("delift-faults-");
const DATA = join(scratch.path, "gsm8k-8.jsonl");
writeFileSync(DATA, readFileSync(join(FIXTURES, "gsm8k-32.jsonl"), "utf8").split("\n").slice(0, 8).join("\n") + "\n");

/** A kernel job of 8 samples in 10 small tiles: 2 baseline tiles, 8 pair tiles of 2 x 4. */
const kernelJob = (extra: object = {}) => ({
  kind: "kernel",
  data: DATA,
  model: TINY_MODEL,
  scoring: { tile: { columns: 2, rows: 4 } },
  queue: { ackWaitSeconds: 3, maxDeliver: 3 },
  ...extra,
});

let clean: Buffer | null = null;

/** The kernel of a fault-free cluster run: every fault case must end with exactly these bytes. */
async function cleanKernel(): Promise<Buffer> {
  if (clean) return clean;
  const cluster = await TestCluster.start({ workers: 3 });
  try {
    const job = await cluster.submit(kernelJob());
    const s = await cluster.waitForJob(job, (x) => x.state === "done");
    assert.is(s.tilesDone, 10);
    clean = (await cluster.result(job)).get("kernel.bin")!;
    assert.ok(clean.length > 0);
    return clean;
  } finally {
    await cluster.stop();
  }
}

Faults.after(() => scratch.cleanup());

Faults("a worker killed with SIGKILL mid-tile: the tile is redelivered, the kernel is byte-identical", async () => {
  const reference = await cleanKernel();
  const cluster = await TestCluster.start({ workers: 3 });
  try {
    const job = await cluster.submit(kernelJob());
    const victim = await firstToStart(cluster);
    victim.kill("SIGKILL");
    const s = await cluster.waitForJob(job, (x) => x.state === "done");
    assert.ok(s.redeliveries >= 1, `expected a redelivery, status ${JSON.stringify(s)}`);
    assert.ok(Buffer.compare((await cluster.result(job)).get("kernel.bin")!, reference) === 0, "kernel differs from the clean run");
  } finally {
    await cluster.stop();
  }
});

Faults("the coordinator killed and restarted: the job resumes, recomputes only unstored tiles, same kernel", async () => {
  const reference = await cleanKernel();
  const cluster = await TestCluster.start({ workers: 2 });
  try {
    const job = await cluster.submit(kernelJob());
    const before = await cluster.waitForJob(job, (x) => x.tilesDone >= 3);
    cluster.coordinator!.kill("SIGKILL");
    await cluster.coordinator!.wait();
    await cluster.startCoordinator();
    const s = await cluster.waitForJob(job, (x) => x.state === "done");
    assert.ok(s.tilesReused >= before.tilesDone, `reused ${s.tilesReused} < stored before the kill ${before.tilesDone}`);
    assert.is(s.tilesDone, 10);
    assert.ok(Buffer.compare((await cluster.result(job)).get("kernel.bin")!, reference) === 0, "kernel differs from the clean run");
  } finally {
    await cluster.stop();
  }
});

Faults("nats-server restarted mid-job (file storage): the job completes with the same kernel", async () => {
  const reference = await cleanKernel();
  const cluster = await TestCluster.start({ workers: 2 });
  try {
    const job = await cluster.submit(kernelJob());
    await cluster.waitForJob(job, (x) => x.tilesDone >= 2);
    await cluster.nats.restart();
    await cluster.waitForJob(job, (x) => x.state === "done");
    assert.ok(Buffer.compare((await cluster.result(job)).get("kernel.bin")!, reference) === 0, "kernel differs from the clean run");
  } finally {
    await cluster.stop();
  }
});

Faults("a tile that fails on every delivery fails the job with the worker's error, no hang", async () => {
  // A bundle whose tokenizer knows a token the model's embedding does not have (and whose
  // manifest does not say the vocabulary size): onnxruntime fails on every delivery.
  const bundle = join(scratch.path, "mismatched-bundle");
  cpSync(TINY_MODEL, bundle, { recursive: true });
  const tok = JSON.parse(readFileSync(join(bundle, "tokenizer.json"), "utf8"));
  tok.added_tokens.push({ id: 9000, content: "<|unknown-to-model|>", single_word: false, lstrip: false, rstrip: false, normalized: false, special: false });
  writeFileSync(join(bundle, "tokenizer.json"), JSON.stringify(tok));
  const manifest = JSON.parse(readFileSync(join(bundle, "manifest.json"), "utf8"));
  delete manifest.vocabSize;
  delete manifest.sha256;
  writeFileSync(join(bundle, "manifest.json"), JSON.stringify(manifest));
  const data = join(scratch.path, "poisoned.jsonl");
  writeFileSync(data, readFileSync(DATA, "utf8").replace(/"instruction": "/, '"instruction": "<|unknown-to-model|> '));

  const cluster = await TestCluster.start({ workers: 2 });
  try {
    const job = await cluster.submit(kernelJob({ data, model: bundle, queue: { ackWaitSeconds: 3, maxDeliver: 2 } }));
    const s = await cluster.waitForJob(job, (x) => x.state === "failed", 60_000);
    assert.match(s.error, /failed on every delivery/);
    assert.match(s.error, /Gather|indices|out of (data )?bounds/i);
  } finally {
    await cluster.stop();
  }
});

Faults("a worker that joins mid-job gets work within 2 s", async () => {
  const cluster = await TestCluster.start({ workers: 1 });
  try {
    const job = await cluster.submit(kernelJob({ scoring: { tile: { columns: 1, rows: 4 } } }));
    await cluster.waitForJob(job, (x) => x.tilesDone >= 1);
    const joined = Date.now();
    const late = await cluster.startWorker("late");
    await late.waitFor(/tile [0-9a-f]+ started/, 10_000);
    const ready = Date.now();
    assert.ok(ready - joined < 2000 + 1500, `took ${ready - joined} ms from spawn to the first tile`);
    assert.ok(firstTileDelay(late.log) <= 2000, `took ${firstTileDelay(late.log)} ms from ready to the first tile`);
    await cluster.waitForJob(job, (x) => x.state === "done");
  } finally {
    await cluster.stop();
  }
});

Faults("SIGTERM: a busy worker finishes or hands back its tile and leaves; the job completes", async () => {
  const cluster = await TestCluster.start({ workers: 2 });
  try {
    const job = await cluster.submit(kernelJob());
    const w = await firstToStart(cluster);
    w.kill("SIGTERM");
    assert.is(await w.wait(), 0);
    assert.match(w.log, /stopped after/);
    await cluster.waitForJob(job, (x) => x.state === "done");
  } finally {
    await cluster.stop();
  }
});

Faults("security: a wrong token is refused; malformed uploads and tile messages are dropped, nothing crashes", async () => {
  const cluster = await TestCluster.start({ workers: 1 });
  try {
    const wrong = cluster.client("not-the-token");
    const refused = await wrong.unary("listJobs", {}).catch((e) => e);
    assert.ok(isGrpcStatus(refused, grpc.status.UNAUTHENTICATED), `expected UNAUTHENTICATED, got ${refused}`);
    const refusedSubmit = await wrong.unary("submitJob", { specJson: JSON.stringify(kernelJob()) }).catch((e) => e);
    assert.ok(isGrpcStatus(refusedSubmit, grpc.status.UNAUTHENTICATED));
    wrong.close();

    // One tile in the queue at a time, so the garbage below is delivered before the job ends.
    const job = await cluster.submit(kernelJob({ queue: { ackWaitSeconds: 3, maxDeliver: 3, maxQueued: 1 } }));
    await cluster.waitForJob(job, (x) => x.state === "scoring");
    // A malformed upload: the coordinator answers INVALID_ARGUMENT and keeps serving.
    const c = cluster.client();
    const bad = await new Promise<unknown>((resolve) => {
      const stream = (c.raw.uploadTileResult as (md: grpc.Metadata, cb: (err: unknown) => void) => grpc.ClientWritableStream<object>).call(c.raw, c.metadata(), (err) => resolve(err));
      stream.write({ jobId: job, tileId: "a".repeat(64), attempt: 1, workerId: "evil", offset: 0, payload: new Uint8Array(6), totalValues: 1e9 });
      stream.end();
    });
    assert.ok(isGrpcStatus(bad, grpc.status.INVALID_ARGUMENT), `expected INVALID_ARGUMENT, got ${bad}`);
    c.close();
    // Garbage on the job's tile stream: the worker drops it and carries on.
    const nc = await connect({ servers: cluster.nats.url });
    await jetstream(nc).publish(`delift.tiles.${job}`, new TextEncoder().encode("definitely not msgpack"));
    await nc.close();
    await cluster.waitForJob(job, (x) => x.state === "done");
    assert.match(cluster.workers.get("w1")!.log, /dropped a malformed tile message/);
    assert.is(cluster.coordinator!.proc.exitCode, null);
  } finally {
    await cluster.stop();
  }
});

/** Waits for the first "tile ... started" line of any worker; returns that worker. */
async function firstToStart(cluster: TestCluster): Promise<CliProcess> {
  const workers = [...cluster.workers.values()];
  return Promise.race(workers.map((w) => w.waitFor(/tile [0-9a-f]+ started/, 60_000).then(() => w)));
}

function firstTileDelay(log: string): number {
  const time = (re: RegExp) => Date.parse(log.match(re)?.[1] ?? "");
  return time(/^(\S+) .*tile [0-9a-f]+ started/m) - time(/^(\S+) .*worker ready/m);
}

Faults.run();
