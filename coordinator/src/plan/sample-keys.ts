import { createHash } from "node:crypto";
import { sampleTokens, type TokenizedCorpus } from "../../../common/src/mod.js";

/** A 16-byte content key per sample, over its token ids: the same sample hashes the same in any data set. */
export function sampleKeys(corpus: TokenizedCorpus): Uint8Array {
  const keys = new Uint8Array(corpus.count * 16);
  for (let i = 0; i < corpus.count; i++) {
    const t = sampleTokens(corpus, i);
    const x = t.x as Int32Array;
    const y = t.y as Int32Array;
    const h = createHash("sha256");
    h.update(new Uint8Array(new Uint32Array([x.length, y.length]).buffer));
    h.update(new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
    h.update(new Uint8Array(y.buffer, y.byteOffset, y.byteLength));
    keys.set(h.digest().subarray(0, 16), i * 16);
  }
  return keys;
}
