import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as grpc from "@grpc/grpc-js";
import { cpSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { isGrpcStatus } from "../../common/src/rpc/client.js";
import type { JobStatusMessage } from "../../common/src/rpc/types.js";
import { type CliProcess, TestCluster } from "../helpers/cluster.js";
import { assertMatchesReference, assertSameBytes, embeddedKernel, writeSamples } from "../helpers/kernels.js";
import { TINY_MODEL, tempDir } from "../helpers/paths.js";

/**
 * Faults placed by waiting for a state (a worker's "tile ... started" line, a job status), never a
 * timer; the job's status is recorded at each fault to show it was still running; every faulted
 * job must end with exactly the kernel the embedded default computes (the same engine, no NATS, no
 * gRPC) and within 1e-6 of the independent Python reference.
 */
const Faults = suite("cluster faults (real nats-server, gRPC on loopback, worker processes)");
const scratch = tempDir("delift-faults-");
const DATA8 = writeSamples(join(scratch.path, "gsm8k-8.jsonl"), 8);
const DATA12 = writeSamples(join(scratch.path, "gsm8k-12.jsonl"), 12);

/** 8 samples in 36 small tiles (12 samples: 78) (4 baseline tiles of 2 rows, 32 pair tiles of 1 column x 2 rows): a job that lasts. */
const MANY_TILES = { tile: { columns: 1, rows: 2 } };
/** 12 samples in 5 large tiles (1 baseline tile, 4 pair tiles of 3 columns x 12 rows, 36 pairs each). */
const LARGE_TILES = { tile: { columns: 3, rows: 12 } };

const kernelJob = (data: string, scoring: object, queue: object = {}) => ({
  kind: "kernel",
  data,
  model: TINY_MODEL,
  scoring,
  queue: { ackWaitSeconds: 3, maxDeliver: 3, ...queue },
});

const embedded = new Map<string, Buffer>();

/** The embedded default's kernel.bin for the same data and tile shape. */
async function embeddedFor(data: string, scoring: object): Promise<Buffer> {
  const key = `${data} ${JSON.stringify(scoring)}`;
  if (!embedded.has(key)) embedded.set(key, await embeddedKernel(data, scoring));
  return embedded.get(key)!;
}

/** The faulted job's kernel: byte for byte the embedded one, and within 1e-6 of the Python reference. */
async function assertKernel(cluster: TestCluster, job: string, data: string, scoring: object): Promise<void> {
  const files = await cluster.result(job);
  assertSameBytes(files.get("kernel.bin")!, await embeddedFor(data, scoring), "cluster vs embedded kernel");
  await assertMatchesReference(files, "cluster kernel");
}

type Started = { tile: string; delivery: number };

/** The tiles a worker logged as started (--verbose), in order. */
function startedTiles(w: CliProcess): Started[] {
  return [...w.log.matchAll(/tile ([0-9a-f]+) started \(delivery (\d+)\)/g)].map((m) => ({ tile: m[1], delivery: Number(m[2]) }));
}

/** The tiles a worker logged as stored (printed after the coordinator stored the tile and the worker acked it). */
function storedTiles(w: CliProcess): string[] {
  return [...w.log.matchAll(/tile ([0-9a-f]+) stored in/g)].map((m) => m[1]);
}

/** Waits for the first "tile ... started" line of any worker; returns that worker. */
async function firstToStart(cluster: TestCluster): Promise<CliProcess> {
  const workers = [...cluster.workers.values()];
  return Promise.race(workers.map((w) => w.waitFor(/tile [0-9a-f]+ started/, 90_000).then(() => w)));
}

function tally(s: JobStatusMessage, worker: string): number {
  return s.workers.find((w) => w.workerId === worker)?.tiles ?? 0;
}

function running(s: JobStatusMessage, when: string): void {
  assert.is(s.state, "scoring", `${when}: the job should still be scoring, status ${JSON.stringify(s)}`);
  assert.ok(s.tilesDone < s.tilesTotal, `${when}: every tile was already stored (${s.tilesDone}/${s.tilesTotal})`);
}

Faults.after(() => scratch.cleanup());

Faults("a worker killed with SIGKILL mid-tile: its own tile is left unfinished, redelivered and stored by another worker; same kernel", async () => {
  const cluster = await TestCluster.start({ workers: 3 });
  try {
    const job = await cluster.submit(kernelJob(DATA12, LARGE_TILES));
    const victim = await firstToStart(cluster);
    victim.kill("SIGKILL");
    await victim.wait();
    const atKill = await cluster.status(job);
    running(atKill, "at the kill");
    const own = startedTiles(victim).at(-1)!;
    assert.is(own.delivery, 1);

    const s = await cluster.waitForJob(job, (x) => x.state === "done", 90_000);
    // Unfinished by the victim: it logged no store of that tile, and the coordinator credits it
    // with no tile beyond those it logged as stored (a store it made just before dying would show).
    assert.not.ok(storedTiles(victim).includes(own.tile), `the victim logged tile ${own.tile} as stored`);
    assert.is(tally(s, victim.name), storedTiles(victim).length, `the coordinator credits ${victim.name} with a tile it did not log: tile ${own.tile} was finished before the kill`);
    // Then stored by another worker, from a redelivery of the same message.
    const rescuers = [...cluster.workers.values()].filter((w) => w !== victim && startedTiles(w).some((x) => x.tile === own.tile && x.delivery >= 2) && storedTiles(w).includes(own.tile));
    assert.is(rescuers.length, 1, `tile ${own.tile} was not stored by exactly one other worker after a redelivery\n${cluster.logs()}`);
    assert.ok(s.redeliveries >= 1, `status counts no redelivery: ${JSON.stringify(s)}`);
    assert.is(s.tilesDone, s.tilesTotal);
    await assertKernel(cluster, job, DATA12, LARGE_TILES);
  } finally {
    await cluster.stop();
  }
});

Faults("the coordinator killed mid-job and restarted: the job resumes, stored tiles are reused, the rest computed once; same kernel", async () => {
  const cluster = await TestCluster.start({ workers: 2 });
  try {
    const job = await cluster.submit(kernelJob(DATA8, MANY_TILES));
    const before = await cluster.waitForJob(job, (x) => x.tilesDone >= 3);
    running(before, "just before the kill");
    cluster.coordinator!.kill("SIGKILL");
    await cluster.coordinator!.wait();
    await cluster.startCoordinator();
    const s = await cluster.waitForJob(job, (x) => x.state === "done");
    assert.ok(s.tilesReused >= before.tilesDone, `reused ${s.tilesReused} < stored before the kill ${before.tilesDone}`);
    assert.ok(s.tilesReused < s.tilesTotal, "nothing was left to compute after the restart: the kill came too late to test anything");
    // The restarted coordinator counts first stores per worker: exactly the tiles that were not stored.
    const computedAfter = s.workers.reduce((sum, w) => sum + w.tiles, 0);
    assert.is(computedAfter, s.tilesTotal - s.tilesReused, `tiles stored after the restart ${computedAfter}, expected ${s.tilesTotal - s.tilesReused}`);
    assert.is(s.tilesDone, s.tilesTotal);
    const onDisk = readdirSync(join(cluster.dataDir, "tiles")).filter((d) => /^[0-9a-f]{2}$/.test(d)).flatMap((d) => readdirSync(join(cluster.dataDir, "tiles", d)));
    assert.is(onDisk.length, s.tilesTotal, "one file per tile in the store");
    await assertKernel(cluster, job, DATA8, MANY_TILES);
  } finally {
    await cluster.stop();
  }
});

Faults("nats-server stopped and started again while the job runs (file storage): the job goes on after it and completes; same kernel", async () => {
  const cluster = await TestCluster.start({ workers: 2 });
  try {
    const job = await cluster.submit(kernelJob(DATA8, MANY_TILES));
    await cluster.waitForJob(job, (x) => x.tilesDone >= 2);
    await cluster.nats.stop();
    running(await cluster.status(job), "with nats-server down");
    await cluster.nats.resume();
    const back = await cluster.status(job);
    running(back, "when nats-server is back");
    const s = await cluster.waitForJob(job, (x) => x.state === "done");
    assert.ok(s.tilesDone > back.tilesDone, "no tile was stored after nats-server came back");
    await assertKernel(cluster, job, DATA8, MANY_TILES);
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
  writeFileSync(data, readFileSync(DATA8, "utf8").replace(/"instruction": "/, '"instruction": "<|unknown-to-model|> '));

  const cluster = await TestCluster.start({ workers: 2 });
  try {
    const job = await cluster.submit({ ...kernelJob(data, { tile: { columns: 2, rows: 4 } }, { maxDeliver: 2 }), model: bundle });
    const s = await cluster.waitForJob(job, (x) => x.state === "failed", 90_000);
    assert.match(s.error, /failed on every delivery/);
    assert.match(s.error, /Gather|indices|out of (data )?bounds/i);
  } finally {
    await cluster.stop();
  }
});

Faults("a worker that joins a running job gets tiles of it and stores them before the job ends", async () => {
  const cluster = await TestCluster.start({ workers: 1 });
  try {
    // 12 samples in 78 tiles: the job outlasts a worker's start-up (model fetch, session) by far.
    const job = await cluster.submit(kernelJob(DATA12, MANY_TILES));
    await cluster.waitForJob(job, (x) => x.tilesDone >= 1);
    const late = await cluster.startWorker("late");
    await late.waitFor(/tile [0-9a-f]+ started/, 60_000);
    running(await cluster.status(job), "when the late worker started its first tile");
    const s = await cluster.waitForJob(job, (x) => x.state === "done");
    assert.ok(tally(s, "late") >= 1, `the late worker stored no tile: ${JSON.stringify(s.workers)}`);
    assert.is(tally(s, "late"), storedTiles(late).length);
    await assertKernel(cluster, job, DATA12, MANY_TILES);
  } finally {
    await cluster.stop();
  }
});

Faults("SIGTERM: a busy worker finishes or hands back its tile and leaves with exit 0; the job completes with the same kernel", async () => {
  const cluster = await TestCluster.start({ workers: 2 });
  try {
    const job = await cluster.submit(kernelJob(DATA8, MANY_TILES));
    const w = await firstToStart(cluster);
    w.kill("SIGTERM");
    running(await cluster.status(job), "at the SIGTERM");
    assert.is(await w.wait(), 0);
    assert.match(w.log, /stopped after/);
    await cluster.waitForJob(job, (x) => x.state === "done");
    await assertKernel(cluster, job, DATA8, MANY_TILES);
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
    const refusedSubmit = await wrong.unary("submitJob", { specJson: JSON.stringify(kernelJob(DATA8, {})) }).catch((e) => e);
    assert.ok(isGrpcStatus(refusedSubmit, grpc.status.UNAUTHENTICATED));
    wrong.close();

    // One tile in the queue at a time, so the garbage below is delivered before the job ends.
    const job = await cluster.submit(kernelJob(DATA8, { tile: { columns: 2, rows: 4 } }, { maxQueued: 1 }));
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

Faults.run();
