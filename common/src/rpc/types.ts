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
