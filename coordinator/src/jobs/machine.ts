import {
  ImpossibleTransitionError,
  LIVE_JOB_STATES,
  newJob,
  TERMINAL_JOB_STATES,
  TILE_JOB_STATES,
  type Change,
  type Instruction,
  type JobEvent,
  type JobEventType,
  type JobRecord,
  type JobState,
  type Reply,
  type Stimulus,
  type TaskKind,
  type TaskStart,
  type TileRecord,
  type TileState,
} from "./job-state.js";

/**
 * The job's state machine: the only place that decides (wanted, duplicate, conflict, stale,
 * cancelled, failed). It does no I/O. Each stimulus handler either rejects its event (an explicit
 * change in the story, with the reason) or makes named transitions; every transition lists the
 * events it accepts and none calls another. The handlers return instructions (start or abort a
 * task, reply to a worker, save) that the runtime carries out; task outcomes come back as new
 * stimuli.
 */
export type Outcome = { instructions: Instruction[]; changes: Change[] };

type Edge = { accepts: readonly JobEventType[] };

const TASK_OUTCOMES: readonly JobEventType[] = ["plan-done", "search-done", "publish-done", "store-done", "reconcile-done", "select-done", "write-done", "task-failed"];
const FAILURES: readonly JobEventType[] = ["task-failed", "tile-failed", "tile-max-deliveries", "reconcile-done", "store-done", "fail"];

const JOB_EDGES: Record<string, Edge> = {
  "planning->scoring": { accepts: ["plan-done"] },
  "planning->selecting": { accepts: ["plan-done"] },
  "planning->writing": { accepts: ["plan-done"] },
  "planning->searching": { accepts: ["plan-done"] },
  "planning->embedding": { accepts: ["plan-done"] },
  "embedding->searching": { accepts: ["plan-done", "store-done", "reconcile-done"] },
  "searching->selecting": { accepts: ["search-done"] },
  "searching->writing": { accepts: ["search-done"] },
  "searching->candidates": { accepts: ["search-done"] },
  "candidates->selecting": { accepts: ["search-done"] },
  "candidates->writing": { accepts: ["search-done"] },
  "scoring->selecting": { accepts: ["store-done", "reconcile-done"] },
  "scoring->writing": { accepts: ["store-done", "reconcile-done"] },
  "selecting->writing": { accepts: ["select-done"] },
  "writing->done": { accepts: ["write-done"] },
  "cancelling->cancelled": { accepts: TASK_OUTCOMES },
  // The result was in place before the cancel could stop the writing: the job did finish.
  "cancelling->done": { accepts: ["write-done"] },
};
for (const from of LIVE_JOB_STATES) {
  JOB_EDGES[`${from}->failed`] = { accepts: FAILURES };
  JOB_EDGES[`${from}->cancelling`] = { accepts: ["cancel"] };
  JOB_EDGES[`${from}->cancelled`] = { accepts: ["cancel"] };
}
// A plan that contradicts itself (a search phase and tiles to score) fails the job where it is heard.
JOB_EDGES["planning->failed"] = { accepts: [...FAILURES, "plan-done"] };

const TILE_EDGES: Record<string, Edge> = {
  "planned->queued": { accepts: ["publish-done"] },
  "queued->running": { accepts: ["tile-started", "tile-progress"] },
  "running->running": { accepts: ["tile-started"] },
  "planned->stored": { accepts: ["store-done", "reconcile-done"] },
  "queued->stored": { accepts: ["store-done", "reconcile-done"] },
  "running->stored": { accepts: ["store-done", "reconcile-done"] },
  "queued->queued": { accepts: ["tile-failed"] },
  "running->queued": { accepts: ["tile-failed"] },
  "queued->planned": { accepts: ["tile-failed", "reconcile-done"] },
  "running->planned": { accepts: ["tile-failed", "reconcile-done"] },
  "planned->failed": { accepts: ["tile-failed", "tile-max-deliveries", "reconcile-done"] },
  "queued->failed": { accepts: ["tile-failed", "tile-max-deliveries", "reconcile-done"] },
  "running->failed": { accepts: ["tile-failed", "tile-max-deliveries", "reconcile-done"] },
};

/** A tile the queue lost is published again at most this many times before it fails the job. */
export const MAX_LOST = 3;

class Step {
  readonly out: Outcome = { instructions: [], changes: [] };
  constructor(readonly job: JobRecord, readonly s: Stimulus) {}

  get t(): number {
    return this.s.t;
  }

  reject(reason: string): void {
    this.out.changes.push({ kind: "rejected", event: this.s.event.type, reason });
  }

  note(level: "info" | "warn", message: string, extra: { tile?: string; worker?: string; maxDiff?: number } = {}): void {
    this.out.changes.push({ kind: "note", level, message, ...extra });
  }

  reply(request: string, reply: Reply): void {
    this.out.instructions.push({ type: "reply", request, reply });
  }

  save(): void {
    if (!this.out.instructions.some((i) => i.type === "save")) this.out.instructions.push({ type: "save" });
  }

  start(task: TaskStart): string {
    const id = `${task.kind}-${this.job.session > 0 ? `${this.job.session}.` : ""}${this.job.nextTask++}`;
    this.job.tasks.set(id, task.kind);
    this.out.instructions.push({ type: "start", task: id, ...task } as Instruction);
    this.out.changes.push({ kind: "task", task: id, taskKind: task.kind, phase: "started" });
    return id;
  }

  /** Marks a task's outcome as heard; false (with a rejection) when the job is not waiting for it. */
  settle(task: string, phase: "done" | "failed" | "aborted"): boolean {
    const kind = this.job.tasks.get(task);
    if (!kind) {
      this.reject(`task ${task} is not running for this job (stale outcome)`);
      return false;
    }
    this.job.tasks.delete(task);
    this.out.changes.push({ kind: "task", task, taskKind: kind, phase });
    return true;
  }

  moveJob(to: JobState): void {
    const job = this.job;
    const from = job.state;
    const key = `${from}->${to}`;
    const edge = JOB_EDGES[key];
    if (!edge || !edge.accepts.includes(this.s.event.type)) throw new ImpossibleTransitionError(`job ${job.id}`, from, to, this.s.event.type);
    if (to === "failed") job.failedDuring = from;
    job.state = to;
    this.out.changes.push({ kind: "job", from, to, error: job.error });
    if (TILE_JOB_STATES.has(from)) this.out.instructions.push({ type: "disarm-reconcile" });
    if (TILE_JOB_STATES.has(to)) this.out.instructions.push({ type: "arm-reconcile", everyMs: job.settings.ackWaitMs });
    if (TERMINAL_JOB_STATES.has(to)) this.finish();
    this.save();
  }

  moveTile(id: string, to: TileState, facts: { worker?: string | null; attempt?: number; bytes?: number | null } = {}): TileRecord {
    const job = this.job;
    const tile = job.tiles.get(id)!;
    const from = tile.state;
    const key = `${from}->${to}`;
    const edge = TILE_EDGES[key];
    if (!edge || !edge.accepts.includes(this.s.event.type)) throw new ImpossibleTransitionError(`tile ${id} of job ${job.id}`, from, to, this.s.event.type);
    const durationMs = to === "stored" && tile.startedAt !== null ? this.t - tile.startedAt : null;
    tile.state = to;
    if (to === "queued" || to === "running") job.inFlight.add(id);
    else job.inFlight.delete(id);
    if (to === "planned") job.republish.push(id);
    this.out.changes.push({ kind: "tile", tile: id, from, to, worker: facts.worker ?? tile.worker, attempt: facts.attempt ?? tile.attempts, pairs: tile.pairs, durationMs, bytes: facts.bytes ?? null });
    return tile;
  }

  /** Entering a terminal state: stop every task, forget the tiles (counts stay), release the queue. */
  private finish(): void {
    const job = this.job;
    job.finishedAt = this.t;
    for (const task of job.tasks.keys()) this.out.instructions.push({ type: "abort", task });
    job.tasks.clear();
    job.tiles.clear();
    job.order = [];
    job.republish = [];
    job.publishing = [];
    job.inFlight.clear();
    job.nextToPublish = 0;
    this.start({ kind: "release" });
  }

  /** Publishes the next planned tiles, keeping at most maxQueued in flight (one publish task at a time). */
  publishMore(): void {
    const job = this.job;
    if (!TILE_JOB_STATES.has(job.state) || [...job.tasks.values()].includes("publish")) return;
    const room = job.settings.maxQueued - job.inFlight.size;
    const ids: string[] = [];
    while (ids.length < room && job.republish.length > 0) {
      const id = job.republish.shift()!;
      if (job.tiles.get(id)?.state === "planned" && !ids.includes(id)) ids.push(id);
    }
    while (ids.length < room && job.nextToPublish < job.order.length) {
      const id = job.order[job.nextToPublish++];
      if (job.tiles.get(id)?.state === "planned" && !ids.includes(id)) ids.push(id);
    }
    if (ids.length > 0) {
      job.publishing = ids;
      this.start({ kind: "publish", tileIds: ids });
    }
  }

  /** After a tile is stored: on to selection (or writing a kernel) once every tile is. */
  afterStored(): void {
    const job = this.job;
    if (!TILE_JOB_STATES.has(job.state)) return;
    if (job.counts.tilesDone === job.counts.tilesTotal) this.allStored();
    else this.publishMore();
  }

  /** Every tile is stored: embeddings go on to the search phase, search tiles to their gathering; scores to selection (or writing). */
  allStored(): void {
    if (this.job.state === "embedding") {
      this.moveJob("searching");
      this.start({ kind: "search" });
    } else if (this.job.state === "candidates") {
      if (![...this.job.tasks.values()].includes("gather")) this.start({ kind: "gather" });
    } else this.beginFinishing();
  }

  beginFinishing(): void {
    if (this.job.settings.kind === "select") {
      this.moveJob("selecting");
      this.start({ kind: "select" });
    } else {
      this.moveJob("writing");
      this.start({ kind: "write" });
    }
  }

  markStored(id: string, worker: string | null, attempt: number, seconds: number, bytes: number | null): void {
    const job = this.job;
    const tile = this.moveTile(id, "stored", { worker, attempt, bytes });
    tile.storedBy = worker;
    tile.worker = worker;
    job.counts.tilesDone++;
    job.counts.pairsDone += tile.pairs;
    if (worker !== null) {
      const w = job.workers.get(worker) ?? { tiles: 0, pairs: 0, seconds: 0, lastAt: this.t };
      w.tiles++;
      w.pairs += tile.pairs;
      w.seconds += seconds;
      w.lastAt = this.t;
      job.workers.set(worker, w);
    }
    job.progress.push({ t: this.t, pairs: job.counts.pairsDone });
    if (job.progress.length > 512) job.progress.splice(0, job.progress.length - 512);
    this.save();
  }

  fail(error: string, tileId?: string): void {
    const job = this.job;
    job.error = error;
    if (tileId && job.tiles.has(tileId) && job.tiles.get(tileId)!.state !== "failed") this.moveTile(tileId, "failed");
    this.moveJob("failed");
  }

  /** In cancelling, the last running task has settled: the job is cancelled. */
  maybeCancelled(): void {
    if (this.job.state === "cancelling" && this.job.tasks.size === 0) this.moveJob("cancelled");
  }
}

/** Applies one stimulus to the job's record; returns what the runtime must do and what changed. */
export function handleStimulus(job: JobRecord, s: Stimulus): Outcome {
  const step = new Step(job, s);
  HANDLERS[s.event.type](step, s.event as never);
  return step.out;
}

type Handlers = { [K in JobEventType]: (step: Step, e: Extract<JobEvent, { type: K }>) => void };

const tid = (id: string) => id.slice(0, 12);

const HANDLERS: Handlers = {
  submitted(step) {
    const job = step.job;
    if (job.state !== "planning" || job.tasks.size > 0 || job.nextTask !== 1) return step.reject("the job was already submitted");
    step.start({ kind: "plan", resume: false });
    step.save();
  },

  resumed(step, e) {
    const job = step.job;
    if (TERMINAL_JOB_STATES.has(job.state)) {
      if (job.released || [...job.tasks.values()].includes("release")) return step.reject(`the job is ${job.state}: nothing to resume`);
      job.session = e.session;
      job.nextTask = 1;
      step.start({ kind: "release" });
      return step.save();
    }
    Object.assign(job, { ...newJob(job.id, job.createdAt, job.settings), session: e.session });
    step.note("info", `resumed after a coordinator restart (was ${e.was}): planned again, stored tiles are kept`);
    step.start({ kind: "plan", resume: true });
    step.save();
  },

  "plan-done"(step, e) {
    const job = step.job;
    if (!step.settle(e.task, "done")) return;
    if (job.state === "cancelling") return step.maybeCancelled();
    if (job.state !== "planning") return step.reject(`the job is ${job.state}, not planning`);
    for (const t of e.tiles) {
      job.tiles.set(t.id, { state: t.stored ? "stored" : "planned", pairs: t.pairs, attempts: 0, failures: 0, healthReturns: 0, lost: 0, worker: null, lastError: null, heardAt: null, startedAt: null, storedBy: null });
      job.order.push(t.id);
      job.counts.pairsTotal += t.pairs;
      if (t.stored) {
        job.counts.tilesDone++;
        job.counts.tilesReused++;
        job.counts.pairsDone += t.pairs;
      }
    }
    job.counts.tilesTotal = job.tiles.size;
    if (e.embed) {
      if (job.tiles.size === 0) return step.fail("a job with an embeddings stage needs tiles to embed (planning gave none)");
      step.moveJob("embedding");
      if (job.counts.tilesDone === job.counts.tilesTotal) return step.allStored();
      return step.publishMore();
    }
    if (e.search) {
      if (job.tiles.size > 0) return step.fail("a job with a candidate search phase has no tiles to score (planning gave some)");
      step.moveJob("searching");
      step.start({ kind: "search" });
      return;
    }
    if (job.counts.tilesDone === job.counts.tilesTotal) return step.beginFinishing();
    step.moveJob("scoring");
    step.publishMore();
  },

  "publish-done"(step, e) {
    const job = step.job;
    if (!step.settle(e.task, "done")) return;
    job.publishing = [];
    if (job.state === "cancelling") return step.maybeCancelled();
    if (!TILE_JOB_STATES.has(job.state)) return step.reject(`the job is ${job.state}, not scoring or embedding`);
    for (const id of e.tileIds) {
      const tile = job.tiles.get(id);
      if (tile?.state !== "planned") continue;
      step.moveTile(id, "queued", { bytes: null });
      tile.heardAt = step.t;
      tile.attempts = 0;
    }
    step.publishMore();
  },

  "store-done"(step, e) {
    const job = step.job;
    const ours = step.settle(e.task, "done");
    if (!ours || job.state === "cancelling" || TERMINAL_JOB_STATES.has(job.state)) {
      step.reply(e.request, { outcome: "gone", message: `job ${job.id} is ${job.state}` });
      return step.maybeCancelled();
    }
    const tile = job.tiles.get(e.tileId);
    if (!tile) {
      step.reply(e.request, { outcome: "gone", message: `job ${job.id} has no tile ${e.tileId}` });
      return step.reject(`no tile ${tid(e.tileId)} in the job (now ${job.state})`);
    }
    if (e.outcome === "stored") {
      step.reply(e.request, { outcome: "stored", message: "stored" });
      if (tile.state === "stored" || tile.state === "failed") return step.reject(`tile ${tid(e.tileId)} is already ${tile.state}`);
      step.markStored(e.tileId, e.worker, e.attempt, e.seconds, e.bytes);
      return step.afterStored();
    }
    const tolerance = job.settings.conflictTolerance;
    const sameTruncation = e.truncated.stored === e.truncated.received;
    if (e.maxDiff <= tolerance && sameTruncation) {
      job.counts.duplicates++;
      step.reply(e.request, { outcome: "duplicate", message: e.maxDiff > 0 ? `kept the stored values (yours differ by up to ${e.maxDiff})` : "duplicate" });
      if (e.maxDiff > 0) {
        step.note("warn", `tile ${tid(e.tileId)}: worker ${e.worker}'s result differs from the stored one by up to ${e.maxDiff} (within the tolerance ${tolerance}): kept the stored values`, { tile: e.tileId, worker: e.worker, maxDiff: e.maxDiff });
      }
      if (tile.state !== "stored" && tile.state !== "failed") {
        step.markStored(e.tileId, null, e.attempt, 0, null);
        step.afterStored();
      }
      return;
    }
    const first = tile.storedBy ? `worker ${tile.storedBy}` : "an earlier run (the tile store's copy)";
    const why = sameTruncation
      ? `differ by up to ${e.maxDiff} (tolerance ${tolerance})`
      : `differ in truncated prompts (${e.truncated.stored} vs ${e.truncated.received})${Number.isFinite(e.maxDiff) ? `, values by up to ${e.maxDiff}` : ""}`;
    step.reply(e.request, { outcome: "conflict", message: `conflicts with the stored result of tile ${e.tileId}` });
    step.fail(`conflicting results for tile ${e.tileId}: ${first} and worker ${e.worker} ${why}`);
  },

  "reconcile-done"(step, e) {
    const job = step.job;
    if (!step.settle(e.task, "done")) return;
    if (job.state === "cancelling") return step.maybeCancelled();
    if (!TILE_JOB_STATES.has(job.state)) return step.reject(`the job is ${job.state}, not scoring or embedding`);
    const stored = new Set(e.stored);
    for (const [id, tile] of job.tiles) {
      if ((tile.state === "planned" || tile.state === "queued" || tile.state === "running") && stored.has(id)) {
        step.note("info", `tile ${tid(id)} is in the tile store: marked stored`, { tile: id });
        step.markStored(id, null, tile.attempts, 0, null);
      }
    }
    if (job.counts.tilesDone === job.counts.tilesTotal) return step.allStored();
    const q = e.queue;
    if (q) {
      const present = q.tileIds ? new Set(q.tileIds) : null;
      const leaseMs = 2 * job.settings.ackWaitMs;
      for (const id of [...job.inFlight]) {
        const tile = job.tiles.get(id)!;
        const quiet = tile.heardAt === null || step.t - tile.heardAt > leaseMs;
        if (!quiet) continue;
        const missing = !q.exists || (present !== null && !present.has(id));
        if (missing) {
          tile.lost++;
          job.counts.republished++;
          if (tile.lost > MAX_LOST) {
            return step.fail(`tile ${tid(id)} left the queue without a result ${tile.lost} times${tile.lastError ? `; last error: ${tile.lastError}` : ""}`, id);
          }
          step.note("warn", `tile ${tid(id)} is no longer in the queue and has no result: publishing it again`, { tile: id });
          tile.attempts = 0;
          step.moveTile(id, "planned");
          continue;
        }
        if (present !== null && tile.attempts >= job.settings.maxDeliver) {
          return step.fail(
            `tile ${tid(id)} used all ${job.settings.maxDeliver} deliveries without a result${tile.lastError ? `; last error from worker ${tile.worker}: ${tile.lastError}` : " (its workers died, stalled, or their failure reports were lost)"}`,
            id,
          );
        }
      }
    }
    step.publishMore();
  },

  "search-done"(step, e) {
    const job = step.job;
    if (!step.settle(e.task, "done")) return;
    if (job.state === "cancelling") return step.maybeCancelled();
    if (job.state === "candidates") return step.beginFinishing();
    if (job.state !== "searching") return step.reject(`the job is ${job.state}, not searching`);
    if (e.tiles && e.tiles.length > 0) {
      // The search's tiles join the job's (embed tiles, if any, are all stored): published and stored as scoring's are.
      for (const t of e.tiles) {
        if (job.tiles.has(t.id)) continue;
        job.tiles.set(t.id, { state: t.stored ? "stored" : "planned", pairs: t.pairs, attempts: 0, failures: 0, healthReturns: 0, lost: 0, worker: null, lastError: null, heardAt: null, startedAt: null, storedBy: null });
        job.order.push(t.id);
        job.counts.pairsTotal += t.pairs;
        if (t.stored) {
          job.counts.tilesDone++;
          job.counts.tilesReused++;
          job.counts.pairsDone += t.pairs;
        }
      }
      job.counts.tilesTotal = job.tiles.size;
      step.moveJob("candidates");
      return job.counts.tilesDone === job.counts.tilesTotal ? step.allStored() : step.publishMore();
    }
    step.beginFinishing();
  },

  "select-done"(step, e) {
    const job = step.job;
    if (!step.settle(e.task, "done")) return;
    if (job.state === "cancelling") return step.maybeCancelled();
    if (job.state !== "selecting") return step.reject(`the job is ${job.state}, not selecting`);
    step.moveJob("writing");
    step.start({ kind: "write" });
  },

  "write-done"(step, e) {
    const job = step.job;
    if (!step.settle(e.task, "done")) return;
    if (job.state === "cancelling") {
      job.summary = e.summary;
      job.error = null;
      step.note("warn", `the result was written before the cancel took effect: the job is done`);
      return step.moveJob("done");
    }
    if (job.state !== "writing") return step.reject(`the job is ${job.state}, not writing`);
    job.summary = e.summary;
    step.moveJob("done");
  },

  "release-done"(step, e) {
    const job = step.job;
    if (!step.settle(e.task, "done")) return;
    job.released = true;
    step.save();
  },

  "task-failed"(step, e) {
    const job = step.job;
    const kind = job.tasks.get(e.task);
    const ours = step.settle(e.task, e.aborted ? "aborted" : "failed");
    if (e.request !== undefined) {
      const live = ours && TILE_JOB_STATES.has(job.state);
      step.reply(e.request, live ? { outcome: "unavailable", message: `could not store the result: ${e.error}` } : { outcome: "gone", message: `job ${job.id} is ${job.state}` });
    }
    if (!ours) return;
    if (job.state === "cancelling") return step.maybeCancelled();
    if (TERMINAL_JOB_STATES.has(job.state)) return step.reject(`the job is ${job.state}`);
    switch (kind as TaskKind) {
      case "plan":
      case "search":
      case "gather":
      case "select":
      case "write":
        return step.fail(e.error);
      case "publish":
        // Its tiles are still planned: first in line for the next publish, at the next reconcile.
        job.republish.unshift(...job.publishing);
        job.publishing = [];
        return step.note("warn", `publishing tiles stopped (${e.error}); trying again at the next reconcile`);
      case "store":
      case "reconcile":
      case "release":
        return step.note("warn", `${kind} task ${e.task} failed: ${e.error}`);
    }
  },

  "tile-started"(step, e) {
    const job = step.job;
    const tile = job.tiles.get(e.tileId);
    const refuse = (reason: string) => {
      step.reply(e.request, { wanted: false });
      step.reject(reason);
    };
    if (!TILE_JOB_STATES.has(job.state)) return refuse(`the job is ${job.state}, not scoring or embedding`);
    if (!tile) return refuse(`no tile ${tid(e.tileId)} in the job`);
    if (tile.state === "stored" || tile.state === "failed") return refuse(`tile ${tid(e.tileId)} is already ${tile.state}`);
    step.reply(e.request, { wanted: true });
    tile.heardAt = step.t;
    if (tile.state === "planned") {
      // A delivery of a message an earlier coordinator session published: its result counts, but
      // the tile stays planned (to be published) so that a worker dying with it cannot strand it.
      return step.note("info", `tile ${tid(e.tileId)} started from an earlier session's message`, { tile: e.tileId, worker: e.worker });
    }
    if (e.attempt > tile.attempts) {
      if (e.attempt > 1) job.counts.redeliveries += e.attempt - Math.max(tile.attempts, 1);
      tile.attempts = e.attempt;
    }
    tile.worker = e.worker;
    tile.startedAt = step.t;
    step.moveTile(e.tileId, "running", { worker: e.worker, attempt: e.attempt });
  },

  "tile-progress"(step, e) {
    const job = step.job;
    const tile = job.tiles.get(e.tileId);
    if (!TILE_JOB_STATES.has(job.state) || !tile || tile.state === "stored" || tile.state === "failed") {
      step.reply(e.request, { wanted: false });
      return step.reject(!TILE_JOB_STATES.has(job.state) ? `the job is ${job.state}, not scoring or embedding` : `tile ${tid(e.tileId)} is ${tile ? tile.state : "unknown"}`);
    }
    step.reply(e.request, { wanted: true });
    tile.heardAt = step.t;
    if (tile.state === "queued") {
      tile.worker = e.worker;
      tile.attempts = Math.max(tile.attempts, e.attempt);
      tile.startedAt = step.t;
      step.moveTile(e.tileId, "running", { worker: e.worker, attempt: e.attempt });
    }
  },

  "result-received"(step, e) {
    const job = step.job;
    if (e.problem !== null) {
      step.reply(e.request, { outcome: "rejected", message: e.problem });
      return step.reject(`result of tile ${tid(e.tileId)} from worker ${e.worker} refused: ${e.problem}`);
    }
    const tile = job.tiles.get(e.tileId);
    const gone = (reason: string) => {
      step.reply(e.request, { outcome: "gone", message: reason });
      step.reject(reason);
    };
    if (!TILE_JOB_STATES.has(job.state)) return gone(`job ${job.id} is ${job.state}, not scoring or embedding`);
    if (!tile) return gone(`job ${job.id} has no tile ${e.tileId}`);
    if (tile.state === "failed") return gone(`tile ${tid(e.tileId)} has failed`);
    if (tile.state !== "stored") tile.heardAt = step.t;
    step.start({ kind: "store", tileId: e.tileId, request: e.request });
  },

  "tile-failed"(step, e) {
    const job = step.job;
    const tile = job.tiles.get(e.tileId);
    const drop = (reason: string) => {
      step.reply(e.request, { action: "drop" });
      step.reject(reason);
    };
    if (!TILE_JOB_STATES.has(job.state)) return drop(`the job is ${job.state}, not scoring or embedding`);
    if (!tile) return drop(`no tile ${tid(e.tileId)} in the job`);
    if (tile.state === "stored" || tile.state === "failed") return drop(`tile ${tid(e.tileId)} is already ${tile.state}`);
    tile.heardAt = step.t;
    tile.lastError = e.error;
    tile.worker = e.worker;
    step.reply(e.request, { action: e.kind === "tile" && tile.failures + 1 < job.settings.maxDeliver ? "retry" : "drop" });
    if (e.kind === "model") return step.fail(`the model bundle failed on worker ${e.worker}: ${e.error}`, e.tileId);
    if (e.kind === "health") {
      tile.healthReturns++;
      job.counts.healthReturns++;
      if (tile.healthReturns > 2 * job.settings.maxDeliver) {
        return step.fail(`tile ${tid(e.tileId)} made workers fail ${tile.healthReturns} times (last, worker ${e.worker}: ${e.error}); it may be too large for them`, e.tileId);
      }
      step.note("warn", `worker ${e.worker} handed tile ${tid(e.tileId)} back (its own fault: ${e.error}); publishing it again, no delivery counted`, { tile: e.tileId, worker: e.worker });
      tile.attempts = 0;
      if (tile.state !== "planned") step.moveTile(e.tileId, "planned", { worker: e.worker, attempt: e.attempt });
      return step.publishMore();
    }
    tile.failures++;
    if (tile.failures >= job.settings.maxDeliver) {
      return step.fail(`tile ${tid(e.tileId)} failed on every delivery (${tile.failures}); last error from worker ${e.worker}: ${e.error}`, e.tileId);
    }
    if (tile.state !== "planned") {
      step.moveTile(e.tileId, "queued", { worker: e.worker, attempt: e.attempt });
      tile.worker = null;
    }
  },

  "tile-max-deliveries"(step, e) {
    const job = step.job;
    const tile = job.tiles.get(e.tileId);
    if (!TILE_JOB_STATES.has(job.state)) return step.reject(`the job is ${job.state}, not scoring or embedding`);
    if (!tile) return step.reject(`no tile ${tid(e.tileId)} in the job`);
    if (tile.state === "stored" || tile.state === "failed") return step.reject(`tile ${tid(e.tileId)} is already ${tile.state}`);
    step.fail(
      tile.lastError
        ? `tile ${tid(e.tileId)} failed on every delivery; last error: ${tile.lastError}`
        : `tile ${tid(e.tileId)} reached the delivery limit without a result (its workers died or stalled)`,
      e.tileId,
    );
  },

  "reconcile-due"(step) {
    const job = step.job;
    if (!TILE_JOB_STATES.has(job.state)) return step.reject(`the job is ${job.state}, not scoring or embedding`);
    if ([...job.tasks.values()].includes("reconcile")) return step.reject("a reconcile is still running");
    step.start({ kind: "reconcile", tileIds: [...job.inFlight, ...[...job.tiles].filter(([, t]) => t.state === "planned").map(([id]) => id)] });
  },

  cancel(step, e) {
    const job = step.job;
    if (TERMINAL_JOB_STATES.has(job.state)) return step.reject(`the job is already ${job.state}`);
    if (job.state === "cancelling") return step.reject("the job is already being cancelled");
    job.cancelReason = e.reason;
    job.error = e.reason;
    if (job.tasks.size === 0) return step.moveJob("cancelled");
    for (const task of job.tasks.keys()) step.out.instructions.push({ type: "abort", task });
    step.moveJob("cancelling");
  },

  fail(step, e) {
    const job = step.job;
    if (!LIVE_JOB_STATES.has(job.state)) return step.reject(`the job is ${job.state}`);
    step.fail(e.reason);
  },
};
