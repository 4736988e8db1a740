/**
 * The bus between coordinator and workers (DESIGN.md §5), as interfaces: JetStream and NATS
 * KV/object store in a cluster (nats-bus.ts), an in-process implementation for the embedded
 * default and unit tests (memory-bus.ts). Neither side knows which one it talks to.
 */

/** A tile message handed to one worker; it stays the worker's until acked, nak'ed or its ack wait runs out. */
export type TileDelivery = {
  data: Uint8Array;
  /** The message's tile id and authentication code headers (null when missing). */
  tileId: string | null;
  mac: string | null;
  /** 1 on the first delivery. */
  deliveryCount: number;
  /** Extends the ack wait while a long tile runs. */
  working(): void;
  /** Confirms the tile; resolves once the bus has recorded the ack. */
  ack(): Promise<void>;
  /** Gives the tile back for redelivery (after delayMs). */
  nak(delayMs?: number): void;
  /**
   * Removes the message for good. A plain term, never one with a reason: nats-server 2.9.10
   * ignores a term with a reason and delivers the message again.
   */
  term(): void;
};

/** A message of a job's queue as the stream keeps it (for the max-deliveries advisory). */
export type StoredTileMessage = { jobId: string; tileId: string; mac: string | null; data: Uint8Array };

/** What the queue holds for a job now (JetStream: stream and consumer info). */
export type QueueObservation = {
  exists: boolean;
  /** Messages in the queue (work queue: not yet acked or terminated). */
  messages: number;
  /** Not yet delivered; delivered and not yet acked; delivered more than once. */
  pending: number;
  ackPending: number;
  redelivered: number;
  /** Tile ids of the messages present, or null when there were too many to list. */
  tileIds: string[] | null;
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
  publish(jobId: string, tileId: string, data: Uint8Array, mac: string): Promise<void>;
  /** Drops every queued tile of a job (re-planning after a restart, cancel). */
  purge(jobId: string): Promise<void>;
  /** Deletes the job's queue (the job has ended). */
  release(jobId: string): Promise<void>;
  /** What the job's queue holds (for the coordinator's reconcile). */
  inspect(jobId: string): Promise<QueueObservation>;
  /**
   * Called with the message when one reaches its delivery limit without an ack. At most once
   * (JetStream's advisory is core NATS): a hint, never the only way a job learns of it.
   */
  onMaxDeliveries(handler: (message: StoredTileMessage) => void): void;
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
  /** The value with its revision (which changes on every write), or null. */
  entry(key: string): Promise<{ value: Uint8Array; revision: number } | null>;
  /** Writes only if the key does not exist (KvRevisionError otherwise); returns the new revision. */
  create(key: string, value: Uint8Array): Promise<number>;
  /** Writes only if the key is still at `revision` (KvRevisionError otherwise); returns the new one. */
  update(key: string, value: Uint8Array, revision: number): Promise<number>;
}

/** Named blobs (model bundle files by content hash). */
export interface BlobStore {
  has(name: string): Promise<boolean>;
  putFile(name: string, path: string): Promise<void>;
  getToFile(name: string, path: string): Promise<void>;
  /** Where the blob already lies on this machine, if it does (then nothing needs copying). */
  localPath?(name: string): string | null;
}
