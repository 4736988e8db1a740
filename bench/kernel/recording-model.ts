import type { CausalLm, ContinuationBatch, KvCache } from "../../worker/src/mod.js";

/** One model run as the engine made it: enough to replay the same shapes on a bare session. */
export type RecordedRun = { kind: "extend" | "score"; batch: number; width: number; past: number };

/** A CausalLm that records every run's shape and delegates to the real model. */
export class RecordingModel implements CausalLm {
  readonly runs: RecordedRun[] = [];
  constructor(private readonly inner: CausalLm) {}
  get layout() {
    return this.inner.layout;
  }
  get device() {
    return this.inner.device;
  }
  get stats() {
    return this.inner.stats;
  }
  async extend(past: KvCache | null, ids: Int32Array): Promise<KvCache> {
    this.runs.push({ kind: "extend", batch: 1, width: ids.length, past: past?.length ?? 0 });
    return this.inner.extend(past, ids);
  }
  async scoreContinuations(past: KvCache | null, batch: ContinuationBatch) {
    const width = batch.sequences.reduce((m, s) => Math.max(m, s.length), 0);
    this.runs.push({ kind: "score", batch: batch.sequences.length, width, past: past?.length ?? 0 });
    return this.inner.scoreContinuations(past, batch);
  }
  dispose(): Promise<void> {
    return this.inner.dispose();
  }
}
