import { ConfigError } from "../errors.js";
import { CoverageState } from "./coverage-state.js";
import type { CscKernel, GreedyOptions } from "./types.js";

/** Checks k against the kernel and builds the objective's per-row state. */
export function prepareSelection(kernel: CscKernel, options: GreedyOptions): CoverageState {
  const state = new CoverageState(kernel, options.objective ?? { kind: "fl" });
  const { k } = options;
  if (!Number.isInteger(k) || k < 1 || k > kernel.nCols) {
    throw new ConfigError(`budget k = ${k} out of range: must be an integer between 1 and ${kernel.nCols} (the number of columns)`);
  }
  return state;
}

export function emptyResult(k: number): { order: Uint32Array; gains: Float64Array } {
  return { order: new Uint32Array(k), gains: new Float64Array(k) };
}
