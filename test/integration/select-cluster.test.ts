/**
 * Distributed selection in the cluster job flow, end to end: a real nats-server with the deploy
 * files' NATS permissions, a coordinator and three `delift worker` processes hosting the shards.
 * One worker is SIGKILLed in the middle of a selection round: its shard moves to another worker
 * and the picks are the same as on two workers without a fault and as central lazy greedy's (the
 * same seed, whatever the number of workers or the timing). A selection cancelled mid-round stops,
 * leaves no result, and the cluster keeps no trace of it (record, kernel objects).
 */
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { Objm } from "@nats-io/obj";
import { JOBS_BUCKET, MODELS_BUCKET } from "../../common/src/mod.js";
import { SELECTING_JOBS_KEY, decodeSelectingJobs } from "../../common/src/selection/distributed/mod.js";
import { Kvm } from "@nats-io/kv";
import { type CliProcess, TestCluster, workerRestrictedAuth } from "../helpers/cluster.js";
import { FIXTURES, TINY_MODEL, tempDir } from "../helpers/paths.js";

const Select = suite("distributed selection on the cluster: workers host shards, a SIGKILL changes nothing, cancel leaves nothing");
const scratch = tempDir("delift-select-cluster-");
const DATA = join(scratch.path, "sixteen.jsonl");
writeFileSync(DATA, readFileSync(join(FIXTURES, "gsm8k-32.jsonl"), "utf8").split("\n").filter(Boolean).slice(0, 16).join("\n") + "\n");
const job = (selection: object) => ({ kind: "select", data: DATA, model: TINY_MODEL, selection: { budget: "0.5", seed: 7, ...selection }, scoring: { tile: { columns: 8, rows: 16 } }, queue: { ackWaitSeconds: 5, maxDeliver: 3 } });

/** A worker started with the selection hold hook (it stops answering at that round, as a host dying mid-round). */
async function holdingWorker(cluster: TestCluster, id: string, round: number): Promise<CliProcess> {
  // The hook travels by environment; TestCluster.startWorker passes this process's environment on (spawned synchronously).
  process.env.DELIFT_SELECT_HOLD_ROUND = String(round);
  const started = cluster.startWorker(id);
  delete process.env.DELIFT_SELECT_HOLD_ROUND;
  return started;
}

const picks = (files: Map<string, Buffer>) =>
  files
    .get("selected.jsonl")!
    .toString()
    .split("\n")
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { index: number }).index);

Select("a worker SIGKILLed mid-round: its shard is reassigned, the picks equal a fault-free run on fewer workers and central lazy greedy; cancel mid-round leaves nothing", async () => {
  const auth = workerRestrictedAuth();
  const cluster = await TestCluster.start({ workers: 0, natsConfig: auth.config, coordinatorArgs: auth.coordinatorArgs, workerArgs: auth.workerArgs });
  const nc = await connect({ servers: cluster.nats.url, ...auth.admin });
  try {
    await Promise.all([cluster.startWorker("w1"), cluster.startWorker("w2")]);
    const victim = await holdingWorker(cluster, "w3", 3);

    // 1. Three shards on three workers; w3 stops answering in round 3 and is SIGKILLed there.
    const faulty = await cluster.submit(job({ shards: 3 }));
    await victim.waitFor(/delift: holding at selection round 3/, 90_000);
    victim.kill("SIGKILL");
    await victim.wait();
    const a = await cluster.waitForJob(faulty, (s) => s.state === "done", 90_000);
    assert.match(cluster.coordinator!.log, /selection shard \d moves from host w3 to w[12]/);
    const filesA = await cluster.result(faulty);
    const reportA = JSON.parse(filesA.get("report.json")!.toString());
    assert.is(reportA.result.distributed.algorithm, "bands");
    assert.is(reportA.result.distributed.shards, 3);
    assert.ok(reportA.result.distributed.reassignments >= 1, "the lost shard was reassigned");
    assert.ok(reportA.result.distributed.rounds >= 3);
    assert.ok(reportA.result.distributed.bytesSent > 0 && reportA.result.distributed.bytesReceived > 0, "bytes moved are reported");
    assert.is(reportA.result.ratioToLazy, 1, "bands is central lazy greedy's f");
    assert.is(a.state, "done");
    assert.match(cluster.coordinator!.log, /bands on 3 shards, \d hosts, \d+ rounds, [0-9.]+ KiB moved/);

    // 2. The same job on the two workers left, no fault (the tiles come from the store), and 3. central lazy greedy.
    const clean = await cluster.submit(job({ shards: 2 }));
    await cluster.waitForJob(clean, (s) => s.state === "done", 90_000);
    // The memory rule shards on a cluster without being asked (a kernel above --select-memory).
    const auto = await cluster.submit(job({ memory: 1 }));
    await cluster.waitForJob(auto, (s) => s.state === "done", 90_000);
    const autoFiles = await cluster.result(auto);
    assert.ok(JSON.parse(autoFiles.get("report.json")!.toString()).result.distributed.shards >= 2, "sharded by the memory rule");
    const central = await cluster.submit(job({ optimizer: "lazy" }));
    await cluster.waitForJob(central, (s) => s.state === "done", 90_000);
    const [pa, pb, pc] = [picks(filesA), picks(await cluster.result(clean)), picks(await cluster.result(central))];
    assert.is(pa.length, 8);
    assert.equal(pa, pb, "a SIGKILL and another number of workers change no pick");
    assert.equal(pa, pc, "the distributed picks are central lazy greedy's");
    assert.equal(picks(autoFiles), pc, "and so are those the memory rule sharded");

    // 4. Cancelled while a host holds in round 2: cancelled, no result, no record, no kernel objects.
    const holder = await holdingWorker(cluster, "w4", 2);
    const cancelled = await cluster.submit(job({ shards: 3 }));
    await holder.waitFor(/delift: holding at selection round 2/, 90_000);
    const c = cluster.client();
    try {
      await c.unary("cancelJob", { jobId: cancelled });
    } finally {
      c.close();
    }
    await cluster.waitForJob(cancelled, (s) => s.state === "cancelled", 60_000);
    assert.not.ok(existsSync(join(cluster.dataDir, "jobs", cancelled, "result", "selected.jsonl")), "a cancelled selection leaves no result");
    const kv = await new Kvm(nc).open(JOBS_BUCKET);
    const leftovers = async () => {
      const entry = await kv.get(SELECTING_JOBS_KEY);
      const selecting = entry && entry.value.length > 0 ? decodeSelectingJobs(entry.value) : [];
      const objects = (await (await new Objm(nc).open(MODELS_BUCKET)).list()).filter((o) => o.name.startsWith("select/") && !o.deleted);
      return { selecting, objects: objects.map((o) => o.name) };
    };
    // The release follows the cancelled state; wait for it rather than checking at once.
    let left = await leftovers();
    for (const deadline = Date.now() + 30_000; (left.selecting.length > 0 || left.objects.length > 0) && Date.now() < deadline; left = await leftovers()) await new Promise((r) => setTimeout(r, 200));
    assert.equal(left, { selecting: [], objects: [] }, "no selecting record and no kernel objects are left behind");
    assert.not.ok(existsSync(join(cluster.dataDir, "jobs", cancelled, "select-kernel-")), "no local chunked kernel");
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${cluster.logs()}`, { cause: err });
  } finally {
    await nc.close();
    await cluster.stop();
  }
});

Select.after(() => scratch.cleanup());
Select.run();
