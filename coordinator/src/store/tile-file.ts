import type { TileOutput } from "../../../common/src/mod.js";

const MAGIC = "DLTILE01";
const HEADER_BYTES = 16;

/** Tile result file: magic, u32 value count, u32 truncated count, then float32 distances. */
export function encodeTileFile(output: TileOutput): Uint8Array {
  const bytes = new Uint8Array(HEADER_BYTES + output.distances.byteLength);
  bytes.set(Buffer.from(MAGIC, "latin1"), 0);
  const view = new DataView(bytes.buffer);
  view.setUint32(8, output.distances.length, true);
  view.setUint32(12, output.truncated, true);
  bytes.set(new Uint8Array(output.distances.buffer, output.distances.byteOffset, output.distances.byteLength), HEADER_BYTES);
  return bytes;
}

export function decodeTileFile(bytes: Uint8Array, label: string): TileOutput {
  if (bytes.length < HEADER_BYTES || Buffer.from(bytes.subarray(0, 8)).toString("latin1") !== MAGIC) {
    throw new Error(`${label}: not a delift tile file`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = view.getUint32(8, true);
  if (bytes.length !== HEADER_BYTES + count * 4) throw new Error(`${label}: truncated tile file (${bytes.length} bytes for ${count} values)`);
  const distances = new Float32Array(count);
  new Uint8Array(distances.buffer).set(bytes.subarray(HEADER_BYTES));
  return { distances, truncated: view.getUint32(12, true) };
}
