import { test } from "uvu";
import * as assert from "uvu/assert";
import {
  handleJobEvent,
  ImpossibleTransitionError,
  jobRate,
  newJob,
  type JobEffect,
  type JobEvent,
  type JobRecord,
  type PlannedTile,
} from "../../coordinator/src/jobs/job-state.js";

const T0 = 1_000_000;

/** Tile ids as the planner makes them (64 hex digits). */
const tid = (k: number) => k.toString(16).padStart(64, "0");

const types = (effects: JobEffect[]) => effects.map((e) => e.type);

/** A job in scoring with `n` tiles of `pairs` pairs each; the first `stored` already stored. */
function scoringJob(n: number, opts: { pairs?: number; stored?: number } = {}): { job: JobRecord; ids: string[] } {
  const job = newJob("j1", T0);
  const ids = Array.from({ length: n }, (_, k) => tid(k));
  const tiles: PlannedTile[] = ids.map((id, k) => ({ id, pairs: opts.pairs ?? 10, stored: k < (opts.stored ?? 0) }));
  handleJobEvent(job, { type: "planned", tiles }, T0);
  assert.is(job.state, "scoring");
  return { job, ids };
}

function publish(job: JobRecord, ids: string[], now = T0 + 1): void {
  handleJobEvent(job, { type: "tiles-published", tileIds: ids }, now);
}

const storedEv = (tileId: string, worker = "w1", attempt = 1, seconds = 1): JobEvent => ({
  type: "tile-stored",
  tileId,
  worker,
  attempt,
  seconds,
  duplicate: false,
});

/** Deep snapshot of everything a transition may change. */
function snapshot(job: JobRecord): string {
  return JSON.stringify({
    state: job.state,
    error: job.error,
    counts: job.counts,
    tiles: [...job.tiles.entries()],
    workers: [...job.workers.entries()],
    progress: job.progress,
    log: job.log.length,
  });
}

test("planned with some tiles already stored: scoring, reused counts, publish-more + save-status", () => {
  const job = newJob("j1", T0);
  const effects = handleJobEvent(
    job,
    {
      type: "planned",
      tiles: [
        { id: tid(0), pairs: 4, stored: true },
        { id: tid(1), pairs: 6, stored: false },
        { id: tid(2), pairs: 8, stored: true },
      ],
    },
    T0,
  );
  assert.is(job.state, "scoring");
  assert.equal(types(effects), ["publish-more", "save-status"]);
  assert.equal(job.counts, { tilesDone: 2, tilesReused: 2, pairsDone: 12, pairsTotal: 18, redeliveries: 0 });
  assert.is(job.tiles.get(tid(0))!.state, "stored");
  assert.is(job.tiles.get(tid(1))!.state, "planned");
  assert.is(job.tiles.get(tid(2))!.state, "stored");
  assert.ok(job.log.some((l) => l.stimulus === "planned" && l.change.includes("planning->scoring")), "the change is logged with its stimulus");
});

test("tiles-published moves only planned tiles to queued", () => {
  const { job, ids } = scoringJob(3, { stored: 1 });
  const effects = handleJobEvent(job, { type: "tiles-published", tileIds: [ids[0], ids[1], tid(99)] }, T0 + 1);
  assert.equal(effects, []);
  assert.is(job.tiles.get(ids[0])!.state, "stored", "a stored tile stays stored");
  assert.is(job.tiles.get(ids[1])!.state, "queued");
  assert.is(job.tiles.get(ids[2])!.state, "planned", "a tile not in the event stays planned");
  assert.not.ok(job.tiles.has(tid(99)), "an unknown id is not added");
});

test("tile-started: queued -> running, attempt 2 counts one redelivery, a repeated attempt does not", () => {
  const { job, ids } = scoringJob(2);
  publish(job, ids);
  handleJobEvent(job, { type: "tile-started", tileId: ids[0], worker: "w1", attempt: 1 }, T0 + 2);
  const t = job.tiles.get(ids[0])!;
  assert.is(t.state, "running");
  assert.is(t.worker, "w1");
  assert.is(t.attempts, 1);
  assert.is(job.counts.redeliveries, 0);

  handleJobEvent(job, { type: "tile-started", tileId: ids[0], worker: "w2", attempt: 2 }, T0 + 3);
  assert.is(t.state, "running");
  assert.is(t.worker, "w2");
  assert.is(t.attempts, 2);
  assert.is(job.counts.redeliveries, 1);

  handleJobEvent(job, { type: "tile-started", tileId: ids[0], worker: "w2", attempt: 2 }, T0 + 4);
  assert.is(job.counts.redeliveries, 1, "the same delivery reported twice is not a new redelivery");
  handleJobEvent(job, { type: "tile-started", tileId: ids[0], worker: "w1", attempt: 1 }, T0 + 4);
  assert.is(t.attempts, 2, "a late report of an older delivery does not lower the attempts");
  assert.is(job.counts.redeliveries, 1);

  // A first report that is already delivery 3 (earlier ones were never reported) counts two.
  handleJobEvent(job, { type: "tile-started", tileId: ids[1], worker: "w1", attempt: 3 }, T0 + 5);
  assert.is(job.counts.redeliveries, 3);
  assert.is(job.tiles.get(ids[1])!.attempts, 3);
});

test("tile-stored for every tile: selecting with release-queue and run-selection; tallies per worker", () => {
  const { job, ids } = scoringJob(3, { pairs: 5 });
  publish(job, ids);
  const e1 = handleJobEvent(job, storedEv(ids[0], "w1", 1, 2), T0 + 1000);
  assert.equal(types(e1), ["publish-more", "save-status"]);
  assert.is(job.state, "scoring");
  const e2 = handleJobEvent(job, storedEv(ids[1], "w2", 1, 3), T0 + 2000);
  assert.equal(types(e2), ["publish-more", "save-status"]);
  const e3 = handleJobEvent(job, storedEv(ids[2], "w1", 1, 4), T0 + 3000);
  assert.is(job.state, "selecting");
  assert.ok(types(e3).includes("release-queue"), "the queue is released");
  assert.ok(types(e3).includes("run-selection"), "the selection is started");
  assert.not.ok(types(e3).includes("publish-more"), "nothing more to publish");
  assert.equal(job.counts, { tilesDone: 3, tilesReused: 0, pairsDone: 15, pairsTotal: 15, redeliveries: 0 });
  assert.equal(job.workers.get("w1"), { tiles: 2, pairs: 10, seconds: 6, lastAt: T0 + 3000 });
  assert.equal(job.workers.get("w2"), { tiles: 1, pairs: 5, seconds: 3, lastAt: T0 + 2000 });
  assert.equal(job.progress, [
    { t: T0 + 1000, pairs: 5 },
    { t: T0 + 2000, pairs: 10 },
    { t: T0 + 3000, pairs: 15 },
  ]);

  const done = handleJobEvent(job, { type: "selection-done" }, T0 + 4000);
  assert.is(job.state, "done");
  assert.equal(types(done), ["save-status"]);
});

test("a duplicate tile-stored changes nothing", () => {
  const { job, ids } = scoringJob(2);
  publish(job, ids);
  handleJobEvent(job, storedEv(ids[0]), T0 + 10);
  const before = snapshot(job);
  const effects = handleJobEvent(job, { ...storedEv(ids[0], "w9", 2), duplicate: true } as JobEvent, T0 + 20);
  assert.equal(effects, []);
  assert.is(snapshot(job), before);
  assert.is(job.counts.tilesDone, 1);
});

test("tile-stored for a tile the plan does not hold is ignored", () => {
  const { job } = scoringJob(2);
  const before = snapshot(job);
  assert.equal(handleJobEvent(job, storedEv(tid(42)), T0 + 5), []);
  assert.is(snapshot(job), before);
});

test("a non-final tile-failed puts the tile back to queued and keeps the error", () => {
  const { job, ids } = scoringJob(2);
  publish(job, ids);
  handleJobEvent(job, { type: "tile-started", tileId: ids[0], worker: "w1", attempt: 1 }, T0 + 2);
  const effects = handleJobEvent(job, { type: "tile-failed", tileId: ids[0], worker: "w1", attempt: 1, error: "CUDA OOM", final: false }, T0 + 3);
  assert.equal(effects, []);
  const t = job.tiles.get(ids[0])!;
  assert.is(t.state, "queued");
  assert.is(t.lastError, "CUDA OOM");
  assert.is(t.worker, null);
  assert.is(job.state, "scoring");
  assert.is(job.error, null);
});

test("a final tile-failed fails the job with the worker's error text", () => {
  const { job, ids } = scoringJob(2);
  publish(job, ids);
  handleJobEvent(job, { type: "tile-started", tileId: ids[1], worker: "gpu-7", attempt: 5 }, T0 + 2);
  const effects = handleJobEvent(
    job,
    { type: "tile-failed", tileId: ids[1], worker: "gpu-7", attempt: 5, error: "shape mismatch in layer 3", final: true },
    T0 + 3,
  );
  assert.is(job.state, "failed");
  assert.is(job.tiles.get(ids[1])!.state, "failed");
  assert.ok(types(effects).includes("release-queue"));
  assert.ok(types(effects).includes("save-status"));
  assert.not.ok(types(effects).includes("run-selection"));
  assert.ok(job.error !== null);
  assert.match(job.error!, "shape mismatch in layer 3");
  assert.match(job.error!, "gpu-7");
});

test("tile-max-deliveries fails the job, quoting the last error reported before", () => {
  const { job, ids } = scoringJob(2);
  publish(job, ids);
  handleJobEvent(job, { type: "tile-started", tileId: ids[0], worker: "w1", attempt: 1 }, T0 + 2);
  handleJobEvent(job, { type: "tile-failed", tileId: ids[0], worker: "w1", attempt: 1, error: "segfault in kernel", final: false }, T0 + 3);
  const effects = handleJobEvent(job, { type: "tile-max-deliveries", tileId: ids[0] }, T0 + 4);
  assert.is(job.state, "failed");
  assert.is(job.tiles.get(ids[0])!.state, "failed");
  assert.ok(types(effects).includes("release-queue"));
  assert.match(job.error ?? "", "segfault in kernel");
});

test("tile-max-deliveries without a reported failure says the workers died or stalled", () => {
  const { job, ids } = scoringJob(2);
  publish(job, ids);
  handleJobEvent(job, { type: "tile-started", tileId: ids[1], worker: "w1", attempt: 1 }, T0 + 2);
  handleJobEvent(job, { type: "tile-max-deliveries", tileId: ids[1] }, T0 + 4);
  assert.is(job.state, "failed");
  assert.match(job.error ?? "", /delivery limit/);
  assert.not.match(job.error ?? "", /last error/);
});

test("cancel from scoring: cancelled with the reason, queue released", () => {
  const { job, ids } = scoringJob(2);
  publish(job, ids);
  const effects = handleJobEvent(job, { type: "cancel", reason: "cancelled by user" }, T0 + 5);
  assert.is(job.state, "cancelled");
  assert.is(job.error, "cancelled by user");
  assert.equal(types(effects), ["release-queue", "save-status"]);
});

test("events after a terminal state change nothing", () => {
  for (const end of ["done", "failed", "cancelled"] as const) {
    const { job, ids } = scoringJob(3);
    publish(job, ids);
    handleJobEvent(job, { type: "tile-started", tileId: ids[0], worker: "w1", attempt: 1 }, T0 + 2);
    if (end === "done") {
      for (const id of ids) handleJobEvent(job, storedEv(id), T0 + 3);
      handleJobEvent(job, { type: "selection-done" }, T0 + 4);
    } else if (end === "failed") {
      handleJobEvent(job, { type: "tile-failed", tileId: ids[0], worker: "w1", attempt: 1, error: "boom", final: true }, T0 + 4);
    } else {
      handleJobEvent(job, { type: "cancel", reason: "stop" }, T0 + 4);
    }
    assert.is(job.state, end);
    const before = snapshot(job);
    const late: JobEvent[] = [
      { type: "tiles-published", tileIds: ids },
      { type: "tile-started", tileId: ids[1], worker: "w2", attempt: 2 },
      storedEv(ids[1], "w2", 2),
      storedEv(ids[2], "w2", 1),
      { type: "tile-failed", tileId: ids[2], worker: "w2", attempt: 1, error: "late", final: false },
      { type: "tile-failed", tileId: ids[2], worker: "w2", attempt: 5, error: "late", final: true },
      { type: "tile-max-deliveries", tileId: ids[1] },
      { type: "cancel", reason: "again" },
    ];
    for (const e of late) {
      assert.equal(handleJobEvent(job, e, T0 + 100), [], `${e.type} after ${end} gives no effects`);
      assert.is(snapshot(job), before, `${e.type} after ${end} changes nothing`);
    }
  }
});

test("selection-done after a cancel (cancelled while selecting) leaves the job cancelled", () => {
  const { job, ids } = scoringJob(1);
  handleJobEvent(job, storedEv(ids[0]), T0 + 1);
  assert.is(job.state, "selecting");
  handleJobEvent(job, { type: "cancel", reason: "user" }, T0 + 2);
  const before = snapshot(job);
  // The machine may refuse the edge (the coordinator logs it) but must not move the job.
  try {
    assert.equal(handleJobEvent(job, { type: "selection-done" }, T0 + 3), []);
  } catch (err) {
    assert.instance(err, ImpossibleTransitionError);
  }
  assert.is(job.state, "cancelled");
  assert.is(snapshot(job), before);
});

test("impossible transitions throw ImpossibleTransitionError and leave the job as it was", () => {
  const { job, ids } = scoringJob(2);
  publish(job, ids);
  const before = snapshot(job);
  const err = (() => {
    try {
      handleJobEvent(job, { type: "selection-done" }, T0 + 5);
    } catch (e) {
      return e;
    }
    return null;
  })();
  assert.instance(err, ImpossibleTransitionError);
  assert.is((err as Error).name, "ImpossibleTransitionError");
  assert.match((err as Error).message, "scoring -> done");
  assert.match((err as Error).message, "selection-done");
  assert.is(snapshot(job), before);

  // A second plan while scoring (scoring -> scoring) is refused.
  assert.throws(
    () => handleJobEvent(job, { type: "planned", tiles: [{ id: tid(7), pairs: 1, stored: false }] }, T0 + 6),
    (e: unknown) => e instanceof ImpossibleTransitionError,
  );
  assert.is(snapshot(job), before);
  // A job already failed cannot fail again through planning-failed, nor be re-planned.
  const failed = newJob("j3", T0);
  handleJobEvent(failed, { type: "planning-failed", error: "x" }, T0);
  assert.throws(() => handleJobEvent(failed, { type: "planning-failed", error: "y" }, T0), (e: unknown) => e instanceof ImpossibleTransitionError);
  assert.is(failed.error, "x");

  const fresh = newJob("j2", T0);
  assert.throws(() => handleJobEvent(fresh, { type: "selection-done" }, T0), (e: unknown) => e instanceof ImpossibleTransitionError);
  assert.is(fresh.state, "planning");
});

test("every tile already stored at planning goes straight to selecting", () => {
  const job = newJob("j1", T0);
  const effects = handleJobEvent(
    job,
    {
      type: "planned",
      tiles: [
        { id: tid(0), pairs: 3, stored: true },
        { id: tid(1), pairs: 4, stored: true },
      ],
    },
    T0,
  );
  assert.is(job.state, "selecting");
  assert.ok(types(effects).includes("run-selection"));
  assert.ok(types(effects).includes("release-queue"));
  assert.not.ok(types(effects).includes("publish-more"));
  assert.equal(job.counts, { tilesDone: 2, tilesReused: 2, pairsDone: 7, pairsTotal: 7, redeliveries: 0 });
});

test("planning-failed fails the job with the planner's message", () => {
  const job = newJob("j1", T0);
  const effects = handleJobEvent(job, { type: "planning-failed", error: "data.jsonl:3: invalid JSON" }, T0);
  assert.is(job.state, "failed");
  assert.is(job.error, "data.jsonl:3: invalid JSON");
  assert.ok(types(effects).includes("save-status"));
});

test("jobRate: pairs/s over the window and the ETA of the rest", () => {
  const { job, ids } = scoringJob(10, { pairs: 100 });
  publish(job, ids);
  // One tile (100 pairs) every 2 s.
  for (let k = 0; k < 4; k++) handleJobEvent(job, storedEv(ids[k], "w1", 1, 2), T0 + 2000 * (k + 1));
  const now = T0 + 8000;
  const r = jobRate(job, now);
  assert.ok(Math.abs(r.pairsPerSecond - 50) < 1e-9, `rate ${r.pairsPerSecond}`);
  assert.ok(Math.abs(r.etaSeconds - 600 / 50) < 1e-9, `eta ${r.etaSeconds}`);

  // Only the last 5 s count: samples at 4 s, 6 s and 8 s, a faster pace than before.
  handleJobEvent(job, storedEv(ids[4], "w1", 1, 1), T0 + 8500);
  handleJobEvent(job, storedEv(ids[5], "w1", 1, 1), T0 + 9000);
  const fast = jobRate(job, T0 + 9000, 1000);
  assert.ok(Math.abs(fast.pairsPerSecond - 200) < 1e-9, `windowed rate ${fast.pairsPerSecond}`);

  // Nothing stored yet: no rate, unknown ETA.
  const idle = scoringJob(2).job;
  assert.equal(jobRate(idle, T0 + 1000), { pairsPerSecond: 0, etaSeconds: -1 });
});

test("jobRate: one recent sample falls back to the whole history; finished work has ETA 0", () => {
  const { job, ids } = scoringJob(3, { pairs: 30 });
  publish(job, ids);
  handleJobEvent(job, storedEv(ids[0]), T0);
  handleJobEvent(job, storedEv(ids[1]), T0 + 3000);
  // Only the sample at T0+3000 lies in a 1 s window at T0+3500.
  const r = jobRate(job, T0 + 3500, 1000);
  assert.ok(Math.abs(r.pairsPerSecond - 10) < 1e-9, `rate ${r.pairsPerSecond}`);
  assert.ok(Math.abs(r.etaSeconds - 3) < 1e-9, `eta ${r.etaSeconds}`);
  handleJobEvent(job, storedEv(ids[2]), T0 + 6000);
  assert.is(jobRate(job, T0 + 6000).etaSeconds, 0);
});

test("a planned event while scoring is an impossible transition and changes nothing", () => {
  const { job, ids } = scoringJob(2);
  publish(job, ids);
  assert.throws(() => handleJobEvent(job, { type: "planned", tiles: [] }, T0 + 6), (e: unknown) => e instanceof ImpossibleTransitionError);
  assert.is(job.state, "scoring");
});

test("a non-final failure of a tile that was never published leaves it publishable", () => {
  const { job, ids } = scoringJob(3);
  publish(job, [ids[0]]); // the window holds only the first tile; ids[1] is still planned
  handleJobEvent(job, { type: "tile-failed", tileId: ids[1], worker: "w-old", attempt: 1, error: "stale delivery", final: false }, T0 + 2);
  assert.is(job.tiles.get(ids[1])!.state, "planned", "an unpublished tile must stay publishable");
  assert.is(job.tiles.get(ids[1])!.lastError, "stale delivery");
});

test("a stale start report of an unpublished tile does not mark it running", () => {
  const { job, ids } = scoringJob(3);
  publish(job, [ids[0]]);
  handleJobEvent(job, { type: "tile-started", tileId: ids[2], worker: "w-old", attempt: 1 }, T0 + 2);
  assert.is(job.tiles.get(ids[2])!.state, "planned");
});

test.run();
