/** Prometheus metrics (prom-client): the HTTP endpoint, the registry, the worker's metrics. */
export { newMetricsRegistry, parseMetricsAddress, startMetricsServer } from "./metrics-server.js";
export type { MetricsAddress, MetricsServer } from "./metrics-server.js";
export { TILE_SECONDS_BUCKETS, WorkerMetrics } from "./worker-metrics.js";
export type { WorkerTileEvents } from "./worker-metrics.js";
export { natsQueueDepth } from "./queue-depth.js";
export type { ConsumerDepth } from "./queue-depth.js";
