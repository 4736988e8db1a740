import { test } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readKernel } from "../../common/src/kernel/kernel-files.js";
import { parseJobSpec } from "../../coordinator/src/jobs/job-spec.js";
import { runEmbeddedJob } from "../../cli/src/embedded/run-embedded-job.js";
import { FIXTURES, TINY_MODEL, tempDir } from "../helpers/paths.js";

/**
 * delift's kernel against bench/reference/delift_reference.py: plain transformers over the PyTorch
 * checkpoint, whole prompt per pair, no KV cache, padded batches of 32 (the original code's way).
 */
type Reference = { ids: string[]; maxLength: number; d0: number[]; d1: number[][]; uf: number[][]; truncated: number };

const TOLERANCE = 1e-4;

async function compare(fixture: string, samples: number): Promise<void> {
  const ref = JSON.parse(readFileSync(join(FIXTURES, fixture), "utf8")) as Reference;
  const n = ref.ids.length;
  assert.is(n, samples);
  const dir = tempDir();
  try {
    const data = join(dir.path, "data.jsonl");
    writeFileSync(data, readFileSync(join(FIXTURES, "gsm8k-32.jsonl"), "utf8").split("\n").slice(0, n).join("\n") + "\n");
    const spec = parseJobSpec({ kind: "kernel", data, model: TINY_MODEL, scoring: { maxLength: ref.maxLength } }, "test");
    const out = join(dir.path, "kernel");
    const outcome = await runEmbeddedJob(spec, { out, storeDir: join(dir.path, "tiles"), device: "cpu" });
    assert.is(outcome.status.state, "done", outcome.status.error);
    const k = await readKernel(out);
    assert.equal(k.metadata.rowIds, ref.ids);
    assert.is(k.metadata.truncated.pairs + k.metadata.truncated.baseline, ref.truncated, "truncation count");
    let worst = 0;
    let entries = 0;
    for (let i = 0; i < n; i++) {
      worst = Math.max(worst, Math.abs(k.baseline[i] - ref.d0[i]));
      entries++;
    }
    const { colPtr, rowIdx, values } = k.csc;
    for (let j = 0; j < n; j++) {
      assert.is(colPtr[j + 1] - colPtr[j], n, "dense column");
      for (let p = colPtr[j]; p < colPtr[j + 1]; p++) {
        const i = rowIdx[p];
        const uf = values[p];
        const d1 = k.baseline[i] - uf;
        worst = Math.max(worst, Math.abs(uf - ref.uf[i][j]), Math.abs(d1 - ref.d1[i][j]));
        entries += 2;
      }
    }
    assert.ok(worst <= TOLERANCE, `largest difference ${worst} over ${entries} values (tolerance ${TOLERANCE})`);
  } finally {
    dir.cleanup();
  }
}

test("the kernel matches the independent Python reference within 1e-4 (32 samples, 1,024 pairs)", async () => {
  await compare("reference-kernel.json", 32);
});

test("left truncation matches the reference too (8 samples, short maximum length)", async () => {
  await compare("reference-kernel-truncated.json", 8);
});

test.run();
