/**
 * Distributed selection benchmark: seeded random sparse kernels written to disk in the chunked
 * format (default 10^6 columns x 64 entries and 10^7 x 32), budget 30%, FL. In one invocation:
 * central stochastic and lazy greedy (each in a process of its own, the whole kernel in memory),
 * then bands on 2 and 4 shard hosts (processes) over a real nats-server on loopback, and
 * partition-and-merge on 2 hosts at the first size. Each figure: time (and its ratio to central
 * stochastic greedy of the same run), rounds, payload bytes over the bus, peak RSS of the
 * coordinator and of the largest host, f(A) and its ratio to central lazy greedy. "seconds" of
 * central greedy is the optimiser alone (it reads the whole kernel first, shown as "load"); that
 * of a distributed run includes the hosts loading their ranges (of which "load").
 *
 *   node dist/bench/select-distributed/main.js [--sizes 1000000x64,10000000x32] [--hosts 2,4]
 *     [--budget 30%] [--seed 1] [--epsilon 0.01] [--dir DIR] [--keep] [--no-lazy-above N]
 *
 * The kernels are deleted afterwards unless --keep (10^7 x 32 is about 2.6 GB). Peak RSS of hosts
 * is read from /proc (VmHWM) before they stop.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statfsSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { parseBudget } from "../../common/src/selection/mod.js";
import { NatsServer } from "../../test/helpers/nats-server.js";
import { ROOT } from "../common/paths.js";

const CHILD = join(fileURLToPath(import.meta.url), "..", "child.js");
const HOST_MAIN = join(ROOT, "dist", "common", "src", "selection", "distributed", "shard-host-main.js");
const GIB = 1024 ** 3;
const MIB = 1024 ** 2;

type Measured = {
  label: string;
  hosts: number | null;
  seconds: number;
  value: number;
  checksum: string;
  rounds: number | null;
  bytes: number | null;
  coordinatorPeakRss: number;
  hostPeakRss: number | null;
  evaluations: number;
  reassignments?: number;
  /** Seconds spent loading the kernel: central reads it before its clock starts; shard hosts load their ranges inside it. */
  loadSeconds: number;
};

function child<T>(mode: string, args: object): T {
  const r = spawnSync(process.execPath, [CHILD, mode, JSON.stringify(args)], { encoding: "utf8", maxBuffer: 1 << 22, stdio: ["ignore", "pipe", "inherit"] });
  if (r.status !== 0) throw new Error(`${mode} child failed (status ${r.status}, signal ${r.signal})`);
  const lines = r.stdout.trim().split("\n");
  return JSON.parse(lines[lines.length - 1]) as T;
}

function childAsync<T>(mode: string, args: object): Promise<T> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CHILD, mode, JSON.stringify(args)], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    p.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    p.once("exit", (code, signal) => {
      if (code !== 0) return reject(new Error(`${mode} child failed (status ${code}, signal ${signal})`));
      const lines = out.trim().split("\n");
      resolve(JSON.parse(lines[lines.length - 1]) as T);
    });
  });
}

/** Peak resident set of a live process (Linux /proc), or NaN. */
function peakRssOf(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

async function startHosts(url: string, pool: string, count: number): Promise<ChildProcess[]> {
  const hosts = Array.from({ length: count }, (_, i) =>
    spawn(process.execPath, [HOST_MAIN, "--nats", url, "--pool", pool, "--host-id", `${pool}-h${i}`], { stdio: ["ignore", "ignore", "pipe"] }),
  );
  await Promise.all(
    hosts.map(
      (h) =>
        new Promise<void>((resolve, reject) => {
          let log = "";
          const timer = setTimeout(() => reject(new Error(`shard host did not start:\n${log}`)), 60_000);
          h.stderr!.on("data", (d: Buffer) => {
            log += d.toString();
            if (/ready/.test(log)) (clearTimeout(timer), resolve());
          });
          h.once("exit", (code) => reject(new Error(`shard host exited with ${code}:\n${log}`)));
        }),
    ),
  );
  return hosts;
}

async function stopHosts(hosts: ChildProcess[]): Promise<void> {
  await Promise.all(
    hosts.map((h) => {
      if (h.exitCode !== null) return Promise.resolve();
      const exited = new Promise<void>((resolve) => h.once("exit", () => resolve()));
      h.kill("SIGTERM");
      return exited;
    }),
  );
}

async function distributed(url: string, dir: string, k: number, hosts: number, algorithm: "bands" | "partition", oversample = 2): Promise<Measured> {
  const pool = `bench${hosts}${algorithm[0]}${Math.random().toString(36).slice(2, 7)}`;
  const procs = await startHosts(url, pool, hosts);
  // Sample the hosts' peak RSS while the coordinator runs, and read it once more before they stop.
  const peaks = new Map<number, number>();
  const sample = () => procs.forEach((p) => p.pid && peaks.set(p.pid, Math.max(peaks.get(p.pid) ?? 0, peakRssOf(p.pid) || 0)));
  const timer = setInterval(sample, 1000);
  try {
    const r = await childAsync<{ seconds: number; value: number; checksum: string; evaluations: number; peakRssBytes: number; distributed: { rounds: number; bytesSent: number; bytesReceived: number; reassignments: number; seconds: { load: number } } }>("coordinate", {
      dir,
      k,
      url,
      pool,
      hosts,
      shards: hosts,
      algorithm,
      oversample,
      parts: 8,
    });
    sample();
    return {
      label: algorithm === "bands" ? "bands (distributed)" : `partition-and-merge (oversample ${oversample})`,
      hosts,
      seconds: r.seconds,
      value: r.value,
      checksum: r.checksum,
      rounds: r.distributed.rounds,
      bytes: r.distributed.bytesSent + r.distributed.bytesReceived,
      coordinatorPeakRss: r.peakRssBytes,
      hostPeakRss: Math.max(...peaks.values()),
      evaluations: r.evaluations,
      reassignments: r.distributed.reassignments,
      loadSeconds: r.distributed.seconds.load,
    };
  } finally {
    clearInterval(timer);
    await stopHosts(procs);
  }
}

function centralRun(dir: string, k: number, optimizer: "stochastic" | "lazy", epsilon: number, seed: number): Measured {
  const r = child<{ seconds: number; loadSeconds: number; value: number; checksum: string; evaluations: number; peakRssBytes: number }>("central", { dir, k, optimizer, epsilon, seed });
  return { label: `central ${optimizer} greedy`, hosts: null, seconds: r.seconds, value: r.value, checksum: r.checksum, rounds: null, bytes: null, coordinatorPeakRss: r.peakRssBytes, hostPeakRss: null, evaluations: r.evaluations, loadSeconds: r.loadSeconds };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      sizes: { type: "string", default: "1000000x64,10000000x32" },
      hosts: { type: "string", default: "2,4" },
      budget: { type: "string", default: "30%" },
      seed: { type: "string", default: "1" },
      epsilon: { type: "string", default: "0.01" },
      dir: { type: "string" },
      keep: { type: "boolean", default: false },
      "no-lazy-above": { type: "string" },
    },
    strict: true,
  });
  const sizes = values.sizes!.split(",").map((s) => {
    const m = /^(\d+)x(\d+)$/.exec(s.trim());
    if (!m) throw new Error(`--sizes: "${s}" is not NxK`);
    return { n: Number(m[1]), perColumn: Number(m[2]) };
  });
  const hostCounts = values.hosts!.split(",").map(Number);
  const seed = Number(values.seed);
  const epsilon = Number(values.epsilon);
  const lazyLimit = values["no-lazy-above"] ? Number(values["no-lazy-above"]) : Infinity;
  const base = values.dir ?? mkdtempSync(join(tmpdir(), "delift-bench-select-distributed-"));
  const nats = await NatsServer.start({ config: "max_payload: 1048576" });
  const startLoad = loadavg();
  console.log(`select-distributed bench: sizes ${values.sizes}, hosts ${values.hosts}, budget ${values.budget}, FL, seed ${seed}; load average ${startLoad.map((l) => l.toFixed(2)).join(" ")}; kernels in ${base}`);
  const summary: unknown[] = [];
  try {
    for (const { n, perColumn } of sizes) {
      const k = parseBudget(values.budget!, n);
      const dir = join(base, `kernel-${n}x${perColumn}`);
      const free = statfsSync(base);
      const need = 8 * n * perColumn + 4 * n;
      if (free.bavail * free.bsize < 1.5 * need) throw new Error(`not enough disk for ${n} x ${perColumn} (${(need / GIB).toFixed(1)} GiB) in ${base}`);
      console.log(`\n== ${n} columns x ${perColumn} entries, k = ${k}`);
      const gen = child<{ seconds: number; bytes: number; nnz: number; chunks: number }>("generate", { dir, n, perColumn, seed });
      console.log(`  kernel written: ${(gen.bytes / MIB).toFixed(0)} MiB in ${gen.chunks} chunks, ${gen.seconds.toFixed(1)} s`);
      try {
        const rows: Measured[] = [centralRun(dir, k, "stochastic", epsilon, seed)];
        if (n <= lazyLimit) rows.push(centralRun(dir, k, "lazy", epsilon, seed));
        for (const h of hostCounts) rows.push(await distributed(nats.url, dir, k, h, "bands"));
        if (n === sizes[0].n) {
          rows.push(await distributed(nats.url, dir, k, hostCounts[0], "partition", 2));
          rows.push(await distributed(nats.url, dir, k, hostCounts[0], "partition", 1));
        }
        const stochastic = rows[0];
        const lazy = rows.find((r) => r.label === "central lazy greedy") ?? null;
        console.log(`  ${"algorithm".padEnd(34)} ${"hosts".padStart(5)} ${"seconds".padStart(8)} ${"load".padStart(6)} ${"x stoch".padStart(8)} ${"rounds".padStart(6)} ${"bus MiB".padStart(8)} ${"coord RSS".padStart(10)} ${"host RSS".padStart(9)} ${"f(A)".padStart(14)} ${"f/f(lazy)".padStart(9)}`);
        for (const r of rows) {
          const ratio = lazy ? r.value / lazy.value : NaN;
          console.log(
            `  ${r.label.padEnd(34)} ${(r.hosts === null ? "-" : String(r.hosts)).padStart(5)} ${r.seconds.toFixed(2).padStart(8)} ${r.loadSeconds.toFixed(1).padStart(6)} ${(r.seconds / stochastic.seconds).toFixed(2).padStart(8)} ` +
              `${(r.rounds === null ? "-" : String(r.rounds)).padStart(6)} ${(r.bytes === null ? "-" : (r.bytes / MIB).toFixed(1)).padStart(8)} ${`${(r.coordinatorPeakRss / MIB).toFixed(0)} MiB`.padStart(10)} ` +
              `${(r.hostPeakRss === null ? "-" : `${(r.hostPeakRss / MIB).toFixed(0)} MiB`).padStart(9)} ${r.value.toFixed(2).padStart(14)} ${(Number.isNaN(ratio) ? "-" : ratio.toFixed(5)).padStart(9)}`,
          );
        }
        const bands = rows.filter((r) => r.label.startsWith("bands"));
        const sameAsLazy = lazy ? bands.every((b) => b.checksum === lazy.checksum) : null;
        console.log(`  bands picks identical to central lazy greedy's (order and gains): ${sameAsLazy === null ? "not compared" : sameAsLazy ? "yes" : "NO"}`);
        const two = bands.find((b) => b.hosts === 2);
        const targets = {
          valueRatio: lazy && n === 1_000_000 ? Math.min(...bands.map((b) => b.value / lazy.value)) >= 0.99 : null,
          timeOn2Hosts: two && n === 1_000_000 ? two.seconds <= 3 * stochastic.seconds : null,
          coordinatorRss: n === 10_000_000 ? Math.max(...bands.map((b) => b.coordinatorPeakRss)) <= GIB : null,
        };
        const mark = (t: boolean | null) => (t === null ? "n/a at this size" : t ? "met" : "MISSED");
        console.log(`  targets: f >= 0.99 f(lazy) at 1e6x64: ${mark(targets.valueRatio)}; 2 hosts within 3x central stochastic at 1e6x64: ${mark(targets.timeOn2Hosts)}; coordinator peak RSS <= 1 GiB at 1e7x32: ${mark(targets.coordinatorRss)}`);
        summary.push({ n, perColumn, k, generateSeconds: gen.seconds, kernelBytes: gen.bytes, rows, sameAsLazy, targets });
      } finally {
        if (!values.keep) rmSync(dir, { recursive: true, force: true });
      }
    }
  } finally {
    await nats.cleanup();
    if (!values.keep && !values.dir) rmSync(base, { recursive: true, force: true });
  }
  const endLoad = loadavg();
  console.log(`\nload average at the end ${endLoad.map((l) => l.toFixed(2)).join(" ")}`);
  console.log(JSON.stringify({ bench: "select-distributed", loadAverage: { start: startLoad, end: endLoad }, sizes: summary }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
