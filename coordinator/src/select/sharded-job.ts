/**
 * A cluster job's selection on shard hosts. The job's thread writes its prepared (scaled) kernel
 * in the chunked format (writeShardedKernel); the coordinator makes it readable by the hosts and
 * opens a transport to them (SelectionHosts: in this process for the embedded default, the job's
 * workers over NATS on a cluster), runs the distributed selection, and closes everything again,
 * whether the selection finished, failed or was cancelled.
 */
import { randomBytes } from "node:crypto";
import { defaultChunkColumns, writeChunkedKernel, type ChunkedIndex, type CscKernel, type KernelScaling } from "../../../common/src/mod.js";
import {
  DEFAULT_PARTS,
  InProcessTransport,
  chooseSelection,
  distributedObjective,
  runDistributedSelection,
  shardLayout,
  type ColumnBlock,
  type DistributedAlgorithm,
  type DistributedObjective,
  type DistributedResult,
  type KernelSourceSpec,
  type RoundInfo,
  type SelectionChoice,
  type ShardScaling,
  type ShardTransport,
} from "../../../common/src/selection/distributed/mod.js";
import type { Objective } from "../../../common/src/mod.js";

/** What the coordinator needs to run a job's selection on shard hosts (all of it plain data: it crosses from the job's thread). */
export type ShardedSelectionPlan = {
  mode: "distributed";
  reason: string;
  algorithm: DistributedAlgorithm;
  shards: number;
  nRows: number;
  nCols: number;
  nnz: number;
  /** The chunks of the written kernel (shards are whole chunks). */
  blocks: ColumnBlock[];
  k: number;
  objective: DistributedObjective;
  /** How the hosts scale the chunks they read (null: the kernel was written scaled). */
  scaling: ShardScaling;
};

export type SelectionPlan = { mode: "central"; reason: string } | ShardedSelectionPlan;

/** A job's shard hosts, opened for one selection. */
export type OpenedHosts = {
  transport: ShardTransport;
  /** Where the hosts read the kernel. */
  source: KernelSourceSpec;
  close(): Promise<void>;
};

export interface SelectionHosts {
  /**
   * Whether the memory rule may shard a selection nobody asked to shard: only where the hosts are
   * other processes (in this process, shards would add copies of a kernel the job already holds).
   */
  readonly autoShard: boolean;
  /** Makes the chunked kernel in `kernelDir` readable by the job's hosts and opens a transport to them. */
  open(o: { jobId: string; key: Uint8Array; session: string; kernelDir: string; shards: number; signal: AbortSignal; log: (line: string) => void }): Promise<OpenedHosts>;
}

/** The embedded default: as many hosts as shards, objects in this process reading the chunked directory. */
export const inProcessHosts: SelectionHosts = {
  autoShard: false,
  async open(o) {
    return { transport: new InProcessTransport(o.shards, { log: o.log }), source: { kind: "chunked-dir", path: o.kernelDir }, close: async () => undefined };
  },
};

/** The choice rule for a job (its --select-shards / --select-memory / --select-algorithm). */
export function chooseJobSelection(kernel: { nnz: number; nCols: number }, sel: { shards: number | null; memory: number | null; algorithm: DistributedAlgorithm }, autoShard: boolean): SelectionChoice {
  const choice = chooseSelection({ nnz: kernel.nnz, nCols: kernel.nCols, shards: sel.shards, memoryBytes: sel.memory ?? undefined, algorithm: sel.algorithm });
  if (choice.mode === "distributed" && sel.shards === null && !autoShard) return { mode: "central", reason: `${choice.reason}, but shards in this process would only add copies of it (no cluster workers to host them)` };
  return choice;
}

/**
 * The plan of a distributed selection over the job's staged main kernel: the hosts read its
 * chunks as assembly wrote them (no second copy) and scale each with the kernel's value range,
 * bit for bit as scaling it whole. Its chunks are as wide as an in-memory kernel's blocks
 * (memoryBlocks), so the shard layout is the same wherever the kernel was built.
 */
export function shardedPlanOf(index: ChunkedIndex, objective: Objective, choice: Extract<SelectionChoice, { mode: "distributed" }>, k: number, scaling: KernelScaling): ShardedSelectionPlan {
  return {
    mode: "distributed",
    reason: choice.reason,
    algorithm: choice.algorithm,
    shards: choice.shards,
    nRows: index.nRows,
    nCols: index.nCols,
    nnz: index.nnz,
    blocks: index.chunks.map((c) => ({ colStart: c.colStart, colEnd: c.colEnd, weight: c.nnz + (c.colEnd - c.colStart) })),
    k,
    objective: distributedObjective(objective, index.nRows),
    scaling: { scaling, range: index.valueRange },
  };
}

/**
 * Writes an in-memory scaled kernel into `dir` in the chunked format, in blocks as many and as
 * wide as memoryBlocks, and returns the plan over it (the hosts do not scale again).
 */
export async function writeShardedKernel(dir: string, kernel: CscKernel, objective: Objective, choice: Extract<SelectionChoice, { mode: "distributed" }>, k: number): Promise<ShardedSelectionPlan> {
  const index = await writeChunkedKernel(dir, kernel, {}, { chunkColumns: defaultChunkColumns(kernel.nCols), chunkBytes: Number.MAX_SAFE_INTEGER });
  return { ...shardedPlanOf(index, objective, choice, k, "clip-at-zero"), scaling: null };
}

export type ShardedRunOptions = {
  jobId: string;
  key: Uint8Array;
  plan: ShardedSelectionPlan;
  kernelDir: string;
  hosts: SelectionHosts;
  signal: AbortSignal;
  log: (line: string) => void;
  onRound?: (info: RoundInfo) => void;
  onReassign?: (event: { shard: number; from: string; to: string }) => void;
};

/** Runs the job's distributed selection; the hosts are closed again however it ends. */
export async function runShardedJobSelection(o: ShardedRunOptions): Promise<DistributedResult> {
  const { plan } = o;
  const session = `${o.jobId.slice(0, 40)}-${randomBytes(6).toString("hex")}`;
  const opened = await o.hosts.open({ jobId: o.jobId, key: o.key, session, kernelDir: o.kernelDir, shards: plan.shards, signal: o.signal, log: o.log });
  try {
    const layout = shardLayout(plan.blocks, plan.shards, plan.algorithm === "partition" ? Math.max(plan.shards, DEFAULT_PARTS) : plan.shards);
    return await runDistributedSelection(
      { session, nRows: plan.nRows, nCols: plan.nCols, shards: layout.shards, parts: layout.parts, source: opened.source, scaling: plan.scaling },
      opened.transport,
      { k: plan.k, objective: plan.objective, algorithm: plan.algorithm },
      { signal: o.signal, log: o.log, onRound: o.onRound, onReassign: o.onReassign },
    );
  } finally {
    await opened.close();
  }
}
