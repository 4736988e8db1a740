import { test } from "uvu";
import * as assert from "uvu/assert";
import { join } from "node:path";
import { ProtocolError } from "../../common/src/errors.js";
import { writeChunkedKernel, ChunkedKernel } from "../../common/src/mod.js";
import { cscFromDense, lazyGreedy, objectiveValue, randomSparseKernel, rowMaxima, scaleKernelInPlace, Xoshiro128, type CscKernel, type Objective, type SelectionResult } from "../../common/src/selection/mod.js";
import {
  InProcessTransport,
  ShardHost,
  decodeReply,
  decodeRequest,
  distributedObjective,
  encodeReply,
  encodeRequest,
  memoryBlocks,
  runDistributedSelection,
  shardLayout,
  type DistributedHooks,
  type DistributedResult,
  type DistributedSettings,
  type HostReply,
  type HostRequest,
  type ShardTransport,
  chooseSelection,
  partQuotas,
} from "../../common/src/selection/distributed/mod.js";
import { tempDir } from "../helpers/paths.js";

type RunOptions = {
  shards: number;
  hosts?: number;
  codec?: boolean;
  objective?: Objective;
  settings?: Partial<DistributedSettings>;
  hooks?: DistributedHooks;
  transport?: ShardTransport;
  blockWidth?: number;
  /** Hand a copy of the kernel over (shards then drop the entries coverage has passed). */
  handOver?: boolean;
};

async function runInProcess(kernel: CscKernel, k: number, o: RunOptions): Promise<DistributedResult> {
  const parts = o.settings?.parts ?? o.shards;
  const layout = shardLayout(memoryBlocks(kernel, o.blockWidth ?? 16), o.shards, o.settings?.algorithm === "partition" ? parts : o.shards);
  const given = o.handOver ? { ...kernel, rowIdx: kernel.rowIdx.slice(), values: kernel.values.slice() } : kernel;
  const transport = o.transport ?? new InProcessTransport(o.hosts ?? 2, { memory: new Map([["k", given]]), codec: o.codec, handOver: o.handOver });
  return runDistributedSelection(
    { session: "t1", nRows: kernel.nRows, nCols: kernel.nCols, shards: layout.shards, parts: layout.parts, source: { kind: "memory", key: "k" }, scaling: null },
    transport,
    { k, objective: distributedObjective(o.objective ?? { kind: "fl" }, kernel.nRows), algorithm: "bands", ...o.settings },
    o.hooks,
  );
}

function sameSelection(got: SelectionResult, want: SelectionResult, what: string): void {
  assert.equal(Array.from(got.order), Array.from(want.order), `${what}: order`);
  assert.equal(Array.from(got.gains), Array.from(want.gains), `${what}: gains`);
  assert.is(got.value, want.value, `${what}: value`);
}

function scaled(kernel: CscKernel): CscKernel {
  scaleKernelInPlace(kernel, "min-max");
  return kernel;
}

/** Columns of a few clusters: columns of one cluster share most of their rows, so picks interact within rounds. */
function clusteredKernel(n: number, seed: number): CscKernel {
  const rng = new Xoshiro128(seed);
  const dense = new Float32Array(n * n);
  const clusters = 5;
  for (let j = 0; j < n; j++) {
    const c = j % clusters;
    for (let i = 0; i < n; i++) if (i % clusters === c || rng.nextBelow(10) === 0) dense[i * n + j] = Math.floor((rng.nextUint32() / 2 ** 32) * 8) / 8;
  }
  return cscFromDense(dense, n, n);
}

test("bands: the same picks, gains and f(A) as central lazy greedy for FL, FLMI and FLCG, on any number of shards and hosts", async () => {
  const kernels: [string, CscKernel][] = [
    ["random", scaled(randomSparseKernel({ nRows: 400, nCols: 400, perColumn: 12, seed: 7 }))],
    ["ties", scaled(randomSparseKernel({ nRows: 300, nCols: 300, perColumn: 9, seed: 8, levels: 3 }))],
    ["clustered", clusteredKernel(90, 9)],
  ];
  for (const [name, kernel] of kernels) {
    const n = kernel.nCols;
    const second = scaled(randomSparseKernel({ nRows: n, nCols: 40, perColumn: 6, seed: 10 }));
    const objectives: Objective[] = [
      { kind: "fl" },
      { kind: "flmi", targetMax: rowMaxima(second), eta: 0.7 },
      { kind: "flcg", existingMax: rowMaxima(second), nu: 0.9 },
    ];
    for (const objective of objectives) {
      for (const k of [1, Math.ceil(0.3 * n), n]) {
        const central = lazyGreedy(kernel, { k, objective });
        for (const [shards, hosts, codec, handOver] of [[1, 1, false, false], [2, 2, true, true], [5, 3, false, true]] as const) {
          const r = await runInProcess(kernel, k, { shards, hosts, codec, objective, handOver });
          sameSelection(r, central, `${name} ${objective.kind} k=${k} shards=${shards}`);
          assert.is(r.distributed.shards, shards);
        }
      }
    }
  }
});

test("bands: thresholds, band width and a candidate limit that cuts rounds short change the rounds, never the picks", async () => {
  const kernel = scaled(randomSparseKernel({ nRows: 600, nCols: 600, perColumn: 10, seed: 21, levels: 16 }));
  const k = 200;
  const central = lazyGreedy(kernel, { k });
  const rounds = new Set<number>();
  for (const settings of [{ bandWidth: 0.5 }, { bandWidth: 0.01 }, { bandWidth: 0.2, candidateLimit: 3 }, { candidateLimit: 1 }]) {
    const r = await runInProcess(kernel, k, { shards: 3, hosts: 2, settings });
    sameSelection(r, central, JSON.stringify(settings));
    rounds.add(r.distributed.rounds);
  }
  assert.ok(rounds.size > 1, "the settings did change the number of rounds");
});

test("bands: a host lost mid-selection hands its shards over and the selection is unchanged", async () => {
  const kernel = scaled(randomSparseKernel({ nRows: 500, nCols: 500, perColumn: 10, seed: 31 }));
  const k = 150;
  const central = lazyGreedy(kernel, { k });
  const transport = new InProcessTransport(3, { memory: new Map([["k", kernel]]), codec: true });
  const moved: string[] = [];
  const r = await runInProcess(kernel, k, {
    shards: 4,
    transport,
    hooks: {
      onRound: ({ round }) => {
        if (round === 3) transport.loseHost("local-1");
        if (round === 6) transport.loseHost("local-0");
      },
      onReassign: ({ shard, from, to }) => moved.push(`${shard}:${from}->${to}`),
    },
  });
  sameSelection(r, central, "after two hosts were lost");
  assert.ok(r.distributed.reassignments >= 2, `${r.distributed.reassignments} reassignments`);
  assert.ok(moved.every((m) => m.endsWith("->local-2") || m.includes("local-1->local-0")), moved.join(" "));
  assert.equal(transport.host("local-2")!.holdings(), [], "the survivor released the session");
});

// A forged reply that is consistent in itself (an open column with made-up entries and their gain)
// cannot be told from a true one without the kernel: that is what authenticated messages are for.
test("bands: replies that do not check out (forged gains, a picked column, a foreign row) are refused and the selection is unchanged", async () => {
  const kernel = scaled(randomSparseKernel({ nRows: 300, nCols: 300, perColumn: 8, seed: 41 }));
  const k = 90;
  const central = lazyGreedy(kernel, { k });
  const tamperings: ((reply: HostReply, picked: number[]) => void)[] = [
    (reply) => {
      if (reply.kind === "round" && reply.shards[0].gains.length > 0) reply.shards[0].gains[0] *= 1.5;
    },
    (reply) => {
      if (reply.kind === "round" && reply.shards[0].rows.length > 0) reply.shards[0].rows[0] = 300;
    },
    (reply, picked) => {
      if (reply.kind !== "round") return;
      // A picked column put where it keeps the list in order (inside the shard's range): it must be refused as not open.
      const cols = reply.shards[0].cols;
      for (const j of picked) {
        const t = cols.findIndex((c, i) => c > j && (i === 0 || cols[i - 1] < j));
        if (t >= 0) {
          cols[t] = j;
          return;
        }
      }
    },
  ];
  for (const tamper of tamperings) {
    const inner = new InProcessTransport(2, { memory: new Map([["k", kernel]]) });
    let calls = 0;
    const picked: number[] = [];
    const tampering: ShardTransport = {
      hosts: () => inner.hosts(),
      traffic: () => inner.traffic(),
      request: async (host: string, request: HostRequest) => {
        const reply = await inner.request(host, request);
        if (request.kind === "round") picked.push(...request.picked);
        // Once, in a later round, through the wire codec as a forger would send it.
        if (request.kind === "round" && request.round >= 4 && calls++ === 0) {
          const copy = decodeReply(encodeReply(reply));
          tamper(copy, picked);
          return copy;
        }
        return reply;
      },
    };
    const logs: string[] = [];
    const r = await runInProcess(kernel, k, { shards: 2, transport: tampering, hooks: { log: (line) => logs.push(line) } });
    sameSelection(r, central, "tampered reply");
    assert.ok(logs.some((l) => /failed shards .*(claims gain|out of range or order|is not open)/.test(l)), logs.join("\n"));
  }
});

test("messages: garbage and hostile requests are ProtocolErrors; a host answers a bad request with an error, never a crash", async () => {
  const bad: Uint8Array[] = [
    new Uint8Array([0xc1]),
    encodeRequest({ kind: "release", session: "a b" } as HostRequest),
    Uint8Array.from(Buffer.from("not msgpack at all")),
  ];
  for (const b of bad) assert.throws(() => decodeRequest(b), (e: Error) => e instanceof ProtocolError);
  const round: HostRequest = { kind: "round", session: "s", round: 1, tau: 1, limit: 10, shards: [0], updateRows: Uint32Array.of(1, 2), updateValues: Float32Array.of(0.5), picked: new Uint32Array(0) };
  assert.throws(() => decodeRequest(encodeRequest(round)), /differ in length/);
  assert.throws(() => decodeRequest(encodeRequest({ ...round, updateValues: Float32Array.of(NaN, 1) })), /finite/);
  assert.throws(() => decodeRequest(encodeRequest({ ...round, tau: 0, updateValues: Float32Array.of(1, 1) })), /tau must be positive/);
  assert.throws(
    () => decodeRequest(encodeRequest({ kind: "load", session: "s", source: { kind: "memory", key: "x" }, scaling: null, nRows: 3, objective: "fl", cap: null, cur: null, shards: [] })),
    /cannot travel/,
  );
  const ok = decodeRequest(encodeRequest({ ...round, updateValues: Float32Array.of(1, 1) }));
  assert.equal(Array.from((ok as { updateRows: Uint32Array }).updateRows), [1, 2]);

  const host = new ShardHost("h");
  const reply = await host.handle({ ...round, updateValues: Float32Array.of(1, 1) } as HostRequest);
  assert.is(reply.kind, "error");
  assert.is((reply as { name: string }).name, "ShardNotLoadedError");
  const missing = await host.handle({ kind: "load", session: "s", source: { kind: "chunked-dir", path: "/nonexistent/kernel" }, scaling: null, nRows: 3, objective: "fl", cap: null, cur: null, shards: [{ range: { id: 0, colStart: 0, colEnd: 2 }, selected: new Uint32Array(0), allowed: null }] });
  assert.is(missing.kind, "error");
  assert.is((missing as { name: string }).name, "InputError");
});

test("bands over a chunked kernel on disk: each shard reads and scales its own range; the same picks as central lazy greedy over the whole", async () => {
  const dir = tempDir();
  try {
    const raw = randomSparseKernel({ nRows: 300, nCols: 300, perColumn: 9, seed: 51 });
    for (let p = 0; p < raw.values.length; p++) raw.values[p] = raw.values[p] * 2 - 0.5;
    const path = join(dir.path, "kernel");
    await writeChunkedKernel(path, raw, {}, { chunkBytes: 800 });
    const opened = await ChunkedKernel.open(path);
    const whole = { ...raw, values: raw.values.slice() };
    scaleKernelInPlace(whole, "min-max");
    const k = 90;
    const central = lazyGreedy(whole, { k });
    for (const shards of [1, 3]) {
      const layout = shardLayout(opened.index.chunks.map((c) => ({ colStart: c.colStart, colEnd: c.colEnd, weight: c.nnz })), shards, shards);
      const r = await runDistributedSelection(
        { session: "disk", nRows: 300, nCols: 300, shards: layout.shards, parts: layout.parts, source: { kind: "chunked-dir", path }, scaling: { scaling: "min-max", range: opened.index.valueRange } },
        new InProcessTransport(2, { codec: true }),
        { k, objective: { kind: "fl" }, algorithm: "bands" },
      );
      sameSelection(r, central, `${shards} shards from disk`);
      assert.ok(r.distributed.bytesSent > 0 && r.distributed.bytesReceived > 0);
    }
  } finally {
    dir.cleanup();
  }
});

test("partition: the same picks on 1, 2 or 4 shards (parts are fixed); f(A) close to lazy greedy's; FLMI and FLCG too", async () => {
  const kernel = scaled(randomSparseKernel({ nRows: 800, nCols: 800, perColumn: 10, seed: 61 }));
  const second = scaled(randomSparseKernel({ nRows: 800, nCols: 50, perColumn: 6, seed: 62 }));
  const k = 240;
  for (const objective of [{ kind: "fl" }, { kind: "flmi", targetMax: rowMaxima(second) }, { kind: "flcg", existingMax: rowMaxima(second) }] as Objective[]) {
    const central = lazyGreedy(kernel, { k, objective });
    const runs: DistributedResult[] = [];
    for (const shards of [1, 2, 4]) runs.push(await runInProcess(kernel, k, { shards, hosts: 2, objective, settings: { algorithm: "partition", parts: 4, oversample: 1.5 } }));
    for (const r of runs.slice(1)) sameSelection(r, runs[0], `partition ${objective.kind}`);
    const ratio = runs[0].value / central.value;
    assert.ok(ratio > 0.97 && ratio <= 1 + 1e-12, `${objective.kind}: f ratio ${ratio}`);
    assert.is(objectiveValue(kernel, runs[0].order, objective), runs[0].value);
    assert.is(new Set(runs[0].order).size, k);
  }
});

test("runSelectionSharded: the three stages (FL, FLMI with Q, FLCG with E) give runSelection's lazy-greedy outcome on 3 in-process shards", async () => {
  const { runSelection, runSelectionSharded } = await import("../../coordinator/src/select/run-selection.js");
  const fresh = (seed: number, rows: number, cols: number) => randomSparseKernel({ nRows: rows, nCols: cols, perColumn: 7, seed });
  for (const stage of ["instruction", "task", "continual"] as const) {
    const make = () => ({
      main: fresh(71, 400, 400),
      second: stage === "task" ? fresh(72, 30, 400) : stage === "continual" ? fresh(73, 400, 30) : null,
    });
    const settings = { stage, k: 120, optimizer: "lazy" as const, epsilon: 0.01, seed: 0, scaling: "min-max" as const, eta: 0.8, nu: 1.1, compareWithLazy: "never" as const };
    const central = runSelection(make(), settings);
    const sharded = await runSelectionSharded(make(), { ...settings, compareWithLazy: "always" }, { shards: 3 });
    sameSelection(sharded.result, central.result, stage);
    assert.is(sharded.valueOfAll, central.valueOfAll);
    assert.is(sharded.lazy!.value, sharded.result.value);
    assert.is(sharded.distributed!.shards, 3);
  }
});

test("choice rule: central while the kernel fits the selection memory, bands over shards when it does not or when asked", () => {
  const gib = 1024 ** 3;
  assert.is(chooseSelection({ nnz: 64e6, nCols: 1e6, shards: null }).mode, "central");
  const big = chooseSelection({ nnz: 320e6, nCols: 1e7, shards: null, memoryBytes: gib });
  assert.equal([big.mode, big.mode === "distributed" && big.algorithm, big.mode === "distributed" && big.shards], ["distributed", "bands", 7]);
  const asked = chooseSelection({ nnz: 100, nCols: 10, shards: 3 });
  assert.equal([asked.mode, asked.mode === "distributed" && asked.shards], ["distributed", 3]);
  assert.throws(() => chooseSelection({ nnz: 100, nCols: 10, shards: 0 }), /positive integer/);
});

test("partition quotas: oversample * k apportioned by part size, each at least 1 and at most its part", () => {
  const parts = [{ colStart: 0, colEnd: 10 }, { colStart: 10, colEnd: 40 }, { colStart: 40, colEnd: 41 }];
  assert.equal(partQuotas(parts, 12, 1), [3, 9, 1]);
  assert.equal(partQuotas(parts, 12, 2).reduce((a, b) => a + b, 0) >= 24, true);
  assert.equal(partQuotas(parts, 41, 3), [10, 30, 1]);
});

test.run();
