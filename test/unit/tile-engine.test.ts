import { test } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  composeExamplePart,
  composeTargetPart,
  DEFAULT_TEMPLATES,
  loadTokenizer,
  sampleTokens,
  tokenizePrompts,
  tokenizeTexts,
  type TokenizedCorpus,
} from "../../common/src/mod.js";
import type { TileWork } from "../../common/src/tiles/types.js";
import { loadOnnxCausalLm, responseDistance, TileEngine, type CausalLm, type TileFed } from "../../worker/src/mod.js";
import { FIXTURES, TINY_MODEL } from "../helpers/paths.js";

const records = readFileSync(join(FIXTURES, "gsm8k-32.jsonl"), "utf8").split("\n").filter(Boolean).slice(0, 6).map((l) => JSON.parse(l));
const texts = records.map((r) => ({ x: r.input ? `${r.instruction}\n${r.input}` : r.instruction, y: r.output }));

let model: CausalLm;
let corpus: TokenizedCorpus;
const tokenizer = await loadTokenizer(join(TINY_MODEL, "tokenizer.json"));

test.before(async () => {
  model = await loadOnnxCausalLm(join(TINY_MODEL, "model.onnx"), { threads: 2 });
  corpus = tokenizeTexts(texts, tokenizer);
});
test.after(async () => model.dispose());

/** d for one whole prompt run from position 0, no cache, no batching: the definition, literally. */
async function direct(ids: Int32Array, responseStart: number, maxLength: number): Promise<number> {
  const drop = Math.max(0, ids.length - maxLength);
  const seq = ids.subarray(drop);
  const { logprobs } = await model.scoreContinuations(null, { sequences: [seq] });
  return responseDistance(logprobs, responseStart - drop - 1, seq.length - (responseStart - drop));
}

function pairWork(): TileWork {
  const rows = Uint32Array.from({ length: corpus.count }, (_, i) => i);
  return { kind: "pairs", samples: corpus, columns: Array.from({ length: corpus.count }, (_, j) => ({ example: j, rows })) };
}

async function expectMatchesDirect(maxLength: number): Promise<number> {
  const prompts = tokenizePrompts(DEFAULT_TEMPLATES, tokenizer, 0, maxLength);
  const engine = new TileEngine(model, prompts, { maxBatch: 4, maxTokens: 4096 });
  const out = await engine.compute(pairWork());
  let k = 0;
  let truncated = 0;
  for (let j = 0; j < corpus.count; j++) {
    const prefix = [...prompts.example.header, ...composeExamplePart(prompts.example, sampleTokens(corpus, j))];
    for (let i = 0; i < corpus.count; i++) {
      const part = composeTargetPart(prompts.example, sampleTokens(corpus, i));
      const ids = Int32Array.from([...prefix, ...part.ids]);
      if (ids.length > maxLength) truncated++;
      const expected = await direct(ids, prefix.length + part.responseStart, maxLength);
      assert.ok(Math.abs(out.distances[k] - expected) < 2e-5, `pair (${i}, ${j}): ${out.distances[k]} vs ${expected}`);
      k++;
    }
  }
  assert.is(out.truncated, truncated);
  return truncated;
}

test("cached prefixes and batched continuations give the distances of whole prompts", async () => {
  assert.is(await expectMatchesDirect(1024), 0);
});

test("the tokens a tile feeds (engine counters) are the prompts' tokens, and what the model counted", async () => {
  const prompts = tokenizePrompts(DEFAULT_TEMPLATES, tokenizer, 0, 1024);
  const engine = new TileEngine(model, prompts, { maxBatch: 4, maxTokens: 4096 });
  const before = { ...model.stats };
  let fed: TileFed | null = null;
  await engine.compute(pairWork(), { onFed: (f) => (fed = f) });
  // Independently: the header once, each example part once, every target continuation.
  let expected = prompts.example.header.length;
  for (let j = 0; j < corpus.count; j++) {
    expected += composeExamplePart(prompts.example, sampleTokens(corpus, j)).length;
    for (let i = 0; i < corpus.count; i++) expected += composeTargetPart(prompts.example, sampleTokens(corpus, i)).ids.length;
  }
  assert.ok(fed);
  const f = fed as TileFed;
  assert.is(f.tokens, expected);
  assert.is(f.prompts, corpus.count * corpus.count);
  assert.equal({ tokens: f.tokens, paddedTokens: f.paddedTokens, runs: f.runs }, { tokens: model.stats.tokens - before.tokens, paddedTokens: model.stats.paddedTokens - before.paddedTokens, runs: model.stats.runs - before.runs });
});

test("left truncation: long prompts are cut from the left, never inside the response", async () => {
  // Short enough to cut many example prompts, long enough for every response (+ EOS) and some context.
  let longest = 0;
  for (let i = 0; i < corpus.count; i++) longest = Math.max(longest, sampleTokens(corpus, i).y.length);
  const truncated = await expectMatchesDirect(longest + 60);
  assert.ok(truncated > 5 && truncated < 36, `${truncated} of 36 prompts truncated`);
});

test("batch limits change the runs, not the results", async () => {
  const prompts = tokenizePrompts(DEFAULT_TEMPLATES, tokenizer, 0, 1024);
  const a = await new TileEngine(model, prompts, { maxBatch: 1, maxTokens: 100_000 }).compute(pairWork());
  const b = await new TileEngine(model, prompts, { maxBatch: 64, maxTokens: 100_000, runCostTokens: 1e6 }).compute(pairWork());
  for (let k = 0; k < a.distances.length; k++) assert.ok(Math.abs(a.distances[k] - b.distances[k]) < 2e-5);
});

test("baseline tiles score P0 of each target", async () => {
  const prompts = tokenizePrompts(DEFAULT_TEMPLATES, tokenizer, 0, 1024);
  const engine = new TileEngine(model, prompts, { maxBatch: 8, maxTokens: 8192 });
  const out = await engine.compute({ kind: "baseline", samples: corpus, targets: Uint32Array.from([2, 0, 5]) });
  for (const [k, i] of [2, 0, 5].entries()) {
    const part = composeTargetPart(prompts.baseline, sampleTokens(corpus, i));
    const ids = Int32Array.from([...prompts.baseline.header, ...part.ids]);
    const expected = await direct(ids, prompts.baseline.header.length + part.responseStart, 1024);
    assert.ok(Math.abs(out.distances[k] - expected) < 2e-5);
  }
});

test("an aborted tile stops between model runs", async () => {
  const prompts = tokenizePrompts(DEFAULT_TEMPLATES, tokenizer, 0, 1024);
  const engine = new TileEngine(model, prompts, { maxBatch: 1, maxTokens: 4096 });
  const controller = new AbortController();
  let runs = 0;
  const err = await engine
    .compute(pairWork(), { signal: controller.signal, onScored: () => ++runs === 3 && controller.abort() })
    .catch((e) => e);
  assert.is((err as Error).name, "AbortedError");
  assert.is(runs, 3);
});

test.run();
