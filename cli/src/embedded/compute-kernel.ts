import type { PreparedCorpus, TokenizedPrompts } from "../../../common/src/mod.js";
import { KERNEL_FORMAT, type UtilityKernel } from "../../../common/src/kernel/kernel-files.js";
import {
  assembleKernel,
  planDenseKernel,
  sampleKeys,
  settingsKey,
  tilePairCount,
  tileWork,
  TileStore,
  type TileShape,
  type TileSpec,
} from "../../../coordinator/src/mod.js";
import { TileEngine, type BatchLimits, type CausalLm } from "../../../worker/src/mod.js";

export type KernelComputation = {
  corpus: PreparedCorpus;
  prompts: TokenizedPrompts;
  modelHash: string;
  model: CausalLm;
  batch: BatchLimits;
  tile: TileShape;
  store: TileStore;
  /** Global indices of targets (rows) and examples (columns); default: every sample. */
  targets?: Uint32Array;
  examples?: Uint32Array;
  signal?: AbortSignal;
  progress?: {
    start(totals: { tiles: number; pairs: number; tilesDone: number; pairsDone: number }): void;
    scored(count: number): void;
    tileDone(): void;
  };
};

export type KernelRunStats = {
  tiles: number;
  tilesComputed: number;
  tilesReused: number;
  pairs: number;
  baselines: number;
  seconds: number;
};

/**
 * The embedded default: planner, tile engine and tile store in one process, the same pieces the
 * cluster runs apart. Stored tiles (content-keyed) are reused, so an interrupted run resumes.
 */
export async function computeKernel(job: KernelComputation): Promise<{ kernel: UtilityKernel; stats: KernelRunStats }> {
  const started = performance.now();
  const all = Uint32Array.from({ length: job.corpus.tokens.count }, (_, i) => i);
  const targets = job.targets ?? all;
  const examples = job.examples ?? all;
  const settings = settingsKey(job.modelHash, job.prompts);
  const tiles = planDenseKernel({ settingsKey: settings, sampleKeys: sampleKeys(job.corpus.tokens), targets, examples, shape: job.tile });
  const pending = tiles.filter((t) => !job.store.has(t.id));
  const totalPairs = tiles.reduce((n, t) => n + tilePairCount(t), 0);
  const pendingPairs = pending.reduce((n, t) => n + tilePairCount(t), 0);
  job.progress?.start({ tiles: tiles.length, pairs: totalPairs, tilesDone: tiles.length - pending.length, pairsDone: totalPairs - pendingPairs });

  const engine = new TileEngine(job.model, job.prompts, job.batch);
  for (const tile of pending) {
    job.signal?.throwIfAborted();
    const output = await engine.compute(tileWork(tile, job.corpus.tokens), {
      signal: job.signal,
      onScored: (count) => job.progress?.scored(count),
    });
    await job.store.put(tile.id, output);
    job.progress?.tileDone();
  }

  const axes = {
    rowOf: new Map(Array.from(targets, (g, k) => [g, k])),
    colOf: new Map(Array.from(examples, (g, k) => [g, k])),
    nRows: targets.length,
    nCols: examples.length,
  };
  const assembled = await assembleKernel(tiles, axes, (t: TileSpec) => job.store.get(t.id));
  const ids = job.corpus.samples.map((s) => s.id);
  const kernel: UtilityKernel = {
    csc: assembled.csc,
    baseline: assembled.baseline,
    metadata: {
      format: KERNEL_FORMAT,
      nRows: targets.length,
      nCols: examples.length,
      nnz: assembled.csc.rowIdx.length,
      rowIds: Array.from(targets, (g) => ids[g]),
      colIds: Array.from(examples, (g) => ids[g]),
      modelHash: job.modelHash,
      settingsKey: settings,
      maxLength: job.prompts.maxLength,
      truncated: assembled.truncated,
      data: job.corpus.file,
    },
  };
  return {
    kernel,
    stats: {
      tiles: tiles.length,
      tilesComputed: pending.length,
      tilesReused: tiles.length - pending.length,
      pairs: targets.length * examples.length,
      baselines: targets.length,
      seconds: (performance.now() - started) / 1000,
    },
  };
}
