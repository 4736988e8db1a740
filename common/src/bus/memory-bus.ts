import { copyFile } from "node:fs/promises";
import { KvRevisionError } from "./errors.js";
import type { BlobStore, KeyValueBucket, QueueObservation, QueueSettings, StoredTileMessage, TileDelivery, TileQueue, TileSource } from "./types.js";

type Entry = { tileId: string; mac: string; data: Uint8Array; deliveries: number; availableAt: number; leasedUntil: number | null; done: boolean; dead: boolean };
type JobQueue = { settings: QueueSettings; entries: Entry[] };

/**
 * An in-process work queue with the semantics the workers rely on from JetStream: explicit ack,
 * working() to extend the lease, redelivery when a lease runs out or on nak, a delivery limit
 * (reported like JetStream's max-deliveries advisory; the message then stays in the queue,
 * undeliverable, as it does in a JetStream work-queue stream), term.
 */
export class MemoryTileQueue implements TileQueue, TileSource {
  private readonly queues = new Map<string, JobQueue>();
  private readonly waiters = new Set<() => void>();
  private readonly maxHandlers: ((message: StoredTileMessage) => void)[] = [];
  private closed = false;

  async open(jobId: string, settings: QueueSettings): Promise<void> {
    if (!this.queues.has(jobId)) this.queues.set(jobId, { settings, entries: [] });
  }

  async publish(jobId: string, tileId: string, data: Uint8Array, mac: string): Promise<void> {
    const q = this.queues.get(jobId);
    if (!q) throw new Error(`no queue for job ${jobId}`);
    q.entries.push({ tileId, mac, data, deliveries: 0, availableAt: 0, leasedUntil: null, done: false, dead: false });
    this.wake();
  }

  async purge(jobId: string): Promise<void> {
    const q = this.queues.get(jobId);
    if (q) q.entries = [];
  }

  async release(jobId: string): Promise<void> {
    this.queues.delete(jobId);
    this.wake();
  }

  async inspect(jobId: string): Promise<QueueObservation> {
    const q = this.queues.get(jobId);
    if (!q) return { exists: false, messages: 0, pending: 0, ackPending: 0, redelivered: 0, tileIds: [] };
    const now = Date.now();
    const live = q.entries.filter((e) => !e.done);
    return {
      exists: true,
      messages: live.length,
      pending: live.filter((e) => e.deliveries === 0).length,
      ackPending: live.filter((e) => e.leasedUntil !== null && e.leasedUntil > now).length,
      redelivered: live.filter((e) => e.deliveries > 1).length,
      tileIds: live.map((e) => e.tileId),
    };
  }

  onMaxDeliveries(handler: (message: StoredTileMessage) => void): void {
    this.maxHandlers.push(handler);
  }

  /** How many messages the job's queue holds (tests). */
  size(jobId: string): number {
    return this.queues.get(jobId)?.entries.filter((e) => !e.done).length ?? 0;
  }

  has(jobId: string): boolean {
    return this.queues.has(jobId);
  }

  async next(jobId: string, timeoutMs: number): Promise<TileDelivery | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.closed) return null;
      const delivery = this.take(jobId);
      if (delivery) return delivery;
      const left = deadline - Date.now();
      if (left <= 0) return null;
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(t);
          this.waiters.delete(wake);
          resolve();
        };
        const t = setTimeout(wake, Math.min(left, 100));
        this.waiters.add(wake);
      });
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wake();
  }

  private take(jobId: string): TileDelivery | null {
    const q = this.queues.get(jobId);
    if (!q) return null;
    const now = Date.now();
    for (const e of q.entries) {
      if (e.done || e.dead) continue;
      if (e.leasedUntil !== null && e.leasedUntil > now) continue;
      if (e.availableAt > now) continue;
      if (e.deliveries >= q.settings.maxDeliver) {
        e.dead = true;
        for (const h of this.maxHandlers) h({ jobId, tileId: e.tileId, mac: e.mac, data: e.data });
        continue;
      }
      e.deliveries++;
      e.leasedUntil = now + q.settings.ackWaitMs;
      return this.delivery(q, e);
    }
    q.entries = q.entries.filter((e) => !e.done);
    return null;
  }

  private delivery(q: JobQueue, e: Entry): TileDelivery {
    const count = e.deliveries;
    const mine = () => !e.done && e.deliveries === count;
    return {
      data: e.data,
      tileId: e.tileId,
      mac: e.mac,
      deliveryCount: count,
      working: () => {
        if (mine()) e.leasedUntil = Date.now() + q.settings.ackWaitMs;
      },
      ack: async () => {
        if (mine()) e.done = true;
      },
      nak: (delayMs = 0) => {
        if (!mine()) return;
        e.leasedUntil = null;
        e.availableAt = Date.now() + delayMs;
        this.wake();
      },
      term: () => {
        if (mine()) e.done = true;
      },
    };
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}

export class MemoryKeyValue implements KeyValueBucket {
  private readonly data = new Map<string, { value: Uint8Array; revision: number }>();
  private revision = 0;

  async get(key: string): Promise<Uint8Array | null> {
    return this.data.get(key)?.value ?? null;
  }
  async put(key: string, value: Uint8Array): Promise<void> {
    this.data.set(key, { value, revision: ++this.revision });
  }
  async delete(key: string): Promise<void> {
    this.data.delete(key);
  }
  async keys(prefix = ""): Promise<string[]> {
    return [...this.data.keys()].filter((k) => k.startsWith(prefix));
  }
  async entry(key: string): Promise<{ value: Uint8Array; revision: number } | null> {
    const e = this.data.get(key);
    return e ? { ...e } : null;
  }
  async create(key: string, value: Uint8Array): Promise<number> {
    if (this.data.has(key)) throw new KvRevisionError(`key ${key} exists`);
    await this.put(key, value);
    return this.revision;
  }
  async update(key: string, value: Uint8Array, revision: number): Promise<number> {
    const e = this.data.get(key);
    if (!e || e.revision !== revision) throw new KvRevisionError(`key ${key} is at revision ${e?.revision ?? "none"}, not ${revision}`);
    await this.put(key, value);
    return this.revision;
  }
}

/** Blobs as local file paths: the embedded default shares one disk, so nothing is copied. */
export class LocalBlobStore implements BlobStore {
  private readonly files = new Map<string, string>();
  localPath(name: string): string | null {
    return this.files.get(name) ?? null;
  }
  async has(name: string): Promise<boolean> {
    return this.files.has(name);
  }
  async putFile(name: string, path: string): Promise<void> {
    this.files.set(name, path);
  }
  async getToFile(name: string, path: string): Promise<void> {
    const source = this.files.get(name);
    if (!source) throw new Error(`no blob ${name}`);
    await copyFile(source, path);
  }
}
