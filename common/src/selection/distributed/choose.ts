/**
 * Which selection delift runs (measured in bench/select-distributed; README "Selection at scale"):
 *
 * - The kernel fits the coordinator's selection memory: central stochastic greedy (lazy greedy
 *   when asked). One process, no messages, a quarter of lazy greedy's gain evaluations: the
 *   fastest way when it fits (the kernel takes 8 bytes an entry).
 * - It does not fit, or shards were asked for: bands over shards. Its picks are lazy greedy's
 *   exactly (so f equals central lazy greedy's, above stochastic's), it is reproducible on any
 *   number of hosts, and the coordinator holds only coverage and picks (about 13 bytes a column).
 * - Partition-and-merge is never chosen: measured, it loses f to bands (0.997 and 0.983 of lazy
 *   greedy at 1e6 x 64) and takes 1.9x to 3x as long, since its merge still needs rounds; it stays
 *   available for comparison.
 */
import { ConfigError } from "../../errors.js";
import type { DistributedAlgorithm } from "./types.js";

export type SelectionChoice =
  | { mode: "central"; reason: string }
  | { mode: "distributed"; algorithm: DistributedAlgorithm; shards: number; reason: string };

export type ChoiceInput = {
  /** Stored entries and columns of the V x V kernel. */
  nnz: number;
  nCols: number;
  /** Shards asked for explicitly (--select-shards), or null. */
  shards: number | null;
  /** Bytes the coordinator may spend on the selection (--select-memory); default 4 GiB. */
  memoryBytes?: number;
  algorithm?: DistributedAlgorithm;
};

export const DEFAULT_SELECT_MEMORY = 4 * 1024 ** 3;

/** Bytes central greedy needs: the kernel (4-byte rows and values, 4-byte offsets), its working arrays, and headroom. */
export function centralSelectionBytes(nnz: number, nCols: number): number {
  return Math.ceil(1.35 * (8 * nnz + 4 * (nCols + 1)) + 24 * nCols);
}

export function chooseSelection(input: ChoiceInput): SelectionChoice {
  const memory = input.memoryBytes ?? DEFAULT_SELECT_MEMORY;
  if (!(memory > 0)) throw new ConfigError(`selection memory must be positive, got ${memory}`);
  const algorithm = input.algorithm ?? "bands";
  if (input.shards !== null) {
    if (!Number.isInteger(input.shards) || input.shards < 1) throw new ConfigError(`--select-shards must be a positive integer, got ${input.shards}`);
    return { mode: "distributed", algorithm, shards: input.shards, reason: `${input.shards} shards asked for` };
  }
  const need = centralSelectionBytes(input.nnz, input.nCols);
  if (need <= memory) return { mode: "central", reason: `the kernel fits: about ${mib(need)} of ${mib(memory)}` };
  // Shards of at most half the budget each, so a host holding one keeps room for its coverage copy.
  const shards = Math.max(2, Math.ceil(need / (memory / 2)));
  return { mode: "distributed", algorithm, shards, reason: `the kernel needs about ${mib(need)}, more than ${mib(memory)}` };
}

function mib(bytes: number): string {
  return `${Math.round(bytes / 1024 ** 2)} MiB`;
}
