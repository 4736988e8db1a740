import { createHmac, timingSafeEqual } from "node:crypto";
import { Packr } from "msgpackr";
import { ProtocolError } from "../errors.js";
import type { CorpusRef } from "./corpus-chunks.js";
import type { IndexedTileWork } from "./types.js";
import { decodeDeltas, decodeVarints, encodeDeltas, encodeVarints } from "./varint.js";
import { decodeEmbedTileBody, embedTileBody, type EmbedTileWork } from "./embed-tile.js";
import { decodeSearchTileBody, searchTileBody, type SearchTileWork } from "../candidates/search-tile-message.js";

/**
 * A tile on the wire (msgpack, version 2; issue 8 item 4): ids, the corpus it indexes (the
 * SHA-256 of the corpus manifest in the object store and its sample count, both under the
 * message's HMAC) and global sample indices as zigzag-delta varints. No token ids travel.
 */
export type TileMessage = { jobId: string; tileId: string; corpus: CorpusRef; work: IndexedTileWork };
/** An embedding tile on the wire (embed-tile.ts): self-contained, it carries its token sequences. */
export type EmbedTileMessage = { jobId: string; tileId: string; work: EmbedTileWork };
/** A candidate-search tile on the wire (candidates/search-tile-message.ts). */
export type SearchTileMessage = { jobId: string; tileId: string; work: SearchTileWork };
/** Any message a worker may pull: a scoring tile, an embedding tile or a search tile. */
export type WorkMessage = TileMessage | EmbedTileMessage | SearchTileMessage;

const VERSION = 2;
const packr = new Packr({ useRecords: false, moreTypes: false });
const JOB_ID = /^[A-Za-z0-9_-]{1,64}$/;
const TILE_ID = /^[0-9a-f]{64}$/;
const DIGEST = /^[0-9a-f]{64}$/;
/** A tile's columns and rows are bounded so a hostile message cannot exhaust memory. */
const MAX_ENTRIES = 1 << 22;

/** How each tile kind's body goes on the wire and comes back (one entry per kind). */
type BodyCodec<W extends IndexedTileWork> = {
  encode(work: W, body: Record<string, unknown>): void;
  decode(body: Record<string, unknown>, inRange: (a: Uint32Array, what: string) => Uint32Array): W;
};

const baselineCodec: BodyCodec<Extract<IndexedTileWork, { kind: "baseline" }>> = {
  encode(w, body) {
    body.targets = encodeDeltas(w.targets);
  },
  decode(m, inRange) {
    const targets = inRange(deltas(m.targets, "targets"), "target");
    if (targets.length === 0) throw new ProtocolError("tile message: no targets");
    return { kind: "baseline", targets };
  },
};

const pairsCodec: BodyCodec<Extract<IndexedTileWork, { kind: "pairs" }>> = {
  encode(w, body) {
    body.columns = encodeDeltas(Uint32Array.from(w.columns, (c) => c.example));
    const first = w.columns[0]?.rows ?? new Uint32Array(0);
    if (w.columns.every((c) => c.rows === first || sameValues(c.rows, first))) {
      // A block (dense mode): one row list for every column.
      body.rows = encodeDeltas(first);
    } else {
      // Column-compressed (sparse mode): each column's row count, then all rows column by column.
      body.lengths = encodeVarints(Uint32Array.from(w.columns, (c) => c.rows.length));
      const rows = new Uint32Array(w.columns.reduce((n, c) => n + c.rows.length, 0));
      let at = 0;
      for (const c of w.columns) {
        rows.set(c.rows, at);
        at += c.rows.length;
      }
      body.rows = encodeDeltas(rows);
    }
  },
  decode(m, inRange) {
    const columns = inRange(deltas(m.columns, "columns"), "column");
    const rows = inRange(deltas(m.rows, "rows"), "row");
    if (columns.length === 0 || rows.length === 0) throw new ProtocolError("tile message: empty tile");
    if (m.lengths === undefined) return { kind: "pairs", columns: Array.from(columns, (example) => ({ example, rows })) };
    const lengths = varints(m.lengths, "lengths");
    if (lengths.length !== columns.length) throw new ProtocolError("tile message: lengths must hold one count per column");
    let total = 0;
    for (const l of lengths) total += l;
    if (total !== rows.length) throw new ProtocolError(`tile message: the column lengths add up to ${total}, the rows hold ${rows.length}`);
    let at = 0;
    return {
      kind: "pairs",
      columns: Array.from(columns, (example, k) => {
        const r = rows.subarray(at, at + lengths[k]);
        at += lengths[k];
        return { example, rows: r };
      }),
    };
  },
};

const BODY_CODECS: { [K in IndexedTileWork["kind"]]: BodyCodec<Extract<IndexedTileWork, { kind: K }>> } = {
  baseline: baselineCodec,
  pairs: pairsCodec,
};

export function encodeTileMessage(m: WorkMessage): Uint8Array {
  if (m.work.kind === "embed") return packr.pack({ v: VERSION, job: m.jobId, tile: m.tileId, ...embedTileBody(m.work) });
  if (m.work.kind === "search") return packr.pack({ v: VERSION, job: m.jobId, tile: m.tileId, ...searchTileBody(m.work) });
  if (!("corpus" in m)) throw new Error(`tile ${m.tileId}: a scoring tile needs its corpus`);
  const body: Record<string, unknown> = { v: VERSION, job: m.jobId, tile: m.tileId, kind: m.work.kind, corpus: m.corpus.digest, n: m.corpus.count };
  (BODY_CODECS[m.work.kind] as BodyCodec<IndexedTileWork>).encode(m.work, body);
  return packr.pack(body);
}

/**
 * Decodes and validates any tile message, dispatching by kind (embed and search tiles have codecs
 * of their own); anything malformed is a ProtocolError, never a crash.
 */
export function decodeWorkMessage(data: Uint8Array): WorkMessage {
  let raw: unknown;
  try {
    raw = packr.unpack(data);
  } catch (err) {
    throw new ProtocolError(`tile message is not msgpack: ${(err as Error).message}`);
  }
  if (!raw || typeof raw !== "object") throw new ProtocolError("tile message is not a map");
  const m = raw as Record<string, unknown>;
  if (m.kind !== "embed" && m.kind !== "search") return decodeTileMessage(data);
  if (m.v !== VERSION) throw new ProtocolError(`tile message version ${describe(m.v)}, expected ${VERSION}`);
  if (typeof m.job !== "string" || !JOB_ID.test(m.job)) throw new ProtocolError("tile message: bad job id");
  if (typeof m.tile !== "string" || !TILE_ID.test(m.tile)) throw new ProtocolError("tile message: bad tile id");
  return m.kind === "embed" ? { jobId: m.job, tileId: m.tile, work: decodeEmbedTileBody(m) } : { jobId: m.job, tileId: m.tile, work: decodeSearchTileBody(m) };
}

/** Decodes and validates a scoring tile message (pairs or baseline); anything malformed is a ProtocolError, never a crash. */
export function decodeTileMessage(data: Uint8Array): TileMessage {
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
  if (typeof m.corpus !== "string" || !DIGEST.test(m.corpus)) throw new ProtocolError("tile message: bad corpus digest");
  const count = m.n;
  if (typeof count !== "number" || !Number.isSafeInteger(count) || count < 1 || count >= 2 ** 32) throw new ProtocolError(`tile message: bad sample count ${describe(count)}`);
  const inRange = (a: Uint32Array, what: string) => {
    for (const i of a) if (i >= count) throw new ProtocolError(`tile message: ${what} index ${i} out of range (${count} samples)`);
    return a;
  };
  const kind = m.kind;
  if (typeof kind !== "string" || !Object.hasOwn(BODY_CODECS, kind)) throw new ProtocolError(`tile message: unknown kind ${describe(kind)}`);
  const work = BODY_CODECS[kind as IndexedTileWork["kind"]].decode(m, inRange);
  return { jobId: m.job, tileId: m.tile, corpus: { digest: m.corpus, count }, work };
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

function binary(value: unknown, name: string): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new ProtocolError(`tile message: ${name} must be binary`);
  // Every entry takes at least one byte, so the length bounds the work.
  if (value.byteLength > MAX_ENTRIES) throw new ProtocolError(`tile message: ${name} is too long`);
  return value;
}

function deltas(value: unknown, name: string): Uint32Array {
  return decodeDeltas(binary(value, name), name);
}

function varints(value: unknown, name: string): Uint32Array {
  return decodeVarints(binary(value, name), name);
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
