/**
 * Public shapes of distributed selection: how the kernel is cut into shards, what the
 * coordinator and the shard hosts say to each other, and what a run returns.
 *
 * Vocabulary: a shard is a contiguous column range of the kernel; a host is a process (or, on the
 * embedded default, an object in this process) that holds one or more shards; the coordinator
 * keeps the per-row coverage and decides every pick.
 */
import type { KernelScaling, SelectionResult } from "../types.js";

/**
 * The objective as shards need it. Per-row vectors are float32 and already multiplied by eta or
 * nu, exactly as CoverageState rounds them, so shards and coordinator compute bit-identical gains.
 */
export type DistributedObjective =
  | { kind: "fl" }
  /** cap[i] = eta * targetMax[i] (float32). */
  | { kind: "flmi"; cap: Float32Array }
  /** base[i] = nu * existingMax[i] (float32): coverage starts there. */
  | { kind: "flcg"; base: Float32Array };

export type ShardRange = { id: number; colStart: number; colEnd: number };

/**
 * Where a host reads its columns: a chunked kernel directory it can see (the coordinator's store,
 * a shared volume), or, in this process only, a kernel already in memory.
 */
export type KernelSourceSpec =
  | { kind: "chunked-dir"; path: string }
  /** The chunked files as objects PREFIX/FILE of a NATS object store bucket (publishChunkedKernel). */
  | { kind: "blob-store"; bucket: string; prefix: string }
  | { kind: "memory"; key: string };

/** How raw stored values become kernel values on the shard (nothing to do for an already scaled in-memory kernel). */
export type ShardScaling = { scaling: KernelScaling; range: { min: number; max: number } } | null;

/** Which algorithm runs the distributed selection (see README, "Selection at scale"). */
export type DistributedAlgorithm = "bands" | "partition";

export type DistributedSettings = {
  k: number;
  objective: DistributedObjective;
  algorithm: DistributedAlgorithm;
  /**
   * bands: each round lowers the threshold by this factor (tau *= 1 - bandWidth) unless the
   * largest bound left is lower still. Any value gives the same picks; it trades rounds for
   * bytes. Default 0.05.
   */
  bandWidth?: number;
  /** Candidates one shard ships per round at most; more make the round end early (same picks). Default 65,536. */
  candidateLimit?: number;
  /** partition: the number of parts (fixed column ranges, independent of the number of hosts). Default 8. */
  parts?: number;
  /** partition: each part pre-selects oversample * k * (its share of columns). Default 2. */
  oversample?: number;
};

export type RoundInfo = {
  round: number;
  tau: number;
  picked: number;
  candidates: number;
  bytesSent: number;
  bytesReceived: number;
};

export type DistributedReport = {
  algorithm: DistributedAlgorithm;
  shards: number;
  hosts: number;
  rounds: number;
  /** Gain evaluations on the shards and on the coordinator (each over one column). */
  shardEvaluations: number;
  coordinatorEvaluations: number;
  /** Candidate columns shipped to the coordinator (accepted or not). */
  candidatesShipped: number;
  /** Payload bytes coordinator -> hosts and hosts -> coordinator (0 in process). */
  bytesSent: number;
  bytesReceived: number;
  /** Shards moved to another host because theirs was lost. */
  reassignments: number;
  seconds: { load: number; local: number; rounds: number; total: number };
};

export type DistributedResult = SelectionResult & { distributed: DistributedReport };

/** Progress and test hooks; an awaited hook holds the selection where it is. */
export type DistributedHooks = {
  onRound?: (info: RoundInfo) => void | Promise<void>;
  onReassign?: (event: { shard: number; from: string; to: string }) => void;
  log?: (line: string) => void;
  signal?: AbortSignal;
};

// ---- Messages between the coordinator and a host (one request per host, naming its shards) ----

export type LoadRequest = {
  kind: "load";
  session: string;
  source: KernelSourceSpec;
  scaling: ShardScaling;
  nRows: number;
  objective: "fl" | "flmi" | "flcg";
  /** FLMI only: cap per row. */
  cap: Float32Array | null;
  /** Coverage to start from: null means the objective's start (0, or base for FLCG, then given here). */
  cur: Float32Array | null;
  shards: {
    range: ShardRange;
    /** Columns of this range already selected (a shard taken over mid-selection). */
    selected: Uint32Array;
    /** When set, only these columns of the range may be picked (the merge of partition). */
    allowed: Uint32Array | null;
  }[];
};

export type LocalGreedyRequest = {
  kind: "local";
  session: string;
  /** Each part lies inside one of the host's shards. */
  parts: { shard: number; colStart: number; colEnd: number; quota: number }[];
};

export type RestrictRequest = {
  kind: "restrict";
  session: string;
  shards: { id: number; allowed: Uint32Array }[];
};

export type RoundRequest = {
  kind: "round";
  session: string;
  round: number;
  tau: number;
  limit: number;
  shards: number[];
  /** Coverage raised by the previous round's picks: cur[row] = max(cur[row], value). */
  updateRows: Uint32Array;
  updateValues: Float32Array;
  /** Columns picked in the previous round (each shard marks its own). */
  picked: Uint32Array;
};

export type ReleaseRequest = { kind: "release"; session: string };

export type HostRequest = LoadRequest | LocalGreedyRequest | RestrictRequest | RoundRequest | ReleaseRequest;

export type LoadedReply = { kind: "loaded"; shards: { id: number; maxBound: number; nnz: number; evaluations: number }[] };

export type LocalGreedyReply = { kind: "local"; parts: { shard: number; colStart: number; picks: Uint32Array }[]; evaluations: number };

/**
 * One shard's answer to a round: every unselected, allowed column of its range whose gain against
 * the round's coverage is at least tau (at most `limit` of them, the best first), with the
 * entries that can still raise coverage (value above cur) in column order.
 */
export type ShardCandidates = {
  id: number;
  cols: Uint32Array;
  gains: Float64Array;
  /** Candidate c's live entries are rows/values[ptr[c] .. ptr[c + 1]). */
  ptr: Uint32Array;
  rows: Uint32Array;
  values: Float32Array;
  /** More columns reached tau than were shipped; the last shipped one bounds them (gain, then column). */
  truncated: boolean;
  /** Largest bound among the range's unselected, allowed columns that were not shipped (0 if none). */
  maxBound: number;
  evaluations: number;
};

export type RoundReply = { kind: "round"; round: number; shards: ShardCandidates[] };

export type DoneReply = { kind: "done" };

/** A host's refusal or failure, carried back so the coordinator can decide (InputError: the data's fault, fatal). */
export type ErrorReply = { kind: "error"; name: string; message: string };

export type HostReply = LoadedReply | LocalGreedyReply | RoundReply | DoneReply | ErrorReply;
