/**
 * One measured step of bench/select-distributed, in a process of its own so its time and peak
 * RSS are its own: `node child.js MODE JSON`, printing one JSON line.
 *   generate   a seeded random sparse kernel straight to the chunked format (column by column)
 *   central    the whole kernel read into memory, scaled, stochastic or lazy greedy
 *   coordinate the coordinator of a distributed selection over NATS with running shard hosts
 */
import { createHash } from "node:crypto";
import { connect } from "@nats-io/transport-node";
import { ChunkedKernel, ChunkedKernelWriter } from "../../common/src/mod.js";
import { lazyGreedy, scaleKernelInPlace, stochasticGreedy, Xoshiro128, type SelectionResult } from "../../common/src/selection/mod.js";
import { NatsShardTransport, runDistributedSelection, shardLayout, type DistributedAlgorithm } from "../../common/src/selection/distributed/mod.js";

type GenerateArgs = { dir: string; n: number; perColumn: number; seed: number };
type CentralArgs = { dir: string; k: number; optimizer: "stochastic" | "lazy"; epsilon: number; seed: number };
type CoordinateArgs = { dir: string; k: number; url: string; pool: string; hosts: number; shards: number; algorithm: DistributedAlgorithm; oversample: number; parts: number };

const peakRss = () => process.resourceUsage().maxRSS * 1024;

/** Same law as randomSparseKernel (distinct uniform rows per column, uniform values), one column at a time. */
async function generate(a: GenerateArgs) {
  const started = performance.now();
  const writer = await ChunkedKernelWriter.create(a.dir, { nRows: a.n, chunkBytes: 64 * 1024 * 1024 });
  const rng = new Xoshiro128(a.seed);
  const taken = new Uint8Array(a.n);
  const rows = new Uint32Array(a.perColumn);
  const values = new Float32Array(a.perColumn);
  for (let j = 0; j < a.n; j++) {
    let p = 0;
    for (let top = a.n - a.perColumn; top < a.n; top++) {
      const candidate = rng.nextBelow(top + 1);
      const row = taken[candidate] === 1 ? top : candidate;
      taken[row] = 1;
      rows[p++] = row;
    }
    rows.sort();
    for (let q = 0; q < a.perColumn; q++) {
      taken[rows[q]] = 0;
      values[q] = rng.nextUint32() / 4294967296;
    }
    if (!writer.appendColumn(rows, values)) await writer.drain();
  }
  const index = await writer.finish({ metadata: { generator: "bench/select-distributed", seed: a.seed } });
  return { seconds: (performance.now() - started) / 1000, nnz: index.nnz, bytes: index.chunks.reduce((s, c) => s + c.bytes, 0), chunks: index.chunks.length, peakRssBytes: peakRss() };
}

function checksum(r: SelectionResult): string {
  const h = createHash("sha256");
  h.update(new Uint8Array(r.order.buffer, r.order.byteOffset, r.order.byteLength));
  h.update(new Uint8Array(r.gains.buffer, r.gains.byteOffset, r.gains.byteLength));
  return h.digest("hex").slice(0, 16);
}

async function central(a: CentralArgs) {
  let t = performance.now();
  const kernel = await (await ChunkedKernel.open(a.dir)).readAll();
  scaleKernelInPlace(kernel, "min-max");
  const loadSeconds = (performance.now() - t) / 1000;
  t = performance.now();
  const cpu = process.cpuUsage();
  const r = a.optimizer === "lazy" ? lazyGreedy(kernel, { k: a.k }) : stochasticGreedy(kernel, { k: a.k, epsilon: a.epsilon, seed: a.seed });
  const seconds = (performance.now() - t) / 1000;
  const used = process.cpuUsage(cpu);
  return { loadSeconds, seconds, cpuSeconds: (used.user + used.system) / 1e6, value: r.value, evaluations: r.evaluations, checksum: checksum(r), peakRssBytes: peakRss() };
}

async function coordinate(a: CoordinateArgs) {
  const opened = await ChunkedKernel.open(a.dir);
  const nc = await connect({ servers: a.url, name: "bench-select-coordinator" });
  const transport = await NatsShardTransport.start(nc, { pool: a.pool, minHosts: a.hosts, waitMs: 60_000 });
  const blocks = opened.index.chunks.map((c) => ({ colStart: c.colStart, colEnd: c.colEnd, weight: c.nnz }));
  const layout = shardLayout(blocks, a.shards, a.algorithm === "partition" ? a.parts : a.shards);
  const t = performance.now();
  const cpu = process.cpuUsage();
  const r = await runDistributedSelection(
    {
      session: `bench-${a.pool}`,
      nRows: opened.nRows,
      nCols: opened.nCols,
      shards: layout.shards,
      parts: layout.parts,
      source: { kind: "chunked-dir", path: a.dir },
      scaling: { scaling: "min-max", range: opened.index.valueRange },
    },
    transport,
    { k: a.k, objective: { kind: "fl" }, algorithm: a.algorithm, oversample: a.oversample },
  );
  const seconds = (performance.now() - t) / 1000;
  const used = process.cpuUsage(cpu);
  await transport.close();
  await nc.close();
  return { seconds, cpuSeconds: (used.user + used.system) / 1e6, value: r.value, evaluations: r.evaluations, checksum: checksum(r), distributed: r.distributed, peakRssBytes: peakRss() };
}

async function main(): Promise<void> {
  const [mode, json] = process.argv.slice(2);
  const args = JSON.parse(json);
  const out = mode === "generate" ? await generate(args) : mode === "central" ? await central(args) : mode === "coordinate" ? await coordinate(args) : null;
  if (!out) throw new Error(`unknown mode "${mode}"`);
  process.stdout.write(JSON.stringify(out) + "\n");
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`${(err as Error).stack}\n`);
    process.exit(1);
  },
);
