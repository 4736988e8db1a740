import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { connectCoordinator, type CoordinatorClient } from "../../common/src/rpc/client.js";
import type { JobStatusMessage, ResultFileChunk } from "../../common/src/rpc/types.js";
import { freePort, NatsServer } from "./nats-server.js";
import { ROOT, tempDir } from "./paths.js";
import { registerDiagnostics } from "./harness/diagnostics.js";

const BIN = join(ROOT, "bin", "delift.js");

/** A child process of the delift CLI whose output is kept for assertions and failure reports. */
export class CliProcess {
  log = "";
  private readonly exited: Promise<number | null>;
  private readonly waiters: { pattern: RegExp; resolve(): void }[] = [];

  constructor(readonly name: string, readonly proc: ChildProcess) {
    const onData = (d: Buffer) => {
      this.log += d.toString();
      for (const w of [...this.waiters]) {
        if (w.pattern.test(this.log)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve();
        }
      }
    };
    proc.stdout!.on("data", onData);
    proc.stderr!.on("data", onData);
    this.exited = new Promise((resolve) => proc.once("exit", (code) => resolve(code)));
  }

  static spawn(name: string, args: string[], env: NodeJS.ProcessEnv = {}): CliProcess {
    return new CliProcess(name, spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } }));
  }

  /** Resolves once the output matches (checked against everything printed so far). */
  waitFor(pattern: RegExp, timeoutMs = 30_000): Promise<void> {
    if (pattern.test(this.log)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: no ${pattern} within ${timeoutMs} ms; output:\n${this.log.slice(-4000)}`)), timeoutMs);
      this.waiters.push({ pattern, resolve: () => (clearTimeout(timer), resolve()) });
    });
  }

  kill(signal: NodeJS.Signals = "SIGTERM"): void {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill(signal);
  }

  wait(): Promise<number | null> {
    return this.exited;
  }
}

export type ClusterOptions = {
  workers?: number;
  token?: string;
  natsConfig?: string;
  /** NATS access flags given to the coordinator and every worker. */
  natsArgs?: string[];
  workerArgs?: string[];
  coordinatorArgs?: string[];
  /** CA (PEM) the test's gRPC client trusts, when the coordinator serves TLS. */
  grpcCa?: Buffer;
};

/** A real cluster on loopback: nats-server, one coordinator process, worker processes. */
export class TestCluster {
  coordinator: CliProcess | null = null;
  readonly workers = new Map<string, CliProcess>();
  private readonly dir = tempDir("delift-cluster-");
  private readonly unregister: () => void;

  private constructor(readonly nats: NatsServer, readonly grpcPort: number, readonly token: string, private readonly o: ClusterOptions) {
    this.unregister = registerDiagnostics(`cluster (nats ${nats.url}, grpc ${grpcPort})`, () => this.logs());
  }

  static async start(o: ClusterOptions = {}): Promise<TestCluster> {
    const nats = await NatsServer.start({ config: o.natsConfig });
    const cluster = new TestCluster(nats, await freePort(), o.token ?? "test-token", o);
    await cluster.startCoordinator();
    await Promise.all(Array.from({ length: o.workers ?? 0 }, (_, k) => cluster.startWorker(`w${k + 1}`)));
    return cluster;
  }

  get dataDir(): string {
    return join(this.dir.path, "data");
  }

  /** Starts (or restarts) the coordinator; `env` and `args` add to the cluster's (a hold point, say). */
  async startCoordinator(o: { env?: NodeJS.ProcessEnv; args?: string[]; ready?: RegExp } = {}): Promise<void> {
    this.coordinator = CliProcess.spawn("coordinator", [
      "coordinator",
      "--grpc",
      `127.0.0.1:${this.grpcPort}`,
      "--data-dir",
      this.dataDir,
      ...(this.o.natsArgs ?? []),
      ...(this.o.coordinatorArgs ?? []),
      ...(o.args ?? []),
      "--nats",
      this.nats.url,
    ], { DELIFT_TOKEN: this.token, ...(o.env ?? {}) });
    await this.coordinator.waitFor(o.ready ?? /coordinator ready/);
  }

  /** Stops the coordinator with SIGTERM (a clean stop: it releases its lease) and waits for it. */
  async stopCoordinator(): Promise<number | null> {
    const c = this.coordinator;
    if (!c) return null;
    c.kill("SIGTERM");
    return c.wait();
  }

  async startWorker(id: string, extra: string[] = []): Promise<CliProcess> {
    const w = CliProcess.spawn(id, ["worker", "--nats", this.nats.url, ...(this.o.natsArgs ?? []), "--id", id, "--threads", "1", "--verbose", "--cache-dir", join(this.dir.path, `cache-${id}`), ...(this.o.workerArgs ?? []), ...extra], { DELIFT_TOKEN: this.token });
    this.workers.set(id, w);
    await w.waitFor(/worker ready/);
    return w;
  }

  client(token = this.token): CoordinatorClient {
    return connectCoordinator({ address: `127.0.0.1:${this.grpcPort}`, token, caPem: this.o.grpcCa });
  }

  async submit(spec: object): Promise<string> {
    const c = this.client();
    try {
      return (await c.unary<{ jobId: string }>("submitJob", { specJson: JSON.stringify(spec) })).jobId;
    } finally {
      c.close();
    }
  }

  async status(jobId: string): Promise<JobStatusMessage> {
    const c = this.client();
    try {
      const { jobs } = await c.unary<{ jobs: JobStatusMessage[] }>("listJobs", {});
      const s = jobs.find((j) => j.jobId === jobId);
      if (!s) throw new Error(`no job ${jobId}`);
      return s;
    } finally {
      c.close();
    }
  }

  /** Polls the job until `until` holds (a coordinator restart in between is tolerated). */
  async waitForJob(jobId: string, until: (s: JobStatusMessage) => boolean, timeoutMs = 120_000): Promise<JobStatusMessage> {
    const deadline = Date.now() + timeoutMs;
    let last: JobStatusMessage | null = null;
    while (Date.now() < deadline) {
      try {
        last = await this.status(jobId);
        if (until(last)) return last;
        if (["failed", "cancelled"].includes(last.state) && !until(last)) break;
      } catch {
        // coordinator restarting
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`job ${jobId}: condition not met; last status ${JSON.stringify(last)}\n${this.logs()}`);
  }

  async result(jobId: string): Promise<Map<string, Buffer>> {
    const c = this.client();
    try {
      const files = new Map<string, Buffer[]>();
      await new Promise<void>((resolve, reject) => {
        const stream = (c.raw.getResult as (req: object, md: grpc.Metadata, options: grpc.CallOptions) => grpc.ClientReadableStream<ResultFileChunk>).call(c.raw, { jobId }, c.metadata(), { deadline: Date.now() + 120_000 });
        stream.on("data", (chunk: ResultFileChunk) => files.set(chunk.name, [...(files.get(chunk.name) ?? []), Buffer.from(chunk.data)]));
        stream.on("error", reject);
        stream.on("end", () => resolve());
      });
      return new Map([...files].map(([k, v]) => [k, Buffer.concat(v)]));
    } finally {
      c.close();
    }
  }

  logs(): string {
    const parts = [this.coordinator, ...this.workers.values()].filter(Boolean).map((p) => `--- ${p!.name}\n${p!.log.slice(-3000)}`);
    return [...parts, `--- nats-server\n${this.nats.log.slice(-3000)}`].join("\n");
  }

  async stop(): Promise<void> {
    const procs = [...this.workers.values(), this.coordinator].filter((p): p is CliProcess => !!p);
    for (const p of procs) p.kill("SIGKILL");
    await Promise.all(procs.map((p) => p.wait()));
    await this.nats.cleanup();
    this.dir.cleanup();
    this.unregister();
  }
}

/**
 * A nats-server authorization block with the deploy files' two users (deploy/nats/permissions.json):
 * "delift-coordinator" and "delift-worker", which may only pull and ack tiles, read the jobs and
 * cluster buckets and the model store, and write heartbeats.
 */
export function workerRestrictedAuth(): { config: string; coordinatorArgs: string[]; workerArgs: string[]; admin: { user: string; pass: string } } {
  const perms = JSON.parse(readFileSync(join(ROOT, "deploy", "nats", "permissions.json"), "utf8")) as Record<string, unknown>;
  const user = (name: string, password: string, p: unknown) => `{ user: "${name}", password: "${password}", permissions: ${JSON.stringify(p)} }`;
  return {
    config: `authorization { users = [ ${user("delift-coordinator", "coord-pw", perms.DELIFT_COORDINATOR_PERMISSIONS)}, ${user("delift-worker", "worker-pw", perms.DELIFT_WORKER_PERMISSIONS)}, { user: "admin", password: "admin-pw" } ] }`,
    coordinatorArgs: ["--nats-user", "delift-coordinator", "--nats-password", "coord-pw"],
    workerArgs: ["--nats-user", "delift-worker", "--nats-password", "worker-pw"],
    admin: { user: "admin", pass: "admin-pw" },
  };
}
