import * as ort from "onnxruntime-node";
import { ModelError } from "../errors.js";
import type { BatchLimits } from "../tiles/types.js";
import { planBatches } from "../tiles/batching.js";
import { sessionOptionsFor, type Device } from "./session-options.js";

/** A feature-extraction model: mean-pooled, L2-normalised sentence embeddings. */
export interface SentenceEncoder {
  readonly dim: number;
  /**
   * Row k of the result (k * dim .. (k + 1) * dim) embeds sequences[k]. `batches` (indices into
   * sequences) fixes the model runs, as planBatches over the same sequences would give them; by
   * default the encoder plans its own. The same runs give the same bytes.
   */
  embed(sequences: Int32Array[], batches?: number[][]): Promise<Float32Array>;
  dispose(): Promise<void>;
}

/**
 * Loads a Hugging Face feature-extraction export (inputs input_ids and attention_mask, output
 * last_hidden_state [batch, seq, hidden]); pooling is the mean over real tokens.
 */
/** The runs the encoder makes of sequences of these lengths by default (what embed() without batches uses). */
export const ENCODER_BATCH: BatchLimits = { maxBatch: 64, maxTokens: 16384 };

export async function loadOnnxEncoder(path: string, options: { device?: Device; threads?: number; padId?: number; batch?: BatchLimits } = {}): Promise<SentenceEncoder> {
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(path, await sessionOptionsFor(options.device ?? "cpu", options.threads));
  } catch (err) {
    throw new ModelError(`cannot load encoder ${path}: ${(err as Error).message}`, { cause: err });
  }
  const output = session.outputMetadata.find((m) => m.name === "last_hidden_state") ?? session.outputMetadata[0];
  const dim = output.isTensor ? output.shape[output.shape.length - 1] : undefined;
  if (typeof dim !== "number") throw new ModelError(`encoder ${path}: output ${output.name} needs a static hidden size`);
  const needsTypeIds = session.inputNames.includes("token_type_ids");
  const limits = options.batch ?? ENCODER_BATCH;
  const pad = BigInt(options.padId ?? 0);

  return {
    dim,
    async embed(sequences, batches) {
      const out = new Float32Array(sequences.length * dim);
      for (const batch of batches ?? planBatches(sequences.map((s) => s.length), limits)) {
        const width = Math.max(...batch.map((k) => sequences[k].length));
        const ids = new BigInt64Array(batch.length * width).fill(pad);
        const mask = new BigInt64Array(batch.length * width);
        batch.forEach((k, b) => {
          sequences[k].forEach((t, i) => (ids[b * width + i] = BigInt(t)));
          mask.fill(1n, b * width, b * width + sequences[k].length);
        });
        const feeds: Record<string, ort.Tensor> = {
          input_ids: new ort.Tensor("int64", ids, [batch.length, width]),
          attention_mask: new ort.Tensor("int64", mask, [batch.length, width]),
        };
        if (needsTypeIds) feeds.token_type_ids = new ort.Tensor("int64", new BigInt64Array(batch.length * width), [batch.length, width]);
        const hidden = (await session.run(feeds, [output.name]))[output.name].data as Float32Array;
        batch.forEach((k, b) => meanPoolNormalized(hidden, b, width, sequences[k].length, dim, out, k));
      }
      return out;
    },
    dispose: () => session.release(),
  };
}

function meanPoolNormalized(hidden: Float32Array, b: number, width: number, length: number, dim: number, out: Float32Array, row: number): void {
  const acc = new Float64Array(dim);
  for (let t = 0; t < length; t++) {
    const base = (b * width + t) * dim;
    for (let d = 0; d < dim; d++) acc[d] += hidden[base + d];
  }
  let norm = 0;
  for (let d = 0; d < dim; d++) norm += acc[d] * acc[d];
  const scale = norm > 0 ? 1 / Math.sqrt(norm) : 0;
  for (let d = 0; d < dim; d++) out[row * dim + d] = acc[d] * scale;
}
