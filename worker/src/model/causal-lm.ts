/**
 * What the tile engine needs from a language model. The ONNX implementation is in
 * onnx-causal-lm.ts; the interface keeps the engine free of runtime details.
 */

/** Key/value cache of a batch-1 prefix: one tensor per layer for keys and for values. */
export type KvCache = {
  /** Positions covered by the cache. */
  length: number;
  /** Opaque to the engine; owned by the model implementation. */
  readonly handle: unknown;
};

/** A batch of continuations of one shared prefix, right-padded by the model. */
export type ContinuationBatch = {
  sequences: Int32Array[];
};

export type ModelLayout = {
  numLayers: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number | undefined;
};

export interface CausalLm {
  readonly layout: ModelLayout;
  readonly device: "cpu" | "cuda";
  /** Runs `ids` after `past` (null: from position 0) and returns the cache of past + ids. */
  extend(past: KvCache | null, ids: Int32Array): Promise<KvCache>;
  /**
   * Teacher-forced log-probabilities: for every sequence s and position t < len(s) - 1, the
   * log-probability of s[t + 1] given past and s[0..t]. Row b of the result starts at
   * b * width; positions past each sequence's end are garbage.
   */
  scoreContinuations(past: KvCache | null, batch: ContinuationBatch): Promise<{ logprobs: Float32Array; width: number }>;
  /** Tokens processed by the runtime so far (including padding) and bytes fed to / fetched from it. */
  readonly stats: ModelStats;
  dispose(): Promise<void>;
}

export type ModelStats = {
  runs: number;
  tokens: number;
  paddedTokens: number;
  /** Bytes of every input fed to the session (host to session; on CUDA, host to device). */
  bytesToSession: number;
  /** Bytes of every output fetched from the session. */
  bytesFromSession: number;
  /** The KV cache's share of bytesToSession / bytesFromSession. */
  cacheBytesToSession: number;
  cacheBytesFromSession: number;
};
