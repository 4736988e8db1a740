/**
 * Selection straight from a kernel directory (chunked, or kernel.bin from `delift kernel`), with
 * no data set or model: FL over the V x V kernel, central or distributed by the choice rule.
 * `delift select --kernel DIR --budget B --out OUT [--select-shards N]` runs this; the embedded
 * default's shards are objects in this process that read their own column ranges, the same code
 * a cluster runs over NATS.
 */
import { randomUUID } from "node:crypto";
import {
  ChunkedKernel,
  ConfigError,
  isChunkedKernelDir,
  lazyGreedy,
  parseBudget,
  readKernel,
  scaleKernelInPlace,
  scaleValuesInPlace,
  valueRange,
  type CscKernel,
  type KernelScaling,
  type SelectionResult,
} from "../../../common/src/mod.js";
import {
  InProcessTransport,
  chooseSelection,
  memoryBlocks,
  runDistributedSelection,
  shardLayout,
  type DistributedAlgorithm,
  type DistributedReport,
  type RoundInfo,
  type SelectionChoice,
} from "../../../common/src/selection/distributed/mod.js";
import type { KernelSection, SelectionReport } from "../report/types.js";
import { runSelection, valueHistogram } from "./run-selection.js";
import { writeSelection } from "./write-selection.js";

export type KernelSelectionOptions = {
  kernelDir: string;
  out: string;
  budget: string;
  optimizer: "stochastic" | "lazy";
  epsilon: number;
  seed: number;
  scaling: KernelScaling;
  compareWithLazy: "auto" | "always" | "never";
  /** --select-shards N, or null to let the choice rule decide. */
  shards: number | null;
  /** --select-memory BYTES (the choice rule's budget). */
  memoryBytes?: number;
  algorithm?: DistributedAlgorithm;
  signal?: AbortSignal;
  onRound?: (info: RoundInfo & { k: number }) => void;
  /** Awaited once the selection runs (central: before the optimiser; distributed: after round 1): the "selecting" hold point. */
  onSelecting?: () => Promise<void>;
  log?: (line: string) => void;
};

export type KernelSelectionOutcome = { summary: string; report: SelectionReport; choice: SelectionChoice };

const AUTO_LAZY_MAX_ENTRIES = 4_000_000;
const HISTOGRAM_BINS = 20;

export async function selectFromKernel(o: KernelSelectionOptions): Promise<KernelSelectionOutcome> {
  const started = performance.now();
  const source = await openKernel(o.kernelDir);
  const { nRows, nCols, nnz } = source;
  if (nRows !== nCols) throw new ConfigError(`${o.kernelDir}: a kernel to select from directly must be V x V (it is ${nRows} x ${nCols})`);
  const k = parseBudget(o.budget, nCols);
  const choice = chooseSelection({ nnz, nCols, shards: o.shards, memoryBytes: o.memoryBytes, algorithm: o.algorithm });
  o.log?.(`selection: ${choice.mode === "central" ? `central ${o.optimizer} greedy` : `${choice.algorithm} on ${choice.shards} shards`} (${choice.reason})`);
  const loadSeconds = (performance.now() - started) / 1000;
  const selectStarted = performance.now();

  let result: SelectionResult;
  let lazy: SelectionResult | null = null;
  let distributed: DistributedReport | null = null;
  let summaryStats: { valueOfAll: number; histogram: { edges: number[]; counts: number[] }; range: { min: number; max: number } };
  if (choice.mode === "central") {
    const kernel = await source.readAll();
    await o.onSelecting?.();
    const outcome = runSelection(
      { main: kernel, second: null },
      { stage: "instruction", k, optimizer: o.optimizer, epsilon: o.epsilon, seed: o.seed, scaling: o.scaling, eta: 1, nu: 1, compareWithLazy: o.compareWithLazy },
    );
    result = outcome.result;
    lazy = outcome.lazy;
    summaryStats = { valueOfAll: outcome.valueOfAll, histogram: valueHistogram(kernel.values, HISTOGRAM_BINS), range: { min: outcome.scaling.main.min, max: outcome.scaling.main.max } };
  } else {
    // Figures of the whole kernel (f(V), the histogram) chunk by chunk, so no full copy is needed for them.
    summaryStats = await source.summarize(o.scaling);
    const transport = new InProcessTransport(choice.shards, { memory: source.memory, handOver: true });
    const layout = shardLayout(source.blocks, choice.shards, choice.algorithm === "partition" ? Math.max(choice.shards, 8) : choice.shards);
    const dist = await runDistributedSelection(
      {
        session: `select-${randomUUID().slice(0, 8)}`,
        nRows,
        nCols,
        shards: layout.shards,
        parts: layout.parts,
        source: source.spec,
        scaling: source.spec.kind === "chunked-dir" ? { scaling: o.scaling, range: summaryStats.range } : null,
      },
      transport,
      { k, objective: { kind: "fl" }, algorithm: choice.algorithm },
      {
        signal: o.signal,
        log: o.log,
        onRound: async (info) => {
          o.onRound?.({ ...info, k });
          if (info.round === 1) await o.onSelecting?.();
        },
      },
    );
    result = dist;
    distributed = dist.distributed;
    const wantLazy = o.compareWithLazy === "always" || (o.compareWithLazy === "auto" && nnz <= AUTO_LAZY_MAX_ENTRIES);
    if (wantLazy) {
      const whole = await (await openKernel(o.kernelDir)).readAll();
      scaleKernelInPlace(whole, o.scaling);
      lazy = lazyGreedy(whole, { k });
    }
  }
  const selectionSeconds = (performance.now() - selectStarted) / 1000;
  const ids = await source.colIds();
  const optimizer = choice.mode === "central" ? o.optimizer : choice.algorithm;
  const lazyValue = lazy?.value ?? null;
  const report = kernelReport({
    o,
    k,
    optimizer,
    source,
    result,
    lazyValue,
    distributed,
    stats: summaryStats,
    ids,
    timings: { loadSeconds, kernelSeconds: 0, selectionSeconds, totalSeconds: (performance.now() - started) / 1000 },
  });
  const records: Record<string, unknown>[] = new Array(nCols);
  for (const j of result.order) records[j] = { id: ids[j] };
  o.signal?.throwIfAborted();
  await writeSelection(o.out, { records, order: result.order, gains: result.gains }, report);
  const r = report.result;
  const how = choice.mode === "central" ? `${o.optimizer} greedy` : `${choice.algorithm} on ${choice.shards} shards, ${distributed!.rounds} rounds`;
  return {
    choice,
    report,
    summary:
      `selected ${r.selected} of ${nCols} (FL, ${how}): f(A) = ${r.value.toFixed(4)} (${((100 * r.value) / (r.valueOfAll || 1)).toFixed(1)}% of f(V))` +
      (r.ratioToLazy !== null && optimizer !== "lazy" ? `, ${r.ratioToLazy.toFixed(4)} of lazy greedy` : ""),
  };
}

type KernelSource = {
  nRows: number;
  nCols: number;
  nnz: number;
  metadata: Record<string, unknown>;
  spec: { kind: "chunked-dir"; path: string } | { kind: "memory"; key: string };
  memory: Map<string, CscKernel>;
  blocks: { colStart: number; colEnd: number; weight: number }[];
  readAll(): Promise<CscKernel>;
  colIds(): Promise<string[]>;
  /** f(V) of FL (sum of row maxima), a histogram of the scaled values and the raw range, without a full copy. */
  summarize(scaling: KernelScaling): Promise<{ valueOfAll: number; histogram: { edges: number[]; counts: number[] }; range: { min: number; max: number } }>;
};

async function openKernel(dir: string): Promise<KernelSource> {
  if (await isChunkedKernelDir(dir)) {
    const opened = await ChunkedKernel.open(dir);
    const { index } = opened;
    return {
      nRows: index.nRows,
      nCols: index.nCols,
      nnz: index.nnz,
      metadata: index.metadata,
      spec: { kind: "chunked-dir", path: dir },
      memory: new Map(),
      blocks: index.chunks.map((c) => ({ colStart: c.colStart, colEnd: c.colEnd, weight: c.nnz + (c.colEnd - c.colStart) })),
      readAll: () => opened.readAll(),
      colIds: async () => (await opened.readIds("cols")) ?? Array.from({ length: index.nCols }, (_, j) => String(j)),
      summarize: async (scaling) => {
        const rowMax = new Float32Array(index.nRows);
        const counts = new Array<number>(HISTOGRAM_BINS).fill(0);
        for (let c = 0; c < index.chunks.length; c++) {
          const { kernel } = await opened.readChunk(c);
          scaleValuesInPlace(kernel.values, scaling, index.valueRange);
          accumulate(kernel, rowMax, counts);
        }
        return { valueOfAll: sum(rowMax), histogram: { edges: Array.from({ length: HISTOGRAM_BINS + 1 }, (_, b) => b / HISTOGRAM_BINS), counts }, range: index.valueRange };
      },
    };
  }
  const utility = await readKernel(dir);
  const kernel = utility.csc;
  const range = valueRange(kernel.values);
  let scaledWith: KernelScaling | null = null;
  const memory = new Map([["kernel", kernel]]);
  return {
    nRows: kernel.nRows,
    nCols: kernel.nCols,
    nnz: kernel.rowIdx.length,
    metadata: utility.metadata,
    spec: { kind: "memory", key: "kernel" },
    memory,
    blocks: memoryBlocks(kernel),
    readAll: async () => kernel,
    colIds: async () => utility.metadata.colIds,
    summarize: async (scaling) => {
      if (scaledWith === null) {
        scaleKernelInPlace(kernel, scaling);
        scaledWith = scaling;
      }
      const rowMax = new Float32Array(kernel.nRows);
      const counts = new Array<number>(HISTOGRAM_BINS).fill(0);
      accumulate(kernel, rowMax, counts);
      return { valueOfAll: sum(rowMax), histogram: { edges: Array.from({ length: HISTOGRAM_BINS + 1 }, (_, b) => b / HISTOGRAM_BINS), counts }, range };
    },
  };
}

function accumulate(kernel: CscKernel, rowMax: Float32Array, counts: number[]): void {
  const { rowIdx, values } = kernel;
  const bins = counts.length;
  for (let p = 0; p < values.length; p++) {
    const v = values[p];
    if (v > rowMax[rowIdx[p]]) rowMax[rowIdx[p]] = v;
    counts[Math.min(bins - 1, Math.max(0, Math.floor(v * bins)))]++;
  }
}

function sum(a: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i];
  return s;
}

function kernelReport(c: {
  o: KernelSelectionOptions;
  k: number;
  optimizer: SelectionReport["settings"]["optimizer"];
  source: KernelSource;
  result: SelectionResult;
  lazyValue: number | null;
  distributed: DistributedReport | null;
  stats: { valueOfAll: number; histogram: { edges: number[]; counts: number[] }; range: { min: number; max: number } };
  ids: string[];
  timings: SelectionReport["timings"];
}): SelectionReport {
  const { order, gains, value } = c.result;
  const step = Math.max(1, Math.ceil(order.length / 500));
  const curve: [number, number][] = [[0, 0]];
  const gainPoints: [number, number][] = [];
  let f = 0;
  for (let t = 0; t < order.length; t++) {
    f += gains[t];
    if (t % step === 0 || t === order.length - 1) {
      curve.push([t + 1, f]);
      gainPoints.push([t + 1, gains[t]]);
    }
  }
  const m = c.source.metadata;
  const kernel: KernelSection = {
    rows: "targets (V)",
    cols: "examples (V)",
    nRows: c.source.nRows,
    nCols: c.source.nCols,
    nnz: c.source.nnz,
    rawMin: c.stats.range.min,
    rawMax: c.stats.range.max,
    truncatedPrompts: null,
    tilesComputed: null,
    tilesReused: null,
    histogram: c.stats.histogram,
  };
  return {
    format: "delift-report/1",
    createdAt: new Date().toISOString(),
    settings: {
      stage: "instruction",
      objective: "fl",
      kernel: m.kernelType === "se" ? "se" : "utility",
      budget: c.o.budget,
      k: c.k,
      optimizer: c.optimizer,
      epsilon: c.optimizer === "stochastic" ? c.o.epsilon : null,
      seed: c.o.seed,
      scaling: c.o.scaling,
      eta: null,
      nu: null,
      maxLength: typeof m.maxLength === "number" ? m.maxLength : null,
      model: { dir: typeof m.model === "string" ? m.model : "", name: null, hash: typeof m.modelHash === "string" ? m.modelHash : "" },
    },
    data: { file: c.o.kernelDir, samples: c.source.nCols, skipped: 0, target: null, existing: null },
    kernel,
    secondKernel: null,
    result: {
      selected: order.length,
      value,
      valueOfAll: c.stats.valueOfAll,
      lazyValue: c.lazyValue,
      ratioToLazy: c.lazyValue === null ? null : c.lazyValue > 0 ? value / c.lazyValue : 1,
      evaluations: c.result.evaluations,
      curve,
      gains: gainPoints,
      distributed: c.distributed,
    },
    composition: [],
    timings: c.timings,
    preview: Array.from(order.slice(0, 15), (j, t) => ({ rank: t + 1, id: c.ids[j], source: null, gain: gains[t], x: "" })),
  };
}
