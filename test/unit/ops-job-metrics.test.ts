import { test } from "uvu";
import * as assert from "uvu/assert";
import { Registry } from "prom-client";
import { newJob, TERMINAL_JOB_STATES, type Instruction, type JobEvent, type JobRecord, type JobSettings, type PlannedTile } from "../../coordinator/src/jobs/job-state.js";
import { handleStimulus } from "../../coordinator/src/jobs/machine.js";
import { storyEntries } from "../../coordinator/src/jobs/story.js";
import { JobMetrics } from "../../coordinator/src/metrics/job-metrics.js";

/**
 * The coordinator's metrics are derived from the job machine's story alone: driven through a
 * whole job (a reused tile, a redelivery, a tile failure, a duplicate upload), after every
 * stimulus the tile and job gauges equal the machine's own record, and the counters its counts.
 */
const SETTINGS: JobSettings = { kind: "select", ackWaitMs: 1000, maxDeliver: 3, maxQueued: 2, conflictTolerance: 1e-5 };
const tid = (k: number) => k.toString(16).padStart(64, "0");

class Driven {
  readonly job: JobRecord;
  readonly registry = new Registry();
  readonly metrics: JobMetrics;
  private seq = 0;
  private n = 1;
  private t = 1_000_000;
  private last: Instruction[] = [];

  constructor(id: string) {
    this.job = newJob(id, this.t, SETTINGS);
    this.metrics = new JobMetrics(this.registry, { statuses: () => [] });
    this.feed({ type: "submitted", settings: SETTINGS });
  }

  feed(event: JobEvent, dt = 250): void {
    this.t += dt;
    const s = { id: `s${this.n++}`, t: this.t, event };
    const out = handleStimulus(this.job, s);
    this.last = out.instructions;
    for (const e of storyEntries(this.job.id, s, out.changes, () => this.seq++)) this.metrics.observe(e);
  }

  task(kind: string): string {
    const id = [...this.job.tasks].find(([, k]) => k === kind)?.[0];
    if (!id) throw new Error(`no ${kind} task`);
    return id;
  }

  publishAll(): void {
    const task = [...this.job.tasks].find(([, k]) => k === "publish")?.[0];
    const ids = [...this.job.publishing];
    if (task) this.feed({ type: "publish-done", task, tileIds: ids, bytes: 100 * ids.length });
  }

  upload(tile: string, worker: string, attempt: number, duplicate = false): void {
    const request = `up-${tile.slice(-2)}-${worker}-${attempt}`;
    this.feed({ type: "result-received", request, tileId: tile, worker, attempt, problem: null });
    const store = this.last.find((i) => i.type === "start" && i.kind === "store") as { task: string } | undefined;
    if (!store) return;
    const outcome = duplicate ? { outcome: "exists" as const, maxDiff: 0, truncated: { stored: 0, received: 0 } } : { outcome: "stored" as const };
    this.feed({ type: "store-done", task: store.task, request, tileId: tile, worker, attempt, seconds: 1, bytes: 40, ...outcome });
  }

  async gauge(name: string, labels: Record<string, string>): Promise<number | undefined> {
    const m = await this.registry.getSingleMetric(name)!.get();
    return m.values.find((v) => Object.entries(labels).every(([k, val]) => (v.labels as Record<string, unknown>)[k] === val))?.value;
  }

  /** The metrics' tiles by state equal the record's; the state gauge says the record's state. */
  async check(what: string): Promise<void> {
    const id = this.job.id;
    if (!TERMINAL_JOB_STATES.has(this.job.state) && this.job.state !== "planning") {
      for (const state of ["planned", "queued", "running", "stored", "failed"]) {
        const want = [...this.job.tiles.values()].filter((t) => t.state === state).length;
        assert.is(await this.gauge("delift_job_tiles", { job: id, state }), want, `${what}: ${state} tiles`);
      }
      assert.is(await this.gauge("delift_job_pairs_done", { job: id }), this.job.counts.pairsDone, `${what}: pairs done`);
    }
    assert.is(await this.gauge("delift_job_state", { job: id, state: this.job.state }), 1, `${what}: state ${this.job.state}`);
  }
}

const plan = (n: number, stored: number): PlannedTile[] => Array.from({ length: n }, (_, k) => ({ id: tid(k), pairs: 10 + k, stored: k < stored }));

test("a whole job through the machine: metrics equal the record after every stimulus", async () => {
  const d = new Driven("j1");
  await d.check("submitted");
  d.feed({ type: "plan-done", task: d.task("plan"), tiles: plan(4, 1), samples: 8 });
  await d.check("planned");
  assert.is(await d.gauge("delift_job_tiles_planned_total", { job: "j1" }), 4);
  assert.is(await d.gauge("delift_job_pairs_planned_total", { job: "j1" }), 10 + 11 + 12 + 13);
  d.publishAll();
  await d.check("published");
  d.feed({ type: "tile-started", request: "a", tileId: tid(1), worker: "w1", attempt: 1 });
  await d.check("started");
  d.feed({ type: "tile-failed", request: "b", tileId: tid(1), worker: "w1", attempt: 1, error: "boom", kind: "tile" });
  await d.check("failed once");
  d.feed({ type: "tile-started", request: "c", tileId: tid(1), worker: "w2", attempt: 2 });
  d.upload(tid(1), "w2", 2);
  await d.check("stored after a redelivery");
  d.upload(tid(1), "w1", 1, true);
  await d.check("a duplicate");
  d.publishAll();
  for (const k of [2, 3]) {
    d.feed({ type: "tile-started", request: `s${k}`, tileId: tid(k), worker: "w1", attempt: 1 });
    await d.check(`tile ${k} started`);
    d.upload(tid(k), "w1", 1);
    await d.check(`tile ${k} stored`);
    d.publishAll();
  }
  assert.is(d.job.state, "selecting");
  assert.is(await d.gauge("delift_tasks_running", { kind: "select" }), 1);
  d.feed({ type: "select-done", task: d.task("select") }, 5000);
  d.feed({ type: "write-done", task: d.task("write"), summary: "ok" });
  await d.check("done");
  const tiles = async (state: string) => d.gauge("delift_job_tiles", { job: "j1", state });
  assert.equal([await tiles("planned"), await tiles("queued"), await tiles("running"), await tiles("stored"), await tiles("failed")], [0, 0, 0, 4, 0]);
  assert.is(await d.gauge("delift_tiles_stored_total", {}), 3, "reused tiles are not counted as stored from workers");
  assert.is(await d.gauge("delift_pairs_stored_total", {}), 11 + 12 + 13);
  assert.is(await d.gauge("delift_tile_failures_total", { kind: "tile" }), 1);
  assert.is(await d.gauge("delift_bytes_total", { direction: "up" }), 4 * 40, "three stored and one duplicate upload received");
  assert.is(await d.gauge("delift_bytes_total", { direction: "down" }), 100 * 3, "tiles 1, 2 and 3 published once (tile 1 was redelivered, not republished)");
  assert.is(await d.gauge("delift_tasks_running", { kind: "select" }), 0);
  const select = await d.registry.getSingleMetric("delift_task_seconds")!.get();
  assert.is(select.values.find((v) => v.labels.kind === "select" && (v as { metricName?: string }).metricName === "delift_task_seconds_sum")?.value, 5);
  const seconds = await d.registry.getSingleMetric("delift_tile_seconds")!.get();
  assert.is(seconds.values.find((v) => (v as { metricName?: string }).metricName === "delift_tile_seconds_count")?.value, 3);
});

test("a cancelled job: nothing left planned, queued or running; seeding from a record gives the same gauges", async () => {
  const d = new Driven("j2");
  d.feed({ type: "plan-done", task: d.task("plan"), tiles: plan(3, 0), samples: 6 });
  d.publishAll();
  d.feed({ type: "tile-started", request: "a", tileId: tid(0), worker: "w1", attempt: 1 });
  d.upload(tid(0), "w1", 1);
  const seeded = new JobMetrics(new Registry(), { statuses: () => [] });
  seeded.seed([d.job]);
  d.feed({ type: "cancel", reason: "test" });
  for (const t of [...d.job.tasks]) d.feed({ type: "task-failed", task: t[0], error: "aborted", errorName: "AbortedError", aborted: true });
  await d.check("cancelled");
  assert.ok(TERMINAL_JOB_STATES.has(d.job.state), d.job.state);
  for (const state of ["planned", "queued", "running"]) assert.is(await d.gauge("delift_job_tiles", { job: "j2", state }), 0, state);
  assert.is(await d.gauge("delift_job_tiles", { job: "j2", state: "stored" }), 1);
});

test.run();
