/**
 * In-place scaling of a kernel's stored values (DESIGN §1: s = UF min-max scaled to [0,1],
 * or max(UF, 0)). Unstored entries stay 0 either way.
 */
import { ConfigError } from "../errors.js";
import type { CscKernel, KernelScaling, ScalingReport } from "./types.js";

export function scaleKernelInPlace(kernel: CscKernel, scaling: KernelScaling = "min-max"): ScalingReport {
  switch (scaling) {
    case "min-max":
      return minMaxScaleInPlace(kernel.values);
    case "clip-at-zero":
      return clipAtZeroInPlace(kernel.values);
    default:
      throw new ConfigError(`unknown kernel scaling "${String(scaling)}" (expected "min-max" or "clip-at-zero")`);
  }
}

/**
 * Maps the stored values onto [0, 1] by (v - min) / (max - min). When every stored value is
 * the same there is no spread to rank by, so each becomes 0.
 */
function minMaxScaleInPlace(values: Float32Array): ScalingReport {
  if (values.length === 0) return { scaling: "min-max", min: 0, max: 0 };
  let min = Infinity;
  let max = -Infinity;
  for (let p = 0; p < values.length; p++) {
    const v = values[p];
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (!Number.isFinite(min) || !Number.isFinite(max)) {
    throw new ConfigError(`kernel values must be finite to scale them (range ${min} .. ${max})`);
  }
  if (max === min) {
    values.fill(0);
  } else {
    const inverseSpread = 1 / (max - min);
    for (let p = 0; p < values.length; p++) {
      const scaled = (values[p] - min) * inverseSpread;
      values[p] = scaled > 1 ? 1 : scaled;
    }
  }
  return { scaling: "min-max", min, max };
}

function clipAtZeroInPlace(values: Float32Array): ScalingReport {
  let min = values.length === 0 ? 0 : Infinity;
  let max = values.length === 0 ? 0 : -Infinity;
  for (let p = 0; p < values.length; p++) {
    const v = values[p];
    if (v < min) min = v;
    if (v > max) max = v;
    if (v < 0) values[p] = 0;
  }
  return { scaling: "clip-at-zero", min, max };
}

/**
 * Smallest and largest stored value (both 0 when there are none), as min-max scaling uses them;
 * a ConfigError when one is not finite.
 */
export function valueRange(values: Float32Array): { min: number; max: number } {
  if (values.length === 0) return { min: 0, max: 0 };
  let min = Infinity;
  let max = -Infinity;
  for (let p = 0; p < values.length; p++) {
    const v = values[p];
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (!Number.isFinite(min) || !Number.isFinite(max)) {
    throw new ConfigError(`kernel values must be finite to scale them (range ${min} .. ${max})`);
  }
  return { min, max };
}

/**
 * Scales part of a kernel's values (a chunk, a shard's columns) with the range of the whole
 * kernel, by the same float operations as scaleKernelInPlace: every value comes out bit for bit
 * as scaling the whole kernel at once would make it.
 */
export function scaleValuesInPlace(values: Float32Array, scaling: KernelScaling, range: { min: number; max: number }): ScalingReport {
  if (scaling === "clip-at-zero") {
    for (let p = 0; p < values.length; p++) if (values[p] < 0) values[p] = 0;
    return { scaling, min: range.min, max: range.max };
  }
  if (scaling !== "min-max") {
    throw new ConfigError(`unknown kernel scaling "${String(scaling)}" (expected "min-max" or "clip-at-zero")`);
  }
  const { min, max } = range;
  if (!Number.isFinite(min) || !Number.isFinite(max) || min > max) throw new ConfigError(`bad value range ${min} .. ${max}`);
  if (max === min) {
    values.fill(0);
    return { scaling, min, max };
  }
  const inverseSpread = 1 / (max - min);
  for (let p = 0; p < values.length; p++) {
    const scaled = (values[p] - min) * inverseSpread;
    values[p] = scaled > 1 ? 1 : scaled;
  }
  return { scaling, min, max };
}
