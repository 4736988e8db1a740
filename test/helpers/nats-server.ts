import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "./paths.js";

export type NatsServerOptions = {
  /** Extra configuration text (authorization, tls ...) appended to the generated config. */
  config?: string;
};

/**
 * A real nats-server (the Debian package) for tests: free loopback port, JetStream with file
 * storage in a temp dir. restart() keeps port and storage, as an operator's restart would.
 */
export class NatsServer {
  /** The last 20 kB the server printed (its log goes to stderr), for failure reports. */
  log = "";
  private process: ChildProcess | null = null;
  private constructor(
    readonly port: number,
    private readonly dir: { path: string; cleanup(): void },
    private readonly configPath: string,
  ) {}

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  static async start(options: NatsServerOptions = {}): Promise<NatsServer> {
    const port = await freePort();
    const dir = tempDir("delift-nats-");
    const configPath = join(dir.path, "nats.conf");
    writeFileSync(
      configPath,
      `listen: 127.0.0.1:${port}\njetstream { store_dir: "${join(dir.path, "js")}" }\nmax_payload: 8MB\n${options.config ?? ""}\n`,
    );
    const server = new NatsServer(port, dir, configPath);
    await server.launch();
    return server;
  }

  async stop(): Promise<void> {
    const p = this.process;
    if (!p) return;
    this.process = null;
    const exited = new Promise<void>((resolve) => p.once("exit", () => resolve()));
    p.kill("SIGTERM");
    const timer = setTimeout(() => p.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.launch();
  }

  /** Starts the server again after stop(), on the same port and storage. */
  async resume(): Promise<void> {
    if (this.process) throw new Error("nats-server is already running");
    await this.launch();
  }

  get running(): boolean {
    return this.process !== null;
  }

  async cleanup(): Promise<void> {
    await this.stop();
    this.dir.cleanup();
  }

  private async launch(): Promise<void> {
    const p = spawn("nats-server", ["-c", this.configPath], { stdio: ["ignore", "ignore", "pipe"] });
    this.process = p;
    let log = "";
    p.stderr!.on("data", (d: Buffer) => {
      log = (log + d.toString()).slice(-20_000);
      this.log = log;
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`nats-server did not start:\n${log}`)), 10_000);
      const check = () => {
        if (/Server is ready/.test(log)) {
          clearTimeout(timer);
          resolve();
        }
      };
      p.stderr!.on("data", check);
      p.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`nats-server exited with ${code}:\n${log}`));
      });
    });
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}
