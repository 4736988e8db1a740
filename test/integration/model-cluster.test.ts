import { test } from "uvu";
import * as assert from "uvu/assert";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readKernel } from "../../common/src/kernel/kernel-files.js";
import { TestCluster } from "../helpers/cluster.js";
import { FIXTURES, tempDir } from "../helpers/paths.js";

/**
 * A user's export with its weights in one external file per tensor, submitted as it is (no
 * manifest) to a real cluster: the coordinator publishes every file the model loads to the NATS
 * object store, two worker processes fetch them into their caches and compute the kernel, which
 * matches the PyTorch reference.
 */
const dir = tempDir("delift-model-cluster-");
test.after(() => dir.cleanup());

test("an external-data export runs on cluster workers that fetch it from the object store, and matches PyTorch", async () => {
  const ref = JSON.parse(readFileSync(join(FIXTURES, "models", "reference-llama.json"), "utf8")) as { ids: string[]; maxLength: number; d0: number[]; uf: number[][] };
  const n = ref.ids.length;
  const data = join(dir.path, "data.jsonl");
  writeFileSync(data, readFileSync(join(FIXTURES, "gsm8k-32.jsonl"), "utf8").split("\n").slice(0, n).join("\n") + "\n");
  const cluster = await TestCluster.start({ workers: 2 });
  try {
    const job = await cluster.submit({ kind: "kernel", data, model: join(FIXTURES, "models", "llama-tensors"), scoring: { maxLength: ref.maxLength, tile: { columns: 2, rows: 8 } } });
    const status = await cluster.waitForJob(job, (s) => s.state === "done", 180_000);
    assert.is(status.state, "done");
    const files = await cluster.result(job);
    const out = join(dir.path, "kernel");
    mkdirSync(out);
    for (const [name, bytes] of files) writeFileSync(join(out, name), bytes);
    const k = await readKernel(out);
    let diff = 0;
    for (let i = 0; i < n; i++) diff = Math.max(diff, Math.abs(k.baseline[i] - ref.d0[i]));
    const { colPtr, rowIdx, values } = k.csc;
    for (let j = 0; j < n; j++) for (let p = colPtr[j]; p < colPtr[j + 1]; p++) diff = Math.max(diff, Math.abs(values[p] - ref.uf[rowIdx[p]][j]));
    assert.ok(diff <= 1e-4, `largest difference ${diff}`);
    const stored = [...cluster.workers.values()].map((w) => (w.log.match(/tile [0-9a-f]+ stored/g) ?? []).length);
    assert.ok(stored.reduce((a, b) => a + b, 0) >= 1, cluster.logs());
    const failed = /tile [0-9a-f]+ failed \(delivery.*/.exec(cluster.logs());
    assert.is(failed, null, `no delivery failed (every file reached the workers): ${failed?.[0]}`);
  } finally {
    await cluster.stop();
  }
});

test.run();
