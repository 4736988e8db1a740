import { hostname } from "node:os";
import {
  AbortedError,
  ACTIVE_JOBS_KEY,
  type BlobStore,
  WorkerHealthError,
  ActiveJobsRecord,
  decodeWorkMessage,
  decodeWorkSpec,
  errorFields,
  HEARTBEAT_MS,
  HeartbeatRecord,
  isAbortedError,
  isCoordinatorUnavailableError,
  isModelError,
  isUnauthenticatedError,
  isUnknownJobError,
  isWorkerHealthError,
  type KeyValueBucket,
  type Logger,
  ModelError,
  type TileDelivery,
  type WorkMessage,
  type TileOutput,
  type TileSource,
  type TileMessage,
  tileValueCount,
  type WorkerTileEvents,
  verifyTileMac,
  type WorkerHeartbeat,
  workKey,
  type WorkSpec,
} from "../../../common/src/mod.js";
import type { CorpusCache } from "../corpus/corpus-cache.js";
import { type TileFed, TileEngine } from "../engine/tile-engine.js";
import { computeEmbedTile } from "../embed/embed-engine.js";
import { EncoderCache } from "../embed/encoder-cache.js";
import { SearchExecutor } from "../search/search-executor.js";
import type { ModelCache } from "./model-cache.js";
import type { FailureKindReport, ResultSender, UploadOutcome } from "./result-sender.js";

export type WorkerOptions = {
  workerId: string;
  source: TileSource;
  jobsKv: KeyValueBucket;
  /** Heartbeats (null: none, as in the embedded default). */
  workersKv: KeyValueBucket | null;
  models: ModelCache;
  /** The corpora tiles index (fetched from the object store, checked, cached). */
  corpora: CorpusCache;
  sender: ResultSender;
  concurrency: number;
  device: "cpu" | "cuda";
  log: Logger;
  /** How long one pull waits for a tile; also how often an idle worker re-reads the active jobs. */
  pollMs?: number;
  /** On stop, how long a running tile may still take before it is handed back. */
  drainMs?: number;
  /** Failures of this worker itself in a row before it retires (default 3). */
  maxHealthFailures?: number;
  /** First back-off after a health failure, doubled each time (default 1000 ms). */
  healthBackoffMs?: number;
  /** Told of every tile taken up, finished, failed or dropped (the worker's metrics). */
  events?: WorkerTileEvents;
  /** The object store search tiles' matrices come from, and a directory to fetch them into. */
  blobs?: BlobStore;
  searchDir?: string;
};

/** The worker stopped itself: it kept failing on its own (model fetch, provider, memory, token). */
export class WorkerRetiredError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "WorkerRetiredError";
  }
}

type Running = { jobId: string; tileId: string; abort: AbortController };
/** What computes one tile: the LM's tile engine or the bundle's encoder, lent for the tile. */
type TileTool = { release(): void; compute(signal: AbortSignal): Promise<TileOutput>; fed(): TileFed | null };
type Drop = { reason: string; why: "malformed" | "forged" | "unknown job" };

/**
 * The worker loop (after BullMQ's worker): pulls tiles of active jobs, checks each message's
 * authentication code, keeps its lease alive while computing (in-progress acks to NATS, progress
 * reports to the coordinator), uploads the result and acks once the coordinator has stored it.
 * The coordinator decides what a failure means; a failure of this worker itself (not of the tile)
 * hands the tile back without using a delivery, backs off, and after a few in a row the worker
 * retires. Malformed or forged messages are removed after one log line; nothing in a message can
 * crash the loop.
 */
export class WorkerLoop {
  readonly stats = { tilesDone: 0, pairsDone: 0, failures: 0, dropped: 0, healthFailures: 0 };
  private readonly running = new Set<Running>();
  private readonly specs = new Map<string, WorkSpec>();
  private readonly keys = new Map<string, Promise<Uint8Array>>();
  private readonly warmed = new Set<string>();
  private readonly engines = new Map<string, TileEngine>();
  private readonly encoders: EncoderCache;
  private searcher: SearchExecutor | null = null;
  /** The search matrix each job's tiles name (a matrix is dropped once no active job names it). */
  private readonly searchMatrices = new Map<string, string>();
  private active: { ids: string[]; at: number } = { ids: [], at: 0 };
  private stopping = false;
  private slots: Promise<void>[] = [];
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private readonly pollMs: number;
  private readonly startedAt = Date.now();
  private healthStreak = 0;
  private pausedUntil = 0;
  private retiredWith: WorkerRetiredError | null = null;
  private readonly retireListeners = new Set<(err: WorkerRetiredError) => void>();
  private readonly log: Logger;

  constructor(private readonly o: WorkerOptions) {
    this.pollMs = o.pollMs ?? 1000;
    this.log = o.log.child({ worker: o.workerId });
    this.encoders = new EncoderCache(o.models);
  }

  start(): void {
    for (let s = 0; s < this.o.concurrency; s++) this.slots.push(this.slot(s));
    if (this.o.workersKv) {
      void this.heartbeat();
      this.heartbeatTimer = setInterval(() => void this.heartbeat(), HEARTBEAT_MS);
    }
  }

  /** Called once if the worker retires (then stop() still has to be called). */
  onRetire(listener: (err: WorkerRetiredError) => void): void {
    if (this.retiredWith) listener(this.retiredWith);
    else this.retireListeners.add(listener);
  }

  get retired(): WorkerRetiredError | null {
    return this.retiredWith;
  }

  /** Stops pulling; running tiles get `drainMs` to finish, then are handed back to the queue. */
  async stop(): Promise<void> {
    this.stopping = true;
    const drain = this.o.drainMs ?? 60_000;
    const timer = setTimeout(() => {
      for (const r of this.running) r.abort.abort(new AbortedError("worker stopping"));
    }, drain);
    await Promise.all(this.slots);
    clearTimeout(timer);
    await this.encoders.dispose();
    await this.searcher?.dispose();
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    // Removing the heartbeat is a courtesy (it expires anyway): never wait long for it.
    const removed = this.o.workersKv?.delete(this.o.workerId).catch(() => undefined);
    await Promise.race([removed, sleep(2000)]);
  }

  private async slot(index: number): Promise<void> {
    let turn = index;
    while (!this.stopping) {
      const pause = this.pausedUntil - Date.now();
      if (pause > 0) {
        await sleep(Math.min(pause, 500));
        continue;
      }
      const jobs = await this.activeJobs();
      if (jobs.length === 0) {
        await sleep(this.pollMs);
        continue;
      }
      let worked = false;
      for (let k = 0; k < jobs.length && !this.stopping; k++) {
        const jobId = jobs[(turn + k) % jobs.length];
        let delivery: TileDelivery | null = null;
        try {
          delivery = await this.o.source.next(jobId, this.pollMs);
        } catch (err) {
          // The job ended (its stream is gone) or NATS is away: normal for a moment, worth a line if it lasts.
          this.logOnce(`next:${jobId}:${(err as Error).name}`, () => this.log.info({ job: jobId, error: (err as Error).message }, `job ${jobId}: cannot pull tiles: ${(err as Error).message}`));
          this.active.at = 0;
          await sleep(Math.min(this.pollMs, 500));
          continue;
        }
        if (!delivery) continue;
        if (this.stopping) {
          delivery.nak();
          break;
        }
        await this.process(jobId, delivery);
        worked = true;
        break;
      }
      turn++;
      if (!worked && !this.stopping) await sleep(50);
    }
  }

  private async activeJobs(): Promise<string[]> {
    if (Date.now() - this.active.at < this.pollMs) return this.active.ids;
    try {
      const raw = await this.o.jobsKv.get(ACTIVE_JOBS_KEY);
      let ids: string[] = [];
      try {
        ids = raw ? ActiveJobsRecord.decode(raw, ACTIVE_JOBS_KEY) : [];
      } catch (err) {
        this.logOnce(`active:${(err as Error).message}`, () => this.log.warn({ error: (err as Error).message }, `ignored an invalid active-jobs record: ${(err as Error).message}`));
      }
      this.active = { ids, at: Date.now() };
      for (const id of [...this.engines.keys(), ...this.specs.keys(), ...this.keys.keys(), ...this.warmed]) {
        if (ids.includes(id)) continue;
        this.engines.delete(id);
        this.specs.delete(id);
        this.keys.delete(id);
        this.warmed.delete(id);
        this.o.corpora.forget(id);
      }
      for (const id of [...this.searchMatrices.keys()]) if (!ids.includes(id)) this.searchMatrices.delete(id);
      this.searcher?.retain(new Set(this.searchMatrices.values()));
      for (const id of ids) if (!this.warmed.has(id)) this.warm(id);
    } catch (err) {
      this.logOnce(`active:read:${(err as Error).name}`, () => this.log.warn({ error: (err as Error).message }, `cannot read the active jobs: ${(err as Error).message}`));
      this.active.at = Date.now();
    }
    return this.active.ids;
  }

  private async process(jobId: string, d: TileDelivery): Promise<void> {
    const log = this.log.child({ job: jobId });
    const checked = await this.authenticate(jobId, d);
    if (checked === "retry") return;
    if ("why" in checked) {
      this.stats.dropped++;
      this.o.events?.tileDropped(jobId, checked.why);
      const text = checked.why === "malformed" ? `dropped a malformed tile message of job ${jobId}: ${checked.reason}` : checked.why === "forged" ? `dropped a forged or altered tile message of job ${jobId}: ${checked.reason}` : `dropped a tile message of job ${jobId}: ${checked.reason}`;
      log.warn({ tile: d.tileId ?? undefined, reason: checked.reason }, text);
      d.term();
      return;
    }
    const { msg, spec } = checked;
    const tileLog = log.child({ tile: msg.tileId });
    const running: Running = { jobId, tileId: msg.tileId, abort: new AbortController() };
    this.running.add(running);
    this.o.events?.tileStarted(jobId, d.deliveryCount);
    const keepAlive = setInterval(() => {
      d.working();
      this.o.sender.progress(jobId, msg.tileId, d.deliveryCount).then(
        (r) => {
          if (!r.wanted) running.abort.abort(new AbortedError("the job no longer wants this tile"));
        },
        () => undefined,
      );
    }, Math.max(250, spec.ackWaitMs / 3));
    const started = performance.now();
    let lease: { release(): void } | null = null;
    try {
      const tool = await this.toolFor(jobId, spec, msg, running.abort.signal);
      lease = tool;
      const { wanted } = await this.o.sender.started(jobId, msg.tileId, d.deliveryCount).catch((err: unknown) => {
        if (isUnknownJobError(err)) return { wanted: false };
        if (isUnauthenticatedError(err)) throw err;
        tileLog.warn({ ...errorFields(err) }, `job ${jobId}: could not report the start of tile ${msg.tileId.slice(0, 12)}: ${(err as Error).message}`);
        return { wanted: true };
      });
      if (!wanted) {
        await d.ack().catch(() => undefined);
        return;
      }
      tileLog.debug({ attempt: d.deliveryCount }, `job ${jobId}: tile ${msg.tileId.slice(0, 12)} started (delivery ${d.deliveryCount})`);
      const output = await tool.compute(running.abort.signal);
      const fed = tool.fed();
      const seconds = (performance.now() - started) / 1000;
      const outcome = await this.uploadWithRetry(spec, msg, d, output, seconds, running.abort.signal);
      await d.ack().catch((err) => tileLog.warn({ ...errorFields(err) }, `job ${jobId}: ack of tile ${msg.tileId.slice(0, 12)} failed (${(err as Error).message}); a redelivery will be a duplicate`));
      this.healthStreak = 0;
      this.o.events?.tileFinished(jobId, { outcome, seconds, pairs: workValueCount(msg), bytesDown: d.data.byteLength, bytesUp: output.distances.byteLength });
      if (outcome === "stored" || outcome === "duplicate") {
        this.stats.tilesDone++;
        this.stats.pairsDone += workValueCount(msg);
        tileLog.debug({ seconds, outcome, pairs: workValueCount(msg), ...(fed ? { fed } : {}) }, `job ${jobId}: tile ${msg.tileId.slice(0, 12)} stored in ${seconds.toFixed(2)} s${outcome === "duplicate" ? " (a duplicate)" : ""}`);
      } else {
        tileLog.info({ outcome }, `job ${jobId}: tile ${msg.tileId.slice(0, 12)} not kept (${outcome})`);
      }
    } catch (err) {
      await this.handleFailure(spec, msg, d, err, running);
    } finally {
      clearInterval(keepAlive);
      lease?.release();
      this.running.delete(running);
      this.o.events?.tileLeft(jobId);
    }
  }

  /** The LM's tile engine for scoring tiles, the bundle's encoder for embed tiles. */
  private async toolFor(jobId: string, spec: WorkSpec, msg: WorkMessage, signal: AbortSignal): Promise<TileTool> {
    if (msg.work.kind === "embed") {
      const work = msg.work;
      const e = await this.encoders.acquire(spec.modelHash, spec.modelFiles);
      try {
        checkTokenIds(work.sequences.ids, e.vocabSize ?? spec.vocabSize);
      } catch (err) {
        e.release();
        throw err;
      }
      return { release: e.release, fed: () => null, compute: (s) => computeEmbedTile(e.encoder, work, s) };
    }
    if (msg.work.kind === "search") {
      const work = msg.work;
      if (!this.o.blobs) throw new WorkerHealthError("this worker has no object store to fetch search matrices from");
      this.searcher ??= new SearchExecutor(this.o.blobs, this.o.searchDir ?? "", this.o.models.runtimeOptions);
      const searcher = this.searcher;
      this.searchMatrices.set(jobId, work.matrix);
      return { release: () => undefined, fed: () => null, compute: (s) => searcher.compute(work, s) };
    }
    const scoring = msg as TileMessage;
    const m = await this.o.models.acquire(spec.modelHash, spec.modelFiles);
    try {
      const work = await this.o.corpora.resolve(jobId, scoring.corpus, scoring.work, signal);
      checkTokenIds(work.samples.ids, m.vocabSize ?? spec.vocabSize);
      let engine = this.engines.get(jobId);
      if (!engine) {
        engine = new TileEngine(m.model, spec.prompts, spec.batch);
        this.engines.set(jobId, engine);
      }
      const run = engine;
      let fed: TileFed | null = null;
      return { release: m.release, fed: () => fed, compute: (s) => run.compute(work, { signal: s, onFed: (f) => (fed = f) }) };
    } catch (err) {
      m.release();
      throw err;
    }
  }

  /** Decodes the message and checks it is the coordinator's own, for this job. */
  private async authenticate(jobId: string, d: TileDelivery): Promise<{ msg: WorkMessage; spec: WorkSpec } | Drop | "retry"> {
    let msg: WorkMessage;
    try {
      msg = decodeWorkMessage(d.data);
    } catch (err) {
      return { why: "malformed", reason: (err as Error).message };
    }
    if (msg.jobId !== jobId) return { why: "forged", reason: `the message names job ${msg.jobId}` };
    if (d.tileId !== msg.tileId) return { why: "forged", reason: `its header names tile ${String(d.tileId).slice(0, 12)}, its payload tile ${msg.tileId.slice(0, 12)}` };
    let key: Uint8Array;
    const spec = this.workSpec(jobId);
    try {
      key = await this.keyOf(jobId);
    } catch (err) {
      if (isUnknownJobError(err)) return { why: "unknown job", reason: `the coordinator does not know job ${jobId}` };
      // The coordinator is unreachable or refuses this worker: give the tile back, do not judge it.
      d.nak(2000);
      if (isUnauthenticatedError(err)) this.healthFailure(new Error(`the coordinator refused this worker's token: give it --token (DELIFT_TOKEN): ${(err as Error).message}`));
      else await sleep(Math.min(this.pollMs, 1000));
      return "retry";
    }
    if (!verifyTileMac(key, jobId, d.tileId, d.data, d.mac)) return { why: "forged", reason: d.mac ? "its authentication code does not match" : "it has no authentication code" };
    const workSpec = await spec;
    if (!workSpec) return { why: "unknown job", reason: `no readable work spec for job ${jobId}` };
    return { msg, spec: workSpec };
  }

  /** A job just became active: fetch its key, work spec and model now, before its first tile arrives. */
  private warm(jobId: string): void {
    this.warmed.add(jobId);
    void (async () => {
      await this.keyOf(jobId).catch(() => undefined);
      const spec = await this.workSpec(jobId);
      if (!spec || this.stopping) return;
      // An SE job's tiles need the encoder only: loading its LM would hold memory for nothing.
      if (spec.kernel === "se") (await this.encoders.acquire(spec.modelHash, spec.modelFiles).catch(() => null))?.release();
      else (await this.o.models.acquire(spec.modelHash, spec.modelFiles).catch(() => null))?.release();
    })();
  }

  private keyOf(jobId: string): Promise<Uint8Array> {
    let p = this.keys.get(jobId);
    if (!p) {
      p = this.o.sender.jobKey(jobId);
      this.keys.set(jobId, p);
      p.catch(() => this.keys.delete(jobId));
    }
    return p;
  }

  private async uploadWithRetry(spec: WorkSpec, msg: WorkMessage, d: TileDelivery, output: TileOutput, seconds: number, signal: AbortSignal): Promise<UploadOutcome> {
    let wait = 250;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.o.sender.upload(msg.jobId, msg.tileId, d.deliveryCount, d.mac ?? "", output, seconds);
      } catch (err) {
        if (!isCoordinatorUnavailableError(err) || signal.aborted || attempt >= 12) throw err;
        this.log.warn({ job: msg.jobId, tile: msg.tileId, ...errorFields(err) }, `job ${msg.jobId}: upload of tile ${msg.tileId.slice(0, 12)} failed (${(err as Error).message}); retry ${attempt}`);
        await sleep(wait);
        wait = Math.min(wait * 2, Math.max(1000, spec.ackWaitMs / 2));
      }
    }
  }

  private async handleFailure(spec: WorkSpec, msg: WorkMessage, d: TileDelivery, err: unknown, running: Running): Promise<void> {
    const log = this.log.child({ job: msg.jobId, tile: msg.tileId });
    if (isUnknownJobError(err)) {
      await d.ack().catch(() => undefined);
      return;
    }
    if (isAbortedError(err) || running.abort.signal.aborted) {
      // Stopping: hand it back. The job no longer wants it: drop it.
      if (this.stopping) d.nak();
      else await d.ack().catch(() => undefined);
      return;
    }
    this.stats.failures++;
    const message = (err as Error)?.message ?? String(err);
    const kind: FailureKindReport = isModelError(err) ? "model" : isWorkerHealthError(err) || isUnauthenticatedError(err) ? "health" : "tile";
    this.o.events?.tileFailed(msg.jobId, kind);
    log.warn({ attempt: d.deliveryCount, kind, ...errorFields(err) }, `job ${msg.jobId}: tile ${msg.tileId.slice(0, 12)} failed (delivery ${d.deliveryCount}/${spec.maxDeliver}, ${kind === "tile" ? "the tile's" : kind === "model" ? "the model bundle's" : "this worker's"} fault): ${message}`);
    const reply = await this.o.sender.failed(msg.jobId, msg.tileId, d.deliveryCount, message, kind).catch((e: unknown) => {
      log.warn({ ...errorFields(e) }, `job ${msg.jobId}: could not report the failure of tile ${msg.tileId.slice(0, 12)}: ${(e as Error).message}`);
      return null;
    });
    // Without an answer the message is given back (JetStream counts the delivery): reconcile on
    // the coordinator finds what a lost report leaves behind.
    if (reply?.action === "drop") d.term();
    else d.nak(Math.min(10_000, 500 * 2 ** (d.deliveryCount - 1)));
    if (kind === "health") this.healthFailure(err as Error);
  }

  /** A failure of this worker itself: back off, and retire after a few in a row. */
  private healthFailure(err: Error): void {
    this.stats.healthFailures++;
    this.healthStreak++;
    const max = this.o.maxHealthFailures ?? 3;
    if (this.healthStreak >= max) {
      if (this.retiredWith) return;
      this.retiredWith = new WorkerRetiredError(`worker ${this.o.workerId} retires after ${this.healthStreak} failures of its own in a row; last: ${err.message}`, { cause: err });
      this.log.error({ failures: this.healthStreak, error: err.message }, this.retiredWith.message);
      this.stopping = true;
      void this.heartbeat();
      for (const l of this.retireListeners) l(this.retiredWith);
      return;
    }
    const wait = (this.o.healthBackoffMs ?? 1000) * 2 ** (this.healthStreak - 1);
    this.pausedUntil = Math.max(this.pausedUntil, Date.now() + wait);
    this.log.warn({ failures: this.healthStreak, backoffMs: wait }, `this worker failed on its own (${err.message}); backing off ${wait} ms`);
  }

  private async workSpec(jobId: string): Promise<WorkSpec | null> {
    const cached = this.specs.get(jobId);
    if (cached) return cached;
    try {
      const raw = await this.o.jobsKv.get(workKey(jobId));
      if (!raw) return null;
      const spec = decodeWorkSpec(raw);
      if (spec.jobId !== jobId) throw new Error(`the work spec of job ${jobId} names job ${spec.jobId}`);
      this.specs.set(jobId, spec);
      return spec;
    } catch (err) {
      this.logOnce(`spec:${jobId}`, () => this.log.warn({ job: jobId, error: (err as Error).message }, `job ${jobId}: unreadable work spec: ${(err as Error).message}`));
      return null;
    }
  }

  private async heartbeat(): Promise<void> {
    const beat: WorkerHeartbeat = {
      workerId: this.o.workerId,
      host: hostname(),
      pid: process.pid,
      device: this.o.device,
      concurrency: this.o.concurrency,
      state: this.retiredWith ? "retiring" : this.stopping ? "draining" : this.running.size > 0 ? "busy" : "idle",
      tilesDone: this.stats.tilesDone,
      pairsDone: this.stats.pairsDone,
      currentTiles: [...this.running].map((r) => `${r.jobId}/${r.tileId.slice(0, 12)}`),
      startedAt: this.startedAt,
      at: Date.now(),
    };
    await this.o.workersKv?.put(this.o.workerId, HeartbeatRecord.encode(beat)).catch(() => undefined);
  }

  private readonly said = new Map<string, number>();
  private logOnce(key: string, write: () => void): void {
    const last = this.said.get(key) ?? 0;
    if (Date.now() - last < 60_000) return;
    if (this.said.size > 1000) this.said.clear();
    this.said.set(key, Date.now());
    write();
  }
}

/** Values a tile yields (pairs or baselines scored; samples embedded; queries searched). */
function workValueCount(msg: WorkMessage): number {
  if (msg.work.kind === "search") return msg.work.queries.length;
  return msg.work.kind === "embed" ? msg.work.sequences.count : tileValueCount(msg.work);
}

function checkTokenIds(ids: Int32Array, vocabSize: number | null): void {
  if (vocabSize === null) return;
  for (let k = 0; k < ids.length; k++) {
    if (ids[k] >= vocabSize) throw new ModelError(`token id ${ids[k]} is outside the model's vocabulary (${vocabSize}): the job's tokenizer does not match its model`);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
