import { ConfigError } from "../../errors.js";
import type { Objective } from "../types.js";
import type { DistributedObjective } from "./types.js";

/**
 * The objective as shards use it: FLMI's cap = eta * targetMax and FLCG's base = nu * existingMax,
 * rounded to float32 exactly as CoverageState rounds them, so the distributed gains are central
 * greedy's bit for bit.
 */
export function distributedObjective(objective: Objective, nRows: number): DistributedObjective {
  switch (objective.kind) {
    case "fl":
      return { kind: "fl" };
    case "flmi":
      return { kind: "flmi", cap: scaledRowVector(objective.targetMax, objective.eta ?? 1, "eta", "targetMax", nRows) };
    case "flcg":
      return { kind: "flcg", base: scaledRowVector(objective.existingMax, objective.nu ?? 1, "nu", "existingMax", nRows) };
    default:
      throw new ConfigError(`unknown objective kind "${(objective as { kind: unknown }).kind}"`);
  }
}

function scaledRowVector(rowMax: Float32Array, factor: number, factorName: string, vectorName: string, nRows: number): Float32Array {
  if (!Number.isFinite(factor) || factor < 0) throw new ConfigError(`${factorName} must be a finite number >= 0, got ${factor}`);
  if (rowMax.length !== nRows) throw new ConfigError(`${vectorName} has ${rowMax.length} entries but the kernel has ${nRows} rows`);
  const scaled = new Float32Array(nRows);
  for (let i = 0; i < nRows; i++) {
    const v = rowMax[i];
    if (!(v >= 0 && v < Infinity)) throw new ConfigError(`${vectorName}[${i}] = ${v}: row maxima must be finite and >= 0`);
    scaled[i] = factor * v;
  }
  return scaled;
}
