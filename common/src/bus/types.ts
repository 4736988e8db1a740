/**
 * The bus between coordinator and workers (DESIGN.md §5), as interfaces: JetStream and NATS
 * KV/object store in a cluster (nats-bus.ts), an in-process implementation for the embedded
 * default and unit tests (memory-bus.ts). Neither side knows which one it talks to.
 */

/** A tile message handed to one worker; it stays the worker's until acked, nak'ed or its ack wait runs out. */
export type TileDelivery = {
  data: Uint8Array;
  /** 1 on the first delivery. */
  deliveryCount: number;
  /** Extends the ack wait while a long tile runs. */
  working(): void;
  /** Confirms the tile; resolves once the bus has recorded the ack. */
  ack(): Promise<void>;
  /** Gives the tile back for redelivery (after delayMs). */
  nak(delayMs?: number): void;
  /** Drops the tile for good (it can never succeed). */
  term(reason: string): void;
};

export type QueueSettings = {
  /** A delivery not acked (or marked working) within this time is redelivered. */
  ackWaitMs: number;
  /** Deliveries before a tile is given up. */
  maxDeliver: number;
};

/** The coordinator's side of the tile queue: one queue per job. */
export interface TileQueue {
  open(jobId: string, settings: QueueSettings): Promise<void>;
  publish(jobId: string, tileId: string, data: Uint8Array): Promise<void>;
  /** Drops every queued tile of a job (re-planning after a restart, cancel). */
  purge(jobId: string): Promise<void>;
  /** Deletes the job's queue (the job has ended). */
  release(jobId: string): Promise<void>;
  /** Called with the tile id when a tile reaches its delivery limit without an ack. */
  onMaxDeliveries(handler: (jobId: string, tileId: string) => void): void;
  close(): Promise<void>;
}

/** The worker's side: takes the next tile of a job, if any arrives within the timeout. */
export interface TileSource {
  next(jobId: string, timeoutMs: number): Promise<TileDelivery | null>;
  close(): Promise<void>;
}

/** A key-value bucket (NATS KV or memory). Values are bytes; keys use [A-Za-z0-9_.-]. */
export interface KeyValueBucket {
  get(key: string): Promise<Uint8Array | null>;
  put(key: string, value: Uint8Array): Promise<void>;
  delete(key: string): Promise<void>;
  keys(prefix?: string): Promise<string[]>;
}

/** Named blobs (model bundle files by content hash). */
export interface BlobStore {
  has(name: string): Promise<boolean>;
  putFile(name: string, path: string): Promise<void>;
  getToFile(name: string, path: string): Promise<void>;
  /** Where the blob already lies on this machine, if it does (then nothing needs copying). */
  localPath?(name: string): string | null;
}
