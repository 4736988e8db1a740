import { test } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readKernel } from "../../common/src/kernel/kernel-files.js";
import { parseJobSpec } from "../../coordinator/src/jobs/job-spec.js";
import { runEmbeddedJob } from "../../cli/src/embedded/run-embedded-job.js";
import { withTimeout } from "../helpers/harness/timeout.js";
import { FIXTURES, TINY_MODEL, tempDir } from "../helpers/paths.js";

/**
 * delift's kernel against bench/reference/delift_reference.py: plain transformers over the PyTorch
 * checkpoint, whole prompt per pair, no KV cache, padded batches of 32 (the original code's way).
 * UF[i][j] depends only on samples i and j, so a run over the first n samples must match the
 * fixture's leading n x n block: that lets many tile shapes and batch limits be checked cheaply.
 */
type Reference = { ids: string[]; maxLength: number; d0: number[]; d1: number[][]; uf: number[][]; truncated: number };

/** The engine achieves about 8e-8 (README, measured figures); 1e-6 leaves a margin of 12x. */
const TOLERANCE = 1e-6;
/** Real model runs (the first one 1,056 prompts): more than a unit test's default deadline on a loaded machine. */
const DEADLINE_S = 300;

type Shape = { columns: number; rows: number };
type Batch = { maxBatch?: number; maxTokens?: number };

const full = JSON.parse(readFileSync(join(FIXTURES, "reference-kernel.json"), "utf8")) as Reference;
const truncated = JSON.parse(readFileSync(join(FIXTURES, "reference-kernel-truncated.json"), "utf8")) as Reference;
const lines = readFileSync(join(FIXTURES, "gsm8k-32.jsonl"), "utf8").split("\n").filter(Boolean);

/** Runs the embedded kernel over the first n samples; returns the largest difference from the fixture. */
async function worstDifference(ref: Reference, n: number, tile?: Shape, batch?: Batch): Promise<{ worst: number; values: number; truncatedCount: number }> {
  const dir = tempDir();
  try {
    const data = join(dir.path, "data.jsonl");
    writeFileSync(data, lines.slice(0, n).join("\n") + "\n");
    const scoring = { maxLength: ref.maxLength, ...(tile ? { tile } : {}), ...(batch ? { batch } : {}) };
    const spec = parseJobSpec({ kind: "kernel", data, model: TINY_MODEL, scoring }, "test");
    const out = join(dir.path, "kernel");
    const outcome = await runEmbeddedJob(spec, { out, storeDir: join(dir.path, "tiles"), device: "cpu" });
    assert.is(outcome.status.state, "done", outcome.status.error);
    const k = await readKernel(out);
    assert.equal(k.metadata.rowIds, ref.ids.slice(0, n));
    let worst = 0;
    let values = 0;
    for (let i = 0; i < n; i++) {
      worst = Math.max(worst, Math.abs(k.baseline[i] - ref.d0[i]));
      values++;
    }
    const { colPtr, rowIdx, values: uf } = k.csc;
    for (let j = 0; j < n; j++) {
      assert.is(colPtr[j + 1] - colPtr[j], n, "dense column");
      for (let p = colPtr[j]; p < colPtr[j + 1]; p++) {
        const i = rowIdx[p];
        const d1 = k.baseline[i] - uf[p];
        worst = Math.max(worst, Math.abs(uf[p] - ref.uf[i][j]), Math.abs(d1 - ref.d1[i][j]));
        values += 2;
      }
    }
    return { worst, values, truncatedCount: k.metadata.truncated.pairs + k.metadata.truncated.baseline };
  } finally {
    dir.cleanup();
  }
}

test("the kernel matches the independent Python reference within 1e-6 (32 samples, 1,024 pairs, default tiles and batches)", withTimeout(DEADLINE_S, async () => {
  const r = await worstDifference(full, 32);
  assert.is(r.truncatedCount, full.truncated, "truncation count");
  assert.ok(r.worst <= TOLERANCE, `largest difference ${r.worst} over ${r.values} values (tolerance ${TOLERANCE})`);
}));

test("left truncation matches the reference too (8 samples, maximum length 384, 50 prompts truncated; within 1e-6)", withTimeout(DEADLINE_S, async () => {
  const r = await worstDifference(truncated, 8);
  assert.is(r.truncatedCount, truncated.truncated, "truncation count");
  assert.ok(r.worst <= TOLERANCE, `largest difference ${r.worst} over ${r.values} values (tolerance ${TOLERANCE})`);
  // Batches of one sequence and tiles of one column: other padding, same values.
  const small = await worstDifference(truncated, 8, { columns: 1, rows: 3 }, { maxBatch: 1 });
  assert.ok(small.worst <= TOLERANCE, `tiles 1 x 3, batches of 1: largest difference ${small.worst} (tolerance ${TOLERANCE})`);
}));

const SHAPES: { n: number; tile: Shape; batch: Batch }[] = [
  { n: 12, tile: { columns: 1, rows: 5 }, batch: { maxBatch: 3 } },
  { n: 12, tile: { columns: 5, rows: 12 }, batch: { maxBatch: 32, maxTokens: 1024 } },
  { n: 10, tile: { columns: 3, rows: 4 }, batch: { maxBatch: 1 } },
  { n: 9, tile: { columns: 2, rows: 9 }, batch: { maxBatch: 7, maxTokens: 600 } },
];

test(`every tile shape and batch limit gives the reference's values within 1e-6 (${SHAPES.length} shapes on the leading 9-12 samples)`, withTimeout(DEADLINE_S, async () => {
  for (const { n, tile, batch } of SHAPES) {
    const r = await worstDifference(full, n, tile, batch);
    assert.ok(r.worst <= TOLERANCE, `${n} samples, tiles ${tile.columns} x ${tile.rows}, batch ${JSON.stringify(batch)}: largest difference ${r.worst} (tolerance ${TOLERANCE})`);
  }
}));

test.run();
