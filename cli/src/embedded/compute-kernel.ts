import type { TokenizedCorpus, TokenizedPrompts } from "../../../common/src/mod.js";
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

/** One kernel to compute: targets (rows) x examples (columns), as global sample indices. */
export type KernelRequest = { targets: Uint32Array; examples: Uint32Array };

export type KernelComputation = {
  tokens: TokenizedCorpus;
  /** Sample ids by global index, recorded in kernel.json. */
  ids: string[];
  dataLabel: string;
  prompts: TokenizedPrompts;
  modelHash: string;
  model: CausalLm;
  batch: BatchLimits;
  tile: TileShape;
  store: TileStore;
  requests: KernelRequest[];
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
 * cluster runs apart. Tiles are content-keyed: a tile shared by two kernels is computed once,
 * and stored tiles are reused, so an interrupted run resumes where it stopped.
 */
export async function computeKernels(job: KernelComputation): Promise<{ kernels: UtilityKernel[]; stats: KernelRunStats }> {
  const started = performance.now();
  const settings = settingsKey(job.modelHash, job.prompts);
  const keys = sampleKeys(job.tokens);
  const plans = job.requests.map((r) => planDenseKernel({ settingsKey: settings, sampleKeys: keys, ...r, shape: job.tile }));
  const unique = new Map<string, TileSpec>();
  for (const plan of plans) for (const t of plan) unique.set(t.id, t);
  const tiles = [...unique.values()];
  const pending = tiles.filter((t) => !job.store.has(t.id));
  const totalPairs = tiles.reduce((n, t) => n + tilePairCount(t), 0);
  const pendingPairs = pending.reduce((n, t) => n + tilePairCount(t), 0);
  job.progress?.start({ tiles: tiles.length, pairs: totalPairs, tilesDone: tiles.length - pending.length, pairsDone: totalPairs - pendingPairs });

  const engine = new TileEngine(job.model, job.prompts, job.batch);
  for (const tile of pending) {
    job.signal?.throwIfAborted();
    const output = await engine.compute(tileWork(tile, job.tokens), {
      signal: job.signal,
      onScored: (count) => job.progress?.scored(count),
    });
    await job.store.put(tile.id, output);
    job.progress?.tileDone();
  }

  const kernels: UtilityKernel[] = [];
  for (let r = 0; r < job.requests.length; r++) {
    const { targets, examples } = job.requests[r];
    const axes = {
      rowOf: new Map(Array.from(targets, (g, k) => [g, k])),
      colOf: new Map(Array.from(examples, (g, k) => [g, k])),
      nRows: targets.length,
      nCols: examples.length,
    };
    const assembled = await assembleKernel(plans[r], axes, (t) => job.store.get(t.id));
    kernels.push({
      csc: assembled.csc,
      baseline: assembled.baseline,
      metadata: {
        format: KERNEL_FORMAT,
        nRows: targets.length,
        nCols: examples.length,
        nnz: assembled.csc.rowIdx.length,
        rowIds: Array.from(targets, (g) => job.ids[g]),
        colIds: Array.from(examples, (g) => job.ids[g]),
        modelHash: job.modelHash,
        settingsKey: settings,
        maxLength: job.prompts.maxLength,
        truncated: assembled.truncated,
        data: job.dataLabel,
      },
    });
  }
  const pairs = job.requests.reduce((n, r) => n + r.targets.length * r.examples.length, 0);
  return {
    kernels,
    stats: {
      tiles: tiles.length,
      tilesComputed: pending.length,
      tilesReused: tiles.length - pending.length,
      pairs,
      baselines: tiles.reduce((n, t) => n + (t.kind === "baseline" ? t.targets.length : 0), 0),
      seconds: (performance.now() - started) / 1000,
    },
  };
}
