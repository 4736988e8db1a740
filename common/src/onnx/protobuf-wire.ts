import protobuf from "protobufjs/minimal.js";

/**
 * Just enough of the protobuf wire format to edit an ONNX model without decoding it: a message
 * is a list of fields, and a field we do not touch is copied as the exact bytes it came in.
 * Weights (often gigabytes) are never decoded.
 */

export const WIRE_VARINT = 0;
export const WIRE_I64 = 1;
export const WIRE_LEN = 2;
export const WIRE_I32 = 5;

export type WireField = {
  field: number;
  wireType: number;
  /** The whole field, tag included: what to copy when the field is kept. */
  raw: Uint8Array;
  /** For LEN fields, the payload (a sub-message, string or packed array). */
  payload: Uint8Array;
  /** For VARINT fields, the value (as a number; ONNX varints we read are small). */
  varint: number;
};

export function scanFields(bytes: Uint8Array): WireField[] {
  const fields: WireField[] = [];
  let at = 0;
  while (at < bytes.length) {
    const start = at;
    const [tag, afterTag] = readVarint(bytes, at);
    at = afterTag;
    const field = Math.floor(tag / 8);
    const wireType = tag % 8;
    let payload = bytes.subarray(at, at);
    let varint = 0;
    switch (wireType) {
      case WIRE_VARINT: {
        const [v, next] = readVarint(bytes, at);
        varint = v;
        at = next;
        break;
      }
      case WIRE_I64:
        at += 8;
        break;
      case WIRE_I32:
        at += 4;
        break;
      case WIRE_LEN: {
        const [len, next] = readVarint(bytes, at);
        payload = bytes.subarray(next, next + len);
        at = next + len;
        break;
      }
      default:
        throw new Error(`unsupported protobuf wire type ${wireType} at byte ${start}`);
    }
    if (at > bytes.length || field === 0) throw new Error(`truncated or corrupt protobuf at byte ${start}`);
    fields.push({ field, wireType, raw: bytes.subarray(start, at), payload, varint });
  }
  return fields;
}

function readVarint(bytes: Uint8Array, at: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (let k = 0; k < 10; k++) {
    if (at >= bytes.length) throw new Error("truncated varint");
    const b = bytes[at++];
    value += (b & 0x7f) * scale;
    if (b < 0x80) return [value, at];
    scale *= 128;
  }
  throw new Error("varint longer than 10 bytes");
}

export function fieldString(fields: WireField[], field: number): string | undefined {
  const f = fields.find((x) => x.field === field && x.wireType === WIRE_LEN);
  return f ? Buffer.from(f.payload).toString("utf8") : undefined;
}

export function fieldVarint(fields: WireField[], field: number): number | undefined {
  return fields.find((x) => x.field === field && x.wireType === WIRE_VARINT)?.varint;
}

export function fieldMessage(fields: WireField[], field: number): Uint8Array | undefined {
  return fields.find((x) => x.field === field && x.wireType === WIRE_LEN)?.payload;
}

/** Encodes a LEN field (tag + length + payload) around already-encoded bytes. */
export function lenField(field: number, payload: Uint8Array): Uint8Array {
  const head = protobuf.Writer.create().uint32(field * 8 + WIRE_LEN).uint32(payload.length).finish();
  return concatBytes([head, payload]);
}

export type MessageBuilder = {
  string(field: number, value: string): MessageBuilder;
  int(field: number, value: number): MessageBuilder;
  bytes(field: number, value: Uint8Array): MessageBuilder;
  message(field: number, encoded: Uint8Array): MessageBuilder;
  finish(): Uint8Array;
};

export function buildMessage(): MessageBuilder {
  const w = protobuf.Writer.create();
  const builder: MessageBuilder = {
    string(field, value) {
      w.uint32(field * 8 + WIRE_LEN).string(value);
      return builder;
    },
    int(field, value) {
      w.uint32(field * 8 + WIRE_VARINT).int64(value);
      return builder;
    },
    bytes(field, value) {
      w.uint32(field * 8 + WIRE_LEN).bytes(value);
      return builder;
    },
    message(field, encoded) {
      w.uint32(field * 8 + WIRE_LEN).bytes(encoded);
      return builder;
    },
    finish: () => w.finish(),
  };
  return builder;
}

export function concatBytes(parts: Uint8Array[]): Uint8Array {
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
