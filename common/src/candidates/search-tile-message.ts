import { createHash } from "node:crypto";
import { ProtocolError } from "../errors.js";
import type { EmbeddingMatrix } from "../embeddings/embedding-matrix.js";
import { EMPTY, type TopKLists } from "./top-k.js";

/**
 * A candidate-search tile for a worker (item 2): a block of query rows against a block of corpus
 * rows of the job's embedding matrix, which the worker fetches once from the object store and
 * checks against the SHA-256 the (authenticated) message names. The result is each query's top k
 * among the corpus rows (best first; ties to the lower row), mergeable with the query block's
 * other tiles exactly as runSearchTile's are.
 */
export type SearchTileWork = {
  kind: "search";
  /** SHA-256 (hex) of the matrix blob (searchMatrixBlob's bytes). */
  matrix: string;
  /** The matrix's shape, checked against the blob. */
  rows: number;
  dim: number;
  k: number;
  queries: Uint32Array;
  corpus: Uint32Array;
};

const SHA = /^[0-9a-f]{64}$/;
const MAX_QUERIES = 1 << 20;
const MAX_CORPUS = 1 << 25;
const MAX_K = 4096;

export function searchTileBody(w: SearchTileWork): Record<string, unknown> {
  return { kind: "search", matrix: w.matrix, rows: w.rows, dim: w.dim, k: w.k, queries: bytes(w.queries), corpus: bytes(w.corpus) };
}

/** Validates and decodes the kind-specific fields; anything malformed is a ProtocolError. */
export function decodeSearchTileBody(m: Record<string, unknown>): SearchTileWork {
  if (typeof m.matrix !== "string" || !SHA.test(m.matrix)) throw new ProtocolError("search tile: the matrix must be named by its SHA-256 (64 hex digits)");
  const int = (v: unknown, name: string, lo: number, hi: number) => {
    if (typeof v !== "number" || !Number.isInteger(v) || v < lo || v > hi) throw new ProtocolError(`search tile: ${name} must be an integer in [${lo}, ${hi}]`);
    return v;
  };
  const rows = int(m.rows, "rows", 1, 2 ** 32 - 2);
  const dim = int(m.dim, "dim", 1, 1 << 16);
  const k = int(m.k, "k", 1, MAX_K);
  const queries = uint32s(m.queries, "queries");
  const corpus = uint32s(m.corpus, "corpus");
  if (queries.length === 0 || queries.length > MAX_QUERIES) throw new ProtocolError(`search tile: 1 to ${MAX_QUERIES} queries`);
  if (corpus.length === 0 || corpus.length > MAX_CORPUS) throw new ProtocolError(`search tile: 1 to ${MAX_CORPUS} corpus rows`);
  for (const r of queries) if (r >= rows) throw new ProtocolError(`search tile: query row ${r} out of range (${rows} rows)`);
  for (let c = 0; c < corpus.length; c++) {
    if (corpus[c] >= rows) throw new ProtocolError(`search tile: corpus row ${corpus[c]} out of range (${rows} rows)`);
    // Ties go to the lower row only when the corpus rows rise (the TopK breaks ties by position).
    if (c > 0 && corpus[c] <= corpus[c - 1]) throw new ProtocolError("search tile: corpus rows must rise");
  }
  return { kind: "search", matrix: m.matrix, rows, dim, k, queries, corpus };
}

/**
 * The matrix as one blob: a small header (magic, dtype, rows, dim) and the raw values, then the
 * inverse norms; its SHA-256 names it in the object store and in every search tile.
 */
export function searchMatrixBlob(matrix: EmbeddingMatrix): { bytes: Uint8Array; sha256: string } {
  const head = new Uint8Array(16);
  const view = new DataView(head.buffer);
  head.set(new TextEncoder().encode("DLSM"), 0);
  view.setUint32(4, matrix.dtype === "float32" ? 1 : 2, true);
  view.setUint32(8, matrix.count, true);
  view.setUint32(12, matrix.dim, true);
  const data = new Uint8Array(matrix.data.buffer, matrix.data.byteOffset, matrix.data.byteLength);
  const norms = new Uint8Array(matrix.invNorms.buffer, matrix.invNorms.byteOffset, matrix.invNorms.byteLength);
  const bytes = new Uint8Array(head.length + data.length + norms.length);
  bytes.set(head, 0);
  bytes.set(data, head.length);
  bytes.set(norms, head.length + data.length);
  return { bytes, sha256: createHash("sha256").update(bytes).digest("hex") };
}

/** Reads a matrix blob back, checking its hash and shape; a mismatch is a ProtocolError. */
export function parseSearchMatrixBlob(bytes: Uint8Array, sha256: string): EmbeddingMatrix {
  if (createHash("sha256").update(bytes).digest("hex") !== sha256) throw new ProtocolError(`search matrix blob does not hash to ${sha256.slice(0, 12)}`);
  if (bytes.length < 16 || new TextDecoder().decode(bytes.subarray(0, 4)) !== "DLSM") throw new ProtocolError("search matrix blob: bad header");
  const view = new DataView(bytes.buffer, bytes.byteOffset, 16);
  const kind = view.getUint32(4, true);
  const count = view.getUint32(8, true);
  const dim = view.getUint32(12, true);
  const width = kind === 1 ? 4 : kind === 2 ? 2 : 0;
  if (width === 0 || bytes.length !== 16 + count * dim * width + count * 4) throw new ProtocolError("search matrix blob: size does not match its header");
  const copy = (from: number, n: number) => {
    const out = new Uint8Array(n);
    out.set(bytes.subarray(from, from + n));
    return out.buffer;
  };
  const data = kind === 1 ? new Float32Array(copy(16, count * dim * 4)) : new Uint16Array(copy(16, count * dim * 2));
  const invNorms = new Float32Array(copy(16 + count * dim * width, count * 4));
  return { count, dim, dtype: kind === 1 ? "float32" : "float16", data, invNorms };
}

/** A search tile's result as upload values: m x k scores, then m x k row ids (their bits). */
export function searchResultValues(lists: TopKLists): Float32Array {
  const out = new Float32Array(2 * lists.rows * lists.k);
  out.set(lists.scores, 0);
  new Uint32Array(out.buffer, lists.rows * lists.k * 4, lists.rows * lists.k).set(lists.ids);
  return out;
}

/**
 * An uploaded search result back as top-k lists, checked against its tile: 2 x queries x k values,
 * every id one of the tile's corpus rows (or EMPTY, only after the last real one), scores finite
 * and non-increasing with ties in rising id. Throws a ProtocolError naming what is wrong.
 */
export function searchResultLists(w: SearchTileWork, values: Float32Array): TopKLists {
  const m = w.queries.length;
  const k = Math.min(w.k, w.corpus.length);
  if (values.length !== 2 * m * w.k) throw new ProtocolError(`search result: ${values.length} values, expected 2 x ${m} x ${w.k}`);
  const scores = values.slice(0, m * w.k);
  const ids = new Uint32Array(values.buffer.slice(values.byteOffset + m * w.k * 4, values.byteOffset + 2 * m * w.k * 4));
  const corpus = new Set(w.corpus);
  for (let r = 0; r < m; r++) {
    for (let t = 0; t < w.k; t++) {
      const at = r * w.k + t;
      const id = ids[at];
      if (t >= k || id === EMPTY) {
        if (t < k) throw new ProtocolError(`search result: query ${r} has ${t} of its ${k} neighbours`);
        if (id !== EMPTY) throw new ProtocolError(`search result: query ${r} has more than ${k} neighbours`);
        continue;
      }
      if (!corpus.has(id)) throw new ProtocolError(`search result: query ${r} names row ${id}, not in the tile's corpus`);
      if (!Number.isFinite(scores[at]) || Math.abs(scores[at]) > 1.001) throw new ProtocolError(`search result: query ${r} has score ${scores[at]}, a cosine must be within [-1, 1]`);
      if (t > 0 && (scores[at] > scores[at - 1] || (scores[at] === scores[at - 1] && id <= ids[at - 1]))) {
        throw new ProtocolError(`search result: query ${r}'s list is not best first (ties to the lower row)`);
      }
    }
  }
  return { rows: m, k: w.k, scores, ids };
}

function bytes(a: Uint32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function uint32s(value: unknown, name: string): Uint32Array {
  if (!(value instanceof Uint8Array)) throw new ProtocolError(`search tile: ${name} must be binary`);
  if (value.byteLength % 4 !== 0) throw new ProtocolError(`search tile: ${name} length is not a multiple of 4`);
  const out = new Uint32Array(value.byteLength / 4);
  new Uint8Array(out.buffer).set(value);
  return out;
}
