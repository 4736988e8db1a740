/**
 * Job and tile life cycles as an explicit state machine (STYLE.md, after dask.distributed's
 * scheduler): every allowed edge is a named transition in a table; an edge not in the table is an
 * ImpossibleTransitionError. Transitions do no I/O: they change the in-memory record and return
 * effects, which the caller carries out afterwards. Every change is logged with its stimulus.
 */

export type JobState = "planning" | "scoring" | "selecting" | "done" | "failed" | "cancelled";
export type TileState = "planned" | "queued" | "running" | "stored" | "failed";

export const TERMINAL_JOB_STATES: ReadonlySet<JobState> = new Set(["done", "failed", "cancelled"]);

export type TileRecord = {
  state: TileState;
  pairs: number;
  /** Deliveries seen (from TileStarted/uploads); > 1 means redelivered. */
  attempts: number;
  worker: string | null;
  lastError: string | null;
};

export type WorkerTally = { tiles: number; pairs: number; seconds: number; lastAt: number };

export type JobRecord = {
  id: string;
  state: JobState;
  createdAt: number;
  tiles: Map<string, TileRecord>;
  counts: { tilesDone: number; tilesReused: number; pairsDone: number; pairsTotal: number; redeliveries: number };
  workers: Map<string, WorkerTally>;
  error: string | null;
  /** The state the job was in when it failed: "planning" means its input or settings were refused. */
  failedDuring: JobState | null;
  /** (time, pairs done) samples for the rate and ETA. */
  progress: { t: number; pairs: number }[];
  log: { t: number; stimulus: string; change: string }[];
};

export type PlannedTile = { id: string; pairs: number; stored: boolean };

export type JobEvent =
  | { type: "planned"; tiles: PlannedTile[] }
  | { type: "planning-failed"; error: string }
  | { type: "tiles-published"; tileIds: string[] }
  | { type: "tile-started"; tileId: string; worker: string; attempt: number }
  | { type: "tile-stored"; tileId: string; worker: string; attempt: number; seconds: number; duplicate: boolean }
  | { type: "tile-failed"; tileId: string; worker: string; attempt: number; error: string; final: boolean }
  | { type: "tile-max-deliveries"; tileId: string }
  | { type: "selection-done" }
  | { type: "selection-failed"; error: string }
  | { type: "cancel"; reason: string };

export type JobEffect =
  /** Publish planned tiles, keeping at most the job's window queued at once. */
  | { type: "publish-more" }
  | { type: "run-selection" }
  | { type: "save-status" }
  | { type: "release-queue" };

export class ImpossibleTransitionError extends Error {
  constructor(what: string, from: string, to: string, stimulus: string) {
    super(`Impossible transition of ${what}: ${from} -> ${to} (stimulus ${stimulus})`);
    this.name = "ImpossibleTransitionError";
  }
}

type JobTransition = (job: JobRecord, event: JobEvent, now: number) => JobEffect[];
type TileTransition = (tile: TileRecord, job: JobRecord, event: JobEvent, now: number) => JobEffect[];

const LOG_LIMIT = 2000;

export function newJob(id: string, now: number): JobRecord {
  return {
    id,
    state: "planning",
    createdAt: now,
    tiles: new Map(),
    counts: { tilesDone: 0, tilesReused: 0, pairsDone: 0, pairsTotal: 0, redeliveries: 0 },
    workers: new Map(),
    error: null,
    failedDuring: null,
    progress: [],
    log: [],
  };
}

// ---- job transitions -------------------------------------------------------------------------

const jobTransitions: Record<string, JobTransition> = {
  "planning->scoring": (job, e) => {
    if (e.type !== "planned") return [];
    for (const t of e.tiles) {
      job.tiles.set(t.id, { state: t.stored ? "stored" : "planned", pairs: t.pairs, attempts: 0, worker: null, lastError: null });
      job.counts.pairsTotal += t.pairs;
      if (t.stored) {
        job.counts.tilesDone++;
        job.counts.tilesReused++;
        job.counts.pairsDone += t.pairs;
      }
    }
    return [{ type: "publish-more" }, { type: "save-status" }];
  },
  "planning->selecting": (job, e) => {
    jobTransitions["planning->scoring"](job, e, 0);
    return [{ type: "release-queue" }, { type: "run-selection" }, { type: "save-status" }];
  },
  "scoring->selecting": () => [{ type: "release-queue" }, { type: "run-selection" }, { type: "save-status" }],
  "selecting->done": () => [{ type: "save-status" }],
  "planning->failed": failJob,
  "scoring->failed": failJob,
  "selecting->failed": failJob,
  "planning->cancelled": cancelJob,
  "scoring->cancelled": cancelJob,
  "selecting->cancelled": cancelJob,
};

function failJob(job: JobRecord, e: JobEvent): JobEffect[] {
  if (job.error === null && "error" in e) job.error = e.error;
  return [{ type: "release-queue" }, { type: "save-status" }];
}

function cancelJob(job: JobRecord, e: JobEvent): JobEffect[] {
  job.error = e.type === "cancel" ? e.reason : "cancelled";
  return [{ type: "release-queue" }, { type: "save-status" }];
}

function moveJob(job: JobRecord, to: JobState, event: JobEvent, now: number): JobEffect[] {
  const key = `${job.state}->${to}`;
  const transition = jobTransitions[key];
  if (!transition) throw new ImpossibleTransitionError(`job ${job.id}`, job.state, to, event.type);
  const effects = transition(job, event, now);
  record(job, now, event.type, `job ${key}`);
  if (to === "failed") job.failedDuring = job.state;
  job.state = to;
  return effects;
}

// ---- tile transitions ------------------------------------------------------------------------

const tileTransitions: Record<string, TileTransition> = {
  "planned->queued": () => [],
  "queued->running": (tile, job, e) => started(tile, job, e),
  // After a coordinator restart a worker may still hold a delivery made before it: its result
  // counts, but the tile stays planned (to be published) until then, so a worker dying with it
  // cannot leave a tile that nothing will deliver again.
  "planned->stored": (tile, job, e, now) => stored(tile, job, e, now),
  "planned->planned": (tile, _job, e) => {
    if (e.type === "tile-failed") tile.lastError = e.error;
    return [];
  },
  "running->running": (tile, job, e) => started(tile, job, e),
  "queued->stored": (tile, job, e, now) => stored(tile, job, e, now),
  "running->stored": (tile, job, e, now) => stored(tile, job, e, now),
  "failed->stored": (tile, job, e, now) => stored(tile, job, e, now),
  "stored->stored": () => [],
  "running->queued": (tile, _job, e) => {
    if (e.type === "tile-failed") tile.lastError = e.error;
    tile.worker = null;
    return [];
  },
  "queued->queued": (tile, _job, e) => {
    if (e.type === "tile-failed") tile.lastError = e.error;
    return [];
  },
  "running->failed": (tile, _job, e) => {
    if (e.type === "tile-failed") tile.lastError = e.error;
    return [];
  },
  "planned->failed": (tile, _job, e) => {
    if (e.type === "tile-failed") tile.lastError = e.error;
    return [];
  },
  "queued->failed": (tile, _job, e) => {
    if (e.type === "tile-failed") tile.lastError = e.error;
    return [];
  },
};

function started(tile: TileRecord, job: JobRecord, e: JobEvent): JobEffect[] {
  if (e.type !== "tile-started") return [];
  if (e.attempt > tile.attempts) {
    if (e.attempt > 1) job.counts.redeliveries += e.attempt - Math.max(tile.attempts, 1);
    tile.attempts = e.attempt;
  }
  tile.worker = e.worker;
  return [];
}

function stored(tile: TileRecord, job: JobRecord, e: JobEvent, now: number): JobEffect[] {
  if (e.type !== "tile-stored") return [];
  tile.worker = e.worker;
  tile.attempts = Math.max(tile.attempts, e.attempt);
  job.counts.tilesDone++;
  job.counts.pairsDone += tile.pairs;
  const w = job.workers.get(e.worker) ?? { tiles: 0, pairs: 0, seconds: 0, lastAt: now };
  w.tiles++;
  w.pairs += tile.pairs;
  w.seconds += e.seconds;
  w.lastAt = now;
  job.workers.set(e.worker, w);
  job.progress.push({ t: now, pairs: job.counts.pairsDone });
  if (job.progress.length > 512) job.progress.splice(0, job.progress.length - 512);
  return [];
}

function moveTile(job: JobRecord, tileId: string, to: TileState, event: JobEvent, now: number): JobEffect[] {
  const tile = job.tiles.get(tileId);
  if (!tile) throw new ImpossibleTransitionError(`unknown tile ${tileId} of job ${job.id}`, "?", to, event.type);
  const key = `${tile.state}->${to}`;
  const transition = tileTransitions[key];
  if (!transition) throw new ImpossibleTransitionError(`tile ${tileId} of job ${job.id}`, tile.state, to, event.type);
  const effects = transition(tile, job, event, now);
  if (tile.state !== to) record(job, now, event.type, `tile ${tileId.slice(0, 12)} ${key}`);
  tile.state = to;
  return effects;
}

// ---- the stimulus handler ----------------------------------------------------------------------

/**
 * Applies one event. Events that arrive for a job that is already finished (a late upload, a
 * duplicate) change nothing: at-least-once delivery makes them normal.
 */
export function handleJobEvent(job: JobRecord, event: JobEvent, now: number): JobEffect[] {
  const terminal = TERMINAL_JOB_STATES.has(job.state);
  switch (event.type) {
    case "planned": {
      if (job.state !== "planning") throw new ImpossibleTransitionError(`job ${job.id}`, job.state, "scoring", event.type);
      const allStored = event.tiles.every((t) => t.stored);
      return moveJob(job, allStored ? "selecting" : "scoring", event, now);
    }
    case "planning-failed":
      return moveJob(job, "failed", event, now);
    case "tiles-published": {
      if (job.state !== "scoring") return [];
      const effects: JobEffect[] = [];
      for (const id of event.tileIds) if (job.tiles.get(id)?.state === "planned") effects.push(...moveTile(job, id, "queued", event, now));
      return effects;
    }
    case "tile-started": {
      if (job.state !== "scoring") return [];
      const tile = job.tiles.get(event.tileId);
      if (!tile || tile.state === "stored" || tile.state === "failed" || tile.state === "planned") return [];
      return moveTile(job, event.tileId, "running", event, now);
    }
    case "tile-stored": {
      if (terminal || job.state === "planning") return [];
      const tile = job.tiles.get(event.tileId);
      if (!tile) return [];
      if (tile.state === "stored") return [];
      const effects = moveTile(job, event.tileId, "stored", event, now);
      if (job.state === "scoring" && job.counts.tilesDone === job.tiles.size) effects.push(...moveJob(job, "selecting", event, now));
      else if (job.state === "scoring") effects.push({ type: "publish-more" }, { type: "save-status" });
      return effects;
    }
    case "tile-failed": {
      if (job.state !== "scoring") return [];
      const tile = job.tiles.get(event.tileId);
      if (!tile || tile.state === "stored") return [];
      if (!event.final) return moveTile(job, event.tileId, tile.state === "planned" ? "planned" : "queued", event, now);
      const effects = moveTile(job, event.tileId, "failed", event, now);
      job.error = `tile ${event.tileId.slice(0, 12)} failed on every delivery (${event.attempt}); last error from worker ${event.worker}: ${event.error}`;
      return [...effects, ...moveJob(job, "failed", event, now)];
    }
    case "tile-max-deliveries": {
      if (job.state !== "scoring") return [];
      const tile = job.tiles.get(event.tileId);
      if (!tile || tile.state === "stored") return [];
      const reason = tile.lastError
        ? `tile ${event.tileId.slice(0, 12)} failed on every delivery; last error: ${tile.lastError}`
        : `tile ${event.tileId.slice(0, 12)} reached the delivery limit without a result (its workers died or stalled)`;
      const effects = tile.state === "failed" ? [] : moveTile(job, event.tileId, "failed", event, now);
      job.error = reason;
      return [...effects, ...moveJob(job, "failed", event, now)];
    }
    case "selection-done":
      return moveJob(job, "done", event, now);
    case "selection-failed":
      return moveJob(job, "failed", event, now);
    case "cancel":
      if (terminal) return [];
      return moveJob(job, "cancelled", event, now);
  }
}

function record(job: JobRecord, t: number, stimulus: string, change: string): void {
  job.log.push({ t, stimulus, change });
  if (job.log.length > LOG_LIMIT) job.log.splice(0, job.log.length - LOG_LIMIT);
}

/** Pairs per second over the last `windowMs` of stored tiles, and the ETA at that rate. */
export function jobRate(job: JobRecord, now: number, windowMs = 30_000): { pairsPerSecond: number; etaSeconds: number } {
  const recent = job.progress.filter((p) => now - p.t <= windowMs);
  let pairsPerSecond = 0;
  if (recent.length >= 2) {
    const dt = (recent[recent.length - 1].t - recent[0].t) / 1000;
    if (dt > 0) pairsPerSecond = (recent[recent.length - 1].pairs - recent[0].pairs) / dt;
  }
  if (pairsPerSecond === 0 && recent.length === 1 && job.progress.length >= 2) {
    const first = job.progress[0];
    const last = job.progress[job.progress.length - 1];
    const dt = (last.t - first.t) / 1000;
    if (dt > 0) pairsPerSecond = (last.pairs - first.pairs) / dt;
  }
  const left = job.counts.pairsTotal - job.counts.pairsDone;
  return { pairsPerSecond, etaSeconds: pairsPerSecond > 0 ? left / pairsPerSecond : left === 0 ? 0 : -1 };
}
