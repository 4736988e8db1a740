import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Device, type JobStatusMessage, LocalBlobStore, MemoryKeyValue, MemoryTileQueue } from "../../../common/src/mod.js";
import { Coordinator, type JobSpec, type JobState, TERMINAL_JOB_STATES, TileStore, type PlannedJob } from "../../../coordinator/src/mod.js";
import { ModelCache, WorkerLoop } from "../../../worker/src/mod.js";
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
  /** The job's loaded inputs and tiles, before any scoring (for the data summary). */
  onPlanned?: (planned: PlannedJob) => void;
  log?: (line: string) => void;
};

export type EmbeddedOutcome = { status: JobStatusMessage; summary: string | null };

/**
 * The embedded default (DESIGN.md §5): the coordinator and a worker in one process, over the
 * in-memory bus and a direct result path: the same code a cluster runs, without NATS or gRPC.
 */
export async function runEmbeddedJob(spec: JobSpec, o: EmbeddedOptions): Promise<EmbeddedOutcome> {
  const dataDir = await mkdtemp(join(tmpdir(), "delift-embedded-"));
  const queue = new MemoryTileQueue();
  const jobsKv = new MemoryKeyValue();
  const blobs = new LocalBlobStore();
  const log = o.log ?? (() => undefined);
  const coordinator = await Coordinator.start({
    queue,
    jobsKv,
    blobs,
    store: await TileStore.open(o.storeDir),
    dataDir,
    log,
    resultDirFor: () => o.out,
    onPlanned: (_jobId, planned) => o.onPlanned?.(planned),
  });
  const models = new ModelCache(blobs, join(dataDir, "models"), { device: o.device, threads: o.threads });
  const worker = new WorkerLoop({
    workerId: "embedded",
    source: queue,
    jobsKv,
    workersKv: null,
    models,
    sender: new DirectResultSender(coordinator, "embedded"),
    concurrency: o.concurrency ?? 1,
    device: o.device,
    log,
    pollMs: 100,
    drainMs: 0,
  });
  worker.start();
  try {
    const jobId = await coordinator.submit(spec);
    const status = await new Promise<JobStatusMessage>((resolve) => {
      const onAbort = () => coordinator.cancel(jobId);
      o.signal?.addEventListener("abort", onAbort, { once: true });
      const stop = coordinator.watch(jobId, (s) => {
        o.onStatus?.(s);
        if (TERMINAL_JOB_STATES.has(s.state as JobState)) {
          o.signal?.removeEventListener("abort", onAbort);
          queueMicrotask(() => stop());
          resolve(s);
        }
      });
    });
    return { status, summary: coordinator.result(jobId).summary };
  } finally {
    await worker.stop();
    await models.dispose();
    await coordinator.close();
    await queue.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}
