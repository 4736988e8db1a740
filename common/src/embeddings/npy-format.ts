/**
 * The NumPy `.npy` format (version 1.0, 2.0 and 3.0 headers): a magic string, a header length,
 * a Python dict literal `{'descr': '<f4', 'fortran_order': False, 'shape': (n, d), }` padded with
 * spaces to a multiple of 64 bytes, then the raw little-endian values in C order.
 * https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
 */

export const NPY_MAGIC = Uint8Array.of(0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59); // "\x93NUMPY"

export type NpyHeader = {
  /** The dtype string as written: '<f4', '<f2', '>f8', '|u1', ... */
  descr: string;
  fortranOrder: boolean;
  shape: number[];
  /** Bytes before the first value (magic, version, length field and the padded dict). */
  dataOffset: number;
};

/** Why a header could not be parsed; the reader turns it into an InputError naming the file. */
export class NpyHeaderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NpyHeaderError";
  }
}

/** Parses the header from the first bytes of a file (at least 10; the dict may need more: see `needed`). */
export function parseNpyHeader(bytes: Uint8Array): NpyHeader | { needed: number } {
  if (bytes.length < 10) return { needed: 10 };
  for (let k = 0; k < NPY_MAGIC.length; k++) {
    if (bytes[k] !== NPY_MAGIC[k]) throw new NpyHeaderError("not a .npy file (the magic string \\x93NUMPY is missing)");
  }
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let lengthBytes: number;
  let dictLength: number;
  if (major === 1) {
    lengthBytes = 2;
    dictLength = view.getUint16(8, true);
  } else if (major === 2 || major === 3) {
    lengthBytes = 4;
    if (bytes.length < 12) return { needed: 12 };
    dictLength = view.getUint32(8, true);
  } else {
    throw new NpyHeaderError(`unsupported .npy format version ${major}.${bytes[7]} (expected 1.0, 2.0 or 3.0)`);
  }
  const dataOffset = 8 + lengthBytes + dictLength;
  if (bytes.length < dataOffset) return { needed: dataOffset };
  const dict = new TextDecoder(major === 3 ? "utf-8" : "latin1").decode(bytes.subarray(8 + lengthBytes, dataOffset));
  return { ...parseHeaderDict(dict), dataOffset };
}

function parseHeaderDict(text: string): Omit<NpyHeader, "dataOffset"> {
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(text);
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(text);
  const shape = /'shape'\s*:\s*\(([^)]*)\)/.exec(text);
  if (!descr || !fortran || !shape) throw new NpyHeaderError(`malformed .npy header ${JSON.stringify(text.trim())}`);
  const dims = shape[1]
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "")
    .map((s) => {
      const d = Number(s.replace(/L$/, ""));
      if (!Number.isSafeInteger(d) || d < 0) throw new NpyHeaderError(`malformed .npy shape (${shape[1]})`);
      return d;
    });
  return { descr: descr[1], fortranOrder: fortran[1] === "True", shape: dims };
}

/** A version 1.0 header (2.0 when the dict does not fit 65,535 bytes) for C-order data. */
export function npyHeader(descr: string, shape: number[]): Uint8Array {
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(", ");
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${dims}), }`;
  const v1 = 10 + dict.length + 1 <= 0xffff + 10;
  const prefix = v1 ? 10 : 12;
  const total = Math.ceil((prefix + dict.length + 1) / 64) * 64;
  const out = new Uint8Array(total);
  out.set(NPY_MAGIC, 0);
  out[6] = v1 ? 1 : 2;
  out[7] = 0;
  const view = new DataView(out.buffer);
  if (v1) view.setUint16(8, total - prefix, true);
  else view.setUint32(8, total - prefix, true);
  const padded = dict.padEnd(total - prefix - 1, " ") + "\n";
  for (let k = 0; k < padded.length; k++) out[prefix + k] = padded.charCodeAt(k);
  return out;
}
