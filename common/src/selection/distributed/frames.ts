/**
 * Logical messages larger than a NATS payload travel as frames: each frame carries the message
 * id, its index, the frame count and the total size in headers; the first frame carries the
 * message's signature. The assembler is bounded (bytes per message, messages in flight, age) and
 * refuses inconsistent frames with a ProtocolError, so garbage cannot grow memory or crash it.
 */
import { headers as natsHeaders, type Msg, type MsgHdrs } from "@nats-io/transport-node";
import { ProtocolError } from "../../errors.js";

export const MSG_HEADER = "Delift-Msg";
export const PART_HEADER = "Delift-Part";
export const SIG_HEADER = "Delift-Sig";
const MSG_ID = /^[A-Za-z0-9_-]{1,64}$/;

export type Frame = { headers: MsgHdrs; data: Uint8Array };

export function frameMessage(payload: Uint8Array, msgId: string, frameBytes: number, signature: string | null): Frame[] {
  const count = Math.max(1, Math.ceil(payload.byteLength / frameBytes));
  const frames: Frame[] = [];
  for (let i = 0; i < count; i++) {
    const h = natsHeaders();
    h.set(MSG_HEADER, msgId);
    h.set(PART_HEADER, `${i}/${count}/${payload.byteLength}`);
    if (i === 0 && signature !== null) h.set(SIG_HEADER, signature);
    frames.push({ headers: h, data: payload.subarray(i * frameBytes, Math.min(payload.byteLength, (i + 1) * frameBytes)) });
  }
  return frames;
}

export type Assembled = { msgId: string; payload: Uint8Array; signature: string | null; reply: string | undefined };

type Partial = { count: number; total: number; parts: (Uint8Array | undefined)[]; received: number; bytes: number; signature: string | null; reply: string | undefined; touched: number };

export class FrameAssembler {
  private readonly partial = new Map<string, Partial>();

  constructor(
    private readonly maxBytes: number,
    private readonly maxInFlight = 8,
    private readonly maxAgeMs = 120_000,
  ) {}

  /** Frames received so far of one message (0 when unknown). */
  received(msgId: string): number {
    return this.partial.get(msgId)?.received ?? 0;
  }

  /** Adds a frame; returns the whole message once its last frame is in, else null. */
  add(msg: Msg): Assembled | null {
    const msgId = msg.headers?.get(MSG_HEADER) ?? "";
    if (!MSG_ID.test(msgId)) throw new ProtocolError("selection frame without a valid message id");
    const m = /^(\d{1,9})\/(\d{1,9})\/(\d{1,15})$/.exec(msg.headers?.get(PART_HEADER) ?? "");
    if (!m) throw new ProtocolError(`selection frame ${msgId}: bad ${PART_HEADER} header`);
    const index = Number(m[1]);
    const count = Number(m[2]);
    const total = Number(m[3]);
    if (count < 1 || index >= count || total > this.maxBytes || count > total + 1) throw new ProtocolError(`selection frame ${msgId}: part ${index}/${count} of ${total} bytes is out of bounds`);
    const data = msg.data;
    const now = Date.now();
    for (const [id, p] of this.partial) if (now - p.touched > this.maxAgeMs) this.partial.delete(id);
    let p = this.partial.get(msgId);
    if (!p) {
      if (this.partial.size >= this.maxInFlight) {
        const oldest = [...this.partial].sort((a, b) => a[1].touched - b[1].touched)[0][0];
        this.partial.delete(oldest);
      }
      p = { count, total, parts: new Array(count), received: 0, bytes: 0, signature: null, reply: msg.reply, touched: now };
      this.partial.set(msgId, p);
    }
    if (p.count !== count || p.total !== total) {
      this.partial.delete(msgId);
      throw new ProtocolError(`selection frame ${msgId}: frames disagree on the message's size`);
    }
    p.touched = now;
    if (p.parts[index] !== undefined) return null;
    if (p.bytes + data.byteLength > total) {
      this.partial.delete(msgId);
      throw new ProtocolError(`selection frame ${msgId}: more bytes than announced`);
    }
    // The frame's buffer belongs to the connection's read loop: keep a copy.
    p.parts[index] = data.slice();
    p.received++;
    p.bytes += data.byteLength;
    if (index === 0) p.signature = msg.headers?.get(SIG_HEADER) || null;
    if (msg.reply) p.reply = msg.reply;
    if (p.received < count) return null;
    this.partial.delete(msgId);
    if (p.bytes !== total) throw new ProtocolError(`selection frame ${msgId}: ${p.bytes} bytes, ${total} announced`);
    const payload = count === 1 ? p.parts[0]! : concat(p.parts as Uint8Array[], total);
    return { msgId, payload, signature: p.signature, reply: p.reply };
  }

  /** Forgets a message's frames (a retry will send them again). */
  drop(msgId: string): void {
    this.partial.delete(msgId);
  }
}

function concat(parts: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
