/**
 * Wire codec of the messages between the coordinator and shard hosts (msgpack, typed arrays as
 * little-endian bytes), validated like tile messages: anything malformed is a ProtocolError,
 * never a crash, and sizes are bounded so a hostile message cannot exhaust memory. What the
 * codec cannot know (a row beyond the kernel, a column outside the shard) the receiver checks.
 */
import { Packr } from "msgpackr";
import { ProtocolError } from "../../errors.js";
import type { KernelScaling } from "../types.js";
import type { HostReply, HostRequest, KernelSourceSpec, ShardCandidates, ShardScaling } from "./types.js";

const VERSION = 1;
const packr = new Packr({ useRecords: false, moreTypes: false });
export const SESSION_ID = /^[A-Za-z0-9_-]{1,64}$/;
const MAX_ELEMENTS = 1 << 28;
const MAX_SHARDS = 4096;
const MAX_TEXT = 4096;

export function encodeRequest(request: HostRequest): Uint8Array {
  const wire = request.kind === "round" ? { ...request, shards: Uint32Array.from(request.shards) } : request;
  return packr.pack({ v: VERSION, ...toWire(wire) });
}

export function encodeReply(reply: HostReply): Uint8Array {
  return packr.pack({ v: VERSION, ...toWire(reply) });
}

/** local: the message comes from this process, so an in-memory kernel source is meaningful. */
export function decodeRequest(data: Uint8Array, options: { local?: boolean } = {}): HostRequest {
  const m = unpack(data, "request");
  const session = text(m.session, "session");
  if (!SESSION_ID.test(session)) throw new ProtocolError("shard request: bad session id");
  switch (m.kind) {
    case "load": {
      const nRows = int(m.nRows, "nRows", 1, 0xffffffff);
      const objective = oneOf(m.objective, "objective", ["fl", "flmi", "flcg"] as const);
      const cap = m.cap === null ? null : f32(m.cap, "cap");
      const cur = m.cur === null ? null : f32(m.cur, "cur");
      if (cap && cap.length !== nRows) throw new ProtocolError("shard request: cap must hold one value per row");
      if (cur && cur.length !== nRows) throw new ProtocolError("shard request: cur must hold one value per row");
      if ((objective === "flmi") !== (cap !== null)) throw new ProtocolError("shard request: cap comes with FLMI and only with it");
      if (objective === "flcg" && cur === null) throw new ProtocolError("shard request: FLCG needs its starting coverage");
      for (const v of [cap, cur]) if (v) nonNegative(v, "row vector");
      return {
        kind: "load",
        session,
        source: source(m.source, options.local === true),
        scaling: scaling(m.scaling),
        nRows,
        objective,
        cap,
        cur,
        shards: list(m.shards, "shards").map((s, i) => {
          const o = object(s, `shards[${i}]`);
          return { range: range(o.range, `shards[${i}].range`), selected: u32(o.selected, "selected"), allowed: o.allowed === null ? null : u32(o.allowed, "allowed") };
        }),
      };
    }
    case "local":
      return {
        kind: "local",
        session,
        parts: list(m.parts, "parts").map((p, i) => {
          const o = object(p, `parts[${i}]`);
          const colStart = int(o.colStart, "colStart", 0, 0xffffffff);
          const colEnd = int(o.colEnd, "colEnd", colStart + 1, 0xffffffff);
          return { shard: int(o.shard, "shard", 0, MAX_SHARDS), colStart, colEnd, quota: int(o.quota, "quota", 1, 0xffffffff) };
        }),
      };
    case "restrict":
      return {
        kind: "restrict",
        session,
        shards: list(m.shards, "shards").map((s, i) => {
          const o = object(s, `shards[${i}]`);
          return { id: int(o.id, "id", 0, MAX_SHARDS), allowed: u32(o.allowed, "allowed") };
        }),
      };
    case "round": {
      const updateRows = u32(m.updateRows, "updateRows");
      const updateValues = f32(m.updateValues, "updateValues");
      if (updateRows.length !== updateValues.length) throw new ProtocolError("shard request: updateRows and updateValues differ in length");
      nonNegative(updateValues, "updateValues");
      const tau = num(m.tau, "tau");
      if (!(tau > 0)) throw new ProtocolError("shard request: tau must be positive");
      return {
        kind: "round",
        session,
        round: int(m.round, "round", 1, 0xffffffff),
        tau,
        limit: int(m.limit, "limit", 1, 1 << 24),
        shards: Array.from(u32(m.shards, "shards")),
        updateRows,
        updateValues,
        picked: u32(m.picked, "picked"),
      };
    }
    case "release":
      return { kind: "release", session };
    default:
      throw new ProtocolError(`shard request: unknown kind ${describe(m.kind)}`);
  }
}

export function decodeReply(data: Uint8Array): HostReply {
  const m = unpack(data, "reply");
  switch (m.kind) {
    case "loaded":
      return {
        kind: "loaded",
        shards: list(m.shards, "shards").map((s, i) => {
          const o = object(s, `shards[${i}]`);
          return { id: int(o.id, "id", 0, MAX_SHARDS), maxBound: bound(o.maxBound, "maxBound"), nnz: int(o.nnz, "nnz", 0, Number.MAX_SAFE_INTEGER), evaluations: int(o.evaluations, "evaluations", 0, Number.MAX_SAFE_INTEGER) };
        }),
      };
    case "local":
      return {
        kind: "local",
        evaluations: int(m.evaluations, "evaluations", 0, Number.MAX_SAFE_INTEGER),
        parts: list(m.parts, "parts").map((p, i) => {
          const o = object(p, `parts[${i}]`);
          return { shard: int(o.shard, "shard", 0, MAX_SHARDS), colStart: int(o.colStart, "colStart", 0, 0xffffffff), picks: u32(o.picks, "picks") };
        }),
      };
    case "round":
      return { kind: "round", round: int(m.round, "round", 1, 0xffffffff), shards: list(m.shards, "shards").map((s, i) => candidates(s, i)) };
    case "done":
      return { kind: "done" };
    case "error":
      return { kind: "error", name: text(m.name, "name").slice(0, 64), message: text(m.message, "message").slice(0, MAX_TEXT) };
    default:
      throw new ProtocolError(`shard reply: unknown kind ${describe(m.kind)}`);
  }
}

function candidates(value: unknown, i: number): ShardCandidates {
  const o = object(value, `shards[${i}]`);
  const cols = u32(o.cols, "cols");
  const gains = f64(o.gains, "gains");
  const ptr = u32(o.ptr, "ptr");
  const rows = u32(o.rows, "rows");
  const values = f32(o.values, "values");
  if (gains.length !== cols.length || ptr.length !== cols.length + 1) throw new ProtocolError("shard reply: cols, gains and ptr do not match");
  if (ptr[0] !== 0 || ptr[cols.length] !== rows.length || values.length !== rows.length) throw new ProtocolError("shard reply: ptr must span rows and values");
  for (let c = 0; c < cols.length; c++) if (ptr[c + 1] < ptr[c]) throw new ProtocolError("shard reply: ptr decreases");
  for (let c = 0; c < gains.length; c++) if (!(gains[c] >= 0 && gains[c] < Infinity)) throw new ProtocolError("shard reply: gains must be finite and >= 0");
  nonNegative(values, "values");
  if (typeof o.truncated !== "boolean") throw new ProtocolError("shard reply: truncated must be a boolean");
  return {
    id: int(o.id, "id", 0, MAX_SHARDS),
    cols,
    gains,
    ptr,
    rows,
    values,
    truncated: o.truncated,
    maxBound: bound(o.maxBound, "maxBound"),
    evaluations: int(o.evaluations, "evaluations", 0, Number.MAX_SAFE_INTEGER),
  };
}

/** Typed arrays become their bytes; everything else is passed as it is. */
function toWire(value: unknown): Record<string, unknown> {
  return convert(value) as Record<string, unknown>;
}

function convert(value: unknown): unknown {
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (Array.isArray(value)) return value.map(convert);
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = convert(v);
    return out;
  }
  return value;
}

function unpack(data: Uint8Array, what: string): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = packr.unpack(data);
  } catch (err) {
    throw new ProtocolError(`shard ${what} is not msgpack: ${(err as Error).message}`);
  }
  const m = object(raw, what);
  if (m.v !== VERSION) throw new ProtocolError(`shard ${what} version ${describe(m.v)}, expected ${VERSION}`);
  return m;
}

function source(value: unknown, local: boolean): KernelSourceSpec {
  const o = object(value, "source");
  if (local && o.kind === "memory") return { kind: "memory", key: text(o.key, "source.key") };
  if (o.kind === "blob-store") {
    const bucket = text(o.bucket, "source.bucket");
    const prefix = text(o.prefix, "source.prefix");
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(bucket) || !/^[A-Za-z0-9_.\/-]{1,256}$/.test(prefix) || prefix.includes("..")) throw new ProtocolError("shard request: bad blob-store source");
    return { kind: "blob-store", bucket, prefix };
  }
  if (o.kind !== "chunked-dir") throw new ProtocolError(`shard request: source kind ${describe(o.kind)} cannot travel (only chunked-dir and blob-store)`);
  const path = text(o.path, "source.path");
  if (path.length === 0 || path.includes("\0")) throw new ProtocolError("shard request: bad source path");
  return { kind: "chunked-dir", path };
}

function scaling(value: unknown): ShardScaling {
  if (value === null) return null;
  const o = object(value, "scaling");
  const s = oneOf(o.scaling, "scaling.scaling", ["min-max", "clip-at-zero"] as const) as KernelScaling;
  const r = object(o.range, "scaling.range");
  const min = num(r.min, "range.min");
  const max = num(r.max, "range.max");
  if (!(min <= max)) throw new ProtocolError("shard request: range.min > range.max");
  return { scaling: s, range: { min, max } };
}

function range(value: unknown, field: string): { id: number; colStart: number; colEnd: number } {
  const o = object(value, field);
  const colStart = int(o.colStart, `${field}.colStart`, 0, 0xffffffff);
  return { id: int(o.id, `${field}.id`, 0, MAX_SHARDS), colStart, colEnd: int(o.colEnd, `${field}.colEnd`, colStart + 1, 0xffffffff) };
}

function object(value: unknown, field: string): Record<string, unknown> {
  if (!value || typeof value !== "object" || Array.isArray(value) || ArrayBuffer.isView(value)) throw new ProtocolError(`shard message: ${field} must be a map`);
  return value as Record<string, unknown>;
}

function list(value: unknown, field: string): unknown[] {
  if (!Array.isArray(value) || value.length > MAX_SHARDS) throw new ProtocolError(`shard message: ${field} must be a list of at most ${MAX_SHARDS}`);
  return value;
}

function text(value: unknown, field: string): string {
  if (typeof value !== "string" || value.length > MAX_TEXT) throw new ProtocolError(`shard message: ${field} must be a string`);
  return value;
}

function num(value: unknown, field: string): number {
  if (typeof value !== "number" || !Number.isFinite(value)) throw new ProtocolError(`shard message: ${field} must be a finite number`);
  return value;
}

function bound(value: unknown, field: string): number {
  const v = num(value, field);
  if (v < 0) throw new ProtocolError(`shard message: ${field} must be >= 0`);
  return v;
}

function int(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) throw new ProtocolError(`shard message: ${field} must be an integer in [${min}, ${max}]`);
  return value;
}

function oneOf<T extends string>(value: unknown, field: string, allowed: readonly T[]): T {
  if (typeof value !== "string" || !allowed.includes(value as T)) throw new ProtocolError(`shard message: ${field} must be one of ${allowed.join(", ")}`);
  return value as T;
}

function bytes(value: unknown, field: string, width: number): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new ProtocolError(`shard message: ${field} must be binary`);
  if (value.byteLength % width !== 0 || value.byteLength / width > MAX_ELEMENTS) throw new ProtocolError(`shard message: ${field} has a bad length`);
  return value;
}

/** Copies into an aligned buffer (msgpack bin fields can start at any byte offset). */
function u32(value: unknown, field: string): Uint32Array {
  const b = bytes(value, field, 4);
  const out = new Uint32Array(b.byteLength / 4);
  new Uint8Array(out.buffer).set(b);
  return out;
}

function f32(value: unknown, field: string): Float32Array {
  const b = bytes(value, field, 4);
  const out = new Float32Array(b.byteLength / 4);
  new Uint8Array(out.buffer).set(b);
  return out;
}

function f64(value: unknown, field: string): Float64Array {
  const b = bytes(value, field, 8);
  const out = new Float64Array(b.byteLength / 8);
  new Uint8Array(out.buffer).set(b);
  return out;
}

function nonNegative(values: Float32Array, field: string): void {
  for (let p = 0; p < values.length; p++) if (!(values[p] >= 0 && values[p] < Infinity)) throw new ProtocolError(`shard message: ${field} must be finite and >= 0`);
}

/** A value from an untrusted message, for an error text (never calls its own methods). */
function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.slice(0, 40));
  if (typeof value === "number" || typeof value === "boolean" || value === null || value === undefined) return String(value);
  return typeof value;
}
