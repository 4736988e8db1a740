/**
 * Per-row state shared by every optimiser and the three objectives.
 *
 * All three are facility location with a per-row twist:
 *   FL:   term_i = max(cur_i, s_ij) - 0,           cur starts at 0
 *   FLMI: term_i = min(max(cur_i, s_ij), cap_i),   cap_i = eta * m_Q[i], cur starts at 0
 *   FLCG: term_i = max(cur_i, s_ij) - base_i,      cur starts at base_i = nu * m_E[i]
 * so gain(j) = sum over the stored rows of column j of max(min(s_ij, cap_i) - cur_i, 0), with no
 * cap for FL and FLCG. Unstored entries are 0 and can never raise cur above its start, so only
 * stored rows are visited.
 *
 * cur is a Float32Array: every value it takes is a kernel value (float32), a cap or a base, and
 * caps and bases are rounded to float32 once, so a max over float32 loses nothing. Half the bytes
 * of a Float64Array keeps more of the randomly accessed rows in cache. Gains are summed in
 * float64. Because cur only grows and float rounding is monotone, a column's computed gain never
 * increases between evaluations, which is what keeps lazy greedy exact in floating point.
 */
import { ConfigError } from "../errors.js";
import { checkKernel } from "./csc.js";
import type { CscKernel, Objective } from "./types.js";

export class CoverageState {
  readonly cur: Float32Array;
  /** Per-row cap (FLMI) or null. */
  private readonly cap: Float32Array | null;
  /** Per-row starting value (FLCG) or null for 0. */
  private readonly base: Float32Array | null;
  private readonly colPtr: Uint32Array;
  private readonly rowIdx: Uint32Array;
  private readonly values: Float32Array;

  constructor(kernel: CscKernel, objective: Objective) {
    // The objectives assume s >= 0 (what both scalings produce), so f(empty set) = 0.
    checkKernel(kernel, true);
    this.colPtr = kernel.colPtr;
    this.rowIdx = kernel.rowIdx;
    this.values = kernel.values;
    this.cur = new Float32Array(kernel.nRows);
    this.cap = null;
    this.base = null;
    switch (objective.kind) {
      case "fl":
        break;
      case "flmi":
        this.cap = scaledRowVector(objective.targetMax, objective.eta ?? 1, "eta", "targetMax", kernel.nRows);
        break;
      case "flcg":
        this.base = scaledRowVector(objective.existingMax, objective.nu ?? 1, "nu", "existingMax", kernel.nRows);
        this.cur.set(this.base);
        break;
      default:
        throw new ConfigError(`unknown objective kind "${(objective as { kind: unknown }).kind}"`);
    }
  }

  /** Marginal gain of adding column j to the current set. */
  gain(j: number): number {
    return gainOfEntries(this.rowIdx, this.values, this.cur, this.cap, this.colPtr[j], this.colPtr[j + 1]);
  }

  /** Adds column j to the set. */
  add(j: number): void {
    const { colPtr, rowIdx, values, cur, cap } = this;
    const end = colPtr[j + 1];
    if (cap === null) {
      for (let p = colPtr[j]; p < end; p++) {
        const r = rowIdx[p];
        if (values[p] > cur[r]) cur[r] = values[p];
      }
    } else {
      for (let p = colPtr[j]; p < end; p++) {
        const r = rowIdx[p];
        const v = values[p] < cap[r] ? values[p] : cap[r];
        if (v > cur[r]) cur[r] = v;
      }
    }
  }

  /** f of the current set: sum_i (cur_i - start_i). */
  value(): number {
    const { cur, base } = this;
    let sum = 0;
    if (base === null) {
      for (let i = 0; i < cur.length; i++) sum += cur[i];
    } else {
      for (let i = 0; i < cur.length; i++) sum += cur[i] - base[i];
    }
    return sum;
  }
}

function scaledRowVector(
  rowMax: Float32Array,
  factor: number,
  factorName: string,
  vectorName: string,
  nRows: number,
): Float32Array {
  if (!Number.isFinite(factor) || factor < 0) {
    throw new ConfigError(`${factorName} must be a finite number >= 0, got ${factor}`);
  }
  if (rowMax.length !== nRows) {
    throw new ConfigError(`${vectorName} has ${rowMax.length} entries but the kernel has ${nRows} rows`);
  }
  const scaled = new Float32Array(nRows);
  for (let i = 0; i < nRows; i++) {
    const v = rowMax[i];
    if (!(v >= 0 && v < Infinity)) failOnRowMax(vectorName, i, v);
    scaled[i] = factor * v;
  }
  return scaled;
}

/** Outside the loop: an inline throw with a template string slows the whole loop down in V8. */
function failOnRowMax(vectorName: string, i: number, v: number): never {
  throw new ConfigError(`${vectorName}[${i}] = ${v}: row maxima must be finite and >= 0`);
}

/**
 * The gain of the stored entries start..end of a column against coverage `cur` (capped by `cap`
 * for FLMI): the one gain loop, shared by central optimisers and distributed shards so both sum
 * the same float32 terms in the same order into the same float64, bit for bit.
 */
export function gainOfEntries(rowIdx: Uint32Array, values: Float32Array, cur: Float32Array, cap: Float32Array | null, start: number, end: number): number {
  let sum = 0;
  if (cap === null) {
    for (let p = start; p < end; p++) {
      const d = values[p] - cur[rowIdx[p]];
      if (d > 0) sum += d;
    }
  } else {
    for (let p = start; p < end; p++) {
      const r = rowIdx[p];
      const v = values[p];
      const c = cap[r];
      const d = (v < c ? v : c) - cur[r];
      if (d > 0) sum += d;
    }
  }
  return sum;
}
