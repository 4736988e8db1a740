/**
 * One shard of a distributed selection: a column range of the (scaled) kernel, its columns'
 * bounds, and which of them are picked or not allowed. The per-row coverage is the host's
 * (HostCoverage), shared by the host's shards and kept equal to the coordinator's by the updates
 * each round brings. No I/O here: the host feeds requests in and sends the results out.
 *
 * The gain arithmetic is CoverageState's, operation for operation (same order, float32 coverage,
 * float64 sums), so a shard's gain is bit for bit the gain central greedy computes.
 */
import { ConfigError } from "../../errors.js";
import { gainOfEntries } from "../coverage-state.js";
import { lazyGreedy } from "../lazy-greedy.js";
import type { CscKernel, Objective } from "../types.js";
import type { ShardCandidates, ShardRange } from "./types.js";

/** Coverage of every row, as of the last round this host has seen, and the FLMI caps. */
export type HostCoverage = {
  objective: "fl" | "flmi" | "flcg";
  cur: Float32Array;
  cap: Float32Array | null;
};

const OPEN = 0;
const SELECTED = 1;
const EXCLUDED = 2;

export class SelectionShard {
  private readonly bound: Float64Array;
  private readonly state: Uint8Array;
  /**
   * End of each column's live entries. Once coverage reaches an entry it can never count again,
   * so when the shard owns its arrays, each evaluation in a round moves the column's live entries
   * to its front (same order, so the same sums) and later evaluations read only those.
   */
  private readonly liveEnd: Uint32Array;
  private rounds = 0;

  constructor(
    readonly range: ShardRange,
    /** Columns of the range, column 0 = range.colStart, values already scaled. */
    readonly kernel: CscKernel,
    private readonly coverage: HostCoverage,
    /** Whether the shard may reorder the kernel's entries (it owns them). */
    private readonly compact = false,
  ) {
    const cols = range.colEnd - range.colStart;
    if (kernel.nCols !== cols) throw new ConfigError(`shard ${range.id}: kernel has ${kernel.nCols} columns, the range ${cols}`);
    if (kernel.nRows !== coverage.cur.length) throw new ConfigError(`shard ${range.id}: kernel has ${kernel.nRows} rows, coverage ${coverage.cur.length}`);
    this.bound = new Float64Array(cols);
    this.state = new Uint8Array(cols);
    this.liveEnd = kernel.colPtr.slice(1);
  }

  /** Marks columns (global indices) as picked; those outside the range are ignored. */
  markSelected(columns: Uint32Array): void {
    const { colStart, colEnd } = this.range;
    for (let t = 0; t < columns.length; t++) {
      const j = columns[t];
      if (j >= colStart && j < colEnd) this.state[j - colStart] = SELECTED;
    }
  }

  /** From now on only these columns (global indices, inside the range) may be picked. */
  restrict(allowed: Uint32Array): void {
    const { colStart, colEnd } = this.range;
    const keep = new Uint8Array(colEnd - colStart);
    for (let t = 0; t < allowed.length; t++) {
      const j = allowed[t];
      if (j < colStart || j >= colEnd) throw new ConfigError(`shard ${this.range.id}: allowed column ${j} outside [${colStart}, ${colEnd})`);
      keep[j - colStart] = 1;
    }
    for (let q = 0; q < keep.length; q++) if (keep[q] === 0 && this.state[q] === OPEN) this.state[q] = EXCLUDED;
  }

  /** Every open column's gain against the current coverage; returns the largest (0 if none is open). */
  refreshBounds(): { maxBound: number; evaluations: number } {
    let maxBound = 0;
    let evaluations = 0;
    for (let q = 0; q < this.state.length; q++) {
      if (this.state[q] !== OPEN) continue;
      const g = this.gain(q);
      evaluations++;
      this.bound[q] = g;
      if (g > maxBound) maxBound = g;
    }
    return { maxBound, evaluations };
  }

  /** The largest bound among open columns (0 if none is open). */
  maxOpenBound(): number {
    let maxBound = 0;
    for (let q = 0; q < this.state.length; q++) if (this.state[q] === OPEN && this.bound[q] > maxBound) maxBound = this.bound[q];
    return maxBound;
  }

  /**
   * One round: evaluates every open column whose bound reaches tau (a column's last gain bounds
   * its gain now, since coverage only grows) and returns those whose gain reaches tau, the best
   * `limit` of them when there are more, with their live entries.
   */
  round(tau: number, limit: number): ShardCandidates {
    this.rounds++;
    const { bound, state } = this;
    let maxBound = 0;
    let evaluations = 0;
    let found: number[] = [];
    for (let q = 0; q < state.length; q++) {
      if (state[q] !== OPEN) continue;
      const b = bound[q];
      if (b < tau) {
        if (b > maxBound) maxBound = b;
        continue;
      }
      const g = this.compact ? this.gainCompacting(q) : this.gain(q);
      evaluations++;
      bound[q] = g;
      if (g >= tau) found.push(q);
      else if (g > maxBound) maxBound = g;
    }
    let truncated = false;
    if (found.length > limit) {
      // The best first: gain descending, then the lower column (the optimisers' tie rule).
      found.sort((a, b) => bound[b] - bound[a] || a - b);
      for (let t = limit; t < found.length; t++) if (bound[found[t]] > maxBound) maxBound = bound[found[t]];
      found = found.slice(0, limit);
      found.sort((a, b) => a - b);
      truncated = true;
    }
    return { id: this.range.id, ...this.liveEntries(found), truncated, maxBound, evaluations };
  }

  /**
   * Lazy greedy over columns [colStart, colEnd) (inside the range) against this shard's current
   * coverage alone, `quota` picks: the local step of partition-and-merge. Global column indices.
   */
  localGreedy(colStart: number, colEnd: number, quota: number): { picks: Uint32Array; evaluations: number } {
    const { range, kernel, coverage } = this;
    if (colStart < range.colStart || colEnd > range.colEnd || colStart >= colEnd) {
      throw new ConfigError(`shard ${range.id}: part [${colStart}, ${colEnd}) outside [${range.colStart}, ${range.colEnd})`);
    }
    if (this.rounds > 0) throw new ConfigError(`shard ${range.id}: the local step comes before the first round`);
    const a = colStart - range.colStart;
    const b = colEnd - range.colStart;
    const from = kernel.colPtr[a];
    const part: CscKernel = {
      nRows: kernel.nRows,
      nCols: b - a,
      colPtr: Uint32Array.from(kernel.colPtr.subarray(a, b + 1), (v) => v - from),
      rowIdx: kernel.rowIdx.subarray(from, kernel.colPtr[b]),
      values: kernel.values.subarray(from, kernel.colPtr[b]),
    };
    // The host's vectors are already scaled by eta / nu and rounded to float32: a factor of 1 keeps them as they are.
    const objective: Objective =
      coverage.objective === "flmi"
        ? { kind: "flmi", targetMax: coverage.cap!, eta: 1 }
        : coverage.objective === "flcg"
          ? { kind: "flcg", existingMax: coverage.cur, nu: 1 }
          : { kind: "fl" };
    const k = Math.min(Math.max(1, quota), b - a);
    const result = lazyGreedy(part, { k, objective });
    return { picks: Uint32Array.from(result.order, (q) => q + colStart), evaluations: result.evaluations };
  }

  /** gain of local column q over its live entries: CoverageState's gain loop itself. */
  private gain(q: number): number {
    const { colPtr, rowIdx, values } = this.kernel;
    return gainOfEntries(rowIdx, values, this.coverage.cur, this.coverage.cap, colPtr[q], this.liveEnd[q]);
  }

  /** gain(q), moving the column's live entries (those still above coverage) to its front. */
  private gainCompacting(q: number): number {
    const { colPtr, rowIdx, values } = this.kernel;
    const { cur, cap } = this.coverage;
    const end = this.liveEnd[q];
    let sum = 0;
    let w = colPtr[q];
    if (cap === null) {
      for (let p = colPtr[q]; p < end; p++) {
        const r = rowIdx[p];
        const v = values[p];
        const d = v - cur[r];
        if (d > 0) {
          sum += d;
          rowIdx[w] = r;
          values[w++] = v;
        }
      }
    } else {
      for (let p = colPtr[q]; p < end; p++) {
        const r = rowIdx[p];
        const v = values[p];
        const c = cap[r];
        const d = (v < c ? v : c) - cur[r];
        if (d > 0) {
          sum += d;
          rowIdx[w] = r;
          values[w++] = v;
        }
      }
    }
    this.liveEnd[q] = w;
    return sum;
  }

  /**
   * The entries of the found columns that can still raise coverage (capped value above cur), in
   * column order: the coordinator recomputes exact gains from them as the round's picks land.
   * Entries at or below cur never count again, since cur only grows.
   */
  private liveEntries(found: number[]): Pick<ShardCandidates, "cols" | "gains" | "ptr" | "rows" | "values"> {
    const { colPtr, rowIdx, values } = this.kernel;
    const { cur, cap } = this.coverage;
    const cols = new Uint32Array(found.length);
    const gains = new Float64Array(found.length);
    const ptr = new Uint32Array(found.length + 1);
    let live = 0;
    const { liveEnd } = this;
    for (let t = 0; t < found.length; t++) {
      const q = found[t];
      for (let p = colPtr[q]; p < liveEnd[q]; p++) {
        const r = rowIdx[p];
        const v = cap === null || values[p] < cap[r] ? values[p] : cap[r];
        if (v > cur[r]) live++;
      }
    }
    const rows = new Uint32Array(live);
    const vals = new Float32Array(live);
    let at = 0;
    for (let t = 0; t < found.length; t++) {
      const q = found[t];
      cols[t] = q + this.range.colStart;
      gains[t] = this.bound[q];
      for (let p = colPtr[q]; p < liveEnd[q]; p++) {
        const r = rowIdx[p];
        const v = cap === null || values[p] < cap[r] ? values[p] : cap[r];
        if (v > cur[r]) {
          rows[at] = r;
          vals[at++] = v;
        }
      }
      ptr[t + 1] = at;
    }
    return { cols, gains, ptr, rows, values: vals };
  }
}
