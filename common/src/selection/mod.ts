/**
 * Public entry of the selection package: CSC kernels, the DELIFT objectives (FL, FLMI, FLCG)
 * and the greedy optimisers (DESIGN §1, §6).
 */
export type {
  CscKernel,
  FacilityLocation,
  FacilityLocationConditionalGain,
  FacilityLocationMutualInformation,
  GreedyOptions,
  KernelScaling,
  KernelTriplets,
  Objective,
  ScalingReport,
  SelectionResult,
  StochasticGreedyOptions,
} from "./types.js";
export type { RandomKernelOptions } from "./random-kernel.js";

export { cscFromDense, cscFromTriplets, kernelBytes, validateKernel } from "./csc.js";
export { scaleKernelInPlace, scaleValuesInPlace, valueRange } from "./scaling.js";
export { rowMaxima } from "./row-maxima.js";
export { parseBudget } from "./budget.js";
export { naiveGreedy } from "./naive-greedy.js";
export { lazyGreedy } from "./lazy-greedy.js";
export { stochasticGreedy, stochasticSampleSize } from "./stochastic-greedy.js";
export { objectiveValue } from "./objective-value.js";
export { CoverageState } from "./coverage-state.js";
export { randomSparseKernel } from "./random-kernel.js";
export { Xoshiro128 } from "./prng.js";
