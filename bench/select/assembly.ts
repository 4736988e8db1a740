/**
 * Kernel assembly + selection benchmark (`node dist/bench/select/main.js --assembly`): the job's
 * kernel assembled from synthetic tile results and selected, by today's in-memory path
 * (assembleKernel, the whole CSC in memory, then prepareSelection + stochastic greedy; for a
 * sharded selection writeShardedKernel's second copy into chunks) against the out-of-core path
 * (assembleKernelChunked into chunked files, then the main kernel read once for central
 * selection, or only streamed for a sharded one). Each path runs in its own child process,
 * so each peak RSS (getrusage ru_maxrss) is its own; all four in the same invocation.
 *
 * Tiles: blocks of 256 columns x 16 rows (rows seeded per tile), K / 16 tiles per column block, so a
 * column's entries arrive from K / 16 tiles; the distances are generated when a tile is read
 * (standing in for readStoredTile, which reads one tile file at a time in both paths).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ChunkedKernel, objectiveValue, sparseSimilarityKernel, type TileOutput } from "../../common/src/mod.js";
import { matrixFromFloat32 } from "../../common/src/embeddings/embedding-matrix.js";
import { stageSimilarityChunked } from "../../coordinator/src/kernel/stage-similarity.js";
import { assembleKernel } from "../../coordinator/src/kernel/assemble-kernel.js";
import { assembleKernelChunked } from "../../coordinator/src/kernel/assemble-chunked.js";
import type { TileSpec } from "../../coordinator/src/plan/tile-spec.js";
import { objectiveValueOfAllChunked, prepareChunkedSelection } from "../../coordinator/src/select/chunked-selection.js";
import { prepareSelection, runCentralSelection, type SelectionSettings } from "../../coordinator/src/select/run-selection.js";
import { writeShardedKernel } from "../../coordinator/src/select/sharded-job.js";

type Path = "memory-central" | "chunked-central" | "memory-sharded" | "chunked-sharded" | "se-memory-central" | "se-chunked-central";
const PATHS: Path[] = ["memory-central", "chunked-central", "memory-sharded", "chunked-sharded"];

export type AssemblyChild = {
  path: Path;
  n: number;
  k: number;
  nnz: number;
  assemblySeconds: number;
  selectionSeconds: number;
  /** RSS once the plan (tile specs, axes) is built, after a GC: what both paths start from. */
  rssAfterTilesMiB: number;
  peakAfterAssemblyMiB: number;
  peakMiB: number;
  /** peakMiB less rssAfterTilesMiB: what assembly + selection added (set by the parent). */
  peakOverPlanMiB?: number;
  value: number | null;
  valueOfAll: number;
  checksum: number | null;
};

const MiB = 1024 * 1024;
const peak = () => (process.resourceUsage().maxRSS * 1024) / MiB;

function tilesOf(n: number, k: number): TileSpec[] {
  const tiles: TileSpec[] = [{ kind: "baseline", id: "b", targets: Uint32Array.from({ length: n }, (_, i) => i) }];
  const width = 256;
  for (let c = 0; c < n; c += width) {
    const columns = Uint32Array.from({ length: Math.min(width, n - c) }, (_, q) => c + q);
    for (let part = 0; part < k / 16; part++) {
      // 16 distinct rows per tile; parts of one block are disjoint (row = base + 16 * part + q mod n).
      const base = (Math.imul(c / width + 1, 2654435761) >>> 0) % n;
      const rows = Uint32Array.from({ length: 16 }, (_, q) => (base + part * 16 + q) % n).sort();
      tiles.push({ kind: "pairs", id: `t${c}-${part}`, columns, rows });
    }
  }
  return tiles;
}

function outputOf(tile: TileSpec, n: number): TileOutput {
  if (tile.kind === "baseline") return { distances: new Float32Array(n).fill(0.9), truncated: 0 };
  const count = tile.columns.length * tile.rows.length;
  const d = new Float32Array(count);
  let h = 0;
  for (let i = 0; i < tile.id.length; i++) h = Math.imul(h ^ tile.id.charCodeAt(i), 16777619);
  for (let q = 0; q < count; q++) {
    h = (Math.imul(h ^ q, 2246822519) + 0x9e3779b9) >>> 0;
    d[q] = (h >>> 8) / 2 ** 24;
  }
  return { distances: d, truncated: 0 };
}

const settings = (n: number): SelectionSettings => ({ stage: "instruction", k: Math.floor(0.3 * n), optimizer: "stochastic", epsilon: 0.01, seed: 1, scaling: "min-max", eta: 1, nu: 1, compareWithLazy: "never" });

/**
 * DELIFT (SE) on given embeddings (64-d float32, seeded), K seeded candidates a row standing in
 * for the search's lists: today's sparseSimilarityKernel whole in memory, or staged block by block.
 */
async function runSeChild(path: Path, n: number, k: number): Promise<AssemblyChild> {
  const dim = 64;
  const data = new Float32Array(n * dim);
  let h = 12345;
  for (let p = 0; p < data.length; p++) {
    h = (Math.imul(h, 1103515245) + 12345) >>> 0;
    data[p] = (h >>> 8) / 2 ** 24 - 0.5;
  }
  const matrix = matrixFromFloat32(data, dim);
  const ptr = Uint32Array.from({ length: n + 1 }, (_, r) => k * r);
  const ids = new Uint32Array(k * n);
  for (let r = 0; r < n; r++) {
    const base = (Math.imul(r + 1, 2654435761) >>> 0) % (n - k);
    for (let q = 0; q < k; q++) ids[k * r + q] = base + q;
  }
  const table = { ptr, ids };
  const all = Uint32Array.from({ length: n }, (_, i) => i);
  (globalThis as { gc?: () => void }).gc?.();
  const rssAfterTilesMiB = process.memoryUsage.rss() / MiB;
  const s = settings(n);
  const dir = mkdtempSync(join(tmpdir(), "delift-assembly-bench-"));
  try {
    let started = performance.now();
    if (path === "se-memory-central") {
      const kernel = sparseSimilarityKernel(matrix, all, all, table);
      const assemblySeconds = (performance.now() - started) / 1000;
      const peakAfterAssemblyMiB = peak();
      started = performance.now();
      const kernels = { main: kernel, second: null };
      const o = runCentralSelection(kernels, s, prepareSelection(kernels, s));
      return { path, n, k, nnz: kernel.rowIdx.length, assemblySeconds, selectionSeconds: (performance.now() - started) / 1000, rssAfterTilesMiB, peakAfterAssemblyMiB, peakMiB: peak(), value: o.result.value, valueOfAll: o.valueOfAll, checksum: checksum(o.result.order) };
    }
    const index = await stageSimilarityChunked(matrix, { rows: all, cols: all, table }, join(dir, "main"));
    const assemblySeconds = (performance.now() - started) / 1000;
    const peakAfterAssemblyMiB = peak();
    started = performance.now();
    const c = await prepareChunkedSelection({ main: { dir: join(dir, "main"), index }, second: null }, s, true);
    const o = runCentralSelection({ main: c.main!, second: null }, s, c.prepared);
    return { path, n, k, nnz: index.nnz, assemblySeconds, selectionSeconds: (performance.now() - started) / 1000, rssAfterTilesMiB, peakAfterAssemblyMiB, peakMiB: peak(), value: o.result.value, valueOfAll: o.valueOfAll, checksum: checksum(o.result.order) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function runChild(path: Path, n: number, k: number): Promise<AssemblyChild> {
  if (path.startsWith("se-")) return runSeChild(path, n, k);
  const tiles = tilesOf(n, k);
  const rowOf = new Map<number, number>();
  for (let i = 0; i < n; i++) rowOf.set(i, i);
  const axes = { rowOf, colOf: rowOf, nRows: n, nCols: n };
  const read = async (t: TileSpec) => outputOf(t, n);
  (globalThis as { gc?: () => void }).gc?.();
  const rssAfterTilesMiB = process.memoryUsage.rss() / MiB;
  const dir = mkdtempSync(join(tmpdir(), "delift-assembly-bench-"));
  const s = settings(n);
  try {
    let started = performance.now();
    if (path.startsWith("memory")) {
      const a = await assembleKernel(tiles, axes, read);
      const assemblySeconds = (performance.now() - started) / 1000;
      const peakAfterAssemblyMiB = peak();
      started = performance.now();
      const kernels = { main: a.csc, second: null };
      const prepared = prepareSelection(kernels, s);
      if (path === "memory-central") {
        const o = runCentralSelection(kernels, s, prepared);
        return { path, n, k, nnz: a.csc.rowIdx.length, assemblySeconds, selectionSeconds: (performance.now() - started) / 1000, rssAfterTilesMiB, peakAfterAssemblyMiB, peakMiB: peak(), value: o.result.value, valueOfAll: o.valueOfAll, checksum: checksum(o.result.order) };
      }
      // Today's sharded job: the scaled kernel stays in the thread and is written again as chunks.
      await writeShardedKernel(join(dir, "sharded"), a.csc, prepared.objective, { mode: "distributed", reason: "bench", algorithm: "bands", shards: 2 }, s.k);
      const valueOfAll = objectiveValue(a.csc, Uint32Array.from({ length: n }, (_, j) => j), prepared.objective);
      return { path, n, k, nnz: a.csc.rowIdx.length, assemblySeconds, selectionSeconds: (performance.now() - started) / 1000, rssAfterTilesMiB, peakAfterAssemblyMiB, peakMiB: peak(), value: null, valueOfAll, checksum: null };
    }
    const a = await assembleKernelChunked(tiles, axes, read, join(dir, "main"));
    const assemblySeconds = (performance.now() - started) / 1000;
    const peakAfterAssemblyMiB = peak();
    started = performance.now();
    const staged = { main: { dir: join(dir, "main"), index: a.index }, second: null };
    if (path === "chunked-central") {
      const c = await prepareChunkedSelection(staged, s, true);
      const o = runCentralSelection({ main: c.main!, second: null }, s, c.prepared);
      return { path, n, k, nnz: a.index.nnz, assemblySeconds, selectionSeconds: (performance.now() - started) / 1000, rssAfterTilesMiB, peakAfterAssemblyMiB, peakMiB: peak(), value: o.result.value, valueOfAll: o.valueOfAll, checksum: checksum(o.result.order) };
    }
    // The sharded job now: the hosts read these files; the thread streams f(V) and the histogram.
    const c = await prepareChunkedSelection(staged, s, false);
    const valueOfAll = await objectiveValueOfAllChunked(staged.main.dir, s.scaling, c.prepared.objective);
    await ChunkedKernel.open(staged.main.dir);
    return { path, n, k, nnz: a.index.nnz, assemblySeconds, selectionSeconds: (performance.now() - started) / 1000, rssAfterTilesMiB, peakAfterAssemblyMiB, peakMiB: peak(), value: null, valueOfAll, checksum: null };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function checksum(order: Uint32Array): number {
  let h = 0;
  for (let t = 0; t < order.length; t++) h = (Math.imul(h, 31) + order[t]) >>> 0;
  return h;
}

/** Parent: every path for every K in a child of its own, then one table. */
export async function runAssemblyBench(argv: string[]): Promise<void> {
  const get = (name: string, fallback: string) => {
    const at = argv.indexOf(name);
    return at >= 0 ? argv[at + 1] : fallback;
  };
  const child = get("--assembly-child", "");
  const n = Number(get("--n", "1000000"));
  if (child) {
    const [path, k] = child.split(":");
    process.stdout.write(JSON.stringify(await runChild(path as Path, n, Number(k))) + "\n");
    return;
  }
  const se = argv.includes("--se");
  const paths: Path[] = se ? ["se-memory-central", "se-chunked-central"] : PATHS;
  const ks = get("--neighbors", se ? "16" : "16,64").split(",").map(Number);
  if (!ks.every((k) => Number.isInteger(k) && k >= 16 && k % 16 === 0)) throw new Error("--neighbors takes multiples of 16, e.g. 16,64");
  console.log(`assembly + selection bench: n = ${n}, K = ${ks.join(", ")}, budget 30%, stochastic greedy; load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  const script = fileURLToPath(new URL("./main.js", import.meta.url));
  const results: AssemblyChild[] = [];
  for (const k of ks) {
    for (const path of paths) {
      const r = spawnSync(process.execPath, ["--max-old-space-size=8192", "--expose-gc", script, "--assembly", "--n", String(n), "--assembly-child", `${path}:${k}`], { encoding: "utf8", maxBuffer: 1 << 20 });
      if (r.status !== 0) throw new Error(`child ${path} K=${k} failed: ${r.stderr}`);
      const c = JSON.parse(r.stdout.trim().split("\n").pop()!) as AssemblyChild;
      c.peakOverPlanMiB = c.peakMiB - c.rssAfterTilesMiB;
      results.push(c);
      console.log(
        `K=${String(k).padStart(3)} ${path.padEnd(16)} nnz ${c.nnz.toLocaleString("en-US")}: assembly ${c.assemblySeconds.toFixed(1)} s, ` +
          `${path.endsWith("central") ? "selection" : "sharded prep"} ${c.selectionSeconds.toFixed(1)} s; RSS with tiles planned ${c.rssAfterTilesMiB.toFixed(0)} MiB, ` +
          `peak after assembly ${c.peakAfterAssemblyMiB.toFixed(0)} MiB, peak ${c.peakMiB.toFixed(0)} MiB (+${c.peakOverPlanMiB!.toFixed(0)} over the plan)` +
          (c.value !== null ? `; f(A) = ${c.value.toFixed(4)}, f(V) = ${c.valueOfAll.toFixed(4)}` : `; f(V) = ${c.valueOfAll.toFixed(4)}`),
      );
    }
    const of = (p: Path) => results.find((r) => r.k === k && r.path === p)!;
    if (se) {
      const [m, c] = [of("se-memory-central"), of("se-chunked-central")];
      console.log(`SE K=${k}: picks and f(A) ${m.checksum === c.checksum && m.value === c.value ? "identical" : "DIFFER"}; kernel build peak over the plan ${(c.peakAfterAssemblyMiB - c.rssAfterTilesMiB).toFixed(0)} vs ${(m.peakAfterAssemblyMiB - m.rssAfterTilesMiB).toFixed(0)} MiB; whole peak ${c.peakMiB.toFixed(0)} vs ${m.peakMiB.toFixed(0)} MiB`);
      continue;
    }
    const same = of("memory-central").checksum === of("chunked-central").checksum && of("memory-central").value === of("chunked-central").value;
    console.log(
      `K=${k}: picks and f(A) ${same ? "identical" : "DIFFER"}; assembly peak chunked / memory = ${(of("chunked-central").peakAfterAssemblyMiB / of("memory-central").peakAfterAssemblyMiB).toFixed(2)}, ` +
        `central peak ${(of("chunked-central").peakMiB / of("memory-central").peakMiB).toFixed(2)}, sharded peak ${(of("chunked-sharded").peakMiB / of("memory-sharded").peakMiB).toFixed(2)}; ` +
        `added over the plan: central ${of("chunked-central").peakOverPlanMiB!.toFixed(0)} vs ${of("memory-central").peakOverPlanMiB!.toFixed(0)} MiB, sharded ${of("chunked-sharded").peakOverPlanMiB!.toFixed(0)} vs ${of("memory-sharded").peakOverPlanMiB!.toFixed(0)} MiB`,
    );
  }
  console.log(`load average after: ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  console.log(JSON.stringify({ bench: "select-assembly", n, results }));
}
