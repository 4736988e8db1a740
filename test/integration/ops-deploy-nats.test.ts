import { suite } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { Objm } from "@nats-io/obj";
import { parse } from "yaml";
import { connectCoordinator } from "../../common/src/rpc/client.js";
import type { JobStatusMessage, WorkerInfo } from "../../common/src/rpc/types.js";
import { CliProcess } from "../helpers/cluster.js";
import { NatsCluster, type ClusterAccess } from "../helpers/nats-cluster.js";
import { freePort } from "../helpers/nats-server.js";
import { FIXTURES, ROOT, TINY_MODEL, tempDir } from "../helpers/paths.js";

const Deploy = suite("deploy/compose's NATS cluster (TLS, users, permissions) run for real on loopback");
const COMPOSE = join(ROOT, "deploy", "compose");
const scratch = tempDir("delift-ops-deploy-");
const DATA = join(scratch.path, "gsm8k-8.jsonl");
writeFileSync(DATA, readFileSync(join(FIXTURES, "gsm8k-32.jsonl"), "utf8").split("\n").slice(0, 8).join("\n") + "\n");
const PASSWORDS = { DELIFT_NATS_COORDINATOR_PASSWORD: "coordinator-secret-1", DELIFT_NATS_WORKER_PASSWORD: "worker-secret-2" };
const TOKEN = "ops-deploy-token";

Deploy.after(() => scratch.cleanup());

/** Replaces `from` in `text`, insisting it is there: a change to the deploy file must be seen here. */
function rewrite(text: string, from: string, to: string): string {
  assert.ok(text.includes(from), `deploy/compose/nats.conf no longer contains ${JSON.stringify(from)}: update this test`);
  return text.split(from).join(to);
}

/**
 * deploy/compose/nats.conf as the three compose services run it, with what only docker provides
 * swapped for loopback: listen ports, route host names, /data, and the /run/secrets files
 * (mapped through compose.yaml's secrets to the files make-certs.sh wrote). Everything else,
 * TLS on clients and routes, the include of deploy/nats/permissions.json, the users and their
 * passwords from the environment, is the deploy file itself.
 */
async function composeCluster(certs: string): Promise<NatsCluster> {
  const dir = tempDir("delift-ops-compose-nats-");
  copyFileSync(join(ROOT, "deploy", "nats", "permissions.json"), join(dir.path, "permissions.json"));
  const compose = parse(readFileSync(join(COMPOSE, "compose.yaml"), "utf8"), { merge: true }) as { secrets: Record<string, { file: string }> };
  const template = readFileSync(join(COMPOSE, "nats.conf"), "utf8");
  const names = ["nats-1", "nats-2", "nats-3"];
  const ports = await Promise.all(names.flatMap(() => [freePort(), freePort(), freePort()]));
  const configs = names.map((name, k) => {
    let config = template;
    config = rewrite(config, "listen: 0.0.0.0:4222", `listen: 127.0.0.1:${ports[3 * k]}`);
    config = rewrite(config, "http: 0.0.0.0:8222", `http: 127.0.0.1:${ports[3 * k + 1]}`);
    config = rewrite(config, "listen: 0.0.0.0:6222", `listen: 127.0.0.1:${ports[3 * k + 2]}`);
    config = rewrite(config, `store_dir: "/data"`, `store_dir: "${join(dir.path, name)}"`);
    names.forEach((other, j) => (config = rewrite(config, `nats-route://${other}:6222`, `nats-route://localhost:${ports[3 * j + 2]}`)));
    for (const [secret, { file }] of Object.entries(compose.secrets)) {
      if (config.includes(`/run/secrets/${secret}"`)) config = rewrite(config, `/run/secrets/${secret}"`, `${join(certs, basename(file))}"`);
    }
    assert.not.match(config, /\/run\/secrets\//, "a secret the compose file does not define");
    return { name, clientPort: ports[3 * k], config: rewrite(config, "server_name: $NATS_SERVER_NAME", `server_name: ${name}`) };
  });
  const access: ClusterAccess = { scheme: "tls", user: "delift-coordinator", pass: PASSWORDS.DELIFT_NATS_COORDINATOR_PASSWORD, tls: { caFile: join(certs, "ca.pem") } };
  const cluster = await NatsCluster.fromConfigs(configs, dir, PASSWORDS, access);
  // The compose healthcheck's URL answers on every server.
  for (let k = 0; k < names.length; k++) {
    const res = await fetch(`http://127.0.0.1:${ports[3 * k + 1]}/healthz?js-enabled-only=true`);
    assert.is(res.status, 200, `healthz of ${names[k]}`);
  }
  return cluster;
}

async function status(port: number, jobId: string): Promise<JobStatusMessage | undefined> {
  const c = connectCoordinator({ address: `127.0.0.1:${port}`, token: TOKEN });
  try {
    return (await c.unary<{ jobs: JobStatusMessage[] }>("listJobs", {}, 5000)).jobs.find((j) => j.jobId === jobId);
  } finally {
    c.close();
  }
}

/** What a refused request throws: the server's permissions violation, as nats.js reports it. */
async function refused(what: string, attempt: () => Promise<unknown>): Promise<void> {
  let error: unknown = null;
  await attempt().then(() => undefined, (err: unknown) => (error = err));
  assert.ok(error, `${what} was allowed`);
  assert.match(String((error as Error).message), /permission/i, `${what}: ${(error as Error).message}`);
}

Deploy("a worker with the deploy files' permissions computes a job, and cannot publish tiles nor write the coordinator's records", async () => {
  const certs = join(scratch.path, "certs");
  const made = spawnSync("bash", [join(COMPOSE, "make-certs.sh"), certs], { encoding: "utf8" });
  assert.is(made.status, 0, made.stderr);
  const nats = await composeCluster(certs);
  const grpcPort = await freePort();
  const procs: CliProcess[] = [];
  const logs = () => [...procs.map((p) => `--- ${p.name}\n${p.log.slice(-3000)}`), nats.logs()].join("\n");
  const tlsArgs = ["--nats", nats.urls, "--nats-tls-ca", join(certs, "ca.pem"), "--nats-replicas", "3"];
  try {
    const coordinator = CliProcess.spawn("coordinator", ["coordinator", "--grpc", `127.0.0.1:${grpcPort}`, "--data-dir", join(scratch.path, "data"), ...tlsArgs, "--nats-user", "delift-coordinator", "--nats-password", PASSWORDS.DELIFT_NATS_COORDINATOR_PASSWORD], { DELIFT_TOKEN: TOKEN });
    procs.push(coordinator);
    await coordinator.waitFor(/coordinator ready/, 30_000);

    const spec = { kind: "kernel", data: DATA, model: TINY_MODEL, scoring: { tile: { columns: 2, rows: 4 } }, queue: { ackWaitSeconds: 5, maxDeliver: 3 } };
    const client = connectCoordinator({ address: `127.0.0.1:${grpcPort}`, token: TOKEN });
    const jobId = (await client.unary<{ jobId: string }>("submitJob", { specJson: JSON.stringify(spec) }).finally(() => client.close())).jobId;
    const stream = `DELIFT_TILES_${jobId}`;
    // No worker yet: once planned, every tile of the job waits in its stream (which planning creates).
    const streamNow = () => nats.streamInfo(stream).catch(() => ({ leader: "", replicas: 0, messages: 0 }));
    let planned = await streamNow();
    let total = (await status(grpcPort, jobId))?.tilesTotal ?? 0;
    for (const deadline = Date.now() + 30_000; (total === 0 || planned.messages < total) && Date.now() < deadline; ) {
      await new Promise((r) => setTimeout(r, 100));
      total = (await status(grpcPort, jobId))?.tilesTotal ?? 0;
      planned = await streamNow();
    }
    assert.ok(total > 0 && planned.messages === total, `the coordinator published ${planned.messages} of ${total} tiles`);
    assert.is(planned.replicas, 3);

    // The worker's credentials, used by hand: every write that belongs to the coordinator is refused.
    const nc = await nats.connect({ scheme: "tls", user: "delift-worker", pass: PASSWORDS.DELIFT_NATS_WORKER_PASSWORD, tls: { caFile: join(certs, "ca.pem") } });
    try {
      const js = jetstream(nc);
      await refused("publishing a tile", () => js.publish(`delift.tiles.${jobId}`, new Uint8Array([1, 2, 3]), { timeout: 3000 }));
      const jobs = await new Kvm(nc).open("delift_jobs");
      await refused("putting into the jobs bucket", () => jobs.put("active", new TextEncoder().encode(JSON.stringify([jobId, "forged"]))));
      await refused("overwriting the job's work spec", () => jobs.put(`${jobId}.work`, new TextEncoder().encode("{}")));
      const clusterKv = await new Kvm(nc).open("delift_cluster");
      await refused("replacing the coordinator's endpoint", () => clusterKv.put("coordinator", new TextEncoder().encode(JSON.stringify({ address: "evil:1", token: "" }))));
      await refused("uploading a model", async () => (await new Objm(nc).open("delift_models")).putBlob({ name: "forged/model.onnx" }, new Uint8Array(16)));
      const jsm = await jetstreamManager(nc, { checkAPI: false });
      await refused("purging the job's stream", () => jsm.streams.purge(stream));
      await refused("deleting the job's stream", () => jsm.streams.delete(stream));
      await refused("deleting the workers' consumer", () => jsm.consumers.delete(stream, "workers"));
      await refused("creating a stream", () => jsm.streams.add({ name: "FORGED", subjects: ["forged.>"] }));
      // Reading what a worker reads is allowed.
      assert.ok((await jobs.get(`${jobId}.work`))?.value.length, "the worker cannot read the work spec");
    } finally {
      await nc.close();
    }
    const after = await nats.streamInfo(stream);
    assert.is(after.messages, planned.messages, "a refused publish still reached the job's stream");

    // With exactly those permissions a worker pulls, acks, heartbeats and fetches the model.
    const worker = CliProcess.spawn("w1", ["worker", ...tlsArgs, "--nats-user", "delift-worker", "--nats-password", PASSWORDS.DELIFT_NATS_WORKER_PASSWORD, "--id", "w1", "--threads", "1", "--cache-dir", join(scratch.path, "cache")], { DELIFT_TOKEN: TOKEN });
    procs.push(worker);
    await worker.waitFor(/worker ready/, 30_000);
    const deadline = Date.now() + 90_000;
    let s = await status(grpcPort, jobId);
    while (s?.state !== "done" && !["failed", "cancelled"].includes(s?.state ?? "") && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      s = await status(grpcPort, jobId);
    }
    assert.is(s?.state, "done", `job ${JSON.stringify(s)}\n${logs()}`);
    assert.is(s!.tilesDone, s!.tilesTotal);
    const c = connectCoordinator({ address: `127.0.0.1:${grpcPort}`, token: TOKEN });
    const { workers } = await c.unary<{ workers: WorkerInfo[] }>("listWorkers", {}).finally(() => c.close());
    assert.equal(workers.map((w) => w.workerId), ["w1"], "the worker's heartbeat did not reach the workers bucket");
    assert.not.match(worker.log, /Permissions Violation/i, worker.log);
    assert.not.match(coordinator.log, /Permissions Violation/i, coordinator.log);
  } finally {
    for (const p of procs) p.kill("SIGKILL");
    await Promise.all(procs.map((p) => p.wait()));
    await nats.cleanup();
  }
});

Deploy.run();
