import { Counter, Gauge, Histogram, type Registry } from "prom-client";

/** What a worker's loop tells its observer (the metrics below): one call per thing that happened. */
export interface WorkerTileEvents {
  /** A tile message passed its checks and the worker takes it up (`delivery`: JetStream's count). */
  tileStarted(jobId: string, delivery: number): void;
  /** The tile was computed and uploaded; `outcome` is the coordinator's answer. */
  tileFinished(jobId: string, f: { outcome: string; seconds: number; pairs: number; bytesDown: number; bytesUp: number }): void;
  /** The tile failed here; `kind` says whose fault (tile, model, health). */
  tileFailed(jobId: string, kind: string): void;
  /** The worker is done with the tile, whatever happened (after tileStarted, exactly once). */
  tileLeft(jobId: string): void;
  /** A message was removed without computing it (malformed, forged, unknown job). */
  tileDropped(jobId: string, why: string): void;
}

export const TILE_SECONDS_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

/** A worker's Prometheus metrics, fed by its loop through WorkerTileEvents. */
export class WorkerMetrics implements WorkerTileEvents {
  private readonly running: Gauge;
  private readonly tiles: Counter;
  private readonly pairs: Counter;
  private readonly seconds: Histogram;
  private readonly bytes: Counter;
  private readonly failures: Counter;
  private readonly redeliveries: Counter;
  private readonly dropped: Counter;

  constructor(registry: Registry, concurrency: number) {
    const registers = [registry];
    new Gauge({ name: "delift_worker_slots", help: "Tiles this worker computes at once (--concurrency)", registers }).set(concurrency);
    this.running = new Gauge({ name: "delift_worker_tiles_running", help: "Tiles being computed now", registers });
    this.tiles = new Counter({ name: "delift_worker_tiles_total", help: "Tiles computed and uploaded, by the coordinator's answer (stored, duplicate, gone, conflict)", labelNames: ["outcome"], registers });
    this.pairs = new Counter({ name: "delift_worker_pairs_total", help: "Utility pairs (kernel values) computed and uploaded; rate() gives pairs/s", registers });
    this.seconds = new Histogram({ name: "delift_worker_tile_seconds", help: "Seconds from a tile's start to its uploaded result", buckets: TILE_SECONDS_BUCKETS, registers });
    this.bytes = new Counter({ name: "delift_worker_bytes_total", help: "Bytes of tile messages received (down) and of results uploaded (up)", labelNames: ["direction"], registers });
    this.failures = new Counter({ name: "delift_worker_tile_failures_total", help: "Tiles that failed on this worker, by fault (tile, model, health)", labelNames: ["kind"], registers });
    this.redeliveries = new Counter({ name: "delift_worker_redeliveries_total", help: "Tiles taken up here that were a redelivery (JetStream delivery count above 1)", registers });
    this.dropped = new Counter({ name: "delift_worker_messages_dropped_total", help: "Tile messages removed unread (malformed, forged, unknown job)", labelNames: ["reason"], registers });
    for (const d of ["down", "up"]) this.bytes.inc({ direction: d }, 0);
    for (const o of ["stored", "duplicate"]) this.tiles.inc({ outcome: o }, 0);
  }

  tileStarted(_jobId: string, delivery: number): void {
    this.running.inc();
    if (delivery > 1) this.redeliveries.inc();
  }

  tileLeft(): void {
    this.running.dec();
  }

  tileFinished(_jobId: string, f: { outcome: string; seconds: number; pairs: number; bytesDown: number; bytesUp: number }): void {
    this.tiles.inc({ outcome: f.outcome });
    if (f.outcome === "stored" || f.outcome === "duplicate") this.pairs.inc(f.pairs);
    this.seconds.observe(f.seconds);
    this.bytes.inc({ direction: "down" }, f.bytesDown);
    this.bytes.inc({ direction: "up" }, f.bytesUp);
  }

  tileFailed(_jobId: string, kind: string): void {
    this.failures.inc({ kind });
  }

  tileDropped(_jobId: string, why: string): void {
    this.dropped.inc({ reason: why.replace(/ /g, "_") });
  }
}
