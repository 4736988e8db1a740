import {
  InProcessTransport,
  distributedObjective,
  memoryBlocks,
  runDistributedSelection,
  shardLayout,
  type DistributedAlgorithm,
  type DistributedHooks,
  type DistributedReport,
  type ShardTransport,
} from "../../../common/src/selection/distributed/mod.js";
import {
  lazyGreedy,
  objectiveValue,
  rowMaxima,
  scaleKernelInPlace,
  stochasticGreedy,
  type CscKernel,
  type KernelScaling,
  type Objective,
  type ScalingReport,
  type SelectionResult,
} from "../../../common/src/mod.js";

import type { Stage } from "../jobs/job-spec.js";

export type { Stage };

export type SelectionSettings = {
  stage: Stage;
  k: number;
  optimizer: "stochastic" | "lazy";
  epsilon: number;
  seed: number;
  scaling: KernelScaling;
  eta: number;
  nu: number;
  /** Also run lazy greedy to report the ratio; "auto" does so when the kernel is small. */
  compareWithLazy: "auto" | "always" | "never";
};

/**
 * The kernels of a selection, raw (UF or cosine), in the orientation they are computed:
 * - main: rows = targets i in V, columns = examples j in V;
 * - task (FLMI): rows = targets q in Q, columns = examples i in V  (UF[q][i], DESIGN.md §1);
 * - continual (FLCG): rows = targets i in V, columns = examples e in E (UF[i][e]).
 */
export type SelectionKernels = { main: CscKernel; second: CscKernel | null };

export type SelectionOutcome = {
  result: SelectionResult;
  lazy: SelectionResult | null;
  objective: Objective;
  valueOfAll: number;
  scaling: { main: ScalingReport; second: ScalingReport | null };
  seconds: number;
  /** Set when the selection ran sharded (runSelectionSharded). */
  distributed?: DistributedReport | null;
};

const AUTO_LAZY_MAX_ENTRIES = 4_000_000;

/** Scales the kernels in place, builds the stage's objective and runs the optimiser. */
export function runSelection(kernels: SelectionKernels, s: SelectionSettings): SelectionOutcome {
  return runCentralSelection(kernels, s, prepareSelection(kernels, s));
}

/** What the stage's objective needs, the kernels scaled (in place): the first half of runSelection. */
export type PreparedSelection = { objective: Objective; scaling: { main: ScalingReport; second: ScalingReport | null } };

export function prepareSelection(kernels: SelectionKernels, s: SelectionSettings): PreparedSelection {
  const { main, second, objective } = prepareObjective(kernels, s);
  return { objective, scaling: { main, second } };
}

/** The central optimiser over prepared kernels (the second half of runSelection). */
export function runCentralSelection(kernels: SelectionKernels, s: SelectionSettings, prepared: PreparedSelection): SelectionOutcome {
  const started = performance.now();
  const { objective } = prepared;
  const options = { k: s.k, objective };
  const result = s.optimizer === "lazy" ? lazyGreedy(kernels.main, options) : stochasticGreedy(kernels.main, { ...options, epsilon: s.epsilon, seed: s.seed });
  const seconds = (performance.now() - started) / 1000;
  const wantLazy =
    s.optimizer !== "lazy" &&
    (s.compareWithLazy === "always" || (s.compareWithLazy === "auto" && kernels.main.rowIdx.length <= AUTO_LAZY_MAX_ENTRIES));
  const lazy = wantLazy ? lazyGreedy(kernels.main, options) : s.optimizer === "lazy" ? result : null;
  const all = Uint32Array.from({ length: kernels.main.nCols }, (_, j) => j);
  return {
    result,
    lazy,
    objective,
    valueOfAll: objectiveValue(kernels.main, all, objective),
    scaling: prepared.scaling,
    seconds,
  };
}

/**
 * The outcome of a selection that ran sharded elsewhere (the cluster's shard hosts) over these
 * prepared kernels: f(V) from them, and central lazy greedy for the ratio where affordable (auto:
 * kernels up to 4M entries; bands is lazy greedy pick for pick, so the ratio is 1 then).
 */
export function shardedOutcome(
  kernels: { main: CscKernel | null },
  s: SelectionSettings,
  prepared: PreparedSelection,
  result: SelectionResult & { distributed: DistributedReport },
  seconds: number,
  /** f(V), when it was computed without the kernel in memory (chunk by chunk). */
  valueOfAll?: number,
): SelectionOutcome {
  const { objective } = prepared;
  const main = kernels.main;
  const wantLazy = main !== null && (s.compareWithLazy === "always" || (s.compareWithLazy === "auto" && main.rowIdx.length <= AUTO_LAZY_MAX_ENTRIES));
  if (valueOfAll === undefined && main === null) throw new Error("f(V) needs the kernel or its value computed chunk by chunk");
  return {
    result,
    lazy: wantLazy ? lazyGreedy(main, { k: s.k, objective }) : null,
    objective,
    valueOfAll: valueOfAll ?? objectiveValue(main!, Uint32Array.from({ length: main!.nCols }, (_, j) => j), objective),
    scaling: prepared.scaling,
    seconds,
    distributed: result.distributed,
  };
}

/** Whether a selection also runs central lazy greedy for the ratio (auto: kernels up to 4M entries). */
export function wantsLazyComparison(s: SelectionSettings, nnz: number): boolean {
  return s.compareWithLazy === "always" || (s.compareWithLazy === "auto" && nnz <= AUTO_LAZY_MAX_ENTRIES);
}

export type ShardedOptions = {
  /** Number of shards (column ranges). */
  shards: number;
  algorithm?: DistributedAlgorithm;
  /** Where the shards live; default: that many shard hosts in this process. */
  transport?: ShardTransport;
  hooks?: DistributedHooks;
};

/**
 * runSelection with the optimiser sharded: the same scaling and objective, the picks of bands
 * (exactly lazy greedy's) or of partition-and-merge. The kernels stay usable afterwards (f(V) and
 * the optional lazy comparison use them). With a transport other than in-process, its hosts must
 * read the kernel themselves (a chunked directory): use runDistributedSelection directly.
 */
export async function runSelectionSharded(kernels: SelectionKernels, s: SelectionSettings, o: ShardedOptions): Promise<SelectionOutcome> {
  const started = performance.now();
  const { main, second, objective } = prepareObjective(kernels, s);
  const algorithm = o.algorithm ?? "bands";
  const kernel = kernels.main;
  const layout = shardLayout(memoryBlocks(kernel), o.shards, algorithm === "partition" ? Math.max(o.shards, 8) : o.shards);
  const transport = o.transport ?? new InProcessTransport(o.shards, { memory: new Map([["main", kernel]]) });
  const result = await runDistributedSelection(
    { session: `sel-${Math.random().toString(36).slice(2, 10)}`, nRows: kernel.nRows, nCols: kernel.nCols, shards: layout.shards, parts: layout.parts, source: { kind: "memory", key: "main" }, scaling: null },
    transport,
    { k: s.k, objective: distributedObjective(objective, kernel.nRows), algorithm },
    o.hooks,
  );
  const seconds = (performance.now() - started) / 1000;
  // Bands is lazy greedy pick for pick; the comparison (when the kernel is small) checks it.
  const wantLazy = s.compareWithLazy === "always" || (s.compareWithLazy === "auto" && kernel.rowIdx.length <= AUTO_LAZY_MAX_ENTRIES);
  const all = Uint32Array.from({ length: kernel.nCols }, (_, j) => j);
  return {
    result,
    lazy: wantLazy ? lazyGreedy(kernel, { k: s.k, objective }) : null,
    objective,
    valueOfAll: objectiveValue(kernel, all, objective),
    scaling: { main, second },
    seconds,
    distributed: result.distributed,
  };
}

function prepareObjective(kernels: SelectionKernels, s: SelectionSettings): { main: ScalingReport; second: ScalingReport | null; objective: Objective } {
  const main = scaleKernelInPlace(kernels.main, s.scaling);
  let second: ScalingReport | null = null;
  let objective: Objective = { kind: "fl" };
  if (s.stage !== "instruction") {
    if (!kernels.second) throw new Error(`stage "${s.stage}" needs its second kernel`);
    second = scaleKernelInPlace(kernels.second, s.scaling);
    objective =
      s.stage === "task"
        ? { kind: "flmi", targetMax: columnMaxima(kernels.second), eta: s.eta }
        : { kind: "flcg", existingMax: rowMaxima(kernels.second), nu: s.nu };
  }
  return { main, second, objective };
}

/** m[i] = max over stored entries of column i, floored at 0 (unstored entries are 0). */
export function columnMaxima(kernel: CscKernel): Float32Array {
  const maxima = new Float32Array(kernel.nCols);
  for (let c = 0; c < kernel.nCols; c++) {
    for (let p = kernel.colPtr[c]; p < kernel.colPtr[c + 1]; p++) if (kernel.values[p] > maxima[c]) maxima[c] = kernel.values[p];
  }
  return maxima;
}

export function valueHistogram(values: Float32Array, bins = 20): { edges: number[]; counts: number[] } {
  const counts = new Array<number>(bins).fill(0);
  for (let p = 0; p < values.length; p++) counts[Math.min(bins - 1, Math.max(0, Math.floor(values[p] * bins)))]++;
  return { edges: Array.from({ length: bins + 1 }, (_, k) => k / bins), counts };
}
