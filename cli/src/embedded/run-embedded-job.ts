import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Registry } from "prom-client";
import { type Device, type JobStatusMessage, LocalBlobStore, type Logger, MemoryKeyValue, MemoryTileQueue, silentLogger, WorkerMetrics } from "../../../common/src/mod.js";
import { Coordinator, JobMetrics, type JobSpec, type JobState, type PlanDescription, type StoryEntry, TERMINAL_JOB_STATES, TileStore } from "../../../coordinator/src/mod.js";
import { CorpusCache, ModelCache, type ResultSender, WorkerLoop } from "../../../worker/src/mod.js";
import { DirectResultSender } from "./direct-sender.js";

export type EmbeddedOptions = {
  /** Where the result goes (written all or nothing). */
  out: string;
  storeDir: string;
  device: Device;
  threads?: number;
  /** In-process worker slots (each runs one tile at a time). */
  concurrency?: number;
  signal?: AbortSignal;
  onStatus?: (status: JobStatusMessage) => void;
  /** The job's data summary, before any scoring. */
  onPlanned?: (description: PlanDescription) => void;
  log?: Logger;
  conflictTolerance?: number;
  /** Every story entry of the job, as it happens (tests). */
  onStory?: (entry: StoryEntry) => void;
  /** Wraps the in-process result path (tests: a sender that loses messages). */
  wrapSender?: (sender: ResultSender) => ResultSender;
  /** Keep the coordinator's data (job state, story) here instead of a temporary directory. */
  dataDir?: string;
  /** Feed the job's and the worker's metrics into this registry (--metrics). */
  metrics?: Registry;
  /** Run exact candidate searches as search tiles on the in-process worker (default: in the job's thread). */
  searchOnWorkers?: boolean;
};

export type EmbeddedOutcome = { status: JobStatusMessage; summary: string | null; jobId: string };

/**
 * The embedded default (DESIGN.md §5): the coordinator and a worker in one process, over the
 * in-memory bus and a direct result path: the same code a cluster runs, without NATS or gRPC.
 * A conflict, a cancel (the signal) and a worker that retires end the job exactly as in a cluster.
 */
export async function runEmbeddedJob(spec: JobSpec, o: EmbeddedOptions): Promise<EmbeddedOutcome> {
  const dataDir = o.dataDir ?? (await mkdtemp(join(tmpdir(), "delift-embedded-")));
  const queue = new MemoryTileQueue();
  const jobsKv = new MemoryKeyValue();
  const blobs = new LocalBlobStore();
  const log = o.log ?? silentLogger();
  const coordinator = await Coordinator.start({
    queue,
    jobsKv,
    blobs,
    store: await TileStore.open(o.storeDir),
    dataDir,
    log,
    resultDirFor: () => o.out,
    onPlanned: (_jobId, description) => o.onPlanned?.(description),
    conflictTolerance: o.conflictTolerance,
    searchOnWorkers: o.searchOnWorkers === true,
  });
  const unsubscribe = o.onStory ? coordinator.onStory(o.onStory) : () => undefined;
  const jobMetrics = o.metrics ? new JobMetrics(o.metrics, { statuses: () => coordinator.list() }) : null;
  const unsubscribeMetrics = jobMetrics ? coordinator.onStory((e) => jobMetrics.observe(e)) : () => undefined;
  const models = new ModelCache(blobs, join(dataDir, "models"), { device: o.device, threads: o.threads });
  const direct = new DirectResultSender(coordinator, "embedded");
  const worker = new WorkerLoop({
    workerId: "embedded",
    source: queue,
    jobsKv,
    workersKv: null,
    models,
    corpora: new CorpusCache(blobs, join(dataDir, "corpus-fetch")),
    blobs,
    searchDir: join(dataDir, "search-fetch"),
    sender: o.wrapSender ? o.wrapSender(direct) : direct,
    concurrency: o.concurrency ?? 1,
    device: o.device,
    log,
    pollMs: 100,
    drainMs: 0,
    ...(o.metrics ? { events: new WorkerMetrics(o.metrics, o.concurrency ?? 1) } : {}),
  });
  worker.start();
  try {
    const jobId = await coordinator.submit(spec);
    // The only worker retiring leaves nobody to compute the job: it fails, with the worker's reason.
    worker.onRetire((err) => coordinator.fail(jobId, err.message));
    const status = await new Promise<JobStatusMessage>((resolve) => {
      const onAbort = () => coordinator.cancel(jobId, "interrupted");
      if (o.signal?.aborted) onAbort();
      else o.signal?.addEventListener("abort", onAbort, { once: true });
      const stop = coordinator.watch(jobId, (s) => {
        o.onStatus?.(s);
        if (TERMINAL_JOB_STATES.has(s.state as JobState)) {
          o.signal?.removeEventListener("abort", onAbort);
          queueMicrotask(() => stop());
          resolve(s);
        }
      });
    });
    await coordinator.whenSettled(jobId);
    return { status, summary: coordinator.result(jobId).summary, jobId };
  } finally {
    unsubscribe();
    unsubscribeMetrics();
    await worker.stop();
    await models.dispose();
    await coordinator.close();
    await queue.close();
    if (!o.dataDir) await rm(dataDir, { recursive: true, force: true });
  }
}
