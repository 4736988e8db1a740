import { createReadStream, createWriteStream } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { headers as natsHeaders } from "@nats-io/transport-node";
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type Consumer,
  type JetStreamClient,
  type JetStreamManager,
} from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { Objm, type ObjectStore } from "@nats-io/obj";
import { ConfigError } from "../errors.js";
import { KvRevisionError } from "./errors.js";
import type { BlobStore, KeyValueBucket, QueueObservation, QueueSettings, StoredTileMessage, TileDelivery, TileQueue, TileSource } from "./types.js";

/** The durable pull consumer every worker shares, on each job's tile stream. */
export const TILE_CONSUMER = "workers";
const CONSUMER = TILE_CONSUMER;
const TILE_HEADER = "Delift-Tile";
const MAC_HEADER = "Delift-Mac";
/** Reconcile lists the tile ids of a job's stream up to this many messages. */
const MAX_LISTED = 4096;

export function tileStreamName(jobId: string): string {
  return `DELIFT_TILES_${jobId}`;
}

function tileSubject(jobId: string): string {
  return `delift.tiles.${jobId}`;
}

/** JetStream work queue: one stream per job, one durable pull consumer shared by all workers. */
export class NatsTileQueue implements TileQueue {
  private sub: Subscription | null = null;
  /**
   * Part of every message id: JetStream drops a message whose id it saw in the last two minutes,
   * which guards against double publishing, but a restarted coordinator republishes (after a purge)
   * tiles it had published before, and those must not be dropped.
   */
  private readonly session = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  private published = 0;
  private readonly handlers: ((message: StoredTileMessage) => void)[] = [];

  private constructor(private readonly nc: NatsConnection, private readonly js: JetStreamClient, private readonly jsm: JetStreamManager, private readonly replicas: number) {}

  /** `replicas`: copies of each job's stream and consumer on a JetStream cluster (--nats-replicas). */
  static async create(nc: NatsConnection, replicas = 1): Promise<NatsTileQueue> {
    return new NatsTileQueue(nc, jetstream(nc), await jetstreamManager(nc), replicas);
  }

  async open(jobId: string, settings: QueueSettings): Promise<void> {
    const name = tileStreamName(jobId);
    const exists = await this.jsm.streams.info(name).then(() => true, () => false);
    if (!exists) {
      await withReplicas(`stream ${name}`, this.replicas, () =>
        this.jsm.streams.add({ name, subjects: [tileSubject(jobId)], retention: RetentionPolicy.Workqueue, storage: StorageType.File, num_replicas: this.replicas }),
      );
    }
    const consumerExists = await this.jsm.consumers.info(name, CONSUMER).then(() => true, () => false);
    if (!consumerExists) {
      await withReplicas(`consumer ${name}/${CONSUMER}`, this.replicas, () =>
        this.jsm.consumers.add(name, {
          durable_name: CONSUMER,
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          ack_wait: settings.ackWaitMs * 1_000_000,
          max_deliver: settings.maxDeliver,
          num_replicas: this.replicas,
        }),
      );
    }
  }

  async publish(jobId: string, tileId: string, data: Uint8Array, mac: string): Promise<void> {
    const h = natsHeaders();
    h.set(TILE_HEADER, tileId);
    h.set(MAC_HEADER, mac);
    // The id guards against a publish retried after a lost ack; a republished tile (lost, or handed
    // back by a sick worker) is a new message and gets a new id.
    await this.js.publish(tileSubject(jobId), data, { msgID: `${jobId}.${tileId}.${this.session}.${++this.published}`, headers: h });
  }

  async inspect(jobId: string): Promise<QueueObservation> {
    const name = tileStreamName(jobId);
    const info = await this.jsm.streams.info(name).catch((err: unknown) => {
      if (isNotFound(err)) return null;
      throw err;
    });
    if (!info) return { exists: false, messages: 0, pending: 0, ackPending: 0, redelivered: 0, tileIds: [] };
    const consumer = await this.jsm.consumers.info(name, CONSUMER).catch(() => null);
    const state = info.state;
    let tileIds: string[] | null = null;
    if (state.messages <= MAX_LISTED) {
      tileIds = [];
      let seq = state.first_seq;
      for (let k = 0; k < state.messages && seq <= state.last_seq; k++) {
        // Next message on the subject at or after seq: skips the gaps acked messages leave.
        const m = await this.jsm.streams.getMessage(name, { seq, next_by_subj: tileSubject(jobId) } as unknown as { seq: number }).catch(() => null);
        if (!m) break;
        const id = m.header?.get(TILE_HEADER);
        if (id) tileIds.push(id);
        seq = m.seq + 1;
      }
    }
    return {
      exists: true,
      messages: state.messages,
      pending: consumer?.num_pending ?? 0,
      ackPending: consumer?.num_ack_pending ?? 0,
      redelivered: consumer?.num_redelivered ?? 0,
      tileIds,
    };
  }

  async purge(jobId: string): Promise<void> {
    await this.jsm.streams.purge(tileStreamName(jobId)).catch(() => undefined);
  }

  async release(jobId: string): Promise<void> {
    await this.jsm.streams.delete(tileStreamName(jobId)).catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
  }

  onMaxDeliveries(handler: (message: StoredTileMessage) => void): void {
    this.handlers.push(handler);
    if (this.sub) return;
    this.sub = this.nc.subscribe(`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.*.${CONSUMER}`, {
      callback: (err, msg) => {
        if (err) return;
        void this.advisory(msg.data).catch(() => undefined);
      },
    });
  }

  private async advisory(data: Uint8Array): Promise<void> {
    const event = JSON.parse(new TextDecoder().decode(data)) as { stream?: string; stream_seq?: number };
    if (!event.stream?.startsWith("DELIFT_TILES_") || !event.stream_seq) return;
    const jobId = event.stream.slice("DELIFT_TILES_".length);
    const stored = await this.jsm.streams.getMessage(event.stream, { seq: event.stream_seq });
    const tileId = stored?.header?.get(TILE_HEADER);
    if (!stored || !tileId) return;
    const message = { jobId, tileId, mac: stored.header?.get(MAC_HEADER) || null, data: stored.data };
    for (const h of this.handlers) h(message);
  }

  async close(): Promise<void> {
    this.sub?.unsubscribe();
  }
}

export class NatsTileSource implements TileSource {
  private readonly consumers = new Map<string, Consumer>();
  private constructor(private readonly js: JetStreamClient) {}

  static create(nc: NatsConnection): NatsTileSource {
    return new NatsTileSource(jetstream(nc));
  }

  async next(jobId: string, timeoutMs: number): Promise<TileDelivery | null> {
    let consumer = this.consumers.get(jobId);
    try {
      if (!consumer) {
        consumer = await this.js.consumers.get(tileStreamName(jobId), CONSUMER);
        this.consumers.set(jobId, consumer);
      }
      const msg = await consumer.next({ expires: Math.max(1000, timeoutMs) });
      if (!msg) return null;
      return {
        data: msg.data,
        tileId: msg.headers?.get(TILE_HEADER) || null,
        mac: msg.headers?.get(MAC_HEADER) || null,
        deliveryCount: msg.info.deliveryCount,
        working: () => msg.working(),
        ack: async () => {
          await msg.ackAck();
        },
        nak: (delayMs) => msg.nak(delayMs),
        // No reason: nats-server 2.9.10 redelivers a message terminated with one.
        term: () => msg.term(),
      };
    } catch (err) {
      // The job's stream is gone (job ended) or NATS is restarting: forget the handle, let the caller retry.
      this.consumers.delete(jobId);
      throw err;
    }
  }

  async close(): Promise<void> {
    this.consumers.clear();
  }
}

export class NatsKeyValue implements KeyValueBucket {
  private constructor(private readonly kv: KV) {}

  /**
   * Opens (or creates) a bucket; `ttlMs` expires entries not rewritten in time (heartbeats);
   * `replicas` applies when this call creates it (an existing bucket keeps its own).
   */
  static async open(nc: NatsConnection, bucket: string, ttlMs?: number, replicas = 1): Promise<NatsKeyValue> {
    const kv = await withReplicas(`KV bucket ${bucket}`, replicas, () =>
      new Kvm(nc).create(bucket, { history: 1, storage: StorageType.File, replicas, ...(ttlMs ? { ttl: ttlMs } : {}) }),
    );
    return new NatsKeyValue(kv);
  }

  /**
   * Binds to a bucket the coordinator created, without the right to create or change buckets (a
   * worker's NATS permissions); rejects while it does not exist yet.
   */
  static async bind(nc: NatsConnection, bucket: string): Promise<NatsKeyValue> {
    const kv = await new Kvm(nc).open(bucket);
    await kv.status();
    return new NatsKeyValue(kv);
  }

  async get(key: string): Promise<Uint8Array | null> {
    const e = await this.kv.get(key);
    return e && e.operation === "PUT" ? e.value : null;
  }

  async put(key: string, value: Uint8Array): Promise<void> {
    await this.kv.put(key, value);
  }

  async delete(key: string): Promise<void> {
    await this.kv.delete(key);
  }

  async keys(prefix = ""): Promise<string[]> {
    // A key written while the listing runs can come twice (the listing reads the stream).
    const out = new Set<string>();
    for await (const k of await this.kv.keys(prefix ? `${prefix}>` : ">")) out.add(k);
    return [...out];
  }

  async entry(key: string): Promise<{ value: Uint8Array; revision: number } | null> {
    const e = await this.kv.get(key);
    return e && e.operation === "PUT" ? { value: e.value, revision: e.revision } : null;
  }

  async create(key: string, value: Uint8Array): Promise<number> {
    try {
      return await this.kv.create(key, value);
    } catch (err) {
      if (isWrongSequence(err)) throw new KvRevisionError(`key ${key} exists`, { cause: err });
      throw err;
    }
  }

  async update(key: string, value: Uint8Array, revision: number): Promise<number> {
    try {
      return await this.kv.update(key, value, revision);
    } catch (err) {
      if (isWrongSequence(err)) throw new KvRevisionError(`key ${key} is no longer at revision ${revision}`, { cause: err });
      throw err;
    }
  }
}

/** JetStream's "wrong last sequence" (error code 10071): a conditional write lost its race. */
function isWrongSequence(err: unknown): boolean {
  const e = err as { api_error?: { err_code?: number }; code?: number | string; message?: string };
  return e?.api_error?.err_code === 10071 || /wrong last sequence|key exists/i.test(String(e?.message ?? ""));
}

function isNotFound(err: unknown): boolean {
  const e = err as { api_error?: { err_code?: number }; message?: string };
  return e?.api_error?.err_code === 10059 || /stream not found/i.test(String(e?.message ?? ""));
}

export class NatsBlobStore implements BlobStore {
  private constructor(private readonly store: ObjectStore) {}

  static async open(nc: NatsConnection, bucket: string, replicas = 1): Promise<NatsBlobStore> {
    return new NatsBlobStore(await withReplicas(`object store ${bucket}`, replicas, () => new Objm(nc).create(bucket, { storage: StorageType.File, replicas })));
  }

  /** Binds to an object store the coordinator created (see NatsKeyValue.bind). */
  static async bind(nc: NatsConnection, bucket: string): Promise<NatsBlobStore> {
    return new NatsBlobStore(await new Objm(nc).open(bucket, true));
  }

  async has(name: string): Promise<boolean> {
    const info = await this.store.info(name);
    return info !== null && !info.deleted;
  }

  async putFile(name: string, path: string): Promise<void> {
    await this.store.put({ name }, Readable.toWeb(createReadStream(path)) as unknown as ReadableStream<Uint8Array>);
  }

  /** Streams the blob to `path` (via a temp file; the object store checks its digest). */
  async getToFile(name: string, path: string): Promise<void> {
    const result = await this.store.get(name);
    if (!result) throw new Error(`object ${name} is not in the object store`);
    const tmp = `${path}.part`;
    try {
      await pipeline(Readable.fromWeb(result.data as unknown as import("node:stream/web").ReadableStream<Uint8Array>), createWriteStream(tmp) as Writable);
      const err = await result.error;
      if (err) throw err;
      await rename(tmp, path);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }
}

/** JetStream API error codes for a replica count the servers cannot place. */
const NO_SUITABLE_PEERS = 10005;
const REPLICAS_NOT_CLUSTERED = 10074;

/**
 * Creates a replicated JetStream asset; when the servers cannot hold that many copies the
 * server's refusal becomes a ConfigError that names the asset and the flag to change.
 */
async function withReplicas<T>(what: string, replicas: number, create: () => Promise<T>): Promise<T> {
  try {
    return await create();
  } catch (err) {
    if (err instanceof JetStreamApiError && (err.code === NO_SUITABLE_PEERS || err.code === REPLICAS_NOT_CLUSTERED)) {
      const hint = err.code === REPLICAS_NOT_CLUSTERED
        ? "this NATS server is not part of a JetStream cluster: use --nats-replicas 1"
        : "--nats-replicas must not exceed the number of JetStream servers in the cluster (each with room for the data)";
      throw new ConfigError(`NATS refused to create ${what} with ${replicas} replica${replicas === 1 ? "" : "s"}: ${err.message} (${hint})`, { cause: err });
    }
    throw err;
  }
}
