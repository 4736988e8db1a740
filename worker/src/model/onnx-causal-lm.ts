import * as ort from "onnxruntime-node";
import { readFile } from "node:fs/promises";
import { type Device, ModelError, sessionOptionsFor } from "../../../common/src/mod.js";
import type { CausalLm, ContinuationBatch, KvCache, ModelLayout } from "./causal-lm.js";
import { inspectModel, prepareModelGraph, TARGET_IDS_INPUT, TARGET_LOGPROBS_OUTPUT } from "./prepare-graph.js";

export type { Device };

export type OnnxModelOptions = {
  device?: Device;
  /** Intra-op threads; default: onnxruntime's own choice (all cores). */
  threads?: number;
  padId?: number;
};

type KvDataType = "float32" | "float16";
type KvHandle = { tensors: ort.Tensor[] };

/** Loads a decoder export (optimum signature) and prepares it in memory if it is not prepared. */
export async function loadOnnxCausalLm(modelPath: string, options: OnnxModelOptions = {}): Promise<CausalLm> {
  const device = options.device ?? "cpu";
  const bytes = await readModelBytes(modelPath);
  const facts = inspectModel(bytes);
  if (!facts.prepared && facts.usesExternalData) {
    throw new ModelError(
      `${modelPath} keeps its weights in external data files and is not prepared; run "delift model prepare" on its bundle first`,
    );
  }
  const sessionOptions = await sessionOptionsFor(device, options.threads);
  let session: ort.InferenceSession;
  try {
    session = facts.prepared
      ? await ort.InferenceSession.create(modelPath, sessionOptions)
      : await ort.InferenceSession.create(prepareModelGraph(bytes), sessionOptions);
  } catch (err) {
    throw new ModelError(`cannot load ${modelPath} with onnxruntime (${device}): ${(err as Error).message}`, { cause: err });
  }
  return new OnnxCausalLm(session, device, options.padId ?? 0);
}

async function readModelBytes(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new ModelError(`cannot read model ${path}: ${(err as Error).message}`, { cause: err });
  }
}

class OnnxCausalLm implements CausalLm {
  readonly layout: ModelLayout;
  readonly stats = { runs: 0, tokens: 0, paddedTokens: 0 };
  private readonly pastNames: string[];
  private readonly presentNames: string[];
  private readonly kvType: KvDataType;
  private readonly hasPositionIds: boolean;

  constructor(
    private readonly session: ort.InferenceSession,
    readonly device: Device,
    private readonly padId: number,
  ) {
    const inputs = new Map(session.inputMetadata.map((m) => [m.name, m]));
    for (const name of ["input_ids", "attention_mask", TARGET_IDS_INPUT]) {
      if (!inputs.has(name)) throw new ModelError(`model has no "${name}" input (inputs: ${[...inputs.keys()].join(", ")})`);
    }
    this.hasPositionIds = inputs.has("position_ids");
    let numLayers = 0;
    while (inputs.has(`past_key_values.${numLayers}.key`)) numLayers++;
    if (numLayers === 0) throw new ModelError("model has no past_key_values.N.key inputs: delift needs a decoder exported with KV cache");
    const first = inputs.get("past_key_values.0.key")!;
    if (!first.isTensor) throw new ModelError("past_key_values.0.key is not a tensor");
    const [, heads, , dim] = first.shape;
    if (typeof heads !== "number" || typeof dim !== "number") {
      throw new ModelError(`past_key_values.0.key must have static head and head-dim sizes, got shape [${first.shape.join(", ")}]`);
    }
    if (first.type !== "float32" && first.type !== "float16") throw new ModelError(`unsupported KV cache type ${first.type}`);
    this.kvType = first.type;
    this.pastNames = [];
    this.presentNames = [];
    for (let l = 0; l < numLayers; l++) {
      for (const kind of ["key", "value"]) {
        this.pastNames.push(`past_key_values.${l}.${kind}`);
        this.presentNames.push(`present.${l}.${kind}`);
      }
    }
    this.layout = { numLayers, numKvHeads: heads, headDim: dim, vocabSize: undefined };
  }

  async extend(past: KvCache | null, ids: Int32Array): Promise<KvCache> {
    const pastLength = past?.length ?? 0;
    const feeds = this.feeds(past, [ids], ids.length, pastLength);
    const out = await this.session.run(feeds, this.presentNames);
    this.count(ids.length, ids.length);
    return { length: pastLength + ids.length, handle: { tensors: this.presentNames.map((n) => out[n]) } satisfies KvHandle };
  }

  async scoreContinuations(past: KvCache | null, batch: ContinuationBatch): Promise<{ logprobs: Float32Array; width: number }> {
    const width = batch.sequences.reduce((m, s) => Math.max(m, s.length), 0);
    const pastLength = past?.length ?? 0;
    const feeds = this.feeds(past, batch.sequences, width, pastLength);
    const out = await this.session.run(feeds, [TARGET_LOGPROBS_OUTPUT]);
    const real = batch.sequences.reduce((n, s) => n + s.length, 0);
    this.count(real, width * batch.sequences.length);
    return { logprobs: out[TARGET_LOGPROBS_OUTPUT].data as Float32Array, width };
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }

  private count(real: number, padded: number): void {
    this.stats.runs++;
    this.stats.tokens += real;
    this.stats.paddedTokens += padded;
  }

  private feeds(past: KvCache | null, sequences: Int32Array[], width: number, pastLength: number): Record<string, ort.Tensor> {
    const batch = sequences.length;
    const inputIds = new BigInt64Array(batch * width);
    const targets = new BigInt64Array(batch * width);
    const positions = new BigInt64Array(batch * width);
    const mask = new BigInt64Array(batch * (pastLength + width));
    const pad = BigInt(this.padId);
    for (let b = 0; b < batch; b++) {
      const s = sequences[b];
      const row = b * width;
      const maskRow = b * (pastLength + width);
      for (let t = 0; t < width; t++) {
        inputIds[row + t] = t < s.length ? BigInt(s[t]) : pad;
        targets[row + t] = t + 1 < s.length ? BigInt(s[t + 1]) : pad;
        positions[row + t] = BigInt(pastLength + t);
      }
      mask.fill(1n, maskRow, maskRow + pastLength + s.length);
    }
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor("int64", inputIds, [batch, width]),
      attention_mask: new ort.Tensor("int64", mask, [batch, pastLength + width]),
      [TARGET_IDS_INPUT]: new ort.Tensor("int64", targets, [batch, width]),
    };
    if (this.hasPositionIds) feeds.position_ids = new ort.Tensor("int64", positions, [batch, width]);
    const pastTensors = past ? (past.handle as KvHandle).tensors : null;
    for (let k = 0; k < this.pastNames.length; k++) {
      feeds[this.pastNames[k]] = pastTensors ? broadcast(pastTensors[k], batch) : this.emptyPast(batch);
    }
    return feeds;
  }

  private emptyPast(batch: number): ort.Tensor {
    const data = this.kvType === "float32" ? new Float32Array(0) : new Uint16Array(0);
    return new ort.Tensor(this.kvType, data, [batch, this.layout.numKvHeads, 0, this.layout.headDim]);
  }
}

/** Repeats a batch-1 cache tensor along the batch axis (a copy: attention does not broadcast). */
function broadcast(tensor: ort.Tensor, batch: number): ort.Tensor {
  if (batch === 1) return tensor;
  const src = tensor.data as Float32Array | Uint16Array;
  const data = new (src.constructor as Float32ArrayConstructor | Uint16ArrayConstructor)(src.length * batch);
  for (let b = 0; b < batch; b++) data.set(src, b * src.length);
  return new ort.Tensor(tensor.type as KvDataType, data, [batch, ...tensor.dims.slice(1)]);
}
