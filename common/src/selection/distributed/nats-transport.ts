/**
 * The coordinator's ShardTransport over NATS core request/reply (nats-server 2.9 and later).
 *
 * Hosts are known from their heartbeats. A request is framed onto the host's subject with this
 * transport's inbox as reply; while it waits, the transport pings the host: "no responders" (the
 * host's subscriptions are gone: its process died) fails the request with HostLostError at once;
 * a ping that times out means the host is busy computing; a host that knows nothing of the message
 * (frames lost) or that answered already (reply frames lost) is sent the request again under the
 * same id, which it answers from its cache. Replies are checked for their signature, then decoded
 * and validated; one that fails is a ProtocolError (the selection moves the host's shards).
 */
import { createInbox, RequestError, TimeoutError, type Msg, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { randomUUID } from "node:crypto";
import { AbortedError } from "../../errors.js";
import { UNSIGNED, type MessageAuthenticator } from "./auth.js";
import { HostLostError } from "./errors.js";
import { FrameAssembler, frameMessage } from "./frames.js";
import { decodeReply, encodeRequest } from "./messages.js";
import { checkName, decodeAnnouncement, decodePong, encodePing, frameBytesFor, subjects } from "./nats-subjects.js";
import type { ShardTransport } from "./transport.js";
import type { HostReply, HostRequest } from "./types.js";

export type NatsTransportOptions = {
  pool: string;
  auth?: MessageAuthenticator;
  /** hosts() waits until this many hosts are alive, or waitMs passed (default 1 host, 30 s). */
  minHosts?: number;
  waitMs?: number;
  /** A host not heard from for this long is not offered (default 5 s). */
  staleMs?: number;
  /** How often a waiting request pings its host (default 500 ms) and how long a ping may take (default 2 s). */
  pingMs?: number;
  pingTimeoutMs?: number;
  /** A request with no answer for this long fails its host (default 30 minutes). */
  requestTimeoutMs?: number;
  maxMessageBytes?: number;
  log?: (line: string) => void;
};

type Pending = { host: string; resolve(reply: HostReply): void; reject(err: unknown): void };

export class NatsShardTransport implements ShardTransport {
  private readonly s: ReturnType<typeof subjects>;
  private readonly auth: MessageAuthenticator;
  private readonly seen = new Map<string, { incarnation: string; at: number }>();
  private readonly lost = new Map<string, string>();
  private readonly pending = new Map<string, Pending>();
  private readonly assembler: FrameAssembler;
  private readonly inbox = createInbox();
  private subs: Subscription[] = [];
  private sent = 0;
  private received = 0;
  private heard: (() => void)[] = [];

  private constructor(
    private readonly nc: NatsConnection,
    private readonly options: NatsTransportOptions,
  ) {
    this.s = subjects(checkName(options.pool, "pool"));
    this.auth = options.auth ?? UNSIGNED;
    this.assembler = new FrameAssembler(options.maxMessageBytes ?? 1 << 30, 64);
  }

  static async start(nc: NatsConnection, options: NatsTransportOptions): Promise<NatsShardTransport> {
    const t = new NatsShardTransport(nc, options);
    t.subs = [
      nc.subscribe(t.s.hosts, { callback: (err, msg) => void (err ? undefined : t.onAnnouncement(msg)) }),
      nc.subscribe(t.inbox, { callback: (err, msg) => void (err ? undefined : t.onReplyFrame(msg)) }),
    ];
    await nc.flush();
    nc.publish(t.s.rollcall, new Uint8Array(0));
    return t;
  }

  async hosts(signal?: AbortSignal): Promise<string[]> {
    const want = this.options.minHosts ?? 1;
    const deadline = Date.now() + (this.options.waitMs ?? 30_000);
    for (;;) {
      const alive = this.alive();
      if (alive.length >= want || Date.now() >= deadline) return alive;
      if (signal?.aborted) throw new AbortedError();
      this.nc.publish(this.s.rollcall, new Uint8Array(0));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 250);
        this.heard.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  async request(host: string, request: HostRequest, signal?: AbortSignal): Promise<HostReply> {
    if (this.lost.has(host) && this.lost.get(host) === this.seen.get(host)?.incarnation) throw new HostLostError(host, `host ${host} is gone`);
    const msgId = randomUUID().replaceAll("-", "");
    const payload = encodeRequest(request);
    const signature = this.auth.sign("request", msgId, payload);
    const send = () => {
      for (const f of frameMessage(payload, msgId, frameBytesFor(this.nc.info?.max_payload), signature)) {
        this.nc.publish(this.s.host(host), f.data, { headers: f.headers, reply: this.inbox });
        this.sent += f.data.byteLength;
      }
    };
    const answer = new Promise<HostReply>((resolve, reject) => this.pending.set(msgId, { host, resolve, reject }));
    let settled = false;
    answer.then(() => (settled = true), () => (settled = true));
    send();
    void this.watch(host, msgId, send, signal, () => settled);
    try {
      return await answer;
    } finally {
      this.pending.delete(msgId);
      this.assembler.drop(msgId);
    }
  }

  traffic(): { sent: number; received: number } {
    return { sent: this.sent, received: this.received };
  }

  async close(): Promise<void> {
    for (const sub of this.subs) sub.unsubscribe();
    for (const p of this.pending.values()) p.reject(new AbortedError("transport closed"));
    this.pending.clear();
  }

  private alive(): string[] {
    const now = Date.now();
    const stale = this.options.staleMs ?? 5000;
    return [...this.seen]
      .filter(([host, s]) => now - s.at <= stale && this.lost.get(host) !== s.incarnation)
      .map(([host]) => host)
      .sort();
  }

  private onAnnouncement(msg: Msg): void {
    try {
      const a = decodeAnnouncement(msg.data);
      this.seen.set(a.host, { incarnation: a.incarnation, at: Date.now() });
      const waiting = this.heard;
      this.heard = [];
      for (const w of waiting) w();
    } catch (err) {
      this.options.log?.(`ignored a host announcement: ${(err as Error).message}`);
    }
  }

  private onReplyFrame(msg: Msg): void {
    let whole;
    try {
      whole = this.assembler.add(msg);
    } catch (err) {
      this.options.log?.(`ignored a reply frame: ${(err as Error).message}`);
      return;
    }
    if (!whole) return;
    const p = this.pending.get(whole.msgId);
    if (!p) return;
    if (!this.auth.verify("reply", whole.msgId, whole.payload, whole.signature)) {
      this.options.log?.(`dropped a reply from ${p.host}: bad or missing signature`);
      return;
    }
    this.received += whole.payload.byteLength;
    try {
      p.resolve(decodeReply(whole.payload));
    } catch (err) {
      p.reject(err);
    }
  }

  /** Pings the host while its answer is awaited; decides lost, busy, or ask again. */
  private async watch(host: string, msgId: string, send: () => void, signal: AbortSignal | undefined, settled: () => boolean): Promise<void> {
    const pingMs = this.options.pingMs ?? 500;
    const deadline = Date.now() + (this.options.requestTimeoutMs ?? 30 * 60_000);
    let unknown = 0;
    let done = 0;
    let lastParts = -1;
    let stuck = 0;
    let resends = 0;
    const fail = (err: unknown) => this.pending.get(msgId)?.reject(err);
    while (!settled()) {
      await new Promise((r) => setTimeout(r, pingMs));
      if (settled()) return;
      if (signal?.aborted) return fail(new AbortedError("selection cancelled"));
      if (Date.now() > deadline) return this.markLost(host, msgId, `no answer from host ${host} within the request timeout`);
      let state: string;
      let parts = 0;
      try {
        const pong = decodePong((await this.nc.request(this.s.ping(host), encodePing(msgId), { timeout: this.options.pingTimeoutMs ?? 2000 })).data);
        state = pong.state;
        parts = pong.parts;
      } catch (err) {
        if (err instanceof RequestError && err.isNoResponders()) return this.markLost(host, msgId, `host ${host} has no subscription any more (its process is gone)`);
        if (err instanceof TimeoutError) continue; // busy computing: it answers pings between requests
        continue;
      }
      if (settled()) return;
      const again = (why: string) => {
        if (++resends > 20) return this.markLost(host, msgId, `host ${host} never got request ${msgId} (${why})`);
        this.options.log?.(`asking host ${host} again (${why})`);
        send();
      };
      if (state === "unknown") {
        unknown++;
        if (unknown >= 2) {
          unknown = 0;
          again("it knows nothing of the request");
        }
      } else if (state === "done") {
        done++;
        if (done >= 2) {
          done = 0;
          again("its answer was lost");
        }
      } else if (state === "assembling") {
        stuck = parts === lastParts ? stuck + 1 : 0;
        lastParts = parts;
        if (stuck >= 4) {
          stuck = 0;
          again("frames were lost");
        }
      } else {
        unknown = 0;
        done = 0;
      }
    }
  }

  private markLost(host: string, msgId: string, why: string): void {
    const incarnation = this.seen.get(host)?.incarnation;
    if (incarnation) this.lost.set(host, incarnation);
    this.options.log?.(why);
    this.pending.get(msgId)?.reject(new HostLostError(host, why));
  }
}
