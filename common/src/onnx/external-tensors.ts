import { Attribute, DataLocation, Graph, Model, Node, SparseTensor, StringStringEntry, Tensor } from "./onnx-fields.js";
import { fieldMessage, fieldString, fieldVarint, scanFields } from "./protobuf-wire.js";

/** A tensor whose bytes live outside the .onnx file (TensorProto.external_data). */
export type ExternalTensorRef = {
  tensor: string;
  /** The `location` entry: a path relative to the directory of the .onnx file. */
  location: string;
  offset: number;
  /** Absent when the tensor runs to the end of the file. */
  length: number | undefined;
};

/**
 * Every tensor of a model that keeps its data in an external file, as its `external_data`
 * entries say: initializers, sparse initializers, and tensors in node attributes (Constant
 * nodes, If/Loop/Scan subgraphs), at any depth. Weights are never decoded.
 */
export function externalTensorRefs(model: Uint8Array): ExternalTensorRef[] {
  const graph = fieldMessage(scanFields(model), Model.graph);
  const refs: ExternalTensorRef[] = [];
  if (graph) walkGraph(graph, refs);
  return refs;
}

function walkGraph(bytes: Uint8Array, refs: ExternalTensorRef[]): void {
  for (const f of scanFields(bytes)) {
    if (f.field === Graph.initializer) visitTensor(f.payload, refs);
    else if (f.field === Graph.sparseInitializer) visitSparse(f.payload, refs);
    else if (f.field === Graph.node) {
      for (const n of scanFields(f.payload)) if (n.field === Node.attribute) visitAttribute(n.payload, refs);
    }
  }
}

function visitAttribute(bytes: Uint8Array, refs: ExternalTensorRef[]): void {
  for (const a of scanFields(bytes)) {
    if (a.field === Attribute.t || a.field === Attribute.tensors) visitTensor(a.payload, refs);
    else if (a.field === Attribute.g || a.field === Attribute.graphs) walkGraph(a.payload, refs);
    else if (a.field === Attribute.sparseTensor) visitSparse(a.payload, refs);
  }
}

function visitSparse(bytes: Uint8Array, refs: ExternalTensorRef[]): void {
  for (const s of scanFields(bytes)) if (s.field === SparseTensor.values || s.field === SparseTensor.indices) visitTensor(s.payload, refs);
}

function visitTensor(bytes: Uint8Array, refs: ExternalTensorRef[]): void {
  const fields = scanFields(bytes);
  if (fieldVarint(fields, Tensor.dataLocation) !== DataLocation.EXTERNAL) return;
  const entries = new Map<string, string>();
  for (const f of fields) {
    if (f.field !== Tensor.externalData) continue;
    const entry = scanFields(f.payload);
    entries.set(fieldString(entry, StringStringEntry.key) ?? "", fieldString(entry, StringStringEntry.value) ?? "");
  }
  const length = entries.get("length");
  refs.push({
    tensor: fieldString(fields, Tensor.name) ?? "",
    location: entries.get("location") ?? "",
    offset: Number(entries.get("offset") ?? 0),
    length: length === undefined ? undefined : Number(length),
  });
}
