import { test } from "uvu";
import * as assert from "uvu/assert";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { copyFile } from "node:fs/promises";
import { join } from "node:path";
import { type BlobStore, bundleFiles, cudaProviderStatus, isModelError, isWorkerHealthError, modelBlobName, openBundle } from "../../common/src/mod.js";
import { inspectModel, loadOnnxCausalLm, ModelCache, prepareModelGraph, type CausalLm } from "../../worker/src/mod.js";
import { checkCachePath } from "../../worker/src/model/trial-run.js";
import { classifyLoadError, classifyRunError } from "../../worker/src/model/session-errors.js";
import { CliProcess } from "../helpers/cluster.js";
import { FIXTURES, TINY_MODEL, tempDir } from "../helpers/paths.js";

const MODELS = join(FIXTURES, "models");

async function failure(p: Promise<unknown>): Promise<Error> {
  const err = await p.then(() => null, (e) => e);
  assert.ok(err, "expected an error");
  return err as Error;
}

test("a file that is not an ONNX model, or a decoder without KV cache, fails to load with a ModelError", async () => {
  const dir = tempDir();
  try {
    writeFileSync(join(dir.path, "model.onnx"), "definitely not protobuf");
    const bad = await failure(loadOnnxCausalLm(join(dir.path, "model.onnx")));
    assert.ok(isModelError(bad), String(bad));
    const noPast = await failure(loadOnnxCausalLm(join(MODELS, "phi3", "decoder_model.onnx")));
    assert.ok(isModelError(noPast), String(noPast));
    assert.match(noPast.message, /past_key_values|KV cache/);
    const missing = await failure(loadOnnxCausalLm(join(dir.path, "absent.onnx")));
    assert.ok(isModelError(missing), String(missing));
  } finally {
    dir.cleanup();
  }
});

test("an unprepared export with external data (one file or one per tensor) is prepared in memory and loads from its directory", async () => {
  for (const name of ["llama", "llama-tensors"]) {
    const bundle = await openBundle(join(MODELS, name));
    assert.ok(inspectModel(readFileSync(bundle.modelPath)).usesExternalData);
    const model = await loadOnnxCausalLm(bundle.modelPath, { threads: 1 });
    const { logprobs } = await model.scoreContinuations(null, { sequences: [Int32Array.from([5, 6, 7, 8])] });
    assert.ok(logprobs.slice(0, 3).every((v) => Number.isFinite(v) && v < 0));
    await model.dispose();
  }
});

test("a model whose cached continuations disagree with whole prompts fails its trial run with a ModelError", async () => {
  const real = await loadOnnxCausalLm(join(TINY_MODEL, "model.onnx"), { threads: 1 });
  await checkCachePath(real, "tiny");
  // The same model, but a continuation after a cache sees its scores shifted: what a broken position or mask handling does.
  const broken: CausalLm = {
    layout: real.layout,
    device: real.device,
    stats: real.stats,
    extend: (past, ids) => real.extend(past, ids),
    scoreContinuations: async (past, batch) => {
      const out = await real.scoreContinuations(past, batch);
      return past ? { ...out, logprobs: out.logprobs.map((v) => v - 0.01) } : out;
    },
    dispose: () => real.dispose(),
  };
  const err = await failure(checkCachePath(broken, "broken"));
  assert.ok(isModelError(err), String(err));
  assert.match(err.message, /KV cache .* away from the same whole prompt/);
  await real.dispose();
});

test("onnxruntime's failures are classed by cause: memory and provider libraries are the worker's, the rest at load is the bundle's", () => {
  assert.ok(isWorkerHealthError(classifyLoadError(new Error("std::bad_alloc"), "load")));
  assert.ok(isWorkerHealthError(classifyLoadError(new Error("Failed to load library libonnxruntime_providers_cuda.so"), "load")));
  assert.ok(isModelError(classifyLoadError(new Error("Could not find an implementation for Where(16) node"), "load")));
  assert.ok(isWorkerHealthError(classifyRunError(new Error("CUDA failure 2: out of memory")) as Error));
  const other = new Error("Got invalid dimensions for input");
  assert.is(classifyRunError(other), other, "a run failure stays the tile's");
});

test("the prefix cache crosses to the session once per continuation run, whatever the batch; results equal the host-side copy", async () => {
  const raw = readFileSync(join(TINY_MODEL, "model.onnx"));
  const dir = tempDir();
  try {
    // A bundle prepared by an older delift (target log-probabilities, no in-graph broadcast) is upgraded when loaded.
    const old = join(dir.path, "old.onnx");
    writeFileSync(old, prepareModelGraph(raw, { broadcastPast: false }));
    assert.not.ok(inspectModel(readFileSync(old)).broadcastsPast);
    const graph = await loadOnnxCausalLm(old, { threads: 1 });
    const host = await loadOnnxCausalLm(join(TINY_MODEL, "model.onnx"), { threads: 1, prepare: { broadcastPast: false } });
    const prefixIds = Int32Array.from({ length: 60 }, (_, k) => 10 + k);
    const perRun: Record<string, number[]> = { graph: [], host: [] };
    for (const [name, model] of [["graph", graph], ["host", host]] as const) {
      const prefix = await model.extend(null, prefixIds);
      for (const batch of [1, 4, 16]) {
        const before = model.stats.cacheBytesToSession;
        const sequences = Array.from({ length: batch }, (_, b) => Int32Array.from({ length: 3 + b }, (_, k) => 100 + k + b));
        const out = await model.scoreContinuations(prefix, { sequences });
        perRun[name].push(model.stats.cacheBytesToSession - before);
        if (name === "host") {
          const other = await graph.scoreContinuations(await graph.extend(null, prefixIds), { sequences });
          for (let k = 0; k < out.logprobs.length; k++) assert.ok(Math.abs(out.logprobs[k] - other.logprobs[k]) < 1e-6);
        }
      }
    }
    const cacheBytes = 4 /* layers */ * 2 * 2 /* kv heads */ * 60 * 32 /* head dim */ * 4;
    assert.equal(perRun.graph, [cacheBytes, cacheBytes, cacheBytes], "constant in the batch size");
    assert.equal(perRun.host, [cacheBytes, 4 * cacheBytes, 16 * cacheBytes], "the old way: batch times");
    await graph.dispose();
    await host.dispose();
  } finally {
    dir.cleanup();
  }
});

/** An object store that copies bytes (as NATS's does), with no local paths to borrow. */
class CopyingBlobStore implements BlobStore {
  private readonly blobs = new Map<string, Buffer>();
  async has(name: string) {
    return this.blobs.has(name);
  }
  async putFile(name: string, path: string) {
    this.blobs.set(name, readFileSync(path));
  }
  async getToFile(name: string, path: string) {
    const b = this.blobs.get(name);
    if (!b) throw new Error(`no blob ${name}`);
    writeFileSync(path, b);
  }
}

test("a worker's model cache fetches every file of an external-data export, under one per tensor too, and loads it", async () => {
  const dir = tempDir();
  try {
    // The export in a subdirectory layout (onnx/ for the graph and its data), as ONNX repositories keep it.
    const src = join(dir.path, "export");
    mkdirSync(join(src, "onnx"), { recursive: true });
    for (const f of ["config.json", "generation_config.json", "tokenizer.json"]) copyFileSync(join(MODELS, "llama-tensors", f), join(src, f));
    const data = (await openBundle(join(MODELS, "llama-tensors"))).files.filter((f) => !f.endsWith(".json"));
    for (const f of data) await copyFile(join(MODELS, "llama-tensors", f), join(src, "onnx", f));
    const bundle = await openBundle(src);
    assert.is(bundle.manifest.files.model, "onnx/model.onnx");
    const files = bundleFiles(bundle);
    assert.ok(files.length === data.length + 3 && files.every((f) => f.endsWith(".json") || f.startsWith("onnx/")));
    const blobs = new CopyingBlobStore();
    for (const f of files) await blobs.putFile(modelBlobName(bundle.hash, f), join(src, f));
    const cache = new ModelCache(blobs, join(dir.path, "cache"), { device: "cpu", threads: 1 });
    const { model, vocabSize } = await cache.get(bundle.hash, files);
    assert.is(vocabSize, 768);
    const { logprobs } = await model.scoreContinuations(null, { sequences: [Int32Array.from([5, 6, 7])] });
    assert.ok(Number.isFinite(logprobs[0]));
    await cache.dispose();
    // A file the object store lost: the fetch fails and nothing half-fetched is left to be trusted later.
    const partial = new CopyingBlobStore();
    for (const f of files.slice(1)) await partial.putFile(modelBlobName(bundle.hash, f), join(src, f));
    const err = await failure(new ModelCache(partial, join(dir.path, "cache2"), { device: "cpu" }).get(bundle.hash, files));
    assert.match(err.message, /cannot fetch model bundle/);
  } finally {
    dir.cleanup();
  }
});

test("a worker started with --device cuda where the CUDA provider is missing says so at once and exits", async () => {
  if (cudaProviderStatus().available) return; // a GPU node with the provider installed: nothing to refuse
  const worker = CliProcess.spawn("worker", ["worker", "--nats", "nats://127.0.0.1:1", "--device", "cuda"]);
  assert.is(await worker.wait(), 2, worker.log);
  assert.match(worker.log, /--device cuda: onnxruntime-node's CUDA provider is not installed: .*libonnxruntime_providers_cuda\.so/);
  assert.match(worker.log, /ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules\/onnxruntime-node\/script\/install\.js/);
  assert.not.match(worker.log, /worker ready|NATS/);
});

test.run();

