/** For sibling packages only: building blocks that are not part of delift's public API. */

// ONNX protobuf editing, for the worker's graph preparation
export { WIRE_I32, WIRE_I64, WIRE_LEN, WIRE_VARINT, buildMessage, concatBytes, fieldMessage, fieldString, fieldVarint, lenField, scanFields } from "./onnx/protobuf-wire.js";
export type { MessageBuilder, WireField } from "./onnx/protobuf-wire.js";
export { Attribute, AttributeType, DataLocation, DataType, Dimension, Graph, Model, Node, OperatorSetId, StringStringEntry, Tensor, TensorShape, TensorTypeProto, TypeProto, ValueInfo } from "./onnx/onnx-fields.js";
