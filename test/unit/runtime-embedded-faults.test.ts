import { suite } from "uvu";
import * as assert from "uvu/assert";
import { cpSync, readFileSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { CoordinatorUnavailableError, decodeTileMessage, encodeTileMessage, InvalidRequestError, ModelError, tileMac, WorkerHealthError } from "../../common/src/mod.js";
import { type Coordinator, readStory, replayStory, storyPath } from "../../coordinator/src/mod.js";
import type { ModelCache, ResultSender } from "../../worker/src/mod.js";
import { TINY_MODEL } from "../helpers/paths.js";
import { cleanupScratch, queueWith, timeTests, SCRATCH, sampleData, senderWith, smallJob, startHarness } from "./runtime-harness.js";

const Faults = suite("runtime: one authority, reconcile, conflicts, worker health, trusted messages (in-process, memory bus, real model)");

let clean: Buffer | null = null;
const STORE = join(SCRATCH, "shared-tiles");

/** The clean kernel of the small job (computed once; its tiles stay in STORE for reuse). */
async function cleanKernel(): Promise<Buffer> {
  if (clean) return clean;
  const h = await startHarness({ storeDir: STORE });
  try {
    const r = await h.run(smallJob());
    assert.is(r.state, "done", r.error);
    clean = await readFile(join(h.dataDir, "jobs", r.jobId, "result", "kernel.bin"));
    return clean;
  } finally {
    await h.stop();
  }
}

const json = (v: unknown) => JSON.stringify(v, (_k, x) => (x instanceof Map ? [...x] : x instanceof Set ? [...x] : x));

Faults.after(() => cleanupScratch());
timeTests(Faults as never);

Faults("a real job's record is rebuilt from its story on disk, entry for entry", async () => {
  const h = await startHarness();
  try {
    const r = await h.run(smallJob({}, "select"));
    assert.is(r.state, "done", r.error);
    const entries = await readStory(await h.coordinator.story(r.jobId));
    assert.is(storyPath(h.dataDir, r.jobId), await h.coordinator.story(r.jobId));
    assert.ok(entries.length > 10);
    assert.equal(entries.map((e) => e.seq), entries.map((_, k) => k), "every entry on disk, in order");
    assert.is(json(replayStory(entries)), json(h.coordinator.record(r.jobId)));
    const kinds = new Set(entries.map((e) => e.kind));
    for (const k of ["stimulus", "job", "tile", "task"]) assert.ok(kinds.has(k as never), `story has ${k} entries`);
    assert.equal(entries.filter((e) => e.kind === "job").map((e) => (e as { to: string }).to), ["scoring", "selecting", "writing", "done"]);
    assert.equal(h.story.length, entries.length, "onStory saw the same entries");
  } finally {
    await h.stop();
  }
});

Faults("a duplicate within the tolerance keeps the stored bytes and logs the difference; beyond it the job fails naming tile, both workers and the difference", async () => {
  const reference = await cleanKernel();
  // Every stored tile comes back once more from "gpu-1", each value off by `delta`.
  const doubled = (delta: number) => ({
    id: "cpu-1",
    wrapSender: (inner: ResultSender, coordinator: Coordinator) =>
      senderWith(inner, {
        upload: async (j, t, a, m, o, s) => {
          const first = await inner.upload(j, t, a, m, o, s);
          const off = { distances: o.distances.map((v) => Math.min(1, Math.max(0, v + delta))), truncated: o.truncated };
          await coordinator.acceptResult({ jobId: j, tileId: t, attempt: a, workerId: "gpu-1", mac: m, output: off, computeSeconds: s }).catch(() => undefined);
          return first;
        },
      }),
  });
  const near = await startHarness({ workers: [doubled(3e-6)] });
  try {
    const r = await near.run(smallJob());
    assert.is(r.state, "done", r.error);
    assert.ok(Buffer.compare(await readFile(join(near.dataDir, "jobs", r.jobId, "result", "kernel.bin")), reference) === 0, "the stored bytes were kept");
    const notes = near.story.filter((e) => e.kind === "note" && /within the tolerance/.test((e as { message: string }).message));
    assert.ok(notes.length >= 1, "the difference is in the story");
    assert.match((notes[0] as { message: string }).message, /gpu-1/);
  } finally {
    await near.stop();
  }
  const far = await startHarness({ workers: [doubled(2e-3)] });
  try {
    const r = await far.run(smallJob());
    assert.is(r.state, "failed");
    assert.match(r.error, /conflicting results for tile [0-9a-f]{64}: worker cpu-1 and worker gpu-1 differ by up to 0\.00\d+/);
  } finally {
    await far.stop();
  }
});

Faults("lost signals: with max-delivery advisories and failure reports dropped, a failing tile still ends its job", async () => {
  const bundle = join(SCRATCH, "mismatched-bundle");
  cpSync(TINY_MODEL, bundle, { recursive: true });
  const tok = JSON.parse(readFileSync(join(bundle, "tokenizer.json"), "utf8"));
  tok.added_tokens.push({ id: 9000, content: "<|unknown-to-model|>", single_word: false, lstrip: false, rstrip: false, normalized: false, special: false });
  writeFileSync(join(bundle, "tokenizer.json"), JSON.stringify(tok));
  const manifest = JSON.parse(readFileSync(join(bundle, "manifest.json"), "utf8"));
  delete manifest.vocabSize;
  delete manifest.sha256;
  writeFileSync(join(bundle, "manifest.json"), JSON.stringify(manifest));
  const data = join(SCRATCH, "poisoned.jsonl");
  writeFileSync(data, readFileSync(sampleData(4), "utf8").replace(/"instruction": "/, '"instruction": "<|unknown-to-model|> '));

  let failuresDropped = 0;
  const h = await startHarness({
    wrapQueue: (q) => queueWith(q, { onMaxDeliveries: () => undefined }),
    workers: [{ id: "w1", wrapSender: (inner) => senderWith(inner, { failed: async () => (failuresDropped++, Promise.reject(new CoordinatorUnavailableError("lost on the way"))) }) }],
  });
  try {
    const r = await h.run(smallJob({ data, model: bundle }));
    assert.is(r.state, "failed");
    assert.match(r.error, /used all 2 deliveries without a result/);
    assert.ok(failuresDropped >= 2, `failure reports dropped: ${failuresDropped}`);
    // And a clean job through the same lossy bus completes.
    const ok = await h.run(smallJob());
    assert.is(ok.state, "done", ok.error);
  } finally {
    await h.stop();
  }
});

Faults("a tile message the queue loses is published again by reconcile; the kernel is the clean one", async () => {
  const reference = await cleanKernel();
  let dropped = 0;
  const h = await startHarness({
    wrapQueue: (q) => queueWith(q, { publish: async (j, t, d, m) => (dropped++ === 0 ? undefined : q.publish(j, t, d, m)) }),
  });
  try {
    const r = await h.run(smallJob());
    assert.is(r.state, "done", r.error);
    assert.is(h.coordinator.status(r.jobId).redeliveries, 0);
    assert.ok(h.story.some((e) => e.kind === "note" && /no longer in the queue/.test((e as { message: string }).message)));
    assert.ok(Buffer.compare(await readFile(join(h.dataDir, "jobs", r.jobId, "result", "kernel.bin")), reference) === 0);
  } finally {
    await h.stop();
  }
});

Faults("a worker's own failures hand the tile back without a delivery (maxDeliver 1 still succeeds); the sick worker retires with a clear error", async () => {
  let sickFailed = 0;
  let release: () => void = () => undefined;
  const sickDone = new Promise<void>((r) => (release = r));
  const sick = (real: ModelCache) =>
    Object.assign(Object.create(real) as ModelCache, {
      acquire: async () => {
        if (++sickFailed >= 2) release();
        throw new WorkerHealthError("CUDA provider missing on this node");
      },
    });
  // The healthy worker waits until the sick one has failed twice, so the sick one surely takes tiles.
  const patient = (real: ModelCache) => Object.assign(Object.create(real) as ModelCache, { acquire: async (h: string, f: string[]) => (await sickDone, real.acquire(h, f)) });
  const h = await startHarness({ workers: [{ id: "sick", models: sick, maxHealthFailures: 2 }, { id: "healthy", models: patient }] });
  let retired: Error | null = null;
  h.workers[0].onRetire((e) => (retired = e));
  try {
    const r = await h.run(smallJob({ queue: { ackWaitSeconds: 1, maxDeliver: 1 } }));
    assert.is(r.state, "done", r.error);
    assert.is(h.coordinator.status(r.jobId).tilesDone, 3);
    assert.is(h.workers[0].stats.healthFailures, 2);
    assert.is(h.coordinator.record(r.jobId).counts.healthReturns, 2, "handed back twice, no tile failure counted");
    assert.match(String((retired as Error | null)?.message), /worker sick retires after 2 failures of its own in a row; last: CUDA provider missing/);
  } finally {
    await h.stop();
  }
});

Faults("a lone sick worker retires and the embedded job fails with its reason, never hangs", async () => {
  const sick = (real: ModelCache) => Object.assign(Object.create(real) as ModelCache, { acquire: async () => Promise.reject(new WorkerHealthError("out of memory creating the session")) });
  const h = await startHarness({ workers: [{ id: "only", models: sick, maxHealthFailures: 3 }] });
  try {
    const jobId = await h.coordinator.submit(smallJob());
    h.workers[0].onRetire((err) => h.coordinator.fail(jobId, err.message));
    const r = await h.waitEnd(jobId);
    assert.is(r.state, "failed");
    assert.match(r.error, /retires after 3 failures of its own in a row; last: out of memory creating the session/);
    assert.is(h.coordinator.record(jobId).counts.healthReturns, 3);
  } finally {
    await h.stop();
  }
});

Faults("a model error fails the job at once, with the bundle's message", async () => {
  const broken = (real: ModelCache) => Object.assign(Object.create(real) as ModelCache, { acquire: async () => Promise.reject(new ModelError("model.onnx has no logits output")) });
  const h = await startHarness({ workers: [{ id: "w1", models: broken }] });
  try {
    const r = await h.run(smallJob({ queue: { ackWaitSeconds: 1, maxDeliver: 5 } }));
    assert.is(r.state, "failed");
    assert.match(r.error, /the model bundle failed on worker w1: model.onnx has no logits output/);
    const failures = h.story.filter((e) => e.kind === "stimulus" && e.event.type === "tile-failed");
    assert.is(failures.length, 1, "one failure, not one per delivery");
  } finally {
    await h.stop();
  }
});

Faults("forged, altered and cross-job messages are dropped by the worker; a result for a message not published is refused; the kernel is the clean one", async () => {
  const reference = await cleanKernel();
  let other: { jobId: string; tileId: string; data: Uint8Array; mac: string } | null = null;
  const refusals: unknown[] = [];
  let injected = false;
  const h = await startHarness({
    wrapQueue: (q) =>
      queueWith(q, {
        publish: async (j, t, d, m) => {
          if (!other) other = { jobId: j, tileId: t, data: d, mac: m };
          else if (!injected && j !== other.jobId) {
            injected = true;
            const real = decodeTileMessage(d);
            const fake = (n: number) => Uint8Array.from({ length: 32 }, (_, k) => (k * 7 + n) & 255);
            // Garbage with the real tile's header, a forged copy with other samples, an altered copy, another job's message.
            await q.publish(j, t, new TextEncoder().encode("definitely not msgpack"), m);
            const nextSample = (i: number) => (i + 1) % real.corpus.count;
            const forged = encodeTileMessage({ ...real, work: real.work.kind === "baseline" ? { kind: "baseline", targets: real.work.targets.map(nextSample) } : { kind: "pairs", columns: real.work.columns.map((c) => ({ example: nextSample(c.example), rows: c.rows })) } });
            await q.publish(j, t, forged, tileMac(fake(1), j, t, forged));
            const altered = Uint8Array.from(d);
            altered[altered.length - 5] ^= 1;
            await q.publish(j, t, altered, m);
            await q.publish(j, other.tileId, other.data, other.mac);
            const pairs = h.coordinator.record(j).tiles.get(t)!.pairs;
            refusals.push(await h.coordinator.acceptResult({ jobId: j, tileId: t, attempt: 1, workerId: "evil", mac: tileMac(fake(2), j, t, d), output: { distances: new Float32Array(pairs).fill(0.5), truncated: 0 }, computeSeconds: 0 }).catch((e) => e));
          }
          return q.publish(j, t, d, m);
        },
      }),
  });
  try {
    const first = await h.run(smallJob({ data: sampleData(3, "other-job.jsonl") }));
    assert.is(first.state, "done", first.error);
    const r = await h.run(smallJob());
    assert.is(r.state, "done", r.error);
    assert.ok(injected);
    assert.is(h.workers[0].stats.dropped, 4, "all four dropped");
    assert.instance(refusals[0], InvalidRequestError);
    assert.match(String((refusals[0] as Error).message), /did not publish/);
    assert.ok(Buffer.compare(await readFile(join(h.dataDir, "jobs", r.jobId, "result", "kernel.bin")), reference) === 0, "kernel unchanged");
  } finally {
    await h.stop();
  }
});

Faults.run();
