/**
 * Subjects of distributed selection on NATS (core request/reply, no JetStream: the coordinator
 * holds every decision, so a lost message is simply asked again).
 *   delift.select.POOL.hosts             hosts announce themselves (heartbeat)
 *   delift.select.POOL.rollcall          the coordinator asks every host to announce now
 *   delift.select.POOL.host.ID           requests to one host (framed)
 *   delift.select.POOL.host.ID.ping      is the host alive, and what does it know of a message
 */
import { Packr } from "msgpackr";
import { ConfigError, ProtocolError } from "../../errors.js";

export const NAME = /^[A-Za-z0-9_-]{1,64}$/;

export function checkName(value: string, what: string): string {
  if (!NAME.test(value)) throw new ConfigError(`${what} "${value}" must be 1-64 letters, digits, "_" or "-"`);
  return value;
}

export const subjects = (pool: string) => ({
  hosts: `delift.select.${pool}.hosts`,
  rollcall: `delift.select.${pool}.rollcall`,
  host: (id: string) => `delift.select.${pool}.host.${id}`,
  ping: (id: string) => `delift.select.${pool}.host.${id}.ping`,
});

const packr = new Packr({ useRecords: false, moreTypes: false });

export type Announcement = { host: string; incarnation: string; pid: number };

export function encodeAnnouncement(a: Announcement): Uint8Array {
  return packr.pack({ v: 1, ...a });
}

export function decodeAnnouncement(data: Uint8Array): Announcement {
  const m = unpackMap(data, "host announcement");
  if (typeof m.host !== "string" || !NAME.test(m.host)) throw new ProtocolError("host announcement: bad host id");
  if (typeof m.incarnation !== "string" || !NAME.test(m.incarnation)) throw new ProtocolError("host announcement: bad incarnation");
  if (typeof m.pid !== "number" || !Number.isInteger(m.pid)) throw new ProtocolError("host announcement: bad pid");
  return { host: m.host, incarnation: m.incarnation, pid: m.pid };
}

/** What a host knows of one message: still arriving, being worked on, answered, or nothing. */
export type PingState = "assembling" | "working" | "done" | "unknown";

export function encodePing(msgId: string): Uint8Array {
  return packr.pack({ v: 1, msg: msgId });
}

export function decodePing(data: Uint8Array): string {
  const m = unpackMap(data, "ping");
  if (typeof m.msg !== "string" || !NAME.test(m.msg)) throw new ProtocolError("ping: bad message id");
  return m.msg;
}

export function encodePong(state: PingState, parts: number): Uint8Array {
  return packr.pack({ v: 1, state, parts });
}

export function decodePong(data: Uint8Array): { state: PingState; parts: number } {
  const m = unpackMap(data, "pong");
  if (m.state !== "assembling" && m.state !== "working" && m.state !== "done" && m.state !== "unknown") throw new ProtocolError("pong: bad state");
  if (typeof m.parts !== "number" || !Number.isInteger(m.parts) || m.parts < 0) throw new ProtocolError("pong: bad parts");
  return { state: m.state, parts: m.parts };
}

function unpackMap(data: Uint8Array, what: string): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = packr.unpack(data);
  } catch (err) {
    throw new ProtocolError(`${what} is not msgpack: ${(err as Error).message}`);
  }
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) throw new ProtocolError(`${what} is not a map`);
  const m = raw as Record<string, unknown>;
  if (m.v !== 1) throw new ProtocolError(`${what}: unknown version`);
  return m;
}

/** Frame size for a connection: below the server's max_payload, with room for headers. */
export function frameBytesFor(maxPayload: number | undefined): number {
  const limit = maxPayload && maxPayload > 0 ? maxPayload : 1024 * 1024;
  return Math.max(16 * 1024, Math.min(4 * 1024 * 1024, limit - 8 * 1024));
}
