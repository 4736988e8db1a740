/**
 * Bytes moved between the host and the onnxruntime session, and CPU throughput, of the tile engine
 * with the prefix cache broadcast inside the graph ("after", the default preparation) against the
 * previous engine that copied the batch-1 cache batch times on the host ("before"), in one
 * invocation, on the same samples and tiles, alternating runs:
 *   - the tiny model (4 layers, 2 KV heads x 32, vocabulary 4,096) over a dense kernel of GSM8K samples;
 *   - an untrained 32,000-token export of the same architecture (bench/.cache, made with Python).
 * On CUDA every byte fed is a host-to-device copy and every byte fetched a device-to-host copy, so
 * these are the figures that matter on a GPU; on this CPU they are memory copies.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { DEFAULT_TEMPLATES, loadDataset, loadTokenizer, prepareCorpus, tokenizePrompts, type TextTokenizer } from "../../common/src/mod.js";
import { planDenseKernel, sampleKeys, tileWork } from "../../coordinator/src/mod.js";
import { loadOnnxCausalLm, TileEngine, type BatchLimits, type CausalLm } from "../../worker/src/mod.js";
import { findPython } from "../common/python.js";
import { ROOT } from "../common/paths.js";
import { fmt, row } from "../common/stats.js";

const N = Number(process.env.BENCH_SAMPLES ?? 24);
const THREADS = Number(process.env.BENCH_THREADS ?? cpus().length);
const ROUNDS = Number(process.env.BENCH_RUNS ?? 3);
const BATCH: BatchLimits = { maxBatch: 32, maxTokens: 8192 };
const SHARED = join(ROOT, "..", "shared", "data", "gsm8k-train-2k.jsonl");
const FIXTURE = join(ROOT, "test", "fixtures", "gsm8k-32.jsonl");

type Side = "before" | "after";
type Measure = { seconds: number; tokens: number; pairs: number; toSession: number; cacheToSession: number; fromSession: number; cacheFromSession: number; distances: Float32Array };

async function main(): Promise<void> {
  const data = existsSync(SHARED) ? SHARED : FIXTURE;
  console.log(`transfer: ${N} samples (${N * N} pairs + ${N} baselines), batches of up to ${BATCH.maxBatch}, ${THREADS} thread(s), ${ROUNDS} alternating rounds`);
  const results: Record<string, unknown> = {};
  results.tiny = await compare("tiny model (vocabulary 4,096)", join(ROOT, "models", "tiny", "model.onnx"), join(ROOT, "models", "tiny", "tokenizer.json"), data);
  const random = await randomModel();
  if (random) results.random32k = await compare("random model (vocabulary 32,000)", random, join(ROOT, "models", "tiny", "tokenizer.json"), data);
  console.log(JSON.stringify({ bench: "transfer", samples: N, threads: THREADS, ...results }));
}

async function compare(label: string, modelPath: string, tokenizerPath: string, data: string): Promise<Record<string, number>> {
  const tokenizer = await loadTokenizer(tokenizerPath);
  const models: Record<Side, CausalLm> = {
    before: await loadOnnxCausalLm(modelPath, { threads: THREADS, prepare: { broadcastPast: false } }),
    after: await loadOnnxCausalLm(modelPath, { threads: THREADS }),
  };
  // Paired at the tile level: each tile is computed by both engines back to back, in alternating
  // order, so that the load of a shared machine falls on both sides alike.
  const measures = await pairedRuns(models, tokenizer, data);
  const b = measures.before;
  const a = measures.after;
  let worst = 0;
  for (let k = 0; k < a.distances.length; k++) worst = Math.max(worst, Math.abs(a.distances[k] - b.distances[k]));
  const tokS = (side: Side) => measures[side].tokens / measures[side].seconds;
  const perBatch = { before: await cacheBytesPerBatch(models.before, tokenizer), after: await cacheBytesPerBatch(models.after, tokenizer) };
  for (const m of Object.values(models)) await m.dispose();

  const kb = (x: number) => `${(x / 1024).toFixed(1)} kB`;
  console.log(`\n  ${label}`);
  row("bytes to the session per pair, before", `${kb(b.toSession / b.pairs)} (KV cache ${kb(b.cacheToSession / b.pairs)})`);
  row("bytes to the session per pair, after", `${kb(a.toSession / a.pairs)} (KV cache ${kb(a.cacheToSession / a.pairs)})`);
  row("ratio before / after (all inputs)", `${fmt(b.toSession / a.toSession)}x`);
  row("ratio before / after (KV cache)", `${fmt(b.cacheToSession / a.cacheToSession)}x`);
  row("bytes from the session per pair, before / after", `${kb(b.fromSession / b.pairs)} / ${kb(a.fromSession / a.pairs)} (of it KV cache: ${kb(b.cacheFromSession / b.pairs)} / ${kb(a.cacheFromSession / a.pairs)})`);
  for (const [k, batch] of perBatch.before.batches.entries()) {
    row(`cache bytes into one continuation run, batch ${batch}`, `before ${kb(perBatch.before.bytes[k])}, after ${kb(perBatch.after.bytes[k])}`);
  }
  row(`tokens/s before (host copy), ${ROUNDS} rounds`, fmt(tokS("before"), 0));
  row(`tokens/s after (graph broadcast), ${ROUNDS} rounds`, fmt(tokS("after"), 0));
  row("tiles where after was faster", `${measures.afterFaster} of ${measures.pairs}`);
  row("tokens/s after / before (target >= 1 within noise)", fmt(tokS("after") / tokS("before"), 3));
  row("largest |distance difference| after vs before", worst.toExponential(2));
  return {
    bytesPerPairBefore: b.toSession / b.pairs,
    bytesPerPairAfter: a.toSession / a.pairs,
    cacheBytesPerPairBefore: b.cacheToSession / b.pairs,
    cacheBytesPerPairAfter: a.cacheToSession / a.pairs,
    fromSessionPerPairBefore: b.fromSession / b.pairs,
    fromSessionPerPairAfter: a.fromSession / a.pairs,
    tokensPerSecondBefore: tokS("before"),
    tokensPerSecondAfter: tokS("after"),
    maxDistanceDiff: worst,
  };
}

/** A dense kernel's tiles through both engines, tile by tile, with byte and token counters per side. */
async function pairedRuns(models: Record<Side, CausalLm>, tokenizer: TextTokenizer, data: string): Promise<Record<Side, Measure> & { afterFaster: number; pairs: number }> {
  const prompts = tokenizePrompts(DEFAULT_TEMPLATES, tokenizer, 0, 1024);
  const corpus = prepareCorpus(await loadDataset(data), tokenizer, prompts);
  const n = Math.min(N, corpus.tokens.count);
  const all = Uint32Array.from({ length: n }, (_, i) => i);
  const tiles = planDenseKernel({ settingsKey: "bench", sampleKeys: sampleKeys(corpus.tokens), targets: all, examples: all, shape: { columns: 1, rows: 256 } });
  const works = tiles.map((t) => tileWork(t, corpus.tokens));
  const sides: Side[] = ["before", "after"];
  const engines = { before: new TileEngine(models.before, prompts, BATCH), after: new TileEngine(models.after, prompts, BATCH) };
  const out = {} as Record<Side, Measure>;
  const start = { before: { ...models.before.stats }, after: { ...models.after.stats } };
  for (const side of sides) out[side] = { seconds: 0, tokens: 0, pairs: n * n, toSession: 0, cacheToSession: 0, fromSession: 0, cacheFromSession: 0, distances: new Float32Array(0) };
  const distances: Record<Side, number[]> = { before: [], after: [] };
  let afterFaster = 0;
  let pairs = 0;
  for (let r = 0; r < ROUNDS; r++) {
    for (const [k, w] of works.entries()) {
      const t: Record<Side, number> = { before: 0, after: 0 };
      for (const side of (k + r) % 2 === 0 ? sides : [...sides].reverse()) {
        const started = performance.now();
        const result = await engines[side].compute(w);
        t[side] = performance.now() - started;
        out[side].seconds += t[side] / 1000;
        if (r === 0) distances[side].push(...result.distances);
      }
      pairs++;
      if (t.after < t.before) afterFaster++;
    }
    if (r === 0) {
      // bytes of one pass over the kernel
      for (const side of sides) {
        const s = models[side].stats;
        const s0 = start[side];
        Object.assign(out[side], {
          toSession: s.bytesToSession - s0.bytesToSession,
          cacheToSession: s.cacheBytesToSession - s0.cacheBytesToSession,
          fromSession: s.bytesFromSession - s0.bytesFromSession,
          cacheFromSession: s.cacheBytesFromSession - s0.cacheBytesFromSession,
        });
      }
    }
  }
  for (const side of sides) {
    out[side].tokens = models[side].stats.paddedTokens - start[side].paddedTokens;
    out[side].distances = Float32Array.from(distances[side]);
  }
  return { ...out, afterFaster, pairs };
}

/** KV-cache bytes fed into one continuation run of a 200-token prefix, by batch size. */
async function cacheBytesPerBatch(model: CausalLm, tokenizer: TextTokenizer): Promise<{ batches: number[]; bytes: number[] }> {
  const prefix = await model.extend(null, Int32Array.from({ length: 200 }, (_, k) => tokenizer.encode(" the")[0] + (k % 7)));
  const batches = [1, 4, 16, 32];
  const bytes: number[] = [];
  for (const batch of batches) {
    const before = model.stats.cacheBytesToSession;
    await model.scoreContinuations(prefix, { sequences: Array.from({ length: batch }, () => Int32Array.from([5, 6, 7, 8])) });
    bytes.push(model.stats.cacheBytesToSession - before);
  }
  return { batches, bytes };
}

async function randomModel(): Promise<string | null> {
  const dir = join(ROOT, "bench", ".cache", "random-32000");
  const path = join(dir, "model.onnx");
  if (existsSync(path)) return path;
  const py = findPython();
  if ("missing" in py) {
    console.log(`  random 32k model: skipped: ${py.missing}`);
    return null;
  }
  const made = spawnSync(py.python, [join(ROOT, "models", "train_tiny.py"), "--random-vocab", "32000", "--out", dir], { cwd: ROOT, stdio: "inherit" });
  if (made.status !== 0) throw new Error("could not export the random-weight model");
  readFileSync(path);
  return path;
}

await main();
