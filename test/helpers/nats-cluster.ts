import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect, type NatsConnection, type NodeConnectionOptions } from "@nats-io/transport-node";
import { freePort } from "./nats-server.js";
import { tempDir } from "./paths.js";

export type StreamView = { leader: string; replicas: number; messages: number };
type StreamInfoReply = { error?: { code: number; description: string }; config?: { num_replicas: number }; cluster?: { leader?: string }; state?: { messages: number } };
type Member = { name: string; clientPort: number; configPath: string; process: ChildProcess | null; log: string };

/** A server of a cluster whose configuration the caller wrote (deploy files, say). */
export type ClusterMemberConfig = { name: string; clientPort: number; config: string };

/** How the test's own connections reach the servers (credentials, TLS). */
export type ClusterAccess = Omit<NodeConnectionOptions, "servers"> & { scheme?: "nats" | "tls" };

/**
 * A real three-server (or N-server) JetStream cluster on loopback: each server has its own client
 * and route ports, file storage in its own directory and routes to all the others. kill() is a
 * SIGKILL of one server, start() brings it back with the same name, ports and storage, so it
 * rejoins the cluster and catches up as an operator's restarted node would.
 */
export class NatsCluster {
  private constructor(
    private readonly members: Member[],
    private readonly dir: { path: string; cleanup(): void },
    private readonly access: ClusterAccess,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  /** Plain servers: no authentication, no TLS, each storing in its own directory. */
  static async start(size = 3, extraConfig = ""): Promise<NatsCluster> {
    const dir = tempDir("delift-nats-cluster-");
    const ports = await distinctFreePorts(size * 2);
    const routes = Array.from({ length: size }, (_, k) => `nats-route://127.0.0.1:${ports[2 * k + 1]}`).join(", ");
    const configs = Array.from({ length: size }, (_, k) => ({
      name: `n${k + 1}`,
      clientPort: ports[2 * k],
      config: [
        `server_name: n${k + 1}`,
        `listen: 127.0.0.1:${ports[2 * k]}`,
        `max_payload: 8MB`,
        `jetstream { store_dir: "${join(dir.path, `n${k + 1}`)}" }`,
        `cluster { name: delift-test, listen: 127.0.0.1:${ports[2 * k + 1]}, routes: [${routes}] }`,
        extraConfig,
      ].join("\n"),
    }));
    return NatsCluster.launchAll(configs, dir, {}, {});
  }

  /**
   * Servers from configurations the caller wrote, each file in `dir` (where relative includes
   * resolve), `env` for the `$VARIABLES` they use, `access` for the test's own connections.
   */
  static async fromConfigs(configs: ClusterMemberConfig[], dir: { path: string; cleanup(): void }, env: NodeJS.ProcessEnv, access: ClusterAccess): Promise<NatsCluster> {
    return NatsCluster.launchAll(configs, dir, env, access);
  }

  private static async launchAll(configs: ClusterMemberConfig[], dir: { path: string; cleanup(): void }, env: NodeJS.ProcessEnv, access: ClusterAccess): Promise<NatsCluster> {
    const members: Member[] = configs.map((c) => {
      const configPath = join(dir.path, `${c.name}.conf`);
      writeFileSync(configPath, c.config + "\n");
      return { name: c.name, clientPort: c.clientPort, configPath, process: null, log: "" };
    });
    const cluster = new NatsCluster(members, dir, access, env);
    try {
      await Promise.all(members.map((m) => cluster.launch(m)));
      await cluster.waitForMetaLeader();
    } catch (err) {
      await cluster.cleanup();
      throw err;
    }
    return cluster;
  }

  get names(): string[] {
    return this.members.map((m) => m.name);
  }

  /** Every server's client URL, comma-separated (what --nats takes). */
  get urls(): string {
    const scheme = this.access.scheme ?? "nats";
    const host = scheme === "tls" ? "localhost" : "127.0.0.1";
    return this.members.map((m) => `${scheme}://${host}:${m.clientPort}`).join(",");
  }

  running(name: string): boolean {
    return this.member(name).process !== null;
  }

  /** SIGKILL: no shutdown, no leadership hand-over; the others must elect new leaders. */
  async kill(name: string): Promise<void> {
    const m = this.member(name);
    const p = m.process;
    if (!p) return;
    m.process = null;
    const exited = new Promise<void>((resolve) => p.once("exit", () => resolve()));
    p.kill("SIGKILL");
    await exited;
  }

  async start(name: string): Promise<void> {
    const m = this.member(name);
    if (m.process) return;
    await this.launch(m);
  }

  /** Connects to the servers that are up (any of them can answer JetStream API requests). */
  connect(access: ClusterAccess = this.access): Promise<NatsConnection> {
    const { scheme: _scheme, ...options } = access;
    const servers = this.members.filter((m) => m.process).map((m) => `${(access.scheme ?? "nats") === "tls" ? "localhost" : "127.0.0.1"}:${m.clientPort}`);
    return connect({ maxReconnectAttempts: -1, reconnectTimeWait: 250, ...options, servers });
  }

  /**
   * The cluster's view of a stream: its leader's server name, replica count and stored messages.
   * While a leader is being elected the API does not answer (6 to 11 s on 2.9.10 here): this
   * retries until `timeoutMs`, also past "temporarily unavailable"; "not found" ends it at once.
   */
  async streamInfo(stream: string, timeoutMs = 30_000): Promise<StreamView> {
    const nc = await this.connect();
    const deadline = Date.now() + timeoutMs;
    let last = "no answer";
    try {
      while (Date.now() < deadline) {
        const reply = await nc.request(`$JS.API.STREAM.INFO.${stream}`, "", { timeout: 2000 }).catch((err: Error) => {
          last = err.message;
          return null;
        });
        if (reply) {
          const info = JSON.parse(new TextDecoder().decode(reply.data)) as StreamInfoReply;
          if (info.error?.code === 404) throw new Error(`stream ${stream}: ${info.error.description}`);
          if (info.error) last = info.error.description;
          else if (info.cluster?.leader) return { leader: info.cluster.leader, replicas: info.config?.num_replicas ?? 0, messages: info.state?.messages ?? 0 };
          else last = "no leader";
        }
        await new Promise((r) => setTimeout(r, 200));
      }
      throw new Error(`stream ${stream}: no leader within ${timeoutMs} ms (last answer: ${last})\n${this.logs()}`);
    } finally {
      await nc.close();
    }
  }

  logs(): string {
    return this.members.map((m) => `--- nats ${m.name}\n${m.log.slice(-2000)}`).join("\n");
  }

  async cleanup(): Promise<void> {
    await Promise.all(this.members.map((m) => this.kill(m.name)));
    this.dir.cleanup();
  }

  private member(name: string): Member {
    const m = this.members.find((x) => x.name === name);
    if (!m) throw new Error(`no server ${name} in the cluster (${this.names.join(", ")})`);
    return m;
  }

  private async launch(m: Member): Promise<void> {
    const p = spawn("nats-server", ["-c", m.configPath], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, ...this.env } });
    m.process = p;
    m.log = "";
    p.stderr!.on("data", (d: Buffer) => (m.log = (m.log + d.toString()).slice(-20_000)));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`nats-server ${m.name} did not start:\n${m.log}`)), 15_000);
      const check = () => {
        if (/Server is ready/.test(m.log)) {
          clearTimeout(timer);
          p.stderr!.off("data", check);
          resolve();
        }
      };
      p.stderr!.on("data", check);
      p.once("exit", (code) => {
        clearTimeout(timer);
        if (m.process === p) m.process = null;
        reject(new Error(`nats-server ${m.name} exited with ${code}:\n${m.log}`));
      });
    });
  }

  /** JetStream answers API requests only once the servers have elected a metadata leader. */
  private async waitForMetaLeader(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const nc = await this.connect();
    try {
      while (Date.now() < deadline) {
        const reply = await nc.request("$JS.API.INFO", "", { timeout: 2000 }).catch(() => null);
        if (reply) {
          const info = JSON.parse(new TextDecoder().decode(reply.data)) as { error?: unknown };
          if (!info.error) return;
        }
        await new Promise((r) => setTimeout(r, 200));
      }
      throw new Error(`the JetStream cluster elected no metadata leader within ${timeoutMs} ms\n${this.logs()}`);
    } finally {
      await nc.close();
    }
  }
}

async function distinctFreePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}
