import { copyFile } from "node:fs/promises";
import type { BlobStore, KeyValueBucket, QueueSettings, TileDelivery, TileQueue, TileSource } from "./types.js";

type Entry = { tileId: string; data: Uint8Array; deliveries: number; availableAt: number; leasedUntil: number | null; done: boolean };
type JobQueue = { settings: QueueSettings; entries: Entry[] };

/**
 * An in-process work queue with the semantics the workers rely on from JetStream: explicit ack,
 * working() to extend the lease, redelivery when a lease runs out or on nak, a delivery limit
 * (reported like JetStream's max-deliveries advisory), term.
 */
export class MemoryTileQueue implements TileQueue, TileSource {
  private readonly queues = new Map<string, JobQueue>();
  private readonly waiters = new Set<() => void>();
  private readonly maxHandlers: ((jobId: string, tileId: string) => void)[] = [];
  private closed = false;

  async open(jobId: string, settings: QueueSettings): Promise<void> {
    if (!this.queues.has(jobId)) this.queues.set(jobId, { settings, entries: [] });
  }

  async publish(jobId: string, tileId: string, data: Uint8Array): Promise<void> {
    const q = this.queues.get(jobId);
    if (!q) throw new Error(`no queue for job ${jobId}`);
    q.entries.push({ tileId, data, deliveries: 0, availableAt: 0, leasedUntil: null, done: false });
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

  onMaxDeliveries(handler: (jobId: string, tileId: string) => void): void {
    this.maxHandlers.push(handler);
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
      if (e.done) continue;
      if (e.leasedUntil !== null && e.leasedUntil > now) continue;
      if (e.availableAt > now) continue;
      if (e.deliveries >= q.settings.maxDeliver) {
        e.done = true;
        for (const h of this.maxHandlers) h(jobId, e.tileId);
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
  private readonly data = new Map<string, Uint8Array>();
  async get(key: string): Promise<Uint8Array | null> {
    return this.data.get(key) ?? null;
  }
  async put(key: string, value: Uint8Array): Promise<void> {
    this.data.set(key, value);
  }
  async delete(key: string): Promise<void> {
    this.data.delete(key);
  }
  async keys(prefix = ""): Promise<string[]> {
    return [...this.data.keys()].filter((k) => k.startsWith(prefix));
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
