/** Field numbers of onnx.proto (ONNX IR) that the model editor reads or writes. */
export const Model = { irVersion: 1, graph: 7, opsetImport: 8, metadataProps: 14 } as const;
export const OperatorSetId = { domain: 1, version: 2 } as const;
export const Graph = { node: 1, name: 2, initializer: 5, input: 11, output: 12, valueInfo: 13, sparseInitializer: 15 } as const;
export const Node = { input: 1, output: 2, name: 3, opType: 4, attribute: 5, domain: 7 } as const;
export const Attribute = { name: 1, i: 3, t: 5, g: 6, tensors: 10, graphs: 11, type: 20, sparseTensor: 22 } as const;
export const AttributeType = { INT: 2, TENSOR: 4, GRAPH: 5, INTS: 7, TENSORS: 9, GRAPHS: 10 } as const;
export const ValueInfo = { name: 1, type: 2 } as const;
export const TypeProto = { tensorType: 1 } as const;
export const TensorTypeProto = { elemType: 1, shape: 2 } as const;
export const TensorShape = { dim: 1 } as const;
export const Dimension = { dimValue: 1, dimParam: 2 } as const;
export const Tensor = { dims: 1, dataType: 2, name: 8, rawData: 9, externalData: 13, dataLocation: 14 } as const;
export const SparseTensor = { values: 1, indices: 2 } as const;
export const StringStringEntry = { key: 1, value: 2 } as const;
export const DataType = { FLOAT: 1, INT64: 7, BOOL: 9, FLOAT16: 10, BFLOAT16: 16 } as const;
export const DataLocation = { EXTERNAL: 1 } as const;

/** Bytes per element of the ONNX tensor data types (0: not a fixed-size type). */
export const ELEMENT_BYTES: Record<number, number> = { 1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 14: 8, 15: 16, 16: 2 };

export const DATA_TYPE_NAMES: Record<number, string> = {
  1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 8: "string", 9: "bool",
  10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 14: "complex64", 15: "complex128", 16: "bfloat16",
};
