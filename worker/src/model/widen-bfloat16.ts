import { ModelError } from "../../../common/src/mod.js";
import { Attribute, AttributeType, buildMessage, concatBytes, DataLocation, DataType, fieldMessage, fieldString, fieldVarint, Graph, lenField, Model, Node, scanFields, StringStringEntry, Tensor, TensorTypeProto, TypeProto, ValueInfo, WIRE_VARINT, type WireField } from "../../../common/src/internal_mod.js";

/** A protobuf message must stay under 2 GiB; a widened model is built in memory, so it must fit. */
const MAX_MODEL_BYTES = 2 ** 31 - 1;

export type ExternalReader = (location: string, offset: number, length: number | undefined) => Uint8Array;

/**
 * Rewrites a bfloat16 graph to float32, for onnxruntime's CPU provider (which has almost no
 * bfloat16 kernels): every bfloat16 initializer and constant is widened (exact: a bfloat16 is the
 * top half of a float32), and every bfloat16 type (graph inputs and outputs, value infos, Cast
 * targets) becomes float32, in subgraphs too. The model then computes in float32, more precisely
 * than in bfloat16. External data is read through `readExternal` and embedded.
 */
export function widenBfloat16(model: Uint8Array, readExternal: ExternalReader): Uint8Array {
  const parts = scanFields(model).map((f) => (f.field === Model.graph ? lenField(Model.graph, widenGraph(f.payload, readExternal)) : f.raw));
  const total = parts.reduce((n, p) => n + p.length, 0);
  if (total > MAX_MODEL_BYTES) {
    throw new ModelError(`the bfloat16 model widened to float32 would take ${(total / 2 ** 30).toFixed(1)} GiB, over the 2 GiB an in-memory ONNX model can hold: run it with --device cuda, or export it in float32 or float16`);
  }
  return concatBytes(parts);
}

function widenGraph(graph: Uint8Array, read: ExternalReader): Uint8Array {
  return rebuild(graph, (f) => {
    switch (f.field) {
      case Graph.initializer:
        return lenField(f.field, widenTensor(f.payload, read));
      case Graph.input:
      case Graph.output:
      case Graph.valueInfo:
        return lenField(f.field, widenValueInfo(f.payload));
      case Graph.node:
        return lenField(f.field, widenNode(f.payload, read));
      case Graph.sparseInitializer:
        throw new ModelError("bfloat16 widening does not handle sparse initializers");
      default:
        return f.raw;
    }
  });
}

function widenNode(node: Uint8Array, read: ExternalReader): Uint8Array {
  const opType = fieldString(scanFields(node), Node.opType) ?? "";
  return rebuild(node, (f) => (f.field === Node.attribute ? lenField(f.field, widenAttribute(f.payload, opType, read)) : f.raw));
}

function widenAttribute(attribute: Uint8Array, opType: string, read: ExternalReader): Uint8Array {
  const fields = scanFields(attribute);
  const name = fieldString(fields, Attribute.name) ?? "";
  const type = fieldVarint(fields, Attribute.type);
  const isTypeAttribute = type === AttributeType.INT && ((opType === "Cast" && name === "to") || name === "dtype");
  return rebuild(attribute, (f) => {
    if (isTypeAttribute && f.field === Attribute.i && f.wireType === WIRE_VARINT && f.varint === DataType.BFLOAT16) {
      return buildMessage().int(Attribute.i, DataType.FLOAT).finish();
    }
    if (f.field === Attribute.t || f.field === Attribute.tensors) return lenField(f.field, widenTensor(f.payload, read));
    if (f.field === Attribute.g || f.field === Attribute.graphs) return lenField(f.field, widenGraph(f.payload, read));
    return f.raw;
  });
}

function widenValueInfo(info: Uint8Array): Uint8Array {
  return rebuild(info, (f) => {
    if (f.field !== ValueInfo.type) return f.raw;
    return lenField(f.field, rebuild(f.payload, (t) => {
      if (t.field !== TypeProto.tensorType) return t.raw;
      return lenField(t.field, rebuild(t.payload, (e) => (e.field === TensorTypeProto.elemType && e.varint === DataType.BFLOAT16 ? buildMessage().int(TensorTypeProto.elemType, DataType.FLOAT).finish() : e.raw)));
    }));
  });
}

function widenTensor(tensor: Uint8Array, read: ExternalReader): Uint8Array {
  const fields = scanFields(tensor);
  if (fieldVarint(fields, Tensor.dataType) !== DataType.BFLOAT16) return tensor;
  let halves: Uint16Array;
  if (fieldVarint(fields, Tensor.dataLocation) === DataLocation.EXTERNAL) {
    const entries = new Map<string, string>();
    for (const f of fields) {
      if (f.field !== Tensor.externalData) continue;
      const e = scanFields(f.payload);
      entries.set(fieldString(e, StringStringEntry.key) ?? "", fieldString(e, StringStringEntry.value) ?? "");
    }
    const length = entries.get("length");
    const bytes = read(entries.get("location") ?? "", Number(entries.get("offset") ?? 0), length === undefined ? undefined : Number(length));
    halves = new Uint16Array(Uint8Array.from(bytes).buffer);
  } else {
    const raw = fieldMessage(fields, Tensor.rawData);
    if (raw) {
      halves = new Uint16Array(Uint8Array.from(raw).buffer);
    } else {
      // int32_data (field 5) holds bfloat16 values one per int32, packed or not
      const values: number[] = [];
      for (const f of fields) {
        if (f.field !== 5) continue;
        if (f.wireType === WIRE_VARINT) values.push(f.varint);
        else for (const v of scanPackedVarints(f.payload)) values.push(v);
      }
      halves = Uint16Array.from(values);
    }
  }
  const widened = new Uint32Array(halves.length);
  for (let k = 0; k < halves.length; k++) widened[k] = halves[k] << 16;
  const kept = fields.filter((f) => f.field === Tensor.dims || f.field === Tensor.name || f.field === 3 /* segment */ || f.field === 12 /* doc_string */).map((f) => f.raw);
  const rest = buildMessage().int(Tensor.dataType, DataType.FLOAT).bytes(Tensor.rawData, new Uint8Array(widened.buffer)).finish();
  return concatBytes([...kept, rest]);
}

function scanPackedVarints(bytes: Uint8Array): number[] {
  const out: number[] = [];
  let value = 0;
  let scale = 1;
  for (const b of bytes) {
    value += (b & 0x7f) * scale;
    if (b < 0x80) {
      out.push(value);
      value = 0;
      scale = 1;
    } else {
      scale *= 128;
    }
  }
  return out;
}

function rebuild(message: Uint8Array, map: (f: WireField) => Uint8Array): Uint8Array {
  return concatBytes(scanFields(message).map(map));
}
