import { suite } from "uvu";
import * as assert from "uvu/assert";
import { cpSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { LocalBlobStore, MemoryKeyValue, MemoryTileQueue, modelBlobName, openBundle, silentLogger } from "../../common/src/mod.js";
import { Coordinator, readStory, replayStory, TileStore } from "../../coordinator/src/mod.js";
import { CorpusCache, ModelCache } from "../../worker/src/mod.js";
import { runEmbeddedJob } from "../../cli/src/embedded/run-embedded-job.js";
import { ROOT, TINY_MODEL } from "../helpers/paths.js";
import { execFileSync } from "node:child_process";
import { cleanupScratch, SCRATCH, smallJob, startHarness, timeTests } from "./runtime-harness.js";

const Durable = suite("runtime: durable state, --save-kernel, a model cache that does not only grow");
Durable.after(() => cleanupScratch());
timeTests(Durable as never);

const json = (v: unknown) => JSON.stringify(v, (_k, x) => (x instanceof Map ? [...x] : x instanceof Set ? [...x] : x));

Durable("a torn or unreadable state file is reported at start with its path and its job marked failed, never dropped", async () => {
  const dataDir = join(SCRATCH, "torn-data");
  for (const [id, files] of [
    ["jtorn", { "spec.json": JSON.stringify(smallJob()), "state.json": '{"state":"scori' }],
    ["jnostate", { "spec.json": JSON.stringify(smallJob()) }],
    ["jnospec", { "state.json": JSON.stringify({ state: "scoring", error: null, createdAt: 5, finishedAt: null }) }],
  ] as const) {
    mkdirSync(join(dataDir, "jobs", id), { recursive: true });
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dataDir, "jobs", id, name), text);
  }
  const errors: string[] = [];
  const log = { ...silentLogger(), error: (_f: unknown, msg?: string) => void errors.push(String(msg ?? _f)) } as ReturnType<typeof silentLogger>;
  const c = await Coordinator.start({ queue: new MemoryTileQueue(), jobsKv: new MemoryKeyValue(), blobs: new LocalBlobStore(), store: await TileStore.open(join(SCRATCH, "torn-tiles")), dataDir, log });
  try {
    const jobs = new Map(c.list().map((s) => [s.jobId, s]));
    assert.equal([...jobs.keys()].sort(), ["jnospec", "jnostate", "jtorn"]);
    for (const [id, s] of jobs) {
      assert.is(s.state, "failed", id);
      assert.match(s.error, join(dataDir, "jobs", id));
    }
    assert.match(jobs.get("jtorn")!.error, /state\.json is unreadable/);
    assert.match(jobs.get("jnostate")!.error, /state\.json is missing/);
    assert.match(jobs.get("jnospec")!.error, /spec\.json is missing/);
    assert.is(errors.length, 3, errors.join("\n"));
  } finally {
    await c.close();
  }
  // Marked failed on disk too: the next start shows the same, without re-reporting them as torn.
  const again = await Coordinator.start({ queue: new MemoryTileQueue(), jobsKv: new MemoryKeyValue(), blobs: new LocalBlobStore(), store: await TileStore.open(join(SCRATCH, "torn-tiles")), dataDir, log: silentLogger() });
  try {
    assert.is(again.status("jtorn").state, "failed");
  } finally {
    await again.close();
  }
});

Durable("a coordinator restarted mid-job resumes it; the story spans both sessions and still rebuilds the record", async () => {
  const h = await startHarness({ workers: [] });
  const jobId = await h.coordinator.submit(smallJob());
  await new Promise<void>((resolve) => {
    const stop = h.coordinator.watch(jobId, (s) => {
      if (s.state === "scoring") {
        queueMicrotask(() => stop());
        resolve();
      }
    });
  });
  await h.stop();
  // Same data dir and store, now with a worker.
  const store = await TileStore.open(h.storeDir);
  const queue = new MemoryTileQueue();
  const jobsKv = new MemoryKeyValue();
  const blobs = new LocalBlobStore();
  const c = await Coordinator.start({ queue, jobsKv, blobs, store, dataDir: h.dataDir, log: silentLogger() });
  const { WorkerLoop } = await import("../../worker/src/mod.js");
  const { DirectResultSender } = await import("../../cli/src/embedded/direct-sender.js");
  const models = new ModelCache(blobs, join(SCRATCH, "resume-models"), { device: "cpu", threads: 1 });
  const w = new WorkerLoop({ workerId: "w2", source: queue, jobsKv, workersKv: null, models, corpora: new CorpusCache(blobs, join(SCRATCH, "resume-corpora")), sender: new DirectResultSender(c, "w2"), concurrency: 1, device: "cpu", log: silentLogger(), pollMs: 50, drainMs: 0 });
  w.start();
  try {
    await c.whenSettled(jobId);
    assert.is(c.status(jobId).state, "done");
    const entries = await readStory(await c.story(jobId));
    assert.ok(entries.some((e) => e.kind === "stimulus" && e.event.type === "resumed"));
    assert.is(json(replayStory(entries)), json(c.record(jobId)));
    // delift story reads it from the data directory too (a coordinator that is down).
    const printed = execFileSync(process.execPath, [join(ROOT, "bin", "delift.js"), "story", jobId, "--data-dir", h.dataDir], { encoding: "utf8" });
    assert.match(printed, new RegExp(`^job ${jobId}, from `));
    assert.match(printed, /<- resumed after a coordinator restart \(was scoring; session 1\)/);
    assert.match(printed, /job writing -> done/);
    assert.is(printed.trim().split("\n").length, entries.length + 1);
  } finally {
    await w.stop();
    await models.dispose();
    await c.close();
  }
});

Durable("--save-kernel writes the utility kernel: the same files and values as delift kernel", async () => {
  const store = join(SCRATCH, "save-kernel-tiles");
  const kernelOut = join(SCRATCH, "kernel-only");
  const k = await runEmbeddedJob(smallJob(), { out: kernelOut, storeDir: store, device: "cpu" });
  assert.is(k.status.state, "done", k.status.error);
  const selOut = join(SCRATCH, "selection-with-kernel");
  const s = await runEmbeddedJob(smallJob({ saveKernel: true }, "select"), { out: selOut, storeDir: store, device: "cpu" });
  assert.is(s.status.state, "done", s.status.error);
  for (const f of ["kernel.bin", "kernel.parquet", "kernel.json"]) {
    assert.ok(Buffer.compare(readFileSync(join(kernelOut, f)), readFileSync(join(selOut, "kernel", f))) === 0, `${f} differs`);
  }
});

Durable("the worker's model cache evicts idle sessions, bounded by count (a session in use is never evicted)", async () => {
  const blobs = new LocalBlobStore();
  const bundles: { hash: string; files: string[] }[] = [];
  for (const name of ["a", "b"]) {
    const dir = join(SCRATCH, `bundle-${name}`);
    cpSync(TINY_MODEL, dir, { recursive: true });
    const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"));
    delete manifest.sha256;
    writeFileSync(join(dir, "manifest.json"), JSON.stringify(manifest));
    writeFileSync(join(dir, "tokenizer.json"), readFileSync(join(dir, "tokenizer.json"), "utf8") + " ".repeat(name === "a" ? 1 : 2));
    const bundle = await openBundle(dir);
    const files = [...new Set([...Object.values(bundle.manifest.files).filter((f): f is string => typeof f === "string"), "manifest.json"])];
    for (const f of files) await blobs.putFile(modelBlobName(bundle.hash, f), join(dir, f));
    bundles.push({ hash: bundle.hash, files });
  }
  const [a, b] = bundles;
  assert.is.not(a.hash, b.hash);
  const cache = new ModelCache(blobs, join(SCRATCH, "cache"), { device: "cpu", threads: 1 }, { maxModels: 1, idleMs: 150 });
  try {
    const la = await cache.acquire(a.hash, a.files);
    la.release();
    assert.equal(cache.loaded().map((m) => m.hash), [a.hash]);
    const lb = await cache.acquire(b.hash, b.files);
    assert.equal(cache.loaded().map((m) => m.hash), [b.hash], "the idle one went when the count was exceeded");
    const la2 = await cache.acquire(a.hash, a.files);
    assert.equal(cache.loaded().map((m) => m.hash).sort(), [a.hash, b.hash].sort(), "both in use: neither evicted");
    lb.release();
    assert.equal(cache.loaded().map((m) => m.hash), [a.hash]);
    assert.ok(cache.loaded()[0].bytes > 1_000_000, "bytes are counted");
    la2.release();
    const deadline = Date.now() + 10_000;
    while (cache.loaded().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(cache.loaded(), [], "idle sessions are disposed after idleMs");
  } finally {
    await cache.dispose();
  }
});

Durable.run();
