import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { type JobStatusMessage, TILE_SECONDS_BUCKETS } from "../../../common/src/mod.js";
import { TERMINAL_JOB_STATES, type JobRecord, type JobState, type PlannedTile, type TileState } from "../jobs/job-state.js";
import type { StoryEntry } from "../jobs/story.js";

const JOB_STATES: JobState[] = ["planning", "embedding", "searching", "candidates", "scoring", "selecting", "writing", "cancelling", "done", "failed", "cancelled"];
const TILE_STATES: TileState[] = ["planned", "queued", "running", "stored", "failed"];
const TASK_SECONDS_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, 7200];
/** Finished jobs whose series are kept; older ones are removed (each job's series are a handful). */
const KEPT_FINISHED_JOBS = 50;

/** A job's queue as JetStream's consumer reports it (null: no queue, or not readable now). */
export type QueueDepth = { pending: number; ackPending: number; redelivered: number };

export type JobMetricsOptions = {
  /** The jobs' statuses now (the coordinator's list): rate, ETA and redeliveries as the machine counts them. */
  statuses: () => JobStatusMessage[];
  /** Reads a scoring job's queue depth at scrape time (JetStream consumer info). */
  queueDepth?: (jobId: string) => Promise<QueueDepth | null>;
};

type JobView = {
  state: JobState;
  tiles: Record<TileState, number>;
  pendingPlan: Map<string, PlannedTile[]>;
  /** The job's tile gauges by state, bound once (a tile change then sets two without label lookups). */
  tileGauges: Record<TileState, Gauge.Internal<string>>;
  pairsDone: Gauge.Internal<string>;
};

/**
 * The coordinator's Prometheus metrics, derived from the jobs' stories (coordinator.onStory): every
 * transition the job machines make moves a gauge or a counter here, so the metrics say exactly what
 * the stories say. What the machine computes rather than records (rate, ETA, redeliveries) is read
 * from the job statuses at scrape time; queue depth from JetStream at scrape time.
 */
export class JobMetrics {
  private readonly jobs = new Map<string, JobView>();
  private readonly finished: string[] = [];
  private readonly taskStarts = new Map<string, number>();
  private readonly transitionCounters = new Map<string, Counter.Internal>();
  private readonly jobState: Gauge;
  private readonly jobTiles: Gauge;
  private readonly planTiles: Gauge;
  private readonly planPairs: Gauge;
  private readonly pairsDone: Gauge;
  private readonly transitions: Counter;
  private readonly tilesStored: Counter;
  private readonly pairsStored: Counter;
  private readonly tileSeconds: Histogram;
  private readonly bytes: Counter;
  private readonly tileFailures: Counter;
  private readonly tasksRunning: Gauge;
  private readonly taskSeconds: Histogram;

  constructor(registry: Registry, o: JobMetricsOptions) {
    const registers = [registry];
    this.jobState = new Gauge({ name: "delift_job_state", help: "1 for the job's current state, 0 for the others", labelNames: ["job", "state"], registers });
    this.jobTiles = new Gauge({ name: "delift_job_tiles", help: "The job's tiles in each state (planned, queued, running, stored, failed)", labelNames: ["job", "state"], registers });
    this.planTiles = new Gauge({ name: "delift_job_tiles_planned_total", help: "Tiles in the job's plan", labelNames: ["job"], registers });
    this.planPairs = new Gauge({ name: "delift_job_pairs_planned_total", help: "Utility pairs (kernel values) in the job's plan", labelNames: ["job"], registers });
    this.pairsDone = new Gauge({ name: "delift_job_pairs_done", help: "Utility pairs of the job's stored tiles (reused ones included)", labelNames: ["job"], registers });
    this.transitions = new Counter({ name: "delift_tile_transitions_total", help: "Tile state changes made by the job machines", labelNames: ["from", "to"], registers });
    this.tilesStored = new Counter({ name: "delift_tiles_stored_total", help: "Tiles stored from workers' results (not those reused from the tile store)", registers });
    this.pairsStored = new Counter({ name: "delift_pairs_stored_total", help: "Utility pairs stored from workers' results; rate() gives the cluster's pairs/s", registers });
    this.tileSeconds = new Histogram({ name: "delift_tile_seconds", help: "Seconds from a tile's start on a worker to its result stored", buckets: TILE_SECONDS_BUCKETS, registers });
    this.bytes = new Counter({ name: "delift_bytes_total", help: "Bytes of tile messages published to NATS (down) and of tile results received over gRPC (up)", labelNames: ["direction"], registers });
    this.tileFailures = new Counter({ name: "delift_tile_failures_total", help: "Tile failures workers reported, by fault (tile, model, health)", labelNames: ["kind"], registers });
    this.tasksRunning = new Gauge({ name: "delift_tasks_running", help: "The coordinator's tasks running now, by kind (plan, publish, store, reconcile, select, write, release)", labelNames: ["kind"], registers });
    this.taskSeconds = new Histogram({ name: "delift_task_seconds", help: "Seconds a finished task ran, by kind (select: the selection, write: the result files)", labelNames: ["kind"], buckets: TASK_SECONDS_BUCKETS, registers });
    for (const d of ["down", "up"]) this.bytes.inc({ direction: d }, 0);

    const known = this.jobs;
    const byJob = (name: string, help: string, value: (s: JobStatusMessage) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ["job"],
        registers,
        collect() {
          this.reset();
          // The jobs with series (live ones and the last finished ones), like the story-fed gauges.
          for (const s of o.statuses()) if (known.has(s.jobId)) this.set({ job: s.jobId }, value(s));
        },
      });
    void [
      byJob("delift_job_pairs_per_second", "The job's rate over the last 30 s of stored tiles (as delift watch shows it)", (s) => s.pairsPerSecond),
      byJob("delift_job_eta_seconds", "Seconds the job's scoring still needs at its rate (-1: unknown)", (s) => s.etaSeconds),
      byJob("delift_job_redeliveries", "Deliveries of the job's tiles beyond the first, as the job machine counts them", (s) => s.redeliveries),
    ];
    const depth = o.queueDepth;
    if (depth) {
      const read = async () => {
        const scoring = o.statuses().filter((s) => s.state === "scoring");
        return Promise.all(scoring.map(async (s) => ({ job: s.jobId, depth: await withTimeout(depth(s.jobId), 2000).catch(() => null) })));
      };
      let last: Promise<{ job: string; depth: QueueDepth | null }[]> | null = null;
      const fresh = () => (last ??= read().finally(() => setTimeout(() => (last = null), 500).unref()));
      const queueGauge = (name: string, help: string, pick: (d: QueueDepth) => number) =>
        new Gauge({
          name,
          help,
          labelNames: ["job"],
          registers,
          async collect() {
            const rows = await fresh();
            this.reset();
            for (const r of rows) if (r.depth) this.set({ job: r.job }, pick(r.depth));
          },
        });
      queueGauge("delift_queue_pending", "The job's tile messages not yet delivered to any worker (JetStream consumer num_pending)", (d) => d.pending);
      queueGauge("delift_queue_ack_pending", "The job's tile messages delivered and not yet acknowledged (being worked on)", (d) => d.ackPending);
      queueGauge("delift_queue_redelivered", "The job's tile messages delivered more than once and not yet acknowledged", (d) => d.redelivered);
    }
  }

  /** Starts from the jobs as they are now (a coordinator resumed from its data dir). */
  seed(records: Iterable<JobRecord>): void {
    for (const r of records) {
      const view = this.view(r.id);
      const tiles = blankTiles();
      if (r.tiles.size > 0) for (const t of r.tiles.values()) tiles[t.state]++;
      else tiles.stored = r.counts.tilesDone;
      view.tiles = tiles;
      this.setState(r.id, r.state);
      this.planTiles.set({ job: r.id }, r.counts.tilesTotal);
      this.planPairs.set({ job: r.id }, r.counts.pairsTotal);
      this.pairsDone.set({ job: r.id }, r.counts.pairsDone);
      this.publishTiles(r.id);
      if (TERMINAL_JOB_STATES.has(r.state)) this.finishedJob(r.id);
    }
  }

  /** One story entry, as the coordinator appends it. */
  observe(e: StoryEntry): void {
    const view = this.view(e.job);
    switch (e.kind) {
      case "stimulus": {
        const ev = e.event;
        if (ev.type === "submitted") {
          // A new job is planning without a state change: it has its series from now on.
          this.setState(e.job, "planning");
          this.publishTiles(e.job);
        } else if (ev.type === "plan-done") view.pendingPlan.set(ev.task, ev.tiles);
        else if (ev.type === "publish-done") this.bytes.inc({ direction: "down" }, ev.bytes);
        else if (ev.type === "store-done") this.bytes.inc({ direction: "up" }, ev.bytes);
        else if (ev.type === "tile-failed") this.tileFailures.inc({ kind: ev.kind });
        else if (ev.type === "resumed" && !TERMINAL_JOB_STATES.has(view.state)) {
          view.tiles = blankTiles();
          this.setState(e.job, "planning");
          this.publishTiles(e.job);
        }
        return;
      }
      case "task": {
        const key = `${e.job}/${e.task}`;
        if (e.phase === "started") {
          this.taskStarts.set(key, e.t);
          this.tasksRunning.inc({ kind: e.taskKind });
          return;
        }
        const started = this.taskStarts.get(key);
        if (started !== undefined) {
          this.taskStarts.delete(key);
          this.tasksRunning.dec({ kind: e.taskKind });
          if (e.phase === "done") this.taskSeconds.observe({ kind: e.taskKind }, (e.t - started) / 1000);
        }
        const planned = view.pendingPlan.get(e.task);
        view.pendingPlan.delete(e.task);
        if (planned && e.phase === "done" && view.state === "planning") this.applyPlan(e.job, view, planned);
        return;
      }
      case "tile": {
        view.tiles[e.from] = Math.max(0, view.tiles[e.from] - 1);
        view.tiles[e.to]++;
        view.tileGauges[e.from].set(view.tiles[e.from]);
        view.tileGauges[e.to].set(view.tiles[e.to]);
        const key = `${e.from}>${e.to}`;
        let transition = this.transitionCounters.get(key);
        if (!transition) {
          transition = this.transitions.labels({ from: e.from, to: e.to });
          this.transitionCounters.set(key, transition);
        }
        transition.inc();
        if (e.to === "stored") {
          this.tilesStored.inc();
          this.pairsStored.inc(e.pairs);
          view.pairsDone.inc(e.pairs);
          if (e.durationMs !== null) this.tileSeconds.observe(e.durationMs / 1000);
        }
        return;
      }
      case "job": {
        this.setState(e.job, e.to);
        if (TERMINAL_JOB_STATES.has(e.to)) {
          // The machine forgets a finished job's tiles: none is planned, queued or running any more.
          view.tiles = { ...blankTiles(), stored: view.tiles.stored, failed: view.tiles.failed };
          this.publishTiles(e.job);
          this.finishedJob(e.job);
        }
        return;
      }
      default:
        return;
    }
  }

  private applyPlan(job: string, view: JobView, tiles: PlannedTile[]): void {
    view.tiles = blankTiles();
    let pairs = 0;
    let donePairs = 0;
    for (const t of tiles) {
      view.tiles[t.stored ? "stored" : "planned"]++;
      pairs += t.pairs;
      if (t.stored) donePairs += t.pairs;
    }
    this.planTiles.set({ job }, tiles.length);
    this.planPairs.set({ job }, pairs);
    this.pairsDone.set({ job }, donePairs);
    this.publishTiles(job);
  }

  private view(job: string): JobView {
    let v = this.jobs.get(job);
    if (!v) {
      const tileGauges = Object.fromEntries(TILE_STATES.map((state) => [state, this.jobTiles.labels({ job, state })])) as Record<TileState, Gauge.Internal<string>>;
      v = { state: "planning", tiles: blankTiles(), pendingPlan: new Map(), tileGauges, pairsDone: this.pairsDone.labels({ job }) };
      this.jobs.set(job, v);
    }
    return v;
  }

  private setState(job: string, state: JobState): void {
    this.view(job).state = state;
    for (const s of JOB_STATES) this.jobState.set({ job, state: s }, s === state ? 1 : 0);
  }

  private publishTiles(job: string): void {
    const view = this.view(job);
    for (const s of TILE_STATES) view.tileGauges[s].set(view.tiles[s]);
  }

  private finishedJob(job: string): void {
    if (!this.finished.includes(job)) this.finished.push(job);
    while (this.finished.length > KEPT_FINISHED_JOBS) {
      const old = this.finished.shift()!;
      this.jobs.delete(old);
      for (const s of JOB_STATES) this.jobState.remove({ job: old, state: s });
      for (const s of TILE_STATES) this.jobTiles.remove({ job: old, state: s });
      for (const g of [this.planTiles, this.planPairs, this.pairsDone]) g.remove({ job: old });
    }
  }
}

function blankTiles(): Record<TileState, number> {
  return { planned: 0, queued: 0, running: 0, stored: 0, failed: 0 };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    p.then((v) => (clearTimeout(t), resolve(v)), (err) => (clearTimeout(t), reject(err)));
  });
}
