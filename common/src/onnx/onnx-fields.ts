/** Field numbers of onnx.proto (ONNX IR) that the model editor reads or writes. */
export const Model = { irVersion: 1, graph: 7, opsetImport: 8, metadataProps: 14 } as const;
export const OperatorSetId = { domain: 1, version: 2 } as const;
export const Graph = { node: 1, name: 2, initializer: 5, input: 11, output: 12, valueInfo: 13 } as const;
export const Node = { input: 1, output: 2, name: 3, opType: 4, attribute: 5, domain: 7 } as const;
export const Attribute = { name: 1, i: 3, type: 20 } as const;
export const AttributeType = { INT: 2 } as const;
export const ValueInfo = { name: 1, type: 2 } as const;
export const TypeProto = { tensorType: 1 } as const;
export const TensorTypeProto = { elemType: 1, shape: 2 } as const;
export const TensorShape = { dim: 1 } as const;
export const Dimension = { dimValue: 1, dimParam: 2 } as const;
export const Tensor = { dims: 1, dataType: 2, name: 8, rawData: 9, dataLocation: 14 } as const;
export const StringStringEntry = { key: 1, value: 2 } as const;
export const DataType = { FLOAT: 1, INT64: 7, FLOAT16: 10, BFLOAT16: 16 } as const;
export const DataLocation = { EXTERNAL: 1 } as const;
