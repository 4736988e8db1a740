import { Attribute, AttributeType, buildMessage, concatBytes, DataType, Dimension, fieldMessage, fieldString, fieldVarint, Graph, lenField, Node, scanFields, StringStringEntry, Tensor, TensorShape, TensorTypeProto, TypeProto, ValueInfo, type WireField } from "../../../common/src/internal_mod.js";

/** Small builders and readers over ONNX messages at the wire level (see protobuf-wire.ts). */

export function valueInfoName(payload: Uint8Array): string {
  return fieldString(scanFields(payload), ValueInfo.name) ?? "";
}

export function tensorTypeOf(valueInfoPayload: Uint8Array): Uint8Array | undefined {
  const type = fieldMessage(scanFields(valueInfoPayload), ValueInfo.type);
  return type && fieldMessage(scanFields(type), TypeProto.tensorType);
}

export function tensorElemType(valueInfoPayload: Uint8Array): number | undefined {
  const tensor = tensorTypeOf(valueInfoPayload);
  return tensor ? fieldVarint(scanFields(tensor), TensorTypeProto.elemType) : undefined;
}

export function tensorType(elemType: number, shape: Uint8Array | undefined): Uint8Array {
  const tensor = buildMessage().int(TensorTypeProto.elemType, elemType);
  if (shape) tensor.message(TensorTypeProto.shape, shape);
  return buildMessage().message(TypeProto.tensorType, tensor.finish()).finish();
}

export function valueInfo(name: string, type: Uint8Array): Uint8Array {
  return buildMessage().string(ValueInfo.name, name).message(ValueInfo.type, type).finish();
}

/** The same value info with its first dimension renamed to a symbolic `dimParam`. */
export function withFirstDimParam(valueInfoPayload: Uint8Array, dimParam: string): Uint8Array {
  const tensor = tensorTypeOf(valueInfoPayload);
  if (!tensor) return valueInfoPayload;
  const tensorFields = scanFields(tensor);
  const shape = fieldMessage(tensorFields, TensorTypeProto.shape);
  if (!shape) return valueInfoPayload;
  const dims = scanFields(shape).filter((f) => f.field === TensorShape.dim);
  if (dims.length === 0) return valueInfoPayload;
  const firstDim = buildMessage().string(Dimension.dimParam, dimParam).finish();
  const newShape = concatBytes([lenField(TensorShape.dim, firstDim), ...dims.slice(1).map((d) => d.raw)]);
  const elemType = fieldVarint(tensorFields, TensorTypeProto.elemType) ?? DataType.FLOAT;
  return valueInfo(valueInfoName(valueInfoPayload), tensorType(elemType, newShape));
}

export function intAttribute(name: string, value: number): Uint8Array {
  return buildMessage().string(Attribute.name, name).int(Attribute.i, value).int(Attribute.type, AttributeType.INT).finish();
}

let nodeCounter = 0;

export function node(opType: string, inputs: string[], outputs: string[], attributes: Uint8Array[] = []): Uint8Array {
  const b = buildMessage();
  for (const i of inputs) b.string(Node.input, i);
  for (const o of outputs) b.string(Node.output, o);
  b.string(Node.name, `delift/${opType}_${nodeCounter++}`);
  b.string(Node.opType, opType);
  for (const a of attributes) b.message(Node.attribute, a);
  return b.finish();
}

export function int64Initializer(name: string, values: bigint[], dims: number[] = [values.length]): Uint8Array {
  const b = buildMessage();
  for (const d of dims) b.int(Tensor.dims, d);
  return b
    .int(Tensor.dataType, DataType.INT64)
    .string(Tensor.name, name)
    .bytes(Tensor.rawData, new Uint8Array(new BigInt64Array(values).buffer))
    .finish();
}

export function metadataEntry(key: string, value: string): Uint8Array {
  return buildMessage().string(StringStringEntry.key, key).string(StringStringEntry.value, value).finish();
}

export function nodeOpType(payload: Uint8Array): string {
  return fieldString(scanFields(payload), Node.opType) ?? "";
}

export function nodeInputs(payload: Uint8Array): string[] {
  return scanFields(payload).filter((f) => f.field === Node.input).map((f) => Buffer.from(f.payload).toString("utf8"));
}

export function nodeOutputs(payload: Uint8Array): string[] {
  return scanFields(payload).filter((f) => f.field === Node.output).map((f) => Buffer.from(f.payload).toString("utf8"));
}

/** The subgraph held by a node's GRAPH attribute `name` (If: then_branch / else_branch). */
export function graphAttribute(nodePayload: Uint8Array, name: string): Uint8Array | undefined {
  for (const f of scanFields(nodePayload)) {
    if (f.field !== Node.attribute) continue;
    const a = scanFields(f.payload);
    if (fieldString(a, Attribute.name) === name) return fieldMessage(a, Attribute.g);
  }
  return undefined;
}

/**
 * A node with every input named in `renames` replaced, in the node itself and in the
 * subgraphs of its attributes (which may read outer values by name). Other fields are copied.
 */
export function renameNodeInputs(nodePayload: Uint8Array, renames: Map<string, string>): Uint8Array {
  const parts: Uint8Array[] = [];
  let changed = false;
  for (const f of scanFields(nodePayload)) {
    if (f.field === Node.input) {
      const name = Buffer.from(f.payload).toString("utf8");
      const to = renames.get(name);
      if (to !== undefined) {
        parts.push(lenField(Node.input, new TextEncoder().encode(to)));
        changed = true;
        continue;
      }
    } else if (f.field === Node.attribute) {
      const renamed = renameInAttribute(f.payload, renames);
      if (renamed !== f.payload) {
        parts.push(lenField(Node.attribute, renamed));
        changed = true;
        continue;
      }
    }
    parts.push(f.raw);
  }
  return changed ? concatBytes(parts) : nodePayload;
}

function renameInAttribute(attributePayload: Uint8Array, renames: Map<string, string>): Uint8Array {
  const fields = scanFields(attributePayload);
  if (!fields.some((f) => f.field === Attribute.g || f.field === Attribute.graphs)) return attributePayload;
  const parts = fields.map((f) => (f.field === Attribute.g || f.field === Attribute.graphs ? lenField(f.field, renameInGraph(f.payload, renames)) : f.raw));
  return concatBytes(parts);
}

/** A subgraph with outer names renamed, except those the subgraph defines itself (shadowing). */
function renameInGraph(graphPayload: Uint8Array, renames: Map<string, string>): Uint8Array {
  const fields = scanFields(graphPayload);
  const local = new Set<string>();
  for (const f of fields) {
    if (f.field === Graph.input || f.field === Graph.initializer) local.add(f.field === Graph.input ? valueInfoName(f.payload) : (fieldString(scanFields(f.payload), Tensor.name) ?? ""));
    if (f.field === Graph.node) for (const o of nodeOutputs(f.payload)) local.add(o);
  }
  const visible = new Map([...renames].filter(([from]) => !local.has(from)));
  if (visible.size === 0) return graphPayload;
  return concatBytes(fields.map((f) => (f.field === Graph.node ? lenField(Graph.node, renameNodeInputs(f.payload, visible)) : f.raw)));
}

export type { WireField };
