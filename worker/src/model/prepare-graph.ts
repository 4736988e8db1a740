import { ModelError } from "../../../common/src/mod.js";
import { Attribute, AttributeType, buildMessage, concatBytes, DataLocation, DataType, fieldMessage, fieldString, fieldVarint, Graph, lenField, Model, Node, OperatorSetId, scanFields, StringStringEntry, Tensor, TensorTypeProto, TypeProto, ValueInfo, type WireField } from "../../../common/src/internal_mod.js";

export const TARGET_IDS_INPUT = "target_ids";
export const TARGET_LOGPROBS_OUTPUT = "target_logprobs";
export const PREPARED_METADATA_KEY = "delift.prepared";
const MIN_OPSET = 13;

export type GraphFacts = {
  prepared: boolean;
  opset: number;
  inputs: string[];
  outputs: string[];
  usesExternalData: boolean;
  logitsElemType: number | undefined;
};

/** Reads what the editor needs to know about a model, without touching its weights. */
export function inspectModel(model: Uint8Array): GraphFacts {
  const top = scanFields(model);
  const graph = scanFields(requireGraph(top));
  const inputs = graph.filter((f) => f.field === Graph.input).map((f) => valueInfoName(f.payload));
  const outputs = graph.filter((f) => f.field === Graph.output).map((f) => valueInfoName(f.payload));
  const logits = graph.find((f) => f.field === Graph.output && valueInfoName(f.payload) === "logits");
  return {
    prepared: outputs.includes(TARGET_LOGPROBS_OUTPUT),
    opset: defaultOpset(top),
    inputs,
    outputs,
    usesExternalData: graph.some(
      (f) => f.field === Graph.initializer && fieldVarint(scanFields(f.payload), Tensor.dataLocation) === DataLocation.EXTERNAL,
    ),
    logitsElemType: logits ? tensorElemType(logits.payload) : undefined,
  };
}

/**
 * Appends log-softmax and a gather of the target tokens to a causal LM, so a session returns one
 * log-probability per position (`target_logprobs` [batch, seq], given `target_ids` [batch, seq])
 * and full-vocabulary logits never leave the runtime. `logits` stops being a graph output.
 * Everything else, weights included, is copied byte for byte.
 */
export function prepareModelGraph(model: Uint8Array): Uint8Array {
  const top = scanFields(model);
  const facts = inspectModel(model);
  if (facts.prepared) return model;
  if (facts.opset < MIN_OPSET) {
    throw new ModelError(`model opset ${facts.opset} is too old: delift model prepare needs opset ${MIN_OPSET} or newer (re-export the model)`);
  }
  if (!facts.outputs.includes("logits")) {
    throw new ModelError(`model has no "logits" output (outputs: ${facts.outputs.join(", ")}); expected a Hugging Face causal-LM export`);
  }
  const graphFields = scanFields(requireGraph(top));
  const inputIds = graphFields.find((f) => f.field === Graph.input && valueInfoName(f.payload) === "input_ids");
  if (!inputIds) throw new ModelError('model has no "input_ids" input; expected a Hugging Face causal-LM export');

  const idsType = fieldMessage(scanFields(inputIds.payload), ValueInfo.type)!;
  const idsShape = fieldMessage(scanFields(fieldMessage(scanFields(idsType), TypeProto.tensorType)!), TensorTypeProto.shape);
  const floatType = tensorType(DataType.FLOAT, idsShape);

  const nodes: Uint8Array[] = [];
  let logits = "logits";
  if (facts.logitsElemType !== DataType.FLOAT) {
    nodes.push(node("Cast", [logits], ["delift/logits_f32"], [intAttribute("to", DataType.FLOAT)]));
    logits = "delift/logits_f32";
  }
  nodes.push(node("LogSoftmax", [logits], ["delift/logprobs"], [intAttribute("axis", -1)]));
  nodes.push(node("Unsqueeze", [TARGET_IDS_INPUT, "delift/last_axis"], ["delift/target_index"], []));
  nodes.push(node("GatherElements", ["delift/logprobs", "delift/target_index"], ["delift/gathered"], [intAttribute("axis", -1)]));
  nodes.push(node("Squeeze", ["delift/gathered", "delift/last_axis"], [TARGET_LOGPROBS_OUTPUT], []));

  const lastAxis = buildMessage()
    .int(Tensor.dims, 1)
    .int(Tensor.dataType, DataType.INT64)
    .string(Tensor.name, "delift/last_axis")
    .bytes(Tensor.rawData, new Uint8Array(new BigInt64Array([-1n]).buffer))
    .finish();

  const keptGraph = graphFields
    .filter((f) => !(f.field === Graph.output && valueInfoName(f.payload) === "logits"))
    .map((f) => f.raw);
  const newGraph = concatBytes([
    ...keptGraph,
    ...nodes.map((n) => lenField(Graph.node, n)),
    lenField(Graph.initializer, lastAxis),
    lenField(Graph.input, valueInfo(TARGET_IDS_INPUT, idsType)),
    lenField(Graph.output, valueInfo(TARGET_LOGPROBS_OUTPUT, floatType)),
  ]);

  const marker = buildMessage().string(StringStringEntry.key, PREPARED_METADATA_KEY).string(StringStringEntry.value, "1").finish();
  const parts: Uint8Array[] = [];
  for (const f of top) parts.push(f.field === Model.graph ? lenField(Model.graph, newGraph) : f.raw);
  parts.push(lenField(Model.metadataProps, marker));
  return concatBytes(parts);
}

function requireGraph(top: WireField[]): Uint8Array {
  const graph = fieldMessage(top, Model.graph);
  if (!graph) throw new ModelError("not an ONNX model: no graph found");
  return graph;
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

function valueInfoName(payload: Uint8Array): string {
  return fieldString(scanFields(payload), ValueInfo.name) ?? "";
}

function tensorElemType(valueInfoPayload: Uint8Array): number | undefined {
  const type = fieldMessage(scanFields(valueInfoPayload), ValueInfo.type);
  const tensor = type && fieldMessage(scanFields(type), TypeProto.tensorType);
  return tensor ? fieldVarint(scanFields(tensor), TensorTypeProto.elemType) : undefined;
}

function tensorType(elemType: number, shape: Uint8Array | undefined): Uint8Array {
  const tensor = buildMessage().int(TensorTypeProto.elemType, elemType);
  if (shape) tensor.message(TensorTypeProto.shape, shape);
  return buildMessage().message(TypeProto.tensorType, tensor.finish()).finish();
}

function valueInfo(name: string, type: Uint8Array): Uint8Array {
  return buildMessage().string(ValueInfo.name, name).message(ValueInfo.type, type).finish();
}

function intAttribute(name: string, value: number): Uint8Array {
  return buildMessage().string(Attribute.name, name).int(Attribute.i, value).int(Attribute.type, AttributeType.INT).finish();
}

function node(opType: string, inputs: string[], outputs: string[], attributes: Uint8Array[]): Uint8Array {
  const b = buildMessage();
  for (const i of inputs) b.string(Node.input, i);
  for (const o of outputs) b.string(Node.output, o);
  b.string(Node.name, `delift/${opType}`);
  b.string(Node.opType, opType);
  for (const a of attributes) b.message(Node.attribute, a);
  return b.finish();
}
