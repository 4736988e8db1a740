import * as ort from "onnxruntime-node";
import { closeSync, openSync, readSync, fstatSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, join, normalize } from "node:path";
import { type Device, ModelError, sessionOptionsFor } from "../../../common/src/mod.js";
import type { CausalLm, ContinuationBatch, KvCache, ModelLayout, ModelStats } from "./causal-lm.js";
import { inspectModel, prepareModelGraph, TARGET_IDS_INPUT, TARGET_LOGPROBS_OUTPUT, type PrepareOptions } from "./prepare-graph.js";
import { classifyLoadError, classifyRunError } from "./session-errors.js";
import { checkCachePath } from "./trial-run.js";
import { widenBfloat16, type ExternalReader } from "./widen-bfloat16.js";

export type { Device };

export type OnnxModelOptions = {
  device?: Device;
  /** Intra-op threads; default: onnxruntime's own choice (all cores). */
  threads?: number;
  padId?: number;
  /** How an unprepared graph is prepared in memory (benchmarks compare the host-side past copy). */
  prepare?: PrepareOptions;
  /** Run the load-time check of the cache path against whole prompts (default true). */
  trialRun?: boolean;
};

type KvDataType = "float32" | "float16";
type KvHandle = { tensors: ort.Tensor[] };

/**
 * Loads a decoder export (optimum signature; model.onnx, a merged decoder or a decoder-with-past)
 * and prepares it in memory if it is not prepared on disk; external data files are read from the
 * model's directory. A trial run then checks that cached continuations score as whole prompts do.
 * Problems of the bundle are ModelErrors; memory or provider problems of this machine are
 * WorkerHealthErrors.
 */
export async function loadOnnxCausalLm(modelPath: string, options: OnnxModelOptions = {}): Promise<CausalLm> {
  const device = options.device ?? "cpu";
  const bytes = await readModelBytes(modelPath);
  let facts = inspectModel(bytes);
  let graph = bytes;
  let widened = false;
  if (facts.usesBfloat16 && device === "cpu") {
    // onnxruntime's CPU provider has almost no bfloat16 kernels: compute in float32 (bf16 -> f32 is exact).
    graph = widenBfloat16(bytes, externalReader(dirname(modelPath)));
    facts = inspectModel(graph);
    widened = true;
  }
  const sessionOptions = await sessionOptionsFor(device, options.threads);
  let source: string | Uint8Array = modelPath;
  let broadcastsPast = facts.broadcastsPast;
  if (!facts.prepared || widened) {
    source = prepareModelGraph(graph, options.prepare);
    broadcastsPast = inspectModel(source).broadcastsPast;
    // A graph built in memory finds its external data files next to the model file.
    sessionOptions.extra = {
      ...sessionOptions.extra,
      session: { ...(sessionOptions.extra?.session as object), model_external_initializers_file_folder_path: dirname(modelPath) },
    };
  }
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(source as string, sessionOptions);
  } catch (err) {
    const hint = /Could not find an implementation/.test((err as Error).message)
      ? ` (onnxruntime's ${device.toUpperCase()} provider lacks a kernel this graph needs; float16 and bfloat16 graphs lack the most, a float32 export runs everywhere)`
      : "";
    throw classifyLoadError(err, `cannot load ${modelPath} with onnxruntime (${device})`, hint);
  }
  const model = new OnnxCausalLm(session, device, options.padId ?? 0, broadcastsPast);
  if (options.trialRun !== false) {
    try {
      await checkCachePath(model, modelPath);
    } catch (err) {
      await session.release().catch(() => undefined);
      throw err;
    }
  }
  return model;
}

/** Reads a tensor's bytes from an external data file inside `dir` (locations were checked when the bundle was opened). */
function externalReader(dir: string): ExternalReader {
  return (location, offset, length) => {
    const path = join(dir, normalize(location));
    if (!path.startsWith(dir)) throw new ModelError(`external data location ${JSON.stringify(location)} leaves the model's directory`);
    let fd: number;
    try {
      fd = openSync(path, "r");
    } catch (err) {
      throw new ModelError(`cannot read external data ${path}: ${(err as Error).message}`, { cause: err });
    }
    try {
      const size = length ?? fstatSync(fd).size - offset;
      const out = Buffer.alloc(size);
      if (readSync(fd, out, 0, size, offset) !== size) throw new ModelError(`external data ${path} ends before byte ${offset + size}`);
      return out;
    } finally {
      closeSync(fd);
    }
  };
}

async function readModelBytes(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new ModelError(`cannot read model ${path}: ${(err as Error).message}`, { cause: err });
  }
}

export class OnnxCausalLm implements CausalLm {
  readonly layout: ModelLayout;
  readonly stats: ModelStats = { runs: 0, tokens: 0, paddedTokens: 0, bytesToSession: 0, bytesFromSession: 0, cacheBytesToSession: 0, cacheBytesFromSession: 0 };
  readonly kvType: KvDataType;
  private readonly pastNames: string[];
  private readonly presentNames: string[];
  private readonly hasPositionIds: boolean;

  constructor(
    private readonly session: ort.InferenceSession,
    readonly device: Device,
    private readonly padId: number,
    /** The graph broadcasts a batch-1 past to the batch itself (else the host copies it batch times). */
    readonly broadcastsPast: boolean,
  ) {
    const inputs = new Map(session.inputMetadata.map((m) => [m.name, m]));
    for (const name of ["input_ids", "attention_mask", TARGET_IDS_INPUT]) {
      if (!inputs.has(name)) throw new ModelError(`model has no "${name}" input (inputs: ${[...inputs.keys()].join(", ")})`);
    }
    this.hasPositionIds = inputs.has("position_ids");
    let numLayers = 0;
    while (inputs.has(`past_key_values.${numLayers}.key`)) numLayers++;
    if (numLayers === 0) throw new ModelError("model has no past_key_values.N.key inputs: delift needs a decoder exported with KV cache (optimum-cli --task text-generation-with-past)");
    const outputs = new Set(session.outputNames);
    const first = inputs.get("past_key_values.0.key")!;
    if (!first.isTensor) throw new ModelError("past_key_values.0.key is not a tensor");
    const [, heads, , dim] = first.shape;
    if (typeof heads !== "number" || typeof dim !== "number") {
      throw new ModelError(`past_key_values.0.key must have static head and head-dim sizes, got shape [${first.shape.join(", ")}]`);
    }
    if (first.type !== "float32" && first.type !== "float16") throw new ModelError(`unsupported KV cache type ${first.type} (delift runs float32 and float16 caches)`);
    this.kvType = first.type;
    this.pastNames = [];
    this.presentNames = [];
    for (let l = 0; l < numLayers; l++) {
      for (const kind of ["key", "value"]) {
        this.pastNames.push(`past_key_values.${l}.${kind}`);
        const present = `present.${l}.${kind}`;
        if (!outputs.has(present)) throw new ModelError(`model has past_key_values.${l}.${kind} but no ${present} output`);
        this.presentNames.push(present);
      }
    }
    this.layout = { numLayers, numKvHeads: heads, headDim: dim, vocabSize: undefined };
  }

  /** The prefix run: the only run whose KV cache (present.*) comes back from the session. */
  async extend(past: KvCache | null, ids: Int32Array): Promise<KvCache> {
    const pastLength = past?.length ?? 0;
    const feeds = this.feeds(past, [ids], ids.length, pastLength);
    const out = await this.run(feeds, this.presentNames);
    this.count(ids.length, ids.length);
    const tensors = this.presentNames.map((n) => out[n]);
    const bytes = tensors.reduce((n, t) => n + tensorBytes(t), 0);
    this.stats.bytesFromSession += bytes;
    this.stats.cacheBytesFromSession += bytes;
    return { length: pastLength + ids.length, handle: { tensors } satisfies KvHandle };
  }

  /** Continuations fetch target_logprobs only: their cache never leaves the session. */
  async scoreContinuations(past: KvCache | null, batch: ContinuationBatch): Promise<{ logprobs: Float32Array; width: number }> {
    const width = batch.sequences.reduce((m, s) => Math.max(m, s.length), 0);
    const pastLength = past?.length ?? 0;
    const feeds = this.feeds(past, batch.sequences, width, pastLength);
    const out = await this.run(feeds, [TARGET_LOGPROBS_OUTPUT]);
    const real = batch.sequences.reduce((n, s) => n + s.length, 0);
    this.count(real, width * batch.sequences.length);
    const logprobs = out[TARGET_LOGPROBS_OUTPUT];
    this.stats.bytesFromSession += tensorBytes(logprobs);
    return { logprobs: logprobs.data as Float32Array, width };
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }

  private async run(feeds: Record<string, ort.Tensor>, fetches: string[]): Promise<ort.InferenceSession.OnnxValueMapType> {
    try {
      return await this.session.run(feeds, fetches);
    } catch (err) {
      throw classifyRunError(err);
    }
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
    let bytes = inputIds.byteLength + targets.byteLength + mask.byteLength + (this.hasPositionIds ? positions.byteLength : 0);
    const pastTensors = past ? (past.handle as KvHandle).tensors : null;
    const pastBatch = this.broadcastsPast ? 1 : batch;
    let cacheBytes = 0;
    for (let k = 0; k < this.pastNames.length; k++) {
      const tensor = pastTensors ? (this.broadcastsPast ? pastTensors[k] : broadcast(pastTensors[k], batch)) : this.emptyPast(pastBatch);
      feeds[this.pastNames[k]] = tensor;
      cacheBytes += tensorBytes(tensor);
    }
    bytes += cacheBytes;
    this.stats.bytesToSession += bytes;
    this.stats.cacheBytesToSession += cacheBytes;
    return feeds;
  }

  private emptyPast(batch: number): ort.Tensor {
    const data = this.kvType === "float32" ? new Float32Array(0) : new Uint16Array(0);
    return new ort.Tensor(this.kvType, data, [batch, this.layout.numKvHeads, 0, this.layout.headDim]);
  }
}

function tensorBytes(t: ort.Tensor): number {
  const bytesPer = t.type === "float32" || t.type === "int32" ? 4 : t.type === "int64" || t.type === "float64" ? 8 : t.type === "float16" ? 2 : 1;
  return t.dims.reduce((n, d) => n * d, 1) * bytesPer;
}

/** Repeats a batch-1 cache tensor along the batch axis, for graphs that do not broadcast it themselves. */
function broadcast(tensor: ort.Tensor, batch: number): ort.Tensor {
  if (batch === 1) return tensor;
  const src = tensor.data as Float32Array | Uint16Array;
  const data = new (src.constructor as Float32ArrayConstructor | Uint16ArrayConstructor)(src.length * batch);
  for (let b = 0; b < batch; b++) data.set(src, b * src.length);
  return new ort.Tensor(tensor.type as KvDataType, data, [batch, ...tensor.dims.slice(1)]);
}
