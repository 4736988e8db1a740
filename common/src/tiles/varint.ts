import { ProtocolError } from "../errors.js";

/**
 * Unsigned integers as LEB128 varints of their zigzag deltas: sorted or nearly sorted index
 * lists (a tile's columns and rows) take one to three bytes an entry instead of four.
 */
export function encodeDeltas(values: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(values.length * 5);
  let at = 0;
  let previous = 0;
  for (let k = 0; k < values.length; k++) {
    const d = values[k] - previous;
    previous = values[k];
    // Zigzag: 0, -1, 1, -2, ... -> 0, 1, 2, 3, ... (deltas of u32 values fit in 33 bits: use floats).
    let z = d >= 0 ? 2 * d : -2 * d - 1;
    while (z >= 0x80) {
      out[at++] = (z % 0x80) | 0x80;
      z = Math.floor(z / 0x80);
    }
    out[at++] = z;
  }
  return out.slice(0, at);
}

/** Plain varints (counts, lengths). */
export function encodeVarints(values: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(values.length * 5);
  let at = 0;
  for (let k = 0; k < values.length; k++) {
    let z = values[k];
    while (z >= 0x80) {
      out[at++] = (z % 0x80) | 0x80;
      z = Math.floor(z / 0x80);
    }
    out[at++] = z;
  }
  return out.slice(0, at);
}

/** Decodes zigzag-delta varints; every value must lie in [0, 2^32). A malformed list is a ProtocolError. */
export function decodeDeltas(bytes: Uint8Array, name: string): Uint32Array {
  const raw = readVarints(bytes, name, 2 ** 33);
  const out = new Uint32Array(raw.length);
  let value = 0;
  for (let k = 0; k < raw.length; k++) {
    const z = raw[k];
    value += z % 2 === 0 ? z / 2 : -(z + 1) / 2;
    if (value < 0 || value >= 2 ** 32) throw new ProtocolError(`tile message: ${name} entry ${k} is out of the u32 range`);
    out[k] = value;
  }
  return out;
}

export function decodeVarints(bytes: Uint8Array, name: string): Uint32Array {
  return Uint32Array.from(readVarints(bytes, name, 2 ** 32));
}

function readVarints(bytes: Uint8Array, name: string, limit: number): number[] {
  const out: number[] = [];
  let value = 0;
  let scale = 1;
  for (let k = 0; k < bytes.length; k++) {
    const b = bytes[k];
    value += (b & 0x7f) * scale;
    scale *= 0x80;
    if (value >= limit) throw new ProtocolError(`tile message: ${name} holds a varint too large`);
    if (b & 0x80) {
      if (scale > 2 ** 35) throw new ProtocolError(`tile message: ${name} holds a varint too long`);
      continue;
    }
    out.push(value);
    value = 0;
    scale = 1;
  }
  if (scale !== 1) throw new ProtocolError(`tile message: ${name} ends inside a varint`);
  return out;
}
