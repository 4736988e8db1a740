import { ConfigError } from "../errors.js";
import { CoverageState } from "./coverage-state.js";
import type { CscKernel, Objective } from "./types.js";

/** f(A) for any set of columns A (a column listed twice counts once). */
export function objectiveValue(
  kernel: CscKernel,
  columns: ArrayLike<number>,
  objective: Objective = { kind: "fl" },
): number {
  const state = new CoverageState(kernel, objective);
  for (let t = 0; t < columns.length; t++) {
    const j = columns[t];
    if (!Number.isInteger(j) || j < 0 || j >= kernel.nCols) {
      throw new ConfigError(`column ${j} out of range (kernel has ${kernel.nCols} columns)`);
    }
    state.add(j);
  }
  return state.value();
}
