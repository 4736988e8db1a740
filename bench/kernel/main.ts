/**
 * Kernel throughput, in one invocation on the same model and samples (64 samples, 4,096 pairs):
 *  1. delift's tile engine (prefix KV cache per example, batched continuations, prepared graph)
 *     against the independent Python reference run the way the original DELIFT code runs it
 *     (transformers, whole prompt per pair, no cache, padded batches of 32): pairs/s and ratio;
 *  2. delift's tokens/s against onnxruntime's raw forward throughput on the very same run shapes
 *     (every run the engine made, replayed on a bare session with ready-made inputs).
 * Both sides use the same cores (--threads, default: all). Model loading is outside every timing.
 */
import * as ort from "onnxruntime-node";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { DEFAULT_TEMPLATES, loadDataset, loadTokenizer, openBundle, prepareCorpus, tokenizePrompts } from "../../common/src/mod.js";
import { planDenseKernel, sampleKeys, tileWork } from "../../coordinator/src/mod.js";
import { loadOnnxCausalLm, prepareModelGraph, TileEngine, type BatchLimits } from "../../worker/src/mod.js";
import { tempDir } from "../../test/helpers/paths.js";
import { findPython } from "../common/python.js";
import { ROOT } from "../common/paths.js";
import { fmt, row } from "../common/stats.js";
import { RecordingModel, type RecordedRun } from "./recording-model.js";

const N = Number(process.env.BENCH_SAMPLES ?? 64);
const THREADS = Number(process.env.BENCH_THREADS ?? cpus().length);
const MODEL = join(ROOT, "models", "tiny");
const SHARED = join(ROOT, "..", "shared", "data", "gsm8k-train-2k.jsonl");
const FIXTURE = join(ROOT, "test", "fixtures", "gsm8k-32.jsonl");
const BATCH: BatchLimits = { maxBatch: 32, maxTokens: 8192 };

async function main(): Promise<void> {
  const dir = tempDir("delift-bench-kernel-");
  try {
    const source = existsSync(SHARED) ? SHARED : FIXTURE;
    const lines = readFileSync(source, "utf8").split("\n").filter(Boolean).slice(0, N);
    const n = lines.length;
    const data = join(dir.path, "data.jsonl");
    writeFileSync(data, lines.join("\n") + "\n");
    console.log(`kernel: ${n} samples of ${source === SHARED ? "shared/data/gsm8k-train-2k.jsonl" : "test/fixtures/gsm8k-32.jsonl"} (${n * n} pairs + ${n} baselines), tiny model, ${THREADS} thread(s)`);

    const engine = await runEngine(data);
    const enginePairs = (n * n) / engine.seconds;
    row("delift engine", `${fmt(engine.seconds, 1)} s, ${fmt(enginePairs, 1)} pairs/s, ${fmt(engine.tokens / engine.seconds, 0)} tokens/s`);

    const raw = await replay(engine.runs);
    row("onnxruntime raw forward, same shapes", `${fmt(raw.seconds, 1)} s, ${fmt(engine.tokens / raw.seconds, 0)} tokens/s`);
    row("delift tokens/s / raw onnxruntime (target >= 0.8)", fmt(raw.seconds / engine.seconds, 3));

    const py = findPython();
    let reference: { pairsPerSecond: number; seconds: number } | null = null;
    if ("missing" in py) {
      row("reference", `skipped: ${py.missing}`);
    } else {
      const r = spawnSync(py.python, [join(ROOT, "bench", "reference", "delift_reference.py"), "--bench", "--data", data, "--n", String(n), "--max-len", "1024", "--threads", String(THREADS)], {
        cwd: ROOT,
        encoding: "utf8",
        maxBuffer: 1 << 24,
      });
      if (r.status !== 0) throw new Error(`reference failed:\n${r.stderr}`);
      reference = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as { pairsPerSecond: number; seconds: number };
      row("Python reference (transformers, no cache, batch 32)", `${fmt(reference.seconds, 1)} s, ${fmt(reference.pairsPerSecond, 1)} pairs/s`);
      row("delift pairs/s / reference (target >= 4)", fmt(enginePairs / reference.pairsPerSecond, 2));
    }
    console.log(
      JSON.stringify({
        bench: "kernel",
        samples: n,
        threads: THREADS,
        deliftPairsPerSecond: enginePairs,
        referencePairsPerSecond: reference?.pairsPerSecond ?? null,
        speedup: reference ? enginePairs / reference.pairsPerSecond : null,
        tokensPerSecond: engine.tokens / engine.seconds,
        rawTokensPerSecond: engine.tokens / raw.seconds,
        rawRatio: raw.seconds / engine.seconds,
      }),
    );
  } finally {
    dir.cleanup();
  }
}

/** The engine over the dense kernel's tiles, as a worker computes them (model load not timed). */
async function runEngine(data: string): Promise<{ seconds: number; tokens: number; runs: RecordedRun[] }> {
  const bundle = await openBundle(MODEL);
  const tokenizer = await loadTokenizer(bundle.tokenizerPath);
  const prompts = tokenizePrompts(DEFAULT_TEMPLATES, tokenizer, bundle.manifest.eosId, bundle.manifest.maxLength);
  const corpus = prepareCorpus(await loadDataset(data), tokenizer, prompts);
  const all = Uint32Array.from({ length: corpus.tokens.count }, (_, i) => i);
  const tiles = planDenseKernel({ settingsKey: "bench", sampleKeys: sampleKeys(corpus.tokens), targets: all, examples: all });
  const model = new RecordingModel(await loadOnnxCausalLm(bundle.modelPath, { threads: THREADS }));
  const engine = new TileEngine(model, prompts, BATCH);
  const works = tiles.map((t) => tileWork(t, corpus.tokens));
  const started = performance.now();
  for (const w of works) await engine.compute(w);
  const seconds = (performance.now() - started) / 1000;
  const tokens = model.stats.paddedTokens;
  await model.dispose();
  return { seconds, tokens, runs: model.runs };
}

/** Every recorded run again on a bare session, inputs built outside the timing. */
async function replay(runs: RecordedRun[]): Promise<{ seconds: number }> {
  const session = await ort.InferenceSession.create(prepareModelGraph(readFileSync(join(MODEL, "model.onnx"))), {
    graphOptimizationLevel: "all",
    executionProviders: ["cpu"],
    intraOpNumThreads: THREADS,
  });
  const pastNames = session.inputNames.filter((n) => n.startsWith("past_key_values."));
  const presentNames = session.outputNames.filter((n) => n.startsWith("present."));
  const meta = session.inputMetadata.find((m) => m.name === pastNames[0]) as unknown as { shape: readonly number[] };
  const heads = meta.shape[1];
  const dim = meta.shape[3];
  let total = 0;
  for (const r of runs) {
    const cells = r.batch * r.width;
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor("int64", new BigInt64Array(cells).fill(7n), [r.batch, r.width]),
      target_ids: new ort.Tensor("int64", new BigInt64Array(cells).fill(9n), [r.batch, r.width]),
      position_ids: new ort.Tensor("int64", BigInt64Array.from({ length: cells }, (_, k) => BigInt(r.past + (k % r.width))), [r.batch, r.width]),
      attention_mask: new ort.Tensor("int64", new BigInt64Array(r.batch * (r.past + r.width)).fill(1n), [r.batch, r.past + r.width]),
    };
    for (const name of pastNames) {
      feeds[name] = new ort.Tensor("float32", new Float32Array(r.batch * heads * r.past * dim).fill(0.01), [r.batch, heads, r.past, dim]);
    }
    const fetches = r.kind === "extend" ? presentNames : ["target_logprobs"];
    const t = performance.now();
    await session.run(feeds, fetches);
    total += performance.now() - t;
  }
  await session.release();
  return { seconds: total / 1000 };
}

await main();
