import { test } from "uvu";
import * as assert from "uvu/assert";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Packr } from "msgpackr";
import { decodeTileMessage, decodeWorkMessage, type EmbedTileWork, embedTileId, encodeTileMessage, ProtocolError, type JobStatusMessage } from "../../common/src/mod.js";
import { runEmbeddedJob } from "../../cli/src/embedded/run-embedded-job.js";
import { parseJobSpec, type StoryEntry } from "../../coordinator/src/mod.js";
import { loadJobSets, loadModelInputs } from "../../coordinator/src/inputs/load-inputs.js";
import { embedSamples } from "../../coordinator/src/runtime/embeddings.js";
import type { ResultSender } from "../../worker/src/mod.js";
import { newJob, type Instruction, type JobEvent, type JobSettings } from "../../coordinator/src/jobs/job-state.js";
import { handleStimulus } from "../../coordinator/src/jobs/machine.js";
import { replayStory, storyEntries } from "../../coordinator/src/jobs/story.js";
import { writeSamples } from "../helpers/kernels.js";
import { TINY_MODEL, tempDir } from "../helpers/paths.js";

/**
 * Embed tiles: the codec (round trip, every malformed field refused), and the embeddings stage on
 * the embedded bus with the real encoder: planning -> embedding -> searching, vectors equal to the
 * coordinator's own encoder byte for byte, a bad result refused and recomputed, reuse from the
 * tile store, and a cancel in the middle of it that leaves nothing behind.
 */
const dir = tempDir("delift-embed-tiles-");
test.after(() => dir.cleanup());

const TILE = "ab".repeat(32);
const work = (): EmbedTileWork => ({
  kind: "embed",
  sequences: { count: 3, ids: Int32Array.from([5, 6, 7, 8, 9, 1]), offsets: Uint32Array.from([0, 3, 5, 6]) },
  runs: Uint32Array.from([2, 1]),
});
const packr = new Packr({ useRecords: false, moreTypes: false });
const raw = (over: Record<string, unknown>) => {
  const body = packr.unpack(encodeTileMessage({ jobId: "job_1", tileId: TILE, work: work() })) as Record<string, unknown>;
  return packr.pack({ ...body, ...over });
};
const u32 = (...v: number[]) => new Uint8Array(Uint32Array.from(v).buffer);
const i32 = (...v: number[]) => new Uint8Array(Int32Array.from(v).buffer);

test("embed tile codec: round trip; decodeTileMessage refuses it; every malformed field is a ProtocolError", () => {
  const m = decodeWorkMessage(encodeTileMessage({ jobId: "job_1", tileId: TILE, work: work() }));
  assert.is(m.work.kind, "embed");
  if (m.work.kind !== "embed") return;
  assert.equal([...m.work.sequences.ids], [5, 6, 7, 8, 9, 1]);
  assert.equal([...m.work.sequences.offsets], [0, 3, 5, 6]);
  assert.equal([...m.work.runs], [2, 1]);
  assert.is(m.work.sequences.count, 3);
  assert.throws(() => decodeTileMessage(encodeTileMessage({ jobId: "job_1", tileId: TILE, work: work() })), (e: unknown) => e instanceof ProtocolError);
  const bad: [string, Record<string, unknown>][] = [
    ["offsets do not span", { offsets: u32(0, 3, 5, 7) }],
    ["offsets decrease", { offsets: u32(0, 5, 3, 6) }],
    ["offsets start", { offsets: u32(1, 3, 5, 6) }],
    ["no sequences", { offsets: u32(0), ids: new Uint8Array(0), runs: new Uint8Array(0) }],
    ["runs short", { runs: u32(2) }],
    ["runs long", { runs: u32(2, 2) }],
    ["empty run", { runs: u32(0, 2, 1) }],
    ["negative id", { ids: i32(5, 6, -7, 8, 9, 1) }],
    ["ids not binary", { ids: [5, 6, 7, 8, 9, 1] }],
    ["odd length", { runs: new Uint8Array(5) }],
  ];
  for (const [what, over] of bad) assert.throws(() => decodeWorkMessage(raw(over)), (e: unknown) => e instanceof ProtocolError, what);
  // The key: the encoder and the content, nothing else.
  const a = embedTileId("enc/pad0", work());
  assert.is(a, embedTileId("enc/pad0", work()));
  assert.is.not(a, embedTileId("enc/pad1", work()));
  const w = work();
  w.sequences.ids[0] = 4;
  assert.is.not(a, embedTileId("enc/pad0", w));
  assert.match(a, /^[0-9a-f]{64}$/);
});

test("the machine's embedding state: planned embed tiles are published, a hand-back goes back to planned, reconcile finds them stored, then the search; a cancel waits for its tasks", () => {
  const settings: JobSettings = { kind: "select", ackWaitMs: 1000, maxDeliver: 3, maxQueued: 8, conflictTolerance: 1e-5 };
  const drive = () => {
    const job = newJob("j1", 1, settings);
    const entries: StoryEntry[] = [];
    let t = 0;
    let seq = 0;
    let last: Instruction[] = [];
    const feed = (event: JobEvent) => {
      const s = { id: `s${++t}`, t, event };
      const out = handleStimulus(job, s);
      entries.push(...storyEntries("j1", s, out.changes, () => seq++));
      last = out.instructions;
      return out;
    };
    const task = (kind: string) => [...job.tasks].find(([, k]) => k === kind)![0];
    const starts = (kind: string) => last.filter((i) => i.type === "start" && i.kind === kind);
    feed({ type: "submitted", settings });
    return { job, entries, feed, task, starts };
  };
  const ids = ["a", "b", "c"].map((c) => c.repeat(64));
  const d = drive();
  d.feed({ type: "plan-done", task: d.task("plan"), tiles: [{ id: ids[0], pairs: 5, stored: false }, { id: ids[1], pairs: 4, stored: false }, { id: ids[2], pairs: 3, stored: true }], samples: 12, search: true, embed: true });
  assert.is(d.job.state, "embedding");
  assert.equal([d.job.counts.pairsTotal, d.job.counts.pairsDone, d.job.counts.tilesReused], [12, 3, 1]);
  d.feed({ type: "publish-done", task: d.task("publish"), tileIds: [ids[0], ids[1]], bytes: 10 });
  d.feed({ type: "tile-started", request: "r1", tileId: ids[0], worker: "w1", attempt: 1 });
  d.feed({ type: "tile-failed", request: "r2", tileId: ids[0], worker: "w1", attempt: 1, error: "out of memory", kind: "health" });
  assert.is(d.job.tiles.get(ids[0])!.state, "planned", "a hand-back goes back to planned");
  assert.ok(d.starts("publish").length === 1, "and is published again");
  d.feed({ type: "publish-done", task: d.task("publish"), tileIds: [ids[0]], bytes: 5 });
  d.feed({ type: "reconcile-due" });
  d.feed({ type: "reconcile-done", task: d.task("reconcile"), queue: null, stored: [ids[0], ids[1]] });
  assert.is(d.job.state, "searching");
  assert.ok(d.starts("search").length === 1, "the search phase starts once every embed tile is stored");
  d.feed({ type: "result-received", request: "r3", tileId: ids[1], worker: "w2", attempt: 1, problem: null });
  assert.ok(d.starts("store").length === 0, "a late result is not stored in the search phase");
  assert.equal(JSON.stringify(replayStory(d.entries), (_k, x) => (x instanceof Map ? [...x] : x instanceof Set ? [...x] : x)), JSON.stringify(d.job, (_k, x) => (x instanceof Map ? [...x] : x instanceof Set ? [...x] : x)));

  const c = drive();
  c.feed({ type: "plan-done", task: c.task("plan"), tiles: [{ id: ids[0], pairs: 5, stored: false }], samples: 5, search: true, embed: true });
  c.feed({ type: "cancel", reason: "by user" });
  assert.is(c.job.state, "cancelling", "the publish task is still running");
  c.feed({ type: "publish-done", task: c.task("publish"), tileIds: [ids[0]], bytes: 5 });
  assert.is(c.job.state, "cancelled");
});

const DATA = writeSamples(join(dir.path, "d.jsonl"), 24);
const spec = () => parseJobSpec({ data: DATA, model: TINY_MODEL, selection: { kernelType: "se", budget: "5" }, scoring: { embedTileTokens: 1024 } }, "test");
const STORE = join(dir.path, "store");

async function coordinatorEmbeddings(): Promise<Float32Array> {
  const s = spec();
  const inputs = await loadModelInputs(s.model, s.scoring);
  const { sets } = await loadJobSets(s, inputs);
  return (await embedSamples(inputs, sets, "test")).embeddings;
}

test("the embeddings stage on the embedded bus: embed tiles on the worker, vectors identical to the coordinator's encoder, a bad result refused, reuse, cancel", async () => {
  const story: StoryEntry[] = [];
  const phases: string[] = [];
  let corrupted = false;
  const out = join(dir.path, "out");
  // The first result comes back with a row off its unit norm: refused, the tile is computed again.
  const corrupt = (inner: ResultSender): ResultSender => ({
    ...inner,
    jobKey: (j) => inner.jobKey(j),
    started: (j, t, a) => inner.started(j, t, a),
    progress: (j, t, a) => inner.progress(j, t, a),
    failed: (j, t, a, e, k) => inner.failed(j, t, a, e, k),
    close: () => inner.close(),
    upload: (j, t, a, mac, output, s) => {
      if (corrupted) return inner.upload(j, t, a, mac, output, s);
      corrupted = true;
      const d = output.distances.slice();
      d[0] += 0.5;
      return inner.upload(j, t, a, mac, { ...output, distances: d }, s);
    },
  });
  const first = await runEmbeddedJob(spec(), {
    out,
    storeDir: STORE,
    device: "cpu",
    onStory: (e) => story.push(e),
    onStatus: (s: JobStatusMessage) => s.phase && phases.push(`${s.state}:${s.phase.name}:${s.phase.unit}`),
    wrapSender: corrupt,
  });
  assert.is(first.status.state, "done", first.status.error);
  assert.equal(story.filter((e) => e.kind === "job").map((e) => (e as { to: string }).to), ["embedding", "searching", "selecting", "writing", "done"]);
  assert.ok(first.status.tilesTotal >= 3, `several embed tiles (${first.status.tilesTotal})`);
  assert.is(first.status.pairsTotal, 24, "the stage counts samples");
  assert.ok(phases.includes("embedding:embeddings:samples"), `the stage shows as phase embeddings: ${[...new Set(phases)].join(", ")}`);
  assert.ok(story.some((e) => e.kind === "rejected" && /norm/.test((e as { reason: string }).reason)), "the corrupted result was refused");
  const files = readdirSync(join(STORE, "embeddings"));
  assert.is(files.length, 1);
  const npy = readFileSync(join(STORE, "embeddings", files[0]));
  const header = 10 + npy.readUInt16LE(8);
  const workers = new Float32Array(npy.buffer.slice(npy.byteOffset + header, npy.byteOffset + npy.length));
  const own = await coordinatorEmbeddings();
  assert.is(workers.length, own.length);
  assert.ok(Buffer.from(workers.buffer).equals(Buffer.from(own.buffer)), "the workers' vectors are the coordinator encoder's, byte for byte");

  // The same samples and encoder again: every embed tile comes from the tile store.
  const again = join(dir.path, "again");
  const second = await runEmbeddedJob(spec(), { out: again, storeDir: STORE, device: "cpu" });
  assert.is(second.status.state, "done", second.status.error);
  assert.is(second.status.tilesReused, second.status.tilesTotal);
  assert.ok(readFileSync(join(again, "selected.jsonl")).equals(readFileSync(join(out, "selected.jsonl"))), "same selection from reused embeddings");

  // A cancel while the workers embed: the job is cancelled and writes nothing.
  const stop = new AbortController();
  const cancelled = join(dir.path, "cancelled");
  const third = await runEmbeddedJob(spec(), {
    out: cancelled,
    storeDir: join(dir.path, "store-cancel"),
    device: "cpu",
    signal: stop.signal,
    wrapSender: (inner) => ({ ...inner, jobKey: (j) => inner.jobKey(j), started: (j, t, a) => inner.started(j, t, a), progress: (j, t, a) => inner.progress(j, t, a), failed: (j, t, a, e, k) => inner.failed(j, t, a, e, k), close: () => inner.close(), upload: (j, t, a, mac, o, s) => (stop.abort(), inner.upload(j, t, a, mac, o, s)) }),
  });
  assert.is(third.status.state, "cancelled");
  assert.is(existsSync(cancelled), false, "no output after a cancel");
});

test.run();
