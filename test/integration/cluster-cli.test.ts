import { test } from "uvu";
import * as assert from "uvu/assert";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CliProcess, TestCluster } from "../helpers/cluster.js";
import { FIXTURES, TINY_MODEL, tempDir } from "../helpers/paths.js";

const dir = tempDir("delift-cluster-cli-");
const DATA = join(dir.path, "gsm8k-8.jsonl");
writeFileSync(DATA, readFileSync(join(FIXTURES, "gsm8k-32.jsonl"), "utf8").split("\n").slice(0, 8).join("\n") + "\n");

test.after(() => dir.cleanup());

async function cli(cluster: TestCluster, args: string[]): Promise<{ code: number | null; log: string }> {
  const p = CliProcess.spawn("cli", args, { DELIFT_COORDINATOR: `127.0.0.1:${cluster.grpcPort}`, DELIFT_TOKEN: cluster.token });
  const code = await p.wait();
  return { code, log: p.log };
}

test("the cluster quick start as a user runs it: submit, watch, jobs, workers, result, cancel", async () => {
  const cluster = await TestCluster.start({ workers: 2 });
  try {
    const submitted = await cli(cluster, ["submit", "--data", DATA, "--model", TINY_MODEL, "--budget", "0.5", "--tile-columns", "2", "--tile-rows", "4"]);
    assert.is(submitted.code, 0, submitted.log);
    const job = submitted.log.trim().split("\n")[0];
    assert.match(job, /^j[0-9a-z]+$/);

    const watched = await cli(cluster, ["watch", job, "--plain"]);
    assert.is(watched.code, 0, watched.log);
    assert.match(watched.log, /pairs\/s/);
    assert.match(watched.log, new RegExp(`job ${job} done`));

    const jobs = await cli(cluster, ["jobs"]);
    assert.match(jobs.log, new RegExp(`${job}\\s+done\\s+instruction\\s+10/10`));
    const workers = await cli(cluster, ["workers", "--json"]);
    const list = JSON.parse(workers.log) as { workerId: string }[];
    assert.equal(list.map((w) => w.workerId).sort(), ["w1", "w2"]);

    const out = join(dir.path, "result");
    const result = await cli(cluster, ["result", job, "--out", out]);
    assert.is(result.code, 0, result.log);
    assert.is(readFileSync(join(out, "selected.jsonl"), "utf8").trim().split("\n").length, 4);
    assert.ok(existsSync(join(out, "report.html")));

    // Bad input is reported by submit itself (the coordinator refuses it while planning): exit 2.
    const bad = await cli(cluster, ["submit", "--data", DATA, "--model", TINY_MODEL, "--budget", "9"]);
    assert.is(bad.code, 2, bad.log);
    assert.match(bad.log, /budget 9 out of range/);

    // Cancel a running job: watch exits 3.
    const long = await cli(cluster, ["submit", "--data", DATA, "--model", TINY_MODEL, "--budget", "2", "--tile-columns", "1", "--tile-rows", "2", "--max-deliver", "2"]);
    const longJob = long.log.trim().split("\n")[0];
    const cancel = await cli(cluster, ["cancel", longJob]);
    assert.is(cancel.code, 0, cancel.log);
    assert.match(cancel.log, /cancelled/);
    const after = await cli(cluster, ["watch", longJob, "--plain"]);
    assert.is(after.code, 3, after.log);
  } finally {
    await cluster.stop();
  }
});

test.run();
