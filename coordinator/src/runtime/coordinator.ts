import { randomBytes } from "node:crypto";
import { existsSync, renameSync } from "node:fs";
import { mkdir, readdir, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import {
  AbortedError,
  ACTIVE_JOBS_KEY,
  ActiveJobsRecord,
  assertReplaceable,
  type BlobStore,
  CoordinatorUnavailableError,
  encodeWorkSpec,
  errorFields,
  InvalidRequestError,
  type JobStatusMessage,
  type PhaseProgress,
  JobStatusRecord,
  KERNEL_FILES,
  type KeyValueBucket,
  type Logger,
  sameMac,
  silentLogger,
  statusKey,
  type StoredTileMessage,
  TILE_KEY_BYTES,
  type TileOutput,
  type TileQueue,
  UnknownJobError,
  verifyTileMac,
  workKey,
} from "../../../common/src/mod.js";
import type { JobSpec } from "../jobs/job-spec.js";
import {
  LIVE_JOB_STATES,
  newJob,
  TERMINAL_JOB_STATES,
  TILE_JOB_STATES,
  type FailureKind,
  type FailureReply,
  type Instruction,
  type JobEvent,
  type JobRecord,
  type JobSettings,
  type JobState,
  type Reply,
  type StartedReply,
  type TaskStart,
  type UploadReply,
} from "../jobs/job-state.js";
import { handleStimulus } from "../jobs/machine.js";
import { storyEntries, type StoryEntry } from "../jobs/story.js";
import { SELECTION_FILES } from "../select/write-selection.js";
import { inProcessHosts, runShardedJobSelection, type SelectionHosts } from "../select/sharded-job.js";
import { publishCorpusObjects } from "../store/corpus-objects.js";
import { syncDir, type TileStore } from "../store/tile-store.js";
import { announceHold, holdAt, holdRequested } from "../tasks/hold.js";
import { JobThread } from "../tasks/job-thread.js";
import { TaskRunner, type TaskBody, type TaskContext } from "../tasks/task-runner.js";
import type { PlanDescription } from "../tasks/thread-ops.js";
import { jobDir, listSavedJobs, resultDir, saveKey, saveSpec, saveState, storyPath, type SavedJobState } from "./job-files.js";
import { jobStatus } from "./job-status.js";
import { publishModel, workSpecFor, type PlannedJob } from "./plan-job.js";
import { embedResultProblem } from "./embeddings.js";
import { StoryLog } from "./story-log.js";

export type CoordinatorDeps = {
  queue: TileQueue;
  jobsKv: KeyValueBucket;
  blobs: BlobStore;
  store: TileStore;
  dataDir: string;
  log?: Logger;
  maxTileTokens?: number;
  /** Where a job's result goes (default: <dataDir>/jobs/<id>/result). */
  resultDirFor?: (jobId: string) => string;
  /** Called once a job's inputs are loaded and its tiles planned, before any is published. */
  onPlanned?: (jobId: string, description: PlanDescription) => void;
  /** Largest absolute difference between two results of one tile that still counts as the same (default 1e-5). */
  conflictTolerance?: number;
  /** Where distributed selections run (a cluster: the workers over NATS); default: shard hosts in this process. */
  selectionHosts?: SelectionHosts;
  /**
   * Candidate searches (SE kernel) as search tiles on the workers (`--search-on workers`): exact
   * tiles, or cell-probe's per-cell tiles (k-means and probe tuning stay in the job's thread);
   * default false: the whole search in the job's thread.
   */
  searchOnWorkers?: boolean;
};

export const DEFAULT_CONFLICT_TOLERANCE = 1e-5;

export type ResultUpload = {
  jobId: string;
  tileId: string;
  attempt: number;
  workerId: string;
  /** The authentication code of the tile message the worker computed. */
  mac: string;
  output: TileOutput;
  computeSeconds: number;
};

type Upload = { output: TileOutput; worker: string; attempt: number; seconds: number };

type JobEntry = {
  record: JobRecord;
  spec: JobSpec | null;
  key: Uint8Array;
  thread: JobThread | null;
  /** Authentication codes of the tiles this session published. */
  macs: Map<string, string>;
  uploads: Map<string, Upload>;
  loadSeconds: number;
  listeners: Set<(status: JobStatusMessage) => void>;
  story: StoryLog;
  storySeq: number;
  stimulusSeq: number;
  reconcileTimer: NodeJS.Timeout | null;
  saveTimer: NodeJS.Timeout | null;
  saving: Promise<void>;
  lastSavedState: JobState | null;
  traffic: { tileBytes: number; resultBytes: number };
  /** The job's first tile was stored in this session (the "scoring" hold point). */
  storedOnce: boolean;
  /** The current phase's progress as its thread last reported it (cleared when the job's state changes). */
  phase: PhaseProgress | null;
  /** Floats per row of the job's embed tiles (its embeddings stage), from planning. */
  embedDim: number | null;
};

const SAVE_INTERVAL_MS = 250;

/**
 * The coordinator (DESIGN.md §5). Each job's state machine (jobs/machine.ts) is the only authority
 * over it; this class feeds it stimuli (requests from workers, task outcomes, reconcile ticks,
 * cancels), carries out the instructions it returns (start or abort tasks, reply, save), appends
 * every stimulus and change to the job's story, and resumes unfinished jobs after a restart.
 */
export class Coordinator {
  private readonly jobs = new Map<string, JobEntry>();
  private readonly log: Logger;
  private readonly runner: TaskRunner;
  private readonly requests = new Map<string, (reply: Reply) => void>();
  private readonly storyListeners = new Set<(entry: StoryEntry) => void>();
  private nextRequest = 1;
  private savingActive: Promise<void> = Promise.resolve();
  private closed = false;

  private constructor(private readonly deps: CoordinatorDeps) {
    this.log = deps.log ?? silentLogger();
    this.runner = new TaskRunner((jobId, event) => this.feed(jobId, event));
  }

  static async start(deps: CoordinatorDeps): Promise<Coordinator> {
    const c = new Coordinator(deps);
    deps.queue.onMaxDeliveries((m) => c.maxDeliveries(m));
    await c.resumeSaved();
    return c;
  }

  // ---- the API (gRPC and the embedded path call these) ---------------------------------------

  /** Registers a job and starts planning it; returns its id at once. */
  async submit(spec: JobSpec): Promise<string> {
    const id = newJobId();
    const key = randomBytes(TILE_KEY_BYTES);
    await saveSpec(this.deps.dataDir, id, spec);
    await saveKey(this.deps.dataDir, id, key);
    const t = Date.now();
    const settings = this.settingsFor(spec);
    const entry = this.addEntry(newJob(id, t, settings), spec, key);
    this.log.info({ job: id, kind: spec.kind, stage: spec.selection.stage, data: spec.data }, `job ${id}: submitted`);
    this.feed(id, { type: "submitted", settings }, t);
    await entry.saving;
    return id;
  }

  /** Asks the job to stop; returns its state right after (cancelling while its tasks stop, then cancelled). */
  cancel(jobId: string, reason = "cancelled by user"): string {
    const entry = this.entry(jobId);
    this.feed(jobId, { type: "cancel", reason });
    return entry.record.state;
  }

  /** Fails a running job from outside (the embedded worker retired, say). */
  fail(jobId: string, reason: string): void {
    this.feed(jobId, { type: "fail", reason });
  }

  status(jobId: string): JobStatusMessage {
    const e = this.entry(jobId);
    return jobStatus(e.record, e.spec?.selection.stage ?? "", Date.now(), e.record.finishedAt, e.traffic, LIVE_JOB_STATES.has(e.record.state) ? e.phase : null);
  }

  list(): JobStatusMessage[] {
    return [...this.jobs.keys()].map((id) => this.status(id));
  }

  /** Calls `listener` with the job's status after every change; returns the unsubscribe. */
  watch(jobId: string, listener: (status: JobStatusMessage) => void): () => void {
    const entry = this.entry(jobId);
    entry.listeners.add(listener);
    listener(this.status(jobId));
    return () => entry.listeners.delete(listener);
  }

  /** Every story entry of every job, as it is appended (metrics, tests). Returns the unsubscribe. */
  onStory(listener: (entry: StoryEntry) => void): () => void {
    this.storyListeners.add(listener);
    return () => this.storyListeners.delete(listener);
  }

  /** Where a job's story is kept. */
  storyFile(jobId: string): string {
    this.entry(jobId);
    return storyPath(this.deps.dataDir, jobId);
  }

  /** The job's story so far, flushed to disk first. */
  async story(jobId: string): Promise<string> {
    const entry = this.entry(jobId);
    await entry.story.sync().catch(() => undefined);
    return entry.story.path;
  }

  /** The job's record (read-only use: tests compare it with one rebuilt from the story). */
  record(jobId: string): JobRecord {
    return this.entry(jobId).record;
  }

  /** Resolves once the job has ended and released its queue, records and thread. */
  whenSettled(jobId: string): Promise<void> {
    const entry = this.entry(jobId);
    const settled = () => TERMINAL_JOB_STATES.has(entry.record.state) && entry.record.tasks.size === 0;
    if (settled()) return Promise.resolve();
    return new Promise((resolve) => {
      const l = () => {
        if (!settled()) return;
        entry.listeners.delete(l);
        resolve();
      };
      entry.listeners.add(l);
    });
  }

  /** Where a finished job's files are, and its one-line summary. */
  result(jobId: string): { dir: string; state: string; summary: string | null; error: string | null } {
    const e = this.entry(jobId);
    return { dir: this.resultDirOf(jobId), state: e.record.state, summary: e.record.summary, error: e.record.error };
  }

  /** The job's tile key, for a worker that asks over the authenticated channel. */
  jobKey(jobId: string): Uint8Array {
    const e = this.entry(jobId);
    if (!LIVE_JOB_STATES.has(e.record.state)) throw new UnknownJobError(`job ${jobId} is ${e.record.state}: no key`);
    return e.key;
  }

  async tileStarted(jobId: string, tileId: string, workerId: string, attempt: number): Promise<StartedReply> {
    return (await this.ask(jobId, (request) => ({ type: "tile-started", request, tileId, worker: workerId, attempt }))) as StartedReply;
  }

  async tileProgress(jobId: string, tileId: string, workerId: string, attempt: number): Promise<StartedReply> {
    return (await this.ask(jobId, (request) => ({ type: "tile-progress", request, tileId, worker: workerId, attempt }))) as StartedReply;
  }

  async tileFailed(jobId: string, tileId: string, workerId: string, attempt: number, error: string, kind: FailureKind): Promise<FailureReply> {
    return (await this.ask(jobId, (request) => ({ type: "tile-failed", request, tileId, worker: workerId, attempt, error, kind }))) as FailureReply;
  }

  /**
   * A tile result: checked against the plan and the message the coordinator published, then
   * handed to the machine, which stores it, or finds it a duplicate, a conflict or stale. Resolves
   * once decided (a stored result is on disk): the worker acks its message after this.
   */
  async acceptResult(r: ResultUpload): Promise<"stored" | "duplicate" | "gone" | "conflict"> {
    const entry = this.jobs.get(r.jobId);
    if (!entry) throw UnknownJobError.forJob(r.jobId);
    if (entry.record.state === "planning") throw new CoordinatorUnavailableError(`job ${r.jobId} is still planning`);
    const problem = TILE_JOB_STATES.has(entry.record.state) ? await this.checkUpload(entry, r) : null;
    const request = `r${this.nextRequest++}`;
    if (!problem) entry.uploads.set(request, { output: r.output, worker: r.workerId, attempt: r.attempt, seconds: r.computeSeconds });
    try {
      const reply = (await this.askWith(entry, request, { type: "result-received", request, tileId: r.tileId, worker: r.workerId, attempt: r.attempt, problem })) as UploadReply;
      if (reply.outcome === "rejected") throw new InvalidRequestError(reply.message);
      if (reply.outcome === "unavailable") throw new CoordinatorUnavailableError(reply.message);
      return reply.outcome;
    } finally {
      entry.uploads.delete(request);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const e of this.jobs.values()) {
      if (e.reconcileTimer) clearInterval(e.reconcileTimer);
      if (e.saveTimer) clearTimeout(e.saveTimer);
    }
    await this.runner.close();
    for (const resolve of this.requests.values()) resolve({ outcome: "unavailable", message: "the coordinator is stopping" });
    this.requests.clear();
    await Promise.all(
      [...this.jobs.values()].map(async (e) => {
        await e.thread?.terminate();
        e.thread = null;
        await e.saving.catch(() => undefined);
        await this.persist(e).catch(() => undefined);
        await e.story.close();
      }),
    );
  }

  // ---- stimuli, instructions and the story -------------------------------------------------------

  private feed(jobId: string, event: JobEvent, t = Date.now()): void {
    const entry = this.jobs.get(jobId);
    if (!entry) return;
    const record = entry.record;
    const stimulus = { id: `s${record.session > 0 ? `${record.session}.` : ""}${entry.stimulusSeq++}`, t, event };
    let out;
    try {
      out = handleStimulus(record, stimulus);
    } catch (err) {
      // An impossible transition is a bug in the machine: say so loudly, keep serving.
      this.log.error({ job: jobId, ...errorFields(err) }, `job ${jobId}: ${(err as Error).message}`);
      return;
    }
    const entries = storyEntries(jobId, stimulus, out.changes, () => entry.storySeq++);
    entry.story.append(entries);
    for (const e of entries) this.tell(e);
    for (const listener of this.storyListeners) for (const e of entries) listener(e);
    if (out.changes.some((c) => c.kind === "job")) entry.phase = null;
    for (const i of out.instructions) this.carryOut(entry, i);
    if (out.changes.some((c) => c.kind === "job")) void entry.story.sync().catch(() => undefined);
    // A finished, released job writes no more (a late stimulus reopens the file): close it.
    if (record.released && record.tasks.size === 0) void entry.story.close();
    const status = this.status(jobId);
    for (const l of [...entry.listeners]) l(status);
  }

  /** Logs what matters of a story entry: job changes and warnings at info/warn, the rest at debug. */
  private tell(e: StoryEntry): void {
    const job = e.job;
    switch (e.kind) {
      case "job":
        if (e.to === "failed") this.log.warn({ job, from: e.from, to: e.to, error: e.error }, `job ${job}: ${e.from} -> failed: ${e.error}`);
        else this.log.info({ job, from: e.from, to: e.to }, `job ${job}: ${e.from} -> ${e.to}`);
        break;
      case "tile":
        this.log.debug({ job, tile: e.tile, worker: e.worker ?? undefined, from: e.from, to: e.to, attempt: e.attempt }, `job ${job}: tile ${e.tile.slice(0, 12)} ${e.from} -> ${e.to}`);
        break;
      case "rejected":
        this.log.debug({ job, stimulus: e.stimulus, event: e.event }, `job ${job}: ${e.event} not accepted: ${e.reason}`);
        break;
      case "note":
        this.log[e.level]({ job, tile: e.tile, worker: e.worker, maxDiff: e.maxDiff }, `job ${job}: ${e.message}`);
        break;
      case "task":
        this.log.debug({ job, task: e.task, phase: e.phase }, `job ${job}: task ${e.task} ${e.phase}`);
        break;
      case "stimulus":
        if (e.event.type === "task-failed" && !e.event.aborted) this.log.warn({ job, task: e.event.task, error: e.event.error, errorType: e.event.errorName }, `job ${job}: task ${e.event.task} failed: ${e.event.error}`);
        else if (e.event.type === "tile-failed") this.log.warn({ job, tile: e.event.tileId, worker: e.event.worker, attempt: e.event.attempt, kind: e.event.kind, error: e.event.error }, `job ${job}: tile ${e.event.tileId.slice(0, 12)} failed on ${e.event.worker}: ${e.event.error}`);
        break;
    }
  }

  private carryOut(entry: JobEntry, i: Instruction): void {
    const jobId = entry.record.id;
    switch (i.type) {
      case "start":
        return this.startTask(entry, i);
      case "abort":
        return this.runner.abort(jobId, i.task, entry.record.cancelReason ?? entry.record.error ?? "the job ended");
      case "reply": {
        const resolve = this.requests.get(i.request);
        this.requests.delete(i.request);
        resolve?.(i.reply);
        return;
      }
      case "arm-reconcile":
        if (entry.reconcileTimer) clearInterval(entry.reconcileTimer);
        entry.reconcileTimer = setInterval(() => this.feed(jobId, { type: "reconcile-due" }), Math.max(200, i.everyMs));
        entry.reconcileTimer.unref();
        return;
      case "disarm-reconcile":
        if (entry.reconcileTimer) clearInterval(entry.reconcileTimer);
        entry.reconcileTimer = null;
        return;
      case "save":
        return this.scheduleSave(entry);
    }
  }

  /** Feeds a request stimulus and waits for the machine's reply to it. */
  private ask(jobId: string, event: (request: string) => JobEvent): Promise<Reply> {
    const entry = this.jobs.get(jobId);
    if (!entry) return Promise.reject(UnknownJobError.forJob(jobId));
    const request = `r${this.nextRequest++}`;
    return this.askWith(entry, request, event(request));
  }

  private askWith(entry: JobEntry, request: string, event: JobEvent): Promise<Reply> {
    if (this.closed) return Promise.reject(new CoordinatorUnavailableError("the coordinator is stopping"));
    const reply = new Promise<Reply>((resolve) => this.requests.set(request, resolve));
    this.feed(entry.record.id, event);
    return reply;
  }

  private maxDeliveries(m: StoredTileMessage): void {
    const entry = this.jobs.get(m.jobId);
    if (!entry) return;
    // A message that is not the job's own (forged, altered, moved from another job) proves nothing.
    if (!verifyTileMac(entry.key, m.jobId, m.tileId, m.data, m.mac)) {
      this.log.warn({ job: m.jobId, tile: m.tileId }, `job ${m.jobId}: ignored a delivery-limit advisory for a message that is not the job's own (bad authentication code)`);
      return;
    }
    this.feed(m.jobId, { type: "tile-max-deliveries", tileId: m.tileId });
  }

  // ---- tasks ----------------------------------------------------------------------------------

  private startTask(entry: JobEntry, i: Extract<Instruction, { type: "start" }> & TaskStart): void {
    const id = entry.record.id;
    const bodies: Record<TaskStart["kind"], () => TaskBody> = {
      plan: () => (ctx) => this.planTask(entry, ctx, (i as { resume: boolean }).resume),
      search: () => (ctx) => this.searchTask(entry, ctx),
      gather: () => (ctx) => this.gatherTask(entry, ctx),
      publish: () => (ctx) => this.publishTask(entry, ctx, (i as { tileIds: string[] }).tileIds),
      store: () => (ctx) => this.storeTask(entry, ctx, i as { tileId: string; request: string }),
      reconcile: () => (ctx) => this.reconcileTask(entry, ctx, (i as { tileIds: string[] }).tileIds),
      select: () => (ctx) => this.selectTask(entry, ctx),
      write: () => (ctx) => this.writeTask(entry, ctx),
      release: () => (ctx) => this.releaseTask(entry, ctx),
    };
    this.runner.start(id, i.task, i.kind, bodies[i.kind](), i.kind === "store" ? { request: (i as { request: string }).request } : {});
  }

  private threadOf(entry: JobEntry): JobThread {
    entry.thread ??= new JobThread(entry.record.id, (point) => announceHold(point, entry.record.id), (p) => this.phaseProgress(entry, p));
    return entry.thread;
  }

  /** A phase's progress from the job's thread: kept for the status, and sent to watchers at once. */
  private phaseProgress(entry: JobEntry, p: PhaseProgress): void {
    if (!LIVE_JOB_STATES.has(entry.record.state)) return;
    entry.phase = p;
    const status = this.status(entry.record.id);
    for (const l of [...entry.listeners]) l(status);
  }

  /** The candidate search phase (SE kernel on given embeddings), in the job's thread. */
  private async searchTask(entry: JobEntry, ctx: TaskContext): Promise<JobEvent> {
    const id = entry.record.id;
    const started = performance.now();
    const r = await this.threadOf(entry).call("search", { workers: this.deps.searchOnWorkers === true }, { signal: ctx.signal });
    if (r.work) {
      // The matrix blob goes to the object store once (content-named), before any tile naming it is published.
      const m = r.work.matrix;
      const sent = (await this.deps.blobs.has(m.name)) ? 0 : (await this.deps.blobs.putFile(m.name, m.path), m.bytes);
      ctx.signal.throwIfAborted();
      const tiles = r.work.tiles.map((t) => ({ id: t.id, pairs: t.pairs, stored: this.deps.store.has(t.id) }));
      this.log.info({ job: id, tiles: tiles.length, stored: tiles.filter((t) => t.stored).length, matrix: m.name, bytes: m.bytes, sent }, `job ${id}: candidate search as ${tiles.length} search tiles on the workers (${tiles.filter((t) => t.stored).length} already stored; matrix ${m.bytes} bytes, ${sent} sent to the object store)`);
      return { type: "search-done", task: ctx.id, tiles };
    }
    const how = r.searches.map((f) => `${f.method}${f.cells !== null ? ` (${f.cells} cells, ${f.probes} probes, sampled recall ${f.sampledRecall?.toFixed(3) ?? "-"})` : ""} in ${f.seconds.toFixed(1)} s`).join("; ");
    this.log.info({ job: id, nnz: r.nnz, seconds: (performance.now() - started) / 1000, searches: r.searches }, `job ${id}: candidate search done (${how || "dense: no search"}), kernel of ${r.nnz} entries`);
    return { type: "search-done", task: ctx.id };
  }

  /** The workers' search tiles, all stored: merged into the kernels' candidate lists in the job's thread. */
  private async gatherTask(entry: JobEntry, ctx: TaskContext): Promise<JobEvent> {
    const id = entry.record.id;
    const started = performance.now();
    const r = await this.threadOf(entry).call("gather", {}, { signal: ctx.signal });
    this.log.info({ job: id, nnz: r.nnz, seconds: (performance.now() - started) / 1000, searches: r.searches }, `job ${id}: candidate search done on the workers (${r.searches.map((f) => `${f.method}${f.cells !== null ? ` (${f.cells} cells, ${f.probes} probes, sampled recall ${f.sampledRecall?.toFixed(3) ?? "-"})` : ""} in ${f.seconds.toFixed(1)} s`).join("; ")}; lists merged in ${((performance.now() - started) / 1000).toFixed(1)} s), kernel of ${r.nnz} entries`);
    return { type: "search-done", task: ctx.id };
  }

  private async planTask(entry: JobEntry, ctx: TaskContext, resume: boolean): Promise<JobEvent> {
    const id = entry.record.id;
    const spec = entry.spec!;
    if (entry.thread) await entry.thread.terminate();
    entry.thread = null;
    const plan = await this.threadOf(entry).call(
      "plan",
      { spec, key: entry.key, storeDir: this.deps.store.dir, maxTileTokens: this.deps.maxTileTokens, describe: this.deps.onPlanned !== undefined },
      { signal: ctx.signal },
    );
    entry.loadSeconds = plan.loadSeconds;
    entry.embedDim = plan.embed?.dim ?? null;
    if (plan.description) this.deps.onPlanned?.(id, plan.description);
    // The model bundle and the work spec need only the bundle and the prompts; the samples stay in the thread.
    const planned = { inputs: { bundle: plan.bundle, prompts: plan.prompts } } as unknown as PlannedJob;
    const files = await publishModel(planned.inputs, this.deps.blobs);
    const corpusSent = plan.corpus ? await publishCorpusObjects(plan.corpus.files, this.deps.blobs, ctx.signal) : 0;
    if (plan.corpus) this.log.info({ job: id, corpus: plan.corpus.ref.digest, chunks: plan.corpus.chunks, bytes: plan.corpus.bytes, sent: corpusSent }, `job ${id}: corpus ${plan.corpus.ref.digest.slice(0, 12)} in ${plan.corpus.chunks} chunks (${plan.corpus.bytes} bytes, ${corpusSent} sent to the object store)`);
    ctx.signal.throwIfAborted();
    await this.deps.jobsKv.put(workKey(id), encodeWorkSpec(workSpecFor(id, spec, planned, files)));
    await this.deps.queue.open(id, { ackWaitMs: spec.queue.ackWaitSeconds * 1000, maxDeliver: spec.queue.maxDeliver });
    if (resume) await this.deps.queue.purge(id);
    await holdAt("planning", id, ctx.signal);
    const tiles = plan.tiles.map((t) => ({ id: t.id, pairs: t.pairs, stored: this.deps.store.has(t.id) }));
    this.log.info({ job: id, samples: plan.samples, tiles: tiles.length, stored: tiles.filter((t) => t.stored).length }, `job ${id}: ${plan.samples} samples, ${tiles.length} tiles (${tiles.filter((t) => t.stored).length} already stored)`);
    return { type: "plan-done", task: ctx.id, tiles, samples: plan.samples, ...(plan.search ? { search: true } : {}), ...(plan.embed ? { embed: true } : {}) };
  }

  private async publishTask(entry: JobEntry, ctx: TaskContext, tileIds: string[]): Promise<JobEvent> {
    const id = entry.record.id;
    let bytes = 0;
    for (let k = 0; k < tileIds.length; k += 16) {
      const messages = await this.threadOf(entry).call("tiles", { ids: tileIds.slice(k, k + 16) }, { signal: ctx.signal });
      for (const m of messages) {
        await retrying(() => this.deps.queue.publish(id, m.id, m.data, m.mac), ctx.signal, (err, wait) =>
          this.log.warn({ job: id, tile: m.id, ...errorFields(err) }, `job ${id}: publishing tile ${m.id.slice(0, 12)} failed (${(err as Error).message}); retrying in ${wait} ms`),
        );
        entry.macs.set(m.id, m.mac);
        bytes += m.data.byteLength;
      }
    }
    entry.traffic.tileBytes += bytes;
    return { type: "publish-done", task: ctx.id, tileIds, bytes };
  }

  private async storeTask(entry: JobEntry, ctx: TaskContext, i: { tileId: string; request: string }): Promise<JobEvent> {
    const upload = entry.uploads.get(i.request);
    if (!upload) throw new Error(`no upload for request ${i.request}`);
    // Held at scoring (a test hook): after the first stored tile nothing more is stored, so the job stays there.
    if (entry.storedOnce && holdRequested("scoring") && entry.record.state === "scoring") await abortion(ctx.signal);
    const r = await this.deps.store.putOrCompare(i.tileId, upload.output);
    const bytes = upload.output.distances.byteLength;
    if (r.outcome === "stored") {
      entry.traffic.resultBytes += bytes;
      if (!entry.storedOnce && entry.record.state === "scoring") {
        entry.storedOnce = true;
        await holdAt("scoring", entry.record.id, ctx.signal);
      }
    }
    return { type: "store-done", task: ctx.id, request: i.request, tileId: i.tileId, worker: upload.worker, attempt: upload.attempt, seconds: upload.seconds, bytes, ...r };
  }

  private async reconcileTask(entry: JobEntry, ctx: TaskContext, tileIds: string[]): Promise<JobEvent> {
    const id = entry.record.id;
    // The queue first, then the store: a tile stored and acked in between is then seen as stored.
    const queue = await this.deps.queue.inspect(id).catch((err) => {
      this.log.warn({ job: id, ...errorFields(err) }, `job ${id}: reconcile could not read the queue: ${(err as Error).message}`);
      return null;
    });
    return { type: "reconcile-done", task: ctx.id, queue, stored: tileIds.filter((t) => this.deps.store.has(t)) };
  }

  private async selectTask(entry: JobEntry, ctx: TaskContext): Promise<JobEvent> {
    const r = entry.record;
    const id = r.id;
    const startedAt = r.createdAt;
    const shardedDir = join(jobDir(this.deps.dataDir, id), `select-kernel-${ctx.id}`);
    // The chunked copy (and the writer's temporary sibling) of this or an earlier, interrupted session.
    const removeCopies = async () => {
      const names = await readdir(jobDir(this.deps.dataDir, id)).catch(() => [] as string[]);
      await Promise.all(names.filter((n) => /^\.?select-kernel-/.test(n)).map((n) => rm(join(jobDir(this.deps.dataDir, id), n), { recursive: true, force: true })));
    };
    await removeCopies();
    try {
      const plan = await this.threadOf(entry).call(
        "select",
        {
          timings: { loadSeconds: entry.loadSeconds, kernelSeconds: (Date.now() - startedAt) / 1000 - entry.loadSeconds, startedAt },
          tiles: { computed: r.counts.tilesDone - r.counts.tilesReused, reused: r.counts.tilesReused },
          shardedDir,
          autoShard: (this.deps.selectionHosts ?? inProcessHosts).autoShard,
        },
        { signal: ctx.signal },
      );
      if (plan.mode === "central" && entry.spec!.selection.memory !== null) this.log.info({ job: id }, `job ${id}: central selection (${plan.reason})`);
      if (plan.mode === "distributed") {
        this.log.info({ job: id, shards: plan.shards, algorithm: plan.algorithm, columns: plan.nCols, nnz: plan.nnz }, `job ${id}: distributed selection, ${plan.algorithm} on ${plan.shards} shards (${plan.reason})`);
        const started = performance.now();
        let lastLine = 0;
        const result = await runShardedJobSelection({
          jobId: id,
          key: entry.key,
          plan,
          kernelDir: shardedDir,
          hosts: this.deps.selectionHosts ?? inProcessHosts,
          signal: ctx.signal,
          log: (line) => this.log.info({ job: id }, `job ${id}: selection: ${line}`),
          onRound: (round) => {
            const now = performance.now();
            if (now - lastLine < 2000 && round.picked < plan.k) return;
            lastLine = now;
            this.log.info({ job: id, round: round.round, picked: round.picked, k: plan.k, tau: round.tau }, `job ${id}: selection round ${round.round}: ${round.picked}/${plan.k} picked`);
          },
          onReassign: (e) => this.log.warn({ job: id, shard: e.shard, from: e.from, to: e.to }, `job ${id}: selection shard ${e.shard} moves from host ${e.from} to ${e.to}`),
        });
        await rm(shardedDir, { recursive: true, force: true });
        await this.threadOf(entry).call("selected", { result, seconds: (performance.now() - started) / 1000 }, { signal: ctx.signal });
      }
    } finally {
      await removeCopies();
    }
    return { type: "select-done", task: ctx.id };
  }

  private async writeTask(entry: JobEntry, ctx: TaskContext): Promise<JobEvent> {
    const target = this.resultDirOf(entry.record.id);
    const staging = join(dirname(target), `.${basename(target)}.staging-${ctx.id}-${randomBytes(3).toString("hex")}`);
    const owned = entry.spec!.kind === "kernel" ? KERNEL_FILES : [...SELECTION_FILES, "kernel"];
    await mkdir(staging, { recursive: true });
    try {
      const { summary } = await this.threadOf(entry).call("write", { dir: join(staging, "out") }, { signal: ctx.signal });
      await commitOutput(join(staging, "out"), target, owned, ctx.signal);
      this.log.info({ job: entry.record.id, dir: target }, `job ${entry.record.id}: ${summary}`);
      return { type: "write-done", task: ctx.id, summary };
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  }

  private async releaseTask(entry: JobEntry, ctx: TaskContext): Promise<JobEvent> {
    const id = entry.record.id;
    await this.runner.settled(id, ctx.id);
    const warn = (what: string) => (err: unknown, wait: number) =>
      this.log.warn({ job: id, ...errorFields(err) }, `job ${id}: ${what} failed (${(err as Error).message}); retrying in ${wait} ms`);
    await retrying(() => this.deps.queue.release(id), ctx.signal, warn("releasing its queue"));
    await retrying(() => this.deps.jobsKv.delete(workKey(id)), ctx.signal, warn("deleting its work spec"));
    await retrying(() => this.deps.jobsKv.delete(statusKey(id)), ctx.signal, warn("deleting its status record"));
    await retrying(() => this.saveActive(), ctx.signal, warn("updating the active jobs"));
    await entry.thread?.terminate();
    entry.thread = null;
    entry.macs.clear();
    return { type: "release-done", task: ctx.id };
  }

  /** Checks a result's shape and that it answers the message this coordinator published (its MAC). */
  private async checkUpload(entry: JobEntry, r: ResultUpload): Promise<string | null> {
    const tile = entry.record.tiles.get(r.tileId);
    if (!tile) return null;
    const state = entry.record.state;
    const shape =
      state === "embedding"
        ? embedResultProblem(r.tileId, r.output, tile.pairs, entry.embedDim ?? 0)
        : state === "candidates"
          ? await this.threadOf(entry).call("searchProblem", { id: r.tileId, values: r.output.distances }).catch((err) => `tile ${r.tileId}: could not check the search result (${(err as Error).message})`)
          : distancesProblem(r.tileId, r.output, tile.pairs);
    if (shape) return shape;
    let expected = entry.macs.get(r.tileId) ?? null;
    if (expected === null && entry.thread?.alive !== false) {
      expected = (await this.threadOf(entry).call("macs", { ids: [r.tileId] }).catch(() => [{ mac: null }]))[0].mac;
    }
    if (!sameMac(expected, r.mac)) return `tile ${r.tileId}: the result answers a message this coordinator did not publish (its authentication code does not match): a forged or altered tile`;
    return null;
  }

  // ---- persistence ----------------------------------------------------------------------------

  private scheduleSave(entry: JobEntry): void {
    const stateChanged = entry.lastSavedState !== entry.record.state;
    if (entry.saveTimer && !stateChanged) return;
    if (entry.saveTimer) clearTimeout(entry.saveTimer);
    const run = () => {
      entry.saveTimer = null;
      entry.saving = entry.saving
        .then(() => this.persist(entry))
        .catch((err) => {
          this.log.warn({ job: entry.record.id, ...errorFields(err) }, `job ${entry.record.id}: saving its state failed (${(err as Error).message}); retrying`);
          if (!this.closed) entry.saveTimer = setTimeout(run, 1000);
        });
    };
    if (stateChanged) run();
    else entry.saveTimer = setTimeout(run, SAVE_INTERVAL_MS);
  }

  private async persist(entry: JobEntry): Promise<void> {
    const r = entry.record;
    const stateChanged = entry.lastSavedState !== r.state;
    entry.lastSavedState = r.state;
    const saved: SavedJobState = {
      state: r.state,
      error: r.error,
      createdAt: r.createdAt,
      finishedAt: r.finishedAt,
      summary: r.summary,
      failedDuring: r.failedDuring,
      settings: r.settings,
      counts: r.counts,
      session: r.session,
      released: r.released,
    };
    await saveState(this.deps.dataDir, r.id, saved);
    if (LIVE_JOB_STATES.has(r.state) || r.state === "cancelling") await this.deps.jobsKv.put(statusKey(r.id), JobStatusRecord.encode(this.status(r.id) as never));
    if (stateChanged) await this.saveActive();
  }

  /** The active jobs record, written in order (a slow early write must not overwrite a later one). */
  private saveActive(): Promise<void> {
    const next = this.savingActive.catch(() => undefined).then(() => {
      const active = [...this.jobs.values()].filter((e) => TILE_JOB_STATES.has(e.record.state)).map((e) => e.record.id);
      return this.deps.jobsKv.put(ACTIVE_JOBS_KEY, ActiveJobsRecord.encode(active));
    });
    this.savingActive = next;
    return next;
  }

  private async resumeSaved(): Promise<void> {
    for (const saved of await listSavedJobs(this.deps.dataDir)) {
      if (!saved.ok) {
        const settings = saved.spec ? this.settingsFor(saved.spec) : this.settingsFor(null);
        const record = newJob(saved.jobId, saved.createdAt || Date.now(), settings);
        record.state = "failed";
        record.failedDuring = "planning";
        record.finishedAt = Date.now();
        record.error = `the coordinator could not read this job's saved state: ${saved.path} is ${saved.problem}`;
        this.log.error({ job: saved.jobId, path: saved.path, problem: saved.problem }, `job ${saved.jobId}: ${saved.path} is ${saved.problem}: the job is marked failed`);
        const entry = this.addEntry(record, saved.spec, randomBytes(TILE_KEY_BYTES));
        await this.persist(entry).catch(() => undefined);
        continue;
      }
      const s = saved.state;
      const record = newJob(saved.jobId, s.createdAt, s.settings ?? this.settingsFor(saved.spec));
      record.session = s.session ?? 0;
      const key = saved.key ?? randomBytes(TILE_KEY_BYTES);
      if (!saved.key) await saveKey(this.deps.dataDir, saved.jobId, key);
      if (TERMINAL_JOB_STATES.has(s.state)) {
        Object.assign(record, { state: s.state, error: s.error, failedDuring: (s.failedDuring as JobState) ?? null, finishedAt: s.finishedAt, summary: s.summary ?? null, released: s.released ?? true });
        if (s.counts) record.counts = s.counts;
        const entry = this.addEntry(record, saved.spec, key);
        entry.lastSavedState = record.state;
        if (!record.released) this.feed(saved.jobId, { type: "resumed", was: s.state, session: record.session + 1 });
        continue;
      }
      this.addEntry(record, saved.spec, key);
      this.log.info({ job: saved.jobId, was: s.state }, `job ${saved.jobId}: resuming (was ${s.state})`);
      if (s.state === "cancelling") this.feed(saved.jobId, { type: "cancel", reason: s.error ?? "cancelled by user" });
      else this.feed(saved.jobId, { type: "resumed", was: s.state, session: record.session + 1 });
    }
    await this.saveActive().catch(() => undefined);
  }

  private settingsFor(spec: JobSpec | null): JobSettings {
    return {
      kind: spec?.kind ?? "select",
      ackWaitMs: (spec?.queue.ackWaitSeconds ?? 30) * 1000,
      maxDeliver: spec?.queue.maxDeliver ?? 5,
      maxQueued: spec?.queue.maxQueued ?? 256,
      conflictTolerance: this.deps.conflictTolerance ?? DEFAULT_CONFLICT_TOLERANCE,
    };
  }

  private addEntry(record: JobRecord, spec: JobSpec | null, key: Uint8Array): JobEntry {
    const entry: JobEntry = {
      record,
      spec,
      key,
      thread: null,
      macs: new Map(),
      uploads: new Map(),
      loadSeconds: 0,
      listeners: new Set(),
      story: new StoryLog(storyPath(this.deps.dataDir, record.id)),
      storySeq: 0,
      stimulusSeq: 1,
      reconcileTimer: null,
      saveTimer: null,
      saving: Promise.resolve(),
      lastSavedState: null,
      traffic: { tileBytes: 0, resultBytes: 0 },
      storedOnce: false,
      phase: null,
      embedDim: null,
    };
    this.jobs.set(record.id, entry);
    return entry;
  }

  private resultDirOf(jobId: string): string {
    return this.deps.resultDirFor?.(jobId) ?? resultDir(this.deps.dataDir, jobId);
  }

  private entry(jobId: string): JobEntry {
    const e = this.jobs.get(jobId);
    if (!e) throw UnknownJobError.forJob(jobId);
    return e;
  }
}

/** A utility tile's result: one distance in [0, 1] per pair, a sane truncated count. */
function distancesProblem(tileId: string, output: TileOutput, pairs: number): string | null {
  const d = output.distances;
  if (d.length !== pairs) return `tile ${tileId}: ${d.length} values, expected ${pairs}`;
  for (let k = 0; k < d.length; k++) if (!(d[k] >= 0 && d[k] <= 1)) return `tile ${tileId}: value ${k} is ${d[k]}, a distance must be within [0, 1]`;
  if (!Number.isInteger(output.truncated) || output.truncated < 0 || output.truncated > d.length) return `tile ${tileId}: truncated count ${output.truncated} out of range`;
  return null;
}

function newJobId(): string {
  return `j${Date.now().toString(36)}${randomBytes(3).toString("hex")}`;
}

/**
 * Moves a staged result into place. The renames are synchronous, after the last abort check: no
 * cancel can come between the check and the result being there, so a cancelled job never leaves
 * a result behind and a result that is there was never cancelled.
 */
async function commitOutput(staged: string, target: string, owned: string[], signal: AbortSignal): Promise<void> {
  await assertReplaceable(target, owned);
  await mkdir(dirname(target), { recursive: true });
  signal.throwIfAborted();
  const old = `${join(dirname(target), `.${basename(target)}`)}.old-${randomBytes(3).toString("hex")}`;
  const replacing = existsSync(target);
  if (replacing) renameSync(target, old);
  renameSync(staged, target);
  if (replacing) await rm(old, { recursive: true, force: true });
  await syncDir(dirname(target)).catch(() => undefined);
}

/** Resolves never; rejects when `signal` aborts. */
function abortion(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    const stop = () => reject(signal.reason instanceof Error ? signal.reason : new AbortedError());
    if (signal.aborted) stop();
    else signal.addEventListener("abort", stop, { once: true });
  });
}

/** Runs `fn` until it succeeds, waiting longer after each failure (0.5 s up to 10 s); stops when aborted. */
async function retrying<T>(fn: () => Promise<T>, signal: AbortSignal, onError: (err: unknown, waitMs: number) => void): Promise<T> {
  let wait = 500;
  for (;;) {
    signal.throwIfAborted();
    try {
      return await fn();
    } catch (err) {
      if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new AbortedError();
      onError(err, wait);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, wait);
        signal.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
      });
      wait = Math.min(wait * 2, 10_000);
    }
  }
}
