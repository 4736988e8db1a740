import { test } from "uvu";
import * as assert from "uvu/assert";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cellProbeSearch, LocalBlobStore, npyHeader, type JobStatusMessage } from "../../common/src/mod.js";
import { candidateTable } from "../../coordinator/src/plan/candidates.js";
import { runEmbeddedJob } from "../../cli/src/embedded/run-embedded-job.js";
import { parseJobSpec, planJob, type StoryEntry } from "../../coordinator/src/mod.js";
import { matrixRowsOf, searchGivenCandidates } from "../../coordinator/src/plan/given-embeddings.js";
import { gatherSearchWork, planSearchWork, searchUploadProblem } from "../../coordinator/src/tasks/search-work.js";
import { SearchExecutor } from "../../worker/src/search/search-executor.js";
import type { ResultSender } from "../../worker/src/mod.js";
import { newJob, type JobEvent, type JobSettings } from "../../coordinator/src/jobs/job-state.js";
import { handleStimulus } from "../../coordinator/src/jobs/machine.js";
import { replayStory, storyEntries } from "../../coordinator/src/jobs/story.js";
import { writeSamples } from "../helpers/kernels.js";
import { tempDir, TINY_MODEL } from "../helpers/paths.js";

/**
 * The SE kernel's exact candidate search as worker tiles (issue 8 item 2): the workers' lists,
 * merged per query block, give the thread's candidate table byte for byte (over several query and
 * corpus blocks); a forged result is refused; on the embedded bus the job goes searching ->
 * candidates -> selecting and selects the bytes the in-thread search selects; a cancel while the
 * search tiles run leaves no output.
 */
const dir = tempDir("delift-search-workers-");
test.after(() => dir.cleanup());

const N = 32;
const DIM = 8;
const DATA = writeSamples(join(dir.path, "d.jsonl"), N);
const EMB = join(dir.path, "e.npy");
{
  // Rounded values: exact ties between rows, broken to the lower row everywhere.
  const values = Float32Array.from({ length: N * DIM }, (_, k) => Math.round(4 * Math.sin(1.7 * Math.floor(k / DIM) * ((k % DIM) + 1))) / 4 + (k % DIM === Math.floor(k / DIM) % 3 ? 1 : 0));
  writeFileSync(EMB, Buffer.concat([npyHeader("<f4", [N, DIM]), Buffer.from(values.buffer)]));
}
const spec = () =>
  parseJobSpec(
    { kind: "select", data: DATA, model: TINY_MODEL, embeddings: EMB, selection: { budget: "0.3", kernelType: "se", optimizer: "lazy", compareLazy: "never" }, scoring: { candidates: { neighbors: 6, random: 2, seed: 3 } } },
    "test",
  );

test("worker search tiles (2 x 4 query x corpus blocks) merge into the thread's candidate table byte for byte; forged results are refused", async () => {
  const s = spec();
  const planned = await planJob(s);
  const plan = await planSearchWork(s, planned, join(dir.path, "matrices"), { queryRows: 16, corpusRows: 9 });
  assert.ok(plan, "an exact search below the limit goes to the workers");
  assert.is(plan!.byId.size, 2 * 4);
  const blobs = new LocalBlobStore();
  await blobs.putFile(plan!.matrix.name, plan!.matrix.path);
  const worker = new SearchExecutor(blobs, join(dir.path, "fetch"), { device: "cpu" });
  const results = new Map<string, Float32Array>();
  try {
    for (const [id, work] of plan!.byId) results.set(id, (await worker.compute(work)).distances);
  } finally {
    await worker.dispose();
  }
  const { kernels } = await gatherSearchWork(s, plan!, async (id) => results.get(id)!);
  const rows = matrixRowsOf(planned.sets, planned.sets.v);
  const own = await searchGivenCandidates(planned.sets.embeddings!, rows, rows, s.scoring.candidates!);
  assert.ok(Buffer.from(kernels[0].table!.ptr.buffer).equals(Buffer.from(own.table.ptr.buffer)), "same row pointers");
  assert.ok(Buffer.from(kernels[0].table!.ids.buffer).equals(Buffer.from(own.table.ids.buffer)), "same candidates");

  const [id, good] = [...results][0];
  assert.is(searchUploadProblem(plan!, id, good), null);
  const k = plan!.byId.get(id)!.k;
  const m = plan!.byId.get(id)!.queries.length;
  const outside = good.slice();
  new Uint32Array(outside.buffer, m * k * 4)[0] = 31; // row 31 is in another corpus block
  assert.match(searchUploadProblem(plan!, id, outside) ?? "", /not in the tile's corpus/);
  const reordered = good.slice();
  reordered[0] = -1; // its best is now worse than its second
  assert.match(searchUploadProblem(plan!, id, reordered) ?? "", /best first/);
  assert.match(searchUploadProblem(plan!, id, good.subarray(1)) ?? "", /values, expected/);
  assert.match(searchUploadProblem(plan!, "cd".repeat(32), good) ?? "", /not one of the job's search tiles/);
});

test("cell-probe search as worker tiles: k-means and probes in the thread, the cells' tiles on a worker, merged per chunk: cellProbeSearch's table byte for byte", async () => {
  const s = spec();
  const planned = await planJob(s);
  const plan = await planSearchWork(s, planned, join(dir.path, "matrices"), { method: "cells" });
  assert.ok(plan);
  assert.ok(plan!.byId.size > 3, `one tile per probed cell (${plan!.byId.size})`);
  const blobs = new LocalBlobStore();
  await blobs.putFile(plan!.matrix.name, plan!.matrix.path);
  const worker = new SearchExecutor(blobs, join(dir.path, "fetch"), { device: "cpu" });
  const results = new Map<string, Float32Array>();
  try {
    for (const [id, work] of plan!.byId) results.set(id, (await worker.compute(work)).distances);
  } finally {
    await worker.dispose();
  }
  const { kernels, facts } = await gatherSearchWork(s, plan!, async (id) => results.get(id)!);
  const rows = matrixRowsOf(planned.sets, planned.sets.v);
  const sparse = s.scoring.candidates!;
  const own = await cellProbeSearch(planned.sets.embeddings!, rows, rows, sparse.neighbors, { seed: sparse.seed });
  const table = candidateTable(own.lists, rows, sparse);
  assert.is(facts[0].method, "cells");
  assert.is(facts[0].probes, own.probes);
  assert.ok(Buffer.from(kernels[0].table!.ptr.buffer).equals(Buffer.from(table.ptr.buffer)), "same row pointers");
  assert.ok(Buffer.from(kernels[0].table!.ids.buffer).equals(Buffer.from(table.ids.buffer)), "same candidates");
});

const forging = (inner: ResultSender, onUpload: () => void, forge: boolean): ResultSender => {
  let forged = false;
  return {
    ...inner,
    jobKey: (j) => inner.jobKey(j),
    started: (j, t, a) => inner.started(j, t, a),
    progress: (j, t, a) => inner.progress(j, t, a),
    failed: (j, t, a, e, kind) => inner.failed(j, t, a, e, kind),
    close: () => inner.close(),
    upload: (j, t, a, mac, output, secs) => {
      onUpload();
      if (forge && !forged) {
        forged = true;
        const d = output.distances.slice();
        d[0] = 2; // not a cosine
        return inner.upload(j, t, a, mac, { ...output, distances: d }, secs);
      }
      return inner.upload(j, t, a, mac, output, secs);
    },
  };
};

test("on the embedded bus: searching -> candidates -> selecting, the in-thread search's selection byte for byte, a forged result refused and recomputed; a cancel leaves no output", async () => {
  const thread = join(dir.path, "thread");
  const a = await runEmbeddedJob(spec(), { out: thread, storeDir: join(dir.path, "store-a"), device: "cpu" });
  assert.is(a.status.state, "done", a.status.error);

  const story: StoryEntry[] = [];
  const states: string[] = [];
  const out = join(dir.path, "workers");
  const b = await runEmbeddedJob(spec(), {
    out,
    storeDir: join(dir.path, "store-b"),
    device: "cpu",
    searchOnWorkers: true,
    onStory: (e) => story.push(e),
    onStatus: (st: JobStatusMessage) => (states.at(-1) !== st.state ? states.push(st.state) : 0),
    wrapSender: (inner) => forging(inner, () => undefined, true),
  });
  assert.is(b.status.state, "done", b.status.error);
  assert.equal(story.filter((e) => e.kind === "job").map((e) => (e as { to: string }).to), ["searching", "candidates", "selecting", "writing", "done"]);
  assert.ok(story.some((e) => e.kind === "rejected" && /cosine/.test((e as { reason: string }).reason)), "the forged result was refused");
  assert.ok(b.status.tilesTotal >= 1 && b.status.tilesDone === b.status.tilesTotal, `search tiles stored (${b.status.tilesDone}/${b.status.tilesTotal})`);
  assert.ok(readFileSync(join(out, "selected.jsonl")).equals(readFileSync(join(thread, "selected.jsonl"))), "the workers' search selects what the thread's does");

  const stop = new AbortController();
  const cancelled = join(dir.path, "cancelled");
  const c = await runEmbeddedJob(spec(), { out: cancelled, storeDir: join(dir.path, "store-c"), device: "cpu", searchOnWorkers: true, signal: stop.signal, wrapSender: (inner) => forging(inner, () => stop.abort(), false) });
  assert.is(c.status.state, "cancelled");
  assert.is(existsSync(cancelled), false, "no output after a cancel");
});

const SETTINGS: JobSettings = { kind: "select", ackWaitMs: 1000, maxDeliver: 3, maxQueued: 2, conflictTolerance: 1e-5 };
const T1 = "a1".repeat(32);
const T2 = "b2".repeat(32);

function machine() {
  const job = newJob("j1", 1, SETTINGS);
  const story: StoryEntry[] = [];
  let n = 1;
  let seq = 0;
  const starts: string[] = [];
  const feed = (event: JobEvent) => {
    const st = { id: `s${n}`, t: n++, event };
    const out = handleStimulus(job, st);
    for (const i of out.instructions) if (i.type === "start") starts.push(i.kind);
    story.push(...storyEntries("j1", st, out.changes, () => seq++));
    return out;
  };
  const task = (kind: string) => [...job.tasks].find(([, k]) => k === kind)?.[0] ?? assert.unreachable(`no ${kind} task`);
  feed({ type: "submitted", settings: SETTINGS });
  feed({ type: "plan-done", task: task("plan") as string, tiles: [], samples: 10, search: true });
  return { job, feed, task: (k: string) => task(k) as string, story, starts };
}
const json = (x: unknown) => JSON.stringify(x, (_k, v) => (v instanceof Map ? [...v] : v instanceof Set ? [...v] : v));

test("the machine: a search handed out as tiles runs them in candidates (published, stored, a health hand-back republished), gathers, then selects; the story replays", () => {
  const d = machine();
  d.feed({ type: "search-done", task: d.task("search"), tiles: [{ id: T1, pairs: 5, stored: false }, { id: T2, pairs: 5, stored: true }] });
  assert.is(d.job.state, "candidates");
  assert.is(d.job.counts.tilesReused, 1);
  d.feed({ type: "publish-done", task: d.task("publish"), tileIds: [T1], bytes: 10 });
  d.feed({ type: "tile-started", request: "r1", tileId: T1, worker: "w1", attempt: 1 });
  d.feed({ type: "tile-failed", request: "r2", tileId: T1, worker: "w1", attempt: 1, error: "fetch failed", kind: "health" });
  assert.is(d.job.tiles.get(T1)!.state, "planned");
  d.feed({ type: "publish-done", task: d.task("publish"), tileIds: [T1], bytes: 10 });
  d.feed({ type: "result-received", request: "r3", tileId: T1, worker: "w2", attempt: 1, problem: null });
  d.feed({ type: "store-done", task: d.task("store"), request: "r3", tileId: T1, worker: "w2", attempt: 1, seconds: 1, bytes: 40, outcome: "stored" });
  assert.is(d.job.state, "candidates");
  assert.ok(d.starts.includes("gather"));
  d.feed({ type: "search-done", task: d.task("gather") });
  assert.is(d.job.state, "selecting");
  d.feed({ type: "select-done", task: d.task("select") });
  d.feed({ type: "write-done", task: d.task("write"), summary: "ok" });
  assert.is(d.job.state, "done");
  assert.is(json(replayStory(d.story)), json(d.job));
});

test("the machine: every search tile already stored gathers at once; a failed gather fails the job; a cancel in candidates aborts and ends cancelled", () => {
  const reused = machine();
  reused.feed({ type: "search-done", task: reused.task("search"), tiles: [{ id: T1, pairs: 5, stored: true }] });
  assert.is(reused.job.state, "candidates");
  reused.feed({ type: "task-failed", task: reused.task("gather"), error: "a stored list is damaged", errorName: "Error", aborted: false });
  assert.is(reused.job.state, "failed");
  assert.is(reused.job.failedDuring, "candidates");

  const cancelled = machine();
  cancelled.feed({ type: "search-done", task: cancelled.task("search"), tiles: [{ id: T1, pairs: 5, stored: false }] });
  const publish = cancelled.task("publish");
  const out = cancelled.feed({ type: "cancel", reason: "stop" });
  assert.ok(out.instructions.some((i) => i.type === "abort" && i.task === publish));
  assert.is(cancelled.job.state, "cancelling");
  cancelled.feed({ type: "task-failed", task: publish, error: "aborted", errorName: "AbortError", aborted: true });
  assert.is(cancelled.job.state, "cancelled");
  const late = cancelled.feed({ type: "tile-started", request: "r9", tileId: T1, worker: "w1", attempt: 1 });
  assert.ok(late.instructions.some((i) => i.type === "reply" && (i.reply as { wanted?: boolean }).wanted === false), "a cancelled job wants no more search tiles");
});

test.run();
