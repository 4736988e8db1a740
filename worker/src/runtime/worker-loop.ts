import { hostname } from "node:os";
import { ACTIVE_JOBS_KEY, decodeTileMessage, decodeWorkSpec, HEARTBEAT_MS, isAbortedError, type KeyValueBucket, type TileDelivery, type TileMessage, type TileSource, tileValueCount, workKey, type WorkSpec } from "../../../common/src/mod.js";
import { TileEngine } from "../engine/tile-engine.js";
import type { ModelCache } from "./model-cache.js";
import { JobGoneError, ResultRejectedError, type ResultSender } from "./result-sender.js";

export type WorkerOptions = {
  workerId: string;
  source: TileSource;
  jobsKv: KeyValueBucket;
  /** Heartbeats (null: none, as in the embedded default). */
  workersKv: KeyValueBucket | null;
  models: ModelCache;
  sender: ResultSender;
  concurrency: number;
  device: string;
  log: (line: string) => void;
  /** How long one pull waits for a tile; also how often an idle worker re-reads the active jobs. */
  pollMs?: number;
  /** On stop, how long a running tile may still take before it is handed back. */
  drainMs?: number;
  /** Log every tile start and store (operators' --verbose; the fault tests key on it). */
  verbose?: boolean;
};

/** A tile that can never succeed (bad token ids for the model): fail it at once, do not retry. */
class UnrecoverableTileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnrecoverableTileError";
  }
}

type Running = { jobId: string; tileId: string; abort: AbortController };

/**
 * The worker loop (after BullMQ's worker): pulls tiles of active jobs, keeps each lease alive
 * with in-progress acks while computing, uploads the result, and acks only once the coordinator
 * has stored it. Failures go back to the queue with a back-off, and are final on the last
 * delivery. Malformed messages are logged and dropped; nothing in a message can crash the loop.
 */
export class WorkerLoop {
  readonly stats = { tilesDone: 0, pairsDone: 0, failures: 0, dropped: 0 };
  private readonly running = new Set<Running>();
  private readonly specs = new Map<string, WorkSpec>();
  private readonly engines = new Map<string, TileEngine>();
  private active: { ids: string[]; at: number } = { ids: [], at: 0 };
  private stopping = false;
  private slots: Promise<void>[] = [];
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private readonly pollMs: number;
  private readonly startedAt = Date.now();

  constructor(private readonly o: WorkerOptions) {
    this.pollMs = o.pollMs ?? 1000;
  }

  start(): void {
    for (let s = 0; s < this.o.concurrency; s++) this.slots.push(this.slot(s));
    if (this.o.workersKv) {
      void this.heartbeat();
      this.heartbeatTimer = setInterval(() => void this.heartbeat(), HEARTBEAT_MS);
    }
  }

  /** Stops pulling; running tiles get `drainMs` to finish, then are handed back to the queue. */
  async stop(): Promise<void> {
    this.stopping = true;
    const drain = this.o.drainMs ?? 60_000;
    const timer = setTimeout(() => {
      for (const r of this.running) r.abort.abort(new Error("worker stopping"));
    }, drain);
    await Promise.all(this.slots);
    clearTimeout(timer);
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    // Removing the heartbeat is a courtesy (it expires anyway): never wait long for it.
    const removed = this.o.workersKv?.delete(this.o.workerId).catch(() => undefined);
    await Promise.race([removed, sleep(2000)]);
  }

  private async slot(index: number): Promise<void> {
    let turn = index;
    while (!this.stopping) {
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
      const ids = raw ? (JSON.parse(new TextDecoder().decode(raw)) as unknown) : [];
      this.active = { ids: Array.isArray(ids) ? ids.filter((x): x is string => typeof x === "string") : [], at: Date.now() };
      for (const id of this.engines.keys()) if (!this.active.ids.includes(id)) this.engines.delete(id);
    } catch {
      this.active.at = Date.now();
    }
    return this.active.ids;
  }

  private async process(jobId: string, d: TileDelivery): Promise<void> {
    let msg: TileMessage;
    try {
      msg = decodeTileMessage(d.data);
      if (msg.jobId !== jobId) throw new Error(`message names job ${msg.jobId} but came from job ${jobId}'s queue`);
    } catch (err) {
      this.stats.dropped++;
      this.o.log(`dropped a malformed tile message of job ${jobId}: ${(err as Error).message}`);
      d.term(`malformed: ${(err as Error).message}`);
      return;
    }
    const spec = await this.workSpec(jobId);
    if (!spec) {
      this.o.log(`job ${jobId}: no work spec; dropping tile ${msg.tileId.slice(0, 12)}`);
      d.term("unknown job");
      return;
    }
    const running: Running = { jobId, tileId: msg.tileId, abort: new AbortController() };
    this.running.add(running);
    const keepAlive = setInterval(() => d.working(), Math.max(250, spec.ackWaitMs / 3));
    const started = performance.now();
    try {
      const { model, vocabSize } = await this.o.models.get(spec.modelHash, spec.modelFiles);
      checkTokenIds(msg, vocabSize ?? spec.vocabSize);
      const { wanted } = await this.o.sender.started(jobId, msg.tileId, d.deliveryCount).catch((err: unknown) => {
        if (err instanceof JobGoneError) return { wanted: false };
        this.o.log(`job ${jobId}: could not report the start of tile ${msg.tileId.slice(0, 12)}: ${(err as Error).message}`);
        return { wanted: true };
      });
      if (!wanted) {
        await d.ack().catch(() => undefined);
        return;
      }
      if (this.o.verbose) this.o.log(`job ${jobId}: tile ${msg.tileId.slice(0, 12)} started (delivery ${d.deliveryCount})`);
      let engine = this.engines.get(jobId);
      if (!engine) {
        engine = new TileEngine(model, spec.prompts, spec.batch);
        this.engines.set(jobId, engine);
      }
      const output = await engine.compute(msg.work, { signal: running.abort.signal });
      const seconds = (performance.now() - started) / 1000;
      await this.uploadWithRetry(spec, msg, d, output, seconds, running.abort.signal);
      await d.ack().catch((err) => this.o.log(`job ${jobId}: ack of stored tile ${msg.tileId.slice(0, 12)} failed (${(err as Error).message}); a redelivery will be a duplicate`));
      this.stats.tilesDone++;
      this.stats.pairsDone += tileValueCount(msg.work);
      if (this.o.verbose) this.o.log(`job ${jobId}: tile ${msg.tileId.slice(0, 12)} stored in ${seconds.toFixed(2)} s`);
    } catch (err) {
      await this.handleFailure(spec, msg, d, err);
    } finally {
      clearInterval(keepAlive);
      this.running.delete(running);
    }
  }

  private async uploadWithRetry(spec: WorkSpec, msg: TileMessage, d: TileDelivery, output: Parameters<ResultSender["upload"]>[3], seconds: number, signal: AbortSignal): Promise<void> {
    let wait = 250;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.o.sender.upload(msg.jobId, msg.tileId, d.deliveryCount, output, seconds);
        return;
      } catch (err) {
        if (err instanceof JobGoneError || err instanceof ResultRejectedError || signal.aborted) throw err;
        if (attempt >= 12) throw err;
        this.o.log(`job ${msg.jobId}: upload of tile ${msg.tileId.slice(0, 12)} failed (${(err as Error).message}); retry ${attempt}`);
        await sleep(wait);
        wait = Math.min(wait * 2, Math.max(1000, spec.ackWaitMs / 2));
      }
    }
  }

  private async handleFailure(spec: WorkSpec, msg: TileMessage, d: TileDelivery, err: unknown): Promise<void> {
    if (err instanceof JobGoneError) {
      await d.ack().catch(() => undefined);
      return;
    }
    if (isAbortedError(err) || this.stopping) {
      d.nak();
      return;
    }
    this.stats.failures++;
    const message = (err as Error)?.message ?? String(err);
    const final = err instanceof UnrecoverableTileError || err instanceof ResultRejectedError || d.deliveryCount >= spec.maxDeliver;
    this.o.log(`job ${msg.jobId}: tile ${msg.tileId.slice(0, 12)} failed (delivery ${d.deliveryCount}/${spec.maxDeliver}): ${message}`);
    await this.o.sender.failed(msg.jobId, msg.tileId, d.deliveryCount, message, final).catch(() => undefined);
    if (final) d.term(message);
    else d.nak(Math.min(10_000, 500 * 2 ** (d.deliveryCount - 1)));
  }

  private async workSpec(jobId: string): Promise<WorkSpec | null> {
    const cached = this.specs.get(jobId);
    if (cached) return cached;
    try {
      const raw = await this.o.jobsKv.get(workKey(jobId));
      if (!raw) return null;
      const spec = decodeWorkSpec(raw);
      this.specs.set(jobId, spec);
      return spec;
    } catch (err) {
      this.o.log(`job ${jobId}: unreadable work spec: ${(err as Error).message}`);
      return null;
    }
  }

  private async heartbeat(): Promise<void> {
    const beat = {
      workerId: this.o.workerId,
      host: hostname(),
      pid: process.pid,
      device: this.o.device,
      concurrency: this.o.concurrency,
      state: this.stopping ? "draining" : this.running.size > 0 ? "busy" : "idle",
      tilesDone: this.stats.tilesDone,
      pairsDone: this.stats.pairsDone,
      currentTiles: [...this.running].map((r) => `${r.jobId}/${r.tileId.slice(0, 12)}`),
      startedAt: this.startedAt,
      at: Date.now(),
    };
    await this.o.workersKv?.put(this.o.workerId, new TextEncoder().encode(JSON.stringify(beat))).catch(() => undefined);
  }
}

function checkTokenIds(msg: TileMessage, vocabSize: number | null): void {
  if (vocabSize === null) return;
  const ids = msg.work.samples.ids;
  for (let k = 0; k < ids.length; k++) {
    if (ids[k] >= vocabSize) throw new UnrecoverableTileError(`token id ${ids[k]} is outside the model's vocabulary (${vocabSize}): the job's tokenizer does not match its model`);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
