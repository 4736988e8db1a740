import { AbortedError, type BatchLimits, composeExamplePart, composeTargetPart, planBatches, sampleTokens, type SampleTokens, type TargetPart, type TileOutput, tileValueCount, type TileWork, type TokenizedCorpus, type TokenizedPrompts, type TokenizedTemplate } from "../../../common/src/mod.js";
import type { CausalLm, KvCache } from "../model/causal-lm.js";
import { responseDistance } from "./distance.js";

export type TileHooks = {
  signal?: AbortSignal;
  /** Called after every model run with the number of distances it finished. */
  onScored?: (count: number) => void;
  /** Called once the tile is done, with the tokens it fed to the model. */
  onFed?: (fed: TileFed) => void;
};

/**
 * Tokens a tile fed to the model: `tokens` real ones (the template header once per engine,
 * each column's example prefix once, every target continuation, whole truncated prompts),
 * `paddedTokens` what the batched runs computed (continuations padded to their batch's width),
 * `runs` model calls.
 */
export type TileFed = { tokens: number; paddedTokens: number; runs: number; prompts: number };

/**
 * Computes tiles (DESIGN.md §3): per example column, the KV cache of the example prefix once
 * (the template header's cache once for all columns), then every target of the column as
 * batched continuations of it. Prompts longer than the maximum length are left-truncated and
 * run whole, without the shared cache. Memory is bounded by the batch limits, never by n.
 */
export class TileEngine {
  private readonly headers = new Map<TokenizedTemplate, Promise<KvCache | null>>();

  constructor(
    private readonly model: CausalLm,
    private readonly prompts: TokenizedPrompts,
    private readonly limits: BatchLimits,
  ) {}

  async compute(work: TileWork, hooks: TileHooks = {}): Promise<TileOutput> {
    const distances = new Float32Array(tileValueCount(work));
    let truncated = 0;
    const fed: TileFed = { tokens: 0, paddedTokens: 0, runs: 0, prompts: distances.length };
    if (work.kind === "baseline") {
      truncated += await this.scoreColumn(this.prompts.baseline, null, work.samples, work.targets, distances, 0, hooks, fed);
    } else {
      let at = 0;
      for (const column of work.columns) {
        const example = sampleTokens(work.samples, column.example);
        truncated += await this.scoreColumn(this.prompts.example, example, work.samples, column.rows, distances, at, hooks, fed);
        at += column.rows.length;
      }
    }
    hooks.onFed?.(fed);
    return { distances, truncated };
  }

  private async scoreColumn(
    template: TokenizedTemplate,
    example: SampleTokens | null,
    samples: TokenizedCorpus,
    targets: Uint32Array,
    out: Float32Array,
    at: number,
    hooks: TileHooks,
    fed: TileFed,
  ): Promise<number> {
    const examplePart = composeExamplePart(template, example);
    const prefixLength = template.header.length + examplePart.length;
    const parts = Array.from(targets, (i) => composeTargetPart(template, sampleTokens(samples, i)));
    const fits: number[] = [];
    const over: number[] = [];
    parts.forEach((p, k) => (prefixLength + p.ids.length <= this.prompts.maxLength ? fits : over).push(k));

    if (fits.length > 0) {
      const prefix = await this.prefixCache(template, examplePart, fed);
      await this.scoreBatches(prefix, fits.map((k) => parts[k]), fits, out, at, hooks, fed);
    }
    if (over.length > 0) {
      const whole = over.map((k) => this.truncatedPrompt(template.header, examplePart, parts[k]));
      await this.scoreBatches(null, whole, over, out, at, hooks, fed);
    }
    return over.length;
  }

  private async scoreBatches(
    prefix: KvCache | null,
    parts: TargetPart[],
    slots: number[],
    out: Float32Array,
    at: number,
    hooks: TileHooks,
    fed: TileFed,
  ): Promise<void> {
    const batches = planBatches(parts.map((p) => p.ids.length), this.limits);
    for (const batch of batches) {
      if (hooks.signal?.aborted) throw new AbortedError("tile computation aborted");
      const { logprobs, width } = await this.model.scoreContinuations(prefix, { sequences: batch.map((k) => parts[k].ids) });
      fed.runs++;
      fed.paddedTokens += width * batch.length;
      for (const k of batch) fed.tokens += parts[k].ids.length;
      batch.forEach((k, b) => {
        const { ids, responseStart } = parts[k];
        out[at + slots[k]] = responseDistance(logprobs, b * width + responseStart - 1, ids.length - responseStart);
      });
      hooks.onScored?.(batch.length);
    }
  }

  /** The whole prompt cut from the left to the maximum length; the response is never cut. */
  private truncatedPrompt(header: number[], examplePart: Int32Array, part: TargetPart): TargetPart {
    const full = new Int32Array(header.length + examplePart.length + part.ids.length);
    full.set(header, 0);
    full.set(examplePart, header.length);
    full.set(part.ids, header.length + examplePart.length);
    const drop = full.length - this.prompts.maxLength;
    return { ids: full.subarray(drop), responseStart: header.length + examplePart.length + part.responseStart - drop };
  }

  private async prefixCache(template: TokenizedTemplate, examplePart: Int32Array, fed: TileFed): Promise<KvCache | null> {
    let header = this.headers.get(template);
    if (!header) {
      header = template.header.length > 0 ? this.model.extend(null, Int32Array.from(template.header)) : Promise.resolve(null);
      this.headers.set(template, header);
      if (template.header.length > 0) {
        fed.runs++;
        fed.tokens += template.header.length;
        fed.paddedTokens += template.header.length;
      }
    }
    const headerCache = await header;
    if (examplePart.length === 0) return headerCache;
    fed.runs++;
    fed.tokens += examplePart.length;
    fed.paddedTokens += examplePart.length;
    return this.model.extend(headerCache, examplePart);
  }
}

