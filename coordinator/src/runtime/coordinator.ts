import { randomBytes } from "node:crypto";
import { ACTIVE_JOBS_KEY, type BlobStore, encodeTileMessage, encodeWorkSpec, type JobStatusMessage, type KeyValueBucket, ProtocolError, statusKey, type TileOutput, type TileQueue, workKey } from "../../../common/src/mod.js";
import type { JobSpec } from "../jobs/job-spec.js";
import { handleJobEvent, newJob, TERMINAL_JOB_STATES, type JobEffect, type JobEvent, type JobRecord } from "../jobs/job-state.js";
import { tilePairCount, type TileSpec } from "../plan/tile-spec.js";
import { tileWork } from "../plan/tile-work.js";
import type { TileStore, PutOutcome } from "../store/tile-store.js";
import { UnknownJobError, JobNotReadyError } from "./errors.js";
import { finishJob } from "./finish-job.js";
import { listSavedJobs, resultDir, saveSpec, saveState } from "./job-files.js";
import { jobStatus } from "./job-status.js";
import { planJob, publishModel, workSpecFor, type PlannedJob } from "./plan-job.js";

export type CoordinatorDeps = {
  queue: TileQueue;
  jobsKv: KeyValueBucket;
  blobs: BlobStore;
  store: TileStore;
  dataDir: string;
  log?: (line: string) => void;
  maxTileTokens?: number;
  /** Where a job's result goes (default: <dataDir>/jobs/<id>/result). */
  resultDirFor?: (jobId: string) => string;
  /** Called once a job's inputs are loaded and its tiles planned, before any is published. */
  onPlanned?: (jobId: string, planned: PlannedJob) => void;
};

export type ResultUpload = {
  jobId: string;
  tileId: string;
  attempt: number;
  workerId: string;
  output: TileOutput;
  computeSeconds: number;
};

type JobEntry = {
  record: JobRecord;
  spec: JobSpec;
  planned: PlannedJob | null;
  finishedAt: number | null;
  publishing: boolean;
  publishAgain: boolean;
  retryTimer: NodeJS.Timeout | null;
  saveTimer: NodeJS.Timeout | null;
  lastSavedState: string | null;
  listeners: Set<(status: JobStatusMessage) => void>;
  loadSeconds: number;
  summary: string | null;
  traffic: { tileBytes: number; resultBytes: number };
};

const SAVE_INTERVAL_MS = 250;
const RETRY_MS = 1000;

/**
 * The coordinator (DESIGN.md §5): accepts jobs, plans tiles, publishes them on the tile queue,
 * stores results durably and idempotently, then runs the selection. Job and tile states live in
 * the pure state machine (jobs/job-state.ts); this class carries out its effects against the bus,
 * the tile store and the disk. It resumes unfinished jobs after a restart.
 */
export class Coordinator {
  private readonly jobs = new Map<string, JobEntry>();
  private readonly log: (line: string) => void;
  private closed = false;

  private constructor(private readonly deps: CoordinatorDeps) {
    this.log = deps.log ?? (() => undefined);
  }

  static async start(deps: CoordinatorDeps): Promise<Coordinator> {
    const c = new Coordinator(deps);
    deps.queue.onMaxDeliveries((jobId, tileId) => c.event(jobId, { type: "tile-max-deliveries", tileId }));
    await c.resumeSaved();
    return c;
  }

  /** Registers a job and starts planning it; returns its id at once. */
  async submit(spec: JobSpec): Promise<string> {
    const id = newJobId();
    const entry = this.addEntry(id, spec, newJob(id, Date.now()));
    await saveSpec(this.deps.dataDir, id, spec);
    await this.persist(entry);
    this.log(`job ${id}: submitted (${spec.kind}, ${spec.selection.stage}, data ${spec.data})`);
    void this.plan(entry, false);
    return id;
  }

  cancel(jobId: string): string {
    const entry = this.entry(jobId);
    this.event(jobId, { type: "cancel", reason: "cancelled by user" });
    return entry.record.state;
  }

  status(jobId: string): JobStatusMessage {
    const e = this.entry(jobId);
    return jobStatus(e.record, e.spec.selection.stage, Date.now(), e.finishedAt, e.traffic);
  }

  list(): JobStatusMessage[] {
    return [...this.jobs.values()].map((e) => jobStatus(e.record, e.spec.selection.stage, Date.now(), e.finishedAt, e.traffic));
  }

  /** Calls `listener` with the job's status after every change; returns the unsubscribe. */
  watch(jobId: string, listener: (status: JobStatusMessage) => void): () => void {
    const entry = this.entry(jobId);
    entry.listeners.add(listener);
    listener(this.status(jobId));
    return () => entry.listeners.delete(listener);
  }

  /** Where a finished job's files are, and its one-line summary. */
  result(jobId: string): { dir: string; state: string; summary: string | null; error: string | null } {
    const e = this.entry(jobId);
    return { dir: this.resultDirOf(jobId), state: e.record.state, summary: e.summary, error: e.record.error };
  }

  tileStarted(jobId: string, tileId: string, workerId: string, attempt: number): { wanted: boolean } {
    const entry = this.jobs.get(jobId);
    if (!entry || entry.record.state !== "scoring") return { wanted: false };
    const tile = entry.record.tiles.get(tileId);
    if (!tile || tile.state === "stored" || tile.state === "failed") return { wanted: false };
    this.event(jobId, { type: "tile-started", tileId, worker: workerId, attempt });
    return { wanted: true };
  }

  tileFailed(jobId: string, tileId: string, workerId: string, attempt: number, error: string, final: boolean): void {
    if (!this.jobs.has(jobId)) return;
    this.log(`job ${jobId}: tile ${tileId.slice(0, 12)} failed on ${workerId} (delivery ${attempt}${final ? ", last" : ""}): ${error}`);
    this.event(jobId, { type: "tile-failed", tileId, worker: workerId, attempt, error, final });
  }

  /**
   * Validates a tile result against the plan, stores it durably, then records it. Resolves only
   * once the tile is on disk: the worker acks its message after this.
   */
  async acceptResult(r: ResultUpload): Promise<PutOutcome> {
    const entry = this.jobs.get(r.jobId);
    if (!entry) throw new UnknownJobError(r.jobId);
    if (!entry.planned) throw new JobNotReadyError(r.jobId);
    const tile = entry.planned.tiles.get(r.tileId);
    if (!tile) throw new ProtocolError(`job ${r.jobId} has no tile ${r.tileId}`);
    const expected = tilePairCount(tile);
    const d = r.output.distances;
    if (d.length !== expected) throw new ProtocolError(`tile ${r.tileId}: ${d.length} values, expected ${expected}`);
    for (let k = 0; k < d.length; k++) {
      if (!(d[k] >= 0 && d[k] <= 1)) throw new ProtocolError(`tile ${r.tileId}: value ${k} is ${d[k]}, a distance must be within [0, 1]`);
    }
    if (!Number.isInteger(r.output.truncated) || r.output.truncated < 0 || r.output.truncated > expected) {
      throw new ProtocolError(`tile ${r.tileId}: truncated count ${r.output.truncated} out of range`);
    }
    const outcome = await this.deps.store.put(r.tileId, r.output);
    entry.traffic.resultBytes += d.byteLength;
    this.event(r.jobId, { type: "tile-stored", tileId: r.tileId, worker: r.workerId, attempt: r.attempt, seconds: r.computeSeconds, duplicate: outcome === "duplicate" });
    return outcome;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const e of this.jobs.values()) {
      if (e.retryTimer) clearTimeout(e.retryTimer);
      if (e.saveTimer) clearTimeout(e.saveTimer);
    }
    await Promise.all([...this.jobs.values()].map((e) => this.persist(e).catch(() => undefined)));
  }

  // ---- events and effects ----------------------------------------------------------------------

  private event(jobId: string, event: JobEvent): void {
    const entry = this.jobs.get(jobId);
    if (!entry) return;
    let effects: JobEffect[];
    const before = entry.record.state;
    try {
      effects = handleJobEvent(entry.record, event, Date.now());
    } catch (err) {
      this.log(`job ${jobId}: ${(err as Error).message}`);
      return;
    }
    if (entry.record.state !== before) {
      this.log(`job ${jobId}: ${before} -> ${entry.record.state}${entry.record.error ? ` (${entry.record.error})` : ""}`);
      if (TERMINAL_JOB_STATES.has(entry.record.state)) entry.finishedAt = Date.now();
    }
    for (const effect of effects) this.apply(entry, effect);
    const status = this.status(jobId);
    for (const l of entry.listeners) l(status);
  }

  private apply(entry: JobEntry, effect: JobEffect): void {
    switch (effect.type) {
      case "publish-more":
        void this.publishMore(entry);
        break;
      case "run-selection":
        void this.finish(entry);
        break;
      case "save-status":
        this.scheduleSave(entry);
        break;
      case "release-queue":
        void this.deps.queue.release(entry.record.id).catch((err) => this.log(`job ${entry.record.id}: releasing its queue: ${(err as Error).message}`));
        break;
    }
  }

  private async plan(entry: JobEntry, resume: boolean): Promise<void> {
    const id = entry.record.id;
    const started = Date.now();
    try {
      const planned = await planJob(entry.spec, this.deps.maxTileTokens);
      this.deps.onPlanned?.(id, planned);
      const files = await publishModel(planned.inputs, this.deps.blobs);
      await this.deps.jobsKv.put(workKey(id), encodeWorkSpec(workSpecFor(id, entry.spec, planned, files)));
      await this.deps.queue.open(id, { ackWaitMs: entry.spec.queue.ackWaitSeconds * 1000, maxDeliver: entry.spec.queue.maxDeliver });
      if (resume) await this.deps.queue.purge(id);
      entry.planned = planned;
      entry.loadSeconds = (Date.now() - started) / 1000;
      if (entry.record.state !== "planning") return;
      const tiles = [...planned.tiles.values()].map((t) => ({ id: t.id, pairs: tilePairCount(t), stored: this.deps.store.has(t.id) }));
      this.log(`job ${id}: ${planned.sets.v.length} samples, ${tiles.length} tiles (${tiles.filter((t) => t.stored).length} already stored)`);
      this.event(id, { type: "planned", tiles });
    } catch (err) {
      this.event(id, { type: "planning-failed", error: (err as Error).message });
    }
  }

  private async publishMore(entry: JobEntry): Promise<void> {
    if (entry.publishing) {
      entry.publishAgain = true;
      return;
    }
    entry.publishing = true;
    try {
      do {
        entry.publishAgain = false;
        const job = entry.record;
        if (job.state !== "scoring" || !entry.planned || this.closed) return;
        let inFlight = 0;
        const waiting: TileSpec[] = [];
        for (const [id, t] of job.tiles) {
          if (t.state === "queued" || t.state === "running") inFlight++;
          else if (t.state === "planned") waiting.push(entry.planned.tiles.get(id)!);
        }
        const batch = waiting.slice(0, Math.max(0, entry.spec.queue.maxQueued - inFlight));
        const published: string[] = [];
        try {
          for (const tile of batch) {
            const data = encodeTileMessage({ jobId: job.id, tileId: tile.id, work: tileWork(tile, entry.planned.sets.tokens) });
            await this.deps.queue.publish(job.id, tile.id, data);
            entry.traffic.tileBytes += data.byteLength;
            published.push(tile.id);
          }
        } catch (err) {
          this.log(`job ${job.id}: publishing tiles: ${(err as Error).message}; retrying`);
          this.retryPublish(entry);
        }
        if (published.length > 0) this.event(job.id, { type: "tiles-published", tileIds: published });
      } while (entry.publishAgain);
    } finally {
      entry.publishing = false;
    }
  }

  private retryPublish(entry: JobEntry): void {
    if (entry.retryTimer || this.closed) return;
    entry.retryTimer = setTimeout(() => {
      entry.retryTimer = null;
      void this.publishMore(entry);
    }, RETRY_MS);
  }

  private async finish(entry: JobEntry): Promise<void> {
    const id = entry.record.id;
    try {
      const planned = entry.planned!;
      const result = await finishJob(
        entry.spec,
        planned,
        (t) => this.deps.store.get(t.id),
        this.resultDirOf(id),
        { loadSeconds: entry.loadSeconds, kernelSeconds: (Date.now() - entry.record.createdAt) / 1000 - entry.loadSeconds, startedAt: entry.record.createdAt },
        { computed: entry.record.counts.tilesDone - entry.record.counts.tilesReused, reused: entry.record.counts.tilesReused },
      );
      entry.summary = result.summary;
      this.log(`job ${id}: ${result.summary}`);
      this.event(id, { type: "selection-done" });
    } catch (err) {
      this.event(id, { type: "selection-failed", error: (err as Error).message });
    }
  }

  // ---- persistence ----------------------------------------------------------------------------

  private scheduleSave(entry: JobEntry): void {
    const stateChanged = entry.lastSavedState !== entry.record.state;
    if (entry.saveTimer && !stateChanged) return;
    if (entry.saveTimer) clearTimeout(entry.saveTimer);
    entry.saveTimer = setTimeout(
      () => {
        entry.saveTimer = null;
        void this.persist(entry).catch((err) => {
          this.log(`job ${entry.record.id}: saving status: ${(err as Error).message}; retrying`);
          this.scheduleSave(entry);
        });
      },
      stateChanged ? 0 : SAVE_INTERVAL_MS,
    );
  }

  private async persist(entry: JobEntry): Promise<void> {
    const r = entry.record;
    const stateChanged = entry.lastSavedState !== r.state;
    entry.lastSavedState = r.state;
    await saveState(this.deps.dataDir, r.id, { state: r.state, error: r.error, createdAt: r.createdAt, finishedAt: entry.finishedAt, summary: entry.summary, failedDuring: r.failedDuring });
    const status = this.status(r.id);
    await this.deps.jobsKv.put(statusKey(r.id), new TextEncoder().encode(JSON.stringify(status)));
    if (stateChanged) await this.saveActive();
  }

  private async saveActive(): Promise<void> {
    const active = [...this.jobs.values()].filter((e) => e.record.state === "scoring").map((e) => e.record.id);
    await this.deps.jobsKv.put(ACTIVE_JOBS_KEY, new TextEncoder().encode(JSON.stringify(active)));
  }

  private async resumeSaved(): Promise<void> {
    for (const saved of await listSavedJobs(this.deps.dataDir)) {
      const record = newJob(saved.jobId, saved.state.createdAt);
      const terminal = TERMINAL_JOB_STATES.has(saved.state.state);
      if (terminal) {
        record.state = saved.state.state;
        record.error = saved.state.error;
        record.failedDuring = (saved.state.failedDuring as JobRecord["failedDuring"]) ?? null;
      }
      const entry = this.addEntry(saved.jobId, saved.spec, record);
      entry.finishedAt = saved.state.finishedAt;
      entry.summary = saved.state.summary ?? null;
      entry.lastSavedState = terminal ? record.state : null;
      if (!terminal) {
        this.log(`job ${saved.jobId}: resuming (was ${saved.state.state})`);
        await this.persist(entry).catch(() => undefined);
        void this.plan(entry, true);
      }
    }
    await this.saveActive().catch(() => undefined);
  }

  private addEntry(id: string, spec: JobSpec, record: JobRecord): JobEntry {
    const entry: JobEntry = {
      record,
      spec,
      planned: null,
      finishedAt: null,
      publishing: false,
      publishAgain: false,
      retryTimer: null,
      saveTimer: null,
      lastSavedState: null,
      listeners: new Set(),
      loadSeconds: 0,
      summary: null,
      traffic: { tileBytes: 0, resultBytes: 0 },
    };
    this.jobs.set(id, entry);
    return entry;
  }

  private resultDirOf(jobId: string): string {
    return this.deps.resultDirFor?.(jobId) ?? resultDir(this.deps.dataDir, jobId);
  }

  private entry(jobId: string): JobEntry {
    const e = this.jobs.get(jobId);
    if (!e) throw new UnknownJobError(jobId);
    return e;
  }
}

function newJobId(): string {
  return `j${Date.now().toString(36)}${randomBytes(3).toString("hex")}`;
}
