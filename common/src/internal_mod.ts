/** For sibling packages only: building blocks that are not part of delift's public API. */

// ONNX protobuf editing, for the worker's graph preparation
export { WIRE_I32, WIRE_I64, WIRE_LEN, WIRE_VARINT, buildMessage, concatBytes, fieldMessage, fieldString, fieldVarint, lenField, scanFields } from "./onnx/protobuf-wire.js";
export type { MessageBuilder, WireField } from "./onnx/protobuf-wire.js";
export { Attribute, AttributeType, DATA_TYPE_NAMES, DataLocation, DataType, Dimension, ELEMENT_BYTES, Graph, Model, Node, OperatorSetId, SparseTensor, StringStringEntry, Tensor, TensorShape, TensorTypeProto, TypeProto, ValueInfo } from "./onnx/onnx-fields.js";
export { externalTensorRefs } from "./onnx/external-tensors.js";
export type { ExternalTensorRef } from "./onnx/external-tensors.js";
