import { test } from "uvu";
import * as assert from "uvu/assert";
import { cpSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readKernel } from "../../common/src/kernel/kernel-files.js";
import { CliProcess } from "../helpers/cluster.js";
import { FIXTURES, tempDir } from "../helpers/paths.js";

/**
 * Two exports that differ only in their external data file (the same model.onnx, config and
 * tokenizer) are two models: through the real CLI and one shared tile store, the second never
 * gets the first one's tiles, and a kernel of one is refused as a kernel of the other.
 */
const dir = tempDir("delift-identity-");
test.after(() => dir.cleanup());

async function delift(args: string[]): Promise<{ code: number | null; log: string }> {
  const p = CliProcess.spawn("delift", args);
  const code = await p.wait();
  return { code, log: p.log };
}

function tilesLine(log: string): { computed: number; reused: number } {
  const m = /\((\d+) tiles? computed, (\d+) reused from the tile store\)/.exec(log);
  assert.ok(m, `no tile summary in:\n${log}`);
  return { computed: Number(m![1]), reused: Number(m![2]) };
}

test("bundles that differ only in external data never share a tile, and --kernel refuses the other model's kernel", async () => {
  const data = join(dir.path, "data.jsonl");
  writeFileSync(data, readFileSync(join(FIXTURES, "gsm8k-32.jsonl"), "utf8").split("\n").slice(0, 4).join("\n") + "\n");
  const a = join(dir.path, "a");
  const b = join(dir.path, "b");
  cpSync(join(FIXTURES, "models", "llama"), a, { recursive: true });
  cpSync(join(FIXTURES, "models", "llama"), b, { recursive: true });
  const weights = readFileSync(join(b, "model.onnx_data"));
  const floats = new Float32Array(weights.buffer, weights.byteOffset, Math.floor(weights.length / 4));
  for (let k = 0; k < floats.length; k += 7) floats[k] *= 1.5; // other weights, same names, same sizes
  writeFileSync(join(b, "model.onnx_data"), weights);
  const store = join(dir.path, "tiles");

  const runA = await delift(["kernel", "--data", data, "--model", a, "--out", join(dir.path, "ka"), "--store", store]);
  assert.is(runA.code, 0, runA.log);
  assert.is(tilesLine(runA.log).reused, 0);
  const runB = await delift(["kernel", "--data", data, "--model", b, "--out", join(dir.path, "kb"), "--store", store]);
  assert.is(runB.code, 0, runB.log);
  const tilesB = tilesLine(runB.log);
  assert.is(tilesB.reused, 0, "no tile of model A is reused for model B");
  assert.ok(tilesB.computed > 0);
  const again = await delift(["kernel", "--data", data, "--model", a, "--out", join(dir.path, "ka2"), "--store", store]);
  assert.equal(tilesLine(again.log), { computed: 0, reused: tilesB.computed }, "the store does reuse tiles of the same model");

  const ka = await readKernel(join(dir.path, "ka"));
  const kb = await readKernel(join(dir.path, "kb"));
  assert.is.not(ka.metadata.modelHash, kb.metadata.modelHash);
  let diff = 0;
  for (let k = 0; k < ka.csc.values.length; k++) diff = Math.max(diff, Math.abs(ka.csc.values[k] - kb.csc.values[k]));
  assert.ok(diff > 1e-4, `the two models' kernels differ (largest difference ${diff})`);

  const reuse = await delift(["select", "--data", data, "--model", b, "--kernel", join(dir.path, "ka"), "--budget", "2", "--out", join(dir.path, "sel")]);
  assert.is(reuse.code, 2, reuse.log);
  assert.match(reuse.log, /kernel was computed with another model/);
});

test.run();
