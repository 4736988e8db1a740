import { createHash } from "node:crypto";

/**
 * A 16-byte content key per sample, over its token ids as int32: the same sample hashes the same
 * in any data set, and whether its ids are held in two or four bytes (a compact corpus).
 */
export function sampleKeys(corpus: { count: number; offsets: Uint32Array; ids: Int32Array | Uint32Array | Uint16Array }): Uint8Array {
  const keys = new Uint8Array(corpus.count * 16);
  const o = corpus.offsets;
  const wide = corpus.ids instanceof Int32Array ? corpus.ids : null;
  let scratch = new Int32Array(1024);
  const bytesOf = (start: number, end: number): Uint8Array => {
    if (wide) return new Uint8Array(wide.buffer, wide.byteOffset + start * 4, (end - start) * 4);
    if (scratch.length < end - start) scratch = new Int32Array(end - start);
    scratch.set(corpus.ids.subarray(start, end));
    return new Uint8Array(scratch.buffer, 0, (end - start) * 4);
  };
  for (let i = 0; i < corpus.count; i++) {
    const h = createHash("sha256");
    h.update(new Uint8Array(new Uint32Array([o[2 * i + 1] - o[2 * i], o[2 * i + 2] - o[2 * i + 1]]).buffer));
    h.update(bytesOf(o[2 * i], o[2 * i + 1]));
    h.update(bytesOf(o[2 * i + 1], o[2 * i + 2]));
    keys.set(h.digest().subarray(0, 16), i * 16);
  }
  return keys;
}
