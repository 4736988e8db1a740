/**
 * What `delift model prepare` saves on a model with a real vocabulary (32,000 tokens; an untrained
 * export of the tiny architecture). Same inputs, same invocation, alternating runs:
 *   raw      - the export as is: logits [batch, seq, vocab] come back to the host, and the
 *              log-probability of each target token is computed in JavaScript (log-sum-exp per position);
 *   prepared - log-softmax and the target gather run inside onnxruntime: [batch, seq] comes back.
 * Prints bytes to the host per run and time per run, and their ratios.
 */
import * as ort from "onnxruntime-node";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { prepareModelGraph } from "../../worker/src/mod.js";
import { findPython } from "../common/python.js";
import { fmt, median, row } from "../common/stats.js";
import { ROOT } from "../common/paths.js";

const VOCAB = Number(process.env.BENCH_VOCAB ?? 32000);
const BATCH = 8;
const SEQ = 256;
const RUNS = Number(process.env.BENCH_RUNS ?? 5);

async function main(): Promise<void> {
  const dir = join(ROOT, "bench", ".cache", `random-${VOCAB}`);
  if (!existsSync(join(dir, "model.onnx"))) {
    const py = findPython();
    if ("missing" in py) {
      console.log(`prepare: skipped: needs a ${VOCAB}-token export, made with Python: ${py.missing}`);
      return;
    }
    const made = spawnSync(py.python, [join(ROOT, "models", "train_tiny.py"), "--random-vocab", String(VOCAB), "--out", dir], { cwd: ROOT, stdio: "inherit" });
    if (made.status !== 0) throw new Error("could not export the random-weight model");
  }
  const raw = readFileSync(join(dir, "model.onnx"));
  const prepared = prepareModelGraph(raw);
  const options: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: "all", executionProviders: ["cpu"] };
  const a = await ort.InferenceSession.create(raw, options);
  const b = await ort.InferenceSession.create(prepared, options);
  const meta = a.inputMetadata.find((m) => m.name === "past_key_values.0.key")!;
  const [, heads, , dim] = (meta as unknown as { shape: readonly number[] }).shape;
  const layers = a.inputNames.filter((n) => n.endsWith(".key")).length;
  const ids = BigInt64Array.from({ length: BATCH * SEQ }, (_, k) => BigInt((k * 7919) % 4000));
  const targets = BigInt64Array.from({ length: BATCH * SEQ }, (_, k) => BigInt((k * 104729) % VOCAB));
  const feeds: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor("int64", ids, [BATCH, SEQ]),
    attention_mask: new ort.Tensor("int64", new BigInt64Array(BATCH * SEQ).fill(1n), [BATCH, SEQ]),
    position_ids: new ort.Tensor("int64", BigInt64Array.from({ length: BATCH * SEQ }, (_, k) => BigInt(k % SEQ)), [BATCH, SEQ]),
  };
  for (let l = 0; l < layers; l++) for (const kv of ["key", "value"]) feeds[`past_key_values.${l}.${kv}`] = new ort.Tensor("float32", new Float32Array(0), [BATCH, heads, 0, dim]);
  const withTargets = { ...feeds, target_ids: new ort.Tensor("int64", targets, [BATCH, SEQ]) };

  const rawRun = async () => {
    const logits = (await a.run(feeds, ["logits"])).logits.data as Float32Array;
    const out = new Float32Array(BATCH * SEQ);
    for (let p = 0; p < BATCH * SEQ; p++) {
      let max = -Infinity;
      const base = p * VOCAB;
      for (let v = 0; v < VOCAB; v++) if (logits[base + v] > max) max = logits[base + v];
      let sum = 0;
      for (let v = 0; v < VOCAB; v++) sum += Math.exp(logits[base + v] - max);
      out[p] = logits[base + Number(targets[p])] - max - Math.log(sum);
    }
    return { out, bytes: logits.byteLength };
  };
  const preparedRun = async () => {
    const out = (await b.run(withTargets, ["target_logprobs"])).target_logprobs.data as Float32Array;
    return { out, bytes: out.byteLength };
  };
  const check = [await rawRun(), await preparedRun()];
  let worst = 0;
  for (let p = 0; p < check[0].out.length; p++) worst = Math.max(worst, Math.abs(check[0].out[p] - check[1].out[p]));
  const tRaw: number[] = [];
  const tPrep: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    let t = performance.now();
    await rawRun();
    tRaw.push(performance.now() - t);
    t = performance.now();
    await preparedRun();
    tPrep.push(performance.now() - t);
  }
  console.log(`prepare: vocabulary ${VOCAB}, batch ${BATCH} x ${SEQ} tokens, ${RUNS} runs each (alternating), medians`);
  row("bytes to the host per run, raw logits", `${(check[0].bytes / 1e6).toFixed(1)} MB`);
  row("bytes to the host per run, prepared", `${(check[1].bytes / 1e3).toFixed(1)} kB`);
  row("bytes ratio raw / prepared", `${fmt(check[0].bytes / check[1].bytes, 0)}x (= vocabulary size)`);
  row("time per run, raw (session + JS log-softmax)", `${fmt(median(tRaw), 1)} ms`);
  row("time per run, prepared", `${fmt(median(tPrep), 1)} ms`);
  row("time ratio raw / prepared", `${fmt(median(tRaw) / median(tPrep))}x`);
  row("largest |difference| of the log-probabilities", worst.toExponential(2));
  console.log(JSON.stringify({ bench: "prepare", vocab: VOCAB, bytesRatio: check[0].bytes / check[1].bytes, timeRatio: median(tRaw) / median(tPrep), rawMs: median(tRaw), preparedMs: median(tPrep), maxDiff: worst }));
  await a.release();
  await b.release();
}

await main();
