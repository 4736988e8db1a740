import * as ort from "onnxruntime-node";
import { buildMessage, lenField, concatBytes } from "./protobuf-wire.js";
import { DataType, Dimension, Graph, Model, Node, OperatorSetId, TensorShape, TensorTypeProto, TypeProto, ValueInfo } from "./onnx-fields.js";
import { sessionOptionsFor, type Device } from "./session-options.js";

/**
 * k nearest neighbours by cosine similarity of L2-normalised embeddings, exact, for sparse mode
 * (DESIGN.md §2). The heavy part, queries x candidates dot products and the top-k of each row,
 * runs in onnxruntime (a two-node graph built here: MatMul, TopK) over blocks, so memory stays
 * bounded: blockRows x blockCols scores at a time, merged per row in JavaScript.
 */
export type KnnOptions = { device?: Device; threads?: number; blockRows?: number; blockCols?: number };

export async function nearestNeighbours(
  embeddings: Float32Array,
  dim: number,
  queries: Uint32Array,
  candidates: Uint32Array,
  k: number,
  options: KnnOptions = {},
): Promise<Uint32Array[]> {
  const kk = Math.min(k, candidates.length);
  const blockRows = options.blockRows ?? 256;
  const blockCols = Math.max(kk, options.blockCols ?? 32768);
  const session = await ort.InferenceSession.create(topKGraph(), await sessionOptionsFor(options.device ?? "cpu", options.threads));
  try {
    // Candidate embeddings, transposed per column block once: [dim, cols].
    const blocks: { start: number; data: Float32Array; cols: number }[] = [];
    for (let start = 0; start < candidates.length; start += blockCols) {
      const cols = Math.min(blockCols, candidates.length - start);
      const data = new Float32Array(dim * cols);
      for (let c = 0; c < cols; c++) {
        const base = candidates[start + c] * dim;
        for (let d = 0; d < dim; d++) data[d * cols + c] = embeddings[base + d];
      }
      blocks.push({ start, data, cols });
    }
    const out: Uint32Array[] = [];
    for (let r0 = 0; r0 < queries.length; r0 += blockRows) {
      const rows = Math.min(blockRows, queries.length - r0);
      const a = new Float32Array(rows * dim);
      for (let r = 0; r < rows; r++) a.set(embeddings.subarray(queries[r0 + r] * dim, queries[r0 + r] * dim + dim), r * dim);
      const best = Array.from({ length: rows }, () => ({ scores: [] as number[], ids: [] as number[] }));
      for (const b of blocks) {
        const kb = Math.min(kk, b.cols);
        const res = await session.run({
          a: new ort.Tensor("float32", a, [rows, dim]),
          b: new ort.Tensor("float32", b.data, [dim, b.cols]),
          k: new ort.Tensor("int64", BigInt64Array.of(BigInt(kb)), [1]),
        });
        const values = res.values.data as Float32Array;
        const indices = res.indices.data as BigInt64Array;
        for (let r = 0; r < rows; r++) {
          for (let t = 0; t < kb; t++) {
            best[r].scores.push(values[r * kb + t]);
            best[r].ids.push(candidates[b.start + Number(indices[r * kb + t])]);
          }
        }
      }
      for (const bst of best) {
        // Highest similarity first; ties to the lower sample index, so the result is deterministic.
        const order = bst.ids.map((_, t) => t).sort((x, y) => bst.scores[y] - bst.scores[x] || bst.ids[x] - bst.ids[y]);
        out.push(Uint32Array.from(order.slice(0, kk), (t) => bst.ids[t]).sort());
      }
    }
    return out;
  } finally {
    await session.release();
  }
}

/** ONNX model: values, indices = TopK(MatMul(a [m, d], b [d, n]), k, axis -1, largest). */
function topKGraph(): Uint8Array {
  const graph = concatBytes([
    lenField(Graph.node, node("MatMul", ["a", "b"], ["scores"])),
    lenField(Graph.node, node("TopK", ["scores", "k"], ["values", "indices"])),
    buildMessage().string(Graph.name, "delift-knn").finish(),
    lenField(Graph.input, valueInfo("a", DataType.FLOAT, ["m", "d"])),
    lenField(Graph.input, valueInfo("b", DataType.FLOAT, ["d", "n"])),
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

function node(op: string, inputs: string[], outputs: string[]): Uint8Array {
  const b = buildMessage();
  for (const i of inputs) b.string(Node.input, i);
  for (const o of outputs) b.string(Node.output, o);
  return b.string(Node.name, op).string(Node.opType, op).finish();
}
