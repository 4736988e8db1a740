/**
 * The chunked kernel format: a kernel's columns in column-compressed chunks on disk, so that a
 * selection (or one shard of it) reads one column range without the whole kernel in memory.
 *
 *   DIR/kernel-chunks.json   the index (this file's ChunkedIndex): shape, the value range of the
 *                            stored entries (so min-max scaling works chunk by chunk), each
 *                            chunk's column range, size and sha256, and the kernel metadata
 *   DIR/chunk-NNNNNN.bin     32-byte header, then colPtr (cols + 1 uint32, from 0), rowIdx (nnz
 *                            uint32), values (nnz float32); little-endian
 *   DIR/baseline.f32         optional: one float32 per row (the P0 distances d0)
 *   DIR/row-ids.jsonl, DIR/col-ids.jsonl
 *                            optional: one JSON string per line, the sample id of each row/column
 *
 * Chunks cover the columns in order without gaps. Every section of a chunk starts at a multiple
 * of 4 bytes, so one read of a chunk into one buffer gives typed-array views without a copy.
 */
import { endianness } from "node:os";
import { ConfigError, InputError } from "../errors.js";

export const CHUNKED_FORMAT = "delift-kernel-chunked/1";
export const CHUNKED_INDEX_FILE = "kernel-chunks.json";
export const CHUNK_MAGIC = "DLKCHK01";
export const CHUNK_VERSION = 1;
export const CHUNK_HEADER_BYTES = 32;
export const BASELINE_FILE = "baseline.f32";
export const ROW_IDS_FILE = "row-ids.jsonl";
export const COL_IDS_FILE = "col-ids.jsonl";

export type ChunkEntry = {
  file: string;
  /** Columns [colStart, colEnd) of the kernel. */
  colStart: number;
  colEnd: number;
  nnz: number;
  /** Size of the chunk file. */
  bytes: number;
  /** sha256 of the whole chunk file, hex. */
  sha256: string;
};

export type SideFile = { file: string; bytes: number; sha256: string };

export type ChunkedIndex = {
  format: typeof CHUNKED_FORMAT;
  nRows: number;
  nCols: number;
  /** Stored entries in all chunks (may exceed 2^32; one range read must not). */
  nnz: number;
  /** Smallest and largest stored value before any scaling (both 0 when nothing is stored). */
  valueRange: { min: number; max: number };
  chunks: ChunkEntry[];
  baseline: SideFile | null;
  rowIds: (SideFile & { count: number }) | null;
  colIds: (SideFile & { count: number }) | null;
  /** The kernel's metadata (kernel.json's fields other than shape and ids). */
  metadata: Record<string, unknown>;
};

/** Byte layout of a chunk with `cols` columns and `nnz` entries. */
export function chunkLayout(cols: number, nnz: number): { colPtrAt: number; rowIdxAt: number; valuesAt: number; bytes: number } {
  const colPtrAt = CHUNK_HEADER_BYTES;
  const rowIdxAt = colPtrAt + 4 * (cols + 1);
  const valuesAt = rowIdxAt + 4 * nnz;
  return { colPtrAt, rowIdxAt, valuesAt, bytes: valuesAt + 4 * nnz };
}

export function chunkFileName(k: number): string {
  return `chunk-${String(k).padStart(6, "0")}.bin`;
}

export function encodeChunkHeader(colStart: number, cols: number, nnz: number, nRows: number): Uint8Array {
  const header = new Uint8Array(CHUNK_HEADER_BYTES);
  header.set(Buffer.from(CHUNK_MAGIC, "latin1"));
  const view = new DataView(header.buffer);
  view.setUint32(8, CHUNK_VERSION, true);
  view.setUint32(12, colStart, true);
  view.setUint32(16, cols, true);
  view.setUint32(20, nnz, true);
  view.setUint32(24, nRows, true);
  return header;
}

/** Checks a chunk's header against its index entry; an InputError names the file and the field. */
export function checkChunkHeader(header: Uint8Array, entry: ChunkEntry, nRows: number, path: string): void {
  if (header.byteLength < CHUNK_HEADER_BYTES || Buffer.from(header.buffer, header.byteOffset, 8).toString("latin1") !== CHUNK_MAGIC) {
    throw new InputError({ file: path }, "not a delift kernel chunk (bad magic)");
  }
  const view = new DataView(header.buffer, header.byteOffset, CHUNK_HEADER_BYTES);
  const fields: [string, number, number][] = [
    ["version", view.getUint32(8, true), CHUNK_VERSION],
    ["colStart", view.getUint32(12, true), entry.colStart],
    ["columns", view.getUint32(16, true), entry.colEnd - entry.colStart],
    ["nnz", view.getUint32(20, true), entry.nnz],
    ["nRows", view.getUint32(24, true), nRows],
  ];
  for (const [name, got, want] of fields) {
    if (got !== want) throw new InputError({ file: path, field: name }, `header says ${got}, the index says ${want}`);
  }
}

/** The format stores typed arrays as they are in memory; only little-endian hosts read them as written. */
export function requireLittleEndian(): void {
  if (endianness() !== "LE") throw new ConfigError("the chunked kernel format needs a little-endian host");
}

/** Validates a parsed index; every problem is an InputError naming the index file and the field. */
export function parseChunkedIndex(raw: unknown, path: string): ChunkedIndex {
  const fail = (field: string, message: string): never => {
    throw new InputError({ file: path, field }, message);
  };
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) fail("(root)", "expected a JSON object");
  const o = raw as Record<string, unknown>;
  if (o.format !== CHUNKED_FORMAT) fail("format", `expected "${CHUNKED_FORMAT}", got ${JSON.stringify(o.format)}`);
  const count = (v: unknown, field: string, min = 0, max = 0xffffffff): number => {
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) fail(field, `expected an integer in [${min}, ${max}], got ${JSON.stringify(v)}`);
    return v as number;
  };
  const nRows = count(o.nRows, "nRows", 1);
  const nCols = count(o.nCols, "nCols", 1);
  const nnz = count(o.nnz, "nnz", 0, Number.MAX_SAFE_INTEGER);
  const range = o.valueRange as Record<string, unknown> | undefined;
  if (!range || typeof range.min !== "number" || typeof range.max !== "number" || !Number.isFinite(range.min) || !Number.isFinite(range.max) || range.min > range.max) {
    fail("valueRange", "expected {min, max}, finite, min <= max");
  }
  if (!Array.isArray(o.chunks) || o.chunks.length === 0) fail("chunks", "expected a non-empty list");
  const chunks: ChunkEntry[] = [];
  let nextCol = 0;
  let total = 0;
  (o.chunks as unknown[]).forEach((c, k) => {
    const field = `chunks[${k}]`;
    if (!c || typeof c !== "object") fail(field, "expected an object");
    const e = c as Record<string, unknown>;
    if (typeof e.file !== "string" || !/^[A-Za-z0-9._-]+$/.test(e.file)) fail(`${field}.file`, "expected a plain file name");
    const colStart = count(e.colStart, `${field}.colStart`);
    const colEnd = count(e.colEnd, `${field}.colEnd`, colStart + 1);
    const chunkNnz = count(e.nnz, `${field}.nnz`);
    const bytes = count(e.bytes, `${field}.bytes`, 0, Number.MAX_SAFE_INTEGER);
    if (typeof e.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(e.sha256)) fail(`${field}.sha256`, "expected 64 hex digits");
    if (colStart !== nextCol) fail(`${field}.colStart`, `chunks must cover the columns in order: expected ${nextCol}, got ${colStart}`);
    if (bytes !== chunkLayout(colEnd - colStart, chunkNnz).bytes) fail(`${field}.bytes`, `${bytes} does not fit ${colEnd - colStart} columns and ${chunkNnz} entries`);
    nextCol = colEnd;
    total += chunkNnz;
    chunks.push({ file: e.file as string, colStart, colEnd, nnz: chunkNnz, bytes, sha256: e.sha256 as string });
  });
  if (nextCol !== nCols) fail("chunks", `chunks cover ${nextCol} columns, the kernel has ${nCols}`);
  if (total !== nnz) fail("nnz", `chunks hold ${total} entries, the index says ${nnz}`);
  const side = (v: unknown, field: string, withCount: boolean): (SideFile & { count: number }) | null => {
    if (v === null || v === undefined) return null;
    const s = v as Record<string, unknown>;
    if (typeof s.file !== "string" || !/^[A-Za-z0-9._-]+$/.test(s.file)) fail(`${field}.file`, "expected a plain file name");
    if (typeof s.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(s.sha256)) fail(`${field}.sha256`, "expected 64 hex digits");
    const bytes = count(s.bytes, `${field}.bytes`, 0, Number.MAX_SAFE_INTEGER);
    const n = withCount ? count(s.count, `${field}.count`) : 0;
    return { file: s.file as string, bytes, sha256: s.sha256 as string, count: n };
  };
  const baseline = side(o.baseline, "baseline", false);
  if (baseline && baseline.bytes !== 4 * nRows) fail("baseline.bytes", `expected ${4 * nRows} (one float32 per row)`);
  const rowIds = side(o.rowIds, "rowIds", true);
  if (rowIds && rowIds.count !== nRows) fail("rowIds.count", `expected ${nRows}`);
  const colIds = side(o.colIds, "colIds", true);
  if (colIds && colIds.count !== nCols) fail("colIds.count", `expected ${nCols}`);
  const metadata = o.metadata ?? {};
  if (typeof metadata !== "object" || Array.isArray(metadata)) fail("metadata", "expected an object");
  return {
    format: CHUNKED_FORMAT,
    nRows,
    nCols,
    nnz,
    valueRange: { min: range!.min as number, max: range!.max as number },
    chunks,
    baseline: baseline ? { file: baseline.file, bytes: baseline.bytes, sha256: baseline.sha256 } : null,
    rowIds,
    colIds,
    metadata: metadata as Record<string, unknown>,
  };
}
