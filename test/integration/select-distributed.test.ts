/**
 * Distributed selection against a real nats-server with shard hosts as processes of their own:
 * the picks equal central lazy greedy's, and stay the same when a host is SIGKILLed between or in
 * the middle of a round; forged and garbage messages change nothing.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect, headers, type NatsConnection } from "@nats-io/transport-node";
import { ChunkedKernel, writeChunkedKernel } from "../../common/src/mod.js";
import { lazyGreedy, randomSparseKernel, rowMaxima, scaleKernelInPlace, type CscKernel, type Objective, type SelectionResult } from "../../common/src/selection/mod.js";
import { NatsBlobStore } from "../../common/src/mod.js";
import {
  HmacAuthenticator,
  NatsShardTransport,
  publishChunkedKernel,
  distributedObjective,
  runDistributedSelection,
  shardLayout,
  type DistributedHooks,
  type DistributedResult,
  type KernelSourceSpec,
  type MessageAuthenticator,
} from "../../common/src/selection/distributed/mod.js";
import { NatsServer } from "../helpers/nats-server.js";
import { ROOT, tempDir } from "../helpers/paths.js";

const HOST_MAIN = join(ROOT, "dist", "common", "src", "selection", "distributed", "shard-host-main.js");

/** A shard host process; its stderr is kept and can be waited on. */
class HostProcess {
  log = "";
  readonly exited: Promise<void>;
  private waiters: { pattern: RegExp; resolve(): void }[] = [];
  constructor(
    readonly id: string,
    readonly proc: ChildProcess,
  ) {
    proc.stderr!.on("data", (d: Buffer) => {
      this.log += d.toString();
      for (const w of [...this.waiters]) if (w.pattern.test(this.log)) (this.waiters = this.waiters.filter((x) => x !== w)), w.resolve();
    });
    this.exited = new Promise((resolve) => proc.once("exit", () => resolve()));
  }
  static start(url: string, pool: string, id: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): HostProcess {
    const proc = spawn(process.execPath, [HOST_MAIN, "--nats", url, "--pool", pool, "--host-id", id, "--verbose", ...extra], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, ...env } });
    return new HostProcess(id, proc);
  }
  waitFor(pattern: RegExp, ms = 60_000): Promise<void> {
    if (pattern.test(this.log)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`host ${this.id}: no ${pattern} within ${ms} ms:\n${this.log.slice(-3000)}`)), ms);
      this.waiters.push({ pattern, resolve: () => (clearTimeout(timer), resolve()) });
    });
  }
  async kill(signal: NodeJS.Signals): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill(signal);
    await this.exited;
  }
}

type Setup = { nats: NatsServer; nc: NatsConnection; dir: { path: string; cleanup(): void }; hosts: HostProcess[] };

async function setup(pool: string, hostCount: number, extra: string[] = [], env: (i: number) => NodeJS.ProcessEnv = () => ({})): Promise<Setup> {
  // A small max_payload makes every sizeable message travel as several frames.
  const nats = await NatsServer.start({ config: "max_payload: 65536" });
  const dir = tempDir("delift-select-dist-");
  const hosts = Array.from({ length: hostCount }, (_, i) => HostProcess.start(nats.url, pool, `${pool}-h${i}`, extra, env(i)));
  await Promise.all(hosts.map((h) => h.waitFor(/shard host \S+ ready/)));
  const nc = await connect({ servers: nats.url });
  return { nats, nc, dir, hosts };
}

async function teardown(s: Setup): Promise<void> {
  await Promise.all(s.hosts.map((h) => h.kill("SIGTERM")));
  await s.nc.close();
  await s.nats.cleanup();
  s.dir.cleanup();
}

/** A raw (unscaled) kernel on disk in several chunks, and central lazy greedy over its scaled copy. */
async function kernelOnDisk(dir: string, n: number, perColumn: number, seed: number): Promise<{ path: string; raw: CscKernel; scaled: CscKernel }> {
  const raw = randomSparseKernel({ nRows: n, nCols: n, perColumn, seed });
  for (let p = 0; p < raw.values.length; p++) raw.values[p] = raw.values[p] * 1.5 - 0.25;
  const path = join(dir, `kernel-${seed}`);
  await writeChunkedKernel(path, raw, {}, { chunkBytes: 16 * 1024 });
  const scaled = { ...raw, values: raw.values.slice() };
  scaleKernelInPlace(scaled, "min-max");
  return { path, raw, scaled };
}

async function select(
  s: Setup,
  pool: string,
  path: string,
  k: number,
  o: { shards: number; objective?: Objective; hooks?: DistributedHooks; auth?: MessageAuthenticator; session?: string; source?: KernelSourceSpec },
): Promise<DistributedResult> {
  const opened = await ChunkedKernel.open(path);
  const layout = shardLayout(opened.index.chunks.map((c) => ({ colStart: c.colStart, colEnd: c.colEnd, weight: c.nnz })), o.shards, o.shards);
  const transport = await NatsShardTransport.start(s.nc, { pool, minHosts: s.hosts.length, auth: o.auth, pingMs: 200 });
  try {
    return await runDistributedSelection(
      {
        session: o.session ?? `s-${randomBytes(4).toString("hex")}`,
        nRows: opened.nRows,
        nCols: opened.nCols,
        shards: layout.shards,
        parts: layout.parts,
        source: o.source ?? { kind: "chunked-dir", path },
        scaling: { scaling: "min-max", range: opened.index.valueRange },
      },
      transport,
      { k, objective: distributedObjective(o.objective ?? { kind: "fl" }, opened.nRows), algorithm: "bands" },
      o.hooks,
    );
  } finally {
    await transport.close();
  }
}

function sameSelection(got: SelectionResult, want: SelectionResult, what: string): void {
  assert.equal(Array.from(got.order), Array.from(want.order), `${what}: order`);
  assert.equal(Array.from(got.gains), Array.from(want.gains), `${what}: gains`);
  assert.is(got.value, want.value, `${what}: value`);
}

test("two shard host processes over NATS select exactly what central lazy greedy selects (FL and FLMI), signed messages too", async () => {
  const pool = "p-exact";
  const secret = randomBytes(32);
  const s = await setup(pool, 2);
  const signed = join(s.dir.path, "secret");
  writeFileSync(signed, secret);
  const signedHosts = [0, 1].map((i) => HostProcess.start(s.nats.url, `${pool}-signed`, `${pool}-signed-h${i}`, ["--secret-file", signed]));
  try {
    const { path, scaled } = await kernelOnDisk(s.dir.path, 3000, 12, 1);
    const k = 900;
    const fl = await select(s, pool, path, k, { shards: 3 });
    sameSelection(fl, lazyGreedy(scaled, { k }), "FL on 2 hosts");
    assert.ok(fl.distributed.bytesReceived > 65536, "replies travelled as several frames");
    const targetMax = rowMaxima(randomSparseKernel({ nRows: 3000, nCols: 80, perColumn: 5, seed: 2 }));
    const flmi = await select(s, pool, path, k, { shards: 2, objective: { kind: "flmi", targetMax } });
    sameSelection(flmi, lazyGreedy(scaled, { k, objective: { kind: "flmi", targetMax } }), "FLMI on 2 hosts");

    await Promise.all(signedHosts.map((h) => h.waitFor(/ready/)));
    const signedSetup = { ...s, hosts: signedHosts };
    const withSecret = await select(signedSetup, `${pool}-signed`, path, k, { shards: 2, auth: new HmacAuthenticator(secret) });
    sameSelection(withSecret, fl, "signed");
    // A coordinator without the secret gets nothing answered: the hosts drop its unsigned requests.
    const transport = await NatsShardTransport.start(s.nc, { pool: `${pool}-signed`, minHosts: 2, requestTimeoutMs: 3000, pingMs: 200 });
    try {
      await transport.request(`${pool}-signed-h0`, { kind: "release", session: "nope" });
      assert.unreachable("an unsigned request was answered");
    } catch (err) {
      assert.is((err as Error).name, "HostLostError");
    } finally {
      await transport.close();
    }
    await signedHosts[0].waitFor(/dropped request \S+: bad or missing signature/);
  } finally {
    await Promise.all(signedHosts.map((h) => h.kill("SIGTERM")));
    await teardown(s);
  }
});

test("a shard host SIGKILLed between rounds, and another in the middle of one: shards move, the selection is byte-identical", async () => {
  const pool = "p-kill";
  const s = await setup(pool, 2);
  try {
    const { path, scaled } = await kernelOnDisk(s.dir.path, 4000, 10, 5);
    const k = 1200;
    const central = lazyGreedy(scaled, { k });
    const clean = await select(s, pool, path, k, { shards: 4, session: "clean" });
    sameSelection(clean, central, "without faults");
    assert.ok(clean.distributed.rounds > 8);

    // A third host that stops answering at round 6, as a process that dies mid-round would.
    const holder = HostProcess.start(s.nats.url, pool, `${pool}-h2`, [], { DELIFT_SELECT_HOLD_ROUND: "6" });
    s.hosts.push(holder);
    await holder.waitFor(/ready/);
    const held = holder.waitFor(/holding at selection round 6/).then(() => holder.kill("SIGKILL"));
    const moved: string[] = [];
    const faulty = await select(s, pool, path, k, {
      shards: 4,
      session: "faulty",
      hooks: {
        onRound: async ({ round }) => {
          // After round 3 the coordinator goes on only once host 1 is really gone.
          if (round === 3) await s.hosts[1].kill("SIGKILL");
        },
        onReassign: ({ shard, from, to }) => moved.push(`${shard}:${from}->${to}`),
      },
    });
    await held;
    sameSelection(faulty, clean, "with two hosts SIGKILLed");
    assert.is(faulty.distributed.hosts, 1, "all shards ended on the one host left");
    assert.ok(moved.some((m) => m.includes(`:${pool}-h1->`)) && moved.some((m) => m.includes(`:${pool}-h2->${pool}-h0`)), moved.join(" "));
    assert.match(s.hosts[0].log, /holds shard \d/);
  } finally {
    await teardown(s);
  }
});

test("shard hosts read their ranges from the cluster's object store (only the chunks they need); the same picks", async () => {
  const pool = "p-objects";
  const s = await setup(pool, 2);
  try {
    const { path, scaled } = await kernelOnDisk(s.dir.path, 2500, 10, 13);
    const bucket = "delift-kernels-test";
    await publishChunkedKernel(await NatsBlobStore.open(s.nc, bucket), path, "job-1/kernel");
    const k = 700;
    const r = await select(s, pool, path, k, { shards: 2, source: { kind: "blob-store", bucket, prefix: "job-1/kernel" } });
    sameSelection(r, lazyGreedy(scaled, { k }), "from the object store");
    for (const h of s.hosts) assert.match(h.log, /holds shard \d/);
  } finally {
    await teardown(s);
  }
});

test("garbage, forged and unframed messages on a host's subjects are dropped; the host keeps serving the same selection", async () => {
  const pool = "p-garbage";
  const s = await setup(pool, 1);
  try {
    const { path, scaled } = await kernelOnDisk(s.dir.path, 1500, 8, 9);
    const k = 400;
    const subject = `delift.select.${pool}.host.${pool}-h0`;
    const h = (pairs: [string, string][]) => {
      const hd = headers();
      for (const [a, b] of pairs) hd.set(a, b);
      return hd;
    };
    s.nc.publish(subject, randomBytes(300));
    s.nc.publish(subject, randomBytes(300), { headers: h([["Delift-Msg", "m1"], ["Delift-Part", "0/1/300/300"]]), reply: "_INBOX.x" });
    s.nc.publish(subject, randomBytes(10), { headers: h([["Delift-Msg", "m2"], ["Delift-Part", "5/2/10/5"]]) });
    s.nc.publish(subject, randomBytes(10), { headers: h([["Delift-Msg", "../x"], ["Delift-Part", "0/1/10/10"]]) });
    s.nc.publish(`${subject}.ping`, randomBytes(20), { reply: "_INBOX.y" });
    s.nc.publish(`delift.select.${pool}.hosts`, randomBytes(40));
    await s.nc.flush();
    await s.hosts[0].waitFor(/refused request m1: shard request is not msgpack|refused request m1/);
    await s.hosts[0].waitFor(/part 5\/2 of 10 bytes is out of bounds/);
    const r = await select(s, pool, path, k, { shards: 2 });
    sameSelection(r, lazyGreedy(scaled, { k }), "after garbage");
    assert.is(s.hosts[0].proc.exitCode, null, "the host is still running");
  } finally {
    await teardown(s);
  }
});

test.run();
