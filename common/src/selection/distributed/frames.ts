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
    h.set(PART_HEADER, `${i}/${count}/${payload.byteLength}/${frameBytes}`);
    if (i === 0 && signature !== null) h.set(SIG_HEADER, signature);
    frames.push({ headers: h, data: payload.subarray(i * frameBytes, Math.min(payload.byteLength, (i + 1) * frameBytes)) });
  }
  return frames;
}

export type Assembled = { msgId: string; payload: Uint8Array; signature: string | null; reply: string | undefined };

/** A message being assembled: frames are copied straight to their place in one buffer. */
type Partial = { count: number; total: number; frameBytes: number; buffer: Uint8Array; got: Uint8Array; received: number; bytes: number; signature: string | null; reply: string | undefined; touched: number };

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
    const m = /^(\d{1,9})\/(\d{1,9})\/(\d{1,15})\/(\d{1,10})$/.exec(msg.headers?.get(PART_HEADER) ?? "");
    if (!m) throw new ProtocolError(`selection frame ${msgId}: bad ${PART_HEADER} header`);
    const index = Number(m[1]);
    const count = Number(m[2]);
    const total = Number(m[3]);
    const frameBytes = Number(m[4]);
    if (count < 1 || index >= count || total > this.maxBytes || frameBytes < 1 || count !== Math.max(1, Math.ceil(total / frameBytes))) {
      throw new ProtocolError(`selection frame ${msgId}: part ${index}/${count} of ${total} bytes is out of bounds`);
    }
    const data = msg.data;
    const at = index * frameBytes;
    if (data.byteLength !== Math.min(frameBytes, total - at)) throw new ProtocolError(`selection frame ${msgId}: part ${index} has ${data.byteLength} bytes, expected ${Math.min(frameBytes, total - at)}`);
    const now = Date.now();
    for (const [id, p] of this.partial) if (now - p.touched > this.maxAgeMs) this.partial.delete(id);
    let p = this.partial.get(msgId);
    if (!p) {
      if (this.partial.size >= this.maxInFlight) {
        const oldest = [...this.partial].sort((a, b) => a[1].touched - b[1].touched)[0][0];
        this.partial.delete(oldest);
      }
      p = { count, total, frameBytes, buffer: new Uint8Array(total), got: new Uint8Array(count), received: 0, bytes: 0, signature: null, reply: msg.reply, touched: now };
      this.partial.set(msgId, p);
    }
    if (p.count !== count || p.total !== total || p.frameBytes !== frameBytes) {
      this.partial.delete(msgId);
      throw new ProtocolError(`selection frame ${msgId}: frames disagree on the message's size`);
    }
    p.touched = now;
    if (p.got[index] === 1) return null;
    // The frame's buffer belongs to the connection's read loop: copy it to its place.
    p.buffer.set(data, at);
    p.got[index] = 1;
    p.received++;
    p.bytes += data.byteLength;
    if (index === 0) p.signature = msg.headers?.get(SIG_HEADER) || null;
    if (msg.reply) p.reply = msg.reply;
    if (p.received < count) return null;
    this.partial.delete(msgId);
    if (p.bytes !== total) throw new ProtocolError(`selection frame ${msgId}: ${p.bytes} bytes, ${total} announced`);
    return { msgId, payload: p.buffer, signature: p.signature, reply: p.reply };
  }

  /** Forgets a message's frames (a retry will send them again). */
  drop(msgId: string): void {
    this.partial.delete(msgId);
  }
}
