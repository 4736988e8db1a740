import { buildMessage, Dimension, Graph, Model, Node, OperatorSetId, TensorShape, TensorTypeProto, TypeProto, ValueInfo } from "../../../common/src/internal_mod.js";

const FLOAT = 1;

/**
 * The smallest ONNX model an execution provider can run: Y = Identity(X) on a float[1]. Built
 * here so that a provider check needs no model file on disk.
 */
export function identityModel(): Uint8Array {
  const valueInfo = (name: string) =>
    buildMessage()
      .string(ValueInfo.name, name)
      .message(
        ValueInfo.type,
        buildMessage()
          .message(TypeProto.tensorType, buildMessage().int(TensorTypeProto.elemType, FLOAT).message(TensorTypeProto.shape, buildMessage().message(TensorShape.dim, buildMessage().int(Dimension.dimValue, 1).finish()).finish()).finish())
          .finish(),
      )
      .finish();
  const node = buildMessage().string(Node.input, "X").string(Node.output, "Y").string(Node.opType, "Identity").finish();
  const graph = buildMessage().message(Graph.node, node).string(Graph.name, "delift-doctor").message(Graph.input, valueInfo("X")).message(Graph.output, valueInfo("Y")).finish();
  return buildMessage()
    .int(Model.irVersion, 8)
    .message(Model.opsetImport, buildMessage().string(OperatorSetId.domain, "").int(OperatorSetId.version, 13).finish())
    .message(Model.graph, graph)
    .finish();
}
