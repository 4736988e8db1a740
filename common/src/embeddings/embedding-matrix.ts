import { float16Table } from "./float16.js";

/**
 * Sentence embeddings of a corpus, one row per sample (row i = sample i), kept as they were given:
 * float32, or float16 bit patterns (half the memory: 768 MB for 10^6 x 384). Rows are used
 * L2-normalised (cosine similarity); the norms are applied when rows are gathered into float32
 * blocks for a search, so the stored values are never copied whole.
 */
export type EmbeddingMatrix = {
  count: number;
  dim: number;
  dtype: "float32" | "float16";
  data: Float32Array | Uint16Array;
  /** 1 / ||row||. */
  invNorms: Float32Array;
};

/** Normalised float32 embeddings (the encoder's output) as a matrix: no copy. */
export function matrixFromFloat32(data: Float32Array, dim: number): EmbeddingMatrix {
  const count = data.length / dim;
  const m: EmbeddingMatrix = { count, dim, dtype: "float32", data, invNorms: new Float32Array(count) };
  computeInvNorms(m, 0, count);
  return m;
}

/** Fills invNorms for rows [from, to); returns the first row whose norm is 0, or -1. */
export function computeInvNorms(m: EmbeddingMatrix, from: number, to: number): number {
  const { dim, data } = m;
  const half = m.dtype === "float16" ? float16Table() : null;
  let zero = -1;
  for (let i = from; i < to; i++) {
    let s = 0;
    const base = i * dim;
    if (half) {
      for (let d = 0; d < dim; d++) {
        const v = half[(data as Uint16Array)[base + d]];
        s += v * v;
      }
    } else {
      for (let d = 0; d < dim; d++) {
        const v = (data as Float32Array)[base + d];
        s += v * v;
      }
    }
    m.invNorms[i] = s > 0 ? 1 / Math.sqrt(s) : 0;
    if (s === 0 && zero < 0) zero = i;
  }
  return zero;
}

/** Normalised float32 rows `rows[k]` into out[k * dim ..] (a block for a search tile). */
export function gatherRows(m: EmbeddingMatrix, rows: ArrayLike<number>, out = new Float32Array(rows.length * m.dim)): Float32Array {
  for (let k = 0; k < rows.length; k++) copyRow(m, rows[k], out, k * m.dim);
  return out;
}

/** Rows [start, start + count) as a normalised float32 block. */
export function blockRows(m: EmbeddingMatrix, start: number, count: number, out = new Float32Array(count * m.dim)): Float32Array {
  for (let k = 0; k < count; k++) copyRow(m, start + k, out, k * m.dim);
  return out;
}

function copyRow(m: EmbeddingMatrix, i: number, out: Float32Array, o: number): void {
  const { dim, data } = m;
  const scale = m.invNorms[i];
  const base = i * dim;
  if (m.dtype === "float16") {
    const half = float16Table();
    for (let d = 0; d < dim; d++) out[o + d] = half[(data as Uint16Array)[base + d]] * scale;
  } else {
    for (let d = 0; d < dim; d++) out[o + d] = (data as Float32Array)[base + d] * scale;
  }
}

/** Bytes the matrix holds. */
export function matrixBytes(m: EmbeddingMatrix): number {
  return m.data.byteLength + m.invNorms.byteLength;
}
