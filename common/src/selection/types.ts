/**
 * Public shapes of the selection package: the sparse kernel, the objectives and what an
 * optimiser returns.
 */

/**
 * A kernel s over targets (rows) x candidate in-context examples (columns), column-compressed.
 * Column j stores the rows rowIdx[colPtr[j] .. colPtr[j+1]) with their values; rows within a
 * column are strictly increasing. Entries that are not stored count as 0.
 */
export type CscKernel = {
  nRows: number;
  nCols: number;
  /** nCols + 1 offsets into rowIdx / values. */
  colPtr: Uint32Array;
  rowIdx: Uint32Array;
  values: Float32Array;
};

/** Kernel entries in any order, as three parallel arrays. */
export type KernelTriplets = {
  nRows: number;
  nCols: number;
  row: Uint32Array;
  col: Uint32Array;
  value: Float32Array;
};

/**
 * "min-max": (v - min) / (max - min) over the stored entries; if every stored value is equal,
 * each becomes 0 (no entry carries more utility than another).
 * "clip-at-zero": max(v, 0).
 */
export type KernelScaling = "min-max" | "clip-at-zero";

/** The range the stored values had before scaling (both 0 when nothing is stored). */
export type ScalingReport = { scaling: KernelScaling; min: number; max: number };

/** Facility location: f(A) = sum_i max_{j in A} s[i][j]. */
export type FacilityLocation = { kind: "fl" };

/**
 * FL mutual information with a target set Q:
 * f(A) = sum_i min(max_{j in A} s[i][j], eta * targetMax[i]), targetMax = rowMaxima(kernel V x Q).
 */
export type FacilityLocationMutualInformation = {
  kind: "flmi";
  targetMax: Float32Array;
  /** Default 1. */
  eta?: number;
};

/**
 * FL conditional gain given an existing set E:
 * f(A) = sum_i max(max_{j in A} s[i][j] - nu * existingMax[i], 0), existingMax = rowMaxima(kernel V x E).
 */
export type FacilityLocationConditionalGain = {
  kind: "flcg";
  existingMax: Float32Array;
  /** Default 1. */
  nu?: number;
};

export type Objective =
  | FacilityLocation
  | FacilityLocationMutualInformation
  | FacilityLocationConditionalGain;

export type GreedyOptions = {
  /** Number of columns to pick, 1..nCols. Greedy always makes k picks, including picks of zero gain. */
  k: number;
  /** Default: facility location. */
  objective?: Objective;
};

export type StochasticGreedyOptions = GreedyOptions & {
  /** 0 < epsilon < 1; each step samples ceil((n / k) * ln(1 / epsilon)) candidates. Default 0.01. */
  epsilon?: number;
  /** Seed of the generator behind every random choice. Default 0. */
  seed?: number;
};

export type SelectionResult = {
  /** Selected columns in pick order. */
  order: Uint32Array;
  /** Marginal gain of each pick, aligned with order. */
  gains: Float64Array;
  /** f(order), recomputed from the final per-row state. */
  value: number;
  /** Number of gain evaluations made. */
  evaluations: number;
};
