import { test } from "uvu";
import * as assert from "uvu/assert";
import { existsSync, readFileSync, readdirSync, truncateSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, InputError } from "../../common/src/errors.js";
import { ChunkedKernel, ChunkedKernelAssembler, KERNEL_FORMAT, denseSimilarityKernel, sparseSimilarityKernel, writeKernel, writeKernelFromChunked, type KernelMetadata, type TileOutput } from "../../common/src/mod.js";
import { lazyGreedy, objectiveValue, type CscKernel } from "../../common/src/selection/mod.js";
import { InProcessTransport, runDistributedSelection, shardLayout } from "../../common/src/selection/distributed/mod.js";
import { assembleKernel } from "../../coordinator/src/kernel/assemble-kernel.js";
import { assembleKernelChunked, stageKernelChunked } from "../../coordinator/src/kernel/assemble-chunked.js";
import { stageSimilarityChunked } from "../../coordinator/src/kernel/stage-similarity.js";
import { matrixFromFloat32 } from "../../common/src/embeddings/embedding-matrix.js";
import type { TileSpec } from "../../coordinator/src/plan/tile-spec.js";
import { objectiveValueOfAllChunked, prepareChunkedSelection } from "../../coordinator/src/select/chunked-selection.js";
import { prepareSelection, runCentralSelection, valueHistogram, type SelectionSettings } from "../../coordinator/src/select/run-selection.js";
import { shardedPlanOf } from "../../coordinator/src/select/sharded-job.js";
import { tempDir } from "../helpers/paths.js";

/** Deterministic stand-in for tile results: a hash of (tile id, k) in [0, 1). */
function distance(id: string, k: number): number {
  let h = 2166136261;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 16777619);
  h = Math.imul(h ^ k, 2246822519) >>> 0;
  h ^= h >>> 13;
  return (Math.imul(h, 3266489917) >>> 0) / 2 ** 32;
}

/**
 * A synthetic job's tiles: baselines for every target, pair tiles dense (blocks of rows x cols)
 * or sparse (each column its own ascending rows), shuffled so tiles arrive out of order.
 */
function syntheticTiles(nRows: number, nCols: number, mode: "dense" | "sparse", seed: number): { tiles: TileSpec[]; outputs: Map<string, TileOutput> } {
  const tiles: TileSpec[] = [];
  for (let a = 0; a < nRows; a += 7) tiles.push({ kind: "baseline", id: `b${a}`, targets: Uint32Array.from({ length: Math.min(7, nRows - a) }, (_, k) => a + k) });
  if (mode === "dense") {
    for (let r = 0; r < nRows; r += 5) {
      for (let c = 0; c < nCols; c += 9) {
        tiles.push({ kind: "pairs", id: `d${r}-${c}`, rows: Uint32Array.from({ length: Math.min(5, nRows - r) }, (_, k) => r + k), columns: Uint32Array.from({ length: Math.min(9, nCols - c) }, (_, k) => 1000 + c + k) });
      }
    }
  } else {
    // Each column's rows split over two tiles (tile A: the even picks, tile B: the odd).
    for (let c = 0; c < nCols; c += 11) {
      const cols = Uint32Array.from({ length: Math.min(11, nCols - c) }, (_, k) => 1000 + c + k);
      for (const part of [0, 1]) {
        const ptr = [0];
        const rows: number[] = [];
        for (const g of cols) {
          const all = [...new Set(Array.from({ length: 6 }, (_, q) => (g * 31 + q * q * 17 + seed) % nRows))].sort((x, y) => x - y);
          rows.push(...all.filter((_, q) => q % 2 === part));
          ptr.push(rows.length);
        }
        tiles.push({ kind: "pairs", id: `s${c}-${part}`, columns: cols, rows: Uint32Array.from(rows), rowPtr: Uint32Array.from(ptr) });
      }
    }
  }
  // Fisher-Yates with a fixed seed: tiles in no particular order.
  let s = seed;
  for (let i = tiles.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const j = s % (i + 1);
    [tiles[i], tiles[j]] = [tiles[j], tiles[i]];
  }
  const outputs = new Map<string, TileOutput>();
  for (const t of tiles) {
    const n = t.kind === "baseline" ? t.targets.length : t.rowPtr ? t.rows.length : t.rows.length * t.columns.length;
    outputs.set(t.id, { distances: Float32Array.from({ length: n }, (_, k) => (t.kind === "baseline" ? 0.5 + distance(t.id, k) / 2 : distance(t.id, k))), truncated: t.id.length % 2 });
  }
  return { tiles, outputs };
}

async function rejects(fn: () => Promise<unknown>, check: RegExp | ((err: unknown) => boolean)): Promise<void> {
  let caught: unknown = null;
  try {
    await fn();
  } catch (err) {
    caught = err ?? new Error("undefined");
  }
  assert.ok(caught, "expected a rejection");
  if (check instanceof RegExp) assert.match((caught as Error).message, check);
  else assert.ok(check(caught), `unexpected error: ${(caught as Error).message}`);
}

function axesOf(nRows: number, nCols: number) {
  return { rowOf: new Map(Array.from({ length: nRows }, (_, k) => [k, k])), colOf: new Map(Array.from({ length: nCols }, (_, k) => [1000 + k, k])), nRows, nCols };
}

function sameKernel(a: CscKernel, b: CscKernel): void {
  assert.is(a.nRows, b.nRows);
  assert.is(a.nCols, b.nCols);
  assert.equal(Buffer.from(a.colPtr.buffer, a.colPtr.byteOffset, a.colPtr.byteLength), Buffer.from(b.colPtr.buffer, b.colPtr.byteOffset, b.colPtr.byteLength));
  assert.equal(Buffer.from(a.rowIdx.buffer, a.rowIdx.byteOffset, a.rowIdx.byteLength), Buffer.from(b.rowIdx.buffer, b.rowIdx.byteOffset, b.rowIdx.byteLength));
  assert.equal(Buffer.from(a.values.buffer, a.values.byteOffset, a.values.byteLength), Buffer.from(b.values.buffer, b.values.byteOffset, b.values.byteLength));
}

function metadataOf(nRows: number, nCols: number, nnz: number, truncated: { baseline: number; pairs: number }): KernelMetadata {
  return {
    format: KERNEL_FORMAT,
    nRows,
    nCols,
    nnz,
    rowIds: Array.from({ length: nRows }, (_, k) => `r${k}`),
    colIds: Array.from({ length: nCols }, (_, k) => `c${k}`),
    modelHash: "m",
    settingsKey: "s",
    maxLength: 64,
    truncated,
    data: "x.jsonl",
  };
}

for (const mode of ["dense", "sparse"] as const) {
  test(`chunked assembly (${mode} tiles, out of order, spilling): the same kernel as in memory; kernel.bin/parquet/json byte-identical`, async () => {
    const dir = tempDir();
    try {
      const nRows = mode === "dense" ? 23 : 300;
      const nCols = mode === "dense" ? 530 : 2100;
      const { tiles, outputs } = syntheticTiles(nRows, nCols, mode, 7);
      const read = async (t: TileSpec) => outputs.get(t.id)!;
      const whole = await assembleKernel(tiles, axesOf(nRows, nCols), read);
      // 4 KiB of spill buffers: every bucket goes through its file several times.
      const a = await assembleKernelChunked(tiles, axesOf(nRows, nCols), read, join(dir.path, "k"), { spillBytes: 4096 });
      assert.equal(a.truncated, whole.truncated);
      assert.ok(a.index.chunks.length > 1, "several chunks");
      const opened = await ChunkedKernel.open(join(dir.path, "k"));
      sameKernel(await opened.readAll(), whole.csc);
      assert.equal(await opened.readBaseline(), whole.baseline);
      assert.equal(readdirSync(dir.path), ["k"], "no spill or temporary files left");

      const meta = metadataOf(nRows, nCols, whole.csc.rowIdx.length, whole.truncated);
      await writeKernel(join(dir.path, "mem"), { csc: whole.csc, baseline: whole.baseline, metadata: meta });
      await writeKernelFromChunked(join(dir.path, "chunked"), join(dir.path, "k"), meta);
      for (const f of ["kernel.bin", "kernel.parquet", "kernel.json"]) assert.ok(readFileSync(join(dir.path, "mem", f)).equals(readFileSync(join(dir.path, "chunked", f))), `${f} byte-identical`);
    } finally {
      dir.cleanup();
    }
  });
}

test("kernel.parquet from chunks: byte-identical across Parquet row groups (1.1M entries)", async () => {
  const dir = tempDir();
  try {
    const nRows = 64;
    const nCols = 17_500;
    const colPtr = Uint32Array.from({ length: nCols + 1 }, (_, j) => j * nRows);
    const rowIdx = Uint32Array.from({ length: nCols * nRows }, (_, p) => p % nRows);
    const values = Float32Array.from({ length: nCols * nRows }, (_, p) => distance("v", p) - 0.5);
    const csc = { nRows, nCols, colPtr, rowIdx, values };
    const baseline = Float32Array.from({ length: nRows }, (_, k) => k / nRows);
    await stageKernelChunked(join(dir.path, "k"), csc, baseline);
    const meta = metadataOf(nRows, nCols, rowIdx.length, { baseline: 0, pairs: 0 });
    await writeKernel(join(dir.path, "mem"), { csc, baseline, metadata: meta });
    await writeKernelFromChunked(join(dir.path, "chunked"), join(dir.path, "k"), meta);
    for (const f of ["kernel.bin", "kernel.parquet"]) assert.ok(readFileSync(join(dir.path, "mem", f)).equals(readFileSync(join(dir.path, "chunked", f))), `${f} byte-identical`);
  } finally {
    dir.cleanup();
  }
});

const settingsFor = (stage: SelectionSettings["stage"], optimizer: SelectionSettings["optimizer"], scaling: SelectionSettings["scaling"]): SelectionSettings => ({
  stage,
  k: 40,
  optimizer,
  epsilon: 0.05,
  seed: 3,
  scaling,
  eta: 0.8,
  nu: 0.9,
  compareWithLazy: "always",
});

for (const [stage, optimizer, scaling] of [
  ["instruction", "stochastic", "min-max"],
  ["task", "lazy", "min-max"],
  ["continual", "stochastic", "clip-at-zero"],
] as const) {
  test(`selection over staged chunks (${stage}, ${optimizer}, ${scaling}): picks, f(A), f(V), scaling and histograms as in memory`, async () => {
    const dir = tempDir();
    try {
      const n = 400;
      const main = await assembleKernel(...argsOf(n, n, "sparse", 11));
      const second = stage === "instruction" ? null : await assembleKernel(...argsOf(stage === "task" ? 37 : n, stage === "task" ? n : 53, "dense", 5));
      const staged = {
        main: { dir: join(dir.path, "main"), index: await stageKernelChunked(join(dir.path, "main"), main.csc) },
        second: second ? { dir: join(dir.path, "second"), index: await stageKernelChunked(join(dir.path, "second"), second.csc) } : null,
      };
      const s = settingsFor(stage, optimizer, scaling);
      const chunked = await prepareChunkedSelection(staged, s, true);
      const got = runCentralSelection({ main: chunked.main!, second: null }, s, chunked.prepared);

      const copy = (k: CscKernel) => ({ ...k, values: k.values.slice() });
      const kernels = { main: copy(main.csc), second: second ? copy(second.csc) : null };
      const prepared = prepareSelection(kernels, s);
      const want = runCentralSelection(kernels, s, prepared);
      assert.equal(Array.from(got.result.order), Array.from(want.result.order));
      assert.equal(Array.from(got.result.gains), Array.from(want.result.gains));
      assert.is(got.result.value, want.result.value);
      assert.is(got.lazy!.value, want.lazy!.value);
      assert.is(got.valueOfAll, want.valueOfAll);
      assert.equal(got.scaling, want.scaling);
      assert.equal(chunked.histograms.main, valueHistogram(kernels.main.values));
      if (kernels.second) assert.equal(chunked.histograms.second, valueHistogram(kernels.second.values));
      assert.equal(chunked.shapes.main, { nRows: n, nCols: n, nnz: main.csc.rowIdx.length });
      // Without the main kernel in memory: f(V) chunk by chunk, and shard hosts scaling the unscaled chunks.
      assert.is(await objectiveValueOfAllChunked(staged.main.dir, s.scaling, chunked.prepared.objective), want.valueOfAll);
      const streamed = await prepareChunkedSelection(staged, s, false);
      assert.is(streamed.main, null);
      assert.equal(streamed.histograms, chunked.histograms);
      const plan = shardedPlanOf(staged.main.index, streamed.prepared.objective, { mode: "distributed", reason: "test", algorithm: "bands", shards: 3 }, s.k, s.scaling);
      const layout = shardLayout(plan.blocks, 3, 3);
      const dist = await runDistributedSelection(
        { session: `t-${stage}`, nRows: plan.nRows, nCols: plan.nCols, shards: layout.shards, parts: layout.parts, source: { kind: "chunked-dir", path: staged.main.dir }, scaling: plan.scaling },
        new InProcessTransport(3),
        { k: s.k, objective: plan.objective, algorithm: "bands" },
      );
      const lazy = lazyGreedy(kernels.main, { k: s.k, objective: prepared.objective });
      assert.equal(Array.from(dist.order), Array.from(lazy.order), "bands over the staged chunks picks as lazy greedy in memory");
      assert.is(objectiveValue(kernels.main, dist.order, prepared.objective), lazy.value);
    } finally {
      dir.cleanup();
    }
  });
}

function argsOf(nRows: number, nCols: number, mode: "dense" | "sparse", seed: number): Parameters<typeof assembleKernel> {
  const { tiles, outputs } = syntheticTiles(nRows, nCols, mode, seed);
  return [tiles, axesOf(nRows, nCols), async (t: TileSpec) => outputs.get(t.id)!];
}

test("chunked assembly: overlapping tiles are an error naming the column; nothing is left behind", async () => {
  const dir = tempDir();
  try {
    const { tiles, outputs } = syntheticTiles(20, 40, "dense", 1);
    const dup = tiles.find((t) => t.kind === "pairs")!;
    const twice = [...tiles, { ...dup, id: "again" }];
    outputs.set("again", outputs.get(dup.id)!);
    await rejects(() => assembleKernelChunked(twice, axesOf(20, 40), async (t) => outputs.get(t.id)!, join(dir.path, "k"), { spillBytes: 4096 }), (err: unknown) => err instanceof ConfigError && /kernel column \d+ has row \d+ twice: overlapping tiles/.test((err as Error).message));
    assert.equal(readdirSync(dir.path), []);
  } finally {
    dir.cleanup();
  }
});

test("chunked assembly: cancelled while reading tiles or while building chunks leaves no files", async () => {
  const dir = tempDir();
  try {
    const { tiles, outputs } = syntheticTiles(30, 600, "sparse", 2);
    // Cancelled while tiles are read (after some entries were spilled).
    const early = new AbortController();
    let reads = 0;
    const read = async (t: TileSpec) => {
      if (++reads === 40) early.abort(new Error("cancelled"));
      return outputs.get(t.id)!;
    };
    await rejects(() => assembleKernelChunked(tiles, axesOf(30, 600), read, join(dir.path, "k"), { spillBytes: 4096, signal: early.signal }), /cancelled/);
    assert.equal(readdirSync(dir.path), []);
    // Cancelled while the buckets become chunks.
    const late = new AbortController();
    const assembler = await ChunkedKernelAssembler.create(join(dir.path, "k2"), { nRows: 30, nCols: 600, chunkColumns: 8, spillBytes: 4096, signal: late.signal });
    for (let c = 0; c < 600; c++) for (let r = 0; r < 30; r += 3) assembler.add(r, c, r + c);
    const finishing = assembler.finish();
    late.abort(new Error("cancelled late"));
    await rejects(() => finishing, /cancelled late/);
    assert.equal(readdirSync(dir.path), []);
  } finally {
    dir.cleanup();
  }
});

test("a torn chunk of a staged kernel is reported, naming the file", async () => {
  const dir = tempDir();
  try {
    const main = await assembleKernel(...argsOf(50, 300, "sparse", 4));
    const index = await stageKernelChunked(join(dir.path, "k"), main.csc);
    const torn = join(dir.path, "k", index.chunks[1].file);
    truncateSync(torn, index.chunks[1].bytes - 8);
    await rejects(() => ChunkedKernel.open(join(dir.path, "k")), (err: unknown) => err instanceof InputError && (err as Error).message.includes(index.chunks[1].file) && /torn or truncated/.test((err as Error).message));
    assert.ok(existsSync(torn));
  } finally {
    dir.cleanup();
  }
});

test("SE on given embeddings: the search's candidates staged block by block give the in-memory kernel's exact bytes (sparse and dense)", async () => {
  const dir = tempDir();
  try {
    const n = 3000;
    const dim = 8;
    const matrix = matrixFromFloat32(Float32Array.from({ length: n * dim }, (_, p) => distance("e", p) - 0.5), dim);
    const rows = Uint32Array.from({ length: 2500 }, (_, k) => k + 500);
    const cols = Uint32Array.from({ length: 2000 }, (_, k) => k);
    // Candidate lists: 12 ascending distinct columns per row (matrix rows in [0, 2000)).
    const ptr = Uint32Array.from({ length: rows.length + 1 }, (_, r) => 12 * r);
    const ids = new Uint32Array(12 * rows.length);
    for (let r = 0; r < rows.length; r++) {
      const set = new Set<number>();
      for (let q = 0; set.size < 12; q++) set.add((r * 131 + q * q * 17) % cols.length);
      ids.set(Uint32Array.from(set).sort(), 12 * r);
    }
    const table = { ptr, ids };
    const sparse = await stageSimilarityChunked(matrix, { rows, cols, table }, join(dir.path, "sparse"), { spillBytes: 8192, blockEntries: 5000 });
    assert.is(sparse.nnz, ids.length);
    sameKernel(await (await ChunkedKernel.open(join(dir.path, "sparse"))).readAll(), sparseSimilarityKernel(matrix, rows, cols, table));
    const few = rows.subarray(0, 300);
    await stageSimilarityChunked(matrix, { rows: few, cols, table: null }, join(dir.path, "dense"), { blockEntries: 50_000 });
    sameKernel(await (await ChunkedKernel.open(join(dir.path, "dense"))).readAll(), denseSimilarityKernel(matrix, few, cols));
  } finally {
    dir.cleanup();
  }
});

test.run();
