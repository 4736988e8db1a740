import { ModelError } from "../../../common/src/mod.js";
import { concatBytes, DataLocation, DataType, fieldMessage, fieldString, fieldVarint, Graph, lenField, Model, OperatorSetId, scanFields, StringStringEntry, Tensor, TensorTypeProto, TypeProto, ValueInfo, type WireField } from "../../../common/src/internal_mod.js";
import { graphAttribute, int64Initializer, intAttribute, metadataEntry, node, nodeInputs, nodeOpType, nodeOutputs, renameNodeInputs, tensorElemType, tensorType, valueInfo, valueInfoName, withFirstDimParam } from "./graph-edit.js";

export const TARGET_IDS_INPUT = "target_ids";
export const TARGET_LOGPROBS_OUTPUT = "target_logprobs";
export const PREPARED_METADATA_KEY = "delift.prepared";
/** Marks a graph whose past inputs take batch 1 and are broadcast to the batch inside the graph. */
export const PAST_BROADCAST_METADATA_KEY = "delift.past_broadcast";
export const CACHE_BRANCH_INPUT = "use_cache_branch";
const PAST_INPUT = /^past_key_values\.\d+\.(key|value)$/;
const PAST_BATCH_DIM = "delift_past_batch";
const MIN_OPSET = 13;

export type GraphFacts = {
  /** Nothing left for prepareModelGraph to do: target log-probabilities, past broadcast, no cache branch. */
  prepared: boolean;
  /** The graph returns target_logprobs (delift-prepared, possibly by an older delift). */
  scoresTargets: boolean;
  /** Past inputs take batch 1 and are broadcast inside the graph. */
  broadcastsPast: boolean;
  /** An optimum merged decoder (use_cache_branch input and an If over the two decoders). */
  mergedDecoder: boolean;
  opset: number;
  inputs: string[];
  outputs: string[];
  pastInputs: string[];
  usesExternalData: boolean;
  logitsElemType: number | undefined;
  /** Some graph input, output or initializer is bfloat16 (onnxruntime's CPU provider has almost no bf16 kernels). */
  usesBfloat16: boolean;
};

export type PrepareOptions = {
  /** Broadcast the batch-1 prefix cache inside the graph (default). False keeps the host-side copy (a baseline for benchmarks). */
  broadcastPast?: boolean;
};

/** Reads what the editor needs to know about a model, without touching its weights. */
export function inspectModel(model: Uint8Array): GraphFacts {
  const top = scanModel(model);
  const graph = scanFields(requireGraph(top));
  const inputFields = graph.filter((f) => f.field === Graph.input);
  const outputFields = graph.filter((f) => f.field === Graph.output);
  const inputs = inputFields.map((f) => valueInfoName(f.payload));
  const outputs = outputFields.map((f) => valueInfoName(f.payload));
  const logits = outputFields.find((f) => valueInfoName(f.payload) === "logits");
  const meta = metadata(top);
  const initializers = graph.filter((f) => f.field === Graph.initializer).map((f) => scanFields(f.payload));
  const scoresTargets = outputs.includes(TARGET_LOGPROBS_OUTPUT);
  const mergedDecoder = inputs.includes(CACHE_BRANCH_INPUT);
  const pastInputs = inputs.filter((n) => PAST_INPUT.test(n));
  const broadcastsPast = meta.get(PAST_BROADCAST_METADATA_KEY) === "1" || pastInputs.length === 0;
  return {
    prepared: scoresTargets && broadcastsPast && !mergedDecoder,
    scoresTargets,
    broadcastsPast,
    mergedDecoder,
    opset: defaultOpset(top),
    inputs,
    outputs,
    pastInputs,
    usesExternalData: initializers.some((t) => fieldVarint(t, Tensor.dataLocation) === DataLocation.EXTERNAL),
    logitsElemType: logits ? tensorElemType(logits.payload) : undefined,
    usesBfloat16:
      [...inputFields, ...outputFields].some((f) => tensorElemType(f.payload) === DataType.BFLOAT16) ||
      initializers.some((t) => fieldVarint(t, Tensor.dataType) === DataType.BFLOAT16),
  };
}

/**
 * Makes a decoder export ready for scoring, by editing the ONNX file (weights copied byte for byte):
 * 1. a merged decoder (optimum's If over use_cache_branch) keeps only its with-cache branch,
 *    inlined, since delift always runs with a cache (empty for the first tokens);
 * 2. log-softmax and a gather of the target tokens are appended, so a session returns one
 *    log-probability per position (`target_logprobs` [batch, seq], given `target_ids`) and
 *    full-vocabulary logits never leave the runtime; `logits` stops being a graph output;
 * 3. every past_key_values input takes a batch-1 cache that the graph broadcasts (Expand) to
 *    the batch of input_ids: a shared prefix crosses to the session once per batch, not batch times.
 * Steps already done are skipped, so preparing twice changes nothing.
 */
export function prepareModelGraph(model: Uint8Array, options: PrepareOptions = {}): Uint8Array {
  const facts = inspectModel(model);
  const broadcast = options.broadcastPast !== false;
  if (facts.scoresTargets && !facts.mergedDecoder && (facts.broadcastsPast || !broadcast)) return model;
  if (facts.opset < MIN_OPSET) {
    throw new ModelError(`model opset ${facts.opset} is too old: delift needs opset ${MIN_OPSET} or newer (re-export the model)`);
  }
  const top = scanModel(model);
  let graph = scanFields(requireGraph(top));
  if (facts.mergedDecoder) graph = inlineCacheBranch(graph);
  if (!facts.scoresTargets) graph = appendTargetLogprobs(graph, facts);
  const broadcasted = broadcast && !facts.broadcastsPast;
  if (broadcasted) graph = broadcastPastInGraph(graph);

  const parts: Uint8Array[] = [];
  for (const f of top) {
    if (f.field === Model.graph) {
      const length = graph.reduce((n, g) => n + g.raw.length, 0);
      parts.push(lengthHeader(Model.graph, length), ...graph.map((g) => g.raw));
    } else if (f.field === Model.metadataProps && isDeliftEntry(f.payload)) {
      continue;
    } else {
      parts.push(f.raw);
    }
  }
  parts.push(lenField(Model.metadataProps, metadataEntry(PREPARED_METADATA_KEY, "2")));
  if (broadcasted || facts.broadcastsPast) parts.push(lenField(Model.metadataProps, metadataEntry(PAST_BROADCAST_METADATA_KEY, "1")));
  return concatBytes(parts);
}

/** Step 1: replaces optimum's `If(use_cache_branch)` by its with-cache (then) branch. */
function inlineCacheBranch(graph: WireField[]): WireField[] {
  const at = graph.findIndex((f) => f.field === Graph.node && nodeOpType(f.payload) === "If" && nodeInputs(f.payload)[0] === CACHE_BRANCH_INPUT);
  if (at < 0) throw new ModelError(`model has a "${CACHE_BRANCH_INPUT}" input but no If node on it: not an optimum merged decoder`);
  const others = graph.filter((f, k) => k !== at && f.field === Graph.node && nodeInputs(f.payload).includes(CACHE_BRANCH_INPUT));
  if (others.length > 0) throw new ModelError(`model uses "${CACHE_BRANCH_INPUT}" outside its If node: cannot keep only the cache branch`);
  const ifNode = graph[at].payload;
  const branch = graphAttribute(ifNode, "then_branch");
  if (!branch) throw new ModelError(`the If node over "${CACHE_BRANCH_INPUT}" has no then_branch graph`);
  const outs = nodeOutputs(ifNode);
  const branchFields = scanFields(branch);
  const branchOutputs = branchFields.filter((f) => f.field === Graph.output).map((f) => valueInfoName(f.payload));
  if (branchOutputs.length !== outs.length) throw new ModelError(`the cache branch has ${branchOutputs.length} outputs, its If node ${outs.length}`);
  const outerInitializers = new Map(graph.filter((f) => f.field === Graph.initializer).map((f) => [tensorName(f.payload), f.payload]));
  const moved: WireField[] = [];
  for (const f of branchFields) {
    if (f.field === Graph.initializer) {
      const name = tensorName(f.payload);
      const outer = outerInitializers.get(name);
      if (outer && Buffer.compare(Buffer.from(outer), Buffer.from(f.payload)) === 0) continue;
      if (outer) throw new ModelError(`the cache branch and the outer graph both define a different initializer "${name}": cannot inline it`);
      moved.push(f);
    } else if (f.field === Graph.node || f.field === Graph.valueInfo || f.field === Graph.sparseInitializer) {
      moved.push(f);
    }
  }
  outs.forEach((o, k) => {
    if (branchOutputs[k] !== o) moved.push(field(Graph.node, node("Identity", [branchOutputs[k]], [o])));
  });
  return [
    ...graph.slice(0, at).filter((f) => !(f.field === Graph.input && valueInfoName(f.payload) === CACHE_BRANCH_INPUT)),
    ...moved,
    ...graph.slice(at + 1).filter((f) => !(f.field === Graph.input && valueInfoName(f.payload) === CACHE_BRANCH_INPUT)),
  ];
}

/** Step 2: logits -> (Cast to float32) -> LogSoftmax -> GatherElements(target_ids) -> target_logprobs. */
function appendTargetLogprobs(graph: WireField[], facts: GraphFacts): WireField[] {
  const outputs = graph.filter((f) => f.field === Graph.output).map((f) => valueInfoName(f.payload));
  if (!outputs.includes("logits")) {
    throw new ModelError(`model has no "logits" output (outputs: ${outputs.join(", ")}); expected a Hugging Face causal-LM export`);
  }
  const inputIds = graph.find((f) => f.field === Graph.input && valueInfoName(f.payload) === "input_ids");
  if (!inputIds) throw new ModelError('model has no "input_ids" input; expected a Hugging Face causal-LM export');
  const idsType = fieldMessage(scanFields(inputIds.payload), ValueInfo.type)!;
  const idsShape = fieldMessage(scanFields(fieldMessage(scanFields(idsType), TypeProto.tensorType)!), TensorTypeProto.shape);

  const nodes: Uint8Array[] = [];
  let logits = "logits";
  if (facts.logitsElemType !== DataType.FLOAT) {
    nodes.push(node("Cast", [logits], ["delift/logits_f32"], [intAttribute("to", DataType.FLOAT)]));
    logits = "delift/logits_f32";
  }
  nodes.push(node("LogSoftmax", [logits], ["delift/logprobs"], [intAttribute("axis", -1)]));
  nodes.push(node("Unsqueeze", [TARGET_IDS_INPUT, "delift/last_axis"], ["delift/target_index"]));
  nodes.push(node("GatherElements", ["delift/logprobs", "delift/target_index"], ["delift/gathered"], [intAttribute("axis", -1)]));
  nodes.push(node("Squeeze", ["delift/gathered", "delift/last_axis"], [TARGET_LOGPROBS_OUTPUT]));
  return [
    ...graph.filter((f) => !(f.field === Graph.output && valueInfoName(f.payload) === "logits")),
    ...nodes.map((n) => field(Graph.node, n)),
    field(Graph.initializer, int64Initializer("delift/last_axis", [-1n])),
    field(Graph.input, valueInfo(TARGET_IDS_INPUT, idsType)),
    field(Graph.output, valueInfo(TARGET_LOGPROBS_OUTPUT, tensorType(DataType.FLOAT, idsShape))),
  ];
}

/**
 * Step 3: each past input P is read by its consumers as Expand(P, [batch(input_ids), 1, 1, 1]),
 * and its batch dimension gets a name of its own, so a batch-1 prefix cache serves a whole batch.
 */
function broadcastPastInGraph(graph: WireField[]): WireField[] {
  const past = graph.filter((f) => f.field === Graph.input && PAST_INPUT.test(valueInfoName(f.payload))).map((f) => valueInfoName(f.payload));
  if (past.length === 0) return graph;
  const renames = new Map(past.map((p) => [p, `delift/batched/${p}`]));
  const nodes = [
    node("Shape", ["input_ids"], ["delift/input_shape"]),
    node("Gather", ["delift/input_shape", "delift/first_axis"], ["delift/batch"], [intAttribute("axis", 0)]),
    node("Concat", ["delift/batch", "delift/ones3"], ["delift/past_shape"], [intAttribute("axis", 0)]),
    ...past.map((p) => node("Expand", [p, "delift/past_shape"], [renames.get(p)!])),
  ];
  const edited = graph.map((f) => {
    if (f.field === Graph.node) {
      const renamed = renameNodeInputs(f.payload, renames);
      return renamed === f.payload ? f : field(Graph.node, renamed);
    }
    if (f.field === Graph.input && renames.has(valueInfoName(f.payload))) return field(Graph.input, withFirstDimParam(f.payload, PAST_BATCH_DIM));
    return f;
  });
  return [
    field(Graph.initializer, int64Initializer("delift/first_axis", [0n])),
    field(Graph.initializer, int64Initializer("delift/ones3", [1n, 1n, 1n])),
    ...nodes.map((n) => field(Graph.node, n)),
    ...edited,
  ];
}

function field(number: number, payload: Uint8Array): WireField {
  const raw = lenField(number, payload);
  return { field: number, wireType: 2, raw, payload: raw.subarray(raw.length - payload.length), varint: 0 };
}

function lengthHeader(number: number, length: number): Uint8Array {
  // tag + varint length, without copying the payload that follows
  const bytes: number[] = [number * 8 + 2];
  let v = length;
  while (v >= 0x80) {
    bytes.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  bytes.push(v);
  return Uint8Array.from(bytes);
}

function tensorName(payload: Uint8Array): string {
  return fieldString(scanFields(payload), Tensor.name) ?? "";
}

function scanModel(model: Uint8Array): WireField[] {
  try {
    return scanFields(model);
  } catch (err) {
    throw new ModelError(`not an ONNX model: ${(err as Error).message}`, { cause: err });
  }
}

function requireGraph(top: WireField[]): Uint8Array {
  const graph = fieldMessage(top, Model.graph);
  if (!graph) throw new ModelError("not an ONNX model: no graph found");
  try {
    scanFields(graph);
  } catch (err) {
    throw new ModelError(`not an ONNX model: its graph does not parse (${(err as Error).message})`, { cause: err });
  }
  return graph;
}

function metadata(top: WireField[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const f of top) {
    if (f.field !== Model.metadataProps) continue;
    const e = scanFields(f.payload);
    out.set(fieldString(e, StringStringEntry.key) ?? "", fieldString(e, StringStringEntry.value) ?? "");
  }
  return out;
}

function isDeliftEntry(payload: Uint8Array): boolean {
  return (fieldString(scanFields(payload), StringStringEntry.key) ?? "").startsWith("delift.");
}

function defaultOpset(top: WireField[]): number {
  for (const f of top) {
    if (f.field !== Model.opsetImport) continue;
    const entry = scanFields(f.payload);
    const domain = fieldString(entry, OperatorSetId.domain) ?? "";
    if (domain === "" || domain === "ai.onnx") return fieldVarint(entry, OperatorSetId.version) ?? 0;
  }
  return 0;
}


