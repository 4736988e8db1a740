import { test } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadTokenizer, openBundle } from "../../common/src/mod.js";
import { readKernel } from "../../common/src/kernel/kernel-files.js";
import { parseJobSpec } from "../../coordinator/src/jobs/job-spec.js";
import { runEmbeddedJob } from "../../cli/src/embedded/run-embedded-job.js";
import { inspectModel, loadOnnxCausalLm, type CausalLm } from "../../worker/src/mod.js";
import { widenBfloat16 } from "../../worker/src/model/widen-bfloat16.js";
import { FIXTURES, tempDir } from "../helpers/paths.js";

/**
 * The users' models: tiny seeded exports of Qwen2, Llama, Phi-3 and GPT-2 in the shapes optimum
 * writes (models/make_fixtures.py), opened as plain export directories, scored by the embedded
 * default and compared with bench/reference's PyTorch kernels (whole prompt, no cache).
 */
type Fixture = { name: string; family: string; dir: string; dtype: string; shape: string; eosId: number; reference: string; tokenizerParity: string };
type Reference = { ids: string[]; maxLength: number; eosId: number; d0: number[]; d1: number[][]; uf: number[][]; truncated: number };

const MODELS = join(FIXTURES, "models");
const index = JSON.parse(readFileSync(join(MODELS, "fixtures.json"), "utf8")) as { fixtures: Fixture[] };
/**
 * float32 exports against PyTorch float32; float16 exports (weights and cache in float16) against the
 * same float32 reference; bfloat16 exports (widened to float32 for the CPU provider) against PyTorch
 * float32 on the bfloat16-rounded weights.
 */
const TOLERANCE: Record<string, number> = { float32: 1e-4, float16: 5e-4, bfloat16: 1e-4 };
const worst: Record<string, number> = {};

for (const fixture of index.fixtures) {
  test(`${fixture.name} (${fixture.shape}, ${fixture.dtype}) matches the PyTorch reference kernel`, async () => {
    const ref = JSON.parse(readFileSync(join(MODELS, fixture.reference), "utf8")) as Reference;
    const n = ref.ids.length;
    const dir = tempDir();
    try {
      const data = join(dir.path, "data.jsonl");
      writeFileSync(data, readFileSync(join(FIXTURES, "gsm8k-32.jsonl"), "utf8").split("\n").slice(0, n).join("\n") + "\n");
      const model = join(MODELS, fixture.dir);
      const bundle = await openBundle(model);
      assert.is(bundle.source, "export");
      assert.is(bundle.manifest.eosId, ref.eosId, "eos from the export's config");
      const spec = parseJobSpec({ kind: "kernel", data, model, scoring: { maxLength: ref.maxLength } }, "test");
      const out = join(dir.path, "kernel");
      const outcome = await runEmbeddedJob(spec, { out, storeDir: join(dir.path, "tiles"), device: "cpu", threads: 2 });
      assert.is(outcome.status.state, "done", outcome.status.error);
      const k = await readKernel(out);
      assert.equal(k.metadata.rowIds, ref.ids);
      assert.is(k.metadata.truncated.pairs + k.metadata.truncated.baseline, ref.truncated, "truncation count");
      let diff = 0;
      for (let i = 0; i < n; i++) diff = Math.max(diff, Math.abs(k.baseline[i] - ref.d0[i]));
      const { colPtr, rowIdx, values } = k.csc;
      for (let j = 0; j < n; j++) {
        for (let p = colPtr[j]; p < colPtr[j + 1]; p++) {
          const i = rowIdx[p];
          diff = Math.max(diff, Math.abs(values[p] - ref.uf[i][j]), Math.abs(k.baseline[i] - values[p] - ref.d1[i][j]));
        }
      }
      worst[fixture.name] = diff;
      const tolerance = TOLERANCE[fixture.dtype];
      assert.ok(diff <= tolerance, `largest difference ${diff} (tolerance ${tolerance})`);
    } finally {
      dir.cleanup();
    }
  });
}

for (const family of [...new Set(index.fixtures.map((f) => f.family))]) {
  const fixture = index.fixtures.find((f) => f.family === family)!;
  test(`${family} tokenizer encodes exactly as Python tokenizers (GSM8K and non-ASCII text)`, async () => {
    const tokenizer = await loadTokenizer(join(MODELS, fixture.dir, "tokenizer.json"));
    const lines = readFileSync(join(MODELS, fixture.tokenizerParity), "utf8").split("\n").filter(Boolean);
    assert.ok(lines.length >= 40);
    for (const line of lines) {
      const { text, ids } = JSON.parse(line) as { text: string; ids: number[] };
      assert.equal(tokenizer.encode(text), ids, `text: ${JSON.stringify(text).slice(0, 80)}`);
    }
  });
}

test("a bfloat16 export runs on the CPU provider widened to float32: no bfloat16 left in the graph, a float32 cache", async () => {
  const bf16 = index.fixtures.find((f) => f.dtype === "bfloat16");
  assert.ok(bf16, "the fixtures include a bfloat16 export");
  const bundle = await openBundle(join(MODELS, bf16!.dir));
  const raw = readFileSync(bundle.modelPath);
  assert.ok(inspectModel(raw).usesBfloat16);
  const widened = widenBfloat16(raw, () => {
    throw new Error("no external data here");
  });
  assert.not.ok(inspectModel(widened).usesBfloat16);
  const model = (await loadOnnxCausalLm(bundle.modelPath, { device: "cpu", threads: 1 })) as CausalLm & { kvType: string };
  assert.is(model.kvType, "float32");
  await model.dispose();
});

test.after(() => {
  process.stderr.write(`  largest |difference| per fixture: ${JSON.stringify(worst)}\n`);
});

test.run();
