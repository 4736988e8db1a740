import { test } from "uvu";
import * as assert from "uvu/assert";
import { newJob, type JobEvent, type JobRecord, type JobSettings } from "../../coordinator/src/jobs/job-state.js";
import { handleStimulus, type Outcome } from "../../coordinator/src/jobs/machine.js";
import { replayStory, storyEntries, type StoryEntry } from "../../coordinator/src/jobs/story.js";

/** The job machine's search phase (SE kernel on given embeddings): planning -> searching -> selecting. */
const SETTINGS: JobSettings = { kind: "select", ackWaitMs: 1000, maxDeliver: 3, maxQueued: 2, conflictTolerance: 1e-5 };

function drive(): { job: JobRecord; feed(e: JobEvent): Outcome; task(kind: string): string; story: StoryEntry[] } {
  const job = newJob("j1", 1, SETTINGS);
  const story: StoryEntry[] = [];
  let n = 1;
  let seq = 0;
  const feed = (event: JobEvent) => {
    const s = { id: `s${n}`, t: n++, event };
    const out = handleStimulus(job, s);
    story.push(...storyEntries("j1", s, out.changes, () => seq++));
    return out;
  };
  const task = (kind: string) => {
    const id = [...job.tasks].find(([, k]) => k === kind)?.[0];
    if (!id) throw new Error(`no ${kind} task running`);
    return id;
  };
  feed({ type: "submitted", settings: SETTINGS });
  return { job, feed, task, story };
}

const started = (out: Outcome) => out.instructions.flatMap((i) => (i.type === "start" ? [i.kind] : []));

test("a plan that asks for the search phase: searching with a search task, then selecting, writing, done; the story replays", () => {
  const d = drive();
  const out = d.feed({ type: "plan-done", task: d.task("plan"), tiles: [], samples: 10, search: true });
  assert.is(d.job.state, "searching");
  assert.equal(started(out), ["search"]);
  assert.not.ok(out.instructions.some((i) => i.type === "arm-reconcile"), "no queue to reconcile while searching");
  assert.equal(started(d.feed({ type: "search-done", task: d.task("search") })), ["select"]);
  assert.is(d.job.state, "selecting");
  d.feed({ type: "select-done", task: d.task("select") });
  d.feed({ type: "write-done", task: d.task("write"), summary: "ok" });
  assert.is(d.job.state, "done");
  assert.equal(JSON.stringify(replayStory(d.story), (_k, x) => (x instanceof Map ? [...x] : x instanceof Set ? [...x] : x)), JSON.stringify(d.job, (_k, x) => (x instanceof Map ? [...x] : x instanceof Set ? [...x] : x)));
});

test("the search phase: a failed search fails the job; a stale search-done is rejected; a cancel aborts the search and ends cancelled", () => {
  const failed = drive();
  failed.feed({ type: "plan-done", task: failed.task("plan"), tiles: [], samples: 10, search: true });
  failed.feed({ type: "task-failed", task: failed.task("search"), error: "out of memory", errorName: "RangeError", aborted: false });
  assert.is(failed.job.state, "failed");
  assert.is(failed.job.failedDuring, "searching");
  assert.is(failed.job.error, "out of memory");

  const stale = drive();
  stale.feed({ type: "plan-done", task: stale.task("plan"), tiles: [], samples: 10, search: true });
  const out = stale.feed({ type: "search-done", task: "search-99" });
  assert.ok(out.changes.some((c) => c.kind === "rejected"));
  assert.is(stale.job.state, "searching");

  const cancelled = drive();
  cancelled.feed({ type: "plan-done", task: cancelled.task("plan"), tiles: [], samples: 10, search: true });
  const search = cancelled.task("search");
  const c = cancelled.feed({ type: "cancel", reason: "cancelled by user" });
  assert.ok(c.instructions.some((i) => i.type === "abort" && i.task === search));
  assert.is(cancelled.job.state, "cancelling");
  cancelled.feed({ type: "task-failed", task: search, error: "aborted", errorName: "AbortedError", aborted: true });
  assert.is(cancelled.job.state, "cancelled");
});

test("a plan with tiles cannot also ask for the search phase (the job fails, saying so)", () => {
  const d = drive();
  d.feed({ type: "plan-done", task: d.task("plan"), tiles: [{ id: "a".repeat(64), pairs: 4, stored: false }], samples: 10, search: true });
  assert.is(d.job.state, "failed");
  assert.match(d.job.error ?? "", /no tiles to score/);
});

test.run();
