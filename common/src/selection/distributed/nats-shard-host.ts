/**
 * A ShardHost served over NATS: announces itself on the pool's heartbeat subject, assembles framed
 * requests on its own subject, answers pings, and sends framed replies. One request is worked at
 * a time; the last replies are kept, so a request asked again (its reply was lost) is answered
 * from the cache instead of being worked twice. Garbage, unsigned or forged frames are logged and
 * dropped; nothing a message holds can crash the process.
 */
import { randomUUID } from "node:crypto";
import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";
import { ProtocolError } from "../../errors.js";
import { UNSIGNED, type MessageAuthenticator } from "./auth.js";
import { FrameAssembler, frameMessage } from "./frames.js";
import { decodeRequest, encodeReply } from "./messages.js";
import { checkName, decodePing, encodeAnnouncement, encodePong, frameBytesFor, subjects } from "./nats-subjects.js";
import type { ShardHost } from "./shard-host.js";
import type { HostRequest } from "./types.js";

export type NatsShardHostOptions = {
  pool: string;
  host: ShardHost;
  auth?: MessageAuthenticator;
  heartbeatMs?: number;
  /** Largest request accepted (default 1 GiB: a 10^8-row coverage vector and then some). */
  maxMessageBytes?: number;
  log?: (line: string) => void;
  /** Test hook: on this round the host announces it and never answers (a host that dies mid-round). */
  holdAtRound?: number;
};

export type ServedShardHost = { close(): Promise<void> };

const CACHED_REPLIES = 2;

export async function serveShardHost(nc: NatsConnection, options: NatsShardHostOptions): Promise<ServedShardHost> {
  const pool = checkName(options.pool, "pool");
  const hostId = checkName(options.host.id, "host id");
  const s = subjects(pool);
  const auth = options.auth ?? UNSIGNED;
  const log = options.log ?? (() => undefined);
  const incarnation = randomUUID().replaceAll("-", "").slice(0, 16);
  const assembler = new FrameAssembler(options.maxMessageBytes ?? 1 << 30);
  const cache = new Map<string, Uint8Array>();
  let working: string | null = null;
  const queued = new Set<string>();
  let chain: Promise<void> = Promise.resolve();
  let complaints = 0;
  const complain = (line: string) => {
    // One line per problem, but a flood of garbage does not flood the log.
    if (complaints++ < 20 || complaints % 1000 === 0) log(`shard host ${hostId}: ${line}`);
  };
  const frameBytes = () => frameBytesFor(nc.info?.max_payload);

  const sendReply = (msgId: string, reply: string, payload: Uint8Array) => {
    for (const f of frameMessage(payload, msgId, frameBytes(), auth.sign("reply", msgId, payload))) nc.publish(reply, f.data, { headers: f.headers });
  };

  const work = async (msgId: string, reply: string, payload: Uint8Array) => {
    let request: HostRequest;
    try {
      request = decodeRequest(payload);
    } catch (err) {
      complain(`refused request ${msgId}: ${(err as Error).message}`);
      sendReply(msgId, reply, encodeReply({ kind: "error", name: "ProtocolError", message: (err as Error).message }));
      return;
    }
    if (request.kind === "round" && request.round === options.holdAtRound) {
      process.stderr.write(`delift: holding at selection round ${request.round}\n`);
      await new Promise<never>(() => undefined);
    }
    const answer = encodeReply(await options.host.handle(request));
    cache.set(msgId, answer);
    while (cache.size > CACHED_REPLIES) cache.delete(cache.keys().next().value!);
    sendReply(msgId, reply, answer);
  };

  const onFrame = (msg: Msg) => {
    let whole;
    try {
      whole = assembler.add(msg);
    } catch (err) {
      complain((err as Error).message);
      return;
    }
    if (!whole) return;
    const { msgId, payload, signature, reply } = whole;
    if (!reply) return complain(`request ${msgId} has no reply subject`);
    if (!auth.verify("request", msgId, payload, signature)) return complain(`dropped request ${msgId}: bad or missing signature`);
    const cached = cache.get(msgId);
    if (cached) return sendReply(msgId, reply, cached);
    if (working === msgId || queued.has(msgId)) return;
    queued.add(msgId);
    chain = chain.then(async () => {
      queued.delete(msgId);
      working = msgId;
      try {
        await work(msgId, reply, payload);
      } catch (err) {
        complain(`request ${msgId} failed: ${(err as Error).message}`);
      } finally {
        working = null;
      }
    });
  };

  const onPing = (msg: Msg) => {
    try {
      const msgId = decodePing(msg.data);
      const state = cache.has(msgId) ? "done" : working === msgId || queued.has(msgId) ? "working" : assembler.received(msgId) > 0 ? "assembling" : "unknown";
      msg.respond(encodePong(state, assembler.received(msgId)));
    } catch (err) {
      if (err instanceof ProtocolError) complain(err.message);
    }
  };

  const announce = () => {
    try {
      nc.publish(s.hosts, encodeAnnouncement({ host: hostId, incarnation, pid: process.pid }));
    } catch {
      // The connection is reconnecting; the next heartbeat goes out when it is back.
    }
  };

  const subs: Subscription[] = [
    nc.subscribe(s.host(hostId), { callback: (err, msg) => (err ? complain(err.message) : onFrame(msg)) }),
    nc.subscribe(s.ping(hostId), { callback: (err, msg) => (err ? complain(err.message) : onPing(msg)) }),
    nc.subscribe(s.rollcall, { callback: () => announce() }),
  ];
  await nc.flush();
  announce();
  const timer = setInterval(announce, options.heartbeatMs ?? 1000);
  timer.unref();
  log(`shard host ${hostId} serving pool ${pool}`);
  return {
    async close() {
      clearInterval(timer);
      for (const sub of subs) sub.unsubscribe();
      await chain.catch(() => undefined);
    },
  };
}
