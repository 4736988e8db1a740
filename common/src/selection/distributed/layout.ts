/**
 * How a kernel's columns are cut: blocks (the chunks of a chunked kernel, or fixed-width column
 * blocks of an in-memory one) group into parts, and parts into shards. Parts depend only on the
 * blocks and their count, never on the number of shards, so partition-and-merge picks the same
 * columns on any number of hosts; shards are whole parts, so a shard reads whole chunks.
 */
import { ConfigError } from "../../errors.js";
import { balancedRanges } from "../../kernel/chunked-reader.js";
import type { CscKernel } from "../types.js";
import type { ShardRange } from "./types.js";

export type ColumnBlock = { colStart: number; colEnd: number; weight: number };

export type ShardLayout = { shards: ShardRange[]; parts: { colStart: number; colEnd: number }[] };

/** Default number of parts (partition-and-merge); also the most shards a layout can have. */
export const DEFAULT_PARTS = 8;

/**
 * partCount parts (fewer when there are fewer blocks) grouped into at most shardCount shards
 * (never more shards than parts). For bands, where the layout cannot change the picks, pass
 * partCount = shardCount.
 */
export function shardLayout(blocks: ColumnBlock[], shardCount: number, partCount = DEFAULT_PARTS): ShardLayout {
  if (!Number.isInteger(shardCount) || shardCount < 1) throw new ConfigError(`--select-shards must be a positive integer, got ${shardCount}`);
  if (!Number.isInteger(partCount) || partCount < 1) throw new ConfigError(`parts must be a positive integer, got ${partCount}`);
  const parts = balancedRanges(blocks, partCount);
  const partBlocks = parts.map((p) => ({ ...p, weight: blocks.filter((b) => b.colStart >= p.colStart && b.colEnd <= p.colEnd).reduce((s, b) => s + b.weight, 0) }));
  const shards = balancedRanges(partBlocks, shardCount).map((r, id) => ({ id, ...r }));
  return { shards, parts };
}

/**
 * Column blocks of an in-memory kernel, weighted by entries: at most 4,096 columns each and at
 * least 256 blocks when there are that many columns. They depend on the kernel alone.
 */
export function memoryBlocks(kernel: CscKernel, width = Math.min(4096, Math.max(1, Math.ceil(kernel.nCols / 256)))): ColumnBlock[] {
  const blocks: ColumnBlock[] = [];
  for (let a = 0; a < kernel.nCols; a += width) {
    const b = Math.min(kernel.nCols, a + width);
    blocks.push({ colStart: a, colEnd: b, weight: kernel.colPtr[b] - kernel.colPtr[a] + (b - a) });
  }
  return blocks;
}

/** The parts' quotas: ceil(oversample * k) apportioned by column count (largest remainder), each in [1, part size]. */
export function partQuotas(parts: { colStart: number; colEnd: number }[], k: number, oversample: number): number[] {
  if (!(oversample >= 1 && oversample < Infinity)) throw new ConfigError(`oversample must be >= 1, got ${oversample}`);
  const n = parts.reduce((s, p) => s + p.colEnd - p.colStart, 0);
  const total = Math.min(n, Math.ceil(oversample * k - 1e-9));
  const exact = parts.map((p) => (total * (p.colEnd - p.colStart)) / n);
  const quotas = exact.map(Math.floor);
  let left = total - quotas.reduce((s, q) => s + q, 0);
  const byRemainder = exact.map((e, i) => ({ i, r: e - Math.floor(e) })).sort((a, b) => b.r - a.r || a.i - b.i);
  for (const { i } of byRemainder) {
    if (left <= 0) break;
    quotas[i]++;
    left--;
  }
  return quotas.map((q, i) => Math.min(parts[i].colEnd - parts[i].colStart, Math.max(1, q)));
}
