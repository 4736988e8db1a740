import { test } from "uvu";
import * as assert from "uvu/assert";
import * as ort from "onnxruntime-node";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { checkDevice, cudaProviderStatus, isWorkerHealthError, sessionOptionsFor, WorkerHealthError } from "../../common/src/mod.js";
import { inspectModel, prepareModelGraph } from "../../worker/src/mod.js";
import { FIXTURES, TINY_MODEL } from "../helpers/paths.js";

const raw = readFileSync(join(TINY_MODEL, "model.onnx"));

function feeds(batch: number, seq: number, layers: number, kvHeads: number, headDim: number, ids: bigint[]): Record<string, ort.Tensor> {
  const f: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor("int64", BigInt64Array.from(ids), [batch, seq]),
    attention_mask: new ort.Tensor("int64", new BigInt64Array(batch * seq).fill(1n), [batch, seq]),
    position_ids: new ort.Tensor("int64", BigInt64Array.from({ length: batch * seq }, (_, k) => BigInt(k % seq)), [batch, seq]),
  };
  for (let l = 0; l < layers; l++) {
    for (const kv of ["key", "value"]) f[`past_key_values.${l}.${kv}`] = new ort.Tensor("float32", new Float32Array(0), [batch, kvHeads, 0, headDim]);
  }
  return f;
}

test("the tiny export is an unprepared optimum-style decoder", () => {
  const facts = inspectModel(raw);
  assert.not.ok(facts.prepared);
  assert.ok(facts.opset >= 13);
  assert.ok(facts.outputs.includes("logits"));
  assert.ok(facts.inputs.includes("past_key_values.0.key"));
  assert.not.ok(facts.usesExternalData);
});

test("prepare swaps logits for target log-probabilities; the values are log_softmax(logits)[target]", async () => {
  const prepared = prepareModelGraph(raw);
  const facts = inspectModel(prepared);
  assert.ok(facts.prepared);
  assert.not.ok(facts.outputs.includes("logits"));
  assert.ok(facts.inputs.includes("target_ids"));
  // Weights are copied, not re-encoded: the file grows by the few new nodes only.
  assert.ok(prepared.length - raw.length > 0 && prepared.length - raw.length < 2048, `grew by ${prepared.length - raw.length} bytes`);
  assert.is(prepareModelGraph(prepared), prepared, "preparing twice changes nothing");

  const a = await ort.InferenceSession.create(raw);
  const b = await ort.InferenceSession.create(prepared);
  const seq = 7;
  const ids = [5n, 17n, 300n, 42n, 1000n, 7n, 99n, 11n, 12n, 13n, 14n, 15n, 16n, 17n];
  const targets = [17n, 300n, 42n, 1000n, 7n, 99n, 0n, 12n, 13n, 14n, 15n, 16n, 17n, 18n];
  const base = feeds(2, seq, 4, 2, 32, ids);
  const logits = (await a.run(base)).logits;
  const out = (await b.run({ ...base, target_ids: new ort.Tensor("int64", BigInt64Array.from(targets), [2, seq]) })).target_logprobs;
  assert.equal(out.dims, [2, seq]);
  const vocab = logits.dims[2];
  const l = logits.data as Float32Array;
  const got = out.data as Float32Array;
  for (let p = 0; p < 2 * seq; p++) {
    let max = -Infinity;
    for (let v = 0; v < vocab; v++) max = Math.max(max, l[p * vocab + v]);
    let sum = 0;
    for (let v = 0; v < vocab; v++) sum += Math.exp(l[p * vocab + v] - max);
    const expected = l[p * vocab + Number(targets[p])] - max - Math.log(sum);
    assert.ok(Math.abs(got[p] - expected) < 1e-4, `position ${p}: ${got[p]} vs ${expected}`);
  }
  await a.release();
  await b.release();
});

test("a merged decoder keeps only its cache branch; every step is done once; past inputs get a batch dimension of their own", () => {
  const merged = readFileSync(join(FIXTURES, "models", "qwen2-merged", "decoder_model_merged.onnx"));
  const before = inspectModel(merged);
  assert.ok(before.mergedDecoder && !before.prepared);
  const prepared = prepareModelGraph(merged);
  const after = inspectModel(prepared);
  assert.ok(after.prepared && after.broadcastsPast && after.scoresTargets);
  assert.not.ok(after.inputs.includes("use_cache_branch"));
  assert.ok(prepared.length < merged.length, "the no-cache branch is gone");
  assert.is(prepareModelGraph(prepared), prepared, "preparing twice changes nothing");
  const hostCopy = prepareModelGraph(merged, { broadcastPast: false });
  assert.not.ok(inspectModel(hostCopy).broadcastsPast);
  assert.ok(inspectModel(prepareModelGraph(hostCopy)).broadcastsPast, "an older preparation is completed");
});

test("bytes that are not an ONNX model are refused with a clear error", () => {
  assert.throws(() => prepareModelGraph(new TextEncoder().encode("this is not a protobuf")), /protobuf|ONNX|graph|wire/i);
});

test("--device cuda: used when the CUDA provider is installed, otherwise a WorkerHealthError that says how to install it", async () => {
  const status = cudaProviderStatus();
  if (status.available) {
    const options = await sessionOptionsFor("cuda");
    assert.equal(options.executionProviders, ["cuda", "cpu"]);
  } else {
    // onnxruntime-node lists "cuda" even without its provider libraries: the files are what is checked.
    const err = await sessionOptionsFor("cuda").catch((e) => e);
    assert.instance(err, WorkerHealthError);
    assert.ok(isWorkerHealthError(err));
    assert.match(err.message, /CUDA provider is not installed|no CUDA execution provider/);
    assert.match(err.message, /ONNXRUNTIME_NODE_INSTALL=cuda12|Linux x64/);
    assert.match(err.message, /--device cpu/);
    assert.throws(() => checkDevice("cuda"), (e: Error) => isWorkerHealthError(e));
  }
  checkDevice("cpu");
  assert.equal((await sessionOptionsFor("cpu")).executionProviders, ["cpu"]);
});

test.run();
