/**
 * The job's record and the stimuli and instructions of its state machine (STYLE.md, after
 * dask.distributed's scheduler). The machine itself is in machine.ts; this file holds the shapes.
 *
 * Job: planning -> scoring -> selecting -> writing -> done, with failed, cancelling -> cancelled
 * from any live state; a job whose kernel comes from a candidate search (the SE kernel on given
 * embeddings) goes planning -> searching -> selecting instead of scoring. DELIFT (SE) without given
 * embeddings first has its samples embedded by the workers: planning -> embedding -> searching, the
 * embedding state running embed tiles exactly as scoring runs utility tiles. Searching on workers,
 * the search task hands exact searches out as search tiles: searching -> candidates (tiles, as
 * scoring) -> a gather task -> selecting. A kernel job skips selecting. Tile: planned -> queued -> running -> stored,
 * or failed; a tile the queue lost, or one a sick worker handed back, goes back to planned.
 */

export type JobState = "planning" | "embedding" | "searching" | "candidates" | "scoring" | "selecting" | "writing" | "cancelling" | "done" | "failed" | "cancelled";
export type TileState = "planned" | "queued" | "running" | "stored" | "failed";
export type TaskKind = "plan" | "search" | "gather" | "publish" | "store" | "reconcile" | "select" | "write" | "release";

export const TERMINAL_JOB_STATES: ReadonlySet<JobState> = new Set(["done", "failed", "cancelled"]);
export const LIVE_JOB_STATES: ReadonlySet<JobState> = new Set(["planning", "embedding", "searching", "candidates", "scoring", "selecting", "writing"]);
/** The states in which the job's tiles are published, computed by workers and stored. */
export const TILE_JOB_STATES: ReadonlySet<JobState> = new Set(["embedding", "candidates", "scoring"]);

/** What a job's machine is told once, at submission (from the spec and the coordinator). */
export type JobSettings = {
  kind: "select" | "kernel";
  ackWaitMs: number;
  maxDeliver: number;
  maxQueued: number;
  /** Largest absolute difference between two results of one tile that still counts as the same. */
  conflictTolerance: number;
};

export type TileRecord = {
  state: TileState;
  pairs: number;
  /** Highest delivery count seen for the tile's current message (1 = first delivery). */
  attempts: number;
  /** Failures reported by healthy workers (count against the delivery limit). */
  failures: number;
  /** Times a worker handed the tile back because of its own fault (not counted as failures). */
  healthReturns: number;
  /** Times the queue lost the tile and it was published again. */
  lost: number;
  worker: string | null;
  lastError: string | null;
  /** Last time anything was heard of the tile in flight (published, started, progress, failure). */
  heardAt: number | null;
  /** When its current delivery started (for the tile's duration). */
  startedAt: number | null;
  /** The worker whose result is stored (null: reused from the tile store). */
  storedBy: string | null;
};

export type WorkerTally = { tiles: number; pairs: number; seconds: number; lastAt: number };

export type JobCounts = {
  tilesTotal: number;
  tilesDone: number;
  tilesReused: number;
  pairsDone: number;
  pairsTotal: number;
  redeliveries: number;
  duplicates: number;
  healthReturns: number;
  republished: number;
};

export type JobRecord = {
  id: string;
  state: JobState;
  settings: JobSettings;
  createdAt: number;
  finishedAt: number | null;
  tiles: Map<string, TileRecord>;
  /** Tile ids in plan order, and how far publishing has got through them. */
  order: string[];
  nextToPublish: number;
  /** Tiles back to planned after they were published once (lost, handed back), published first. */
  republish: string[];
  /** The tiles of the publish task running now. */
  publishing: string[];
  /** Tiles queued or running. */
  inFlight: Set<string>;
  counts: JobCounts;
  workers: Map<string, WorkerTally>;
  error: string | null;
  /** The state the job was in when it failed: "planning" means its input or settings were refused. */
  failedDuring: JobState | null;
  cancelReason: string | null;
  summary: string | null;
  /** (time, pairs done) samples for the rate and ETA. */
  progress: { t: number; pairs: number }[];
  /** The tasks this job is waiting for, by id. */
  tasks: Map<string, TaskKind>;
  nextTask: number;
  /** Coordinator sessions: 0 until the first restart; part of task ids. */
  session: number;
  released: boolean;
};

export type PlannedTile = { id: string; pairs: number; stored: boolean };

export type FailureKind = "tile" | "model" | "health";

/** What reconcile saw of the job's queue (JetStream stream and consumer, or the memory queue). */
export type QueueObservation = {
  exists: boolean;
  /** Messages in the stream (work queue: not yet acked or terminated). */
  messages: number;
  /** Not yet delivered, delivered and not acked, redelivered (consumer info). */
  pending: number;
  ackPending: number;
  redelivered: number;
  /** Tile ids of the messages present, or null when there were too many to list. */
  tileIds: string[] | null;
};

export type StoreOutcome =
  | { outcome: "stored" }
  /** The tile store already held the tile: how far the new values are from the stored ones. */
  | { outcome: "exists"; maxDiff: number; truncated: { stored: number; received: number } };

export type JobEvent =
  | { type: "submitted"; settings: JobSettings }
  /** A restarted coordinator takes the job up again (session: how many restarts so far). */
  | { type: "resumed"; was: JobState; session: number }
  /**
   * `search`: the job's kernel needs the candidate search phase (no tiles to score). `embed`: the
   * tiles are embed tiles (pairs: their samples), computed before the search phase.
   */
  | { type: "plan-done"; task: string; tiles: PlannedTile[]; samples: number; search?: boolean; embed?: boolean }
  /**
   * `tiles`: the search was handed to the workers as search tiles (the candidates state runs them,
   * then a gather task merges their lists and ends with a search-done of its own).
   */
  | { type: "search-done"; task: string; tiles?: PlannedTile[] }
  | { type: "publish-done"; task: string; tileIds: string[]; bytes: number }
  | ({ type: "store-done"; task: string; request: string; tileId: string; worker: string; attempt: number; seconds: number; bytes: number } & StoreOutcome)
  | { type: "reconcile-done"; task: string; queue: QueueObservation | null; stored: string[] }
  | { type: "select-done"; task: string }
  | { type: "write-done"; task: string; summary: string }
  | { type: "release-done"; task: string }
  /** A task ended without its outcome; `request` is the worker request it was serving, if any. */
  | { type: "task-failed"; task: string; error: string; errorName: string; aborted: boolean; request?: string }
  | { type: "tile-started"; request: string; tileId: string; worker: string; attempt: number }
  | { type: "tile-progress"; request: string; tileId: string; worker: string; attempt: number }
  | { type: "result-received"; request: string; tileId: string; worker: string; attempt: number; problem: string | null }
  | { type: "tile-failed"; request: string; tileId: string; worker: string; attempt: number; error: string; kind: FailureKind }
  | { type: "tile-max-deliveries"; tileId: string }
  | { type: "reconcile-due" }
  | { type: "cancel"; reason: string }
  | { type: "fail"; reason: string };

export type JobEventType = JobEvent["type"];

/** A stimulus: an event with its id and time, as the runtime feeds it and the story keeps it. */
export type Stimulus = { id: string; t: number; event: JobEvent };

export type UploadReply = { outcome: "stored" | "duplicate" | "gone" | "conflict" | "rejected" | "unavailable"; message: string };
export type FailureReply = { action: "retry" | "drop" };
export type StartedReply = { wanted: boolean };
export type Reply = UploadReply | FailureReply | StartedReply;

export type TaskStart =
  | { kind: "plan"; resume: boolean }
  | { kind: "search" }
  | { kind: "gather" }
  | { kind: "publish"; tileIds: string[] }
  | { kind: "store"; tileId: string; request: string }
  | { kind: "reconcile"; tileIds: string[] }
  | { kind: "select" }
  | { kind: "write" }
  | { kind: "release" };

export type Instruction =
  | ({ type: "start"; task: string } & TaskStart)
  | { type: "abort"; task: string }
  | { type: "reply"; request: string; reply: Reply }
  | { type: "arm-reconcile"; everyMs: number }
  | { type: "disarm-reconcile" }
  | { type: "save" };

/** A change the machine made, for the story (and for metrics derived from it). */
export type Change =
  | { kind: "job"; from: JobState; to: JobState; error: string | null }
  | { kind: "tile"; tile: string; from: TileState; to: TileState; worker: string | null; attempt: number; pairs: number; durationMs: number | null; bytes: number | null }
  | { kind: "task"; task: string; taskKind: TaskKind; phase: "started" | "done" | "failed" | "aborted" }
  | { kind: "rejected"; event: JobEventType; reason: string }
  | { kind: "note"; level: "info" | "warn"; message: string; tile?: string; worker?: string; maxDiff?: number };

export class ImpossibleTransitionError extends Error {
  constructor(what: string, from: string, to: string, stimulus: string) {
    super(`Impossible transition of ${what}: ${from} -> ${to} (stimulus ${stimulus})`);
    this.name = "ImpossibleTransitionError";
  }
}

export function newJob(id: string, now: number, settings: JobSettings): JobRecord {
  return {
    id,
    state: "planning",
    settings,
    createdAt: now,
    finishedAt: null,
    tiles: new Map(),
    order: [],
    nextToPublish: 0,
    republish: [],
    publishing: [],
    inFlight: new Set(),
    counts: { tilesTotal: 0, tilesDone: 0, tilesReused: 0, pairsDone: 0, pairsTotal: 0, redeliveries: 0, duplicates: 0, healthReturns: 0, republished: 0 },
    workers: new Map(),
    error: null,
    failedDuring: null,
    cancelReason: null,
    summary: null,
    progress: [],
    tasks: new Map(),
    nextTask: 1,
    session: 0,
    released: false,
  };
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
