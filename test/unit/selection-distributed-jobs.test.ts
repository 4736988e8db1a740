/**
 * Distributed selection inside the job flow (the embedded default: the coordinator's select task
 * with shard hosts in this process, the code path a cluster runs with its workers over NATS): for
 * FL, FLMI and FLCG the picks are central lazy greedy's whatever the number of shards; the report
 * carries f(A), rounds, bytes and the ratio to lazy greedy; embedded, the memory rule does not
 * shard (select-cluster.test.ts checks it does on a cluster); the chunked copy is gone afterwards.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runEmbeddedJob } from "../../cli/src/embedded/run-embedded-job.js";
import { parseJobSpec } from "../../coordinator/src/mod.js";
import { decodeSelectingJobs, encodeSelectingJobs, selectionSecret, shardHostId } from "../../common/src/selection/distributed/mod.js";
import { FIXTURES, TINY_MODEL, tempDir } from "../helpers/paths.js";

const dir = tempDir("delift-select-jobs-");
const lines = readFileSync(join(FIXTURES, "gsm8k-32.jsonl"), "utf8").split("\n").filter(Boolean);
const file = (name: string, from: number, to: number) => {
  const path = join(dir.path, name);
  writeFileSync(path, lines.slice(from, to).join("\n") + "\n");
  return path;
};
const DATA = file("v.jsonl", 0, 12);
const OTHER = file("o.jsonl", 12, 16);

type Run = { picks: number[]; report: { settings: { optimizer: string }; result: { value: number; lazyValue: number | null; ratioToLazy: number | null; distributed: { shards: number; rounds: number; algorithm: string } | null } } };

async function run(name: string, selection: object, extra: object = {}): Promise<Run> {
  const out = join(dir.path, `out-${name}`);
  const dataDir = join(dir.path, `data-${name}`);
  const spec = parseJobSpec({ kind: "select", data: DATA, model: TINY_MODEL, selection: { budget: "0.5", ...selection }, scoring: { tile: { columns: 6, rows: 12 } }, ...extra }, "test");
  const outcome = await runEmbeddedJob(spec, { out, storeDir: join(dir.path, "tiles"), device: "cpu", threads: 1, dataDir });
  assert.is(outcome.status.state, "done", outcome.status.error ?? "");
  // No chunked copy of the kernel stays in the job's directory.
  for (const job of readdirSync(join(dataDir, "jobs"))) assert.equal(readdirSync(join(dataDir, "jobs", job)).filter((f) => f.startsWith("select-kernel")), []);
  return {
    picks: readFileSync(join(out, "selected.jsonl"), "utf8").split("\n").filter(Boolean).map((l) => (JSON.parse(l) as { index: number }).index),
    report: JSON.parse(readFileSync(join(out, "report.json"), "utf8")),
  };
}

test("FL, FLMI and FLCG: a job's picks on 1, 2 and 3 shards are central lazy greedy's, with rounds and the ratio to lazy greedy in the report", async () => {
  for (const [stage, extra] of [
    ["instruction", {}],
    ["task", { target: OTHER }],
    ["continual", { existing: OTHER }],
  ] as const) {
    const central = await run(`${stage}-lazy`, { stage, optimizer: "lazy" }, extra);
    assert.is(central.report.result.distributed, null);
    for (const shards of [1, 2, 3]) {
      const sharded = await run(`${stage}-${shards}`, { stage, shards }, extra);
      assert.equal(sharded.picks, central.picks, `${stage} on ${shards} shards`);
      const r = sharded.report.result;
      assert.is(r.distributed!.shards, shards);
      assert.is(r.distributed!.algorithm, "bands");
      assert.ok(r.distributed!.rounds >= 1);
      assert.is(sharded.report.settings.optimizer, "bands");
      assert.is(r.value, central.report.result.value, `${stage}: f(A) equals lazy greedy's bit for bit`);
      assert.is(r.ratioToLazy, 1);
    }
  }
});

test("embedded, a kernel above --select-memory stays central (shards in this process would add copies); partition-and-merge runs when asked", async () => {
  const auto = await run("auto", { memory: 1 });
  assert.is(auto.report.result.distributed, null, "no cluster workers: central");
  assert.is(auto.report.settings.optimizer, "stochastic");
  const partition = await run("partition", { shards: 2, algorithm: "partition" });
  assert.is(partition.report.result.distributed!.algorithm, "partition");
  assert.is(partition.picks.length, 6);
  assert.ok(partition.report.result.ratioToLazy! > 0.9);
});

test("the selecting record, host ids and the selection secret: validated, stable, distinct", () => {
  assert.equal(decodeSelectingJobs(encodeSelectingJobs(["jb", "ja", "jb"])), ["ja", "jb"]);
  for (const bad of ["{", '{"v":2,"jobs":[]}', '{"v":1,"jobs":["a.b"]}', '{"v":1,"jobs":[1]}', '"x"', "\u00ff"]) {
    assert.throws(() => decodeSelectingJobs(new TextEncoder().encode(bad)), (e: Error) => e.name === "ProtocolError", bad);
  }
  assert.is(shardHostId("w1"), "w1");
  const long = shardHostId("host.example.com:1234@" + "x".repeat(300));
  assert.ok(/^[A-Za-z0-9_-]{1,64}$/.test(long), long);
  assert.is.not(shardHostId("a.b"), shardHostId("a:b"), "ids that differ only in replaced characters stay distinct");
  const key = new Uint8Array(32).fill(7);
  assert.equal(selectionSecret(key), selectionSecret(key.slice()));
  assert.is.not(Buffer.from(selectionSecret(key)).toString("hex"), Buffer.from(key).toString("hex"));
  assert.is.not(Buffer.from(selectionSecret(key)).toString("hex"), Buffer.from(selectionSecret(new Uint8Array(32).fill(8))).toString("hex"));
});

test.after(() => dir.cleanup());
test.run();
