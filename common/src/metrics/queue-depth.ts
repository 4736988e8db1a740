import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { TILE_CONSUMER, tileStreamName } from "../bus/nats-bus.js";

export type ConsumerDepth = { pending: number; ackPending: number; redelivered: number };

/**
 * Reads a job's queue depth from its JetStream consumer (one consumer-info request: cheap enough
 * for every scrape). Null when the job has no queue (not published yet, or released).
 */
export function natsQueueDepth(nc: NatsConnection): (jobId: string) => Promise<ConsumerDepth | null> {
  let jsm: Promise<JetStreamManager> | null = null;
  return async (jobId) => {
    jsm ??= jetstreamManager(nc).catch((err: unknown) => {
      jsm = null;
      throw err;
    });
    const info = await (await jsm).consumers.info(tileStreamName(jobId), TILE_CONSUMER).catch(() => null);
    if (!info) return null;
    return { pending: info.num_pending, ackPending: info.num_ack_pending, redelivered: info.num_redelivered };
  };
}
