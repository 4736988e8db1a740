/**
 * `delift select --kernel DIR [--select-shards N]`: selection straight from a kernel directory
 * (chunked or kernel.bin), sharded in process, against central lazy greedy; bad kernels and
 * cancellation leave no output.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { KERNEL_FORMAT, writeChunkedKernel, writeKernel } from "../../common/src/mod.js";
import { randomSparseKernel } from "../../common/src/selection/mod.js";
import { ROOT, tempDir } from "../helpers/paths.js";

const BIN = join(ROOT, "bin", "delift.js");

function delift(args: string[], env: NodeJS.ProcessEnv = {}): { code: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8", env: { ...process.env, ...env } });
  return { code: r.status, stderr: r.stderr };
}

async function kernels(dir: string) {
  const n = 3000;
  const csc = randomSparseKernel({ nRows: n, nCols: n, perColumn: 10, seed: 12 });
  for (let p = 0; p < csc.values.length; p++) csc.values[p] = csc.values[p] - 0.3;
  const ids = Array.from({ length: n }, (_, i) => `sample-${i}`);
  const chunked = join(dir, "chunked");
  await writeChunkedKernel(chunked, csc, { colIds: ids, rowIds: ids, baseline: new Float32Array(n), metadata: { format: KERNEL_FORMAT, modelHash: "m" } }, { chunkBytes: 32 * 1024 });
  const bin = join(dir, "bin");
  await writeKernel(bin, { csc, baseline: new Float32Array(n), metadata: { format: KERNEL_FORMAT, nRows: n, nCols: n, nnz: csc.rowIdx.length, rowIds: ids, colIds: ids, modelHash: "m", settingsKey: "s", maxLength: 8, truncated: { baseline: 0, pairs: 0 } } });
  return { chunked, bin };
}

test("select --kernel DIR --select-shards N: the same selection as central lazy greedy, from a chunked kernel and from kernel.bin; the report carries the distributed figures", async () => {
  const dir = tempDir();
  try {
    const { chunked, bin } = await kernels(dir.path);
    const outs = { lazy: join(dir.path, "lazy"), chunked3: join(dir.path, "c3"), bin2: join(dir.path, "b2") };
    const runs = [
      delift(["select", "--kernel", chunked, "--budget", "30%", "--out", outs.lazy, "--optimizer", "lazy"]),
      delift(["select", "--kernel", chunked, "--budget", "30%", "--out", outs.chunked3, "--select-shards", "3"]),
      delift(["select", "--kernel", bin, "--budget", "30%", "--out", outs.bin2, "--select-shards", "2", "--quiet"]),
    ];
    for (const r of runs) assert.is(r.code, 0, r.stderr);
    assert.match(runs[0].stderr, /central lazy greedy \(the kernel fits/);
    assert.match(runs[1].stderr, /selected 900 of 3000 \(FL, bands on 3 shards, \d+ rounds\): f\(A\) = [\d.]+ .*, 1\.0000 of lazy greedy/);
    const lazy = readFileSync(join(outs.lazy, "selected.jsonl"), "utf8");
    assert.is(readFileSync(join(outs.chunked3, "selected.jsonl"), "utf8"), lazy);
    assert.is(readFileSync(join(outs.bin2, "selected.jsonl"), "utf8"), lazy);
    const first = JSON.parse(lazy.split("\n")[0]);
    assert.equal(Object.keys(first), ["id", "index", "rank", "gain"]);
    assert.is(first.id, `sample-${first.index}`);
    const report = JSON.parse(readFileSync(join(outs.chunked3, "report.json"), "utf8"));
    assert.is(report.settings.optimizer, "bands");
    assert.is(report.result.ratioToLazy, 1);
    assert.is(report.result.distributed.shards, 3);
    assert.ok(report.result.distributed.rounds > 1);
    const lazyReport = JSON.parse(readFileSync(join(outs.lazy, "report.json"), "utf8"));
    assert.is(report.result.value, lazyReport.result.value);
    assert.is(report.result.valueOfAll, lazyReport.result.valueOfAll);
    assert.match(readFileSync(join(outs.chunked3, "report.html"), "utf8"), /3 shards on 3 hosts/);
  } finally {
    dir.cleanup();
  }
});

test("select --kernel: a corrupt chunk is a clear error naming the file, flags that need a model are refused, and nothing is written", async () => {
  const dir = tempDir();
  try {
    const { chunked } = await kernels(dir.path);
    const chunk = join(chunked, "chunk-000002.bin");
    const bytes = readFileSync(chunk);
    bytes[bytes.length - 1] ^= 1;
    writeFileSync(chunk, bytes);
    const out = join(dir.path, "out");
    const r = delift(["select", "--kernel", chunked, "--budget", "0.3", "--out", out, "--select-shards", "2"]);
    assert.is(r.code, 2, r.stderr);
    assert.match(r.stderr, /chunk-000002\.bin: sha256 .* does not match the index/);
    assert.not.ok(existsSync(out));
    const staged = delift(["select", "--kernel", chunked, "--budget", "0.3", "--out", out, "--stage", "task"]);
    assert.is(staged.code, 2);
    assert.match(staged.stderr, /--stage needs --data and --model/);
    const withModel = delift(["select", "--data", "x.jsonl", "--model", "m", "--budget", "0.3", "--out", out, "--select-shards", "2"]);
    assert.is(withModel.code, 2);
    assert.match(withModel.stderr, /--select-shards works with --kernel DIR without --model/);
    assert.equal(readdirSync(dir.path).sort(), ["bin", "chunked"]);
  } finally {
    dir.cleanup();
  }
});

test("select --kernel --select-shards: Ctrl-C while selecting stops it and leaves no output", async () => {
  const dir = tempDir();
  try {
    const { chunked } = await kernels(dir.path);
    const out = join(dir.path, "out");
    const child = spawn(process.execPath, [BIN, "select", "--kernel", chunked, "--budget", "0.3", "--out", out, "--select-shards", "2"], {
      env: { ...process.env, DELIFT_HOLD_AT: "selecting" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no hold line:\n${stderr}`)), 60_000);
      child.stderr!.on("data", (d: Buffer) => {
        stderr += d.toString();
        if (/delift: holding at selecting/.test(stderr)) (clearTimeout(timer), resolve());
      });
    });
    child.kill("SIGINT");
    const code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
    assert.is(code, 130, stderr);
    assert.match(stderr, /no output was written/);
    assert.not.ok(existsSync(out));
    assert.equal(readdirSync(dir.path).sort(), ["bin", "chunked"]);
  } finally {
    dir.cleanup();
  }
});

test.run();
