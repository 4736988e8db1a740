import { suite } from "uvu";
import * as assert from "uvu/assert";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { statusKey, workKey } from "../../common/src/mod.js";
import { holds, type HoldPoint, type StoryEntry } from "../../coordinator/src/mod.js";
import { runEmbeddedJob } from "../../cli/src/embedded/run-embedded-job.js";
import { cleanupScratch, SCRATCH, smallJob, startHarness, timeTests } from "./runtime-harness.js";

const Cancel = suite("runtime: cancel in each state aborts the running task, writes nothing, releases queue and records (embedded)");
Cancel.after(() => cleanupScratch());
timeTests(Cancel as never);

const STORE = join(SCRATCH, "cancel-tiles");

/** Runs a selection job held at `point`, cancels it there, checks what is left. */
async function cancelAt(point: HoldPoint, storeDir: string): Promise<StoryEntry[]> {
  const previous = process.env.DELIFT_HOLD_AT;
  process.env.DELIFT_HOLD_AT = point;
  const h = await startHarness({ storeDir });
  try {
    const held = new Promise<string>((resolve) => holds.once("hold", (p, jobId) => resolve(`${p}:${jobId}`)));
    const jobId = await h.coordinator.submit(smallJob({ saveKernel: true }, "select"));
    assert.is(await held, `${point}:${jobId}`);
    const runningTask = h.coordinator.record(jobId).tasks;
    assert.ok(runningTask.size >= 1, "a task is running at the hold");
    h.coordinator.cancel(jobId, `cancelled while ${point}`);
    const end = await h.waitEnd(jobId);
    assert.is(end.state, "cancelled");
    assert.is(end.error, `cancelled while ${point}`);
    const jobDir = join(h.dataDir, "jobs", jobId);
    assert.not.ok(existsSync(join(jobDir, "result")), "no result");
    assert.equal(readdirSync(jobDir).filter((n) => n.includes("staging") || n.startsWith(".") || n.startsWith("select-kernel")), [], "no staging or staged kernel left");
    assert.not.ok(h.queue.has(jobId), "queue released");
    assert.is(await h.jobsKv.get(workKey(jobId)), null, "work spec deleted");
    assert.is(await h.jobsKv.get(statusKey(jobId)), null, "status record deleted");
    const story = h.story.filter((e) => e.job === jobId);
    const aborted = story.filter((e) => e.kind === "task" && e.phase === "aborted");
    assert.ok(aborted.length >= 1, `the held task was aborted: ${JSON.stringify(story.filter((e) => e.kind === "task"))}`);
    assert.equal(story.filter((e) => e.kind === "job").map((e) => (e as { to: string }).to).slice(-2), ["cancelling", "cancelled"]);
    return story;
  } finally {
    if (previous === undefined) delete process.env.DELIFT_HOLD_AT;
    else process.env.DELIFT_HOLD_AT = previous;
    await h.stop();
  }
}

Cancel("planning: the planning task (queue and work spec already made) is aborted, both are released", async () => {
  const story = await cancelAt("planning", join(SCRATCH, "empty-store"));
  assert.ok(story.some((e) => e.kind === "task" && e.taskKind === "plan" && e.phase === "aborted"));
});

Cancel("scoring: held after the first tile is stored; the store task is aborted", async () => {
  const story = await cancelAt("scoring", STORE);
  assert.ok(story.some((e) => e.kind === "task" && e.taskKind === "store" && e.phase === "aborted"));
});

Cancel("selecting: the selection's worker thread is stopped", async () => {
  const story = await cancelAt("selecting", STORE);
  assert.ok(story.some((e) => e.kind === "task" && e.taskKind === "select" && e.phase === "aborted"));
});

Cancel("writing: the output, already staged, is removed; nothing reaches --out", async () => {
  const story = await cancelAt("writing", STORE);
  assert.ok(story.some((e) => e.kind === "task" && e.taskKind === "write" && e.phase === "aborted"));
});

Cancel("the embedded command's own path: Ctrl-C (the signal) while writing leaves no --out and no temporary files", async () => {
  process.env.DELIFT_HOLD_AT = "writing";
  const out = join(SCRATCH, "never-written");
  const controller = new AbortController();
  holds.once("hold", () => controller.abort());
  try {
    const outcome = await runEmbeddedJob(smallJob({}, "select"), { out, storeDir: STORE, device: "cpu", signal: controller.signal });
    assert.is(outcome.status.state, "cancelled");
    assert.not.ok(existsSync(out));
    assert.equal(readdirSync(SCRATCH).filter((n) => n.includes("never-written")), []);
  } finally {
    delete process.env.DELIFT_HOLD_AT;
  }
});

Cancel.run();
