/** Messages of proto/delift.proto as @grpc/proto-loader presents them (camelCase, longs as numbers). */

export type TileResultChunk = {
  jobId: string;
  tileId: string;
  attempt: number;
  workerId: string;
  offset: number;
  payload: Uint8Array;
  totalValues: number;
  truncated: number;
  computeSeconds: number;
  tileMac: string;
};

export type UploadAck = { outcome: "stored" | "duplicate" | "gone" | "conflict"; message: string };

export type TileFailure = { jobId: string; tileId: string; attempt: number; workerId: string; error: string; final: boolean; kind: string };

export type FailureAck = { action: "retry" | "drop" };

export type TileStarted = { jobId: string; tileId: string; attempt: number; workerId: string };

export type WorkerRate = { workerId: string; tiles: number; pairs: number; pairsPerSecond: number };

/**
 * Where the long work of the job's current phase stands (reading the data, the candidate search,
 * the kernel, the selection, writing): a bar (done of total, in `unit`), its rate and ETA.
 */
export type PhaseProgress = {
  /** reading | embeddings | candidates | kernel | selection | writing */
  name: string;
  /** What part of the phase the bar counts (cell-probe search: cells, tune, search). */
  step: string;
  done: number;
  total: number;
  unit: string;
  elapsedSeconds: number;
  /** Units per second over the step so far, and the seconds left at that rate (-1: not known yet). */
  rate: number;
  etaSeconds: number;
};

export type JobStatusMessage = {
  jobId: string;
  state: string;
  tilesTotal: number;
  tilesDone: number;
  tilesReused: number;
  pairsTotal: number;
  pairsDone: number;
  pairsPerSecond: number;
  etaSeconds: number;
  redeliveries: number;
  workers: WorkerRate[];
  error: string;
  elapsedSeconds: number;
  stage: string;
  createdAt: string;
  tileBytes: number;
  resultBytes: number;
  failedDuring: string;
  /** The current phase's progress, when it reports one (null otherwise). */
  phase?: PhaseProgress | null;
};

export type WorkerInfo = {
  workerId: string;
  host: string;
  device: string;
  concurrency: number;
  state: string;
  tilesDone: number;
  pairsDone: number;
  lastSeenSecondsAgo: number;
  currentTiles: string[];
};

export type ResultFileChunk = { name: string; data: Uint8Array; last: boolean };

export type StoryLine = { json: string };
