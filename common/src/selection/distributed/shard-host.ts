/**
 * A shard host: holds the shards the coordinator gives it (per selection session), loads their
 * columns, and answers load / local / restrict / round / release requests. Transport-free: the
 * in-process transport calls handle() directly, the NATS host decodes messages into it. Every
 * failure comes back as an error reply (never a crash), named so the coordinator can decide.
 */
import { ConfigError, InputError } from "../../errors.js";
import { ChunkedKernel } from "../../kernel/chunked-reader.js";
import { checkKernel } from "../csc.js";
import { scaleValuesInPlace } from "../scaling.js";
import type { CscKernel } from "../types.js";
import { ShardNotLoadedError } from "./errors.js";
import { SelectionShard, type HostCoverage } from "./shard.js";
import type { HostReply, HostRequest, KernelSourceSpec, LoadRequest, RoundRequest } from "./types.js";

/** Reads columns [colStart, colEnd) of a kernel source; the arrays must be the caller's to change. */
export type ColumnReader = (source: KernelSourceSpec, colStart: number, colEnd: number) => Promise<{ kernel: CscKernel; owned: boolean }>;

export type ShardHostOptions = {
  /** How sources are read; default: chunked directories from the local file system. */
  readColumns?: ColumnReader;
  /** Sessions held at once (a new one beyond this is refused); default 4. */
  maxSessions?: number;
  /** A session not used for this long is dropped to make room; default 30 minutes. */
  idleMs?: number;
  log?: (line: string) => void;
};

type Session = {
  nRows: number;
  coverage: HostCoverage;
  shards: Map<number, SelectionShard>;
  lastRound: number;
  usedAt: number;
};

export class ShardHost {
  private readonly sessions = new Map<string, Session>();
  private readonly readColumns: ColumnReader;

  constructor(
    readonly id: string,
    private readonly options: ShardHostOptions = {},
  ) {
    this.readColumns = options.readColumns ?? chunkedDirReader;
  }

  /** Sessions and shards held now (for status lines and tests). */
  holdings(): { session: string; shards: number[] }[] {
    return [...this.sessions].map(([session, s]) => ({ session, shards: [...s.shards.keys()].sort((a, b) => a - b) }));
  }

  async handle(request: HostRequest): Promise<HostReply> {
    try {
      switch (request.kind) {
        case "load":
          return await this.load(request);
        case "local":
          return this.local(request.session, request.parts);
        case "restrict": {
          const session = this.session(request.session);
          return {
            kind: "loaded",
            shards: request.shards.map(({ id, allowed }) => {
              const shard = this.shard(session, request.session, id);
              shard.restrict(allowed);
              return { id, maxBound: shard.maxOpenBound(), nnz: shard.kernel.rowIdx.length, evaluations: 0 };
            }),
          };
        }
        case "round":
          return this.round(request);
        case "release":
          this.sessions.delete(request.session);
          return { kind: "done" };
        default:
          throw new ConfigError(`unknown request kind "${(request as { kind: unknown }).kind}"`);
      }
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      this.options.log?.(`shard host ${this.id}: ${request.kind} failed: ${e.message}`);
      return { kind: "error", name: e.name, message: e.message };
    }
  }

  private async load(request: LoadRequest): Promise<HostReply> {
    let session = this.sessions.get(request.session);
    if (!session) {
      this.makeRoom();
      const cur = request.cur ? request.cur.slice() : new Float32Array(request.nRows);
      session = { nRows: request.nRows, coverage: { objective: request.objective, cur, cap: request.cap }, shards: new Map(), lastRound: 0, usedAt: Date.now() };
      this.sessions.set(request.session, session);
    } else {
      if (session.nRows !== request.nRows || session.coverage.objective !== request.objective) {
        throw new ConfigError(`session ${request.session}: a load with another shape or objective`);
      }
      // Coverage only grows: the later of two states of the same run is their elementwise maximum.
      if (request.cur) {
        const cur = session.coverage.cur;
        for (let i = 0; i < cur.length; i++) if (request.cur[i] > cur[i]) cur[i] = request.cur[i];
      }
    }
    const loaded: { id: number; maxBound: number; nnz: number; evaluations: number }[] = [];
    for (const spec of request.shards) {
      const { colStart, colEnd } = spec.range;
      const read = await this.readColumns(request.source, colStart, colEnd);
      const kernel = read.kernel;
      if (kernel.nRows !== request.nRows) throw new InputError({ file: describeSource(request.source) }, `kernel has ${kernel.nRows} rows, the selection ${request.nRows}`);
      if (request.scaling) {
        if (!read.owned) throw new ConfigError("an in-memory kernel must be scaled before it is sharded");
        scaleValuesInPlace(kernel.values, request.scaling.scaling, request.scaling.range);
      }
      // A chunked read checked the structure already, and scaling leaves no negative value.
      if (!(request.source.kind !== "memory" && request.scaling)) checkKernel(kernel, true);
      const shard = new SelectionShard(spec.range, kernel, session.coverage, read.owned);
      shard.markSelected(spec.selected);
      if (spec.allowed) shard.restrict(spec.allowed);
      const { maxBound, evaluations } = shard.refreshBounds();
      session.shards.set(spec.range.id, shard);
      loaded.push({ id: spec.range.id, maxBound, nnz: kernel.rowIdx.length, evaluations });
      this.options.log?.(`shard host ${this.id}: holds shard ${spec.range.id} (columns ${colStart}..${colEnd - 1}, ${kernel.rowIdx.length} entries)`);
    }
    session.usedAt = Date.now();
    return { kind: "loaded", shards: loaded };
  }

  private local(sessionId: string, parts: { shard: number; colStart: number; colEnd: number; quota: number }[]): HostReply {
    const session = this.session(sessionId);
    let evaluations = 0;
    const out = parts.map((p) => {
      const r = this.shard(session, sessionId, p.shard).localGreedy(p.colStart, p.colEnd, p.quota);
      evaluations += r.evaluations;
      return { shard: p.shard, colStart: p.colStart, picks: r.picks };
    });
    return { kind: "local", parts: out, evaluations };
  }

  private round(request: RoundRequest): HostReply {
    const session = this.session(request.session);
    if (request.round < session.lastRound) throw new ConfigError(`session ${request.session}: round ${request.round} is older than round ${session.lastRound}`);
    const shards = request.shards.map((id) => this.shard(session, request.session, id));
    const { cur } = session.coverage;
    const { updateRows: rows, updateValues: values } = request;
    for (let t = 0; t < rows.length; t++) {
      const r = rows[t];
      if (r >= cur.length) throw new ConfigError(`round ${request.round}: update of row ${r}, the kernel has ${cur.length} rows`);
      if (values[t] > cur[r]) cur[r] = values[t];
    }
    for (const shard of session.shards.values()) shard.markSelected(request.picked);
    session.lastRound = request.round;
    session.usedAt = Date.now();
    return { kind: "round", round: request.round, shards: shards.map((s) => s.round(request.tau, request.limit)) };
  }

  private session(id: string): Session {
    const s = this.sessions.get(id);
    if (!s) throw new ShardNotLoadedError(`host ${this.id} holds nothing of session ${id}`);
    return s;
  }

  private shard(session: Session, sessionId: string, id: number): SelectionShard {
    const shard = session.shards.get(id);
    if (!shard) throw new ShardNotLoadedError(`host ${this.id} does not hold shard ${id} of session ${sessionId}`);
    return shard;
  }

  private makeRoom(): void {
    const max = this.options.maxSessions ?? 4;
    const idle = this.options.idleMs ?? 30 * 60_000;
    for (const [id, s] of this.sessions) if (Date.now() - s.usedAt > idle) this.sessions.delete(id);
    if (this.sessions.size >= max) throw new ConfigError(`host ${this.id} already holds ${this.sessions.size} selection sessions`);
  }

}

/** Chunked kernel directories on this machine's file system (the default reader). */
export const chunkedDirReader: ColumnReader = async (source, colStart, colEnd) => {
  if (source.kind !== "chunked-dir") throw new ConfigError(`this host cannot read a "${source.kind}" kernel source`);
  return { kernel: await (await ChunkedKernel.open(source.path)).readColumns(colStart, colEnd), owned: true };
};

function describeSource(source: KernelSourceSpec): string {
  return source.kind === "chunked-dir" ? source.path : source.kind === "blob-store" ? `object store ${source.bucket}:${source.prefix}` : `in-memory kernel ${source.key}`;
}
