import { createHmac, timingSafeEqual } from "node:crypto";
import { Packr } from "msgpackr";
import { ProtocolError } from "../errors.js";
import type { TokenizedCorpus } from "../data/tokenized-corpus.js";
import type { TileWork } from "./types.js";
import { decodeEmbedTileBody, embedTileBody, type EmbedTileWork } from "./embed-tile.js";
import { decodeSearchTileBody, searchTileBody, type SearchTileWork } from "../candidates/search-tile-message.js";

/** A tile on the wire (msgpack): ids and tile work; integer arrays as little-endian bytes. */
export type TileMessage = { jobId: string; tileId: string; work: TileWork };
/** An embedding tile on the wire (embed-tile.ts). */
export type EmbedTileMessage = { jobId: string; tileId: string; work: EmbedTileWork };
/** A candidate-search tile on the wire (candidates/search-tile-message.ts). */
export type SearchTileMessage = { jobId: string; tileId: string; work: SearchTileWork };
/** Any message a worker may pull: a scoring tile, an embedding tile or a search tile. */
export type WorkMessage = TileMessage | EmbedTileMessage | SearchTileMessage;

const VERSION = 1;
const packr = new Packr({ useRecords: false, moreTypes: false });
const JOB_ID = /^[A-Za-z0-9_-]{1,64}$/;
const TILE_ID = /^[0-9a-f]{64}$/;
/** A tile's samples and columns are bounded so a hostile message cannot exhaust memory. */
const MAX_SAMPLES = 1 << 20;
const MAX_TOKENS = 1 << 26;

export function encodeTileMessage(m: WorkMessage): Uint8Array {
  const w = m.work;
  if (w.kind === "embed") return packr.pack({ v: VERSION, job: m.jobId, tile: m.tileId, ...embedTileBody(w) });
  if (w.kind === "search") return packr.pack({ v: VERSION, job: m.jobId, tile: m.tileId, ...searchTileBody(w) });
  const body: Record<string, unknown> = {
    v: VERSION,
    job: m.jobId,
    tile: m.tileId,
    kind: w.kind,
    ids: bytes(w.samples.ids),
    offsets: bytes(w.samples.offsets),
  };
  if (w.kind === "baseline") {
    body.targets = bytes(w.targets);
  } else {
    body.columns = bytes(Uint32Array.from(w.columns, (c) => c.example));
    const first = w.columns[0]?.rows ?? new Uint32Array(0);
    if (w.columns.every((c) => c.rows === first || sameValues(c.rows, first))) {
      // A block (dense mode): one row list for every column.
      body.rows = bytes(first);
    } else {
      // Column-compressed (sparse mode): rows of column c at rows[rowPtr[c] .. rowPtr[c + 1]).
      const rowPtr = new Uint32Array(w.columns.length + 1);
      w.columns.forEach((c, k) => (rowPtr[k + 1] = rowPtr[k] + c.rows.length));
      const rows = new Uint32Array(rowPtr[w.columns.length]);
      w.columns.forEach((c, k) => rows.set(c.rows, rowPtr[k]));
      body.rowPtr = bytes(rowPtr);
      body.rows = bytes(rows);
    }
  }
  return packr.pack(body);
}

/** Decodes and validates a scoring tile message (pairs or baseline); anything else is a ProtocolError. */
export function decodeTileMessage(data: Uint8Array): TileMessage {
  const m = decodeWorkMessage(data);
  if (m.work.kind === "embed" || m.work.kind === "search") throw new ProtocolError(`tile message: a ${m.work.kind} tile where a scoring tile was expected`);
  return m as TileMessage;
}

/** Decodes and validates any tile message, dispatching by kind; anything malformed is a ProtocolError, never a crash. */
export function decodeWorkMessage(data: Uint8Array): WorkMessage {
  let raw: unknown;
  try {
    raw = packr.unpack(data);
  } catch (err) {
    throw new ProtocolError(`tile message is not msgpack: ${(err as Error).message}`);
  }
  if (!raw || typeof raw !== "object") throw new ProtocolError("tile message is not a map");
  const m = raw as Record<string, unknown>;
  if (m.v !== VERSION) throw new ProtocolError(`tile message version ${describe(m.v)}, expected ${VERSION}`);
  if (typeof m.job !== "string" || !JOB_ID.test(m.job)) throw new ProtocolError("tile message: bad job id");
  if (typeof m.tile !== "string" || !TILE_ID.test(m.tile)) throw new ProtocolError("tile message: bad tile id");
  if (m.kind === "embed") return { jobId: m.job, tileId: m.tile, work: decodeEmbedTileBody(m) };
  if (m.kind === "search") return { jobId: m.job, tileId: m.tile, work: decodeSearchTileBody(m) };
  const ids = int32s(m.ids, "ids");
  const offsets = uint32s(m.offsets, "offsets");
  if (ids.length > MAX_TOKENS) throw new ProtocolError("tile message: too many tokens");
  if (offsets.length % 2 !== 1 || offsets.length > 2 * MAX_SAMPLES + 1) throw new ProtocolError("tile message: offsets must hold 2n+1 entries");
  if (offsets[0] !== 0 || offsets[offsets.length - 1] !== ids.length) throw new ProtocolError("tile message: offsets do not span the ids");
  for (let k = 1; k < offsets.length; k++) if (offsets[k] < offsets[k - 1]) throw new ProtocolError("tile message: offsets decrease");
  for (let k = 0; k < ids.length; k++) if (ids[k] < 0) throw new ProtocolError("tile message: negative token id");
  const samples: TokenizedCorpus = { count: (offsets.length - 1) / 2, ids, offsets };
  const inRange = (a: Uint32Array, what: string) => {
    for (const i of a) if (i >= samples.count) throw new ProtocolError(`tile message: ${what} index ${i} out of range (${samples.count} samples)`);
    return a;
  };
  const base = { jobId: m.job, tileId: m.tile };
  if (m.kind === "baseline") {
    const targets = inRange(uint32s(m.targets, "targets"), "target");
    if (targets.length === 0) throw new ProtocolError("tile message: no targets");
    return { ...base, work: { kind: "baseline", samples, targets } };
  }
  if (m.kind === "pairs") {
    const columns = inRange(uint32s(m.columns, "columns"), "column");
    const rows = inRange(uint32s(m.rows, "rows"), "row");
    if (columns.length === 0 || rows.length === 0) throw new ProtocolError("tile message: empty tile");
    if (m.rowPtr === undefined) return { ...base, work: { kind: "pairs", samples, columns: Array.from(columns, (example) => ({ example, rows })) } };
    const rowPtr = uint32s(m.rowPtr, "rowPtr");
    if (rowPtr.length !== columns.length + 1 || rowPtr[0] !== 0 || rowPtr[columns.length] !== rows.length) {
      throw new ProtocolError("tile message: rowPtr must hold columns + 1 offsets spanning the rows");
    }
    for (let k = 1; k < rowPtr.length; k++) if (rowPtr[k] < rowPtr[k - 1]) throw new ProtocolError("tile message: rowPtr decreases");
    return { ...base, work: { kind: "pairs", samples, columns: Array.from(columns, (example, k) => ({ example, rows: rows.subarray(rowPtr[k], rowPtr[k + 1]) })) } };
  }
  throw new ProtocolError(`tile message: unknown kind ${describe(m.kind)}`);
}

/** Bytes of a per-job tile key (HMAC-SHA256). */
export const TILE_KEY_BYTES = 32;

/**
 * The authentication code of a tile message: HMAC-SHA256, under the job's secret key, over the
 * job id, the tile id the header names and the payload. Only the coordinator (and workers, which
 * get the key over gRPC, never through NATS) can make one, so NATS access alone cannot forge or
 * alter a tile, nor move one to another job.
 */
export function tileMac(key: Uint8Array, jobId: string, tileId: string, data: Uint8Array): string {
  return createHmac("sha256", key).update(`delift-tile/1\0${jobId}\0${tileId}\0`).update(data).digest("hex");
}

/** Constant-time check of a message's code; false for a missing or malformed one. */
export function verifyTileMac(key: Uint8Array, jobId: string, tileId: string | null, data: Uint8Array, mac: string | null): boolean {
  if (!tileId || !mac || !/^[0-9a-f]{64}$/.test(mac)) return false;
  return timingSafeEqual(Buffer.from(tileMac(key, jobId, tileId, data), "hex"), Buffer.from(mac, "hex"));
}

/** Constant-time equality of two hex codes. */
export function sameMac(a: string | null, b: string | null): boolean {
  if (!a || !b || !/^[0-9a-f]{64}$/.test(a) || !/^[0-9a-f]{64}$/.test(b)) return false;
  return timingSafeEqual(Buffer.from(a, "hex"), Buffer.from(b, "hex"));
}

function bytes(a: Int32Array | Uint32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function raw(value: unknown, name: string): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new ProtocolError(`tile message: ${name} must be binary`);
  if (value.byteLength % 4 !== 0) throw new ProtocolError(`tile message: ${name} length is not a multiple of 4`);
  return value;
}

/** Copies into an aligned buffer (msgpack bin fields can start at any byte offset). */
function int32s(value: unknown, name: string): Int32Array {
  const b = raw(value, name);
  const out = new Int32Array(b.byteLength / 4);
  new Uint8Array(out.buffer).set(b);
  return out;
}

function uint32s(value: unknown, name: string): Uint32Array {
  const b = raw(value, name);
  const out = new Uint32Array(b.byteLength / 4);
  new Uint8Array(out.buffer).set(b);
  return out;
}

function sameValues(a: Uint32Array, b: Uint32Array): boolean {
  return a.length === b.length && a.every((v, k) => v === b[k]);
}

/** A value from an untrusted message, for an error text (never calls its own methods). */
function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.slice(0, 40));
  if (typeof value === "number" || typeof value === "boolean" || value === null || value === undefined) return String(value);
  return typeof value;
}
