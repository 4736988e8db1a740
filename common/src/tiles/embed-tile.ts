import { createHash } from "node:crypto";
import { ProtocolError } from "../errors.js";

/**
 * An embedding tile: a block of samples' token sequences (x + "\n" + y, cut to the maximum length,
 * exactly as the encoder takes them) and the model runs to make of them. Sequence k is
 * ids[offsets[k], offsets[k + 1]); runs are consecutive: the first runs[0] sequences, then the
 * next runs[1], ... The coordinator plans the runs over the whole corpus as its own encoder would,
 * so a worker's vectors are the bytes the coordinator would have computed. The result is
 * `count` L2-normalised rows of the encoder's `dim` floats, in sequence order.
 */
export type EmbedTileWork = {
  kind: "embed";
  sequences: { count: number; ids: Int32Array; offsets: Uint32Array };
  runs: Uint32Array;
};

/** A tile's sequences and runs are bounded so a hostile message cannot exhaust memory. */
const MAX_SEQUENCES = 1 << 20;
const MAX_TOKENS = 1 << 26;

/** The kind-specific fields of an embedding tile message (the codec adds version and ids). */
export function embedTileBody(w: EmbedTileWork): Record<string, unknown> {
  return { kind: "embed", ids: bytes(w.sequences.ids), offsets: bytes(w.sequences.offsets), runs: bytes(w.runs) };
}

/** Validates and decodes the kind-specific fields; anything malformed is a ProtocolError. */
export function decodeEmbedTileBody(m: Record<string, unknown>): EmbedTileWork {
  const ids = int32s(m.ids, "ids");
  const offsets = uint32s(m.offsets, "offsets");
  const runs = uint32s(m.runs, "runs");
  if (ids.length > MAX_TOKENS) throw new ProtocolError("embed tile: too many tokens");
  if (offsets.length < 2 || offsets.length > MAX_SEQUENCES + 1) throw new ProtocolError("embed tile: offsets must hold n+1 entries for 1 to 2^20 sequences");
  if (offsets[0] !== 0 || offsets[offsets.length - 1] !== ids.length) throw new ProtocolError("embed tile: offsets do not span the ids");
  for (let k = 1; k < offsets.length; k++) if (offsets[k] < offsets[k - 1]) throw new ProtocolError("embed tile: offsets decrease");
  for (let k = 0; k < ids.length; k++) if (ids[k] < 0) throw new ProtocolError("embed tile: negative token id");
  const count = offsets.length - 1;
  let sum = 0;
  for (const r of runs) {
    if (r === 0) throw new ProtocolError("embed tile: an empty run");
    sum += r;
  }
  if (sum !== count) throw new ProtocolError(`embed tile: runs cover ${sum} sequences, the tile has ${count}`);
  return { kind: "embed", sequences: { count, ids, offsets }, runs };
}

/**
 * The content key of an embedding tile: the encoder (its file's hash and pad id) and the tile's
 * sequences and runs. The same samples under the same encoder get the same key in any job, so the
 * tile store's copy is reused.
 */
export function embedTileId(encoderKey: string, w: EmbedTileWork): string {
  return createHash("sha256")
    .update(`delift-embed/1\0${encoderKey}\0`)
    .update(bytes(w.runs))
    .update(bytes(w.sequences.offsets))
    .update(bytes(w.sequences.ids))
    .digest("hex");
}

/** The run sizes of a batch plan whose batches are consecutive in sequence order. */
export function runSizes(batches: number[][]): Uint32Array {
  return Uint32Array.from(batches, (b) => b.length);
}

/** The batches (sequence indices) of a tile's runs. */
export function runBatches(runs: Uint32Array): number[][] {
  const out: number[][] = [];
  let at = 0;
  for (const r of runs) {
    out.push(Array.from({ length: r }, (_, k) => at + k));
    at += r;
  }
  return out;
}

function bytes(a: Int32Array | Uint32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function raw(value: unknown, name: string): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new ProtocolError(`embed tile: ${name} must be binary`);
  if (value.byteLength % 4 !== 0) throw new ProtocolError(`embed tile: ${name} length is not a multiple of 4`);
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
