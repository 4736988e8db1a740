import { Packr } from "msgpackr";
import type { TileWork } from "../../common/src/mod.js";

/**
 * The tile message format before issue 8 item 4 (version 1: each message carries the token ids of
 * its samples as little-endian int32, offsets, local columns and rows), kept here only as the
 * baseline bench/scale measures the index-carrying format against. Byte for byte what
 * `encodeTileMessage` produced then.
 */
const packr = new Packr({ useRecords: false, moreTypes: false });

export function encodeSelfContainedTile(jobId: string, tileId: string, w: TileWork): Uint8Array {
  const body: Record<string, unknown> = { v: 1, job: jobId, tile: tileId, kind: w.kind, ids: bytes(w.samples.ids), offsets: bytes(w.samples.offsets) };
  if (w.kind === "baseline") body.targets = bytes(w.targets);
  else {
    body.columns = bytes(Uint32Array.from(w.columns, (c) => c.example));
    const first = w.columns[0]?.rows ?? new Uint32Array(0);
    if (w.columns.every((c) => c.rows === first || (c.rows.length === first.length && c.rows.every((v, k) => v === first[k])))) body.rows = bytes(first);
    else {
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

function bytes(a: Int32Array | Uint32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
