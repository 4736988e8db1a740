import type { DistributedReport } from "../../../common/src/selection/distributed/mod.js";

/** report.json of a selection run: what was asked, what was computed, what came out. */
export type SelectionReport = {
  format: "delift-report/1";
  createdAt: string;
  settings: {
    stage: "instruction" | "task" | "continual";
    objective: "fl" | "flmi" | "flcg";
    kernel: "utility" | "se";
    budget: string;
    k: number;
    /** Central stochastic or lazy greedy, or a distributed algorithm (bands, partition). */
    optimizer: "stochastic" | "lazy" | "bands" | "partition";
    epsilon: number | null;
    seed: number;
    scaling: "min-max" | "clip-at-zero";
    eta: number | null;
    nu: number | null;
    maxLength: number | null;
    model: { dir: string; name: string | null; hash: string };
  };
  data: {
    file: string;
    samples: number;
    skipped: number;
    target: { file: string; samples: number } | null;
    existing: { file: string; samples: number } | null;
  };
  kernel: KernelSection;
  secondKernel: KernelSection | null;
  result: {
    selected: number;
    value: number;
    /** f(A) relative to f(V), the value of selecting everything. */
    valueOfAll: number;
    lazyValue: number | null;
    ratioToLazy: number | null;
    evaluations: number;
    /** (k, f(first k picks)) downsampled to at most ~500 points. */
    curve: [number, number][];
    /** (rank, marginal gain) downsampled. */
    gains: [number, number][];
    /** A distributed selection's figures: shards, hosts, rounds, evaluations, bytes moved. */
    distributed?: DistributedReport | null;
  };
  composition: { source: string; total: number; selected: number }[];
  timings: { loadSeconds: number; kernelSeconds: number; selectionSeconds: number; totalSeconds: number };
  preview: { rank: number; id: string; source: string | null; gain: number; x: string }[];
};

export type KernelSection = {
  rows: string;
  cols: string;
  nRows: number;
  nCols: number;
  nnz: number;
  /** Range of the raw values (UF or cosine) before scaling. */
  rawMin: number;
  rawMax: number;
  truncatedPrompts: number | null;
  tilesComputed: number | null;
  tilesReused: number | null;
  /** Histogram of the scaled values that the objective uses. */
  histogram: { edges: number[]; counts: number[] };
};
