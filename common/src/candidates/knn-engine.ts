import * as ort from "onnxruntime-node";
import { Attribute, AttributeType, DataType, Dimension, Graph, Model, Node, OperatorSetId, TensorShape, TensorTypeProto, TypeProto, ValueInfo } from "../onnx/onnx-fields.js";
import { buildMessage, concatBytes, lenField } from "../onnx/protobuf-wire.js";
import { sessionOptionsFor, type Device } from "../onnx/session-options.js";
import { EMPTY, type TopKLists } from "./top-k.js";

export type KnnEngineOptions = { device?: Device; threads?: number };

/**
 * The heavy part of every candidate search, in onnxruntime: scores = A · Bᵀ (a block of query
 * rows against a block of corpus rows, both L2-normalised: cosine similarity) and the top k of
 * each query row. One small graph (Gemm with transB, TopK), built here; on a GPU worker it runs
 * on the CUDA provider unchanged.
 */
export class KnnEngine {
  private constructor(private readonly session: ort.InferenceSession) {}

  static async create(options: KnnEngineOptions = {}): Promise<KnnEngine> {
    const session = await ort.InferenceSession.create(topKGraph(), await sessionOptionsFor(options.device ?? "cpu", options.threads));
    return new KnnEngine(session);
  }

  /**
   * Top-k corpus rows of each query row. `corpusIds[c]` names corpus row c in the output; ties
   * in score go to the lower corpus row (onnxruntime's TopK), which is the lower id when ids rise.
   */
  async topK(queries: Float32Array, rows: number, corpus: Float32Array, cols: number, dim: number, k: number, corpusIds: ArrayLike<number>): Promise<TopKLists> {
    const out: TopKLists = { rows, k, scores: new Float32Array(rows * k).fill(-Infinity), ids: new Uint32Array(rows * k).fill(EMPTY) };
    if (rows === 0 || cols === 0) return out;
    const kk = Math.min(k, cols);
    const res = await this.session.run({
      a: new ort.Tensor("float32", queries.subarray(0, rows * dim), [rows, dim]),
      b: new ort.Tensor("float32", corpus.subarray(0, cols * dim), [cols, dim]),
      k: new ort.Tensor("int64", BigInt64Array.of(BigInt(kk)), [1]),
    });
    const values = res.values.data as Float32Array;
    const indices = res.indices.data as BigInt64Array;
    for (let r = 0; r < rows; r++) {
      for (let t = 0; t < kk; t++) {
        out.scores[r * k + t] = values[r * kk + t];
        out.ids[r * k + t] = corpusIds[Number(indices[r * kk + t])];
      }
    }
    return out;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** ONNX model: values, indices = TopK(Gemm(a [m, d], b [n, d], transB = 1), k, axis -1, largest, sorted). */
function topKGraph(): Uint8Array {
  const transB = buildMessage().string(Attribute.name, "transB").int(Attribute.i, 1).int(Attribute.type, AttributeType.INT).finish();
  const gemm = buildMessage().string(Node.input, "a").string(Node.input, "b").string(Node.output, "scores").string(Node.name, "Gemm").string(Node.opType, "Gemm").message(Node.attribute, transB).finish();
  const topk = buildMessage().string(Node.input, "scores").string(Node.input, "k").string(Node.output, "values").string(Node.output, "indices").string(Node.name, "TopK").string(Node.opType, "TopK").finish();
  const graph = concatBytes([
    lenField(Graph.node, gemm),
    lenField(Graph.node, topk),
    buildMessage().string(Graph.name, "delift-knn").finish(),
    lenField(Graph.input, valueInfo("a", DataType.FLOAT, ["m", "d"])),
    lenField(Graph.input, valueInfo("b", DataType.FLOAT, ["n", "d"])),
    lenField(Graph.input, valueInfo("k", DataType.INT64, [1])),
    lenField(Graph.output, valueInfo("values", DataType.FLOAT, ["m", "top"])),
    lenField(Graph.output, valueInfo("indices", DataType.INT64, ["m", "top"])),
  ]);
  const opset = buildMessage().string(OperatorSetId.domain, "").int(OperatorSetId.version, 17).finish();
  return buildMessage().int(Model.irVersion, 8).message(Model.opsetImport, opset).message(Model.graph, graph).finish();
}

function valueInfo(name: string, elemType: number, dims: (number | string)[]): Uint8Array {
  const shape = concatBytes(
    dims.map((d) => lenField(TensorShape.dim, typeof d === "number" ? buildMessage().int(Dimension.dimValue, d).finish() : buildMessage().string(Dimension.dimParam, d).finish())),
  );
  const tensor = buildMessage().int(TensorTypeProto.elemType, elemType).message(TensorTypeProto.shape, shape).finish();
  return buildMessage().string(ValueInfo.name, name).message(ValueInfo.type, buildMessage().message(TypeProto.tensorType, tensor).finish()).finish();
}
