/** Names shared by coordinator and workers on the bus. */
export const JOBS_BUCKET = "delift_jobs";
export const WORKERS_BUCKET = "delift_workers";
export const CLUSTER_BUCKET = "delift_cluster";
export const MODELS_BUCKET = "delift_models";

/** Heartbeats older than this disappear from the workers bucket (its TTL). */
export const WORKER_TTL_MS = 30_000;
export const HEARTBEAT_MS = 5_000;

export const ACTIVE_JOBS_KEY = "active";
export const COORDINATOR_KEY = "coordinator";
export const workKey = (jobId: string) => `${jobId}.work`;
export const statusKey = (jobId: string) => `${jobId}.status`;
export const modelBlobName = (bundleHash: string, file: string) => `${bundleHash}/${file}`;
/** A job's embedding matrix for search tiles, by the SHA-256 of its blob. */
export const searchMatrixBlobName = (sha256: string) => `search-matrix/${sha256}`;
