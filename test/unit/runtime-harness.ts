/**
 * An in-process coordinator with in-process workers over the memory bus and the direct result
 * path (the embedded default's parts, opened up for tests): real tile store, real job threads,
 * real ONNX model. Wrappers let a test lose messages or corrupt results on the way.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type BlobStore, LocalBlobStore, MemoryKeyValue, MemoryTileQueue, silentLogger, type Logger, type TileQueue } from "../../common/src/mod.js";
import { Coordinator, parseJobSpec, TERMINAL_JOB_STATES, TileStore, type JobSpec, type JobState, type StoryEntry } from "../../coordinator/src/mod.js";
import { CorpusCache, ModelCache, WorkerLoop, type ResultSender } from "../../worker/src/mod.js";
import { DirectResultSender } from "../../cli/src/embedded/direct-sender.js";
import { FIXTURES, TINY_MODEL, tempDir } from "../helpers/paths.js";

export type WorkerSetup = {
  id: string;
  wrapSender?: (sender: ResultSender, coordinator: Coordinator) => ResultSender;
  /** Replaces the model cache (a sick worker, say). */
  models?: (real: ModelCache) => ModelCache;
  maxHealthFailures?: number;
  /** What this worker's corpus cache fetches from (a store serving forged objects, say). */
  corpusBlobs?: (real: LocalBlobStore) => BlobStore;
};

export type HarnessOptions = {
  storeDir?: string;
  conflictTolerance?: number;
  workers?: WorkerSetup[];
  wrapQueue?: (queue: MemoryTileQueue) => TileQueue;
  log?: Logger;
};

export type Harness = {
  coordinator: Coordinator;
  queue: MemoryTileQueue;
  jobsKv: MemoryKeyValue;
  dataDir: string;
  storeDir: string;
  workers: WorkerLoop[];
  story: StoryEntry[];
  /** Submits and waits for the end (terminal and released). */
  run(spec: JobSpec): Promise<{ jobId: string; state: JobState; error: string }>;
  waitEnd(jobId: string): Promise<{ state: JobState; error: string }>;
  stop(): Promise<void>;
};

const scratch = tempDir("delift-runtime-");
/** Shared by the runtime test files of one uvu process; each cleans it up at its end, the next makes it again. */
export const SCRATCH = scratch.path;
export const cleanupScratch = () => scratch.cleanup();
const ensureScratch = () => mkdirSync(SCRATCH, { recursive: true });

/** The first n GSM8K samples as a data file. */
export function sampleData(n: number, name = `gsm8k-${n}.jsonl`): string {
  ensureScratch();
  const path = join(SCRATCH, name);
  writeFileSync(path, readFileSync(join(FIXTURES, "gsm8k-32.jsonl"), "utf8").split("\n").slice(0, n).join("\n") + "\n");
  return path;
}

/** A small job: 4 samples in 3 tiles (1 baseline, 2 pair tiles of 2 x 4). */
export function smallJob(extra: Record<string, unknown> = {}, kind: "kernel" | "select" = "kernel"): JobSpec {
  return parseJobSpec(
    { kind, data: sampleData(4), model: TINY_MODEL, scoring: { tile: { columns: 2, rows: 4 } }, queue: { ackWaitSeconds: 1, maxDeliver: 2 }, ...(kind === "select" ? { selection: { budget: 2 } } : {}), ...extra },
    "test",
  );
}

let counter = 0;

/** A sender that behaves like `inner` except for the methods given. */
export function senderWith(inner: ResultSender, overrides: Partial<ResultSender>): ResultSender {
  return {
    jobKey: (j) => inner.jobKey(j),
    started: (j, t, a) => inner.started(j, t, a),
    progress: (j, t, a) => inner.progress(j, t, a),
    upload: (j, t, a, m, o, s) => inner.upload(j, t, a, m, o, s),
    failed: (j, t, a, e, k) => inner.failed(j, t, a, e, k),
    close: () => inner.close(),
    ...overrides,
  };
}

/** A queue that behaves like the memory queue except for the methods given. */
export function queueWith(inner: MemoryTileQueue, overrides: Partial<TileQueue>): TileQueue {
  return {
    open: (j, s) => inner.open(j, s),
    publish: (j, t, d, m) => inner.publish(j, t, d, m),
    purge: (j) => inner.purge(j),
    release: (j) => inner.release(j),
    inspect: (j) => inner.inspect(j),
    onMaxDeliveries: (h) => inner.onMaxDeliveries(h),
    close: () => inner.close(),
    ...overrides,
  };
}

export async function startHarness(o: HarnessOptions = {}): Promise<Harness> {
  ensureScratch();
  const dir = join(SCRATCH, `h${++counter}`);
  const dataDir = join(dir, "data");
  const storeDir = o.storeDir ?? join(dir, "tiles");
  const queue = new MemoryTileQueue();
  const jobsKv = new MemoryKeyValue();
  const blobs = new LocalBlobStore();
  const log = o.log ?? silentLogger();
  const coordinator = await Coordinator.start({
    queue: o.wrapQueue ? o.wrapQueue(queue) : queue,
    jobsKv,
    blobs,
    store: await TileStore.open(storeDir),
    dataDir,
    log,
    conflictTolerance: o.conflictTolerance,
  });
  const story: StoryEntry[] = [];
  coordinator.onStory((e) => story.push(e));
  const models: ModelCache[] = [];
  const workers = (o.workers ?? [{ id: "w1" }]).map((w) => {
    const real = new ModelCache(blobs, join(dir, `models-${w.id}`), { device: "cpu", threads: 1 });
    models.push(real);
    const direct = new DirectResultSender(coordinator, w.id);
    const loop = new WorkerLoop({
      workerId: w.id,
      source: queue,
      jobsKv,
      workersKv: null,
      models: w.models ? w.models(real) : real,
      corpora: new CorpusCache(w.corpusBlobs ? w.corpusBlobs(blobs) : blobs, join(dir, `corpora-${w.id}`)),
      sender: w.wrapSender ? w.wrapSender(direct, coordinator) : direct,
      concurrency: 1,
      device: "cpu",
      log,
      pollMs: 50,
      drainMs: 0,
      maxHealthFailures: w.maxHealthFailures,
      healthBackoffMs: 50,
    });
    loop.start();
    return loop;
  });
  const waitEnd = (jobId: string) =>
    new Promise<{ state: JobState; error: string }>((resolve) => {
      const stop = coordinator.watch(jobId, (s) => {
        if (!TERMINAL_JOB_STATES.has(s.state as JobState)) return;
        queueMicrotask(() => stop());
        void coordinator.whenSettled(jobId).then(() => resolve({ state: s.state as JobState, error: s.error }));
      });
    });
  return {
    coordinator,
    queue,
    jobsKv,
    dataDir,
    storeDir,
    workers,
    story,
    waitEnd,
    run: async (spec) => {
      const jobId = await coordinator.submit(spec);
      return { jobId, ...(await waitEnd(jobId)) };
    },
    stop: async () => {
      await Promise.all(workers.map((w) => w.stop()));
      for (const m of models) await m.dispose();
      await coordinator.close();
      await queue.close();
    },
  };
}

/** With DELIFT_TEST_TIMES=1, prints each test's duration (for keeping the suite's time budget). */
export function timeTests(s: { before: { each(fn: (ctx: Record<string, unknown>) => void): void }; after: { each(fn: (ctx: Record<string, unknown>) => void): void } }): void {
  if (!process.env.DELIFT_TEST_TIMES) return;
  s.before.each((ctx) => void (ctx.__started = Date.now()));
  s.after.each((ctx) => void process.stderr.write(`  ${String(ctx.__test ?? "")} ${((Date.now() - (ctx.__started as number)) / 1000).toFixed(1)} s\n`));
}
