import { test } from "uvu";
import * as assert from "uvu/assert";
import { jobRate, newJob, type Instruction, type JobEvent, type JobRecord, type JobSettings, type PlannedTile, type Reply } from "../../coordinator/src/jobs/job-state.js";
import { handleStimulus, MAX_LOST, type Outcome } from "../../coordinator/src/jobs/machine.js";
import { replayStory, storyEntries, type StoryEntry } from "../../coordinator/src/jobs/story.js";

const T0 = 1_000_000;
const SETTINGS: JobSettings = { kind: "select", ackWaitMs: 1000, maxDeliver: 3, maxQueued: 2, conflictTolerance: 1e-5 };
const tid = (k: number) => k.toString(16).padStart(64, "0");

/** Drives one job's machine like the coordinator does, keeping the story for replay checks. */
class Driver {
  readonly job: JobRecord;
  readonly story: StoryEntry[] = [];
  private seq = 0;
  private n = 1;
  t = T0;
  last: Outcome = { instructions: [], changes: [] };

  constructor(settings: JobSettings = SETTINGS) {
    this.job = newJob("j1", T0, settings);
    this.feed({ type: "submitted", settings }, 0);
  }

  feed(event: JobEvent, dt = 1): Outcome {
    this.t += dt;
    const s = { id: `s${this.n++}`, t: this.t, event };
    this.last = handleStimulus(this.job, s);
    this.story.push(...storyEntries("j1", s, this.last.changes, () => this.seq++));
    return this.last;
  }

  starts(kind?: string): Extract<Instruction, { type: "start" }>[] {
    return this.last.instructions.filter((i): i is Extract<Instruction, { type: "start" }> => i.type === "start" && (!kind || i.kind === kind));
  }

  task(kind: string): string {
    const id = [...this.job.tasks].find(([, k]) => k === kind)?.[0];
    if (!id) throw new Error(`no ${kind} task running; tasks ${JSON.stringify([...this.job.tasks])}`);
    return id;
  }

  reply(request: string): Reply | undefined {
    return this.last.instructions.find((i): i is Extract<Instruction, { type: "reply" }> => i.type === "reply" && i.request === request)?.reply;
  }

  rejected(): string[] {
    return this.last.changes.filter((c) => c.kind === "rejected").map((c) => (c as { reason: string }).reason);
  }

  plan(tiles: PlannedTile[]): void {
    this.feed({ type: "plan-done", task: this.task("plan"), tiles, samples: 4 });
  }

  publishAll(): void {
    while (this.job.tasks.size > 0 && [...this.job.tasks.values()].includes("publish")) {
      const task = this.task("publish");
      const start = this.starts("publish")[0] as { tileIds: string[] } | undefined;
      const ids = start?.tileIds ?? this.job.publishing;
      this.feed({ type: "publish-done", task, tileIds: ids, bytes: 100 * ids.length });
      if (this.job.inFlight.size >= this.job.settings.maxQueued) break;
    }
  }

  start(tile: string, worker = "w1", attempt = 1): Reply | undefined {
    this.feed({ type: "tile-started", request: `st-${tile.slice(-3)}-${attempt}-${worker}`, tileId: tile, worker, attempt });
    return this.reply(`st-${tile.slice(-3)}-${attempt}-${worker}`);
  }

  /** An upload that the store accepts (or finds already stored, `maxDiff` apart). */
  upload(tile: string, worker = "w1", attempt = 1, exists?: { maxDiff: number; truncated?: [number, number] }): Reply | undefined {
    const request = `up-${tile.slice(-3)}-${worker}-${attempt}`;
    this.feed({ type: "result-received", request, tileId: tile, worker, attempt, problem: null });
    const store = this.starts("store")[0];
    if (!store) return this.reply(request);
    const outcome = exists
      ? { outcome: "exists" as const, maxDiff: exists.maxDiff, truncated: { stored: exists.truncated?.[0] ?? 0, received: exists.truncated?.[1] ?? 0 } }
      : { outcome: "stored" as const };
    this.feed({ type: "store-done", task: store.task, request, tileId: tile, worker, attempt, seconds: 2, bytes: 40, ...outcome });
    return this.reply(request);
  }
}

const tiles = (n: number, stored = 0): PlannedTile[] => Array.from({ length: n }, (_, k) => ({ id: tid(k), pairs: 10, stored: k < stored }));

/** The record as JSON (Maps and Sets spelled out), for equality checks. */
function json(job: JobRecord): string {
  return JSON.stringify(job, (_k, v) => (v instanceof Map ? [...v] : v instanceof Set ? [...v] : v));
}

test("submitted starts planning; planned with stored tiles: scoring, publishes a window of maxQueued, arms reconcile", () => {
  const d = new Driver();
  assert.equal(d.starts().map((s) => s.kind), ["plan"]);
  d.plan(tiles(5, 1));
  assert.is(d.job.state, "scoring");
  assert.equal(d.job.counts, { tilesTotal: 5, tilesDone: 1, tilesReused: 1, pairsDone: 10, pairsTotal: 50, redeliveries: 0, duplicates: 0, healthReturns: 0, republished: 0 });
  const publish = d.starts("publish")[0] as unknown as { tileIds: string[] };
  assert.equal(publish.tileIds, [tid(1), tid(2)], "the window: maxQueued tiles, the stored one skipped");
  assert.ok(d.last.instructions.some((i) => i.type === "arm-reconcile" && i.everyMs === 1000));
});

test("a whole job: started, stored, selecting, writing, done, released; replies say wanted and stored", () => {
  const d = new Driver();
  d.plan(tiles(3));
  d.publishAll();
  assert.is(d.job.tiles.get(tid(0))!.state, "queued");
  assert.equal(d.start(tid(0)), { wanted: true });
  assert.is(d.job.tiles.get(tid(0))!.state, "running");
  assert.equal(d.upload(tid(0)), { outcome: "stored", message: "stored" });
  assert.is(d.job.tiles.get(tid(0))!.storedBy, "w1");
  d.publishAll();
  for (const k of [1, 2]) {
    d.start(tid(k), "w2");
    d.upload(tid(k), "w2");
    d.publishAll();
  }
  assert.is(d.job.state, "selecting");
  assert.equal(d.starts().map((s) => s.kind), ["select"]);
  assert.ok(d.last.instructions.some((i) => i.type === "disarm-reconcile"));
  d.feed({ type: "select-done", task: d.task("select") });
  assert.is(d.job.state, "writing");
  d.feed({ type: "write-done", task: d.task("write"), summary: "selected 1 of 4" });
  assert.is(d.job.state, "done");
  assert.is(d.job.summary, "selected 1 of 4");
  assert.equal(d.starts().map((s) => s.kind), ["release"]);
  assert.is(d.job.tiles.size, 0, "a finished job forgets its tiles; its counts stay");
  assert.equal([d.job.counts.tilesDone, d.job.counts.tilesTotal, d.job.counts.pairsDone], [3, 3, 30]);
  d.feed({ type: "release-done", task: d.task("release") });
  assert.is(d.job.released, true);
  assert.equal(d.job.workers.get("w2"), { tiles: 2, pairs: 20, seconds: 4, lastAt: d.job.workers.get("w2")!.lastAt });
});

test("the machine alone decides wanted: unknown, stored and finished-job tiles are not wanted, each an explicit rejection", () => {
  const d = new Driver();
  d.plan(tiles(2));
  d.publishAll();
  assert.equal(d.start(tid(9)), { wanted: false });
  assert.match(d.rejected()[0], /no tile/);
  d.start(tid(0));
  d.upload(tid(0));
  assert.equal(d.start(tid(0), "w2", 2), { wanted: false });
  assert.match(d.rejected()[0], /already stored/);
  d.feed({ type: "cancel", reason: "enough" });
  assert.equal(d.start(tid(1)), { wanted: false });
  assert.match(d.rejected()[0], /not scoring/);
});

test("redeliveries are counted from the delivery numbers; a late report of an older delivery changes nothing", () => {
  const d = new Driver();
  d.plan(tiles(2));
  d.publishAll();
  d.start(tid(0), "w1", 1);
  d.start(tid(0), "w2", 2);
  assert.is(d.job.counts.redeliveries, 1);
  d.start(tid(0), "w1", 1);
  assert.is(d.job.tiles.get(tid(0))!.attempts, 2);
  d.start(tid(1), "w1", 3);
  assert.is(d.job.counts.redeliveries, 3);
});

test("a duplicate within the tolerance keeps the stored values and notes the difference; beyond it the job fails naming tile, both workers and the difference", () => {
  const d = new Driver();
  d.plan(tiles(3));
  d.publishAll();
  d.start(tid(0), "cpu-1");
  d.upload(tid(0), "cpu-1");
  assert.equal(d.upload(tid(0), "gpu-1", 1, { maxDiff: 4e-6 }), { outcome: "duplicate", message: "kept the stored values (yours differ by up to 0.000004)" });
  const note = d.last.changes.find((c) => c.kind === "note") as { message: string; maxDiff: number };
  assert.is(note.maxDiff, 4e-6);
  assert.match(note.message, /gpu-1/);
  assert.is(d.job.state, "scoring");
  assert.is(d.job.counts.duplicates, 1);

  assert.equal(d.upload(tid(0), "gpu-2", 1, { maxDiff: 3e-3 })!, { outcome: "conflict", message: `conflicts with the stored result of tile ${tid(0)}` });
  assert.is(d.job.state, "failed");
  assert.match(d.job.error!, tid(0));
  assert.match(d.job.error!, "worker cpu-1");
  assert.match(d.job.error!, "worker gpu-2");
  assert.match(d.job.error!, "0.003");
});

test("a different truncation count is a conflict whatever the values", () => {
  const d = new Driver();
  d.plan(tiles(2));
  d.publishAll();
  d.upload(tid(0), "a");
  d.upload(tid(0), "b", 1, { maxDiff: 0, truncated: [0, 2] });
  assert.is(d.job.state, "failed");
  assert.match(d.job.error!, /truncated prompts \(0 vs 2\)/);
});

test("the tolerance is the job's setting: 0 makes any difference a conflict", () => {
  const d = new Driver({ ...SETTINGS, conflictTolerance: 0 });
  d.plan(tiles(2));
  d.publishAll();
  d.upload(tid(0), "a");
  d.upload(tid(0), "b", 1, { maxDiff: 1e-9 });
  assert.is(d.job.state, "failed");
});

test("a tile failure is retried until the tile has failed maxDeliver times on healthy workers", () => {
  const d = new Driver();
  d.plan(tiles(2));
  d.publishAll();
  for (let a = 1; a <= 2; a++) {
    d.start(tid(0), "w1", a);
    d.feed({ type: "tile-failed", request: `f${a}`, tileId: tid(0), worker: "w1", attempt: a, error: "shape mismatch", kind: "tile" });
    assert.equal(d.reply(`f${a}`), { action: "retry" });
    assert.is(d.job.tiles.get(tid(0))!.state, "queued");
  }
  d.start(tid(0), "w9", 3);
  d.feed({ type: "tile-failed", request: "f3", tileId: tid(0), worker: "w9", attempt: 3, error: "shape mismatch", kind: "tile" });
  assert.is(d.job.state, "failed");
  assert.match(d.job.error!, /failed on every delivery \(3\); last error from worker w9: shape mismatch/);
});

test("a model error fails the job at once, with its message", () => {
  const d = new Driver();
  d.plan(tiles(2));
  d.publishAll();
  d.start(tid(1), "w1");
  d.feed({ type: "tile-failed", request: "m", tileId: tid(1), worker: "w1", attempt: 1, error: "tokenizer does not match its model", kind: "model" });
  assert.is(d.job.state, "failed");
  assert.match(d.job.error!, /bundle failed on worker w1: tokenizer does not match its model/);
  assert.equal(d.reply("m"), { action: "drop" });
});

test("a worker's own failure hands the tile back: no failure counted, published again at once", () => {
  const d = new Driver();
  d.plan(tiles(2));
  d.publishAll();
  for (let k = 0; k < 4; k++) {
    d.start(tid(0), `sick-${k}`, 1);
    d.feed({ type: "tile-failed", request: `h${k}`, tileId: tid(0), worker: `sick-${k}`, attempt: 1, error: "CUDA out of memory", kind: "health" });
    assert.equal(d.reply(`h${k}`), { action: "drop" });
    assert.is(d.job.tiles.get(tid(0))!.state, "planned");
    assert.equal((d.starts("publish")[0] as unknown as { tileIds: string[] }).tileIds, [tid(0)], "republished");
    d.publishAll();
  }
  const tile = d.job.tiles.get(tid(0))!;
  assert.equal([tile.failures, tile.healthReturns, d.job.state], [0, 4, "scoring"]);
  d.start(tid(0), "healthy");
  d.upload(tid(0), "healthy");
  assert.is(tile.state, "stored");
});

test("reconcile: a tile gone from the queue without a result is published again; after MAX_LOST it fails the job", () => {
  const d = new Driver();
  d.plan(tiles(2));
  d.publishAll();
  d.start(tid(0));
  for (let k = 1; k <= MAX_LOST + 1; k++) {
    d.feed({ type: "reconcile-due" }, 5000);
    d.feed({ type: "reconcile-done", task: d.task("reconcile"), queue: { exists: true, messages: 1, pending: 1, ackPending: 0, redelivered: 0, tileIds: [tid(1)] }, stored: [] });
    if (k <= MAX_LOST) {
      assert.is(d.job.tiles.get(tid(0))!.state, "planned", `round ${k}: back to planned`);
      d.publishAll();
      assert.is(d.job.tiles.get(tid(0))!.state, "queued", `round ${k}: republished`);
      assert.is(d.job.counts.republished, k);
    }
  }
  assert.is(d.job.state, "failed");
  assert.match(d.job.error!, /left the queue without a result 4 times/);
});

test("reconcile: a tile still in the queue but out of deliveries (the advisory was lost) fails the job; a quiet tile with deliveries left waits", () => {
  const d = new Driver();
  d.plan(tiles(2));
  d.publishAll();
  const present = { exists: true, messages: 2, pending: 0, ackPending: 0, redelivered: 1, tileIds: [tid(0), tid(1)] };
  d.start(tid(1), "w1", 2);
  d.start(tid(0), "w1", 3);
  d.feed({ type: "reconcile-due" }, 500);
  d.feed({ type: "reconcile-done", task: d.task("reconcile"), queue: present, stored: [] });
  assert.is(d.job.state, "scoring", "heard of within the lease: nothing decided");
  d.feed({ type: "reconcile-due" }, 5000);
  d.feed({ type: "reconcile-done", task: d.task("reconcile"), queue: present, stored: [] });
  assert.is(d.job.state, "failed");
  assert.match(d.job.error!, /used all 3 deliveries without a result/);
});

test("reconcile marks tiles the store holds as stored (a lost store signal), and the job moves on", () => {
  const d = new Driver();
  d.plan(tiles(2));
  d.publishAll();
  d.feed({ type: "reconcile-due" });
  d.feed({ type: "reconcile-done", task: d.task("reconcile"), queue: null, stored: [tid(0), tid(1)] });
  assert.is(d.job.state, "selecting");
});

test("reconcile-due outside scoring, and a second one while one runs, are rejected explicitly", () => {
  const d = new Driver();
  d.feed({ type: "reconcile-due" });
  assert.match(d.rejected()[0], /not scoring/);
  d.plan(tiles(2));
  d.feed({ type: "reconcile-due" });
  d.feed({ type: "reconcile-due" });
  assert.match(d.rejected()[0], /still running/);
});

test("a stale task outcome is rejected, and so is a result for an unknown tile (replied gone)", () => {
  const d = new Driver();
  d.plan(tiles(2));
  d.feed({ type: "select-done", task: "select-99" });
  assert.match(d.rejected()[0], /not running/);
  d.feed({ type: "result-received", request: "u", tileId: tid(7), worker: "w", attempt: 1, problem: null });
  assert.equal(d.reply("u"), { outcome: "gone", message: `job j1 has no tile ${tid(7)}` });
  d.feed({ type: "result-received", request: "p", tileId: tid(0), worker: "w", attempt: 1, problem: "bad mac" });
  assert.equal(d.reply("p"), { outcome: "rejected", message: "bad mac" });
});

test("cancel with no task running: cancelled at once; with one running: cancelling, the task aborted, then cancelled", () => {
  const idle = new Driver();
  idle.plan(tiles(2));
  idle.feed({ type: "publish-done", task: idle.task("publish"), tileIds: [tid(0), tid(1)], bytes: 0 });
  idle.feed({ type: "cancel", reason: "no longer needed" });
  assert.is(idle.job.state, "cancelled");
  assert.is(idle.job.error, "no longer needed");
  assert.equal(idle.starts().map((s) => s.kind), ["release"]);

  const busy = new Driver();
  busy.plan(tiles(1, 1));
  assert.is(busy.job.state, "selecting");
  const select = busy.task("select");
  busy.feed({ type: "cancel", reason: "stop" });
  assert.is(busy.job.state, "cancelling");
  assert.ok(busy.last.instructions.some((i) => i.type === "abort" && i.task === select));
  busy.feed({ type: "cancel", reason: "again" });
  assert.match(busy.rejected()[0], /already being cancelled/);
  busy.feed({ type: "task-failed", task: select, error: "aborted", errorName: "AbortedError", aborted: true });
  assert.is(busy.job.state, "cancelled");
  busy.feed({ type: "cancel", reason: "late" });
  assert.match(busy.rejected()[0], /already cancelled/);
});

test("a result written before a cancel took effect: the job is done", () => {
  const d = new Driver();
  d.plan(tiles(1, 1));
  d.feed({ type: "select-done", task: d.task("select") });
  d.feed({ type: "cancel", reason: "stop" });
  d.feed({ type: "write-done", task: d.task("write"), summary: "kernel 4 x 4" });
  assert.is(d.job.state, "done");
});

test("cancel while planning, failure of the plan task: failed during planning", () => {
  const d = new Driver();
  d.feed({ type: "task-failed", task: d.task("plan"), error: "data.jsonl:3: bad record", errorName: "InputError", aborted: false });
  assert.is(d.job.state, "failed");
  assert.is(d.job.failedDuring, "planning");
});

test("resumed: a fresh record, planning again with session-scoped task ids", () => {
  const d = new Driver();
  d.plan(tiles(2));
  d.publishAll();
  d.upload(tid(0));
  d.feed({ type: "resumed", was: "scoring", session: 1 });
  assert.is(d.job.state, "planning");
  assert.is(d.job.counts.tilesDone, 0);
  assert.equal(d.starts().map((s) => [s.kind, s.task]), [["plan", "plan-1.1"]]);
});

test("replaying the story's stimuli rebuilds the same record", () => {
  const d = new Driver();
  d.plan(tiles(4, 1));
  d.publishAll();
  d.start(tid(1), "w1");
  d.feed({ type: "tile-failed", request: "f", tileId: tid(1), worker: "w1", attempt: 1, error: "boom", kind: "tile" });
  d.start(tid(1), "w2", 2);
  d.upload(tid(1), "w2", 2);
  d.publishAll();
  d.upload(tid(2), "w1");
  d.upload(tid(2), "w3", 1, { maxDiff: 1e-7 });
  d.feed({ type: "resumed", was: "scoring", session: 1 });
  d.plan(tiles(4, 3));
  d.publishAll();
  d.upload(tid(3));
  d.feed({ type: "select-done", task: d.task("select") });
  const rebuilt = replayStory(JSON.parse(JSON.stringify(d.story)) as StoryEntry[]);
  assert.ok(rebuilt);
  assert.is(json(rebuilt!), json(d.job));
});

test("jobRate: pairs per second over the window and the ETA", () => {
  const d = new Driver();
  d.plan(tiles(4));
  d.publishAll();
  d.upload(tid(0));
  d.t += 1000;
  d.upload(tid(1));
  const r = jobRate(d.job, d.t);
  assert.ok(r.pairsPerSecond > 9 && r.pairsPerSecond < 11, String(r.pairsPerSecond));
  assert.ok(r.etaSeconds > 1.5 && r.etaSeconds < 2.5, String(r.etaSeconds));
});

test.run();
